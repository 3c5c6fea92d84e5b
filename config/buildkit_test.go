package config

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func loadYAML(t *testing.T, text string) (*Config, error) {
	t.Helper()
	clearEnv(t)
	file := filepath.Join(t.TempDir(), "config.yaml")
	require.NoError(t, os.WriteFile(file, []byte(text), 0o644))
	return Load(file, t.TempDir())
}

func TestWorkersPool(t *testing.T) {
	cfg, err := loadYAML(t, `
buildkit:
  workers:
    - {name: bk-0, address: "tcp://10.0.0.1:1234", caCert: /c/ca.pem, cert: /c/client.pem, key: /c/client-key.pem, slots: 2}
    - {name: bk-1, address: "tcp://10.0.0.2:1234", caCert: /c/ca.pem, cert: /c/client.pem, key: /c/client-key.pem, serverName: bk-1}
`)
	require.NoError(t, err)
	ws := cfg.Workers()
	require.Len(t, ws, 2)
	assert.Equal(t, 2, ws[0].SlotCount())
	assert.Equal(t, 1, ws[1].SlotCount(), "slots default to 1")
	assert.Empty(t, cfg.BuildKit.Address, "no default address with a pool")
	assert.Equal(t, "sailmaker-cache", cfg.CacheRepository(), "a pool shares its cache through the registry by default")
}

// A single address is a pool of one, with server.concurrency slots, and
// no registry cache unless asked for.
func TestSingleAddressIsAPoolOfOne(t *testing.T) {
	cfg, err := loadYAML(t, "server: {concurrency: 3}\nbuildkit: {cache: {repository: team/cache}}\n")
	require.NoError(t, err)
	ws := cfg.Workers()
	require.Len(t, ws, 1)
	assert.Equal(t, DefaultWorkerName, ws[0].Name)
	assert.Equal(t, cfg.BuildKit.Address, ws[0].Address)
	assert.Equal(t, 3, ws[0].SlotCount())
	assert.Equal(t, "team/cache", cfg.CacheRepository())
	cfg, err = loadYAML(t, "")
	require.NoError(t, err)
	assert.Empty(t, cfg.CacheRepository())
}

func TestWorkersRefusedWithOneLine(t *testing.T) {
	certs := `caCert: /c/ca.pem, cert: /c/c.pem, key: /c/k.pem`
	for _, c := range []struct{ yaml, want string }{
		{`[{name: bk-0, address: "tcp://h:1", ` + certs + `}, {name: bk-0, address: "tcp://h:2", ` + certs + `}]`,
			`buildkit.workers[1] (bk-0): the name "bk-0" is already used by buildkit.workers[0]: names must be unique`},
		{`[{name: bk-0, address: "tcp://h:1"}]`,
			"buildkit.workers[0] (bk-0): a tcp:// worker needs mutual TLS: set caCert, cert and key (`sailmaker certs new --out DIR --worker bk-0` makes them)"},
		{`[{name: bk-0, address: "tcp://h:1", slots: 0, ` + certs + `}]`,
			`buildkit.workers[0] (bk-0): slots 0: must be at least 1 (builds the worker runs at once)`},
		{`[{address: "tcp://h:1", ` + certs + `}]`, `buildkit.workers[0]: name is required (a DNS label such as bk-0)`},
		{`[{name: BK_0, address: "tcp://h:1", ` + certs + `}]`, `buildkit.workers[0] (BK_0): name "BK_0" must be a DNS label: lower-case letters, digits and '-', at most 63`},
		{`[{name: bk-0, address: "http://h:1"}]`, `buildkit.workers[0] (bk-0): address "http://h:1" must start with tcp:// or unix://`},
		{`[{name: bk-0}]`, `buildkit.workers[0] (bk-0): address is required (tcp://host:port)`},
	} {
		_, err := loadYAML(t, "buildkit:\n  workers: "+c.yaml+"\n")
		require.Error(t, err, c.yaml)
		assert.Regexp(t, `^config .*config\.yaml: `, err.Error())
		assert.Contains(t, err.Error(), c.want)
		assert.NotContains(t, err.Error(), "\n", "one line")
	}
	_, err := loadYAML(t, "buildkit:\n  address: tcp://h:1\n  workers: [{name: bk-0, address: \"unix:///s\"}]\n")
	assert.ErrorContains(t, err, "buildkit.address and buildkit.workers are both set: use one")
}
