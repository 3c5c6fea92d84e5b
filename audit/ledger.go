package audit

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/sailmaker/sailmaker/store"
)

// LedgerResult is a read of the push ledger, oldest entry first.
type LedgerResult struct {
	Filter  store.LedgerFilter `json:"-"`
	Entries []store.Entry      `json:"entries"`
	Notes   []string           `json:"notes,omitempty"`
}

// Ledger reads the push ledger: every push, forced move and refusal.
func (a *Auditor) Ledger(ctx context.Context, f store.LedgerFilter) (*LedgerResult, error) {
	if f.Limit < 0 {
		return nil, fmt.Errorf("%w: limit %d is negative", ErrBadInput, f.Limit)
	}
	entries, err := a.ledger.Entries(ctx, f)
	if err != nil {
		return nil, ledgerErr(err)
	}
	if entries == nil {
		entries = []store.Entry{}
	}
	out := &LedgerResult{Filter: f, Entries: entries}
	if a.ledgerNote != "" {
		out.Notes = append(out.Notes, a.ledgerNote)
	}
	return out, nil
}

// Header implements Tabular.
func (l *LedgerResult) Header() []string {
	return []string{"ID", "TIME", "ACTOR", "ACTION", "REPOSITORY", "TAG", "OLD DIGEST", "NEW DIGEST", "BUILD", "NOTE"}
}

// Rows implements Tabular.
func (l *LedgerResult) Rows() [][]string {
	var rows [][]string
	for _, e := range l.Entries {
		rows = append(rows, []string{strconv.FormatInt(e.ID, 10), e.Time.UTC().Format(time.RFC3339), e.Actor, e.Action, e.Repository, e.Tag, e.OldDigest, e.NewDigest, e.BuildID, e.Note})
	}
	return rows
}

// Partial implements Tabular.
func (l *LedgerResult) Partial() Warnings { return nil }

// ledgerError is a failure to read the ledger (the store), not the
// registry.
type ledgerError struct{ err error }

func (e *ledgerError) Error() string { return "reading the ledger: " + e.err.Error() }
func (e *ledgerError) Unwrap() error { return e.err }

func ledgerErr(err error) error { return &ledgerError{err} }
