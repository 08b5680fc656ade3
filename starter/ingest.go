package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/spf13/cobra"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"

	"github.com/sanwatch/sanwatch/activities"
	"github.com/sanwatch/sanwatch/internal/blobstore"
	"github.com/sanwatch/sanwatch/workflows"
)

// batchExts are the file endings ingest picks up when given a directory.
var batchExts = []string{".csv", ".jsonl", ".csv.gz", ".jsonl.gz", ".json.gz", ".ndjson", ".gz"}

// batchOutcome is one line of ingest's report.
type batchOutcome struct {
	Path       string                  `json:"path"`
	WorkflowID string                  `json:"workflow_id,omitempty"`
	Result     *workflows.IngestResult `json:"result,omitempty"`
	Repeat     bool                    `json:"already_ingested,omitempty"`
	Error      string                  `json:"error,omitempty"`
}

func (c *cli) ingestCmd() *cobra.Command {
	var parallel int
	var wait, asJSON, noAnalyze bool
	var waitWorker time.Duration
	cmd := &cobra.Command{
		Use:   "ingest FILE|DIR...",
		Short: "Ingest telemetry batches (CSV or JSON Lines, gzip or not) through the IngestTelemetry workflow",
		Long: `Ingest uploads each batch file to the batch store (batches.url) as batches/<sha256>,
unless that object is already there, and starts one IngestTelemetry workflow per batch with
the object key as its claim check, so that a worker on any host reads it. The workflow id is
derived from the content (ingest-<sha256 prefix>): a batch sent twice is processed once.
Directories are walked for .csv, .jsonl and .gz files. The files are read by this command,
on this host; ingest.roots does not apply to them (it bounds the paths that workflows
started by other clients, such as temporal workflow start, may name).`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if parallel < 1 {
				return fmt.Errorf("--parallel %d: must be at least 1", parallel)
			}
			files, err := expandBatches(args)
			if err != nil {
				return err
			}
			bs, err := blobstore.Open(cmd.Context(), c.cfg.Batches.URL)
			if err != nil {
				return err
			}
			defer bs.Close()
			tc, err := c.dial(cmd.Context())
			if err != nil {
				return err
			}
			defer tc.Close()
			needs := []queueNeed{{c.cfg.Queues.Main, enumspb.TASK_QUEUE_TYPE_WORKFLOW}}
			if !noAnalyze {
				needs = append(needs, queueNeed{c.cfg.Queues.Analysis, enumspb.TASK_QUEUE_TYPE_ACTIVITY})
			}
			if err := waitForWorkers(cmd.Context(), tc, c.stderr, waitWorker, needs...); err != nil {
				return err
			}
			outs := c.ingestAll(cmd.Context(), tc, bs, files, parallel, wait, !noAnalyze)
			return c.reportIngest(outs, asJSON, wait)
		},
	}
	cmd.Flags().IntVar(&parallel, "parallel", 8, "batches in flight at once")
	cmd.Flags().BoolVar(&wait, "wait", true, "wait for each workflow and print its result")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print one JSON object per batch")
	cmd.Flags().BoolVar(&noAnalyze, "no-analyze", false, "store only, do not analyse the boxes")
	addWaitForWorker(cmd, &waitWorker)
	return cmd
}

// expandBatches turns files and directories into a sorted list of batch files.
func expandBatches(args []string) ([]string, error) {
	var files []string
	for _, arg := range args {
		info, err := os.Stat(arg)
		if err != nil {
			return nil, fmt.Errorf("ingest %s: %w", arg, err)
		}
		if !info.IsDir() {
			files = append(files, arg)
			continue
		}
		var found []string
		err = filepath.WalkDir(arg, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if !d.IsDir() && hasBatchExt(p) {
				found = append(found, p)
			}
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("walk %s: %w", arg, err)
		}
		if len(found) == 0 {
			return nil, fmt.Errorf("ingest %s: no batch files (%s) in directory", arg, strings.Join(batchExts[:4], ", "))
		}
		sort.Strings(found)
		files = append(files, found...)
	}
	return files, nil
}

func hasBatchExt(p string) bool {
	for _, e := range batchExts {
		if strings.HasSuffix(p, e) {
			return true
		}
	}
	return false
}

// ingestAll starts (and optionally waits for) one workflow per file, at most
// parallel at a time, and returns the outcomes in file order.
func (c *cli) ingestAll(ctx context.Context, tc client.Client, bs *blobstore.Store, files []string, parallel int, wait, analyze bool) []batchOutcome {
	outs := make([]batchOutcome, len(files))
	sem := make(chan struct{}, parallel)
	done := make(chan int, len(files))
	for i, f := range files {
		go func() {
			sem <- struct{}{}
			defer func() { <-sem; done <- i }()
			outs[i] = c.ingestOne(ctx, tc, bs, f, wait, analyze)
		}()
	}
	for range files {
		<-done
	}
	return outs
}

func (c *cli) ingestOne(ctx context.Context, tc client.Client, bs *blobstore.Store, path string, wait, analyze bool) batchOutcome {
	out := batchOutcome{Path: path}
	key, hash, err := uploadBatch(ctx, bs, path)
	if err != nil {
		out.Error = err.Error()
		return out
	}
	out.WorkflowID = workflows.IngestWorkflowID(hash)
	in := workflows.IngestInput{Blob: key, BatchID: hash}
	if !analyze {
		in.Analyze = &analyze
	}
	opts := client.StartWorkflowOptions{
		ID:                       out.WorkflowID,
		TaskQueue:                c.cfg.Queues.Main,
		WorkflowIDReusePolicy:    enumspb.WORKFLOW_ID_REUSE_POLICY_ALLOW_DUPLICATE_FAILED_ONLY,
		WorkflowIDConflictPolicy: enumspb.WORKFLOW_ID_CONFLICT_POLICY_USE_EXISTING,
		// A completed run of the same content is reported, not re-run.
		WorkflowExecutionErrorWhenAlreadyStarted: true,
	}
	run, err := tc.ExecuteWorkflow(ctx, opts, workflows.IngestTelemetry, in)
	var started *serviceerror.WorkflowExecutionAlreadyStarted
	switch {
	case errors.As(err, &started):
		// Completed before: report the earlier result.
		out.Repeat = true
		run = tc.GetWorkflow(ctx, out.WorkflowID, "")
	case err != nil:
		out.Error = fmt.Sprintf("start workflow: %v", err)
		return out
	}
	if !wait {
		return out
	}
	var res workflows.IngestResult
	if err := run.Get(ctx, &res); err != nil {
		out.Error = workflows.ErrorMessage(err)
		return out
	}
	out.Result = &res
	return out
}

// uploadBatch writes the batch file at path to the batch store as
// batches/<sha256>, unless an object of that key is there already (the
// same content was uploaded before), and returns the key and the hash. A
// file that changes while it is uploaded is refused and its object deleted:
// an object's key is always its content's hash.
func uploadBatch(ctx context.Context, bs *blobstore.Store, path string) (key, hash string, err error) {
	hash, err = activities.HashFile(path)
	if err != nil {
		return "", "", err
	}
	key = blobstore.BatchKey(hash)
	ok, err := bs.Exists(ctx, key)
	if err != nil {
		return "", "", fmt.Errorf("upload batch: %w", err)
	}
	if ok {
		return key, hash, nil
	}
	f, err := os.Open(path)
	if err != nil {
		return "", "", fmt.Errorf("upload batch: %w", err)
	}
	defer f.Close()
	h := sha256.New()
	meta := map[string]string{activities.MetaName: filepath.Base(path)}
	if _, err := bs.Put(ctx, key, io.TeeReader(f, h), meta); err != nil {
		return "", "", fmt.Errorf("upload batch: %w", err)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != hash {
		if err := bs.Delete(context.WithoutCancel(ctx), key); err != nil {
			return "", "", fmt.Errorf("upload batch: %s changed while it was uploaded, and its object could not be removed: %w", path, err)
		}
		return "", "", fmt.Errorf("upload batch: %s changed while it was uploaded: try again once it is complete", path)
	}
	return key, hash, nil
}

func (c *cli) reportIngest(outs []batchOutcome, asJSON, wait bool) error {
	var failed int
	var accepted, rejected int64
	enc := json.NewEncoder(c.stdout)
	for _, o := range outs {
		if o.Error != "" {
			failed++
		}
		if o.Result != nil {
			accepted += o.Result.Batch.Accepted
			rejected += o.Result.Batch.Rejected
		}
		if asJSON {
			if err := enc.Encode(o); err != nil {
				return err
			}
			continue
		}
		c.printOutcome(o, wait)
	}
	if !asJSON {
		fmt.Fprintf(c.stdout, "ingest: batches=%d ok=%d failed=%d accepted=%d rejected=%d\n",
			len(outs), len(outs)-failed, failed, accepted, rejected)
	}
	if failed > 0 {
		return fmt.Errorf("%d of %d batches failed", failed, len(outs))
	}
	return nil
}

func (c *cli) printOutcome(o batchOutcome, wait bool) {
	w := c.stdout
	switch {
	case o.Error != "":
		fmt.Fprintf(w, "FAIL %s: %s\n", o.Path, o.Error)
	case !wait:
		fmt.Fprintf(w, "started %s %s\n", o.WorkflowID, o.Path)
	case o.Result != nil:
		b := o.Result.Batch
		line := fmt.Sprintf("ok   %s workflow=%s format=%s accepted=%d rejected=%d boxes=%d",
			o.Path, o.WorkflowID, b.Format, b.Accepted, b.Rejected, max(len(b.Boxes), b.BoxCount))
		if an := o.Result.Analysis; an != nil {
			line += fmt.Sprintf(" findings=%d new=%d", an.Findings, an.NewFindings)
			if len(an.FailedShards) > 0 {
				line += fmt.Sprintf(" failed_shards=%d", len(an.FailedShards)+an.MoreFailedShards)
			}
		}
		if o.Repeat || b.AlreadyStored {
			line += " (already ingested)"
		}
		fmt.Fprintln(w, line)
		for _, e := range b.Errors {
			fmt.Fprintf(w, "     rejected %s\n", e)
		}
		if an := o.Result.Analysis; an != nil {
			for _, e := range an.FailedShards {
				fmt.Fprintf(w, "     failed shard %s\n", e)
			}
			if an.MoreFailedShards > 0 {
				fmt.Fprintf(w, "     and %d more failed shards\n", an.MoreFailedShards)
			}
			for _, e := range an.DispatchErrors {
				fmt.Fprintf(w, "     remediation hand-off failed: %s\n", e)
			}
			if an.MoreDispatchErrors > 0 {
				fmt.Fprintf(w, "     and %d more hand-off failures\n", an.MoreDispatchErrors)
			}
		}
		if len(b.UnknownBoxes) > 0 {
			more := ""
			if n := b.UnknownBoxCount - len(b.UnknownBoxes); n > 0 {
				more = fmt.Sprintf(" and %d more", n)
			}
			fmt.Fprintf(w, "     warning: boxes not in the inventory (samples kept): %s%s\n", strings.Join(b.UnknownBoxes, ", "), more)
		}
	}
}
