package builder

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sailmaker/sailmaker/config"
)

// Connect's error names the setting the address came from: the variable,
// the config file's key, or the default and how to start one.
func TestConnectErrorNamesTheOrigin(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("SAILMAKER_CONFIG", "")
	t.Setenv("SAILMAKER_STATE_DIR", "")
	sock := "unix://" + filepath.Join(dir, "none.sock")
	connect := func() error {
		cfg, err := config.Load(os.Getenv("TEST_CONFIG"), dir)
		require.NoError(t, err)
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		start := time.Now()
		_, err = Connect(ctx, cfg)
		require.Error(t, err)
		assert.Less(t, time.Since(start), 10*time.Second, "a missing daemon fails fast")
		return err
	}

	t.Setenv("BUILDKIT_HOST", sock)
	err := connect()
	assert.ErrorContains(t, err, "buildkitd at "+sock+" is not answering (the address is from $BUILDKIT_HOST: start buildkitd there, or change $BUILDKIT_HOST)")

	t.Setenv("BUILDKIT_HOST", "")
	file := filepath.Join(dir, "config.yaml")
	require.NoError(t, os.WriteFile(file, []byte("buildkit:\n  address: "+sock+"\n"), 0o644))
	t.Setenv("TEST_CONFIG", file)
	err = connect()
	assert.ErrorContains(t, err, "(the address is from buildkit.address in "+file+": start buildkitd there, or change buildkit.address in "+file+")")

	t.Setenv("TEST_CONFIG", "")
	require.NoError(t, os.Remove(file))
	err = connect()
	assert.ErrorContains(t, err, "(the default address: start it with `sailmaker dev up` or `make demo`")
}
