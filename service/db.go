package service

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/sailmaker/sailmaker/store"
)

// schema is the service's part of the store: the build queue and the webhook
// deliveries. Each build is a row with the columns queries filter on and the
// whole record as JSON (doc); recipe_doc keeps the recipe document a build
// was queued with, so a restarted service builds exactly that.
const schema = `
CREATE TABLE builds (
	seq           INTEGER PRIMARY KEY AUTOINCREMENT,
	id            TEXT NOT NULL UNIQUE,
	state         TEXT NOT NULL,
	recipe        TEXT NOT NULL,
	recipe_digest TEXT NOT NULL,
	source        TEXT NOT NULL,
	dedup_key     TEXT NOT NULL,
	actor         TEXT NOT NULL,
	kind          TEXT NOT NULL,
	delivery_id   TEXT NOT NULL DEFAULT '',
	created       TEXT NOT NULL,
	finished      TEXT NOT NULL DEFAULT '',
	error         TEXT NOT NULL DEFAULT '',
	recipe_doc    BLOB NOT NULL,
	doc           TEXT NOT NULL
);
CREATE INDEX builds_state ON builds(state, seq);
CREATE INDEX builds_dedup ON builds(dedup_key, state);
CREATE INDEX builds_recipe ON builds(recipe, seq);
CREATE TABLE webhook_deliveries (
	id       TEXT PRIMARY KEY,
	time     TEXT NOT NULL,
	event    TEXT NOT NULL,
	repo     TEXT NOT NULL DEFAULT '',
	tag      TEXT NOT NULL DEFAULT '',
	outcome  TEXT NOT NULL,
	build_id TEXT NOT NULL DEFAULT '',
	detail   TEXT NOT NULL DEFAULT ''
);`

// Delivery outcomes.
const (
	deliveryProcessing = "processing"
	deliveryQueued     = "queued"
	deliveryIgnored    = "ignored"
	deliveryError      = "error"
)

var errNotFound = errors.New("no such build")

// db is the service's view of the store.
type db struct {
	sql *sql.DB

	// mem are records whose last change could not be written (the disk
	// was full): they are what readers see of those builds until flush
	// writes them.
	memMu sync.Mutex
	mem   map[string]*Build
}

func openDB(ctx context.Context, st *store.Store) (*db, error) {
	if err := st.Migrate(ctx, "service-v1", schema); err != nil {
		return nil, fmt.Errorf("creating the service's tables: %w", err)
	}
	return &db{sql: st.DB(), mem: map[string]*Build{}}, nil
}

// inMemory returns a copy of the build's record kept in memory, if any.
func (d *db) inMemory(id string) (*Build, bool) {
	d.memMu.Lock()
	defer d.memMu.Unlock()
	b, ok := d.mem[id]
	if !ok {
		return nil, false
	}
	return copyBuild(b), true
}

func copyBuild(b *Build) *Build {
	data, _ := json.Marshal(b)
	var c Build
	_ = json.Unmarshal(data, &c)
	return &c
}

// memIDs lists the builds kept in memory whose state is (or is not) one
// of states.
func (d *db) memIDs(in bool, states ...State) []string {
	d.memMu.Lock()
	defer d.memMu.Unlock()
	var out []string
	for id, b := range d.mem {
		match := false
		for _, st := range states {
			match = match || b.State == st
		}
		if match == in {
			out = append(out, id)
		}
	}
	return out
}

// notIn is an SQL condition excluding ids ("" for none), and its args.
func notIn(ids []string) (string, []any) {
	if len(ids) == 0 {
		return "", nil
	}
	args := make([]any, len(ids))
	for i, id := range ids {
		args[i] = id
	}
	return " AND id NOT IN (?" + strings.Repeat(", ?", len(ids)-1) + ")", args
}

// keep applies fn to the build's record and keeps the result in memory
// (its write failed): readers see it, flush writes it.
func (d *db) keep(ctx context.Context, id string, fn func(*Build) error) (*Build, error) {
	b, err := d.get(ctx, id)
	if err != nil {
		return nil, err
	}
	if err := fn(b); err != nil {
		return nil, err
	}
	d.memMu.Lock()
	d.mem[id] = copyBuild(b)
	d.memMu.Unlock()
	return b, nil
}

// kept lists the builds whose records are in memory only.
func (d *db) kept() []string {
	d.memMu.Lock()
	defer d.memMu.Unlock()
	out := make([]string, 0, len(d.mem))
	for id := range d.mem {
		out = append(out, id)
	}
	sort.Strings(out)
	return out
}

// flush writes a record kept in memory.
func (d *db) flush(ctx context.Context, id string) error {
	_, err := d.update(ctx, id, func(*Build) error { return nil })
	return err
}

func newBuildID(now time.Time) string {
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return now.UTC().Format("20060102-150405") + "-" + hex.EncodeToString(b)
}

func ts(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }

// insertOrJoin adds b unless an active build has the same dedup key, in
// which case it returns that one and false.
func (d *db) insertOrJoin(ctx context.Context, b *Build, dedupKey string, recipeDoc []byte) (*Build, bool, error) {
	tx, err := d.sql.BeginTx(ctx, nil)
	if err != nil {
		return nil, false, err
	}
	defer tx.Rollback()
	var doc string
	// A build whose record in memory has ended is not joined.
	exclude, args := notIn(d.memIDs(true, StateSucceeded, StateFailed, StateCancelled))
	err = tx.QueryRowContext(ctx, `SELECT doc FROM builds WHERE dedup_key = ? AND state IN (?, ?, ?, ?)`+exclude+` ORDER BY seq LIMIT 1`,
		append([]any{dedupKey, StateQueued, StateFetching, StateBuilding, StatePushing}, args...)...).Scan(&doc)
	if err == nil {
		var existing Build
		if err := json.Unmarshal([]byte(doc), &existing); err != nil {
			return nil, false, err
		}
		return &existing, false, tx.Commit()
	}
	if !errors.Is(err, sql.ErrNoRows) {
		return nil, false, err
	}
	data, err := json.Marshal(b)
	if err != nil {
		return nil, false, err
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO builds(id, state, recipe, recipe_digest, source, dedup_key, actor, kind, delivery_id, created, recipe_doc, doc)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		b.ID, b.State, b.Recipe, b.RecipeDigest, b.Source, dedupKey, b.Trigger.Actor, b.Trigger.Kind, b.Trigger.DeliveryID, ts(b.Created), recipeDoc, string(data)); err != nil {
		return nil, false, fmt.Errorf("queueing build: %w", err)
	}
	return b, true, tx.Commit()
}

func (d *db) get(ctx context.Context, id string) (*Build, error) {
	if b, ok := d.inMemory(id); ok {
		return b, nil
	}
	var doc string
	err := d.sql.QueryRowContext(ctx, `SELECT doc FROM builds WHERE id = ?`, id).Scan(&doc)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, errNotFound
	}
	if err != nil {
		return nil, err
	}
	var b Build
	return &b, json.Unmarshal([]byte(doc), &b)
}

func (d *db) recipeDoc(ctx context.Context, id string) ([]byte, error) {
	var doc []byte
	err := d.sql.QueryRowContext(ctx, `SELECT recipe_doc FROM builds WHERE id = ?`, id).Scan(&doc)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, errNotFound
	}
	return doc, err
}

// update changes one build in a transaction: fn sees the stored record and
// may change it; returning an error changes nothing.
func (d *db) update(ctx context.Context, id string, fn func(*Build) error) (*Build, error) {
	tx, err := d.sql.BeginTx(ctx, nil)
	if err != nil {
		return nil, err
	}
	defer tx.Rollback()
	var doc string
	err = tx.QueryRowContext(ctx, `SELECT doc FROM builds WHERE id = ?`, id).Scan(&doc)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, errNotFound
	}
	if err != nil {
		return nil, err
	}
	var b Build
	if err := json.Unmarshal([]byte(doc), &b); err != nil {
		return nil, err
	}
	if m, ok := d.inMemory(id); ok {
		b = *m // the record's last change, not yet written
	}
	if err := fn(&b); err != nil {
		return nil, err
	}
	if err := d.save(ctx, tx, &b); err != nil {
		return nil, err
	}
	if err := tx.Commit(); err != nil {
		return nil, err
	}
	d.memMu.Lock()
	delete(d.mem, id)
	d.memMu.Unlock()
	return &b, nil
}

func (d *db) save(ctx context.Context, tx *sql.Tx, b *Build) error {
	data, err := json.Marshal(b)
	if err != nil {
		return err
	}
	finished := ""
	if b.Finished != nil {
		finished = ts(*b.Finished)
	}
	_, err = tx.ExecContext(ctx, `UPDATE builds SET state = ?, finished = ?, error = ?, doc = ? WHERE id = ?`,
		b.State, finished, b.Error, string(data), b.ID)
	if err != nil {
		return fmt.Errorf("saving build %s: %w", b.ID, err)
	}
	return nil
}

// claim moves the oldest queued build to fetching and returns it; nil when
// none is queued.
func (d *db) claim(ctx context.Context, now time.Time) (*Build, error) {
	var id string
	exclude, args := notIn(d.memIDs(false, StateQueued))
	err := d.sql.QueryRowContext(ctx, `SELECT id FROM builds WHERE state = ?`+exclude+` ORDER BY seq LIMIT 1`, append([]any{StateQueued}, args...)...).Scan(&id)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return d.update(ctx, id, func(b *Build) error {
		if b.State != StateQueued {
			return errNotQueued
		}
		b.State = StateFetching
		b.Attempts++
		if b.Started == nil {
			b.Started = &now
		}
		b.Phases = map[State]time.Time{StateFetching: now}
		b.Error = ""
		return nil
	})
}

var errNotQueued = errors.New("the build is no longer queued")

// ListFilter selects builds; zero fields match all.
type ListFilter struct {
	States []State
	// Recipe is a recipe id (istio@1.24.2) or a recipe name (istio).
	Recipe string
	Since  time.Time
	Limit  int
}

// list returns matching builds, newest first.
func (d *db) list(ctx context.Context, f ListFilter) ([]Build, error) {
	var where []string
	var args []any
	if len(f.States) > 0 {
		ph := make([]string, len(f.States))
		for i, s := range f.States {
			ph[i] = "?"
			args = append(args, s)
		}
		where = append(where, "state IN ("+strings.Join(ph, ", ")+")")
	}
	if f.Recipe != "" {
		if strings.Contains(f.Recipe, "@") {
			where, args = append(where, "recipe = ?"), append(args, f.Recipe)
		} else {
			where, args = append(where, "substr(recipe, 1, ?) = ?"), append(args, len(f.Recipe)+1, f.Recipe+"@")
		}
	}
	if !f.Since.IsZero() {
		where, args = append(where, "created >= ?"), append(args, ts(f.Since))
	}
	q := `SELECT doc FROM builds`
	if len(where) > 0 {
		q += " WHERE " + strings.Join(where, " AND ")
	}
	q += " ORDER BY seq DESC"
	if f.Limit > 0 {
		q += fmt.Sprintf(" LIMIT %d", f.Limit)
	}
	rows, err := d.sql.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []Build{}
	seen := map[string]bool{}
	for rows.Next() {
		var doc string
		if err := rows.Scan(&doc); err != nil {
			return nil, err
		}
		var b Build
		if err := json.Unmarshal([]byte(doc), &b); err != nil {
			return nil, err
		}
		seen[b.ID] = true
		if m, ok := d.inMemory(b.ID); ok {
			if !f.matches(m) {
				continue
			}
			b = *m
		}
		out = append(out, b)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	// Records in memory whose stored state the query did not select.
	added := false
	for _, id := range d.kept() {
		if m, ok := d.inMemory(id); ok && !seen[id] && f.matches(m) {
			out, added = append(out, *m), true
		}
	}
	if added {
		sort.SliceStable(out, func(i, j int) bool { return out[i].Created.After(out[j].Created) })
		if f.Limit > 0 && len(out) > f.Limit {
			out = out[:f.Limit]
		}
	}
	return out, nil
}

// matches says whether b is selected by f.
func (f ListFilter) matches(b *Build) bool {
	if len(f.States) > 0 {
		ok := false
		for _, st := range f.States {
			ok = ok || b.State == st
		}
		if !ok {
			return false
		}
	}
	if f.Recipe != "" && b.Recipe != f.Recipe && !strings.HasPrefix(b.Recipe, f.Recipe+"@") {
		return false
	}
	return f.Since.IsZero() || !b.Created.Before(f.Since)
}

// countByState is the number of builds in each state.
func (d *db) countByState(ctx context.Context) (map[State]int, error) {
	rows, err := d.sql.QueryContext(ctx, `SELECT state, count(*) FROM builds GROUP BY state`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[State]int{}
	for rows.Next() {
		var s string
		var n int
		if err := rows.Scan(&s, &n); err != nil {
			return nil, err
		}
		out[State(s)] = n
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	// Records in memory count in their state, not their stored one.
	for _, id := range d.kept() {
		m, ok := d.inMemory(id)
		if !ok {
			continue
		}
		var stored string
		if err := d.sql.QueryRowContext(ctx, `SELECT state FROM builds WHERE id = ?`, id).Scan(&stored); err == nil && State(stored) != m.State {
			out[State(stored)]--
			out[m.State]++
		}
	}
	return out, nil
}

// delivery is one webhook delivery as recorded.
type delivery struct {
	ID, Event, Repo, Tag, Outcome, BuildID, Detail string
}

// beginDelivery records a delivery as being processed. It returns false
// when the id was seen before and not left in error (a replay); a delivery
// whose earlier processing failed may be delivered again.
func (d *db) beginDelivery(ctx context.Context, id, event string, now time.Time) (bool, *delivery, error) {
	tx, err := d.sql.BeginTx(ctx, nil)
	if err != nil {
		return false, nil, err
	}
	defer tx.Rollback()
	var prev delivery
	err = tx.QueryRowContext(ctx, `SELECT id, event, repo, tag, outcome, build_id, detail FROM webhook_deliveries WHERE id = ?`, id).
		Scan(&prev.ID, &prev.Event, &prev.Repo, &prev.Tag, &prev.Outcome, &prev.BuildID, &prev.Detail)
	switch {
	case err == nil && prev.Outcome != deliveryError:
		return false, &prev, tx.Commit()
	case err == nil:
		_, err = tx.ExecContext(ctx, `UPDATE webhook_deliveries SET time = ?, event = ?, outcome = ?, detail = '' WHERE id = ?`, ts(now), event, deliveryProcessing, id)
	case errors.Is(err, sql.ErrNoRows):
		_, err = tx.ExecContext(ctx, `INSERT INTO webhook_deliveries(id, time, event, outcome) VALUES (?, ?, ?, ?)`, id, ts(now), event, deliveryProcessing)
	}
	if err != nil {
		return false, nil, fmt.Errorf("recording delivery %s: %w", id, err)
	}
	return true, nil, tx.Commit()
}

func (d *db) endDelivery(ctx context.Context, dl delivery) error {
	_, err := d.sql.ExecContext(ctx, `UPDATE webhook_deliveries SET repo = ?, tag = ?, outcome = ?, build_id = ?, detail = ? WHERE id = ?`,
		dl.Repo, dl.Tag, dl.Outcome, dl.BuildID, dl.Detail, dl.ID)
	if err != nil {
		return fmt.Errorf("recording delivery %s: %w", dl.ID, err)
	}
	return nil
}
