package store

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Ledger actions.
const (
	// ActionPush: a tag was created for a newly pushed image.
	ActionPush = "push"
	// ActionForce: a tag was moved from another digest by --force.
	ActionForce = "force"
	// ActionRefused: a push was refused because the tag names another digest.
	ActionRefused = "refused"
)

// Entry is one line of the push ledger.
type Entry struct {
	ID         int64     `json:"id"`
	Time       time.Time `json:"time"`
	Actor      string    `json:"actor"`
	Action     string    `json:"action"`
	Repository string    `json:"repository"`
	Tag        string    `json:"tag"`
	OldDigest  string    `json:"oldDigest,omitempty"`
	NewDigest  string    `json:"newDigest,omitempty"`
	BuildID    string    `json:"buildId,omitempty"`
	Note       string    `json:"note,omitempty"`
}

// Append adds entries to the ledger, all or none. Time defaults to now.
func (s *Store) Append(ctx context.Context, entries ...Entry) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	for _, e := range entries {
		if e.Repository == "" || e.Tag == "" || e.Action == "" {
			return errors.New("ledger entry needs a repository, a tag and an action")
		}
		if e.Time.IsZero() {
			e.Time = time.Now()
		}
		if e.Actor == "" {
			e.Actor = "unknown"
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO ledger(time, actor, action, repository, tag, old_digest, new_digest, build_id, note)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			e.Time.UTC().Format(time.RFC3339Nano), e.Actor, e.Action, e.Repository, e.Tag, e.OldDigest, e.NewDigest, e.BuildID, e.Note); err != nil {
			return fmt.Errorf("appending to the ledger: %w", err)
		}
	}
	return tx.Commit()
}

// LedgerFilter selects ledger entries; zero fields match everything.
type LedgerFilter struct {
	Repository string
	Tag        string
	BuildID    string
	Since      time.Time
	// Limit keeps the newest N entries (still returned oldest first).
	Limit int
}

// Entries returns matching entries, oldest first.
func (s *Store) Entries(ctx context.Context, f LedgerFilter) ([]Entry, error) {
	var where []string
	var args []any
	if f.Repository != "" {
		where, args = append(where, "repository = ?"), append(args, f.Repository)
	}
	if f.Tag != "" {
		where, args = append(where, "tag = ?"), append(args, f.Tag)
	}
	if f.BuildID != "" {
		where, args = append(where, "build_id = ?"), append(args, f.BuildID)
	}
	if !f.Since.IsZero() {
		where, args = append(where, "time >= ?"), append(args, f.Since.UTC().Format(time.RFC3339Nano))
	}
	q := entryColumns
	if len(where) > 0 {
		q += " WHERE " + strings.Join(where, " AND ")
	}
	q += " ORDER BY id DESC"
	if f.Limit > 0 {
		q += fmt.Sprintf(" LIMIT %d", f.Limit)
	}
	out, err := s.query(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	for i, j := 0, len(out)-1; i < j; i, j = i+1, j-1 {
		out[i], out[j] = out[j], out[i]
	}
	return out, nil
}

// TagState is where the ledger says a tag points.
type TagState struct {
	Repository string
	Tag        string
	Digest     string
	Last       Entry
}

// Tags returns, for every tag the ledger knows, the digest its last
// effective entry (push or force) set. Refused entries change nothing.
func (s *Store) Tags(ctx context.Context) (map[string]TagState, error) {
	entries, err := s.query(ctx, entryColumns+` WHERE id IN (SELECT max(id) FROM ledger WHERE action IN (?, ?) GROUP BY repository, tag)`, ActionPush, ActionForce)
	if err != nil {
		return nil, err
	}
	out := map[string]TagState{}
	for _, e := range entries {
		out[e.Repository+":"+e.Tag] = TagState{Repository: e.Repository, Tag: e.Tag, Digest: e.NewDigest, Last: e}
	}
	return out, nil
}

const entryColumns = `SELECT id, time, actor, action, repository, tag, old_digest, new_digest, build_id, note FROM ledger`

// query runs a SELECT of entryColumns and scans its rows.
func (s *Store) query(ctx context.Context, q string, args ...any) ([]Entry, error) {
	rows, err := s.db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []Entry
	for rows.Next() {
		var e Entry
		var ts string
		if err := rows.Scan(&e.ID, &ts, &e.Actor, &e.Action, &e.Repository, &e.Tag, &e.OldDigest, &e.NewDigest, &e.BuildID, &e.Note); err != nil {
			return nil, err
		}
		if e.Time, err = time.Parse(time.RFC3339Nano, ts); err != nil {
			return nil, fmt.Errorf("ledger entry %d: %w", e.ID, err)
		}
		out = append(out, e)
	}
	return out, rows.Err()
}
