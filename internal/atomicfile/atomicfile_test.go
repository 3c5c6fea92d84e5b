package atomicfile

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestWriteReplacesWholeFileOrNothing(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "sub", "f.txt")
	require.NoError(t, Write(p, []byte("first")))
	b, err := os.ReadFile(p)
	require.NoError(t, err)
	assert.Equal(t, "first", string(b))
	fi, err := os.Stat(p)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o644), fi.Mode().Perm())

	// A failed write leaves the old file and no temporary file.
	boom := errors.New("boom")
	err = WriteFunc(p, func(w io.Writer) error {
		_, _ = w.Write([]byte("half"))
		return boom
	})
	assert.ErrorIs(t, err, boom)
	b, err = os.ReadFile(p)
	require.NoError(t, err)
	assert.Equal(t, "first", string(b))
	left, err := filepath.Glob(filepath.Join(dir, "sub", ".*"))
	require.NoError(t, err)
	assert.Empty(t, left)

	require.NoError(t, Write(p, []byte("second")))
	b, err = os.ReadFile(p)
	require.NoError(t, err)
	assert.Equal(t, "second", string(b))
}
