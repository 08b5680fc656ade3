package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// Token is a bearer token of the receiver, scoped to one box. The token
// itself is shown once when it is made and never stored: only its hash.
type Token struct {
	ID    string `json:"id"`
	Box   string `json:"box"`
	Hash  string `json:"-"` // hex sha256 of the token
	Label string `json:"label,omitempty"`
	// CreatedAt is when the token was made; ExpiresAt when it stops
	// working (zero: never); RevokedAt when it was revoked (zero: not).
	CreatedAt time.Time `json:"created_at"`
	ExpiresAt time.Time `json:"expires_at,omitzero"`
	RevokedAt time.Time `json:"revoked_at,omitzero"`
}

// Valid reports whether the token authenticates at now: not revoked, not expired.
func (t Token) Valid(now time.Time) bool {
	return t.RevokedAt.IsZero() && (t.ExpiresAt.IsZero() || now.Before(t.ExpiresAt))
}

// Intake sources.
const (
	SourceHTTP = "http" // posted to the receiver
	SourceDrop = "drop" // found in a drop directory
)

// Intake is a batch the receiver (or a drop directory) accepted: its body
// is in the batch store under Blob. Until StartedAt is set the batch is in
// the outbox, and its ingest workflow is still to be started.
type Intake struct {
	BatchID    string    `json:"batch_id"` // hex sha256 of the body as sent
	Box        string    `json:"box"`      // the authenticated box; "" for a drop file
	Blob       string    `json:"blob"`     // object key in the batch store
	Size       int64     `json:"size"`     // bytes as sent
	Source     string    `json:"source"`   // SourceHTTP or SourceDrop
	SourceName string    `json:"source_name,omitempty"`
	ReceivedAt time.Time `json:"received_at"`
	WorkflowID string    `json:"workflow_id"`
	StartedAt  time.Time `json:"started_at,omitzero"` // zero: not started yet
	Attempts   int       `json:"attempts"`            // workflow starts tried
	LastError  string    `json:"last_error,omitempty"`
}

// IntakeStore keeps what the receiver needs beside the Store: box tokens
// and the intake of accepted batches (the outbox). Both stores implement
// it; see AsIntakeStore. Every method is safe for concurrent use.
type IntakeStore interface {
	// PutToken stores a new token; a token with the same id or hash is an error.
	PutToken(ctx context.Context, t Token) error
	// TokenByHash returns the token whose hash is hash (revoked and
	// expired ones too), or ErrNotFound.
	TokenByHash(ctx context.Context, hash string) (Token, error)
	// RevokeTokens revokes, at at, the token with id id, or when id is
	// empty every token of box; exactly one of box and id is set. It
	// returns how many tokens it revoked (already revoked ones are left).
	RevokeTokens(ctx context.Context, box, id string, at time.Time) (int, error)
	// Tokens returns the tokens of box (every box when empty), ordered by
	// box, creation time and id.
	Tokens(ctx context.Context, box string) ([]Token, error)

	// RecordIntake records an accepted batch unless one with the same
	// batch id is recorded, and reports whether it was new. LastError is
	// kept up to 1024 bytes.
	RecordIntake(ctx context.Context, in Intake) (created bool, err error)
	// Intake returns the intake of a batch, or ErrNotFound.
	Intake(ctx context.Context, batchID string) (Intake, error)
	// PendingIntakes returns up to limit (>= 1) intakes whose workflow
	// has not started, oldest first.
	PendingIntakes(ctx context.Context, limit int) ([]Intake, error)
	// CountPendingIntakes counts the intakes whose workflow has not started.
	CountPendingIntakes(ctx context.Context) (int, error)
	// MarkIntakeStarted records that the batch's workflow started at at
	// (counting the attempt); marking a started intake again is a no-op.
	// ErrNotFound when there is no such intake.
	MarkIntakeStarted(ctx context.Context, batchID string, at time.Time) error
	// MarkIntakeFailed records a failed attempt to start the batch's
	// workflow, with its error; a no-op once the intake started.
	// ErrNotFound when there is no such intake.
	MarkIntakeFailed(ctx context.Context, batchID, reason string) error
	// DeleteIntakesBefore deletes up to limit (>= 1) started intakes
	// received before before and returns how many: a page of a retention run.
	DeleteIntakesBefore(ctx context.Context, before time.Time, limit int) (int, error)
}

var (
	_ IntakeStore = (*SQLite)(nil)
	_ IntakeStore = (*Postgres)(nil)
)

// AsIntakeStore returns s as an IntakeStore, or an error naming its type
// when s does not keep tokens and intakes.
func AsIntakeStore(s Store) (IntakeStore, error) {
	is, ok := s.(IntakeStore)
	if !ok {
		return nil, fmt.Errorf("store %T keeps no tokens or intake (the receiver needs the sqlite or postgres store)", s)
	}
	return is, nil
}

// intakeMigration is schema version 7 of both stores: the receiver's bearer
// tokens (their sha256, never the token) and its intake of posted batches,
// the outbox of workflows still to start.
const intakeMigration = `CREATE TABLE tokens (
		id         TEXT   PRIMARY KEY,
		box        TEXT   NOT NULL,
		hash       TEXT   NOT NULL UNIQUE, -- hex sha256 of the token
		label      TEXT   NOT NULL DEFAULT '',
		created_at BIGINT NOT NULL, -- unix nanoseconds
		expires_at BIGINT,          -- NULL: never
		revoked_at BIGINT           -- NULL: not revoked
	);
	CREATE INDEX tokens_box ON tokens (box, created_at);
	CREATE TABLE intake (
		batch_id    TEXT   PRIMARY KEY, -- hex sha256 of the body as sent
		box         TEXT   NOT NULL,    -- '' for a drop file (any box)
		blob        TEXT   NOT NULL,    -- object key in the batch store
		size        BIGINT NOT NULL,
		source      TEXT   NOT NULL,    -- http or drop
		source_name TEXT   NOT NULL DEFAULT '',
		received_at BIGINT NOT NULL,
		workflow_id TEXT   NOT NULL,
		started_at  BIGINT,             -- NULL: in the outbox
		attempts    BIGINT NOT NULL DEFAULT 0,
		last_error  TEXT   NOT NULL DEFAULT ''
	);
	CREATE INDEX intake_pending ON intake (received_at, batch_id) WHERE started_at IS NULL;`

// maxIntakeError bounds the stored error of a failed workflow start.
const maxIntakeError = 1024

// intakeRows is what both drivers' rows offer.
type intakeRows interface {
	Scan(dest ...any) error
	Next() bool
	Err() error
}

var (
	_ intakeRows = (*sql.Rows)(nil)
	_ intakeRows = pgx.Rows(nil)
)

// intakeDB is what the token and intake methods need of a driver, so that
// both stores run the same code: ph turns the n-th placeholder into the
// driver's syntax, exec runs a write and returns the rows it affected,
// query runs a read and returns the rows and how to close them.
type intakeDB struct {
	ph    func(int) string
	exec  func(ctx context.Context, q string, args ...any) (int64, error)
	query func(ctx context.Context, q string, args ...any) (intakeRows, func(), error)
}

func (s *SQLite) intakeDB() intakeDB {
	return intakeDB{
		ph: sqlitePH,
		exec: func(ctx context.Context, q string, args ...any) (int64, error) {
			res, err := s.w.ExecContext(ctx, q, args...)
			if err != nil {
				return 0, err
			}
			return res.RowsAffected()
		},
		query: func(ctx context.Context, q string, args ...any) (intakeRows, func(), error) {
			rows, err := s.r.QueryContext(ctx, q, args...)
			if err != nil {
				return nil, nil, err
			}
			return rows, func() { _ = rows.Close() }, nil
		},
	}
}

func (p *Postgres) intakeDB() intakeDB {
	return intakeDB{
		ph: postgresPH,
		exec: func(ctx context.Context, q string, args ...any) (int64, error) {
			tag, err := p.pool.Exec(ctx, q, args...)
			if err != nil {
				return 0, err
			}
			return tag.RowsAffected(), nil
		},
		query: func(ctx context.Context, q string, args ...any) (intakeRows, func(), error) {
			rows, err := p.pool.Query(ctx, q, args...)
			if err != nil {
				return nil, nil, err
			}
			return rows, rows.Close, nil
		},
	}
}

// phs returns the placeholders 1..n joined by commas.
func (db intakeDB) phs(n int) string {
	s := ""
	for i := 1; i <= n; i++ {
		if i > 1 {
			s += ", "
		}
		s += db.ph(i)
	}
	return s
}

const tokenColumns = `id, box, hash, label, created_at, expires_at, revoked_at`

func (db intakeDB) putToken(ctx context.Context, t Token) error {
	if t.ID == "" || t.Box == "" || t.Hash == "" {
		return errors.New("put token: id, box and hash are required")
	}
	created, err := nanos(t.CreatedAt)
	if err != nil {
		return fmt.Errorf("put token %s: created_at: %w", t.ID, err)
	}
	expires, err := optNanos(t.ExpiresAt)
	if err != nil {
		return fmt.Errorf("put token %s: expires_at: %w", t.ID, err)
	}
	revoked, err := optNanos(t.RevokedAt)
	if err != nil {
		return fmt.Errorf("put token %s: revoked_at: %w", t.ID, err)
	}
	if _, err := db.exec(ctx, `INSERT INTO tokens (`+tokenColumns+`) VALUES (`+db.phs(7)+`)`,
		t.ID, t.Box, t.Hash, t.Label, created, expires, revoked); err != nil {
		return fmt.Errorf("put token %s of box %s: %w", t.ID, t.Box, err)
	}
	return nil
}

func (db intakeDB) tokens(ctx context.Context, what, where string, args ...any) ([]Token, error) {
	rows, closeRows, err := db.query(ctx, `SELECT `+tokenColumns+` FROM tokens`+where+` ORDER BY box, created_at, id`, args...)
	if err != nil {
		return nil, fmt.Errorf("query %s: %w", what, err)
	}
	defer closeRows()
	var out []Token
	for rows.Next() {
		var t Token
		var created int64
		var expires, revoked *int64
		if err := rows.Scan(&t.ID, &t.Box, &t.Hash, &t.Label, &created, &expires, &revoked); err != nil {
			return nil, fmt.Errorf("read %s: %w", what, err)
		}
		t.CreatedAt, t.ExpiresAt, t.RevokedAt = fromNanos(created), fromOptNanos(expires), fromOptNanos(revoked)
		out = append(out, t)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read %s: %w", what, err)
	}
	return out, nil
}

func (db intakeDB) tokenByHash(ctx context.Context, hash string) (Token, error) {
	ts, err := db.tokens(ctx, "token", ` WHERE hash = `+db.ph(1), hash)
	if err != nil {
		return Token{}, err
	}
	if len(ts) == 0 {
		return Token{}, fmt.Errorf("token: %w", ErrNotFound)
	}
	return ts[0], nil
}

func (db intakeDB) listTokens(ctx context.Context, box string) ([]Token, error) {
	if box == "" {
		return db.tokens(ctx, "tokens", "")
	}
	return db.tokens(ctx, "tokens of box "+box, ` WHERE box = `+db.ph(1), box)
}

func (db intakeDB) revokeTokens(ctx context.Context, box, id string, at time.Time) (int, error) {
	if (box == "") == (id == "") {
		return 0, errors.New("revoke tokens: give a box or a token id, not both")
	}
	when, err := nanos(at)
	if err != nil {
		return 0, fmt.Errorf("revoke tokens: %w", err)
	}
	col, val, what := "box", box, "tokens of box "+box
	if id != "" {
		col, val, what = "id", id, "token "+id
	}
	n, err := db.exec(ctx, `UPDATE tokens SET revoked_at = `+db.ph(1)+` WHERE revoked_at IS NULL AND `+col+` = `+db.ph(2), when, val)
	if err != nil {
		return 0, fmt.Errorf("revoke %s: %w", what, err)
	}
	return int(n), nil
}

const intakeColumns = `batch_id, box, blob, size, source, source_name, received_at, workflow_id, started_at, attempts, last_error`

func (db intakeDB) recordIntake(ctx context.Context, in Intake) (bool, error) {
	if in.BatchID == "" || in.Blob == "" || in.WorkflowID == "" || in.Source == "" {
		return false, errors.New("record intake: batch id, blob, workflow id and source are required")
	}
	received, err := nanos(in.ReceivedAt)
	if err != nil {
		return false, fmt.Errorf("record intake %s: received_at: %w", in.BatchID, err)
	}
	started, err := optNanos(in.StartedAt)
	if err != nil {
		return false, fmt.Errorf("record intake %s: started_at: %w", in.BatchID, err)
	}
	if len(in.LastError) > maxIntakeError {
		in.LastError = in.LastError[:maxIntakeError]
	}
	n, err := db.exec(ctx, `INSERT INTO intake (`+intakeColumns+`) VALUES (`+db.phs(11)+`)
		ON CONFLICT (batch_id) DO NOTHING`,
		in.BatchID, in.Box, in.Blob, in.Size, in.Source, in.SourceName, received, in.WorkflowID, started, in.Attempts, in.LastError)
	if err != nil {
		return false, fmt.Errorf("record intake %s: %w", in.BatchID, err)
	}
	return n == 1, nil
}

func (db intakeDB) intakes(ctx context.Context, what, tail string, args ...any) ([]Intake, error) {
	rows, closeRows, err := db.query(ctx, `SELECT `+intakeColumns+` FROM intake`+tail, args...)
	if err != nil {
		return nil, fmt.Errorf("query %s: %w", what, err)
	}
	defer closeRows()
	var out []Intake
	for rows.Next() {
		var in Intake
		var received int64
		var started *int64
		var attempts int64
		if err := rows.Scan(&in.BatchID, &in.Box, &in.Blob, &in.Size, &in.Source, &in.SourceName,
			&received, &in.WorkflowID, &started, &attempts, &in.LastError); err != nil {
			return nil, fmt.Errorf("read %s: %w", what, err)
		}
		in.ReceivedAt, in.StartedAt, in.Attempts = fromNanos(received), fromOptNanos(started), int(attempts)
		out = append(out, in)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read %s: %w", what, err)
	}
	return out, nil
}

func (db intakeDB) intake(ctx context.Context, id string) (Intake, error) {
	ins, err := db.intakes(ctx, "intake "+id, ` WHERE batch_id = `+db.ph(1), id)
	if err != nil {
		return Intake{}, err
	}
	if len(ins) == 0 {
		return Intake{}, fmt.Errorf("intake %s: %w", id, ErrNotFound)
	}
	return ins[0], nil
}

func (db intakeDB) pendingIntakes(ctx context.Context, limit int) ([]Intake, error) {
	if limit < 1 {
		return nil, fmt.Errorf("pending intakes: limit %d: must be at least 1", limit)
	}
	return db.intakes(ctx, "pending intakes",
		fmt.Sprintf(` WHERE started_at IS NULL ORDER BY received_at, batch_id LIMIT %d`, limit))
}

func (db intakeDB) countPendingIntakes(ctx context.Context) (int, error) {
	rows, closeRows, err := db.query(ctx, `SELECT COUNT(*) FROM intake WHERE started_at IS NULL`)
	if err != nil {
		return 0, fmt.Errorf("count pending intakes: %w", err)
	}
	defer closeRows()
	var n int64
	if rows.Next() {
		if err := rows.Scan(&n); err != nil {
			return 0, fmt.Errorf("count pending intakes: %w", err)
		}
	}
	if err := rows.Err(); err != nil {
		return 0, fmt.Errorf("count pending intakes: %w", err)
	}
	return int(n), nil
}

// markIntake runs an update of a pending intake; when it changes nothing
// the intake must exist (started already), or it is ErrNotFound.
func (db intakeDB) markIntake(ctx context.Context, what, id, set string, args ...any) error {
	args = append(args, id)
	n, err := db.exec(ctx, `UPDATE intake SET `+set+` WHERE started_at IS NULL AND batch_id = `+db.ph(len(args)), args...)
	if err != nil {
		return fmt.Errorf("%s %s: %w", what, id, err)
	}
	if n == 0 {
		if _, err := db.intake(ctx, id); err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
	}
	return nil
}

func (db intakeDB) markIntakeStarted(ctx context.Context, id string, at time.Time) error {
	when, err := nanos(at)
	if err != nil {
		return fmt.Errorf("mark intake %s started: %w", id, err)
	}
	return db.markIntake(ctx, "mark intake started", id,
		`started_at = `+db.ph(1)+`, attempts = attempts + 1, last_error = ''`, when)
}

func (db intakeDB) markIntakeFailed(ctx context.Context, id, reason string) error {
	if len(reason) > maxIntakeError {
		reason = reason[:maxIntakeError]
	}
	return db.markIntake(ctx, "mark intake failed", id,
		`attempts = attempts + 1, last_error = `+db.ph(1), reason)
}

func (db intakeDB) deleteIntakesBefore(ctx context.Context, before time.Time, limit int) (int, error) {
	if limit < 1 {
		return 0, fmt.Errorf("delete intakes: limit %d: must be at least 1", limit)
	}
	n, err := db.exec(ctx, fmt.Sprintf(`DELETE FROM intake WHERE batch_id IN (
		SELECT batch_id FROM intake WHERE started_at IS NOT NULL AND received_at < %s
		ORDER BY received_at LIMIT %d)`, db.ph(1), limit), clampNanos(before))
	if err != nil {
		return 0, fmt.Errorf("delete intakes received before %s: %w", before.UTC().Format(time.RFC3339), err)
	}
	return int(n), nil
}

// PutToken stores a new token; see IntakeStore.
func (s *SQLite) PutToken(ctx context.Context, t Token) error { return s.intakeDB().putToken(ctx, t) }

// TokenByHash looks a token up by its hash; see IntakeStore.
func (s *SQLite) TokenByHash(ctx context.Context, hash string) (Token, error) {
	return s.intakeDB().tokenByHash(ctx, hash)
}

// RevokeTokens revokes a token or a box's tokens; see IntakeStore.
func (s *SQLite) RevokeTokens(ctx context.Context, box, id string, at time.Time) (int, error) {
	return s.intakeDB().revokeTokens(ctx, box, id, at)
}

// Tokens lists tokens; see IntakeStore.
func (s *SQLite) Tokens(ctx context.Context, box string) ([]Token, error) {
	return s.intakeDB().listTokens(ctx, box)
}

// RecordIntake records an accepted batch once; see IntakeStore.
func (s *SQLite) RecordIntake(ctx context.Context, in Intake) (bool, error) {
	return s.intakeDB().recordIntake(ctx, in)
}

// Intake returns the intake of a batch; see IntakeStore.
func (s *SQLite) Intake(ctx context.Context, batchID string) (Intake, error) {
	return s.intakeDB().intake(ctx, batchID)
}

// PendingIntakes returns the outbox, oldest first; see IntakeStore.
func (s *SQLite) PendingIntakes(ctx context.Context, limit int) ([]Intake, error) {
	return s.intakeDB().pendingIntakes(ctx, limit)
}

// CountPendingIntakes counts the outbox; see IntakeStore.
func (s *SQLite) CountPendingIntakes(ctx context.Context) (int, error) {
	return s.intakeDB().countPendingIntakes(ctx)
}

// MarkIntakeStarted records a started workflow; see IntakeStore.
func (s *SQLite) MarkIntakeStarted(ctx context.Context, batchID string, at time.Time) error {
	return s.intakeDB().markIntakeStarted(ctx, batchID, at)
}

// MarkIntakeFailed records a failed start; see IntakeStore.
func (s *SQLite) MarkIntakeFailed(ctx context.Context, batchID, reason string) error {
	return s.intakeDB().markIntakeFailed(ctx, batchID, reason)
}

// DeleteIntakesBefore deletes a page of old started intakes; see IntakeStore.
func (s *SQLite) DeleteIntakesBefore(ctx context.Context, before time.Time, limit int) (int, error) {
	return s.intakeDB().deleteIntakesBefore(ctx, before, limit)
}

// PutToken stores a new token; see IntakeStore.
func (p *Postgres) PutToken(ctx context.Context, t Token) error { return p.intakeDB().putToken(ctx, t) }

// TokenByHash looks a token up by its hash; see IntakeStore.
func (p *Postgres) TokenByHash(ctx context.Context, hash string) (Token, error) {
	return p.intakeDB().tokenByHash(ctx, hash)
}

// RevokeTokens revokes a token or a box's tokens; see IntakeStore.
func (p *Postgres) RevokeTokens(ctx context.Context, box, id string, at time.Time) (int, error) {
	return p.intakeDB().revokeTokens(ctx, box, id, at)
}

// Tokens lists tokens; see IntakeStore.
func (p *Postgres) Tokens(ctx context.Context, box string) ([]Token, error) {
	return p.intakeDB().listTokens(ctx, box)
}

// RecordIntake records an accepted batch once; see IntakeStore.
func (p *Postgres) RecordIntake(ctx context.Context, in Intake) (bool, error) {
	return p.intakeDB().recordIntake(ctx, in)
}

// Intake returns the intake of a batch; see IntakeStore.
func (p *Postgres) Intake(ctx context.Context, batchID string) (Intake, error) {
	return p.intakeDB().intake(ctx, batchID)
}

// PendingIntakes returns the outbox, oldest first; see IntakeStore.
func (p *Postgres) PendingIntakes(ctx context.Context, limit int) ([]Intake, error) {
	return p.intakeDB().pendingIntakes(ctx, limit)
}

// CountPendingIntakes counts the outbox; see IntakeStore.
func (p *Postgres) CountPendingIntakes(ctx context.Context) (int, error) {
	return p.intakeDB().countPendingIntakes(ctx)
}

// MarkIntakeStarted records a started workflow; see IntakeStore.
func (p *Postgres) MarkIntakeStarted(ctx context.Context, batchID string, at time.Time) error {
	return p.intakeDB().markIntakeStarted(ctx, batchID, at)
}

// MarkIntakeFailed records a failed start; see IntakeStore.
func (p *Postgres) MarkIntakeFailed(ctx context.Context, batchID, reason string) error {
	return p.intakeDB().markIntakeFailed(ctx, batchID, reason)
}

// DeleteIntakesBefore deletes a page of old started intakes; see IntakeStore.
func (p *Postgres) DeleteIntakesBefore(ctx context.Context, before time.Time, limit int) (int, error) {
	return p.intakeDB().deleteIntakesBefore(ctx, before, limit)
}
