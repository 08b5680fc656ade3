package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/sanwatch/sanwatch/internal/smart"
	"github.com/sanwatch/sanwatch/internal/telemetry"
)

func (c *cli) importCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "import",
		Short: "Convert drive-health data in other formats (Backblaze drive stats, smartctl --json) into telemetry batches",
	}
	cmd.AddCommand(c.importBackblazeCmd(), c.importSmartctlCmd())
	return cmd
}

func (c *cli) importBackblazeCmd() *cobra.Command {
	var o smart.ImportOptions
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "backblaze FILE|DIR...",
		Short: "Convert Backblaze daily drive-stats CSV files (gzip or not) into batches, a truth file and an inventory",
		Long: `import backblaze reads Backblaze's daily drive-stats files as they are published (any year's
set of smart_N_raw columns; gzip detected) and writes OUT/batches/<day>.csv.gz (one telemetry batch
per file), OUT/truth.csv (each drive that failed, at its failure date, for starter backtest) and
OUT/fleet.yaml (one box per pod). A drive is the component disk/<serial>. Public data has no
boxes, so drives are hashed by serial into pods: --pods N pods, or --pod-size N drives per pod;
--box-column names a column that holds the box instead. A bad row is reported as file:line: reason
and the good rows are kept; a file without date or serial_number columns stops the import.`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			files, err := expandFiles(args, ".csv", ".csv.gz")
			if err != nil {
				return err
			}
			o.Files = files
			if !asJSON {
				o.Log = c.stderr
			}
			res, err := smart.Import(o)
			for _, e := range res.Errors {
				fmt.Fprintln(c.stderr, "rejected:", e.Error())
			}
			if err != nil {
				return err
			}
			if asJSON {
				return json.NewEncoder(c.stdout).Encode(res)
			}
			fmt.Fprintf(c.stdout, "import: files=%d rows=%d rejected=%d samples=%d drives=%d boxes=%d failures=%d\n",
				res.Files, res.Rows, res.Rejected, res.Samples, res.Drives, res.Boxes, res.Failures)
			fmt.Fprintf(c.stdout, "batches:   %s\ntruth:     %s\ninventory: %s\n", res.BatchDir, res.TruthPath, res.Inventory)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.Out, "out", "data/import", "output directory")
	f.IntVar(&o.Boxes.Pods, "pods", 0, "hash drives into this many boxes (pod-NNNN)")
	f.IntVar(&o.PodSize, "pod-size", 0, "hash drives into pods of about this many drives (counted in the first file); default 50 when no other mapping is given")
	f.StringVar(&o.Boxes.Column, "box-column", "", "column that holds each drive's box")
	f.StringVar(&o.Boxes.Box, "box", "", "put every drive in this one box")
	f.StringVar(&o.Boxes.Prefix, "pod-prefix", "pod", "name prefix of hashed pods")
	f.StringVar(&o.Site, "site", "lab", "site of the boxes in the written inventory")
	f.BoolVar(&asJSON, "json", false, "print the result as JSON")
	cmd.PreRunE = func(cmd *cobra.Command, _ []string) error {
		if o.Boxes.Pods == 0 && o.PodSize == 0 && o.Boxes.Column == "" && o.Boxes.Box == "" {
			o.PodSize = 50
		}
		return nil
	}
	return cmd
}

func (c *cli) importSmartctlCmd() *cobra.Command {
	var box, out string
	cmd := &cobra.Command{
		Use:   "smartctl FILE...",
		Short: "Convert `smartctl --json -a` output (ATA or NVMe, one or more drives per file) into telemetry batches",
		Long: `import smartctl reads files of smartctl --json -a output (smartmontools 7+; several drives
per file as concatenated documents or JSON Lines; gzip detected) and writes OUT/<file>.csv.gz,
one batch per file, for box --box. A document with no SMART data (a USB bridge smartctl cannot see
through, a virtual disk) is reported as skipped with smartctl's own message; the others are kept.`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if box == "" {
				return errors.New("--box: required: the box the drives belong to")
			}
			if err := os.MkdirAll(out, 0o755); err != nil {
				return fmt.Errorf("import smartctl: %w", err)
			}
			var failed int
			for _, path := range args {
				n, skipped, err := importSmartctlFile(path, box, out)
				if errors.Is(err, smart.ErrNoSMARTData) {
					fmt.Fprintln(c.stdout, "skip", err) // nothing to import, and nothing wrong with the file
					continue
				}
				for _, s := range skipped {
					fmt.Fprintln(c.stderr, "skipped:", s.Error())
				}
				if err != nil {
					failed++
					fmt.Fprintln(c.stdout, "FAIL", err)
					continue
				}
				fmt.Fprintf(c.stdout, "ok   %s samples=%d skipped=%d\n", path, n, len(skipped))
			}
			if failed > 0 {
				return fmt.Errorf("%d of %d files failed", failed, len(args))
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&box, "box", "", "the box the drives belong to (required)")
	cmd.Flags().StringVar(&out, "out", "data/import/batches", "output directory for the batches")
	return cmd
}

// importSmartctlFile converts one smartctl file into a batch in dir.
func importSmartctlFile(path, box, dir string) (int64, []telemetry.LineError, error) {
	in, err := os.Open(path)
	if err != nil {
		return 0, nil, err
	}
	defer in.Close()
	samples, res, err := smart.ReadSmartctl(in, smart.SmartctlOptions{Name: path, Box: box})
	if err != nil {
		return 0, res.Skipped, err
	}
	base := strings.TrimSuffix(strings.TrimSuffix(filepath.Base(path), ".gz"), ".json")
	outPath := filepath.Join(dir, base+".csv.gz")
	f, err := os.Create(outPath)
	if err != nil {
		return 0, res.Skipped, err
	}
	w := telemetry.NewWriter(f, telemetry.Format{Kind: telemetry.KindCSV, Gzip: true})
	for _, s := range samples {
		if err = w.Write(s); err != nil {
			break
		}
	}
	err = errors.Join(err, w.Close(), f.Close())
	if err != nil {
		_ = os.Remove(outPath)
		return 0, res.Skipped, fmt.Errorf("write %s: %w", outPath, err)
	}
	return res.Samples, res.Skipped, nil
}

// expandFiles turns files and directories into a list of files; directories
// are read one level deep for names ending in one of exts.
func expandFiles(args []string, exts ...string) ([]string, error) {
	var files []string
	for _, arg := range args {
		info, err := os.Stat(arg)
		if err != nil {
			return nil, err
		}
		if !info.IsDir() {
			files = append(files, arg)
			continue
		}
		entries, err := os.ReadDir(arg)
		if err != nil {
			return nil, err
		}
		n := len(files)
		for _, e := range entries {
			for _, ext := range exts {
				if !e.IsDir() && strings.HasSuffix(e.Name(), ext) {
					files = append(files, filepath.Join(arg, e.Name()))
					break
				}
			}
		}
		if len(files) == n {
			return nil, fmt.Errorf("%s: no files ending in %s", arg, strings.Join(exts, " or "))
		}
	}
	return files, nil
}
