package builder

import (
	"archive/tar"
	"context"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	ocispecs "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func writeFiles(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for name, data := range files {
		p := filepath.Join(dir, name)
		require.NoError(t, os.MkdirAll(filepath.Dir(p), 0o755))
		require.NoError(t, os.WriteFile(p, []byte(data), 0o644))
	}
}

// tarEntries reads a layer blob: name -> content ("" for directories,
// "-> target" for symlinks), with every entry's mtime and owner.
func tarEntries(t *testing.T, root string, d digest.Digest) map[string]string {
	t.Helper()
	f, err := os.Open(blobPath(root, d))
	require.NoError(t, err)
	defer f.Close()
	out := map[string]string{}
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return out
		}
		require.NoError(t, err)
		assert.Equal(t, 0, h.Uid, h.Name)
		assert.Equal(t, int64(1234), h.ModTime.Unix(), h.Name)
		switch h.Typeflag {
		case tar.TypeSymlink:
			out[h.Name] = "-> " + h.Linkname
		case tar.TypeDir:
			out[h.Name] = ""
		default:
			b, err := io.ReadAll(tr)
			require.NoError(t, err)
			out[h.Name] = string(b)
		}
	}
}

func manifestOf(t *testing.T, root string, l InputLayer) ocispecs.Manifest {
	t.Helper()
	b, err := os.ReadFile(blobPath(root, l.Manifest))
	require.NoError(t, err)
	var m ocispecs.Manifest
	require.NoError(t, json.Unmarshal(b, &m))
	return m
}

// An input image is the same bytes for the same tree wherever and
// whenever it is written (BuildKit's cache key is its digest), is made
// once per key, and a patch layer holds only what the patches changed,
// with whiteouts for what they deleted.
func TestInputImageIsDeterministicAndLayered(t *testing.T) {
	tree := map[string]string{"go.mod": "module x\n", "pkg/a.go": "package a\n", "pkg/b/b.go": "package b\n"}
	mtime := time.Unix(1234, 0)
	var digests []digest.Digest
	for i := 0; i < 2; i++ {
		dir, cache := t.TempDir(), t.TempDir()
		writeFiles(t, dir, tree)
		require.NoError(t, os.Symlink("a.go", filepath.Join(dir, "pkg", "link")))
		// The times of the files on disk do not matter.
		require.NoError(t, os.Chtimes(filepath.Join(dir, "go.mod"), time.Now(), time.Unix(int64(i*1000), 0)))
		l, err := inputImage(cache, "k", mtime, nil, treeLayer{dir: dir})
		require.NoError(t, err)
		digests = append(digests, l.Manifest)
		root := LayerStoreDir(cache)
		m := manifestOf(t, root, l)
		require.Len(t, m.Layers, 1)
		assert.Equal(t, map[string]string{"go.mod": "module x\n", "pkg/": "", "pkg/a.go": "package a\n", "pkg/b/": "", "pkg/b/b.go": "package b\n", "pkg/link": "-> a.go"},
			tarEntries(t, root, m.Layers[0].Digest))
	}
	assert.Equal(t, digests[0], digests[1], "the same tree gives the same manifest digest")

	dir, cache := t.TempDir(), t.TempDir()
	writeFiles(t, dir, tree)
	base, err := inputImage(cache, "base", mtime, nil, treeLayer{dir: dir})
	require.NoError(t, err)
	// Written once per key: a changed tree under the same key is not
	// written again.
	writeFiles(t, dir, map[string]string{"pkg/a.go": "package a // patched\n", "new/c.go": "package c\n"})
	again, err := inputImage(cache, "base", mtime, nil, treeLayer{dir: dir})
	require.NoError(t, err)
	assert.Equal(t, base, again)

	require.NoError(t, os.Remove(filepath.Join(dir, "pkg", "b", "b.go")))
	patched, err := inputImage(cache, "patched", mtime, &base, treeLayer{dir: dir, paths: []string{"pkg/a.go", "new/c.go"}, deleted: []string{"pkg/b/b.go"}})
	require.NoError(t, err)
	root := LayerStoreDir(cache)
	m := manifestOf(t, root, patched)
	require.Len(t, m.Layers, 2)
	assert.Equal(t, manifestOf(t, root, base).Layers[0], m.Layers[0], "the commit's layer is shared")
	assert.Equal(t, map[string]string{"new/": "", "new/c.go": "package c\n", "pkg/": "", "pkg/a.go": "package a // patched\n", "pkg/b/.wh.b.go": ""},
		tarEntries(t, root, m.Layers[1].Digest))

	// A pruned blob is written again.
	require.NoError(t, os.Remove(blobPath(root, m.Layers[1].Digest)))
	require.NoError(t, os.Remove(filepath.Join(root, "keys", "patched")))
	writeFiles(t, dir, map[string]string{"pkg/b/b.go": "package b\n"})
	_, err = inputImage(cache, "patched", mtime, &base, treeLayer{dir: dir, paths: []string{"pkg/a.go", "new/c.go"}, deleted: []string{"pkg/b/b.go"}})
	require.NoError(t, err)
	ok, err := imageComplete(root, patched.Manifest)
	require.NoError(t, err)
	assert.True(t, ok)

	_, err = inputImage(cache, "bad", mtime, nil, treeLayer{dir: dir, paths: []string{"../etc/passwd"}})
	assert.ErrorContains(t, err, "outside the tree")
}

// What a checkout's patches changed, added and deleted is listed from git.
func TestChangedFiles(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	writeFiles(t, dir, map[string]string{"a.txt": "a\n", "b.txt": "b\n", "c.txt": "c\n"})
	for _, args := range [][]string{{"init", "-q"}, {"add", "."}, {"-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "x"}} {
		_, err := git(ctx, dir, args...)
		require.NoError(t, err)
	}
	writeFiles(t, dir, map[string]string{"a.txt": "A\n", "sub/new.txt": "n\n"})
	require.NoError(t, os.Remove(filepath.Join(dir, "c.txt")))
	changed, deleted, err := changedFiles(ctx, dir)
	require.NoError(t, err)
	assert.ElementsMatch(t, []string{"a.txt", "sub/new.txt"}, changed)
	assert.Equal(t, []string{"c.txt"}, deleted)
}

// What an interrupted write left in the store is removed; blobs and keys
// stay.
func TestRemoveStaleTemps(t *testing.T) {
	dir, cache := t.TempDir(), t.TempDir()
	writeFiles(t, dir, map[string]string{"a": "a\n"})
	l, err := inputImage(cache, "k", time.Unix(1234, 0), nil, treeLayer{dir: dir})
	require.NoError(t, err)
	root := LayerStoreDir(cache)
	stale := []string{filepath.Join(root, "blobs", "sha256", ".tmp-layer-123"), filepath.Join(root, "keys", ".tmp-456")}
	for _, p := range stale {
		require.NoError(t, os.WriteFile(p, []byte("half a layer"), 0o644))
	}
	require.NoError(t, removeStaleTemps(cache))
	for _, p := range stale {
		assert.NoFileExists(t, p)
	}
	got, ok := cachedInputImage(cache, "k")
	assert.True(t, ok, "the finished image is kept")
	assert.Equal(t, l, got)
	require.NoError(t, removeStaleTemps(t.TempDir()), "an empty cache directory is fine")
}

// The source layers carry a git index that matches them: in a tree made
// of the commit's layer, git takes every file as unchanged from its size
// and mtime without reading it (as upstream's version stamping does in
// the build container), and a file the patches changed, even to the same
// size, is read and found modified.
func TestSourceLayersKeepGitClean(t *testing.T) {
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "pristine")
	writeFiles(t, dir, map[string]string{"a.txt": "a\n", "b.txt": "b\n", "sub/c.txt": "c\n"})
	for _, args := range [][]string{{"init", "-q"}, {"add", "."}, {"-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "x"}} {
		_, err := git(ctx, dir, args...)
		require.NoError(t, err)
	}
	commitTime := time.Unix(1734146883, 0).UTC()
	require.NoError(t, stampIndex(ctx, dir, commitTime))
	cache := t.TempDir()
	commit, err := inputImage(cache, "src2-commit", commitTime, nil, treeLayer{dir: dir, mtimes: map[string]time.Time{".git/index": commitTime.Add(indexLater)}})
	require.NoError(t, err)

	// A patch changes b.txt to the same size, as git apply does: a new
	// file renamed into place.
	patched := filepath.Join(t.TempDir(), "patched")
	_, err = run(ctx, "", nil, "cp", "-a", "-l", dir, patched)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(patched, "b.tmp"), []byte("B\n"), 0o644))
	require.NoError(t, os.Rename(filepath.Join(patched, "b.tmp"), filepath.Join(patched, "b.txt")))
	changed, deleted, err := changedFiles(ctx, patched)
	require.NoError(t, err)
	require.Equal(t, []string{"b.txt"}, changed)
	source, err := inputImage(cache, "src2-patched", commitTime.Add(patchedLater), &commit, treeLayer{dir: patched, paths: changed, deleted: deleted})
	require.NoError(t, err)

	root := LayerStoreDir(cache)
	extract := func(layers []ocispecs.Descriptor) string {
		out := t.TempDir()
		for _, l := range layers {
			_, err := run(ctx, "", nil, "tar", "-xf", blobPath(root, l.Digest), "-C", out)
			require.NoError(t, err)
		}
		return out
	}
	status := func(dir string) string {
		out, err := run(ctx, dir, []string{"GIT_CONFIG_COUNT=1", "GIT_CONFIG_KEY_0=safe.directory", "GIT_CONFIG_VALUE_0=*"}, "git", "status", "--porcelain")
		require.NoError(t, err)
		return string(out)
	}

	// Before git first looks at the tree (it rewrites the index then): a
	// file of the same size and mtime with other content. git finding
	// nothing shows it did not read the file, which is what spares reading
	// the whole tree.
	tree := extract(manifestOf(t, root, commit).Layers)
	p := filepath.Join(tree, "a.txt")
	require.NoError(t, os.WriteFile(p, []byte("X\n"), 0o644))
	require.NoError(t, os.Chtimes(p, commitTime, commitTime))
	assert.Empty(t, status(tree), "git trusts the index for an unchanged size and mtime")

	tree = extract(manifestOf(t, root, source).Layers)
	assert.Equal(t, " M b.txt\n", status(tree), "the patched file is read and found modified")
}
