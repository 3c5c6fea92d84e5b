package config

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestPackagesSettings(t *testing.T) {
	clearEnv(t)
	t.Setenv("SAILMAKER_ISTIOCTL_RETENTION", "")
	dir := t.TempDir()
	cfg, err := Load("", dir)
	require.NoError(t, err)
	assert.Equal(t, "all", cfg.Packages.Retention().String(), "default: every release")
	assert.Equal(t, filepath.Join(dir, "apt"), cfg.AptRepoDir())

	file := filepath.Join(dir, "config.yaml")
	require.NoError(t, os.WriteFile(file, []byte("packages:\n  istioctlRetention: newest-per-minor=2\n  aptDir: /srv/apt\n"), 0o644))
	cfg, err = Load(file, "")
	require.NoError(t, err)
	assert.Equal(t, 2, cfg.Packages.Retention().NewestPerMinor)
	assert.Equal(t, "/srv/apt", cfg.AptRepoDir())
	t.Setenv("SAILMAKER_ISTIOCTL_RETENTION", "versions=1.24.2,1.23.4")
	cfg, err = Load(file, "")
	require.NoError(t, err)
	assert.Equal(t, []string{"1.24.2", "1.23.4"}, cfg.Packages.Retention().Versions, "the environment over the file")

	t.Setenv("SAILMAKER_ISTIOCTL_RETENTION", "")
	require.NoError(t, os.WriteFile(file, []byte("packages:\n  istioctlRetention: newest-per-minor=0\n"), 0o644))
	_, err = Load(file, "")
	require.Error(t, err)
	assert.Contains(t, err.Error(), "config "+file+`: packages.istioctlRetention retention "newest-per-minor=0": newest-per-minor needs a whole number of at least 1`)
	require.NoError(t, os.WriteFile(file, []byte("packages:\n  aptDir: apt\n"), 0o644))
	_, err = Load(file, "")
	assert.ErrorContains(t, err, "config "+file+`: packages.aptDir "apt" must be an absolute path`)
}
