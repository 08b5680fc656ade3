package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"
)

// prepareBatchBoxes checks a batch's boxes and returns them sorted by id
// without duplicates (the last of equal ids wins), so that writers lock rows
// in the same order.
func prepareBatchBoxes(batch string, boxes []BatchBox) ([]BatchBox, error) {
	if batch == "" {
		return nil, errors.New("add batch boxes: empty batch id")
	}
	out := make([]BatchBox, 0, len(boxes))
	for i, b := range boxes {
		if b.ID == "" {
			return nil, fmt.Errorf("add batch boxes of %q: box %d: empty id", batch, i)
		}
		out = append(out, b)
	}
	slices.SortStableFunc(out, func(a, b BatchBox) int { return strings.Compare(a.ID, b.ID) })
	// Keep the last of equal ids.
	dedup := out[:0]
	for i, b := range out {
		if i+1 < len(out) && out[i+1].ID == b.ID {
			continue
		}
		dedup = append(dedup, b)
	}
	return dedup, nil
}

// batchBoxFilter builds the WHERE and LIMIT of a batch box page.
func batchBoxFilter(q BatchBoxQuery, ph func(int) string, unknown any) (string, []any) {
	where := " WHERE batch = " + ph(1)
	args := []any{q.Batch}
	if q.UnknownOnly {
		args = append(args, unknown)
		where += " AND unknown = " + ph(len(args))
	}
	if q.After != "" {
		args = append(args, q.After)
		where += " AND box > " + ph(len(args))
	}
	where += " ORDER BY box"
	if q.Limit > 0 {
		where += fmt.Sprintf(" LIMIT %d", q.Limit)
	}
	return where, args
}

// AddBatchBoxes records boxes a batch touched in one transaction; see Store.
func (s *SQLite) AddBatchBoxes(ctx context.Context, batch string, boxes []BatchBox) error {
	rows, err := prepareBatchBoxes(batch, boxes)
	if err != nil || len(rows) == 0 {
		return err
	}
	return s.inTx(ctx, "add batch boxes of "+batch, func(tx *sql.Tx) error {
		stmt, err := tx.PrepareContext(ctx, `INSERT INTO batch_boxes (batch, box, unknown) VALUES (?, ?, ?)
			ON CONFLICT (batch, box) DO UPDATE SET unknown = excluded.unknown`)
		if err != nil {
			return err
		}
		defer func() { _ = stmt.Close() }()
		for _, b := range rows {
			unknown := 0
			if b.Unknown {
				unknown = 1
			}
			if _, err := stmt.ExecContext(ctx, batch, b.ID, unknown); err != nil {
				return fmt.Errorf("box %s: %w", b.ID, err)
			}
		}
		return nil
	})
}

// BatchBoxes returns a page of a batch's box ids; see Store.
func (s *SQLite) BatchBoxes(ctx context.Context, q BatchBoxQuery) ([]string, error) {
	tail, args := batchBoxFilter(q, sqlitePH, 1)
	rows, err := s.r.QueryContext(ctx, `SELECT box FROM batch_boxes`+tail, args...)
	if err != nil {
		return nil, fmt.Errorf("query boxes of batch %q: %w", q.Batch, err)
	}
	defer func() { _ = rows.Close() }()
	return scanIDs(rows, q.Batch)
}

// CountBatchBoxes counts a batch's boxes; see Store.
func (s *SQLite) CountBatchBoxes(ctx context.Context, batch string) (int, int, error) {
	var n, unknown int
	err := s.r.QueryRowContext(ctx, `SELECT COUNT(*), COALESCE(SUM(unknown), 0) FROM batch_boxes WHERE batch = ?`, batch).Scan(&n, &unknown)
	if err != nil {
		return 0, 0, fmt.Errorf("count boxes of batch %q: %w", batch, err)
	}
	return n, unknown, nil
}

// AddBatchBoxes records boxes a batch touched in one statement; see Store.
func (p *Postgres) AddBatchBoxes(ctx context.Context, batch string, boxes []BatchBox) error {
	rows, err := prepareBatchBoxes(batch, boxes)
	if err != nil || len(rows) == 0 {
		return err
	}
	ids := make([]string, len(rows))
	unknown := make([]bool, len(rows))
	for i, b := range rows {
		ids[i], unknown[i] = b.ID, b.Unknown
	}
	_, err = p.pool.Exec(ctx, `INSERT INTO batch_boxes (batch, box, unknown)
		SELECT $1, box, unknown FROM unnest($2::text[], $3::boolean[]) AS u(box, unknown) ORDER BY box
		ON CONFLICT (batch, box) DO UPDATE SET unknown = excluded.unknown`, batch, ids, unknown)
	if err != nil {
		return fmt.Errorf("add batch boxes of %s: %w", batch, err)
	}
	return nil
}

// BatchBoxes returns a page of a batch's box ids; see Store.
func (p *Postgres) BatchBoxes(ctx context.Context, q BatchBoxQuery) ([]string, error) {
	tail, args := batchBoxFilter(q, postgresPH, true)
	rows, err := p.pool.Query(ctx, `SELECT box FROM batch_boxes`+tail, args...)
	if err != nil {
		return nil, fmt.Errorf("query boxes of batch %q: %w", q.Batch, err)
	}
	defer rows.Close()
	return scanIDs(rows, q.Batch)
}

// CountBatchBoxes counts a batch's boxes; see Store.
func (p *Postgres) CountBatchBoxes(ctx context.Context, batch string) (int, int, error) {
	var n, unknown int
	err := p.pool.QueryRow(ctx, `SELECT COUNT(*), COUNT(*) FILTER (WHERE unknown) FROM batch_boxes WHERE batch = $1`, batch).Scan(&n, &unknown)
	if err != nil {
		return 0, 0, fmt.Errorf("count boxes of batch %q: %w", batch, err)
	}
	return n, unknown, nil
}

// idRows is what scanIDs reads: database/sql's and pgx's rows alike.
type idRows interface {
	Next() bool
	Scan(dest ...any) error
	Err() error
}

// scanIDs reads one id per row.
func scanIDs(rows idRows, batch string) ([]string, error) {
	var out []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, fmt.Errorf("query boxes of batch %q: %w", batch, err)
		}
		out = append(out, id)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("query boxes of batch %q: %w", batch, err)
	}
	return out, nil
}
