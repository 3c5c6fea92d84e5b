package main

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sailmaker/sailmaker/audit"
	"github.com/sailmaker/sailmaker/internal/testenv"
	"github.com/sailmaker/sailmaker/store"
)

// runCLI runs the real command tree with the test's state directory and
// registry.
func runCLI(t *testing.T, stateDir string, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	var out, errb bytes.Buffer
	cmd := newRootCmd()
	cmd.SetArgs(append([]string{"--state-dir", stateDir}, args...))
	cmd.SetOut(&out)
	cmd.SetErr(&errb)
	err = cmd.ExecuteContext(context.Background())
	return out.String(), errb.String(), err
}

func TestAuditCommands(t *testing.T) {
	e := testenv.Registry(t)
	t.Setenv("SAILMAKER_REGISTRY", e.Config.Registry.Address)
	t.Setenv("SAILMAKER_SIGNING_PUB", "")
	t.Setenv("SAILMAKER_SIGNING_KEY", "")
	state := e.Config.StateDir
	img, err := random.Image(64, 1)
	require.NoError(t, err)
	tag, err := name.NewTag(e.Config.Registry.Address+"/other/tool:1", name.Insecure)
	require.NoError(t, err)
	require.NoError(t, remote.Write(tag, img))
	d, _ := img.Digest()
	st, err := store.OpenDir(context.Background(), state)
	require.NoError(t, err)
	require.NoError(t, st.Append(context.Background(), store.Entry{Actor: "alice", Action: store.ActionPush, Repository: "gone/app", Tag: "2", NewDigest: d.String()}))
	st.Close()

	out, _, err := runCLI(t, state, "audit", "images", "-o", "json")
	require.NoError(t, err)
	var imgs audit.ImagesResult
	require.NoError(t, json.Unmarshal([]byte(out), &imgs))
	require.Len(t, imgs.Images, 1)
	assert.Equal(t, audit.KindForeign, imgs.Images[0].Kind)
	assert.Equal(t, d.String(), imgs.Images[0].Digest)

	out, _, err = runCLI(t, state, "audit", "images", "-o", "csv", "--repository", "other/*")
	require.NoError(t, err)
	rows, err := csv.NewReader(bytes.NewBufferString(out)).ReadAll()
	require.NoError(t, err)
	require.Len(t, rows, 2)
	assert.Equal(t, "other/tool", rows[1][0])

	out, stderr, err := runCLI(t, state, "audit", "verify")
	require.Error(t, err, "findings make verify fail")
	assert.Contains(t, err.Error(), "not-built-by-sailmaker")
	assert.Contains(t, err.Error(), "tag-deleted")
	assert.Contains(t, out, "other/tool:1")
	assert.Contains(t, out, "gone/app:2")
	assert.Contains(t, stderr, "signatures not verified")

	out, _, err = runCLI(t, state, "audit", "ledger", "-o", "json", "--since", "1h")
	require.NoError(t, err)
	var led audit.LedgerResult
	require.NoError(t, json.Unmarshal([]byte(out), &led))
	require.Len(t, led.Entries, 1)
	assert.Equal(t, "alice", led.Entries[0].Actor)

	_, stderr, err = runCLI(t, state, "audit", "uses", "--module", "github.com/google/uuid")
	require.NoError(t, err)
	assert.Contains(t, stderr, "not searched")
	assert.Contains(t, stderr, "other/tool:1")

	// Scoped by prefix: nothing under it, nothing wrong.
	out, _, err = runCLI(t, state, "audit", "verify", "--prefix", "fixture")
	require.NoError(t, err)
	assert.Contains(t, out, "0 images")

	for _, bad := range [][]string{
		{"audit", "images", "-o", "yaml"},
		{"audit", "show"},
		{"audit", "show", "docker.io/library/golang:1.23"},
		{"audit", "uses"},
		{"audit", "diff", "a:1"},
		{"audit", "ledger", "--since", "yesterday"},
		{"audit", "verify", "--key", "/nonexistent.pub"},
	} {
		_, _, err := runCLI(t, state, bad...)
		assert.Error(t, err, "%v", bad)
	}
}

func TestParseSince(t *testing.T) {
	now := time.Date(2025, 1, 2, 12, 0, 0, 0, time.UTC)
	got, err := parseSince("2h", now)
	require.NoError(t, err)
	assert.Equal(t, now.Add(-2*time.Hour), got)
	got, err = parseSince("2024-12-31T00:00:00Z", now)
	require.NoError(t, err)
	assert.Equal(t, time.Date(2024, 12, 31, 0, 0, 0, 0, time.UTC), got)
	_, err = parseSince("-1h", now)
	assert.Error(t, err)
}
