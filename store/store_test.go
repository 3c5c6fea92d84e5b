package store

import (
	"context"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestLedgerAppendAndQuery(t *testing.T) {
	ctx := context.Background()
	s, err := OpenDir(ctx, t.TempDir())
	require.NoError(t, err)
	defer s.Close()

	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	require.NoError(t, s.Append(ctx,
		Entry{Time: t0, Actor: "alice", Action: ActionPush, Repository: "r/pilot", Tag: "1.0", NewDigest: "sha256:a", BuildID: "b1"},
		Entry{Time: t0.Add(time.Minute), Actor: "alice", Action: ActionPush, Repository: "r/proxy", Tag: "1.0", NewDigest: "sha256:b", BuildID: "b1"},
	))
	require.NoError(t, s.Append(ctx, Entry{Actor: "bob", Action: ActionRefused, Repository: "r/pilot", Tag: "1.0", OldDigest: "sha256:a", NewDigest: "sha256:c"}))
	require.NoError(t, s.Append(ctx, Entry{Actor: "carol", Action: ActionForce, Repository: "r/pilot", Tag: "1.0", OldDigest: "sha256:a", NewDigest: "sha256:d"}))

	all, err := s.Entries(ctx, LedgerFilter{})
	require.NoError(t, err)
	require.Len(t, all, 4)
	require.Equal(t, "alice", all[0].Actor)
	require.True(t, all[0].Time.Equal(t0))
	require.Equal(t, ActionForce, all[3].Action)

	pilot, err := s.Entries(ctx, LedgerFilter{Repository: "r/pilot", Tag: "1.0"})
	require.NoError(t, err)
	require.Len(t, pilot, 3)
	newest, err := s.Entries(ctx, LedgerFilter{Limit: 1})
	require.NoError(t, err)
	require.Equal(t, "carol", newest[0].Actor)
	byBuild, err := s.Entries(ctx, LedgerFilter{BuildID: "b1"})
	require.NoError(t, err)
	require.Len(t, byBuild, 2)

	tags, err := s.Tags(ctx)
	require.NoError(t, err)
	require.Equal(t, "sha256:d", tags["r/pilot:1.0"].Digest, "the forced move is the last effective entry; the refusal changed nothing")
	require.Equal(t, "sha256:b", tags["r/proxy:1.0"].Digest)

	require.Error(t, s.Append(ctx, Entry{Action: ActionPush, Tag: "x"}), "an entry without a repository is refused")
}

func TestLedgerIsAppendOnly(t *testing.T) {
	ctx := context.Background()
	s, err := OpenDir(ctx, t.TempDir())
	require.NoError(t, err)
	defer s.Close()
	require.NoError(t, s.Append(ctx, Entry{Actor: "a", Action: ActionPush, Repository: "r", Tag: "t", NewDigest: "sha256:a"}))
	_, err = s.DB().ExecContext(ctx, `UPDATE ledger SET new_digest = 'sha256:x'`)
	require.ErrorContains(t, err, "append-only")
	_, err = s.DB().ExecContext(ctx, `DELETE FROM ledger`)
	require.ErrorContains(t, err, "append-only")
	e, err := s.Entries(ctx, LedgerFilter{})
	require.NoError(t, err)
	require.Equal(t, "sha256:a", e[0].NewDigest)
}

func TestReopenKeepsDataAndSchema(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "db", FileName)
	s, err := Open(ctx, path)
	require.NoError(t, err)
	require.NoError(t, s.Migrate(ctx, "extra", `CREATE TABLE extra (x INTEGER)`))
	require.NoError(t, s.Append(ctx, Entry{Actor: "a", Action: ActionPush, Repository: "r", Tag: "t"}))
	require.NoError(t, s.Close())

	s, err = Open(ctx, path)
	require.NoError(t, err)
	defer s.Close()
	require.NoError(t, s.Migrate(ctx, "extra", `CREATE TABLE extra (x INTEGER)`), "a part already applied is not applied twice")
	e, err := s.Entries(ctx, LedgerFilter{})
	require.NoError(t, err)
	require.Len(t, e, 1)
}

func TestConcurrentWritersFromTwoHandles(t *testing.T) {
	// Two handles stand for the service and a CLI process on one file.
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), FileName)
	a, err := Open(ctx, path)
	require.NoError(t, err)
	defer a.Close()
	b, err := Open(ctx, path)
	require.NoError(t, err)
	defer b.Close()
	var wg sync.WaitGroup
	for i, s := range []*Store{a, b} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := 0; j < 50; j++ {
				require.NoError(t, s.Append(ctx, Entry{Actor: "w", Action: ActionPush, Repository: "r", Tag: "t", Note: string(rune('a' + i))}))
			}
		}()
	}
	wg.Wait()
	e, err := a.Entries(ctx, LedgerFilter{})
	require.NoError(t, err)
	require.Len(t, e, 100)
}
