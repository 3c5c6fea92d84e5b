package builder

import (
	"bytes"
	"context"
	"debug/elf"
	"errors"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/moby/buildkit/client/llb"
	gateway "github.com/moby/buildkit/frontend/gateway/client"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	fstypes "github.com/tonistiigi/fsutil/types"

	"github.com/sailmaker/sailmaker/recipes"
)

// dirRef is a gateway.Reference over a folder of this machine, as
// BuildKit answers for a solved result: ReadDir lists one level, names
// relative to it; ReadFile honours ranges. reads counts ReadFile calls;
// entries, when set for a folder, replaces what ReadDir lists there.
type dirRef struct {
	root    string
	reads   atomic.Int64
	entries map[string][]*fstypes.Stat
}

func (r *dirRef) ToState() (llb.State, error)        { return llb.Scratch(), nil }
func (r *dirRef) Evaluate(ctx context.Context) error { return nil }

func (r *dirRef) stat(p string) (*fstypes.Stat, error) {
	fi, err := os.Lstat(filepath.Join(r.root, filepath.FromSlash(p)))
	if err != nil {
		return nil, err
	}
	st := &fstypes.Stat{Path: path.Base(p), Mode: uint32(fi.Mode()), Size: fi.Size(), ModTime: fi.ModTime().UnixNano()}
	if fi.Mode()&os.ModeSymlink != 0 {
		st.Linkname, _ = os.Readlink(filepath.Join(r.root, filepath.FromSlash(p)))
	}
	return st, nil
}

func (r *dirRef) ReadDir(ctx context.Context, req gateway.ReadDirRequest) ([]*fstypes.Stat, error) {
	if e, ok := r.entries[req.Path]; ok {
		return e, nil
	}
	des, err := os.ReadDir(filepath.Join(r.root, filepath.FromSlash(req.Path)))
	if err != nil {
		return nil, err
	}
	var out []*fstypes.Stat
	for _, de := range des {
		st, err := r.stat(path.Join(req.Path, de.Name()))
		if err != nil {
			return nil, err
		}
		out = append(out, st)
	}
	return out, nil
}

func (r *dirRef) StatFile(ctx context.Context, req gateway.StatRequest) (*fstypes.Stat, error) {
	return r.stat(req.Path)
}

func (r *dirRef) ReadFile(ctx context.Context, req gateway.ReadRequest) ([]byte, error) {
	r.reads.Add(1)
	b, err := os.ReadFile(filepath.Join(r.root, filepath.FromSlash(req.Filename)))
	if err != nil {
		return nil, err
	}
	if req.Range == nil {
		return b, nil
	}
	end := min(req.Range.Offset+req.Range.Length, len(b))
	if req.Range.Offset > len(b) {
		return nil, errors.New("offset beyond the end")
	}
	return b[req.Range.Offset:end], nil
}

// readTree copies the tree of ref into dir (which must exist): folders,
// regular files with their permission bits and modification times, and
// symbolic links, as the build reads the make results.
func readTree(ctx context.Context, ref gateway.Reference, dir string) (treeStats, error) {
	t, err := listTree(ctx, ref, dir, false)
	if err != nil {
		return treeStats{}, err
	}
	err = t.read(ctx, ref)
	return t.stats, err
}

func TestReadTree(t *testing.T) {
	src := t.TempDir()
	big := bytes.Repeat([]byte("0123456789abcdef"), (2*readChunk+12345)/16)
	mtime := time.Unix(1734146883, 0)
	write := func(p string, data []byte, mode os.FileMode) {
		full := filepath.Join(src, p)
		require.NoError(t, os.MkdirAll(filepath.Dir(full), 0o755))
		require.NoError(t, os.WriteFile(full, data, mode))
		require.NoError(t, os.Chmod(full, mode))
		require.NoError(t, os.Chtimes(full, mtime, mtime))
	}
	write("linux_amd64/build/out/linux_amd64/pilot-discovery", big, 0o755)
	write("linux_amd64/source/tools/envoy_bootstrap.json", []byte(`{"a": 1}`), 0o644)
	write("linux_amd64/build/empty", nil, 0o600)

	ref := &dirRef{root: src}
	dst := t.TempDir()
	st, err := readTree(context.Background(), ref, dst)
	require.NoError(t, err)
	assert.Equal(t, 3, st.Files)
	assert.Equal(t, int64(len(big)+8), st.Bytes)
	assert.Equal(t, int64(3+1), ref.reads.Load(), "the big file in %d MiB ranges, the small one at once, the empty one not at all", readChunk>>20)

	got, err := os.ReadFile(filepath.Join(dst, "linux_amd64/build/out/linux_amd64/pilot-discovery"))
	require.NoError(t, err)
	assert.True(t, bytes.Equal(big, got), "the file read in ranges is the file")
	for p, mode := range map[string]os.FileMode{
		"linux_amd64/build/out/linux_amd64/pilot-discovery": 0o755,
		"linux_amd64/source/tools/envoy_bootstrap.json":     0o644,
		"linux_amd64/build/empty":                           0o600,
	} {
		fi, err := os.Stat(filepath.Join(dst, p))
		require.NoError(t, err)
		assert.Equal(t, mode, fi.Mode().Perm(), p)
		assert.True(t, fi.ModTime().Equal(mtime), "%s: mtime %s", p, fi.ModTime())
	}

	// What BuildKit lists is not trusted to stay in the folder, and only
	// files and folders are read: a link the make put in /out could lead
	// the assembly out of the folder, to a file of this machine.
	for name, e := range map[string]*fstypes.Stat{
		"..":       {Path: "..", Mode: uint32(os.ModeDir | 0o755)},
		"../x":     {Path: "../x", Mode: 0o644, Size: 1},
		"a/b":      {Path: "a/b", Mode: 0o644, Size: 1},
		"a device": {Path: "null", Mode: uint32(os.ModeDevice | os.ModeCharDevice | 0o666)},
		"a link":   {Path: "shadow", Mode: uint32(os.ModeSymlink | 0o777), Linkname: "/etc/shadow"},
	} {
		ref := &dirRef{root: src, entries: map[string][]*fstypes.Stat{"/": {e}}}
		dst := t.TempDir()
		_, err := readTree(context.Background(), ref, dst)
		require.Error(t, err, name)
		assert.True(t, strings.Contains(err.Error(), "not a file name under their folder") || strings.Contains(err.Error(), "neither a file") || strings.Contains(err.Error(), "a link is never taken"), "%s: %v", name, err)
		left, _ := os.ReadDir(filepath.Dir(dst))
		for _, l := range left {
			assert.NotEqual(t, "x", l.Name(), "%s: wrote outside the folder", name)
		}
	}

	// A file that shrinks while it is read is an error, not a short file.
	ref = &dirRef{root: src, entries: map[string][]*fstypes.Stat{"/": {{Path: "short", Mode: 0o644, Size: 100}}}}
	write("short", []byte("only 13 bytes"), 0o644)
	_, err = readTree(context.Background(), ref, t.TempDir())
	require.Error(t, err)
	assert.Contains(t, err.Error(), "did it change while being read?")
}

// A work folder is reused: the next build's results are written over the
// last build's, and nothing of the last build's is left to be taken for
// this one's, nor written through.
func TestReadTreeOverLastBuild(t *testing.T) {
	dst := t.TempDir()
	outside := filepath.Join(t.TempDir(), "outside")
	require.NoError(t, os.WriteFile(outside, []byte("not ours"), 0o644))

	last := t.TempDir()
	writeFiles(t, last, map[string]string{
		"a/pilot-discovery": strings.Repeat("old binary ", 1000),
		"a/stale":           "only the last build made this",
		"a/became-a-folder": "a file then",
		"gone/x":            "a whole folder the results lack now",
	})
	_, err := readTree(context.Background(), &dirRef{root: last}, dst)
	require.NoError(t, err)
	// What another hand left in the folder: a link where the next results
	// have a file, and a file with a second name outside.
	require.NoError(t, os.Symlink(outside, filepath.Join(dst, "a/linked")))
	outsideLink := filepath.Join(filepath.Dir(outside), "hard")
	require.NoError(t, os.Link(filepath.Join(dst, "a/pilot-discovery"), outsideLink))

	next := t.TempDir()
	writeFiles(t, next, map[string]string{
		"a/pilot-discovery":        "new, shorter",
		"a/became-a-folder/inside": "a file in it",
		"a/linked":                 "written to the work folder",
	})
	tree, err := listTree(context.Background(), &dirRef{root: next}, dst, false)
	require.NoError(t, err)
	// A reader opened before the bytes come waits for this build's.
	r, size, err := tree.open(filepath.Join(dst, "a/pilot-discovery"))
	require.NoError(t, err)
	defer r.Close()
	assert.Equal(t, int64(len("new, shorter")), size)
	got := make(chan []byte, 1)
	go func() { b, _ := io.ReadAll(r); got <- b }()
	require.NoError(t, tree.read(context.Background(), &dirRef{root: next}))
	assert.Equal(t, "new, shorter", string(<-got))

	var files []string
	require.NoError(t, filepath.WalkDir(dst, func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			rel, _ := filepath.Rel(dst, p)
			b, _ := os.ReadFile(p)
			files = append(files, filepath.ToSlash(rel)+": "+string(b))
		}
		return err
	}))
	assert.ElementsMatch(t, []string{
		"a/pilot-discovery: new, shorter",
		"a/became-a-folder/inside: a file in it",
		"a/linked: written to the work folder",
	}, files)
	b, err := os.ReadFile(outside)
	require.NoError(t, err)
	assert.Equal(t, "not ours", string(b), "written through a link")
	b, err = os.ReadFile(outsideLink)
	require.NoError(t, err)
	assert.Equal(t, strings.Repeat("old binary ", 1000), string(b), "written through a hard link")
	fi, err := os.Lstat(filepath.Join(dst, "a/linked"))
	require.NoError(t, err)
	assert.True(t, fi.Mode().IsRegular())
}

// A reader waiting for bytes that never come gets the read's error.
func TestResultTreeReaderGetsReadError(t *testing.T) {
	src := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(src, "f"), bytes.Repeat([]byte("x"), 3*readChunk), 0o644))
	ref := &dirRef{root: src}
	dst := t.TempDir()
	tree, err := listTree(context.Background(), ref, dst, false)
	require.NoError(t, err)
	r, _, err := tree.open(filepath.Join(dst, "f"))
	require.NoError(t, err)
	defer r.Close()
	require.NoError(t, os.Remove(filepath.Join(src, "f")))
	readErr := tree.read(context.Background(), ref)
	require.Error(t, readErr)
	_, err = io.ReadAll(r)
	assert.ErrorIs(t, err, readErr)
	_, _, err = tree.open(filepath.Join(dst, "missing"))
	assert.ErrorIs(t, err, readErr, "a file the results lack waits for the read")
}

// refReaderAt reads a result's file as a ReaderAt, which debug/elf and
// debug/buildinfo read headers through.
func TestRefReaderAt(t *testing.T) {
	src := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(src, "f"), []byte("0123456789"), 0o644))
	ref := &dirRef{root: src}
	r := &refReaderAt{ctx: context.Background(), ref: ref, name: "/f", size: 10}
	b := make([]byte, 4)
	n, err := r.ReadAt(b, 3)
	require.NoError(t, err)
	assert.Equal(t, "3456", string(b[:n]))
	n, err = r.ReadAt(b, 8)
	assert.Equal(t, io.EOF, err)
	assert.Equal(t, "89", string(b[:n]))
	_, err = r.ReadAt(b, 10)
	assert.Equal(t, io.EOF, err)
}

// Validation's planning probes each result while the results are read out
// of BuildKit: a Go binary's headers, build ID and build info take a few
// block reads (not one request per header), and a binary the work folder
// already holds (kept) is probed there, with no request at all. Either
// way it finds what probing the file itself finds.
func TestProbeFilesReadsBlocks(t *testing.T) {
	exe, err := os.Executable()
	require.NoError(t, err)
	pl := platform{name: "linux/amd64", arch: "amd64"}
	img := recipes.Image{Name: "img", Files: []recipes.File{{From: "build:out/tool", To: "/usr/local/bin/tool"}}}
	name := pl.resultPath(recipes.FromBuild, "out/tool")
	src := t.TempDir()
	bin, err := os.ReadFile(exe)
	require.NoError(t, err)
	require.NoError(t, os.MkdirAll(filepath.Join(src, filepath.Dir(name)), 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(src, name), bin, 0o755))
	ef, err := elf.Open(exe)
	require.NoError(t, err)
	defer ef.Close()
	id := goBuildID(ef)
	require.NotEmpty(t, id)

	probe := func(reuse bool, dst string) (probed, int64, *resultTree) {
		t.Helper()
		ref := &dirRef{root: src}
		tree, err := listTree(context.Background(), ref, dst, reuse)
		require.NoError(t, err)
		before := ref.reads.Load()
		files, err := probeFiles(context.Background(), &buildRun{}, img, pl, ref, tree)
		require.NoError(t, err)
		reads := ref.reads.Load() - before
		require.NoError(t, tree.read(context.Background(), ref))
		return files["/usr/local/bin/tool"], reads, tree
	}
	dst := t.TempDir()
	p, reads, tree := probe(false, dst)
	assert.Empty(t, tree.kept(name))
	assert.Equal(t, elf.EM_X86_64, p.machine)
	assert.True(t, p.goBinary)
	assert.Equal(t, "go:"+id, p.content)
	assert.Equal(t, int64(len(bin)), p.size)
	assert.Equal(t, os.FileMode(0o755), p.mode.Perm())
	assert.LessOrEqual(t, reads, int64(5), "a handful of block reads for headers, build ID and build info")

	// The next build's work folder holds the same binary: kept, and
	// probed where it is.
	p2, reads, tree := probe(true, dst)
	assert.NotEmpty(t, tree.kept(name))
	assert.Zero(t, reads)
	assert.Equal(t, p, p2)
}

// blockReaderAt asks for each aligned block once, and reads across
// blocks and up to the end as the reader under it does.
func TestBlockReaderAt(t *testing.T) {
	src := t.TempDir()
	data := []byte("0123456789abcdefghij")
	require.NoError(t, os.WriteFile(filepath.Join(src, "f"), data, 0o644))
	ref := &dirRef{root: src}
	r := newBlockReaderAt(&refReaderAt{ctx: context.Background(), ref: ref, name: "/f", size: int64(len(data))}, int64(len(data)), 8)
	b := make([]byte, 6)
	n, err := r.ReadAt(b, 5)
	require.NoError(t, err)
	assert.Equal(t, "56789a", string(b[:n]), "across two blocks")
	assert.Equal(t, int64(2), ref.reads.Load())
	n, err = r.ReadAt(b[:3], 9)
	require.NoError(t, err)
	assert.Equal(t, "9ab", string(b[:n]))
	assert.Equal(t, int64(2), ref.reads.Load(), "blocks already read are not asked for again")
	n, err = r.ReadAt(b, 17)
	assert.Equal(t, io.EOF, err)
	assert.Equal(t, "hij", string(b[:n]), "the last, short block")
	assert.Equal(t, int64(3), ref.reads.Load())
	_, err = r.ReadAt(b, 20)
	assert.Equal(t, io.EOF, err)
	_, err = r.ReadAt(b, -1)
	assert.Error(t, err)
}
