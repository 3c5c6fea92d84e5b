package builder

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// copyExecutable copies the running test binary, a Go binary the go
// command gave its content-based build ID, to dst.
func copyExecutable(t *testing.T, dst string) []byte {
	exe, err := os.Executable()
	require.NoError(t, err)
	b, err := os.ReadFile(exe)
	require.NoError(t, err)
	require.NoError(t, os.MkdirAll(filepath.Dir(dst), 0o755))
	require.NoError(t, os.WriteFile(dst, b, 0o755))
	return b
}

// The content hash the go command puts in a binary's build ID is
// computed again from the bytes: a binary it linked checks, one byte
// changed anywhere does not.
func TestGoContent(t *testing.T) {
	p := filepath.Join(t.TempDir(), "bin")
	b := copyExecutable(t, p)
	id, ok, err := goContent(p)
	require.NoError(t, err)
	assert.True(t, ok, "the go command's own hash")
	out, err := exec.Command("go", "tool", "buildid", p).Output()
	require.NoError(t, err)
	assert.Equal(t, strings.TrimSpace(string(out)), id)

	b[len(b)/2] ^= 1
	require.NoError(t, os.WriteFile(p, b, 0o755))
	id2, ok, err := goContent(p)
	require.NoError(t, err)
	assert.Equal(t, id, id2)
	assert.False(t, ok, "a changed byte with the same build ID")

	require.NoError(t, os.WriteFile(p, []byte("#!/bin/sh\n"), 0o755))
	_, ok, err = goContent(p)
	require.NoError(t, err)
	assert.False(t, ok, "not an ELF file")
}

// hashGoContent finds the ID where a read ends in the middle of it, and
// zeroes what it is told to skip, as a whole-buffer computation does.
func TestHashGoContentAcrossReads(t *testing.T) {
	id := "abc/def/ghi"
	rnd := rand.New(rand.NewSource(1))
	data := make([]byte, 3*goContentBuf+100)
	rnd.Read(data)
	for _, at := range []int{0, 5000, goContentBuf - 4, 2*goContentBuf - len(id) + 1, len(data) - len(id)} {
		copy(data[at:], id)
	}
	skip := [2]int64{goContentBuf - 50, goContentBuf + 50}
	want := bytes.Clone(data)
	clear(want[skip[0]:skip[1]])
	want = bytes.ReplaceAll(want, []byte(id), make([]byte, len(id)))

	content, err := hashGoContent(bytes.NewReader(data), id, skip)
	require.NoError(t, err)
	assert.Equal(t, sha256.Sum256(want), content)
}

// A Go binary the last build left in the work folder is kept when the
// results hold the same binary: it is not read again. One whose bytes are
// not what its build ID says is read again, whatever ID it claims.
func TestReadTreeKeepsTheSameGoBinary(t *testing.T) {
	src, dst := t.TempDir(), t.TempDir()
	const bin = "linux_amd64/build/out/linux_amd64/pilot-agent"
	b := copyExecutable(t, filepath.Join(src, bin))
	writeFiles(t, src, map[string]string{"linux_amd64/source/bootstrap.json": `{"a": 1}`})

	read := func(reuse bool) (treeStats, *resultTree) {
		ref := &dirRef{root: src}
		tree, err := listTree(context.Background(), ref, dst, reuse)
		require.NoError(t, err)
		require.NoError(t, tree.read(context.Background(), ref))
		got, err := os.ReadFile(filepath.Join(dst, bin))
		require.NoError(t, err)
		require.True(t, bytes.Equal(b, got), "the work folder holds the result")
		return tree.stats, tree
	}
	st, _ := read(true)
	assert.Equal(t, 0, st.Kept, "nothing to keep in a new work folder")
	assert.Equal(t, int64(len(b)+8), st.Bytes)

	st, tree := read(true)
	assert.Equal(t, 1, st.Kept)
	assert.Equal(t, int64(len(b)), st.KeptBytes)
	assert.Equal(t, int64(8), st.Bytes, "only the small file read")
	sum, ok := tree.known(filepath.Join(dst, bin))
	assert.True(t, ok)
	s := sha256.Sum256(b)
	assert.Equal(t, hex.EncodeToString(s[:]), sum)
	sum, ok = tree.known(filepath.Join(dst, "linux_amd64/source/bootstrap.json"))
	assert.True(t, ok, "a small file is known once read")
	assert.Equal(t, sha256Hex([]byte(`{"a": 1}`)), sum)

	st, _ = read(false)
	assert.Equal(t, 0, st.Kept, "--force reads everything")

	// The same build ID, the same size, another byte: read again.
	tampered := bytes.Clone(b)
	tampered[len(b)/3] ^= 1
	require.NoError(t, os.WriteFile(filepath.Join(dst, bin), tampered, 0o755))
	st, _ = read(true)
	assert.Equal(t, 0, st.Kept)

	// A result that claims a build ID its bytes do not have gets the
	// binary that has it (checked), never other bytes under that ID.
	require.NoError(t, os.WriteFile(filepath.Join(src, bin), tampered, 0o755))
	ref := &dirRef{root: src}
	tree, err := listTree(context.Background(), ref, dst, true)
	require.NoError(t, err)
	require.NoError(t, tree.read(context.Background(), ref))
	assert.Equal(t, 1, tree.stats.Kept)
	got, err := os.ReadFile(filepath.Join(dst, bin))
	require.NoError(t, err)
	assert.True(t, bytes.Equal(b, got), "the binary whose bytes hash to the ID")
}
