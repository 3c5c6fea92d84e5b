package audit_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sailmaker/sailmaker/audit"
	"github.com/sailmaker/sailmaker/store"
)

// Thousands of tags: every one is listed and checked; what is per digest
// (manifest, config, attachments, signature) is read once per digest.
func TestManyTags(t *testing.T) {
	if testing.Short() {
		t.Skip("pushes a thousand tags: runs without -short")
	}
	w := newWorld(t)
	s := w.seed()
	const n = 1000
	pilot, err := remote.Image(w.tag("demo/pilot", "1.0.0").Context().Digest(s.pilot1.String()))
	require.NoError(t, err)
	p, err := remote.NewPusher()
	require.NoError(t, err)
	ctx := context.Background()
	var entries []store.Entry
	for i := 0; i < n; i++ {
		tag := fmt.Sprintf("1.0.0-r%d", i)
		require.NoError(t, remote.Put(w.tag("demo/pilot", tag), pilot, remote.Reuse(p)))
		entries = append(entries, store.Entry{Actor: "tester", Action: store.ActionPush, Repository: "demo/pilot", Tag: tag, NewDigest: s.pilot1.String()})
	}
	require.NoError(t, w.store.Append(ctx, entries...))
	f := &faults{inner: remote.DefaultTransport}
	a := w.auditor(audit.WithTransport(f))
	start := time.Now()
	rep, err := a.Verify(ctx)
	require.NoError(t, err)
	took := time.Since(start)
	t.Logf("verify of %d tags: %s, %d requests", rep.Checked, took, f.count(func(string) bool { return true }))
	assert.Equal(t, n+5, rep.Checked)
	assert.Empty(t, rep.Findings)
	referrers := f.count(func(p string) bool { return strings.Contains(p, "/referrers/") })
	assert.LessOrEqual(t, referrers, 5, "one referrers read per digest, not per tag")
	assert.Equal(t, n+1, f.count(func(p string) bool { return strings.HasPrefix(p, http.MethodHead+" /v2/demo/pilot/manifests/1.0.0") }), "every tag is resolved")
}
