package store

import (
	"context"
	"fmt"
	"time"

	"github.com/sanwatch/sanwatch/internal/telemetry"
)

// SampleBackend keeps the samples of a Store elsewhere: a time-series
// engine (internal/tsdb). Its methods mean what Store's do.
type SampleBackend interface {
	AppendSamples(ctx context.Context, samples []telemetry.Sample) (int64, error)
	Window(ctx context.Context, box string, from, to time.Time) ([]telemetry.Sample, error)
	WindowKind(ctx context.Context, box, kind string, from, to time.Time) ([]telemetry.Sample, error)
	LatestSample(ctx context.Context, box string) (time.Time, error)
	DeleteSamplesBefore(ctx context.Context, before time.Time, limit int) (int, error)
	Compact(ctx context.Context) error
	// CountSamples counts the samples the backend holds, for Stats.
	CountSamples(ctx context.Context) (int64, error)
	Close() error
}

// WithSamples returns a Store that keeps samples in s and everything else
// (batches, inventory, findings, scan reports, emails) in base. Closing it
// closes both.
//
// A base that keeps the receiver's tokens and intake (IntakeStore) keeps
// doing so through the result.
func WithSamples(base Store, s SampleBackend) Store {
	w := &withSamples{Store: base, samples: s}
	if is, ok := base.(IntakeStore); ok {
		return &withSamplesIntake{withSamples: w, IntakeStore: is}
	}
	return w
}

// withSamplesIntake is withSamples over a store that also keeps intakes.
type withSamplesIntake struct {
	*withSamples
	IntakeStore
}

type withSamples struct {
	Store
	samples SampleBackend
}

func (w *withSamples) AppendSamples(ctx context.Context, samples []telemetry.Sample) (int64, error) {
	return w.samples.AppendSamples(ctx, samples)
}

func (w *withSamples) Window(ctx context.Context, box string, from, to time.Time) ([]telemetry.Sample, error) {
	return w.samples.Window(ctx, box, from, to)
}

func (w *withSamples) WindowKind(ctx context.Context, box, kind string, from, to time.Time) ([]telemetry.Sample, error) {
	return w.samples.WindowKind(ctx, box, kind, from, to)
}

func (w *withSamples) LatestSample(ctx context.Context, box string) (time.Time, error) {
	return w.samples.LatestSample(ctx, box)
}

func (w *withSamples) DeleteSamplesBefore(ctx context.Context, before time.Time, limit int) (int, error) {
	return w.samples.DeleteSamplesBefore(ctx, before, limit)
}

// Compact compacts both: the base may hold samples written before the
// backend was configured.
func (w *withSamples) Compact(ctx context.Context) error {
	if err := w.samples.Compact(ctx); err != nil {
		return err
	}
	return w.Store.Compact(ctx)
}

// Stats counts the samples in the backend, the rest in the base.
func (w *withSamples) Stats(ctx context.Context) (Stats, error) {
	st, err := w.Store.Stats(ctx)
	if err != nil {
		return st, err
	}
	n, err := w.samples.CountSamples(ctx)
	if err != nil {
		return st, fmt.Errorf("stats: %w", err)
	}
	st.Samples = n
	return st, nil
}

func (w *withSamples) Close() error {
	err := w.samples.Close()
	if berr := w.Store.Close(); berr != nil {
		return berr
	}
	return err
}
