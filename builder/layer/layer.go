// Package layer writes image layers that are the same bytes every time for
// the same content: fixed timestamps, numeric root ownership, no access or
// change times, and gzip without a header timestamp.
package layer

import (
	"archive/tar"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"runtime"
	"strings"
	"syscall"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/klauspost/pgzip"
)

// Normalize makes a header reproducible: modification time epoch, no
// atime/ctime, no user or group names, PAX records only for extended
// attributes.
func Normalize(h *tar.Header, epoch time.Time) {
	h.ModTime = epoch
	h.AccessTime = time.Time{}
	h.ChangeTime = time.Time{}
	h.Uname, h.Gname = "", ""
	h.Format = tar.FormatPAX
	if len(h.PAXRecords) > 0 {
		keep := map[string]string{}
		for k, v := range h.PAXRecords {
			if strings.HasPrefix(k, "SCHILY.xattr.") {
				keep[k] = v
			}
		}
		h.PAXRecords = keep
	}
	//nolint:staticcheck // Xattrs is deprecated in favour of PAXRecords, kept above.
	h.Xattrs = nil
}

// Option changes how Write compresses.
type Option func(*writeOptions)

type writeOptions struct{ parallel bool }

// Parallel compresses with gzip's fastest level in parallel blocks
// (klauspost/pgzip, 1 MiB blocks), for the layers of built images, which
// hold large binaries and are written on every build. The output is the
// same bytes for the same content whatever the number of cores. Default:
// compress/gzip at its default level, one core (base images, written once).
func Parallel() Option { return func(o *writeOptions) { o.parallel = true } }

// Write creates a gzip-compressed tar layer at path from what fill writes
// and returns it as an OCI layer. The digests of the compressed and of the
// uncompressed stream are computed while writing, so the file is not read
// again to know them.
func Write(path string, fill func(tw *tar.Writer) error, opts ...Option) (v1.Layer, error) {
	var o writeOptions
	for _, opt := range opts {
		opt(&o)
	}
	// Written over what the file holds, if anything, and cut to its new
	// length: a build's work folder is the last build's (see the builder),
	// whose pages the page cache keeps.
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|syscall.O_NOFOLLOW, 0o644)
	if err != nil {
		return nil, err
	}
	compressed, diff := sha256.New(), sha256.New()
	counted := &countWriter{w: io.MultiWriter(f, compressed)}
	var gz io.WriteCloser
	if o.parallel {
		pw, err := pgzip.NewWriterLevel(counted, pgzip.BestSpeed)
		if err == nil {
			err = pw.SetConcurrency(1<<20, max(2, runtime.GOMAXPROCS(0)))
		}
		if err != nil {
			f.Close()
			return nil, err
		}
		gz = pw
	} else {
		gw, err := gzip.NewWriterLevel(counted, gzip.DefaultCompression)
		if err != nil {
			f.Close()
			return nil, err
		}
		gz = gw
	}
	tw := tar.NewWriter(io.MultiWriter(gz, diff))
	err = fill(tw)
	if err == nil {
		err = tw.Close()
	}
	if err == nil {
		err = gz.Close()
	}
	if err == nil {
		err = f.Truncate(counted.n)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, fmt.Errorf("writing layer %s: %w", path, err)
	}
	return &fileLayer{
		path:   path,
		digest: v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(compressed.Sum(nil))},
		diffID: v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(diff.Sum(nil))},
		size:   counted.n,
	}, nil
}

// Reuse returns the layer in the file at path, written earlier by Write,
// if the file's sha256 and size are digest and size (its uncompressed
// digest is taken as diffID): the file is read once to check it, not
// decompressed. It returns nil if the file is not that layer.
func Reuse(path string, digest, diffID v1.Hash, size int64) (v1.Layer, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NOFOLLOW, 0)
	if os.IsNotExist(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return nil, err
	}
	if n != size || digest.Algorithm != "sha256" || hex.EncodeToString(h.Sum(nil)) != digest.Hex {
		return nil, nil
	}
	return &fileLayer{path: path, digest: digest, diffID: diffID, size: size}, nil
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

// fileLayer is a gzip-compressed layer in a file, its digests known.
type fileLayer struct {
	path           string
	digest, diffID v1.Hash
	size           int64
}

func (l *fileLayer) Digest() (v1.Hash, error)             { return l.digest, nil }
func (l *fileLayer) DiffID() (v1.Hash, error)             { return l.diffID, nil }
func (l *fileLayer) Size() (int64, error)                 { return l.size, nil }
func (l *fileLayer) MediaType() (types.MediaType, error)  { return types.OCILayer, nil }
func (l *fileLayer) Compressed() (io.ReadCloser, error)   { return os.Open(l.path) }
func (l *fileLayer) Uncompressed() (io.ReadCloser, error) { return gunzipFile(l.path) }

func gunzipFile(path string) (io.ReadCloser, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	gz, err := gzip.NewReader(f)
	if err != nil {
		f.Close()
		return nil, err
	}
	return &readCloser{Reader: gz, close: func() error { gz.Close(); return f.Close() }}, nil
}

type readCloser struct {
	io.Reader
	close func() error
}

func (r *readCloser) Close() error { return r.close() }

// Copy re-writes a tar stream through Normalize.
func Copy(tw *tar.Writer, r io.Reader, epoch time.Time) error {
	tr := tar.NewReader(r)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		Normalize(h, epoch)
		if err := tw.WriteHeader(h); err != nil {
			return err
		}
		if h.Typeflag == tar.TypeReg {
			if _, err := io.Copy(tw, tr); err != nil {
				return err
			}
		}
	}
}

// File is one file to put in a layer.
type File struct {
	Path string // absolute path in the image
	Mode int64
	UID  int
	GID  int
	Data io.Reader
	Size int64
}

// WriteFiles writes files, creating their parent directories (mode 0755,
// owned by root) first, in the order given.
func WriteFiles(tw *tar.Writer, files []File, epoch time.Time) error {
	seen := map[string]bool{}
	for _, f := range files {
		rel := strings.TrimPrefix(f.Path, "/")
		parts := strings.Split(rel, "/")
		for i := 1; i < len(parts); i++ {
			dir := strings.Join(parts[:i], "/") + "/"
			if seen[dir] {
				continue
			}
			seen[dir] = true
			h := &tar.Header{Typeflag: tar.TypeDir, Name: dir, Mode: 0o755}
			Normalize(h, epoch)
			if err := tw.WriteHeader(h); err != nil {
				return err
			}
		}
		h := &tar.Header{Typeflag: tar.TypeReg, Name: rel, Mode: f.Mode, Size: f.Size, Uid: f.UID, Gid: f.GID}
		Normalize(h, epoch)
		if err := tw.WriteHeader(h); err != nil {
			return err
		}
		if _, err := io.Copy(tw, f.Data); err != nil {
			return fmt.Errorf("adding %s: %w", f.Path, err)
		}
	}
	return nil
}
