// Package activities holds sanwatch's Temporal activities: methods on
// Activities, whose fields are the dependencies (store, analysis engine,
// inventory, mailer, clock). They are thin: the work is done by the domain
// packages under internal/.
package activities

import (
	"context"
	"time"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/client"

	"github.com/sanwatch/sanwatch/internal/analysis"
	"github.com/sanwatch/sanwatch/internal/blobstore"
	"github.com/sanwatch/sanwatch/internal/fleet"
	"github.com/sanwatch/sanwatch/internal/metrics"
	"github.com/sanwatch/sanwatch/internal/store"
)

// Error types of non-retryable application errors, for workflows and callers
// that need to tell why an activity gave up.
const (
	ErrTypeInvalidTelemetry = "InvalidTelemetry"
	ErrTypeQuarantined      = "BatchQuarantined"
	ErrTypePathNotAllowed   = "PathNotAllowed"
	ErrTypeBatchChanged     = "BatchChanged"
	ErrTypeUnknownFinding   = "UnknownFinding"
	ErrTypeUndeliverable    = "Undeliverable"
	ErrTypeInvalidInput     = "InvalidInput"
	// ErrTypeTooManyPoints: a window holds more samples than one read of
	// the samples engine may return (samples.max_points); a retry reads
	// the same window, a shorter analysis.window or a higher
	// samples.max_points does not.
	ErrTypeTooManyPoints = "TooManyPoints"
	// ErrTypeAnalyzerFailed is retryable: an external analyzer failed, so
	// whether a finding of its rules is still there is unknown.
	ErrTypeAnalyzerFailed = "AnalyzerFailed"
)

// Settings are the configured values workflows need. Workflows read them once
// through the Settings local activity, so they are recorded in history and a
// replay sees the same values.
type Settings struct {
	MainQueue     string        `json:"main_queue"`
	AnalysisQueue string        `json:"analysis_queue"`
	EmailQueue    string        `json:"email_queue"`
	ShardSize     int           `json:"shard_size"`
	MaxInFlight   int           `json:"max_in_flight"`
	Window        time.Duration `json:"window"`
	Reminder      time.Duration `json:"reminder"`
	EscalateAfter time.Duration `json:"escalate_after"`
	ResolveAfter  time.Duration `json:"resolve_after"`
	VerifyEvery   time.Duration `json:"verify_every"`
	SMTPRetryFor  time.Duration `json:"smtp_retry_for"`
	SMTPTimeout   time.Duration `json:"smtp_timeout"`
	// ShardDeadline is the ScheduleToClose of AnalyzeShard (0: one hour).
	ShardDeadline time.Duration `json:"shard_deadline,omitempty"`
	// RemediateHistoryLimit is the history length at which Remediate
	// continues as new (0: 2000). Recorded in history like every setting, so
	// changing it never breaks a running workflow.
	RemediateHistoryLimit int `json:"remediate_history_limit,omitempty"`
	// SearchAttributes is true when sanwatch's search attributes are
	// registered and workflows may set them.
	SearchAttributes bool `json:"search_attributes,omitempty"`
}

// IngestOptions are the limits of StoreBatch.
type IngestOptions struct {
	Roots          []string      // a batch path must be inside one of these directories
	MaxRejectRatio float64       // above this share of bad lines the batch is quarantined
	MaxFutureSkew  time.Duration // samples later than now+skew are rejected
	ChunkRows      int           // samples per store transaction
	MaxErrors      int           // rejected lines reported per batch
	HeartbeatEvery time.Duration // least time between two heartbeats of StoreBatch (0: 2s)
}

// SampleFlusher makes the samples written so far searchable: a samples
// backend on a time-series engine (tsdb.Backend), whose writes become
// searchable only a few seconds later unless flushed.
type SampleFlusher interface {
	// Flush returns once every sample written before it is searchable.
	Flush(ctx context.Context) error
}

// Activities holds the dependencies of every activity. The worker registers one
// instance; workflows call its methods through a typed nil pointer.
type Activities struct {
	Store store.Store
	// SampleFlusher, when set, is flushed once at the end of each
	// StoreBatch, after its last write and before the batch is recorded as
	// stored: the store's samples are in a time-series engine that does not
	// flush after each write, and the analysis right after a batch must see
	// all of it (samples.flush_writes).
	SampleFlusher SampleFlusher
	Engine        *analysis.Engine
	Inventory     *fleet.Inventory
	Ingest        IngestOptions
	Settings      Settings
	Metrics       *metrics.Metrics
	// Client starts and signals remediation workflows.
	Client client.Client
	// Mailer sends remediation emails; Mail says from whom.
	Mailer      Mailer
	Mail        MailOptions
	Remediation RemediationOptions
	// Batches is the batch store: StoreBatch reads a batch named by its
	// object key (StoreBatchInput.Blob) from it.
	Batches *blobstore.Store
	// Outbox drains the receiver's outbox (DrainOutbox); nil where the
	// store keeps no intakes.
	Outbox Outbox
	// Now is the clock; nil means time.Now.
	Now func() time.Time

	analyzers analyzerLog
}

// heartbeater records an activity's heartbeats, at most one per interval:
// callers report progress as often as they like.
type heartbeater struct {
	ctx   context.Context
	every time.Duration
	last  time.Time
}

// newHeartbeater heartbeats ctx's activity at most every every (0: 2s).
func newHeartbeater(ctx context.Context, every time.Duration) *heartbeater {
	if every <= 0 {
		every = 2 * time.Second
	}
	return &heartbeater{ctx: ctx, every: every}
}

// beat records a heartbeat with what and n as details, unless one was
// recorded less than the interval ago.
func (h *heartbeater) beat(what string, n int) {
	if now := time.Now(); now.Sub(h.last) >= h.every {
		h.last = now
		activity.RecordHeartbeat(h.ctx, what, n)
	}
}

// during runs f, one long step (a vacuum, a seal page), heartbeating with
// what every interval until it returns, so that the step's length is not
// taken for a dead worker.
func (h *heartbeater) during(what string, f func() error) error {
	done := make(chan struct{})
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		t := time.NewTicker(h.every)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				activity.RecordHeartbeat(h.ctx, what)
			}
		}
	}()
	err := f()
	close(done)
	<-stopped
	return err
}

func (a *Activities) now() time.Time {
	if a.Now != nil {
		return a.Now()
	}
	return time.Now()
}

// GetSettings returns the configured settings. Workflows run it as a local
// activity at start.
func (a *Activities) GetSettings(ctx context.Context) (Settings, error) {
	return a.Settings, nil
}
