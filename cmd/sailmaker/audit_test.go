package main

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sailmaker/sailmaker/attest"
	"github.com/sailmaker/sailmaker/audit"
	"github.com/sailmaker/sailmaker/config"
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
		{"audit", "images", "-o", "xml"},
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

// What the service mounts: the audit API over the service's store.
func TestAuditServeHandler(t *testing.T) {
	e := testenv.Registry(t)
	t.Setenv("SAILMAKER_SIGNING_PUB", "")
	img, err := random.Image(64, 1)
	require.NoError(t, err)
	tag, err := name.NewTag(e.Config.Registry.Address+"/other/tool:1", name.Insecure)
	require.NoError(t, err)
	require.NoError(t, remote.Write(tag, img))
	st, err := store.OpenDir(context.Background(), e.Config.StateDir)
	require.NoError(t, err)
	defer st.Close()
	require.NoError(t, st.Append(context.Background(), store.Entry{Actor: "bob", Action: store.ActionPush, Repository: "other/tool", Tag: "0", NewDigest: "sha256:" + strings.Repeat("0", 64)}))

	h, err := auditServeHandler(e.Config, st)
	require.NoError(t, err)
	srv := httptest.NewServer(h)
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/v1/audit/verify")
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	var rep audit.Report
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&rep))
	assert.Equal(t, []string{"not-built-by-sailmaker", "tag-deleted"}, rep.Codes(), "the service's store is the ledger")
	assert.False(t, rep.SignaturesChecked)
}

// Without --key, the public half of signing.key verifies; an unreadable
// signing.key is a note, not an error.
func TestSignatureVerifierFromSigningKey(t *testing.T) {
	dir := t.TempDir()
	priv, pub, err := attest.GenerateKey()
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "sailmaker.key"), priv, 0o600))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "sailmaker.pub"), pub, 0o644))
	cfg := config.Default()
	var notes []string
	note := func(n string) { notes = append(notes, n) }

	v, err := signatureVerifier(cfg, "", note)
	require.NoError(t, err)
	assert.Nil(t, v, "no key at all: signatures are not verified")

	cfg.Signing.Key = filepath.Join(dir, "sailmaker.key")
	v, err = signatureVerifier(cfg, "", note)
	require.NoError(t, err)
	require.NotNil(t, v)
	kv := v.(*audit.KeyVerifier)
	fromPub, err := signatureVerifier(cfg, filepath.Join(dir, "sailmaker.pub"), note)
	require.NoError(t, err)
	assert.Equal(t, fromPub, kv, "the same public key")

	cfg.Signing.Key = filepath.Join(dir, "missing.key")
	v, err = signatureVerifier(cfg, "", note)
	require.NoError(t, err)
	assert.Nil(t, v)
	require.Len(t, notes, 1)
	assert.Contains(t, notes[0], "signing.key")

	_, err = signatureVerifier(cfg, filepath.Join(dir, "sailmaker.key"), note)
	assert.Error(t, err, "a private key is not a public key")
}
