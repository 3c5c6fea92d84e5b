package bench

import (
	"context"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sailmaker/sailmaker/internal/testenv"
	"github.com/sailmaker/sailmaker/registry"
)

// The proxy counts what a push sends, whatever the client: the whole image
// the first time, nothing for the same image again, and mounts (not
// uploads) for layers another repository of the registry already has.
func TestProxyCountsPushes(t *testing.T) {
	e := testenv.Registry(t) // in-process, no daemon
	p, err := StartProxy(e.Config.Registry.Address)
	require.NoError(t, err)
	defer p.Close()
	ctx := context.Background()

	img, err := random.Image(4096, 2)
	require.NoError(t, err)
	size, err := registry.ImageSize(img)
	require.NoError(t, err)
	layers, err := img.Layers()
	require.NoError(t, err)
	cfgName, err := img.ConfigName()
	require.NoError(t, err)

	ref, err := name.ParseReference(p.Addr+"/a/img:1", name.Insecure)
	require.NoError(t, err)
	require.NoError(t, remote.Write(ref, img, remote.WithContext(ctx)))
	tr := p.Take()
	// Every blob and the manifest went through, counted once.
	assert.Equal(t, size, tr.Uploaded)
	assert.Equal(t, 1, tr.Manifests)
	var want []string
	for _, l := range layers {
		d, err := l.Digest()
		require.NoError(t, err)
		want = append(want, d.String())
	}
	want = append(want, cfgName.String())
	assert.ElementsMatch(t, want, tr.Blobs)
	assert.Empty(t, tr.Mounts)
	assert.Positive(t, tr.Requests)

	// Take started afresh: the same image again sends nothing.
	require.NoError(t, remote.Write(ref, img, remote.WithContext(ctx)))
	tr = p.Take()
	assert.Zero(t, tr.Uploaded)
	assert.Empty(t, tr.Blobs)

	// Read from the registry and pushed to another repository: the layers
	// are mounted, not sent; reading counts as downloaded.
	src, err := remote.Image(ref, remote.WithContext(ctx))
	require.NoError(t, err)
	other, err := name.ParseReference(p.Addr+"/b/img:1", name.Insecure)
	require.NoError(t, err)
	require.NoError(t, remote.Write(other, src, remote.WithContext(ctx)))
	tr = p.Take()
	assert.Len(t, tr.Mounts, 3, "two layers and the config")
	assert.Empty(t, tr.Blobs)
	raw, err := img.RawManifest()
	require.NoError(t, err)
	assert.Equal(t, int64(len(raw)), tr.Uploaded, "only the manifest is sent")
	assert.Positive(t, tr.Downloaded)

	// The proxy's client sees the registry's answers.
	d, err := remote.Head(other, remote.WithContext(ctx))
	require.NoError(t, err)
	want0, _ := img.Digest()
	assert.Equal(t, want0, d.Digest)
}
