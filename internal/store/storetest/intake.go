package storetest

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/sanwatch/sanwatch/internal/store"
)

// intakeStore returns s as an IntakeStore: every store the suite runs keeps
// the receiver's tokens and intake.
func intakeStore(t *testing.T, s store.Store) store.IntakeStore {
	t.Helper()
	is, err := store.AsIntakeStore(s)
	require.NoError(t, err)
	return is
}

func testTokens(t *testing.T, s store.Store) {
	ctx := context.Background()
	is := intakeStore(t, s)
	at := time.Date(2026, 11, 1, 10, 0, 0, 123, time.UTC)
	toks := []store.Token{
		{ID: "t1", Box: "b1", Hash: "h1", Label: "first", CreatedAt: at},
		{ID: "t2", Box: "b1", Hash: "h2", CreatedAt: at.Add(time.Minute), ExpiresAt: at.Add(time.Hour)},
		{ID: "t3", Box: "b2", Hash: "h3", CreatedAt: at},
	}
	for _, tok := range toks {
		require.NoError(t, is.PutToken(ctx, tok))
	}
	// Ids and hashes are unique.
	require.Error(t, is.PutToken(ctx, store.Token{ID: "t1", Box: "b9", Hash: "h9", CreatedAt: at}))
	require.Error(t, is.PutToken(ctx, store.Token{ID: "t9", Box: "b9", Hash: "h1", CreatedAt: at}))
	require.EqualError(t, is.PutToken(ctx, store.Token{ID: "t9", Box: "b9", CreatedAt: at}), "put token: id, box and hash are required")

	got, err := is.TokenByHash(ctx, "h2")
	require.NoError(t, err)
	require.Equal(t, toks[1], got)
	require.True(t, got.Valid(at.Add(59*time.Minute)))
	require.False(t, got.Valid(at.Add(time.Hour)), "expired")
	_, err = is.TokenByHash(ctx, "nope")
	require.ErrorIs(t, err, store.ErrNotFound)

	all, err := is.Tokens(ctx, "")
	require.NoError(t, err)
	require.Equal(t, toks, all)
	b1, err := is.Tokens(ctx, "b1")
	require.NoError(t, err)
	require.Equal(t, toks[:2], b1)
	none, err := is.Tokens(ctx, "b9")
	require.NoError(t, err)
	require.Empty(t, none)

	// Revoke one by id, then the rest of a box; revoking again changes nothing.
	n, err := is.RevokeTokens(ctx, "", "t2", at.Add(2*time.Minute))
	require.NoError(t, err)
	require.Equal(t, 1, n)
	n, err = is.RevokeTokens(ctx, "b1", "", at.Add(3*time.Minute))
	require.NoError(t, err)
	require.Equal(t, 1, n, "t1 only: t2 is revoked already")
	n, err = is.RevokeTokens(ctx, "b1", "", at.Add(4*time.Minute))
	require.NoError(t, err)
	require.Zero(t, n)
	t2, err := is.TokenByHash(ctx, "h2")
	require.NoError(t, err)
	require.Equal(t, at.Add(2*time.Minute), t2.RevokedAt, "the first revocation stands")
	require.False(t, t2.Valid(at))
	t1, err := is.TokenByHash(ctx, "h1")
	require.NoError(t, err)
	require.Equal(t, at.Add(3*time.Minute), t1.RevokedAt)
	t3, err := is.TokenByHash(ctx, "h3")
	require.NoError(t, err)
	require.True(t, t3.Valid(at.AddDate(10, 0, 0)), "another box's token is untouched and never expires")

	_, err = is.RevokeTokens(ctx, "b1", "t1", at)
	require.EqualError(t, err, "revoke tokens: give a box or a token id, not both")
	_, err = is.RevokeTokens(ctx, "", "", at)
	require.EqualError(t, err, "revoke tokens: give a box or a token id, not both")
}

func testIntake(t *testing.T, s store.Store) {
	ctx := context.Background()
	is := intakeStore(t, s)
	at := time.Date(2026, 11, 1, 10, 0, 0, 123, time.UTC)
	in := func(id string, received time.Time) store.Intake {
		return store.Intake{BatchID: id, Box: "b1", Blob: "batches/" + id, Size: 42, Source: store.SourceHTTP,
			SourceName: "127.0.0.1:5000", ReceivedAt: received, WorkflowID: "ingest-" + id}
	}
	// Recorded out of order; pending comes oldest first.
	for _, x := range []store.Intake{in("c", at.Add(2*time.Second)), in("a", at), in("b", at.Add(time.Second))} {
		created, err := is.RecordIntake(ctx, x)
		require.NoError(t, err)
		require.True(t, created)
	}
	// A repeat keeps the first record.
	again := in("a", at.Add(time.Hour))
	again.Box = "other"
	created, err := is.RecordIntake(ctx, again)
	require.NoError(t, err)
	require.False(t, created)
	got, err := is.Intake(ctx, "a")
	require.NoError(t, err)
	require.Equal(t, in("a", at), got)
	_, err = is.Intake(ctx, "zz")
	require.ErrorIs(t, err, store.ErrNotFound)
	queued := in("q", at.Add(3*time.Second))
	queued.Attempts, queued.LastError = 1, strings.Repeat("y", 2000)
	created, err = is.RecordIntake(ctx, queued)
	require.NoError(t, err)
	require.True(t, created)
	got, err = is.Intake(ctx, "q")
	require.NoError(t, err)
	require.Equal(t, 1, got.Attempts)
	require.Equal(t, strings.Repeat("y", 1024), got.LastError)
	_, err = is.RecordIntake(ctx, store.Intake{BatchID: "d", ReceivedAt: at})
	require.EqualError(t, err, "record intake: batch id, blob, workflow id and source are required")

	ids := func(ins []store.Intake) []string {
		var out []string
		for _, x := range ins {
			out = append(out, x.BatchID)
		}
		return out
	}
	started := in("s", at)
	started.StartedAt, started.Attempts = at.Add(time.Second), 1
	created, err = is.RecordIntake(ctx, started)
	require.NoError(t, err)
	require.True(t, created)
	got, err = is.Intake(ctx, "s")
	require.NoError(t, err)
	require.Equal(t, started, got, "recorded started: not pending")

	pending, err := is.PendingIntakes(ctx, 10)
	require.NoError(t, err)
	require.Equal(t, []string{"a", "b", "c", "q"}, ids(pending))
	pending, err = is.PendingIntakes(ctx, 2)
	require.NoError(t, err)
	require.Equal(t, []string{"a", "b"}, ids(pending))
	_, err = is.PendingIntakes(ctx, 0)
	require.Error(t, err)
	n, err := is.CountPendingIntakes(ctx)
	require.NoError(t, err)
	require.Equal(t, 4, n)

	// Failed attempts count and keep the last error (bounded); a start
	// clears it; nothing changes a started intake.
	require.NoError(t, is.MarkIntakeFailed(ctx, "a", "dial temporal: connection refused"))
	require.NoError(t, is.MarkIntakeFailed(ctx, "a", strings.Repeat("x", 5000)))
	got, err = is.Intake(ctx, "a")
	require.NoError(t, err)
	require.Equal(t, 2, got.Attempts)
	require.Equal(t, strings.Repeat("x", 1024), got.LastError)
	require.True(t, got.StartedAt.IsZero())
	require.NoError(t, is.MarkIntakeStarted(ctx, "a", at.Add(time.Minute)))
	require.NoError(t, is.MarkIntakeStarted(ctx, "a", at.Add(time.Hour)))
	require.NoError(t, is.MarkIntakeFailed(ctx, "a", "late"))
	got, err = is.Intake(ctx, "a")
	require.NoError(t, err)
	require.Equal(t, 3, got.Attempts)
	require.Empty(t, got.LastError)
	require.Equal(t, at.Add(time.Minute), got.StartedAt)
	require.ErrorIs(t, is.MarkIntakeStarted(ctx, "zz", at), store.ErrNotFound)
	require.ErrorIs(t, is.MarkIntakeFailed(ctx, "zz", "x"), store.ErrNotFound)

	pending, err = is.PendingIntakes(ctx, 10)
	require.NoError(t, err)
	require.Equal(t, []string{"b", "c", "q"}, ids(pending))
	n, err = is.CountPendingIntakes(ctx)
	require.NoError(t, err)
	require.Equal(t, 3, n)

	// Retention deletes started intakes only, in pages.
	require.NoError(t, is.MarkIntakeStarted(ctx, "b", at.Add(time.Minute)))
	d, err := is.DeleteIntakesBefore(ctx, at.Add(time.Hour), 1)
	require.NoError(t, err)
	require.Equal(t, 1, d)
	d, err = is.DeleteIntakesBefore(ctx, at.Add(time.Hour), 10)
	require.NoError(t, err)
	require.Equal(t, 2, d, "a, b and s are started: gone; c and q are pending: kept")
	for _, id := range []string{"a", "b", "s"} {
		_, err = is.Intake(ctx, id)
		require.ErrorIs(t, err, store.ErrNotFound, id)
	}
	for _, id := range []string{"c", "q"} {
		_, err = is.Intake(ctx, id)
		require.NoError(t, err, id)
	}
}

// testIntakeConcurrentRecord records the same batches from several
// goroutines at once, as receivers taking the same post twice do: each is
// created exactly once.
func testIntakeConcurrentRecord(t *testing.T, s store.Store) {
	ctx := context.Background()
	is := intakeStore(t, s)
	at := time.Date(2026, 11, 1, 10, 0, 0, 0, time.UTC)
	const batches, writers = 20, 6
	var mu sync.Mutex
	created := map[string]int{}
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range batches {
				id := fmt.Sprintf("batch-%02d", i)
				ok, err := is.RecordIntake(ctx, store.Intake{BatchID: id, Box: "b1", Blob: "batches/" + id,
					Source: store.SourceHTTP, ReceivedAt: at, WorkflowID: "ingest-" + id})
				if err != nil {
					errs <- err
					return
				}
				if ok {
					mu.Lock()
					created[id]++
					mu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	require.Len(t, created, batches)
	for id, n := range created {
		require.Equal(t, 1, n, id)
	}
}
