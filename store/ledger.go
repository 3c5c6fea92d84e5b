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
	// ActionIntent: a tag is about to be written (NewDigest); recorded
	// before the registry is asked, so that a tag is never in the registry
	// without the ledger knowing who meant to write it. A push or force
	// entry with the same repository, tag, build and digest confirms it;
	// an abandoned entry says it did not happen.
	ActionIntent = "intent"
	// ActionAbandoned: an intent whose tag write did not happen (the
	// registry refused it, or the tag names something else).
	ActionAbandoned = "abandoned"
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
	// Digest is what the last push or force set ("" when nothing is
	// confirmed yet, only intended).
	Digest string
	Last   Entry
	// Pending are intents to write the tag that nothing has confirmed or
	// abandoned yet: the tag may name any of their digests.
	Pending []Entry
}

// Names reports whether the ledger accounts for the tag naming digest: the
// last confirmed write, or an intent not yet settled.
func (t TagState) Names(digest string) bool {
	if t.Digest == digest {
		return true
	}
	for _, p := range t.Pending {
		if p.NewDigest == digest {
			return true
		}
	}
	return false
}

// Tags returns, for every tag the ledger knows, the digest its last
// effective entry (push or force) set, and the intents still pending.
// Refused and abandoned entries change nothing.
func (s *Store) Tags(ctx context.Context) (map[string]TagState, error) {
	entries, err := s.query(ctx, entryColumns+` WHERE id IN (SELECT max(id) FROM ledger WHERE action IN (?, ?) GROUP BY repository, tag)`, ActionPush, ActionForce)
	if err != nil {
		return nil, err
	}
	out := map[string]TagState{}
	for _, e := range entries {
		out[e.Repository+":"+e.Tag] = TagState{Repository: e.Repository, Tag: e.Tag, Digest: e.NewDigest, Last: e}
	}
	pending, err := s.PendingIntents(ctx)
	if err != nil {
		return nil, err
	}
	for _, e := range pending {
		k := e.Repository + ":" + e.Tag
		st := out[k]
		if st.Tag == "" {
			st = TagState{Repository: e.Repository, Tag: e.Tag, Last: e}
		}
		st.Pending = append(st.Pending, e)
		out[k] = st
	}
	return out, nil
}

// PendingIntents returns the intents nothing has confirmed or abandoned
// yet, oldest first: tag writes that may or may not have reached the
// registry (the process ended between asking the registry and recording
// the answer).
func (s *Store) PendingIntents(ctx context.Context) ([]Entry, error) {
	return s.query(ctx, entryColumns+` AS i WHERE i.action = ? AND NOT EXISTS (
		SELECT 1 FROM ledger AS c WHERE c.id > i.id AND c.repository = i.repository AND c.tag = i.tag
			AND c.build_id = i.build_id AND c.new_digest = i.new_digest AND c.action IN (?, ?, ?))
		ORDER BY i.id`, ActionIntent, ActionPush, ActionForce, ActionAbandoned)
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
