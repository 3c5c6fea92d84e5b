package config

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func clearEnv(t *testing.T) {
	for _, k := range []string{"SAILMAKER_CONFIG", "SAILMAKER_STATE_DIR", "SAILMAKER_REGISTRY", "BUILDKIT_HOST", "SAILMAKER_DEBIAN_MIRROR", "SAILMAKER_GOPROXY", "SAILMAKER_GOSUMDB"} {
		t.Setenv(k, "")
	}
}

func TestDefaults(t *testing.T) {
	clearEnv(t)
	cfg, err := Load("", "")
	require.NoError(t, err)
	assert.Equal(t, DefaultStateDir, cfg.StateDir)
	assert.Equal(t, "127.0.0.1:5000", cfg.Registry.Address)
	assert.Equal(t, "/var/lib/sailmaker/registry", cfg.Registry.Root)
	assert.Equal(t, "unix:///var/lib/sailmaker/buildkitd/buildkitd.sock", cfg.BuildKit.Address)
}

// Everything that lives in the state directory follows --state-dir.
func TestStateDirFlagMovesDerivedPaths(t *testing.T) {
	clearEnv(t)
	dir := t.TempDir()
	cfg, err := Load("", dir)
	require.NoError(t, err)
	assert.Equal(t, dir, cfg.StateDir)
	assert.Equal(t, filepath.Join(dir, "registry"), cfg.Registry.Root)
	assert.Equal(t, "unix://"+filepath.Join(dir, "buildkitd", "buildkitd.sock"), cfg.BuildKit.Address)
}

func TestFileThenEnvThenFlag(t *testing.T) {
	clearEnv(t)
	dir := t.TempDir()
	file := filepath.Join(dir, "config.yaml")
	require.NoError(t, os.WriteFile(file, []byte(`
stateDir: /srv/sailmaker
registry:
  address: registry.internal.example:443
  allow: [mirror.internal.example]
git:
  mirrors:
    - {url: "file:///srv/git/istio.git", insteadOf: "https://github.com/istio/istio.git"}
    - {url: "https://git.internal.example/", insteadOf: "https://github.com/"}
`), 0o644))
	cfg, err := Load(file, "")
	require.NoError(t, err)
	assert.Equal(t, "/srv/sailmaker", cfg.StateDir)
	assert.Equal(t, []string{"registry.internal.example:443", "mirror.internal.example"}, cfg.AllowedRegistries())
	assert.False(t, cfg.RegistryInsecure("registry.internal.example:443"), "only loopback is plain HTTP unless said")
	assert.True(t, cfg.RegistryInsecure("127.0.0.1:5000"))
	// The longest insteadOf wins, as with git.
	assert.Equal(t, "file:///srv/git/istio.git", cfg.RewriteGitURL("https://github.com/istio/istio.git"))
	assert.Equal(t, "https://git.internal.example/istio/api.git", cfg.RewriteGitURL("https://github.com/istio/api.git"))
	assert.Equal(t, "https://example.com/x.git", cfg.RewriteGitURL("https://example.com/x.git"))

	t.Setenv("SAILMAKER_REGISTRY", "127.0.0.1:5999")
	cfg, err = Load(file, dir)
	require.NoError(t, err)
	assert.Equal(t, "127.0.0.1:5999", cfg.Registry.Address)
	assert.Equal(t, dir, cfg.StateDir)
}

func TestBadConfigIsRefused(t *testing.T) {
	clearEnv(t)
	for name, body := range map[string]string{
		"unknown field":    "registri: {}\n",
		"relative state":   "stateDir: relative/dir\n",
		"scheme in addr":   "registry: {address: 'http://127.0.0.1:5000'}\n",
		"bad buildkit":     "buildkit: {address: '127.0.0.1:1234'}\n",
		"tls over unix":    "buildkit: {address: 'unix:///run/b.sock', caCert: /ca.pem}\n",
		"cert without key": "buildkit: {address: 'tcp://10.0.0.1:1234', cert: /c.pem}\n",
		"mirror no url":    "git: {mirrors: [{insteadOf: 'https://github.com/'}]}\n",
	} {
		t.Run(name, func(t *testing.T) {
			file := filepath.Join(t.TempDir(), "c.yaml")
			require.NoError(t, os.WriteFile(file, []byte(body), 0o644))
			_, err := Load(file, "")
			require.Error(t, err)
			assert.Contains(t, err.Error(), file)
		})
	}
}

func TestEmptyFileMeansDefaults(t *testing.T) {
	clearEnv(t)
	file := filepath.Join(t.TempDir(), "c.yaml")
	require.NoError(t, os.WriteFile(file, nil, 0o644))
	cfg, err := Load(file, "")
	require.NoError(t, err)
	assert.Equal(t, DefaultRegistryAddr, cfg.Registry.Address)
}

func TestSigningKeyFromFileThenEnv(t *testing.T) {
	clearEnv(t)
	t.Setenv("SAILMAKER_SIGNING_KEY", "")
	file := filepath.Join(t.TempDir(), "config.yaml")
	require.NoError(t, os.WriteFile(file, []byte("signing:\n  key: /etc/sailmaker/sailmaker.key\n"), 0o644))
	cfg, err := Load(file, "")
	require.NoError(t, err)
	assert.Equal(t, "/etc/sailmaker/sailmaker.key", cfg.Signing.Key)
	t.Setenv("SAILMAKER_SIGNING_KEY", "/run/secrets/sailmaker.key")
	cfg, err = Load(file, "")
	require.NoError(t, err)
	assert.Equal(t, "/run/secrets/sailmaker.key", cfg.Signing.Key)
}

// Every setting knows where its value came from: the file (with its name),
// the environment variable, the flag, or the default.
func TestOrigins(t *testing.T) {
	clearEnv(t)
	for _, k := range []string{"SAILMAKER_SERVER", "SAILMAKER_TOKEN", "SAILMAKER_WEBHOOK_SECRET", "SAILMAKER_SIGNING_KEY"} {
		t.Setenv(k, "")
	}
	dir := t.TempDir()
	file := filepath.Join(dir, "config.yaml")
	require.NoError(t, os.WriteFile(file, []byte("buildkit:\n  address: tcp://10.0.0.1:1234\nserver:\n  url: http://build.internal:8080\n  webhook:\n    repos: [a]\n"), 0o644))

	cfg, err := Load(file, "")
	require.NoError(t, err)
	assert.Equal(t, "buildkit.address in "+file, cfg.Origin("buildkit.address"))
	assert.Equal(t, "server.url in "+file, cfg.Origin("server.url"))
	assert.Equal(t, "server.webhook.repos in "+file, cfg.Origin("server.webhook.repos"))
	assert.Equal(t, DefaultOrigin, cfg.Origin("registry.address"))
	assert.True(t, cfg.FromDefault("stateDir"))

	// The environment overrides the file, and says so.
	t.Setenv("BUILDKIT_HOST", "unix:///run/other.sock")
	t.Setenv("SAILMAKER_SERVER", "http://127.0.0.1:9999")
	cfg, err = Load(file, dir)
	require.NoError(t, err)
	assert.Equal(t, "unix:///run/other.sock", cfg.BuildKit.Address)
	assert.Equal(t, "$BUILDKIT_HOST", cfg.Origin("buildkit.address"))
	assert.Equal(t, "$SAILMAKER_SERVER", cfg.Origin("server.url"))
	assert.Equal(t, "--state-dir", cfg.Origin("stateDir"))
	cfg.SetOrigin("server.url", "--server")
	assert.Equal(t, "--server", cfg.Origin("server.url"))

	// A bad value names the variable it came from, not only the key.
	t.Setenv("BUILDKIT_HOST", "127.0.0.1:1234")
	_, err = Load("", dir)
	assert.EqualError(t, err, `buildkit.address (from $BUILDKIT_HOST) "127.0.0.1:1234" must start with unix:// or tcp://`)
	t.Setenv("BUILDKIT_HOST", "")
	require.NoError(t, os.WriteFile(file, []byte("buildkit:\n  address: 127.0.0.1:1234\n"), 0o644))
	_, err = Load(file, dir)
	assert.EqualError(t, err, `config `+file+`: buildkit.address "127.0.0.1:1234" must start with unix:// or tcp://`)
}

func TestAptKeyFromFileThenEnv(t *testing.T) {
	clearEnv(t)
	t.Setenv("SAILMAKER_APT_KEY", "")
	file := filepath.Join(t.TempDir(), "config.yaml")
	require.NoError(t, os.WriteFile(file, []byte("signing:\n  aptKey: /etc/sailmaker/sailmaker-apt.asc\n"), 0o644))
	cfg, err := Load(file, "")
	require.NoError(t, err)
	assert.Equal(t, "/etc/sailmaker/sailmaker-apt.asc", cfg.Signing.AptKey)
	assert.Empty(t, cfg.Signing.Key, "the image key is a setting of its own")
	t.Setenv("SAILMAKER_APT_KEY", "/run/secrets/sailmaker-apt.asc")
	cfg, err = Load(file, "")
	require.NoError(t, err)
	assert.Equal(t, "/run/secrets/sailmaker-apt.asc", cfg.Signing.AptKey)
}
