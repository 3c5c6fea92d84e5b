package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestServerDefaults(t *testing.T) {
	t.Setenv("SAILMAKER_CONFIG", "")
	cfg, err := Load("", t.TempDir())
	require.NoError(t, err)
	s := cfg.Server
	assert.Equal(t, DefaultListen, s.Listen)
	assert.Equal(t, 1, s.Concurrency)
	assert.Equal(t, 2*time.Hour, s.BuildTimeout)
	require.NotNil(t, s.Retries)
	assert.Equal(t, 1, *s.Retries)
	assert.Equal(t, 30*time.Second, s.ShutdownGrace)
	assert.EqualValues(t, 1<<20, s.MaxBodyBytes)
	assert.Equal(t, `^1\.\d+\.\d+$`, s.Webhook.TagPattern)
	assert.Empty(t, s.Tokens)
}

func TestServerFromFileAndEnv(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "config.yaml")
	sum := strings.Repeat("ab", 32)
	require.NoError(t, os.WriteFile(file, []byte(`
server:
  url: http://build.internal:8080
  listen: 0.0.0.0:8080
  concurrency: 2
  buildTimeout: 45m
  retries: 0
  shutdownGrace: 1m
  tokens:
    - {name: alice, role: maintainer, sha256: `+sum+`}
  webhook:
    repos: [https://github.com/istio/istio.git]
    tagPattern: '^1\.2[4-9]\.\d+$'
    go: 1.23.4
    envoySHA256: {1ed7d44031746a2ad74707202464b4bfdcb38e82: `+strings.Repeat("c", 64)+`}
`), 0o644))
	t.Setenv("SAILMAKER_TOKEN", "smk_from-env")
	t.Setenv("SAILMAKER_WEBHOOK_SECRET", "hook-secret")
	cfg, err := Load(file, dir)
	require.NoError(t, err)
	s := cfg.Server
	assert.Equal(t, "http://build.internal:8080", s.URL)
	assert.Equal(t, "smk_from-env", s.Token)
	assert.Equal(t, "hook-secret", s.Webhook.Secret)
	assert.Equal(t, 2, s.Concurrency)
	assert.Equal(t, 45*time.Minute, s.BuildTimeout)
	assert.Equal(t, 0, *s.Retries)
	assert.Equal(t, time.Minute, s.ShutdownGrace)
	assert.Equal(t, []ServerToken{{Name: "alice", Role: RoleMaintainer, SHA256: sum}}, s.Tokens)
	assert.Equal(t, "1.23.4", s.Webhook.Go)
	assert.Len(t, s.Webhook.EnvoySHA256, 1)

	t.Setenv("SAILMAKER_SERVER", "http://other:9090")
	cfg, err = Load(file, dir)
	require.NoError(t, err)
	assert.Equal(t, "http://other:9090", cfg.Server.URL)
}

func TestServerValidation(t *testing.T) {
	sum := strings.Repeat("ab", 32)
	for _, c := range []struct{ yaml, want string }{
		{"server: {concurrency: -1}", "server.concurrency"},
		{"server: {retries: -2}", "server.retries"},
		{"server: {tokens: [{role: admin, sha256: " + sum + "}]}", "name is required"},
		{"server: {tokens: [{name: a, role: root, sha256: " + sum + "}]}", `role "root"`},
		{"server: {tokens: [{name: a, role: admin, sha256: abc}]}", "64 hex digits"},
		{"server: {tokens: [{name: a, role: admin, sha256: " + sum + "}, {name: a, role: ci, sha256: " + sum + "}]}", "used twice"},
		{"server: {webhook: {tagPattern: '('}}", "tagPattern"},
		{"server: {colour: red}", "colour"},
	} {
		dir := t.TempDir()
		file := filepath.Join(dir, "config.yaml")
		require.NoError(t, os.WriteFile(file, []byte(c.yaml), 0o644))
		_, err := Load(file, dir)
		require.Error(t, err, c.yaml)
		assert.Contains(t, err.Error(), c.want, c.yaml)
	}
}
