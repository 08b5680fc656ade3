package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/sanwatch/sanwatch/internal/app"
	"github.com/sanwatch/sanwatch/internal/finding"
	"github.com/sanwatch/sanwatch/internal/fleet"
	"github.com/sanwatch/sanwatch/internal/receiver"
	"github.com/sanwatch/sanwatch/internal/store"
	"github.com/sanwatch/sanwatch/internal/telemetry"
)

// Shape of the receive load: each box posts one 5-minute batch (one point a
// minute of receivePoints series); every receiveFaultEvery-th box has a disk
// with reallocated sectors over the level, which is emailed about.
const (
	receivePoints     = 5
	receiveFaultEvery = 5
	receiveWait       = 5 * time.Minute
)

// receiveBox is the id of the i-th box of the receive load.
func receiveBox(i int) string { return fmt.Sprintf("rcv-%05d", i) }

// receiveBatch is box i's 5-minute batch ending at end, as CSV.
func receiveBatch(i int, end time.Time) []byte {
	var buf bytes.Buffer
	w := telemetry.NewWriter(&buf, telemetry.Format{Kind: telemetry.KindCSV})
	box := receiveBox(i)
	faulty := i%receiveFaultEvery == 0
	for p := range receivePoints {
		t := end.Add(-time.Duration(receivePoints-1-p) * time.Minute)
		add := func(comp, metric string, v float64) {
			_ = w.Write(telemetry.Sample{Time: t, Box: box, Component: comp, Metric: metric, Value: v})
		}
		add("pool/p0", telemetry.PoolUsedBytes, float64(int64(40+i%7)<<40))
		add("pool/p0", telemetry.PoolTotalBytes, float64(int64(100)<<40))
		for v := range 4 {
			add("volume/vol"+strconv.Itoa(v), telemetry.VolumeReadLatencyMs, 0.8+float64((i+p+v)%5)*0.05)
		}
		for d := range 8 {
			realloc := float64(d % 2)
			if faulty && d == 3 {
				realloc = 120
			}
			add("disk/"+strconv.Itoa(d), telemetry.DiskReallocatedSectors, realloc)
			add("disk/"+strconv.Itoa(d), telemetry.DiskTemperatureC, 34+float64(d%3))
		}
	}
	_ = w.Close()
	return buf.Bytes()
}

// receiveRun is what one load run measured.
type receiveRun struct {
	boxes, accepted, emailsWanted int
	postWall                      time.Duration
	post, toEmail                 []time.Duration // sorted
	stored, quarantined           int
}

// benchReceive measures the receiver under load, once per size in
// -receive-boxes: every box posts one 5-minute batch at the same moment
// to `starter receive`'s server, with the workers and Temporal in this
// process, a real SQLite store and batch store, and an SMTP sink.
func benchReceive(ctx context.Context, o options, rep *report) error {
	for _, n := range o.receiveBoxes {
		r, err := receiveLoad(ctx, o, n)
		if err != nil {
			return fmt.Errorf("receive %d boxes: %w", n, err)
		}
		label := fmt.Sprintf("receive %d boxes", n)
		rep.add(label+": batches accepted per second (all posted at once)", rate(int64(r.accepted), r.postWall, "batches"), "-", "-")
		rep.add(label+": POST answer p50", ms(percentile(r.post, 50)), "-", "-")
		rep.add(label+": POST answer p99", ms(percentile(r.post, 99)), "p50", ratio(float64(percentile(r.post, 99)), float64(percentile(r.post, 50))))
		rep.add(label+": posted -> email accepted p50", ms(percentile(r.toEmail, 50)), "-", "-")
		rep.add(label+": posted -> email accepted p99", ms(percentile(r.toEmail, 99)), "p50", ratio(float64(percentile(r.toEmail, 99)), float64(percentile(r.toEmail, 50))))
		rep.add(label+": batches stored / 202 answers", fmt.Sprintf("%d / %d", r.stored, r.accepted), "posted", fmt.Sprintf("%d", r.boxes))
		rep.note("%s: each box posts one 5-minute CSV batch (%d points of 22 series) over HTTP with its own bearer token, "+
			"all %d at the same moment; every %dth box has a disk with 120 reallocated sectors, emailed about (%d emails). "+
			"The receiver validates, hashes and stores each body (file:// batch store, SQLite intake) before its 202 and starts IngestTelemetry; "+
			"posted -> email runs from the start of the POST to the end of SMTP DATA of the email with the finding's fingerprint. "+
			"%d batches stored and %d quarantined of %d accepted; no batch lost.",
			label, receivePoints, n, receiveFaultEvery, r.emailsWanted, r.stored, r.quarantined, r.accepted)
	}
	return nil
}

func receiveLoad(ctx context.Context, o options, n int) (receiveRun, error) {
	r := receiveRun{boxes: n}
	dir, err := os.MkdirTemp("", "sanwatch-bench-receive-")
	if err != nil {
		return r, fmt.Errorf("create temp dir: %w", err)
	}
	defer os.RemoveAll(dir)
	sink, err := startMailSink()
	if err != nil {
		return r, err
	}
	defer sink.Close()

	boxes := make([]fleet.Box, n)
	for i := range boxes {
		boxes[i] = fleet.Box{ID: receiveBox(i), Model: "SW-7000", Firmware: "4.3.1", Site: "bench", Owners: []string{fmt.Sprintf("owner-%05d@example.com", i)}}
	}
	inv, err := fleet.New("bench", nil, boxes)
	if err != nil {
		return r, err
	}
	cfg := benchConfig("receive", dir)
	if err := fleet.Write(cfg.Inventory, inv); err != nil {
		return r, err
	}
	cfg.Batches.URL = "file://" + dir + "/batches"
	cfg.SMTP.Host, cfg.SMTP.Port, cfg.SMTP.From = "127.0.0.1", sink.port, "sanwatch@bench.test"
	cfg.SMTP.RatePerSecond = latencyRatePerSec
	cfg.SMTP.Timeout = 10 * time.Second
	cfg.Remediation.Enabled = true

	tp, err := startServer(ctx, o, o.sectionServer())
	if err != nil {
		return r, err
	}
	defer tp.stop()
	acts, err := app.NewActivities(ctx, cfg, tp.c, nil, quietLogger())
	if err != nil {
		return r, err
	}
	defer acts.Store.Close()
	stop, err := startWorkers(tp.c, cfg, acts)
	if err != nil {
		return r, err
	}
	defer stop()

	// The receiver, as `starter receive` assembles it, on a loopback port.
	intake, err := app.NewIntake(ctx, cfg, tp.c, acts.Store, quietLogger())
	if err != nil {
		return r, err
	}
	srv := receiver.NewServer(intake, app.ReceiverOptions(cfg))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return r, fmt.Errorf("listen: %w", err)
	}
	sctx, cancel := context.WithCancel(ctx)
	served := make(chan error, 1)
	go func() { served <- srv.Serve(sctx, ln) }()
	defer func() { cancel(); <-served }()
	base := "http://" + ln.Addr().String()

	tokens := make([]string, n)
	for i := range n {
		tok, rec, err := receiver.NewToken(receiveBox(i), "bench", 0, time.Now())
		if err != nil {
			return r, err
		}
		if err := acts.Store.(store.IntakeStore).PutToken(ctx, rec); err != nil {
			return r, fmt.Errorf("put token: %w", err)
		}
		tokens[i] = tok
	}
	end := time.Now().UTC().Truncate(time.Minute)
	bodies := make([][]byte, n)
	for i := range n {
		bodies[i] = receiveBatch(i, end)
	}

	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: n, MaxConnsPerHost: 0}, Timeout: 2 * time.Minute}
	post := make([]time.Duration, n)
	postedAt := make([]time.Time, n)
	ids := make([]string, n)
	errs := make([]error, n)
	startGate := make(chan struct{})
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			<-startGate
			postedAt[i] = time.Now()
			ids[i], errs[i] = postBatch(ctx, hc, base, tokens[i], bodies[i])
			post[i] = time.Since(postedAt[i])
		})
	}
	t0 := time.Now()
	close(startGate)
	wg.Wait()
	r.postWall = time.Since(t0)
	for i, err := range errs {
		if err != nil {
			return r, fmt.Errorf("box %s: %w", receiveBox(i), err)
		}
		r.accepted++
	}
	o.logf("receive %d: %d posts answered 202 in %s", n, r.accepted, r.postWall.Round(time.Millisecond))

	for i := 0; i < n; i += receiveFaultEvery {
		fp := finding.Fingerprint(receiveBox(i), finding.RuleDiskFailure, "disk/3")
		at, err := sink.wait(fp, receiveWait)
		if err != nil {
			return r, fmt.Errorf("box %s: %w", receiveBox(i), err)
		}
		r.toEmail = append(r.toEmail, at.Sub(postedAt[i]))
		r.emailsWanted++
	}
	// No batch lost: every 202 ends as a stored batch record.
	deadline := time.Now().Add(receiveWait)
	for {
		r.stored, r.quarantined = 0, 0
		for _, id := range ids {
			b, err := acts.Store.Batch(ctx, id)
			switch {
			case err == nil && b.Status == store.BatchStored:
				r.stored++
			case err == nil && b.Status == store.BatchQuarantined:
				r.quarantined++
			case err != nil && !errors.Is(err, store.ErrNotFound):
				return r, err
			}
		}
		if r.stored+r.quarantined == r.accepted || time.Now().After(deadline) {
			break
		}
		time.Sleep(time.Second)
	}
	if r.stored != r.accepted {
		return r, fmt.Errorf("%d of %d accepted batches stored (%d quarantined)", r.stored, r.accepted, r.quarantined)
	}
	r.post = post
	slices.Sort(r.post)
	slices.Sort(r.toEmail)
	return r, nil
}

// postBatch posts one body and returns the batch id of the 202 answer.
func postBatch(ctx context.Context, hc *http.Client, base, token string, body []byte) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+"/v1/telemetry", bytes.NewReader(body))
	if err != nil {
		return "", err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "text/csv")
	resp, err := hc.Do(req)
	if err != nil {
		return "", fmt.Errorf("post: %w", err)
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode != http.StatusAccepted {
		return "", fmt.Errorf("post: %s: %s", resp.Status, strings.TrimSpace(string(msg)))
	}
	var rc receiver.Receipt
	if err := json.Unmarshal(msg, &rc); err != nil {
		return "", fmt.Errorf("post: answer %q: %w", msg, err)
	}
	return rc.BatchID, nil
}
