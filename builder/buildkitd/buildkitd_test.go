package buildkitd

import (
	"context"
	"os"
	"regexp"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestConfigMarksLoopbackRegistriesHTTP(t *testing.T) {
	c := Config(Options{Dir: "/var/lib/sailmaker/buildkitd", HTTPRegistries: []string{"127.0.0.1:5000", "localhost:5001"}})
	assert.Contains(t, c, `root = "/var/lib/sailmaker/buildkitd/root"`)
	assert.Contains(t, c, `address = ["unix:///var/lib/sailmaker/buildkitd/buildkitd.sock"]`)
	assert.Contains(t, c, "[worker.oci]\n  enabled = true")
	assert.Contains(t, c, "[worker.containerd]\n  enabled = false")
	assert.Contains(t, c, "[registry.\"127.0.0.1:5000\"]\n  http = true")
	assert.Contains(t, c, "[registry.\"localhost:5001\"]\n  http = true")
	assert.NotContains(t, c, "docker.io")
}

func TestFindBinaryExplains(t *testing.T) {
	t.Setenv("SAILMAKER_BIN_DIR", t.TempDir())
	t.Setenv("PATH", t.TempDir())
	_, err := FindBinary("no-such-buildkitd")
	assert.ErrorContains(t, err, "make bin/no-such-buildkitd")
}

// PinnedVersion, the Makefile's BUILDKIT_VERSION (the daemon built into
// bin/) and go.mod's BuildKit client are one version.
func TestPinnedVersionMatchesTheMakefileAndGoMod(t *testing.T) {
	mk, err := os.ReadFile("../../Makefile")
	require.NoError(t, err)
	assert.Regexp(t, `(?m)^BUILDKIT_VERSION := `+regexp.QuoteMeta(PinnedVersion)+`$`, string(mk))
	mod, err := os.ReadFile("../../go.mod")
	require.NoError(t, err)
	assert.Regexp(t, `(?m)^\s+github\.com/moby/buildkit `+regexp.QuoteMeta(PinnedVersion)+`\b`, string(mod))
}

func TestConfigListensOnTCPWithMutualTLS(t *testing.T) {
	c := Config(Options{Dir: "/w", TCP: "127.0.0.1:1234", TLS: &TLSFiles{CACert: "/c/ca.pem", Cert: "/c/bk-0.pem", Key: "/c/bk-0-key.pem"}})
	assert.Contains(t, c, `address = ["unix:///w/buildkitd.sock", "tcp://127.0.0.1:1234"]`)
	assert.Contains(t, c, "[grpc.tls]\n    cert = \"/c/bk-0.pem\"\n    key = \"/c/bk-0-key.pem\"\n    ca = \"/c/ca.pem\"")
	_, err := Start(context.Background(), Options{Dir: t.TempDir(), TCP: "127.0.0.1:1234"})
	assert.ErrorContains(t, err, "mutual TLS files are required")
}
