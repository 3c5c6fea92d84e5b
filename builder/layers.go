package builder

import (
	"archive/tar"
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync/atomic"
	"time"

	"github.com/containerd/containerd/v2/core/content"
	"github.com/containerd/containerd/v2/plugins/content/local"
	"github.com/moby/buildkit/client/llb"
	"github.com/opencontainers/go-digest"
	ocispecs "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/sailmaker/sailmaker/internal/atomicfile"
)

// The module cache and the source reach BuildKit as images of one or two
// uncompressed layers in a content store under the cache directory, read
// through the session (llb.OCILayout) and pinned by manifest digest.
// BuildKit keys a step on an image by that digest and keeps the unpacked
// layers by chain ID, so a build whose go.sum and commit it has seen moves
// nothing and looks at no file: a local directory (llb.Local) is compared
// file by file on every build, which for Istio's module cache (38,473
// files) took 4 s even when nothing had changed. The layers are written
// once per go.sum and per commit (and per set of patches, a small layer
// of the files they change on top of the commit's), deterministically: the
// same tree gives the same digest.
const (
	// LayerStoreID names the content store in the session.
	LayerStoreID = "sailmaker-inputs"
	// layerRefName is the name part of the llb.OCILayout refs; the digest
	// is what counts.
	layerRefName = "sailmaker.invalid/inputs"
)

// InputLayer is a tree as an image in the input layer store.
type InputLayer struct {
	// Manifest is the image manifest's digest.
	Manifest digest.Digest
	// Size is the bytes of its layers.
	Size int64
}

// Ref is the llb.OCILayout reference of l.
func (l InputLayer) Ref() string { return layerRefName + "@" + l.Manifest.String() }

// State is l as an LLB source named name.
func (l InputLayer) State(name string) llb.State {
	return llb.OCILayout(l.Ref(), llb.OCIStore("", LayerStoreID), llb.WithCustomName(name))
}

// LayerStoreDir is where the input layers are kept.
func LayerStoreDir(cacheDir string) string { return filepath.Join(cacheDir, "layers") }

// OpenLayerStore opens the input layer store under cacheDir for a solve.
// Served counts the bytes BuildKit read from it.
func OpenLayerStore(cacheDir string) (*ServedStore, error) {
	s, err := local.NewStore(LayerStoreDir(cacheDir))
	if err != nil {
		return nil, fmt.Errorf("opening the input layer store: %w", err)
	}
	return &ServedStore{Store: s}, nil
}

// ServedStore is a content store that counts what is read from it.
type ServedStore struct {
	content.Store
	served atomic.Int64
}

// Served is the bytes read from the store so far.
func (s *ServedStore) Served() int64 { return s.served.Load() }

// ReaderAt counts what the reader returns.
func (s *ServedStore) ReaderAt(ctx context.Context, desc ocispecs.Descriptor) (content.ReaderAt, error) {
	ra, err := s.Store.ReaderAt(ctx, desc)
	if err != nil {
		return nil, err
	}
	return countingReaderAt{ra, &s.served}, nil
}

type countingReaderAt struct {
	content.ReaderAt
	n *atomic.Int64
}

func (c countingReaderAt) ReadAt(p []byte, off int64) (int, error) {
	n, err := c.ReaderAt.ReadAt(p, off)
	c.n.Add(int64(n))
	return n, err
}

// treeLayer is one layer of an input image: the files under dir (all of
// them, or only paths), and whiteouts for deleted.
type treeLayer struct {
	dir     string
	paths   []string
	deleted []string
	// mtimes are the entries (by slash name) whose mtime is not the
	// layer's.
	mtimes map[string]time.Time
}

// inputImage writes (once per key) an image whose layers are base's (if
// any) and then the given trees, every entry owned by root with the mtime
// mtime, and returns it.
func inputImage(cacheDir, key string, mtime time.Time, base *InputLayer, layers ...treeLayer) (InputLayer, error) {
	if l, ok := cachedInputImage(cacheDir, key); ok {
		return l, nil
	}
	root := LayerStoreDir(cacheDir)
	keyFile := filepath.Join(root, "keys", key)
	for _, d := range []string{filepath.Join(root, "blobs", "sha256"), filepath.Dir(keyFile)} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return InputLayer{}, err
		}
	}
	var out InputLayer
	var descs []ocispecs.Descriptor
	var diffIDs []digest.Digest
	if base != nil {
		man, err := readManifest(root, base.Manifest)
		if err != nil {
			return InputLayer{}, fmt.Errorf("reading the input layer %s: %w", base.Manifest, err)
		}
		for _, l := range man.Layers {
			descs, diffIDs = append(descs, l), append(diffIDs, l.Digest)
			out.Size += l.Size
		}
	}
	for _, tl := range layers {
		d, size, err := writeTreeLayer(root, tl, mtime)
		if err != nil {
			return InputLayer{}, fmt.Errorf("making the input layer %s of %s: %w", key, tl.dir, err)
		}
		descs = append(descs, ocispecs.Descriptor{MediaType: ocispecs.MediaTypeImageLayer, Digest: d, Size: size})
		diffIDs = append(diffIDs, d)
		out.Size += size
	}
	cfg, err := json.Marshal(ocispecs.Image{
		Platform: ocispecs.Platform{OS: "linux", Architecture: "amd64"},
		RootFS:   ocispecs.RootFS{Type: "layers", DiffIDs: diffIDs},
	})
	if err != nil {
		return InputLayer{}, err
	}
	cfgDesc, err := writeBlob(root, cfg, ocispecs.MediaTypeImageConfig)
	if err != nil {
		return InputLayer{}, err
	}
	man := ocispecs.Manifest{MediaType: ocispecs.MediaTypeImageManifest, Config: cfgDesc, Layers: descs}
	man.SchemaVersion = 2
	mb, err := json.Marshal(man)
	if err != nil {
		return InputLayer{}, err
	}
	md, err := writeBlob(root, mb, ocispecs.MediaTypeImageManifest)
	if err != nil {
		return InputLayer{}, err
	}
	out.Manifest = md.Digest
	kb, _ := json.Marshal(out)
	return out, atomicfile.Write(keyFile, kb)
}

// removeStaleTemps removes what an interrupted write of an input layer left
// in the store (a module cache's is hundreds of MiB): the hidden temporary
// files of writeTreeLayer and of atomicfile, the store's own files never
// being hidden. The caller holds the input cache's lock, so no write is
// under way.
func removeStaleTemps(cacheDir string) error {
	root := LayerStoreDir(cacheDir)
	for _, dir := range []string{filepath.Join(root, "blobs", "sha256"), filepath.Join(root, "keys")} {
		tmps, err := filepath.Glob(filepath.Join(dir, ".*"))
		if err != nil {
			return err
		}
		for _, t := range tmps {
			if err := os.Remove(t); err != nil && !os.IsNotExist(err) {
				return err
			}
		}
	}
	return nil
}

// cachedInputImage is the image written for key, if it is complete.
func cachedInputImage(cacheDir, key string) (InputLayer, bool) {
	root := LayerStoreDir(cacheDir)
	b, err := os.ReadFile(filepath.Join(root, "keys", key))
	if err != nil {
		return InputLayer{}, false
	}
	var l InputLayer
	if json.Unmarshal(b, &l) != nil || !blobExists(root, l.Manifest) {
		return InputLayer{}, false
	}
	ok, _ := imageComplete(root, l.Manifest)
	return l, ok
}

// imageComplete says whether the manifest's config and layers are all in
// the store (a pruned cache directory makes them again).
func imageComplete(root string, m digest.Digest) (bool, error) {
	man, err := readManifest(root, m)
	if err != nil {
		return false, err
	}
	for _, d := range append([]ocispecs.Descriptor{man.Config}, man.Layers...) {
		if !blobExists(root, d.Digest) {
			return false, nil
		}
	}
	return true, nil
}

// readManifest reads the image manifest m from the store.
func readManifest(root string, m digest.Digest) (ocispecs.Manifest, error) {
	var man ocispecs.Manifest
	b, err := os.ReadFile(blobPath(root, m))
	if err != nil {
		return man, err
	}
	return man, json.Unmarshal(b, &man)
}

func blobPath(root string, d digest.Digest) string {
	return filepath.Join(root, "blobs", d.Algorithm().String(), d.Encoded())
}

func blobExists(root string, d digest.Digest) bool {
	if d.Validate() != nil {
		return false
	}
	_, err := os.Stat(blobPath(root, d))
	return err == nil
}

func writeBlob(root string, b []byte, mediaType string) (ocispecs.Descriptor, error) {
	d := digest.FromBytes(b)
	desc := ocispecs.Descriptor{MediaType: mediaType, Digest: d, Size: int64(len(b))}
	if blobExists(root, d) {
		return desc, nil
	}
	return desc, atomicfile.Write(blobPath(root, d), b)
}

// writeTreeLayer writes tl as an uncompressed tar into the store, hashing
// while it writes, and returns its digest and size.
func writeTreeLayer(root string, tl treeLayer, mtime time.Time) (digest.Digest, int64, error) {
	f, err := os.CreateTemp(filepath.Join(root, "blobs", "sha256"), ".tmp-layer-*")
	if err != nil {
		return "", 0, err
	}
	defer os.Remove(f.Name())
	h := sha256.New()
	cw := &countWriter{w: io.MultiWriter(f, h)}
	bw := bufio.NewWriterSize(cw, 1<<20)
	if err := writeTree(bw, tl, mtime); err != nil {
		f.Close()
		return "", 0, err
	}
	if err := bw.Flush(); err != nil {
		f.Close()
		return "", 0, err
	}
	if err := f.Close(); err != nil {
		return "", 0, err
	}
	d := digest.NewDigestFromEncoded(digest.SHA256, hex.EncodeToString(h.Sum(nil)))
	if err := os.Rename(f.Name(), blobPath(root, d)); err != nil {
		return "", 0, err
	}
	return d, cw.n, nil
}

type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// writeTree writes the tar of tl: every directory, regular file and
// symlink under tl.dir (or only tl.paths and their parent directories) in
// lexical order, then a whiteout for each of tl.deleted. Owners are root,
// times mtime; hard links are written as files.
func writeTree(w io.Writer, tl treeLayer, mtime time.Time) error {
	tw := tar.NewWriter(w)
	var names []string
	if tl.paths == nil {
		err := filepath.WalkDir(tl.dir, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			rel, err := filepath.Rel(tl.dir, p)
			if err != nil || rel == "." {
				return err
			}
			names = append(names, filepath.ToSlash(rel))
			return nil
		})
		if err != nil {
			return err
		}
	} else {
		seen := map[string]bool{}
		for _, p := range tl.paths {
			p = filepath.ToSlash(filepath.Clean(p))
			if p == "." || strings.HasPrefix(p, "../") || filepath.IsAbs(p) {
				return fmt.Errorf("path %q is outside the tree", p)
			}
			for d := filepath.ToSlash(filepath.Dir(p)); d != "." && !seen[d]; d = filepath.ToSlash(filepath.Dir(d)) {
				seen[d] = true
				names = append(names, d)
			}
			if !seen[p] {
				seen[p] = true
				names = append(names, p)
			}
		}
	}
	for _, del := range tl.deleted {
		del = filepath.ToSlash(filepath.Clean(del))
		if del == "." || strings.HasPrefix(del, "../") || filepath.IsAbs(del) {
			return fmt.Errorf("path %q is outside the tree", del)
		}
	}
	sort.Strings(names)
	for _, name := range names {
		mt := mtime
		if t, ok := tl.mtimes[name]; ok {
			mt = t
		}
		if err := writeEntry(tw, tl.dir, name, mt); err != nil {
			return err
		}
	}
	dels := append([]string(nil), tl.deleted...)
	sort.Strings(dels)
	for _, del := range dels {
		del = filepath.ToSlash(filepath.Clean(del))
		dir, base := filepath.Dir(del), filepath.Base(del)
		wh := filepath.ToSlash(filepath.Join(dir, ".wh."+base))
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: wh, Mode: 0o644, ModTime: mtime, Format: tar.FormatPAX}); err != nil {
			return err
		}
	}
	return tw.Close()
}

func writeEntry(tw *tar.Writer, dir, name string, mtime time.Time) error {
	p := filepath.Join(dir, filepath.FromSlash(name))
	fi, err := os.Lstat(p)
	if err != nil {
		return err
	}
	hdr := &tar.Header{Name: name, ModTime: mtime, Mode: int64(fi.Mode().Perm()), Format: tar.FormatPAX}
	if fi.Mode()&fs.ModeSetuid != 0 {
		hdr.Mode |= 0o4000
	}
	if fi.Mode()&fs.ModeSetgid != 0 {
		hdr.Mode |= 0o2000
	}
	if fi.Mode()&fs.ModeSticky != 0 {
		hdr.Mode |= 0o1000
	}
	switch {
	case fi.IsDir():
		hdr.Typeflag, hdr.Name = tar.TypeDir, name+"/"
		return tw.WriteHeader(hdr)
	case fi.Mode()&fs.ModeSymlink != 0:
		target, err := os.Readlink(p)
		if err != nil {
			return err
		}
		hdr.Typeflag, hdr.Linkname = tar.TypeSymlink, target
		return tw.WriteHeader(hdr)
	case fi.Mode().IsRegular():
		hdr.Typeflag, hdr.Size = tar.TypeReg, fi.Size()
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		f, err := os.Open(p)
		if err != nil {
			return err
		}
		defer f.Close()
		n, err := io.Copy(tw, f)
		if err != nil {
			return err
		}
		if n != fi.Size() {
			return fmt.Errorf("%s changed while it was read", p)
		}
		return nil
	default:
		return errors.New(p + ": not a file, directory or symlink; the tree cannot hold it")
	}
}
