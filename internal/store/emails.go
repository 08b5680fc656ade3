package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// emailQueries are the statements of the email and stats methods; ph turns
// the n-th placeholder into the driver's syntax.
type emailQueries struct{ ph func(int) string }

func (q emailQueries) insert() string {
	return `INSERT INTO emails (message_id, fingerprint, kind, recipients, subject, sent_at)
		VALUES (` + q.ph(1) + `, ` + q.ph(2) + `, ` + q.ph(3) + `, ` + q.ph(4) + `, ` + q.ph(5) + `, ` + q.ph(6) + `)
		ON CONFLICT (message_id) DO NOTHING`
}

func (q emailQueries) exists() string {
	return `SELECT COUNT(*) FROM emails WHERE message_id = ` + q.ph(1)
}

func (q emailQueries) list() string {
	return `SELECT message_id, fingerprint, kind, recipients, subject, sent_at FROM emails
		WHERE fingerprint = ` + q.ph(1) + ` ORDER BY sent_at, message_id`
}

const statsQuery = `SELECT
	(SELECT COUNT(*) FROM boxes),
	(SELECT COUNT(*) FROM samples) + (SELECT COALESCE(SUM(n), 0) FROM sample_chunks),
	(SELECT COUNT(*) FROM batches),
	(SELECT COALESCE(SUM(rejected), 0) FROM batches),
	(SELECT COUNT(*) FROM findings),
	(SELECT COUNT(*) FROM emails)`

func emailArgs(e EmailRecord) ([]any, error) {
	if e.MessageID == "" || e.Fingerprint == "" {
		return nil, fmt.Errorf("record email: message id and fingerprint are required")
	}
	to := e.To
	if to == nil {
		to = []string{}
	}
	rcpt, err := json.Marshal(to)
	if err != nil {
		return nil, fmt.Errorf("record email %s: %w", e.MessageID, err)
	}
	return []any{e.MessageID, e.Fingerprint, e.Kind, string(rcpt), e.Subject, e.SentAt.UnixNano()}, nil
}

// emailScanner reads rows of emailQueries.list.
type emailScanner interface {
	Scan(dest ...any) error
	Next() bool
	Err() error
}

func scanEmails(rows emailScanner) ([]EmailRecord, error) {
	var out []EmailRecord
	for rows.Next() {
		var e EmailRecord
		var rcpt string
		var sent int64
		if err := rows.Scan(&e.MessageID, &e.Fingerprint, &e.Kind, &rcpt, &e.Subject, &sent); err != nil {
			return nil, fmt.Errorf("read emails: %w", err)
		}
		if err := json.Unmarshal([]byte(rcpt), &e.To); err != nil {
			return nil, fmt.Errorf("read emails: recipients of %s: %w", e.MessageID, err)
		}
		e.SentAt = time.Unix(0, sent).UTC()
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read emails: %w", err)
	}
	return out, nil
}

var sqliteEmails = emailQueries{ph: sqlitePH}

// RecordEmail records a sent email; see Store.
func (s *SQLite) RecordEmail(ctx context.Context, e EmailRecord) error {
	args, err := emailArgs(e)
	if err != nil {
		return err
	}
	if _, err := s.w.ExecContext(ctx, sqliteEmails.insert(), args...); err != nil {
		return fmt.Errorf("record email %s: %w", e.MessageID, err)
	}
	return nil
}

// EmailSent reports whether a Message-ID was recorded; see Store.
func (s *SQLite) EmailSent(ctx context.Context, messageID string) (bool, error) {
	var n int
	if err := s.r.QueryRowContext(ctx, sqliteEmails.exists(), messageID).Scan(&n); err != nil {
		return false, fmt.Errorf("look up email %s: %w", messageID, err)
	}
	return n > 0, nil
}

// Emails returns the emails of a fingerprint; see Store.
func (s *SQLite) Emails(ctx context.Context, fingerprint string) ([]EmailRecord, error) {
	rows, err := s.r.QueryContext(ctx, sqliteEmails.list(), fingerprint)
	if err != nil {
		return nil, fmt.Errorf("query emails of %s: %w", fingerprint, err)
	}
	defer func() { _ = rows.Close() }()
	return scanEmails(rows)
}

// Stats counts what the store holds; see Store.
func (s *SQLite) Stats(ctx context.Context) (Stats, error) {
	var st Stats
	err := s.r.QueryRowContext(ctx, statsQuery).Scan(&st.Boxes, &st.Samples, &st.Batches, &st.Rejected, &st.Findings, &st.Emails)
	if err != nil {
		return Stats{}, fmt.Errorf("read stats: %w", err)
	}
	return st, nil
}

var postgresEmails = emailQueries{ph: postgresPH}

// RecordEmail records a sent email; see Store.
func (p *Postgres) RecordEmail(ctx context.Context, e EmailRecord) error {
	args, err := emailArgs(e)
	if err != nil {
		return err
	}
	if _, err := p.pool.Exec(ctx, postgresEmails.insert(), args...); err != nil {
		return fmt.Errorf("record email %s: %w", e.MessageID, err)
	}
	return nil
}

// EmailSent reports whether a Message-ID was recorded; see Store.
func (p *Postgres) EmailSent(ctx context.Context, messageID string) (bool, error) {
	var n int
	if err := p.pool.QueryRow(ctx, postgresEmails.exists(), messageID).Scan(&n); err != nil {
		return false, fmt.Errorf("look up email %s: %w", messageID, err)
	}
	return n > 0, nil
}

// Emails returns the emails of a fingerprint; see Store.
func (p *Postgres) Emails(ctx context.Context, fingerprint string) ([]EmailRecord, error) {
	rows, err := p.pool.Query(ctx, postgresEmails.list(), fingerprint)
	if err != nil {
		return nil, fmt.Errorf("query emails of %s: %w", fingerprint, err)
	}
	defer rows.Close()
	return scanEmails(rows)
}

// Stats counts what the store holds; see Store.
func (p *Postgres) Stats(ctx context.Context) (Stats, error) {
	var st Stats
	err := p.pool.QueryRow(ctx, statsQuery).Scan(&st.Boxes, &st.Samples, &st.Batches, &st.Rejected, &st.Findings, &st.Emails)
	if err != nil {
		return Stats{}, fmt.Errorf("read stats: %w", err)
	}
	return st, nil
}

var (
	_ emailScanner = (*sql.Rows)(nil)
	_ emailScanner = pgx.Rows(nil)
)
