package activities

import (
	"context"
	"fmt"
	"time"

	"go.temporal.io/sdk/temporal"
)

// ApplyRetentionInput is one call of ApplyRetention: delete samples older
// than Before, PageSize at a time, at most MaxPages pages.
type ApplyRetentionInput struct {
	Before   time.Time `json:"before"`
	PageSize int       `json:"page_size"`
	MaxPages int       `json:"max_pages"`
}

// ApplyRetentionResult says what one call of ApplyRetention freed.
type ApplyRetentionResult struct {
	SamplesDeleted int64 `json:"samples_deleted"`
	Pages          int   `json:"pages"`
	// Done is true when nothing older than Before is left; the store has
	// then given the space back (Compact).
	Done bool `json:"done"`
}

// ApplyRetention deletes samples older than in.Before, page by page, with a
// heartbeat after each page, until a page comes back short (then it
// compacts the store and reports Done) or MaxPages pages are deleted.
// Running it again is harmless: what is gone stays gone.
func (a *Activities) ApplyRetention(ctx context.Context, in ApplyRetentionInput) (ApplyRetentionResult, error) {
	var res ApplyRetentionResult
	if in.PageSize < 1 || in.MaxPages < 1 || in.Before.IsZero() {
		return res, temporal.NewNonRetryableApplicationError(
			fmt.Sprintf("apply retention: page size %d, max pages %d, before %s: want positive sizes and a time",
				in.PageSize, in.MaxPages, in.Before.Format(time.RFC3339)), ErrTypeInvalidInput, nil)
	}
	hb := newHeartbeater(ctx, 0)
	for res.Pages < in.MaxPages {
		n, err := a.Store.DeleteSamplesBefore(ctx, in.Before, in.PageSize)
		if err != nil {
			return res, fmt.Errorf("apply retention: page %d: %w", res.Pages+1, err)
		}
		res.Pages++
		res.SamplesDeleted += int64(n)
		hb.beat("samples deleted", int(res.SamplesDeleted))
		if n < in.PageSize {
			if err := a.Store.Compact(ctx); err != nil {
				return res, fmt.Errorf("apply retention: %w", err)
			}
			res.Done = true
			break
		}
	}
	return res, nil
}
