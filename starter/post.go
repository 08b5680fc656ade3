package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"

	"github.com/sanwatch/sanwatch/internal/pemfile"
	"github.com/sanwatch/sanwatch/internal/telemetry"
)

// postOptions are the flags of `starter post`.
type postOptions struct {
	url        string
	tokenFile  string
	tokensDir  string
	caFile     string
	certFile   string
	keyFile    string
	parallel   int
	every      time.Duration
	retryFor   time.Duration
	asJSON     bool
	timeout    time.Duration
	wait       time.Duration
	tokenByBox map[string]string
}

// postReceipt is the receiver's answer to a post, and what `starter post`
// reports per file.
type postReceipt struct {
	File       string `json:"file"`
	Box        string `json:"box,omitempty"`
	HTTPStatus int    `json:"http_status,omitempty"`
	BatchID    string `json:"batch_id,omitempty"`
	WorkflowID string `json:"workflow_id,omitempty"`
	Status     string `json:"status,omitempty"`
	Duplicate  bool   `json:"duplicate,omitempty"`
	Error      string `json:"error,omitempty"`
	Attempts   int    `json:"attempts,omitempty"`
	// Final is the batch's status once ingested (stored, quarantined,
	// failed), with --wait.
	Final string `json:"final,omitempty"`
}

func (c *cli) postCmd() *cobra.Command {
	var o postOptions
	cmd := &cobra.Command{
		Use:   "post FILE|DIR...",
		Short: "Post telemetry batches to a receiver over HTTP(S), as a box that calls home does",
		Long: `post sends each batch file to the receiver's POST /v1/telemetry, authenticated as its box:
with a bearer token (--token-file, or the SANWATCH_TOKEN environment variable, for one box; or
--tokens-dir with one <box>.token file per box, the box being read from the file's samples), or
with a client certificate (--cert-file, --key-file). 429 and 503 answers are retried after their
Retry-After for up to --retry-for. With --every, each box posts one file per interval, in name
order, as a box reporting in near-real time does. Tokens never go on the command line.`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if o.parallel < 1 {
				return fmt.Errorf("--parallel %d: must be at least 1", o.parallel)
			}
			files, err := expandBatches(args)
			if err != nil {
				return err
			}
			hc, err := o.httpClient()
			if err != nil {
				return err
			}
			tokens, err := o.loadTokens()
			if err != nil {
				return err
			}
			o.tokenByBox = tokens
			outs := c.postAll(cmd.Context(), hc, o, files)
			if o.wait > 0 {
				c.waitIngested(cmd.Context(), hc, o, outs)
			}
			return c.reportPosts(outs, o.asJSON)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.url, "url", "", "receiver base URL (default https://<receiver.addr> with receiver.cert_file, else http://)")
	f.StringVar(&o.tokenFile, "token-file", "", "file holding one box's bearer token")
	f.StringVar(&o.tokensDir, "tokens-dir", "", "directory of <box>.token files, one per box")
	f.StringVar(&o.caFile, "ca-file", "", "CA bundle that verifies the receiver's certificate (default: system roots)")
	f.StringVar(&o.certFile, "cert-file", "", "client certificate (mTLS), with --key-file")
	f.StringVar(&o.keyFile, "key-file", "", "client certificate's key")
	f.IntVar(&o.parallel, "parallel", 8, "posts in flight at once")
	f.DurationVar(&o.every, "every", 0, "post one file per box per interval (0: all at once)")
	f.DurationVar(&o.retryFor, "retry-for", 2*time.Minute, "retry 429/503 answers and connection errors for this long")
	f.DurationVar(&o.timeout, "timeout", time.Minute, "timeout of one post")
	f.BoolVar(&o.asJSON, "json", false, "print one JSON object per file")
	f.DurationVar(&o.wait, "wait", 0, "then wait up to this long for every accepted batch to be ingested and analysed (GET /v1/batches/{id})")
	return cmd
}

// httpClient builds the client: TLS verified against --ca-file, with the
// client certificate when given.
func (o *postOptions) httpClient() (*http.Client, error) {
	tc := &tls.Config{MinVersion: tls.VersionTLS12}
	if o.caFile != "" {
		pool, err := pemfile.CertPool(o.caFile)
		if err != nil {
			return nil, fmt.Errorf("--ca-file: %w", err)
		}
		tc.RootCAs = pool
	}
	if (o.certFile == "") != (o.keyFile == "") {
		return nil, errors.New("--cert-file and --key-file go together")
	}
	if o.certFile != "" {
		cert, err := tls.LoadX509KeyPair(o.certFile, o.keyFile)
		if err != nil {
			return nil, fmt.Errorf("load client certificate %s: %w", o.certFile, err)
		}
		tc.Certificates = []tls.Certificate{cert}
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = tc
	tr.MaxIdleConnsPerHost = o.parallel
	return &http.Client{Transport: tr, Timeout: o.timeout}, nil
}

// loadTokens reads the tokens: one for every box from --token-file or
// SANWATCH_TOKEN (key ""), or one per box from --tokens-dir.
func (o *postOptions) loadTokens() (map[string]string, error) {
	out := map[string]string{}
	switch {
	case o.tokenFile != "":
		b, err := os.ReadFile(o.tokenFile)
		if err != nil {
			return nil, fmt.Errorf("--token-file: %w", err)
		}
		out[""] = strings.TrimSpace(string(b))
	case o.tokensDir != "":
		entries, err := os.ReadDir(o.tokensDir)
		if err != nil {
			return nil, fmt.Errorf("--tokens-dir: %w", err)
		}
		for _, e := range entries {
			box, ok := strings.CutSuffix(e.Name(), ".token")
			if !ok || e.IsDir() {
				continue
			}
			b, err := os.ReadFile(filepath.Join(o.tokensDir, e.Name()))
			if err != nil {
				return nil, fmt.Errorf("--tokens-dir: %w", err)
			}
			out[box] = strings.TrimSpace(string(b))
		}
		if len(out) == 0 {
			return nil, fmt.Errorf("--tokens-dir %s: no <box>.token files in it", o.tokensDir)
		}
	case os.Getenv("SANWATCH_TOKEN") != "":
		out[""] = strings.TrimSpace(os.Getenv("SANWATCH_TOKEN"))
	case o.certFile == "":
		return nil, errors.New("no credentials: give --token-file, --tokens-dir, SANWATCH_TOKEN or --cert-file")
	}
	return out, nil
}

// postAll posts the files: grouped by box and spaced by --every when set,
// else all at once, --parallel at a time. Outcomes are in file order.
func (c *cli) postAll(ctx context.Context, hc *http.Client, o postOptions, files []string) []postReceipt {
	base := strings.TrimSuffix(o.url, "/")
	if base == "" {
		base = c.receiverURL()
	}
	outs := make([]postReceipt, len(files))
	boxOf := make([]string, len(files))
	for i, f := range files {
		outs[i].File = f
		box, err := batchBox(f)
		if err != nil {
			outs[i].Error = err.Error()
			continue
		}
		boxOf[i], outs[i].Box = box, box
	}
	// Files of one box go in order, one per --every; boxes go in parallel.
	byBox := map[string][]int{}
	var order []string
	for i := range files {
		if outs[i].Error != "" {
			continue
		}
		if _, ok := byBox[boxOf[i]]; !ok {
			order = append(order, boxOf[i])
		}
		byBox[boxOf[i]] = append(byBox[boxOf[i]], i)
	}
	sem := make(chan struct{}, o.parallel)
	var wg sync.WaitGroup
	for _, box := range order {
		wg.Go(func() {
			for k, i := range byBox[box] {
				if k > 0 && o.every > 0 {
					select {
					case <-ctx.Done():
						outs[i].Error = ctx.Err().Error()
						continue
					case <-time.After(o.every):
					}
				}
				sem <- struct{}{}
				outs[i] = postOne(ctx, hc, o, base, files[i], box)
				<-sem
			}
		})
	}
	wg.Wait()
	return outs
}

// receiverURL is the configured receiver's base URL: https when it has a
// certificate (receiver.cert_file), else http.
func (c *cli) receiverURL() string {
	if c.cfg.Receiver.CertFile != "" {
		return "https://" + c.cfg.Receiver.Addr
	}
	return "http://" + c.cfg.Receiver.Addr
}

// batchBox returns the one box a batch file's samples belong to.
func batchBox(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("open batch: %w", err)
	}
	defer f.Close()
	res, err := telemetry.Parse(f, telemetry.Options{Name: filepath.Base(path), Now: time.Now()}, func([]telemetry.Sample) error { return nil })
	if err != nil {
		return "", err
	}
	switch len(res.Boxes) {
	case 0:
		return "", fmt.Errorf("%s: no valid samples", path)
	case 1:
		return res.Boxes[0], nil
	default:
		return "", fmt.Errorf("%s: samples of %d boxes (%s, ...): a box posts only its own", path, len(res.Boxes), res.Boxes[0])
	}
}

// postOne posts one file, retrying 429, 503 and connection errors.
func postOne(ctx context.Context, hc *http.Client, o postOptions, base, path, box string) postReceipt {
	out := postReceipt{File: path, Box: box}
	body, err := os.ReadFile(path)
	if err != nil {
		out.Error = fmt.Sprintf("read batch: %v", err)
		return out
	}
	token := o.tokenByBox[box]
	if token == "" {
		token = o.tokenByBox[""]
	}
	if token == "" && o.certFile == "" {
		out.Error = fmt.Sprintf("no token for box %s in --tokens-dir", box)
		return out
	}
	deadline := time.Now().Add(o.retryFor)
	for {
		out.Attempts++
		wait, err := tryPost(ctx, hc, base, token, path, body, &out)
		if err == nil {
			out.Error = ""
			return out
		}
		out.Error = err.Error()
		if wait < 0 || time.Now().Add(wait).After(deadline) {
			return out
		}
		select {
		case <-ctx.Done():
			out.Error = ctx.Err().Error()
			return out
		case <-time.After(wait):
		}
	}
}

// tryPost makes one attempt. It returns how long to wait before the next
// one, or -1 when retrying cannot help.
func tryPost(ctx context.Context, hc *http.Client, base, token, path string, body []byte, out *postReceipt) (time.Duration, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+"/v1/telemetry", bytes.NewReader(body))
	if err != nil {
		return -1, fmt.Errorf("post: %w", err)
	}
	ctype := "text/csv"
	if strings.Contains(path, ".jsonl") || strings.Contains(path, ".ndjson") {
		ctype = "application/x-ndjson"
	}
	req.Header.Set("Content-Type", ctype)
	if strings.HasSuffix(path, ".gz") {
		req.Header.Set("Content-Encoding", "gzip")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := hc.Do(req)
	if err != nil {
		return 2 * time.Second, fmt.Errorf("post: %w", err)
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	out.HTTPStatus = resp.StatusCode
	if resp.StatusCode == http.StatusAccepted {
		if err := json.Unmarshal(msg, out); err != nil {
			return -1, fmt.Errorf("receiver answered 202 with %q: %w", clip(msg), err)
		}
		return 0, nil
	}
	err = fmt.Errorf("receiver answered %s: %s", resp.Status, clip(msg))
	if resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode == http.StatusServiceUnavailable {
		wait := time.Second
		if s, perr := strconv.Atoi(resp.Header.Get("Retry-After")); perr == nil && s >= 0 {
			wait = time.Duration(s) * time.Second
		}
		return wait, err
	}
	return -1, err
}

// batchState is the part of GET /v1/batches/{id} that --wait reads.
type batchState struct {
	Status   string `json:"status"`
	Workflow string `json:"workflow"`
}

// waitIngested polls the status of every accepted batch until its ingest
// workflow has ended (analysis included) or --wait runs out; a batch that
// did not end as stored gets an error.
func (c *cli) waitIngested(ctx context.Context, hc *http.Client, o postOptions, outs []postReceipt) {
	base := strings.TrimSuffix(o.url, "/")
	if base == "" {
		base = c.receiverURL()
	}
	deadline := time.Now().Add(o.wait)
	for i := range outs {
		out := &outs[i]
		if out.Error != "" || out.BatchID == "" {
			continue
		}
		token := o.tokenByBox[out.Box]
		if token == "" {
			token = o.tokenByBox[""]
		}
		for {
			st, err := getBatch(ctx, hc, base, token, out.BatchID)
			if err == nil && st.Status != "queued" && st.Status != "started" && st.Workflow != "Running" {
				out.Final = st.Status
				if st.Status != "stored" || (st.Workflow != "" && st.Workflow != "Completed") {
					out.Error = fmt.Sprintf("batch %.16s ended %s (workflow %s)", out.BatchID, st.Status, st.Workflow)
				}
				break
			}
			if time.Now().After(deadline) {
				out.Error = fmt.Sprintf("batch %.16s not ingested within --wait %s (status %s, workflow %s)", out.BatchID, o.wait, st.Status, st.Workflow)
				if err != nil {
					out.Error = fmt.Sprintf("batch %.16s: status unknown after --wait %s: %v", out.BatchID, o.wait, err)
				}
				break
			}
			select {
			case <-ctx.Done():
				out.Error = ctx.Err().Error()
				return
			case <-time.After(500 * time.Millisecond):
			}
		}
	}
}

// getBatch reads GET /v1/batches/{id}.
func getBatch(ctx context.Context, hc *http.Client, base, token, id string) (batchState, error) {
	var st batchState
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/v1/batches/"+id, nil)
	if err != nil {
		return st, err
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := hc.Do(req)
	if err != nil {
		return st, fmt.Errorf("get batch status: %w", err)
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode != http.StatusOK {
		return st, fmt.Errorf("get batch status: %s: %s", resp.Status, clip(msg))
	}
	if err := json.Unmarshal(msg, &st); err != nil {
		return st, fmt.Errorf("get batch status: %w", err)
	}
	return st, nil
}

// clip shortens an answer body for an error message.
func clip(b []byte) string {
	s := strings.TrimSpace(string(b))
	if len(s) > 300 {
		s = s[:300] + "..."
	}
	return s
}

func (c *cli) reportPosts(outs []postReceipt, asJSON bool) error {
	var failed, dup int
	enc := json.NewEncoder(c.stdout)
	for _, o := range outs {
		if o.Error != "" {
			failed++
		}
		if o.Duplicate {
			dup++
		}
		if asJSON {
			if err := enc.Encode(o); err != nil {
				return err
			}
			continue
		}
		if o.Error != "" {
			fmt.Fprintf(c.stdout, "FAIL %s: %s\n", o.File, o.Error)
			continue
		}
		line := fmt.Sprintf("ok   %s box=%s batch=%.16s workflow=%s status=%s", o.File, o.Box, o.BatchID, o.WorkflowID, o.Status)
		if o.Final != "" {
			line += " then " + o.Final
		}
		if o.Duplicate {
			line += " (already received)"
		}
		fmt.Fprintln(c.stdout, line)
	}
	if !asJSON {
		fmt.Fprintf(c.stdout, "post: files=%d ok=%d failed=%d duplicates=%d\n", len(outs), len(outs)-failed, failed, dup)
	}
	if failed > 0 {
		return fmt.Errorf("%d of %d posts failed", failed, len(outs))
	}
	return nil
}
