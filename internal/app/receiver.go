package app

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"

	"github.com/sanwatch/sanwatch/activities"
	"github.com/sanwatch/sanwatch/config"
	"github.com/sanwatch/sanwatch/internal/blobstore"
	"github.com/sanwatch/sanwatch/internal/dropdir"
	"github.com/sanwatch/sanwatch/internal/receiver"
	"github.com/sanwatch/sanwatch/internal/store"
	"github.com/sanwatch/sanwatch/workflows"
)

// IngestWorkflows starts and describes IngestTelemetry workflows for the
// receiver, with the options `starter ingest` uses: the workflow id comes
// from the batch's content, a running or completed run of the same batch
// is kept, a failed one is run again.
type IngestWorkflows struct {
	Client    client.Client
	TaskQueue string
}

var _ receiver.Workflows = IngestWorkflows{}

// WorkflowID returns the ingest workflow id of a batch.
func (w IngestWorkflows) WorkflowID(batchID string) string {
	return workflows.IngestWorkflowID(batchID)
}

// StartIngest starts the ingest workflow of the batch stored under blob;
// one that runs or completed already counts as started.
func (w IngestWorkflows) StartIngest(ctx context.Context, batchID, blob string) error {
	opts := client.StartWorkflowOptions{
		ID:                       workflows.IngestWorkflowID(batchID),
		TaskQueue:                w.TaskQueue,
		WorkflowIDReusePolicy:    enumspb.WORKFLOW_ID_REUSE_POLICY_ALLOW_DUPLICATE_FAILED_ONLY,
		WorkflowIDConflictPolicy: enumspb.WORKFLOW_ID_CONFLICT_POLICY_USE_EXISTING,
		// A completed run of the same content answers "already started".
		WorkflowExecutionErrorWhenAlreadyStarted: true,
	}
	_, err := w.Client.ExecuteWorkflow(ctx, opts, workflows.IngestTelemetry, workflows.IngestInput{Blob: blob, BatchID: batchID})
	var started *serviceerror.WorkflowExecutionAlreadyStarted
	if err != nil && !errors.As(err, &started) {
		return fmt.Errorf("start workflow %s: %w", opts.ID, err)
	}
	return nil
}

// IngestStatus returns the status of the workflow's latest run (Running,
// Completed, Failed ...).
func (w IngestWorkflows) IngestStatus(ctx context.Context, workflowID string) (string, error) {
	resp, err := w.Client.DescribeWorkflowExecution(ctx, workflowID, "")
	if err != nil {
		return "", fmt.Errorf("describe workflow %s: %w", workflowID, err)
	}
	return resp.GetWorkflowExecutionInfo().GetStatus().String(), nil
}

// ReceiverOptions returns the HTTP side of the receiver from the configuration.
func ReceiverOptions(cfg *config.Config) receiver.Options {
	r := cfg.Receiver
	return receiver.Options{
		Addr: r.Addr, CertFile: r.CertFile, KeyFile: r.KeyFile,
		ClientCAFile: r.ClientCAFile, RequireClientCert: r.RequireClientCert,
		BoxRate: r.BoxRate, BoxBurst: r.BoxBurst,
		ReadHeaderTimeout: r.ReadHeaderTimeout, ReadTimeout: r.ReadTimeout,
		SweepEvery: r.SweepEvery,
	}
}

// NewIntake assembles the receiver's intake: the store st (which must keep
// tokens and intakes), the batch store of batches.url, the ingest
// workflows on c, the limits of receiver.* and ingest.*, and
// <data_dir>/incoming for bodies being validated. The caller closes
// the returned intake's Batches.
func NewIntake(ctx context.Context, cfg *config.Config, c client.Client, st store.Store, logger *slog.Logger) (*receiver.Intake, error) {
	rs, ok := st.(receiver.Store)
	if !ok {
		return nil, fmt.Errorf("receiver: store %T keeps no tokens or intake (use the sqlite or postgres store)", st)
	}
	tmp := filepath.Join(cfg.DataDir, "incoming")
	if err := os.MkdirAll(tmp, 0o750); err != nil {
		return nil, fmt.Errorf("receiver: create %s: %w", tmp, err)
	}
	batches, err := blobstore.Open(ctx, cfg.Batches.URL)
	if err != nil {
		return nil, err
	}
	return &receiver.Intake{
		Store: rs, Batches: batches,
		Workflows: IngestWorkflows{Client: c, TaskQueue: cfg.Queues.Main},
		Limits: receiver.Limits{
			MaxBody: cfg.Receiver.MaxBody, MaxInflated: cfg.Receiver.MaxInflated,
			MaxRejectRatio: cfg.Ingest.MaxRejectRatio, MaxFutureSkew: cfg.Ingest.MaxFutureSkew,
			MaxErrors: cfg.Ingest.MaxErrors, StartTimeout: cfg.Receiver.StartTimeout,
		},
		TempDir: tmp,
		Logger:  logger,
	}, nil
}

// outbox drains the receiver's outbox for DrainOutbox.
type outbox struct{ in *receiver.Intake }

func (o outbox) Drain(ctx context.Context) (activities.OutboxDrained, error) {
	r, err := o.in.Drain(ctx)
	return activities.OutboxDrained{Started: r.Started, Failed: r.Failed, Pending: r.Pending}, err
}

// newOutbox is the worker's side of the outbox: the intakes in st whose
// workflow has not started, started through c. Nil when st keeps none.
func newOutbox(cfg *config.Config, c client.Client, st store.Store, batches *blobstore.Store, logger *slog.Logger) activities.Outbox {
	rs, ok := st.(receiver.Store)
	if !ok || c == nil {
		return nil
	}
	return outbox{&receiver.Intake{
		Store: rs, Batches: batches,
		Workflows: IngestWorkflows{Client: c, TaskQueue: cfg.Queues.Main},
		Limits:    receiver.Limits{StartTimeout: cfg.Receiver.StartTimeout},
		Logger:    logger,
	}}
}

// DropWatcher returns the watcher of receiver.drop_dirs, which hands each
// complete file to in (as a drop: samples of any box) and moves it to done/,
// or to quarantine/ with the reason when in refuses it; nil when no drop
// directory is configured. done/ keeps files for retention.batches,
// quarantine/ for retention.quarantine.
func DropWatcher(cfg *config.Config, in *receiver.Intake, logger *slog.Logger) (*dropdir.Watcher, error) {
	if len(cfg.Receiver.DropDirs) == 0 {
		return nil, nil
	}
	accept := dropdir.AcceptorFunc(func(ctx context.Context, name string, body io.Reader) (dropdir.Receipt, error) {
		rc, err := in.Accept(ctx, receiver.Source{Kind: store.SourceDrop, Name: name}, body)
		return dropdir.Receipt{BatchID: rc.BatchID, WorkflowID: rc.WorkflowID, Duplicate: rc.Duplicate}, err
	})
	w, err := dropdir.New(dropdir.Options{
		Dirs: cfg.Receiver.DropDirs, Quiet: cfg.Receiver.DropQuiet, Acceptor: accept, Logger: logger,
		DoneRetention: cfg.Retention.Batches, QuarantineRetention: cfg.Retention.Quarantine,
	})
	if err != nil {
		return nil, fmt.Errorf("receiver.drop_dirs: %w", err)
	}
	return w, nil
}
