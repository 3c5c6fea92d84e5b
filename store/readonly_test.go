package store

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// A reader: when the test binary runs as another user with
// STORE_READ_ONLY_DB set, this prints the ledger it reads, or the error.
func TestReadOnlyReaderProcess(t *testing.T) {
	path := os.Getenv("STORE_READ_ONLY_DB")
	if path == "" {
		t.Skip("the reader run as another user by TestReadOnlyAsAnotherUser")
	}
	ctx := context.Background()
	var out struct {
		UID     int
		Entries []Entry
		Error   string
	}
	out.UID = os.Getuid()
	s, err := OpenReadOnly(ctx, path)
	if err == nil {
		out.Entries, err = s.Entries(ctx, LedgerFilter{})
		s.Close()
	}
	if err != nil {
		out.Error = err.Error()
	}
	require.NoError(t, json.NewEncoder(os.Stdout).Encode(out))
}

// sharedDir is a directory others may read and enter: root's own, 0755.
func sharedDir(t *testing.T) string {
	dir, err := os.MkdirTemp("", "sm-store-")
	require.NoError(t, err)
	t.Cleanup(func() { os.RemoveAll(dir) })
	require.NoError(t, os.Chmod(dir, 0o755))
	return dir
}

// readAs runs the reader as uid/gid 65534 (nobody) through setpriv, with
// the test binary copied where that user may run it.
func readAs(t *testing.T, bin, db string) ([]Entry, string) {
	t.Helper()
	cmd := exec.Command("setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--",
		bin, "-test.run=^TestReadOnlyReaderProcess$", "-test.count=1")
	cmd.Env = append(os.Environ(), "STORE_READ_ONLY_DB="+db, "HOME=/nonexistent")
	cmd.Dir = filepath.Dir(bin)
	raw, err := cmd.Output()
	require.NoError(t, err, "the reader process: %s", raw)
	var out struct {
		UID     int
		Entries []Entry
		Error   string
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	require.NoError(t, dec.Decode(&out), "%s", raw)
	require.Equal(t, 65534, out.UID, "the reader ran as nobody")
	return out.Entries, out.Error
}

// A user who may only read the state directory (made by root: 0755
// directory, 0644 files) reads the ledger, whether or not a writer has the
// database open, and sees what the writer committed last.
func TestReadOnlyAsAnotherUser(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a process as another user (make test)")
	}
	require.Equal(t, 0, os.Geteuid(), "this test runs as root (as make test does) to read as another user")
	_, err := exec.LookPath("setpriv")
	require.NoError(t, err, "setpriv (util-linux) runs the reader as another user")

	ctx := context.Background()
	binDir := sharedDir(t)
	bin := filepath.Join(binDir, "store.test")
	copyFile(t, os.Args[0], bin, 0o755)

	state := sharedDir(t)
	db := filepath.Join(state, FileName)
	w, err := Open(ctx, db)
	require.NoError(t, err)
	require.NoError(t, w.Append(ctx, Entry{Actor: "root", Action: ActionPush, Repository: "r/a", Tag: "1", NewDigest: "sha256:a"}))
	require.NoError(t, w.Close())
	for _, f := range []string{db, db + "-wal", db + "-shm"} {
		if fi, err := os.Stat(f); err == nil {
			require.Equal(t, os.FileMode(0o644), fi.Mode().Perm(), f)
		}
	}

	// Nobody has it open: no -wal or -shm, which the reader cannot make.
	require.NoFileExists(t, db+"-wal")
	entries, errMsg := readAs(t, bin, db)
	require.Empty(t, errMsg)
	require.Len(t, entries, 1)
	assert.Equal(t, "r/a", entries[0].Repository)

	// The service has it open and has committed more, still in the WAL.
	w, err = Open(ctx, db)
	require.NoError(t, err)
	defer w.Close()
	require.NoError(t, w.Append(ctx, Entry{Actor: "root", Action: ActionPush, Repository: "r/b", Tag: "1", NewDigest: "sha256:b", Time: time.Now()}))
	require.FileExists(t, db+"-wal")
	require.FileExists(t, db+"-shm")
	entries, errMsg = readAs(t, bin, db)
	require.Empty(t, errMsg)
	require.Len(t, entries, 2, "the reader sees what is in the WAL")
	assert.Equal(t, "r/b", entries[1].Repository)

	require.NoError(t, w.Append(ctx, Entry{Actor: "root", Action: ActionForce, Repository: "r/b", Tag: "1", OldDigest: "sha256:b", NewDigest: "sha256:c"}))
	entries, errMsg = readAs(t, bin, db)
	require.Empty(t, errMsg)
	require.Len(t, entries, 3)
	// The writer goes on writing after the reader.
	require.NoError(t, w.Append(ctx, Entry{Actor: "root", Action: ActionPush, Repository: "r/c", Tag: "1", NewDigest: "sha256:d"}))
	all, err := w.Entries(ctx, LedgerFilter{})
	require.NoError(t, err)
	assert.Len(t, all, 4)

	// A missing database is an error, not a new file.
	_, errMsg = readAs(t, bin, filepath.Join(state, "none.db"))
	assert.Contains(t, errMsg, "no such file")
	assert.NoFileExists(t, filepath.Join(state, "none.db"))
}

// Reading only writes nothing, even for root.
func TestReadOnlyWritesNothing(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	w, err := OpenDir(ctx, dir)
	require.NoError(t, err)
	require.NoError(t, w.Append(ctx, Entry{Actor: "a", Action: ActionPush, Repository: "r", Tag: "t", NewDigest: "sha256:a"}))
	require.NoError(t, w.Close())

	r, err := OpenDirReadOnly(ctx, dir)
	require.NoError(t, err)
	defer r.Close()
	assert.True(t, r.ReadOnly())
	err = r.Append(ctx, Entry{Actor: "a", Action: ActionPush, Repository: "r", Tag: "t", NewDigest: "sha256:b"})
	assert.Error(t, err)
	entries, err := r.Entries(ctx, LedgerFilter{})
	require.NoError(t, err)
	assert.Len(t, entries, 1)

	_, err = OpenDirReadOnly(ctx, t.TempDir())
	assert.ErrorIs(t, err, os.ErrNotExist)

	// A database from a newer sailmaker is refused.
	w, err = OpenDir(ctx, dir)
	require.NoError(t, err)
	_, err = w.DB().ExecContext(ctx, "PRAGMA user_version = "+strconv.Itoa(len(migrations)+1))
	require.NoError(t, err)
	require.NoError(t, w.Close())
	_, err = OpenDirReadOnly(ctx, dir)
	assert.ErrorContains(t, err, fmt.Sprintf("schema version %d is newer", len(migrations)+1))
}

func copyFile(t *testing.T, from, to string, mode os.FileMode) {
	in, err := os.Open(from)
	require.NoError(t, err)
	defer in.Close()
	out, err := os.OpenFile(to, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, mode)
	require.NoError(t, err)
	_, err = io.Copy(out, in)
	require.NoError(t, err)
	require.NoError(t, out.Close())
}
