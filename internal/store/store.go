// Package store keeps telemetry samples, batches, the box inventory, findings
// and scan reports. SQLite is the embedded default; PostgreSQL serves workers
// on several hosts. Both implement Store and pass the same suite (storetest).
package store

import (
	"context"
	"errors"
	"time"

	"github.com/sanwatch/sanwatch/internal/finding"
	"github.com/sanwatch/sanwatch/internal/fleet"
	"github.com/sanwatch/sanwatch/internal/telemetry"
)

// ErrNotFound is returned when a batch, finding or scan does not exist.
var ErrNotFound = errors.New("not found")

// Batch status values.
const (
	BatchStored      = "stored"
	BatchQuarantined = "quarantined"
)

// Batch is the record of one ingested telemetry file, keyed by its content hash.
type Batch struct {
	ID           string    `json:"id"` // content hash (hex sha256)
	Path         string    `json:"path"`
	Format       string    `json:"format"` // csv, jsonl (+gzip)
	Status       string    `json:"status"` // BatchStored or BatchQuarantined
	Accepted     int64     `json:"accepted"`
	Rejected     int64     `json:"rejected"`
	Boxes        []string  `json:"boxes"`         // boxes the batch touched, sorted
	UnknownBoxes []string  `json:"unknown_boxes"` // of those, the ones not in the inventory
	FirstSample  time.Time `json:"first_sample"`
	LastSample   time.Time `json:"last_sample"`
	Errors       []string  `json:"errors,omitempty"` // first rejected lines, "file:line: reason"
	StoredAt     time.Time `json:"stored_at"`
}

// BatchBox is one box a batch touched.
type BatchBox struct {
	ID      string `json:"id"`
	Unknown bool   `json:"unknown,omitempty"` // not in the inventory
}

// BatchBoxQuery pages the boxes of one batch, ordered by id.
type BatchBoxQuery struct {
	Batch       string
	UnknownOnly bool   // only the boxes not in the inventory
	After       string // ids greater than this
	Limit       int    // 0 means no limit
}

// BoxQuery selects boxes page by page, ordered by id. Empty fields match all.
type BoxQuery struct {
	Site  string
	Model string
	Tag   string
	After string // ids greater than this
	Limit int    // 0 means no limit
}

// FindingQuery filters findings. Empty fields match all.
type FindingQuery struct {
	Box         string
	Rule        string
	MinSeverity finding.Severity
	Status      finding.Status
	Limit       int
}

// ScanReport is the stored result of one FleetScan.
type ScanReport struct {
	ID           string         `json:"id"` // the scan's workflow id
	Selector     string         `json:"selector"`
	StartedAt    time.Time      `json:"started_at"`
	FinishedAt   time.Time      `json:"finished_at"`
	Boxes        int            `json:"boxes"`
	Analysed     int            `json:"analysed"`
	Findings     int            `json:"findings"`
	BySeverity   map[string]int `json:"by_severity,omitempty"`
	FailedShards []string       `json:"failed_shards,omitempty"` // "first..last: error"
	// Remediations counts findings handed to Remediate workflows; DispatchErrors
	// lists hand-offs that failed (those findings reach remediation on the next detection).
	Remediations   int      `json:"remediations"`
	DispatchErrors []string `json:"dispatch_errors,omitempty"`
	Runs           int      `json:"runs"` // workflow runs (continue-as-new count + 1)
	// MoreFailedShards and MoreDispatchErrors count the failed shards and
	// dispatch errors beyond those listed: a scan lists a bounded number.
	MoreFailedShards   int `json:"more_failed_shards,omitempty"`
	MoreDispatchErrors int `json:"more_dispatch_errors,omitempty"`
}

// EmailRecord is one sent remediation email.
type EmailRecord struct {
	MessageID   string    `json:"message_id"`
	Fingerprint string    `json:"fingerprint"`
	Kind        string    `json:"kind"`
	To          []string  `json:"to"`
	Subject     string    `json:"subject"`
	SentAt      time.Time `json:"sent_at"`
}

// Stats counts what a store holds.
type Stats struct {
	Boxes int `json:"boxes"`
	// Samples counts stored samples; on the SQL stores one rewritten over
	// a chunk counts twice until SealSamples merges its day.
	Samples  int64 `json:"samples"`
	Batches  int   `json:"batches"`
	Rejected int64 `json:"rejected"` // rejected lines over all batches
	Findings int   `json:"findings"`
	Emails   int   `json:"emails"`
}

// Store is what sanwatch keeps. Every method is safe for concurrent use and
// every write is idempotent, so a retried activity does no harm.
type Store interface {
	// AppendSamples stores samples; a sample with the same box, component,
	// metric and time as a stored one replaces it (no duplicates).
	// It returns how many rows were written.
	AppendSamples(ctx context.Context, samples []telemetry.Sample) (int64, error)
	// Window returns box's samples with from <= time < to, ordered by
	// component, metric, time.
	Window(ctx context.Context, box string, from, to time.Time) ([]telemetry.Sample, error)
	// WindowKind is Window restricted to the components of one kind
	// ("disk" for disk/0, disk/1 ...), for rules that need a longer history
	// of some components than of the rest.
	WindowKind(ctx context.Context, box, kind string, from, to time.Time) ([]telemetry.Sample, error)
	// LatestSample returns the time of box's newest sample, or ErrNotFound.
	LatestSample(ctx context.Context, box string) (time.Time, error)

	// PutBatch records (or replaces) a batch record.
	PutBatch(ctx context.Context, b Batch) error
	// NewestSample returns the latest LastSample of the stored batches: the
	// fleet's clock, against which a silent box is measured. Zero when
	// nothing is stored.
	NewestSample(ctx context.Context) (time.Time, error)
	// Batch returns the batch with the given id, or ErrNotFound.
	Batch(ctx context.Context, id string) (Batch, error)
	// AddBatchBoxes records boxes that a batch touched. Adding a box again
	// is a no-op apart from its Unknown flag, which the last add sets.
	AddBatchBoxes(ctx context.Context, batch string, boxes []BatchBox) error
	// BatchBoxes returns a page of the ids of a batch's boxes, ordered by id.
	BatchBoxes(ctx context.Context, q BatchBoxQuery) ([]string, error)
	// CountBatchBoxes returns how many boxes a batch touched and how many
	// of those are not in the inventory.
	CountBatchBoxes(ctx context.Context, batch string) (boxes, unknown int, err error)

	// UpsertBoxes adds or updates inventory boxes.
	UpsertBoxes(ctx context.Context, boxes []fleet.Box) error
	// TouchBoxes records that telemetry arrived for these ids; ids not yet
	// known are added as boxes with only an id (not in the inventory).
	TouchBoxes(ctx context.Context, ids []string) error
	// Boxes returns a page of boxes matching q, ordered by id.
	Boxes(ctx context.Context, q BoxQuery) ([]fleet.Box, error)
	// CountBoxes returns how many boxes match q (After and Limit ignored).
	CountBoxes(ctx context.Context, q BoxQuery) (int, error)

	// UpsertFinding stores f by fingerprint. A new fingerprint is created
	// with FirstSeen = LastSeen = f.DetectedAt and status open; an existing one
	// has its severity, title, problem, evidence, remediation, time to impact
	// and LastSeen updated, its FirstSeen and status kept. It reports whether
	// the finding was new.
	UpsertFinding(ctx context.Context, f finding.Finding) (created bool, err error)
	// Finding returns the finding with fingerprint fp, or ErrNotFound.
	Finding(ctx context.Context, fp string) (finding.Finding, error)
	// Findings returns findings matching q, most severe first, then by fingerprint.
	Findings(ctx context.Context, q FindingQuery) ([]finding.Finding, error)
	// SetFindingStatus sets the status and note of a finding, or ErrNotFound.
	SetFindingStatus(ctx context.Context, fp string, status finding.Status, note string) error

	// PutScanReport records (or replaces) a scan report.
	PutScanReport(ctx context.Context, r ScanReport) error
	// ScanReport returns the report with the given id, or ErrNotFound.
	ScanReport(ctx context.Context, id string) (ScanReport, error)
	// ScanReports returns the newest reports first, at most limit (0: all).
	ScanReports(ctx context.Context, limit int) ([]ScanReport, error)

	// RecordEmail records a sent email; recording the same Message-ID again is a no-op.
	RecordEmail(ctx context.Context, e EmailRecord) error
	// EmailSent reports whether an email with this Message-ID was recorded.
	EmailSent(ctx context.Context, messageID string) (bool, error)
	// Emails returns the emails recorded for a fingerprint, oldest first.
	Emails(ctx context.Context, fingerprint string) ([]EmailRecord, error)

	// RecordAnalyzerRun records the outcome of one run of an external
	// analyzer: a failure's error, box and time, or a success's time and the
	// rules of its findings. Each time only moves forward.
	RecordAnalyzerRun(ctx context.Context, r AnalyzerRun) error
	// AnalyzerStatuses returns what is known of each external analyzer,
	// ordered by name.
	AnalyzerStatuses(ctx context.Context) ([]AnalyzerStatus, error)

	// DeleteSamplesBefore deletes up to limit (>= 1) samples of any box
	// older than before (or, where samples are kept in chunks, up to limit
	// chunks entirely older) and returns how many samples it deleted: a
	// page of a retention run, which calls it until it returns fewer than
	// limit.
	DeleteSamplesBefore(ctx context.Context, before time.Time, limit int) (int, error)
	// Compact returns the space deletes freed to the file system where the
	// database does not do that itself (SQLite); after a retention run.
	Compact(ctx context.Context) error

	// Stats counts what the store holds.
	Stats(ctx context.Context) (Stats, error)

	// Close releases the store's resources.
	Close() error
}

// kindRange returns the component range [lo, hi) of a kind: every
// component "kind/..." sorts at or after "kind/" and before "kind0" ('0'
// follows '/'), which the samples primary key can seek to.
func kindRange(kind string) (lo, hi string) { return kind + "/", kind + "0" }
