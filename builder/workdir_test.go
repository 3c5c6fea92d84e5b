package builder

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Builds at once get work folders of their own; a released folder, with
// the files the last build left, goes to the next build; a link where a
// folder should be is not followed.
func TestAcquireWork(t *testing.T) {
	state := t.TempDir()
	a, err := acquireWork(state)
	require.NoError(t, err)
	b, err := acquireWork(state)
	require.NoError(t, err)
	assert.NotEqual(t, a.dir, b.dir, "two builds at once, two folders")
	require.NoError(t, os.WriteFile(filepath.Join(a.dir, "left"), []byte("by the last build"), 0o644))

	a.release()
	c, err := acquireWork(state)
	require.NoError(t, err)
	assert.Equal(t, a.dir, c.dir, "the released folder is taken again")
	left, err := os.ReadFile(filepath.Join(c.dir, "left"))
	require.NoError(t, err)
	assert.Equal(t, "by the last build", string(left), "its files stay for the next build to write over")
	c.release()
	b.release()
	b.release() // twice is harmless

	// work-0 replaced by a link to another folder: taken as a folder of
	// ours, the other folder untouched.
	elsewhere := t.TempDir()
	require.NoError(t, os.RemoveAll(a.dir))
	require.NoError(t, os.Symlink(elsewhere, a.dir))
	d, err := acquireWork(state)
	require.NoError(t, err)
	defer d.release()
	fi, err := os.Lstat(d.dir)
	require.NoError(t, err)
	assert.True(t, fi.IsDir(), "a folder, not the link")
	_, err = os.Stat(elsewhere)
	assert.NoError(t, err)
}
