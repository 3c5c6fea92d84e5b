package builder

import (
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sailmaker/sailmaker/recipes"
)

// An image's layer is written again only when a byte that goes into it
// changed: the last build's is taken again, checked, when its memo's key
// is that of the files now.
func TestLayerIsReusedWhenItsFilesAreTheSame(t *testing.T) {
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{"agent": "the agent binary", "bootstrap.json": `{"a": 1}`})
	img := recipes.Image{Name: "proxyv2", Files: []recipes.File{
		{From: "build:agent", To: "/usr/local/bin/pilot-agent"},
		{From: "source:bootstrap.json", To: "/var/lib/istio/envoy/envoy_bootstrap_tmpl.json", Mode: "0644"},
	}}
	source := func(f recipes.File) (string, error) { _, rel := f.Source(); return filepath.Join(dir, rel), nil }
	layerPath := filepath.Join(t.TempDir(), "proxyv2.tar.gz")
	history := v1.History{Created: v1.Time{Time: time.Unix(1734146883, 0)}}
	opens := 0
	open := func(p string) (io.ReadCloser, int64, error) { opens++; return OpenFile(p) }
	known := func(p string) (string, bool) {
		b, err := os.ReadFile(p)
		return sha256Hex(b), err == nil
	}
	build := func(known Known) v1.Hash {
		t.Helper()
		opens = 0
		img, _, err := layerFrom(img, empty.Image, source, open, known, layerPath, history)
		require.NoError(t, err)
		ls, err := img.Layers()
		require.NoError(t, err)
		d, err := ls[0].Digest()
		require.NoError(t, err)
		return d
	}

	first := build(known)
	assert.Equal(t, 2, opens, "a first build writes the layer")
	assert.FileExists(t, layerPath+layerMemoSuffix)
	assert.Equal(t, first, build(known))
	assert.Equal(t, 0, opens, "the same files: the layer is taken again")

	// A file whose sha256 is not known: written again.
	assert.Equal(t, first, build(func(p string) (string, bool) { return "", false }))
	assert.Equal(t, 2, opens)

	// A changed file: another layer, and its memo.
	writeFiles(t, dir, map[string]string{"agent": "the new agent"})
	second := build(known)
	assert.Equal(t, 2, opens)
	assert.NotEqual(t, first, second)
	assert.Equal(t, second, build(known))
	assert.Equal(t, 0, opens)

	// A layer file that is no longer what its memo says: written again.
	require.NoError(t, os.WriteFile(layerPath, []byte("not the layer"), 0o644))
	assert.Equal(t, second, build(known))
	assert.Equal(t, 2, opens)

	// Without a memo (a layer written halfway has none): written again.
	require.NoError(t, os.Remove(layerPath+layerMemoSuffix))
	assert.Equal(t, second, build(known))
	assert.Equal(t, 2, opens)

	// Without known (--force, the floor's Layer): written, no memo kept.
	assert.Equal(t, second, build(nil))
	assert.Equal(t, 2, opens)
	assert.NoFileExists(t, layerPath+layerMemoSuffix)
}
