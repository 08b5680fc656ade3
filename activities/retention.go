package activities

import (
	"context"
	"errors"
	"fmt"
	"path"
	"time"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"

	"github.com/sanwatch/sanwatch/internal/blobstore"
	"github.com/sanwatch/sanwatch/internal/store"
)

// ApplyRetentionInput is one call of ApplyRetention: delete samples older
// than Before, PageSize at a time, at most MaxPages pages; then, when
// BatchesBefore or QuarantineBefore is set, the batch objects last written
// before them, at most MaxObjects.
type ApplyRetentionInput struct {
	Before   time.Time `json:"before"`
	PageSize int       `json:"page_size"`
	MaxPages int       `json:"max_pages"`
	// SkipSamples is set once an earlier call reported SamplesDone: this
	// call only deletes objects.
	SkipSamples bool `json:"skip_samples,omitempty"`
	// BatchesBefore: objects under batches/ last written before it are
	// deleted (retention.batches); zero deletes none.
	BatchesBefore time.Time `json:"batches_before,omitzero"`
	// QuarantineBefore: objects under quarantine/ last written before it
	// are deleted (retention.quarantine); zero deletes none.
	QuarantineBefore time.Time `json:"quarantine_before,omitzero"`
	// MaxObjects bounds the objects one call deletes (0: 10000).
	MaxObjects int `json:"max_objects,omitempty"`
}

// ObjectsFreed counts the batch store objects retention deleted and their bytes.
type ObjectsFreed struct {
	BatchesDeleted    int64 `json:"batches_deleted,omitempty"`
	BatchBytes        int64 `json:"batch_bytes,omitempty"`
	QuarantineDeleted int64 `json:"quarantine_deleted,omitempty"`
	QuarantineBytes   int64 `json:"quarantine_bytes,omitempty"`
	// IntakesDeleted counts the receiver's intake records (accepted
	// batches whose workflow started) older than the batch cutoff.
	IntakesDeleted int64 `json:"intakes_deleted,omitempty"`
}

// Add adds o's counts to f.
func (f *ObjectsFreed) Add(o ObjectsFreed) {
	f.BatchesDeleted += o.BatchesDeleted
	f.BatchBytes += o.BatchBytes
	f.QuarantineDeleted += o.QuarantineDeleted
	f.QuarantineBytes += o.QuarantineBytes
	f.IntakesDeleted += o.IntakesDeleted
}

// ApplyRetentionResult says what one call of ApplyRetention freed.
type ApplyRetentionResult struct {
	SamplesDeleted int64 `json:"samples_deleted"`
	// DaysSealed counts the series-days merged into one chunk each
	// (store.Sealer), after the deletes.
	DaysSealed int64 `json:"days_sealed,omitempty"`
	Pages      int   `json:"pages"`
	// Done is true when nothing older than the cutoffs is left; the store
	// has then given the space back (Compact).
	Done bool `json:"done"`
	// SamplesDone is true once no sample older than Before is left (and
	// the store compacted), though objects may remain.
	SamplesDone bool `json:"samples_done,omitempty"`
	ObjectsFreed
}

// queued reports whether the batch with this id is still in the receiver's
// outbox (accepted, its workflow not started): its object must stay,
// whatever its age. An error reading the intake counts as queued.
func (a *Activities) queued(ctx context.Context, id string) bool {
	is, ok := a.Store.(store.IntakeStore)
	if !ok {
		return false
	}
	in, err := is.Intake(ctx, id)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return false
	case err != nil:
		return true
	}
	return in.StartedAt.IsZero()
}

// SealGrace is how long after a UTC day ends its samples are sealed: late
// posts of the day before within it still land in rows, not in a second
// chunk of a sealed day (which a later run would merge anyway).
const SealGrace = time.Hour

// sealSeriesPerPage is how many series one SealSamples call seals, in one
// transaction: a day of each at 5-minute samples is about 150,000 samples.
const sealSeriesPerPage = 500

// defaultMaxObjects is how many objects one ApplyRetention call deletes at most.
const defaultMaxObjects = 10000

// ApplyRetention deletes samples older than in.Before, page by page, with a
// heartbeat after each page, until a page comes back short; on a store that
// keeps chunks (store.Sealer) it then seals the closed days, a page at a
// time; then it compacts the store. At most MaxPages pages either way. Then it deletes the
// batch and quarantined objects older than their cutoffs (by the time the
// store reports they were written), heartbeating, until none is left (Done)
// or MaxObjects are deleted. Running it again is harmless: what is gone
// stays gone.
func (a *Activities) ApplyRetention(ctx context.Context, in ApplyRetentionInput) (ApplyRetentionResult, error) {
	var res ApplyRetentionResult
	if in.PageSize < 1 || in.MaxPages < 1 || in.Before.IsZero() {
		return res, temporal.NewNonRetryableApplicationError(
			fmt.Sprintf("apply retention: page size %d, max pages %d, before %s: want positive sizes and a time",
				in.PageSize, in.MaxPages, in.Before.Format(time.RFC3339)), ErrTypeInvalidInput, nil)
	}
	hb := newHeartbeater(ctx, 0)
	if in.SkipSamples {
		res.SamplesDone = true
	}
	deleted := false
	sealer, seals := a.Store.(store.Sealer)
	var sealAfter int64 // the series cursor; a new call starts over, finding what is left
	for !res.SamplesDone && res.Pages < in.MaxPages {
		if !deleted {
			n, err := a.Store.DeleteSamplesBefore(ctx, in.Before, in.PageSize)
			if err != nil {
				return res, fmt.Errorf("apply retention: page %d: %w", res.Pages+1, err)
			}
			res.Pages++
			res.SamplesDeleted += int64(n)
			hb.beat("samples deleted", int(res.SamplesDeleted))
			if deleted = n < in.PageSize; !deleted {
				continue
			}
		}
		// Then the closed days still in rows or in several chunks are
		// sealed into one chunk each (a page is sealSeriesPerPage series;
		// the first may follow the last delete page in one turn).
		if seals {
			var r store.SealResult
			err := hb.during("sealing", func() error {
				var err error
				r, err = sealer.SealSamples(ctx, a.now().Add(-SealGrace), sealAfter, sealSeriesPerPage)
				return err
			})
			if err != nil {
				return res, fmt.Errorf("apply retention: page %d: %w", res.Pages+1, err)
			}
			res.Pages++
			res.DaysSealed += int64(r.Days)
			for _, c := range r.Corrupt {
				activity.GetLogger(ctx).Warn("a series-day is left unsealed: a chunk of it cannot be decoded", "where", c)
			}
			hb.beat("series-days sealed", int(res.DaysSealed))
			if sealAfter = r.Next; r.More {
				continue
			}
		}
		if err := hb.during("compacting", func() error { return a.Store.Compact(ctx) }); err != nil {
			return res, fmt.Errorf("apply retention: %w", err)
		}
		res.SamplesDone = true
	}
	if !res.SamplesDone {
		return res, nil
	}
	if in.BatchesBefore.IsZero() && in.QuarantineBefore.IsZero() {
		res.Done = true
		return res, nil
	}
	if a.Batches == nil {
		// Retryable: a worker with a batch store can take it.
		return res, fmt.Errorf("apply retention: this worker has no batch store (batches.url)")
	}
	left := in.MaxObjects
	if left <= 0 {
		left = defaultMaxObjects
	}
	for _, p := range []struct {
		prefix string
		before time.Time
		count  *int64
		bytes  *int64
	}{
		{blobstore.BatchPrefix, in.BatchesBefore, &res.BatchesDeleted, &res.BatchBytes},
		{blobstore.QuarantinePrefix, in.QuarantineBefore, &res.QuarantineDeleted, &res.QuarantineBytes},
	} {
		if p.before.IsZero() {
			continue
		}
		err := a.Batches.List(ctx, p.prefix, func(o blobstore.Object) (bool, error) {
			if !o.ModTime.Before(p.before) {
				return false, nil
			}
			if p.prefix == blobstore.BatchPrefix && a.queued(ctx, path.Base(o.Key)) {
				return false, nil // its workflow has yet to read it
			}
			if left == 0 {
				return true, nil // more to delete: the next call goes on
			}
			if err := a.Batches.Delete(ctx, o.Key); err != nil {
				return true, err
			}
			left--
			*p.count++
			*p.bytes += o.Size
			hb.beat("objects deleted", int(res.BatchesDeleted+res.QuarantineDeleted))
			return false, nil
		})
		if err != nil {
			return res, fmt.Errorf("apply retention: %w", err)
		}
		if left == 0 {
			return res, nil
		}
	}
	// The receiver's records of accepted batches go with their objects;
	// one still waiting in the outbox is kept whatever its age.
	if is, ok := a.Store.(store.IntakeStore); ok && !in.BatchesBefore.IsZero() {
		for left > 0 {
			n, err := is.DeleteIntakesBefore(ctx, in.BatchesBefore, min(left, 1000))
			if err != nil {
				return res, fmt.Errorf("apply retention: intakes: %w", err)
			}
			left -= n
			res.IntakesDeleted += int64(n)
			hb.beat("intakes deleted", int(res.IntakesDeleted))
			if n < min(left+n, 1000) {
				break
			}
		}
		if left == 0 {
			return res, nil
		}
	}
	res.Done = true
	return res, nil
}
