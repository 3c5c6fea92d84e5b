package builder

import (
	"context"
	"fmt"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/stretchr/testify/require"

	"github.com/sailmaker/sailmaker/registry"
	"github.com/sailmaker/sailmaker/store"
)

type memLedger struct{ entries []store.Entry }

func (m *memLedger) Tags(context.Context) (map[string]store.TagState, error) {
	out := map[string]store.TagState{}
	for _, e := range m.entries {
		if e.Action == store.ActionPush || e.Action == store.ActionForce {
			out[e.Repository+":"+e.Tag] = store.TagState{Repository: e.Repository, Tag: e.Tag, Digest: e.NewDigest, Last: e}
		}
	}
	return out, nil
}

func (m *memLedger) Append(_ context.Context, e ...store.Entry) error {
	m.entries = append(m.entries, e...)
	return nil
}

func hash(c string) v1.Hash {
	return v1.Hash{Algorithm: "sha256", Hex: fmt.Sprintf("%064s", c)}
}

func TestRecordPushesForcedAndRefused(t *testing.T) {
	ctx := context.Background()
	tag := func(s string) name.Tag { tg, err := name.NewTag(s); require.NoError(t, err); return tg }
	l := &memLedger{}
	o := Options{Ledger: l, Trigger: Trigger{Actor: "alice", BuildID: "b-1", DeliveryID: "d-9"}}
	prev := hash("a")
	pushed := []registry.Pushed{
		{Tag: tag("reg.local/x/pilot:1.0"), Digest: hash("b")},
		{Tag: tag("reg.local/x/proxyv2:1.0"), Digest: hash("c"), Previous: &prev, Forced: true},
		{Tag: tag("reg.local/x/other:1.0"), Digest: hash("d"), Unchanged: true},
	}
	require.NoError(t, record(ctx, o, pushed, nil))
	require.Len(t, l.entries, 3, "an unchanged tag the ledger does not know yet is recorded")
	require.Contains(t, l.entries[2].Note, "recorded by a later build")
	require.NoError(t, record(ctx, o, pushed[2:], nil))
	require.Len(t, l.entries, 3, "an unchanged tag the ledger knows is not recorded again")
	l.entries = l.entries[:2]
	require.Equal(t, store.Entry{Actor: "alice", Action: store.ActionPush, Repository: "x/pilot", Tag: "1.0", NewDigest: hash("b").String(), BuildID: "b-1", Note: "delivery d-9"}, l.entries[0])
	require.Equal(t, store.ActionForce, l.entries[1].Action)
	require.Equal(t, prev.String(), l.entries[1].OldDigest)

	l.entries = nil
	err := fmt.Errorf("push: %w", &registry.TagMovedError{Tag: tag("reg.local/x/pilot:1.0"), Current: hash("b"), New: hash("e")})
	require.NoError(t, record(ctx, o, nil, err))
	require.Len(t, l.entries, 1)
	require.Equal(t, store.ActionRefused, l.entries[0].Action)
	require.Equal(t, hash("b").String(), l.entries[0].OldDigest)
	require.Equal(t, hash("e").String(), l.entries[0].NewDigest)

	l.entries = nil
	require.NoError(t, record(ctx, o, nil, fmt.Errorf("network down")))
	require.Empty(t, l.entries, "a failed push changed no tag")
}
