package e2e

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/sanwatch/sanwatch/internal/receiver"
	"github.com/sanwatch/sanwatch/internal/store"
)

// receiverYAML configures a receiver on addr that drains its outbox often.
func receiverYAML(addr string) string {
	return fmt.Sprintf(`receiver:
  addr: %s
  sweep_every: 200ms
  start_timeout: 2s
  box_rate: 1000
  box_burst: 1000
  max_body: 1048576
  max_inflated: 4194304
`, addr)
}

// startReceiver runs `starter receive` as a subprocess with extra args and
// waits until it answers /healthz.
func (h *harness) startReceiver(addr string, args ...string) *proc {
	h.t.Helper()
	p := h.startProc("starter", append([]string{"receive", "--config", h.cfgPath, "--set", "log.level=debug"}, args...), 40*time.Second)
	h.waitHealthy(p, addr)
	return p
}

// waitHealthy waits for the receiver p on addr to answer /healthz.
func (h *harness) waitHealthy(p *proc, addr string) {
	h.t.Helper()
	require.Eventually(h.t, func() bool {
		select {
		case <-p.done:
			h.t.Fatalf("receiver exited: %v\n%s", p.err, p.Output())
		default:
		}
		code, _ := get(h.t, "http://"+addr+"/healthz")
		return code == http.StatusOK
	}, 30*time.Second, 50*time.Millisecond)
}

// newToken makes a token for box with the starter and returns it: the one
// line of the output that is the token.
func (h *harness) newToken(box string, args ...string) string {
	h.t.Helper()
	out := h.starter(append([]string{"token", "create", "--box", box}, args...)...)
	tok := regexp.MustCompile(`(?m)^` + receiver.TokenPrefix + `[A-Za-z0-9_-]{43}$`).FindString(out)
	require.NotEmpty(h.t, tok, out)
	return tok
}

// postBatch posts body to the receiver at addr with token.
func postBatch(t *testing.T, addr, token string, body []byte) (int, receiver.Receipt, string) {
	t.Helper()
	code, rc, raw, err := tryPost(addr, token, body)
	require.NoError(t, err)
	return code, rc, raw
}

// tryPost is postBatch that returns the transport error (a dead receiver).
func tryPost(addr, token string, body []byte) (int, receiver.Receipt, string, error) {
	req, err := http.NewRequest(http.MethodPost, "http://"+addr+"/v1/telemetry", bytes.NewReader(body))
	if err != nil {
		return 0, receiver.Receipt{}, "", err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := (&http.Client{Timeout: 30 * time.Second}).Do(req)
	if err != nil {
		return 0, receiver.Receipt{}, "", err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, receiver.Receipt{}, "", err
	}
	var rc receiver.Receipt
	if resp.StatusCode == http.StatusAccepted {
		if err := json.Unmarshal(raw, &rc); err != nil {
			return 0, receiver.Receipt{}, string(raw), err
		}
	}
	return resp.StatusCode, rc, string(raw), nil
}

// batchStatus asks the receiver at addr for a batch's status.
func batchStatus(t *testing.T, addr, token, id string) (int, receiver.BatchStatus) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, "http://"+addr+"/v1/batches/"+id, nil)
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	var st receiver.BatchStatus
	if resp.StatusCode == http.StatusOK {
		require.NoError(t, json.NewDecoder(resp.Body).Decode(&st))
	}
	return resp.StatusCode, st
}

// boxBatch is a CSV batch of box: n minutes of two metrics from minute
// seq*n on, starting 30 days ago.
func boxBatch(box string, seq, n int) []byte {
	var b bytes.Buffer
	b.WriteString("time,box,component,metric,value\n")
	t0 := time.Now().UTC().Add(-30 * 24 * time.Hour).Truncate(time.Minute)
	for i := range n {
		at := t0.Add(time.Duration(seq*n+i) * time.Minute)
		fmt.Fprintf(&b, "%s,%s,pool/p0,pool.used_bytes,%d\n", at.Format(time.RFC3339), box, 1000+i)
		fmt.Fprintf(&b, "%s,%s,pool/p0,pool.total_bytes,100000\n", at.Format(time.RFC3339), box)
	}
	return b.Bytes()
}

// waitStored waits until the receiver reports the batch stored.
func waitStored(t *testing.T, addr, token, id string) receiver.BatchStatus {
	t.Helper()
	var st receiver.BatchStatus
	require.Eventually(t, func() bool {
		var code int
		code, st = batchStatus(t, addr, token, id)
		return code == http.StatusOK && st.Status == store.BatchStored
	}, 60*time.Second, 100*time.Millisecond, "batch %s never stored: last status %+v", id, st)
	return st
}

// TestReceiverIngestsPostedBatches runs the worker and `starter receive` as
// subprocesses, enrols a box with `starter token create`, posts a batch and
// follows it to stored; then refuses what it must, and a revoked token.
func TestReceiverIngestsPostedBatches(t *testing.T) {
	for _, driver := range []string{store.DriverSQLite, store.DriverPostgres} {
		t.Run(driver, func(t *testing.T) { testReceiverIngests(t, driver == store.DriverPostgres) })
	}
}

func testReceiverIngests(t *testing.T, postgres bool) {
	addr := freeAddr(t)
	h := newHarness(t, harnessOptions{extraYAML: receiverYAML(addr), postgres: postgres})
	h.startWorker("main,analysis,email")
	metricsAddr := freeAddr(t)
	rp := h.startReceiver(addr, "--metrics-addr", metricsAddr)
	tok := h.newToken("box-0001", "--label", "rack 4", "--expires", "720h")

	body := boxBatch("box-0001", 0, 30)
	code, rc, raw := postBatch(t, addr, tok, body)
	require.Equal(t, http.StatusAccepted, code, raw)
	require.Equal(t, receiver.StatusStarted, rc.Status)
	require.Len(t, rc.BatchID, 64)
	require.Equal(t, "ingest-"+rc.BatchID[:16], rc.WorkflowID)
	st := waitStored(t, addr, tok, rc.BatchID)
	require.EqualValues(t, 60, st.Batch.Accepted)
	// Stored, then analysed: the workflow completes.
	require.Eventually(t, func() bool {
		_, st = batchStatus(t, addr, tok, rc.BatchID)
		return st.Workflow == "Completed"
	}, 60*time.Second, 100*time.Millisecond, "workflow of the batch: %+v", st)

	// In the store: the batch, its samples, the intake started.
	s := h.openStore()
	b, err := s.Batch(context.Background(), rc.BatchID)
	require.NoError(t, err)
	require.Equal(t, store.BatchStored, b.Status)
	w, err := s.Window(context.Background(), "box-0001", time.Time{}, time.Now())
	require.NoError(t, err)
	require.Len(t, w, 60)

	// The same body again: the same ids, stored once.
	code, again, raw := postBatch(t, addr, tok, body)
	require.Equal(t, http.StatusAccepted, code, raw)
	require.True(t, again.Duplicate)
	require.Equal(t, rc.BatchID, again.BatchID)
	require.Equal(t, rc.WorkflowID, again.WorkflowID)

	// Refusals through the real binary.
	code, _, raw = postBatch(t, addr, tok, boxBatch("box-0002", 0, 5))
	require.Equal(t, http.StatusForbidden, code, raw)
	require.Contains(t, raw, "wrong box")
	code, _, raw = postBatch(t, addr, tok, []byte("\x89PNG\r\n\x1a\n\x00\x00"))
	require.Equal(t, http.StatusUnsupportedMediaType, code, raw)
	code, _, raw = postBatch(t, addr, tok, bytes.Repeat([]byte("x"), 2<<20))
	require.Equal(t, http.StatusRequestEntityTooLarge, code, raw)

	// token list shows the token but not it or its hash; revoked, it gets 401.
	list := h.starter("token", "list", "--box", "box-0001")
	require.Regexp(t, `(?m)^tok_[0-9a-f]{16}\s+box-0001\s+valid\s+.*rack 4$`, list)
	require.NotContains(t, list, tok)
	require.NotContains(t, list, receiver.HashToken(tok))
	require.Contains(t, h.starter("token", "revoke", "--box", "box-0001"), "revoked 1 token(s)")
	code, _, raw = postBatch(t, addr, tok, boxBatch("box-0001", 1, 5))
	require.Equal(t, http.StatusUnauthorized, code, raw)
	require.Contains(t, raw, "was revoked")

	// Its metrics count the answers.
	code, metrics := get(t, "http://"+metricsAddr+"/metrics")
	require.Equal(t, http.StatusOK, code)
	for _, want := range []string{
		`sanwatch_receiver_posts_total{code="202"} 2`, `sanwatch_receiver_posts_total{code="401"} 1`,
		`sanwatch_receiver_posts_total{code="403"} 1`, `sanwatch_receiver_posts_total{code="413"} 1`,
		`sanwatch_receiver_posts_total{code="415"} 1`, "sanwatch_receiver_accepted_samples_total 120",
		"sanwatch_receiver_outbox_pending 0",
	} {
		require.Contains(t, metrics, want)
	}

	// SIGTERM stops it cleanly; its log never held the token.
	require.NoError(t, rp.cmd.Process.Signal(syscall.SIGTERM))
	select {
	case <-rp.done:
	case <-time.After(40 * time.Second):
		t.Fatal("receiver did not stop within 40 s of SIGTERM")
	}
	require.NoError(t, rp.err, rp.Output())
	require.Contains(t, rp.Output(), "batch accepted")
	require.NotContains(t, rp.Output(), tok)
	require.NotContains(t, rp.Output(), receiver.TokenPrefix)
}

// tcpProxy forwards the connections it accepts to target: Temporal's
// frontend seen through an address that can be down and up again.
type tcpProxy struct {
	ln     net.Listener
	target string
	wg     sync.WaitGroup
	mu     sync.Mutex
	conns  []net.Conn
}

// startProxy listens on addr and forwards to target until closed.
func startProxy(t *testing.T, addr, target string) *tcpProxy {
	t.Helper()
	ln, err := net.Listen("tcp", addr)
	require.NoError(t, err)
	p := &tcpProxy{ln: ln, target: target}
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			u, err := net.Dial("tcp", target)
			if err != nil {
				_ = c.Close()
				continue
			}
			p.mu.Lock()
			p.conns = append(p.conns, c, u)
			p.mu.Unlock()
			go func() { _, _ = io.Copy(u, c); _ = u.Close() }()
			go func() { _, _ = io.Copy(c, u); _ = c.Close() }()
		}
	}()
	t.Cleanup(p.close)
	return p
}

func (p *tcpProxy) close() {
	_ = p.ln.Close()
	p.mu.Lock()
	for _, c := range p.conns {
		_ = c.Close()
	}
	p.mu.Unlock()
	p.wg.Wait()
}

// TestReceiverQueuesWhileTemporalIsDown points the receiver at a Temporal
// address where nothing listens: posts are still accepted (202 queued) and
// stored; once the address leads to Temporal, the outbox drain starts
// their workflows and the batches are ingested.
func TestReceiverQueuesWhileTemporalIsDown(t *testing.T) {
	addr, temporalAddr := freeAddr(t), freeAddr(t)
	h := newHarness(t, harnessOptions{extraYAML: receiverYAML(addr)})
	h.startWorker("main,analysis,email")
	h.startReceiver(addr, "--set", "temporal.address="+temporalAddr)
	tok := h.newToken("box-0001")

	var ids []string
	for i := range 3 {
		code, rc, raw := postBatch(t, addr, tok, boxBatch("box-0001", i, 10))
		require.Equal(t, http.StatusAccepted, code, raw)
		require.Equal(t, receiver.StatusQueued, rc.Status, "Temporal is down")
		ids = append(ids, rc.BatchID)
	}
	code, st := batchStatus(t, addr, tok, ids[0])
	require.Equal(t, http.StatusOK, code)
	require.Equal(t, receiver.BatchQueued, st.Status)
	require.NotEmpty(t, st.LastError)

	startProxy(t, temporalAddr, h.ts.GetFrontendHostPort())
	for _, id := range ids {
		st := waitStored(t, addr, tok, id)
		require.GreaterOrEqual(t, st.Attempts, 2)
		require.Empty(t, st.LastError)
	}
}

// TestReceiverKilledMidLoad posts batches from several boxes at once, kills
// the receiver with SIGKILL midway and restarts it: every batch that got a
// 202 is stored, and the boxes' retries of the rest are too.
func TestReceiverKilledMidLoad(t *testing.T) {
	addr := freeAddr(t)
	h := newHarness(t, harnessOptions{extraYAML: receiverYAML(addr)})
	h.startWorker("main,analysis,email")
	rp := h.startReceiver(addr)
	const boxes, perBox = 4, 12
	tokens := make([]string, boxes)
	for i := range tokens {
		tokens[i] = h.newToken(fmt.Sprintf("box-%04d", i))
	}

	var mu sync.Mutex
	accepted := map[string]bool{} // batch id, for every 202
	cut := 0                      // posts that got no answer (the receiver died under them)
	killAt := make(chan struct{})
	var once sync.Once
	var wg sync.WaitGroup
	for b := range boxes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			box := fmt.Sprintf("box-%04d", b)
			for i := range perBox {
				body := boxBatch(box, i, 2000)
				// A box retries until its batch is taken, as a real one does.
				for attempt := 0; ; attempt++ {
					code, rc, _, err := tryPost(addr, tokens[b], body)
					if err == nil && code == http.StatusAccepted {
						mu.Lock()
						accepted[rc.BatchID] = true
						if len(accepted) >= boxes*perBox/3 {
							once.Do(func() { close(killAt) })
						}
						mu.Unlock()
						break
					}
					if err != nil {
						mu.Lock()
						cut++
						mu.Unlock()
					}
					if attempt > 300 {
						t.Errorf("box %s batch %d: never accepted: %d %v", box, i, code, err)
						return
					}
					time.Sleep(100 * time.Millisecond)
				}
			}
		}()
	}
	posted := make(chan struct{})
	go func() { wg.Wait(); close(posted) }()
	select {
	case <-killAt:
	case <-posted:
		t.Fatal("every post ended before the kill")
	}
	rp.kill()
	<-rp.done
	mu.Lock()
	atKill := len(accepted)
	mu.Unlock()
	time.Sleep(500 * time.Millisecond)
	rp = h.startReceiver(addr)
	<-posted
	t.Logf("killed after %d of %d batches were accepted; %d posts got no answer and were retried", atKill, boxes*perBox, cut)
	require.Less(t, atKill, boxes*perBox, "the kill came midway")
	require.Len(t, accepted, boxes*perBox)
	require.Contains(t, rp.Output(), "receiver listening")

	// Every 202 ends up stored, its workflow started.
	s := h.openStore()
	is, err := store.AsIntakeStore(s)
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		for id := range accepted {
			b, err := s.Batch(context.Background(), id)
			if err != nil || b.Status != store.BatchStored {
				return false
			}
		}
		return true
	}, 90*time.Second, 200*time.Millisecond, "not every accepted batch was stored")
	for id := range accepted {
		rec, err := is.Intake(context.Background(), id)
		require.NoError(t, err)
		require.False(t, rec.StartedAt.IsZero(), "batch %s: workflow not marked started", id)
	}
	n, err := is.CountPendingIntakes(context.Background())
	require.NoError(t, err)
	require.Zero(t, n)
	stats, err := s.Stats(context.Background())
	require.NoError(t, err)
	require.Equal(t, boxes*perBox, stats.Batches, "as many batches stored as were accepted")
	require.EqualValues(t, boxes*perBox*2000*2, stats.Samples)
}

// TestReceiverDropDirectory runs `starter receive` with a drop directory:
// a batch renamed into place is ingested and moved to done/, a file that is
// not telemetry goes to quarantine/ with the reason.
func TestReceiverDropDirectory(t *testing.T) {
	addr := freeAddr(t)
	h := newHarnessWithDrop(t, addr)
	drop := filepath.Join(h.dir, "drop")
	h.startWorker("main,analysis,email")
	h.startReceiver(addr)

	// Two boxes in one file: a drop may carry any box.
	body := append(boxBatch("box-0001", 0, 10), bytes.TrimPrefix(boxBatch("box-0002", 0, 10), []byte("time,box,component,metric,value\n"))...)
	require.NoError(t, os.WriteFile(filepath.Join(drop, "fleet.csv.part"), body, 0o600))
	require.NoError(t, os.Rename(filepath.Join(drop, "fleet.csv.part"), filepath.Join(drop, "fleet.csv")))
	require.NoError(t, os.WriteFile(filepath.Join(drop, "notes.csv"), []byte("dear operator,\nplease\n"), 0o600))

	s := h.openStore()
	id := fmt.Sprintf("%x", sha256.Sum256(body))
	require.Eventually(t, func() bool {
		b, err := s.Batch(context.Background(), id)
		return err == nil && b.Status == store.BatchStored
	}, 60*time.Second, 100*time.Millisecond, "the dropped batch was never stored")
	is, err := store.AsIntakeStore(s)
	require.NoError(t, err)
	rec, err := is.Intake(context.Background(), id)
	require.NoError(t, err)
	require.Equal(t, store.SourceDrop, rec.Source)
	require.Empty(t, rec.Box)
	require.Eventually(t, func() bool {
		_, err := os.Stat(filepath.Join(drop, "done", "fleet.csv"))
		return err == nil
	}, 10*time.Second, 50*time.Millisecond, "fleet.csv not moved to done/")
	require.Eventually(t, func() bool {
		reason, err := os.ReadFile(filepath.Join(drop, "quarantine", "notes.csv.reason"))
		return err == nil && strings.Contains(string(reason), "unsupported format")
	}, 10*time.Second, 50*time.Millisecond, "notes.csv not quarantined with its reason")
}

// newHarnessWithDrop is a harness whose receiver on addr also watches
// <dir>/drop.
func newHarnessWithDrop(t *testing.T, addr string) *harness {
	t.Helper()
	// The drop directory must exist before the receiver starts; the
	// harness directory is made by newHarness, so the path is fixed after.
	h := newHarness(t, harnessOptions{extraYAML: receiverYAML(addr) + "  drop_quiet: 200ms\n"})
	drop := filepath.Join(h.dir, "drop")
	require.NoError(t, os.MkdirAll(drop, 0o750))
	cfg, err := os.ReadFile(h.cfgPath)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(h.cfgPath, append(cfg, []byte(fmt.Sprintf("  drop_dirs: [%s]\n", drop))...), 0o600))
	return h
}
