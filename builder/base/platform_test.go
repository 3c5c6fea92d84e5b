package base_test

import (
	"context"
	"errors"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sailmaker/sailmaker/builder/base"
	"github.com/sailmaker/sailmaker/internal/testenv"
	"github.com/sailmaker/sailmaker/registry"
)

func platformImage(t *testing.T, arch string) v1.Image {
	img, err := random.Image(64, 1)
	require.NoError(t, err)
	cf, err := img.ConfigFile()
	require.NoError(t, err)
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", arch
	img, err = mutate.ConfigFile(img, cf)
	require.NoError(t, err)
	return img
}

func TestParsePlatform(t *testing.T) {
	p, err := base.ParsePlatform("linux/arm64")
	require.NoError(t, err)
	assert.Equal(t, v1.Platform{OS: "linux", Architecture: "arm64", Variant: "v8"}, p)
	p, err = base.ParsePlatform("linux/amd64")
	require.NoError(t, err)
	assert.Equal(t, v1.Platform{OS: "linux", Architecture: "amd64"}, p)
	for _, bad := range []string{"linux", "windows/amd64", "linux/s390x", ""} {
		_, err := base.ParsePlatform(bad)
		assert.Error(t, err, bad)
	}
}

// PlatformImage picks a platform's image from an index, accepts a single
// image of the right platform, and says what is there when the platform is
// not; Push pushes an index under a tag that then does not move without
// force.
func TestPlatformImageAndIndexPush(t *testing.T) {
	e := testenv.Registry(t)
	ctx := context.Background()
	amd, arm := platformImage(t, "amd64"), platformImage(t, "arm64")
	idx := mutate.AppendManifests(mutate.IndexMediaType(empty.Index, types.OCIImageIndex),
		mutate.IndexAddendum{Add: amd, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: "amd64"}}},
		mutate.IndexAddendum{Add: arm, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: "arm64", Variant: "v8"}}},
	)
	tag, err := e.Registry.Tag("test/multi", "1")
	require.NoError(t, err)
	pushed, err := base.Push(ctx, e.Registry, tag, base.Artifact{Index: idx}, false)
	require.NoError(t, err)
	want, _ := idx.Digest()
	assert.Equal(t, want, pushed.Digest)
	assert.False(t, pushed.Unchanged)
	again, err := base.Push(ctx, e.Registry, tag, base.Artifact{Index: idx}, false)
	require.NoError(t, err)
	assert.True(t, again.Unchanged)

	armP, _ := base.ParsePlatform("linux/arm64")
	img, d, err := base.PlatformImage(ctx, e.Registry, tag, armP)
	require.NoError(t, err)
	armD, _ := arm.Digest()
	assert.Equal(t, armD, d)
	got, _ := img.Digest()
	assert.Equal(t, armD, got)
	// What go-containerregistry's remote.Image (and so today's builder) reads:
	// the amd64 image.
	def, err := e.Registry.Image(ctx, tag)
	require.NoError(t, err)
	amdD, _ := amd.Digest()
	defD, _ := def.Digest()
	assert.Equal(t, amdD, defD)

	single, err := e.Registry.Tag("test/single", "1")
	require.NoError(t, err)
	_, err = base.Push(ctx, e.Registry, single, base.Artifact{Image: amd}, false)
	require.NoError(t, err)
	amdP, _ := base.ParsePlatform("linux/amd64")
	_, d, err = base.PlatformImage(ctx, e.Registry, single, amdP)
	require.NoError(t, err)
	assert.Equal(t, amdD, d)
	_, _, err = base.PlatformImage(ctx, e.Registry, single, armP)
	assert.ErrorContains(t, err, "a single image for linux/amd64, not linux/arm64/v8")

	only, err := e.Registry.Tag("test/multi", "amd64-only")
	require.NoError(t, err)
	idx1 := mutate.AppendManifests(mutate.IndexMediaType(empty.Index, types.OCIImageIndex),
		mutate.IndexAddendum{Add: amd, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: "amd64"}}})
	_, err = base.Push(ctx, e.Registry, only, base.Artifact{Index: idx1}, false)
	require.NoError(t, err)
	_, _, err = base.PlatformImage(ctx, e.Registry, only, armP)
	assert.ErrorContains(t, err, "has no image for linux/arm64/v8 (it has linux/amd64)")

	// The tag names idx; another index is refused unless forced.
	_, err = base.Push(ctx, e.Registry, tag, base.Artifact{Index: idx1}, false)
	var moved *registry.TagMovedError
	require.True(t, errors.As(err, &moved), "%v", err)
	forced, err := base.Push(ctx, e.Registry, tag, base.Artifact{Index: idx1}, true)
	require.NoError(t, err)
	assert.True(t, forced.Forced)
	assert.Equal(t, want, *forced.Previous)
}
