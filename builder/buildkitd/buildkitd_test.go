package buildkitd

import (
	"testing"

	"github.com/stretchr/testify/assert"
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
