package store

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestDiskFull(t *testing.T) {
	assert.False(t, DiskFull(nil))
	assert.False(t, DiskFull(fmt.Errorf("x: %w", os.ErrNotExist)))
	assert.True(t, DiskFull(fmt.Errorf("writing: %w", &os.PathError{Op: "write", Path: "/x", Err: syscall.ENOSPC})))
	assert.True(t, DiskFull(fmt.Errorf("solve: rpc error: code = Unknown desc = write /x: no space left on device")))

	// SQLite's own error, from a database on a full file system.
	if testing.Short() {
		return
	}
	dir := t.TempDir()
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, "size=1m"); err != nil {
		t.Fatalf("mounting a tmpfs (as root): %v", err)
	}
	defer syscall.Unmount(dir, syscall.MNT_DETACH)
	st, err := OpenDir(context.Background(), dir)
	require.NoError(t, err)
	defer st.Close()
	filler, err := os.Create(filepath.Join(dir, "filler"))
	require.NoError(t, err)
	buf := make([]byte, 64<<10)
	for {
		if _, err := filler.Write(buf); err != nil {
			require.True(t, DiskFull(err), "%v", err)
			break
		}
	}
	filler.Close()
	var werr error
	for i := 0; i < 1000 && werr == nil; i++ {
		werr = st.Append(context.Background(), Entry{Action: ActionPush, Repository: "r", Tag: fmt.Sprint(i), Note: string(buf[:2000])})
	}
	require.Error(t, werr)
	assert.True(t, DiskFull(werr), "%v", werr)
	t.Logf("the store on a full disk: %v", werr)
}
