package layer

import (
	"archive/tar"
	"bytes"
	"io"
	"path/filepath"
	"testing"
	"time"

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
