package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
)

// AnalyzerRun is the outcome of one run of an external analyzer, as
// RecordAnalyzerRun records it.
type AnalyzerRun struct {
	Analyzer string
	Box      string
	At       time.Time
	// Err is why the run failed; empty: it succeeded.
	Err string
	// Rules are the rules of the findings of a successful run.
	Rules []string
}

// AnalyzerStatus is what the store knows of one external analyzer: its
// last failure and last success, and every rule it has reported findings
// of (so that a finding's analyzer is known when it fails).
type AnalyzerStatus struct {
	Analyzer string `json:"analyzer"`
	// LastError is the error of the last recorded failure, LastBox the box
	// it failed on and FailedAt when (zero: never failed).
	LastError string    `json:"last_error,omitempty"`
	LastBox   string    `json:"last_box,omitempty"`
	FailedAt  time.Time `json:"failed_at,omitzero"`
	// OKAt is the time of the last recorded success (zero: none).
	OKAt  time.Time `json:"ok_at,omitzero"`
	Rules []string  `json:"rules,omitempty"` // sorted
}

// maxAnalyzerError bounds the stored error of an analyzer's failure.
const maxAnalyzerError = 1024

// analyzerQueries are the statements of the analyzer methods; ph turns the
// n-th placeholder into the driver's syntax. A failure and a success each
// keep the newest time of their kind.
type analyzerQueries struct{ ph func(int) string }

func (q analyzerQueries) failed() string {
	return `INSERT INTO analyzer_runs (analyzer, last_error, last_box, failed_at)
		VALUES (` + q.ph(1) + `, ` + q.ph(2) + `, ` + q.ph(3) + `, ` + q.ph(4) + `)
		ON CONFLICT (analyzer) DO UPDATE SET last_error = excluded.last_error, last_box = excluded.last_box,
			failed_at = excluded.failed_at
		WHERE analyzer_runs.failed_at IS NULL OR analyzer_runs.failed_at <= excluded.failed_at`
}

func (q analyzerQueries) succeeded() string {
	return `INSERT INTO analyzer_runs (analyzer, ok_at) VALUES (` + q.ph(1) + `, ` + q.ph(2) + `)
		ON CONFLICT (analyzer) DO UPDATE SET ok_at = excluded.ok_at
		WHERE analyzer_runs.ok_at IS NULL OR analyzer_runs.ok_at <= excluded.ok_at`
}

func (q analyzerQueries) rule() string {
	return `INSERT INTO analyzer_rules (analyzer, rule) VALUES (` + q.ph(1) + `, ` + q.ph(2) + `)
		ON CONFLICT (analyzer, rule) DO NOTHING`
}

const (
	analyzerRunsQuery  = `SELECT analyzer, last_error, last_box, failed_at, ok_at FROM analyzer_runs ORDER BY analyzer`
	analyzerRulesQuery = `SELECT analyzer, rule FROM analyzer_rules ORDER BY analyzer, rule`
)

// analyzerWrites returns the statements and arguments that record r, in order.
func analyzerWrites(q analyzerQueries, r AnalyzerRun) ([]string, [][]any, error) {
	if r.Analyzer == "" {
		return nil, nil, errors.New("record analyzer run: missing analyzer")
	}
	at, err := nanos(r.At)
	if err != nil {
		return nil, nil, fmt.Errorf("record analyzer run of %s: %w", r.Analyzer, err)
	}
	if r.Err != "" {
		msg := r.Err
		if len(msg) > maxAnalyzerError {
			msg = msg[:maxAnalyzerError]
		}
		return []string{q.failed()}, [][]any{{r.Analyzer, msg, r.Box, at}}, nil
	}
	stmts, args := []string{q.succeeded()}, [][]any{{r.Analyzer, at}}
	for _, rule := range r.Rules {
		stmts, args = append(stmts, q.rule()), append(args, []any{r.Analyzer, rule})
	}
	return stmts, args, nil
}

// analyzerRows is what both drivers' rows offer.
type analyzerRows interface {
	Scan(dest ...any) error
	Next() bool
	Err() error
}

var (
	_ analyzerRows = (*sql.Rows)(nil)
	_ analyzerRows = pgx.Rows(nil)
)

// scanAnalyzerRuns reads rows of analyzerRunsQuery.
func scanAnalyzerRuns(rows analyzerRows) ([]AnalyzerStatus, error) {
	var out []AnalyzerStatus
	for rows.Next() {
		var a AnalyzerStatus
		var failed, ok *int64
		if err := rows.Scan(&a.Analyzer, &a.LastError, &a.LastBox, &failed, &ok); err != nil {
			return nil, fmt.Errorf("read analyzers: %w", err)
		}
		a.FailedAt, a.OKAt = fromOptNanos(failed), fromOptNanos(ok)
		out = append(out, a)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read analyzers: %w", err)
	}
	return out, nil
}

// addAnalyzerRules reads rows of analyzerRulesQuery into statuses, adding a
// status for an analyzer with rules but no run (not written that way, but
// harmless).
func addAnalyzerRules(rows analyzerRows, statuses []AnalyzerStatus) ([]AnalyzerStatus, error) {
	for rows.Next() {
		var name, rule string
		if err := rows.Scan(&name, &rule); err != nil {
			return nil, fmt.Errorf("read analyzer rules: %w", err)
		}
		i := slices.IndexFunc(statuses, func(a AnalyzerStatus) bool { return a.Analyzer == name })
		if i < 0 {
			statuses = append(statuses, AnalyzerStatus{Analyzer: name})
			i = len(statuses) - 1
		}
		statuses[i].Rules = append(statuses[i].Rules, rule)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read analyzer rules: %w", err)
	}
	slices.SortFunc(statuses, func(a, b AnalyzerStatus) int {
		if a.Analyzer < b.Analyzer {
			return -1
		}
		if a.Analyzer > b.Analyzer {
			return 1
		}
		return 0
	})
	return statuses, nil
}

var sqliteAnalyzers = analyzerQueries{ph: sqlitePH}

// RecordAnalyzerRun records the outcome of one external analyzer run; see Store.
func (s *SQLite) RecordAnalyzerRun(ctx context.Context, r AnalyzerRun) error {
	stmts, args, err := analyzerWrites(sqliteAnalyzers, r)
	if err != nil {
		return err
	}
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("record analyzer run of %s: %w", r.Analyzer, err)
	}
	defer func() { _ = tx.Rollback() }()
	for i, q := range stmts {
		if _, err := tx.ExecContext(ctx, q, args[i]...); err != nil {
			return fmt.Errorf("record analyzer run of %s: %w", r.Analyzer, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("record analyzer run of %s: %w", r.Analyzer, err)
	}
	return nil
}

// AnalyzerStatuses returns what is known of each external analyzer; see Store.
func (s *SQLite) AnalyzerStatuses(ctx context.Context) ([]AnalyzerStatus, error) {
	rows, err := s.r.QueryContext(ctx, analyzerRunsQuery)
	if err != nil {
		return nil, fmt.Errorf("query analyzers: %w", err)
	}
	out, err := scanAnalyzerRuns(rows)
	_ = rows.Close()
	if err != nil {
		return nil, err
	}
	rows, err = s.r.QueryContext(ctx, analyzerRulesQuery)
	if err != nil {
		return nil, fmt.Errorf("query analyzer rules: %w", err)
	}
	defer func() { _ = rows.Close() }()
	return addAnalyzerRules(rows, out)
}

var postgresAnalyzers = analyzerQueries{ph: postgresPH}

// RecordAnalyzerRun records the outcome of one external analyzer run; see Store.
func (p *Postgres) RecordAnalyzerRun(ctx context.Context, r AnalyzerRun) error {
	stmts, args, err := analyzerWrites(postgresAnalyzers, r)
	if err != nil {
		return err
	}
	err = pgx.BeginFunc(ctx, p.pool, func(tx pgx.Tx) error {
		for i, q := range stmts {
			if _, err := tx.Exec(ctx, q, args[i]...); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("record analyzer run of %s: %w", r.Analyzer, err)
	}
	return nil
}

// AnalyzerStatuses returns what is known of each external analyzer; see Store.
func (p *Postgres) AnalyzerStatuses(ctx context.Context) ([]AnalyzerStatus, error) {
	rows, err := p.pool.Query(ctx, analyzerRunsQuery)
	if err != nil {
		return nil, fmt.Errorf("query analyzers: %w", err)
	}
	out, err := scanAnalyzerRuns(rows)
	rows.Close()
	if err != nil {
		return nil, err
	}
	rows, err = p.pool.Query(ctx, analyzerRulesQuery)
	if err != nil {
		return nil, fmt.Errorf("query analyzer rules: %w", err)
	}
	defer rows.Close()
	return addAnalyzerRules(rows, out)
}
