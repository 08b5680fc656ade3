package app

import (
	"fmt"
	"time"

	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"github.com/sanwatch/sanwatch/activities"
	"github.com/sanwatch/sanwatch/config"
	"github.com/sanwatch/sanwatch/workflows"
)

// Queue roles a worker process can serve (worker.queues / --queues).
const (
	RoleMain     = "main"
	RoleAnalysis = "analysis"
	RoleEmail    = "email"
)

// Register registers every workflow and the activities on r.
func Register(r worker.Registry, acts *activities.Activities) {
	r.RegisterWorkflow(workflows.IngestTelemetry)
	r.RegisterWorkflow(workflows.AnalyzeBoxes)
	r.RegisterWorkflow(workflows.FleetScan)
	r.RegisterWorkflow(workflows.Retention)
	r.RegisterWorkflow(workflows.SweepOutbox)
	r.RegisterWorkflowWithOptions(workflows.Remediate, workflow.RegisterOptions{Name: activities.RemediateWorkflowType})
	r.RegisterActivity(acts)
}

// NewWorkers creates one Temporal worker per configured queue role, each with
// the options of its role: analysis bounded by worker.analysis_concurrency,
// email rate-limited to smtp.rate_per_second across all email workers.
func NewWorkers(c client.Client, cfg *config.Config, acts *activities.Activities) ([]worker.Worker, error) {
	var ws []worker.Worker
	for _, role := range cfg.Worker.Queues {
		opts := worker.Options{WorkerStopTimeout: cfg.Worker.ShutdownTimeout}
		var queue string
		switch role {
		case RoleMain:
			// StoreBatch runs here. Batches named by an object key
			// (the receiver, `starter ingest`) need no ingest.roots;
			// without roots a batch named by a path is refused (no
			// default such as the working directory: anyone who starts
			// IngestTelemetry could read files there).
			queue = cfg.Queues.Main
			if n := cfg.Worker.WorkflowConcurrency; n > 0 {
				opts.MaxConcurrentWorkflowTaskExecutionSize = n
			}
		case RoleAnalysis:
			queue = cfg.Queues.Analysis
			opts.MaxConcurrentActivityExecutionSize = cfg.Worker.AnalysisConcurrency
		case RoleEmail:
			queue = cfg.Queues.Email
			opts.MaxConcurrentActivityExecutionSize = cfg.Worker.EmailConcurrency
			opts.TaskQueueActivitiesPerSecond = cfg.SMTP.RatePerSecond
		default:
			return nil, fmt.Errorf("worker.queues: unknown role %q: allowed main, analysis, email", role)
		}
		if opts.WorkerStopTimeout <= 0 {
			opts.WorkerStopTimeout = 30 * time.Second
		}
		if cfg.Worker.DeploymentName != "" {
			// Worker Versioning: this worker serves one version of the
			// deployment. Workflows move to the current version at their next
			// task (auto-upgrade), so changes still go behind GetVersion; the
			// gain is a controlled rollout and ramp (temporal worker deployment).
			opts.DeploymentOptions = worker.DeploymentOptions{
				UseVersioning:             true,
				Version:                   worker.WorkerDeploymentVersion{DeploymentName: cfg.Worker.DeploymentName, BuildID: cfg.Worker.BuildID},
				DefaultVersioningBehavior: workflow.VersioningBehaviorAutoUpgrade,
			}
		}
		w := worker.New(c, queue, opts)
		Register(w, acts)
		ws = append(ws, w)
	}
	return ws, nil
}
