package bench

import (
	"archive/tar"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sailmaker/sailmaker/recipes"
)

func TestFloorImage(t *testing.T) {
	src, envoy := t.TempDir(), t.TempDir()
	write := func(p, content string) {
		require.NoError(t, os.MkdirAll(filepath.Dir(p), 0o755))
		require.NoError(t, os.WriteFile(p, []byte(content), 0o600))
	}
	write(filepath.Join(src, "out/linux_amd64/pilot-agent"), "agent")
	write(filepath.Join(src, "tools/boot.json"), "{}")
	write(filepath.Join(envoy, "envoy"), "envoy")
	img := recipes.Image{
		Name: "proxyv2",
		Files: []recipes.File{
			{From: "build:out/linux_amd64/pilot-agent", To: "/usr/local/bin/pilot-agent"},
			{From: "input:envoy", To: "/usr/local/bin/envoy"},
			{From: "source:tools/boot.json", To: "/var/lib/istio/envoy/boot.json"},
		},
		User:       "1337:1337",
		Entrypoint: []string{"/usr/local/bin/pilot-agent"},
		Env:        map[string]string{"ISTIO_META_ISTIO_PROXY_SHA": "abc", "PATH": "/bin"},
	}
	base, err := random.Image(100, 1)
	require.NoError(t, err)
	cf, err := base.ConfigFile()
	require.NoError(t, err)
	cf = cf.DeepCopy()
	cf.Config.Env = []string{"PATH=/usr/bin", "LANG=C"}
	base, err = mutate.ConfigFile(base, cf)
	require.NoError(t, err)
	epoch := time.Unix(1734146883, 0).UTC()

	out, err := FloorImage(img, base, src, envoy, epoch, filepath.Join(t.TempDir(), "l.tar.gz"))
	require.NoError(t, err)
	layers, err := out.Layers()
	require.NoError(t, err)
	require.Len(t, layers, 2, "the base's layer and one more")
	got, err := out.ConfigFile()
	require.NoError(t, err)
	assert.Equal(t, "1337:1337", got.Config.User)
	assert.Equal(t, []string{"/usr/local/bin/pilot-agent"}, got.Config.Entrypoint)
	assert.Equal(t, []string{"PATH=/bin", "LANG=C", "ISTIO_META_ISTIO_PROXY_SHA=abc"}, got.Config.Env)
	assert.True(t, got.Created.Time.Equal(epoch))

	files := map[string]*tar.Header{}
	rc, err := layers[1].Uncompressed()
	require.NoError(t, err)
	defer rc.Close()
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		require.NoError(t, err)
		files[h.Name] = h
	}
	require.Contains(t, files, "usr/local/bin/envoy")
	assert.EqualValues(t, 0o755, files["usr/local/bin/envoy"].Mode)
	assert.EqualValues(t, 0o644, files["var/lib/istio/envoy/boot.json"].Mode)
	assert.True(t, files["usr/local/bin/pilot-agent"].ModTime.Equal(epoch))

	// The same files give the same layer (so a new base reuses it).
	again, err := FloorImage(img, empty.Image, src, envoy, epoch, filepath.Join(t.TempDir(), "l.tar.gz"))
	require.NoError(t, err)
	l2, err := again.Layers()
	require.NoError(t, err)
	d1, _ := layers[1].Digest()
	d2, _ := l2[0].Digest()
	assert.Equal(t, d1, d2)

	img.Files = append(img.Files, recipes.File{From: "build:out/missing", To: "/x"})
	_, err = FloorImage(img, base, src, envoy, epoch, filepath.Join(t.TempDir(), "l.tar.gz"))
	assert.ErrorContains(t, err, "image proxyv2")
}
