package layer

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestWriteIsReproducible(t *testing.T) {
	epoch := time.Unix(1734146883, 0)
	write := func(dir string) (string, []byte) {
		l, err := Write(filepath.Join(dir, "l.tar.gz"), func(tw *tar.Writer) error {
			return WriteFiles(tw, []File{
				{Path: "/usr/local/bin/tool", Mode: 0o755, Data: bytes.NewReader([]byte("binary")), Size: 6},
				{Path: "/var/lib/app/conf.json", Mode: 0o644, Data: bytes.NewReader([]byte("{}")), Size: 2},
			}, epoch)
		})
		require.NoError(t, err)
		d, err := l.Digest()
		require.NoError(t, err)
		rc, err := l.Uncompressed()
		require.NoError(t, err)
		defer rc.Close()
		b, err := io.ReadAll(rc)
		require.NoError(t, err)
		return d.String(), b
	}
	d1, raw := write(t.TempDir())
	d2, _ := write(t.TempDir())
	assert.Equal(t, d1, d2)
	// Over a longer file an earlier build left: the same bytes, no tail.
	reused := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(reused, "l.tar.gz"), bytes.Repeat([]byte("old layer "), 100000), 0o644))
	d3, raw3 := write(reused)
	assert.Equal(t, d1, d3)
	assert.Equal(t, raw, raw3)
	fileBytes, err := os.ReadFile(filepath.Join(reused, "l.tar.gz"))
	require.NoError(t, err)
	assert.Equal(t, d1, "sha256:"+fmt.Sprintf("%x", sha256.Sum256(fileBytes)), "the file is the layer, without the old tail")

	tr := tar.NewReader(bytes.NewReader(raw))
	var names []string
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		require.NoError(t, err)
		names = append(names, h.Name)
		assert.True(t, h.ModTime.Equal(epoch), h.Name)
		assert.Zero(t, h.Uid)
		assert.Empty(t, h.Uname)
	}
	assert.Equal(t, []string{"usr/", "usr/local/", "usr/local/bin/", "usr/local/bin/tool", "var/", "var/lib/", "var/lib/app/", "var/lib/app/conf.json"}, names)
}

func TestCopyNormalizes(t *testing.T) {
	var in bytes.Buffer
	tw := tar.NewWriter(&in)
	now := time.Now()
	require.NoError(t, tw.WriteHeader(&tar.Header{Name: "etc/hostname", Mode: 0o644, Size: 2, ModTime: now, AccessTime: now, ChangeTime: now, Uname: "root", Format: tar.FormatPAX,
		PAXRecords: map[string]string{"SCHILY.xattr.user.x": "1", "comment": "drop me"}}))
	_, _ = tw.Write([]byte("hi"))
	require.NoError(t, tw.Close())

	var out bytes.Buffer
	w := tar.NewWriter(&out)
	epoch := time.Unix(100, 0)
	require.NoError(t, Copy(w, &in, epoch))
	require.NoError(t, w.Close())
	h, err := tar.NewReader(&out).Next()
	require.NoError(t, err)
	assert.True(t, h.ModTime.Equal(epoch))
	assert.True(t, h.AccessTime.IsZero())
	assert.Empty(t, h.Uname)
	assert.Equal(t, map[string]string{"SCHILY.xattr.user.x": "1"}, h.PAXRecords)
}

// The digests Write computes while writing are those of the file and of
// its uncompressed tar; the parallel compression gives the same bytes
// whatever the number of cores, and differs from the default only in
// compression, not content.
func TestWriteDigestsAndParallel(t *testing.T) {
	epoch := time.Unix(1734146883, 0)
	big := bytes.Repeat([]byte("sailmaker layer content "), 300000) // ~7 MiB: several blocks
	fill := func(tw *tar.Writer) error {
		return WriteFiles(tw, []File{{Path: "/usr/local/bin/big", Mode: 0o755, Data: bytes.NewReader(big), Size: int64(len(big))}}, epoch)
	}
	write := func(name string, procs int, opts ...Option) ([]byte, v1.Layer) {
		defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(procs))
		p := filepath.Join(t.TempDir(), name)
		l, err := Write(p, fill, opts...)
		require.NoError(t, err)
		b, err := os.ReadFile(p)
		require.NoError(t, err)
		return b, l
	}
	def, dl := write("default.tar.gz", 2)
	par1, pl := write("par1.tar.gz", 1, Parallel())
	par4, _ := write("par4.tar.gz", 4, Parallel())
	assert.Equal(t, par1, par4, "the same bytes on 1 or 4 cores")
	assert.NotEqual(t, def, par1)

	for _, c := range []struct {
		file []byte
		l    v1.Layer
	}{{def, dl}, {par1, pl}} {
		d, err := c.l.Digest()
		require.NoError(t, err)
		sum := sha256.Sum256(c.file)
		assert.Equal(t, hex.EncodeToString(sum[:]), d.Hex, "digest of the file")
		size, err := c.l.Size()
		require.NoError(t, err)
		assert.EqualValues(t, len(c.file), size)
		zr, err := gzip.NewReader(bytes.NewReader(c.file))
		require.NoError(t, err)
		raw, err := io.ReadAll(zr)
		require.NoError(t, err)
		diff, err := c.l.DiffID()
		require.NoError(t, err)
		rsum := sha256.Sum256(raw)
		assert.Equal(t, hex.EncodeToString(rsum[:]), diff.Hex, "diff id of the tar")
		rc, err := c.l.Uncompressed()
		require.NoError(t, err)
		got, err := io.ReadAll(rc)
		require.NoError(t, err)
		require.NoError(t, rc.Close())
		assert.Equal(t, raw, got)
	}
	// The same tar inside both.
	d1, _ := dl.DiffID()
	d2, _ := pl.DiffID()
	assert.Equal(t, d1, d2)
}
