package activities

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/interceptor"
	"go.temporal.io/sdk/worker"

	"github.com/sanwatch/sanwatch/internal/finding"
	"github.com/sanwatch/sanwatch/internal/store"
)

// TestStoreBatchBoxesInStore stores a batch whose boxes are recorded in the
// store: the summary counts them and lists only a few unknown ones, and
// ListBoxes pages them by batch id. The old summary still lists them all.
func TestStoreBatchBoxesInStore(t *testing.T) {
	f := newFixture(t)
	var b strings.Builder
	b.WriteString("time,box,component,metric,value\n")
	var unknown []string
	for i := range 50 {
		box := fmt.Sprintf("box-%04d", i+1) // box-0001 and box-0002 are in the inventory
		if i >= 2 {
			unknown = append(unknown, box)
		}
		for j := range 3 {
			fmt.Fprintf(&b, "2026-11-01T00:0%d:00Z,%s,pool/p0,pool.used_bytes,%d\n", j, box, j)
		}
	}
	path := f.write(t, "many.csv", b.String())

	tests := []struct {
		name string
		in   StoreBatchInput
		want BatchSummary
	}{
		{"boxes in store", StoreBatchInput{Path: path, BoxesInStore: true}, BatchSummary{
			BoxCount: 50, UnknownBoxCount: 48, UnknownBoxes: unknown[:MaxListed]}},
		{"already stored, boxes in store", StoreBatchInput{Path: path, BoxesInStore: true}, BatchSummary{
			BoxCount: 50, UnknownBoxCount: 48, UnknownBoxes: unknown[:MaxListed], AlreadyStored: true}},
		{"already stored, listed for an old caller", StoreBatchInput{Path: path}, BatchSummary{
			Boxes: append([]string{"box-0001", "box-0002"}, unknown...), UnknownBoxes: unknown, AlreadyStored: true}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			val, err := f.env.ExecuteActivity(f.acts.StoreBatch, tc.in)
			require.NoError(t, err)
			var sum BatchSummary
			require.NoError(t, val.Get(&sum))
			require.Equal(t, int64(150), sum.Accepted)
			sum.BatchID, sum.Path, sum.Format, sum.Status, sum.Accepted = "", "", "", "", 0
			require.Equal(t, tc.want, sum)
		})
	}

	id, err := HashFile(path)
	require.NoError(t, err)
	var got []string
	for q := (ListBoxesInput{Batch: id, Limit: 16}); ; {
		val, err := f.env.ExecuteActivity(f.acts.ListBoxes, q)
		require.NoError(t, err)
		var page []string
		require.NoError(t, val.Get(&page))
		got = append(got, page...)
		if len(page) < q.Limit {
			break
		}
		q.After = page[len(page)-1]
	}
	require.Equal(t, append([]string{"box-0001", "box-0002"}, unknown...), got)
	n, err := f.acts.Store.CountBoxes(context.Background(), store.BoxQuery{})
	require.NoError(t, err)
	require.Equal(t, 50, n, "every box of the batch is known to the store")
}

// heartbeatCounter counts every activity.RecordHeartbeat call.
type heartbeatCounter struct {
	interceptor.WorkerInterceptorBase
	n atomic.Int64
}

func (c *heartbeatCounter) InterceptActivity(ctx context.Context, next interceptor.ActivityInboundInterceptor) interceptor.ActivityInboundInterceptor {
	return &heartbeatInbound{ActivityInboundInterceptorBase: interceptor.ActivityInboundInterceptorBase{Next: next}, c: c}
}

type heartbeatInbound struct {
	interceptor.ActivityInboundInterceptorBase
	c *heartbeatCounter
}

func (i *heartbeatInbound) Init(outbound interceptor.ActivityOutboundInterceptor) error {
	return i.Next.Init(&heartbeatOutbound{ActivityOutboundInterceptorBase: interceptor.ActivityOutboundInterceptorBase{Next: outbound}, c: i.c})
}

type heartbeatOutbound struct {
	interceptor.ActivityOutboundInterceptorBase
	c *heartbeatCounter
}

func (o *heartbeatOutbound) RecordHeartbeat(ctx context.Context, details ...any) {
	o.c.n.Add(1)
	o.Next.RecordHeartbeat(ctx, details...)
}

// TestStoreBatchHeartbeatsThroughBadLines stores mostly bad batches: the
// activity heartbeats on its progress through lines, good or bad, at most
// once per interval, not only on the chunks of good samples it stores.
func TestStoreBatchHeartbeatsThroughBadLines(t *testing.T) {
	const lines = 20_000
	tests := []struct {
		name     string
		every    time.Duration
		min, max int64
	}{
		{"every progress report", time.Nanosecond, lines / 1024, lines/1024 + 2},
		{"at most one per interval", time.Hour, 1, 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			f.acts.Ingest.HeartbeatEvery = tc.every
			counter := &heartbeatCounter{}
			f.env.SetWorkerOptions(worker.Options{Interceptors: []interceptor.WorkerInterceptor{counter}})
			var b strings.Builder
			b.WriteString("time,box,component,metric,value\n2026-11-01T00:00:00Z,box-0001,pool/p0,pool.used_bytes,1\n")
			for range lines {
				b.WriteString("2026-11-01T00:00:00Z,box-0001,pool/p0,pool.used_bytes,not-a-number\n")
			}
			_, err := f.env.ExecuteActivity(f.acts.StoreBatch, StoreBatchInput{Path: f.write(t, "bad.csv", b.String())})
			require.Equal(t, ErrTypeQuarantined, appErrType(err))
			got := counter.n.Load()
			require.GreaterOrEqual(t, got, tc.min)
			require.LessOrEqual(t, got, tc.max)
		})
	}
}

// TestAnalyzeShardCountsOnly analyses a shard that returns counts, not a
// reference per finding: the findings stay in the store.
func TestAnalyzeShardCountsOnly(t *testing.T) {
	f := newFixture(t)
	p := f.write(t, "b.csv", latencyCSV("box-0001"))
	_, err := f.env.ExecuteActivity(f.acts.StoreBatch, StoreBatchInput{Path: p})
	require.NoError(t, err)
	for i, want := range []ShardResult{
		{Analysed: 3, NoData: 2, FindingCount: 1, NewFindings: 1, BySeverity: map[string]int{string(finding.Warning): 1}},
		{Analysed: 3, NoData: 2, FindingCount: 1, BySeverity: map[string]int{string(finding.Warning): 1}},
	} {
		val, err := f.env.ExecuteActivity(f.acts.AnalyzeShard, AnalyzeShardInput{Boxes: []string{"box-0001", "box-0002", "box-9999"}, CountsOnly: true, Dispatch: true})
		require.NoError(t, err)
		var res ShardResult
		require.NoError(t, val.Get(&res))
		require.Equal(t, want, res, "run %d (no client: nothing handed off)", i)
	}
}
