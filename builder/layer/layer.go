// Package layer writes image layers that are the same bytes every time for
// the same content: fixed timestamps, numeric root ownership, no access or
// change times, and gzip without a header timestamp.
package layer

import (
	"archive/tar"
	"compress/gzip"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
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

// Write creates a gzip-compressed tar layer at path from what fill writes,
// and opens it as an OCI layer.
func Write(path string, fill func(tw *tar.Writer) error) (v1.Layer, error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	gz, err := gzip.NewWriterLevel(f, gzip.DefaultCompression)
	if err != nil {
		f.Close()
		return nil, err
	}
	tw := tar.NewWriter(gz)
	err = fill(tw)
	if err == nil {
		err = tw.Close()
	}
	if err == nil {
		err = gz.Close()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, fmt.Errorf("writing layer %s: %w", path, err)
	}
	return tarball.LayerFromFile(path, tarball.WithMediaType(types.OCILayer))
}

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
