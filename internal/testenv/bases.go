package testenv

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/stretchr/testify/require"

	"github.com/sailmaker/sailmaker/builder/base"
	"github.com/sailmaker/sailmaker/recipes"
	"github.com/sailmaker/sailmaker/registry"
)

// CacheDir keeps base images built by tests between test processes and runs
// ($SAILMAKER_TEST_CACHE, default /var/tmp/sailmaker-test-cache): building
// them takes minutes, and a base image is a pure function of its recipe and
// the Debian package versions. The reproducibility test builds afresh.
func CacheDir(t testing.TB) string {
	dir := os.Getenv("SAILMAKER_TEST_CACHE")
	if dir == "" {
		dir = "/var/tmp/sailmaker-test-cache"
	}
	require.NoError(t, os.MkdirAll(dir, 0o755))
	return dir
}

// BaseSpecs are the embedded base recipes as specs for e's registry.
func (e *Env) BaseSpecs(t testing.TB) []base.Spec {
	bases, err := recipes.Bases(recipes.WithRegistry(e.Config.Registry.Address), recipes.WithAllowedRegistries(e.Config.AllowedRegistries()))
	require.NoError(t, err)
	var out []base.Spec
	for _, b := range bases {
		out = append(out, base.FromRecipe(b))
	}
	return out
}

// BaseOptions are the options tests build base images with.
func (e *Env) BaseOptions(t testing.TB) base.Options {
	return base.Options{
		WorkDir:  filepath.Join(e.Config.StateDir, "tmp"),
		CacheDir: CacheDir(t),
		Mirror:   e.Config.Debian.Mirror,
	}
}

// Bases makes sure every embedded base image is in e's registry, building
// each at most once per cache (under a lock, so parallel test processes
// wait for each other instead of building twice).
func (e *Env) Bases(t testing.TB) map[string]registry.Pushed {
	t.Helper()
	ctx := context.Background()
	cache := CacheDir(t)
	// A complete cache entry is never removed or changed (new ones are
	// renamed into place): when every base is cached, no lock is needed,
	// and a process building other bases does not hold this one up.
	specs := e.BaseSpecs(t)
	cached := map[string]v1.Image{}
	for _, s := range specs {
		if img := cachedImage(t, cache, s); img != nil {
			cached[s.Name] = img
		}
	}
	if len(cached) < len(specs) {
		lock, err := os.OpenFile(filepath.Join(cache, "lock"), os.O_CREATE|os.O_RDWR, 0o644)
		require.NoError(t, err)
		defer lock.Close()
		require.NoError(t, syscall.Flock(int(lock.Fd()), syscall.LOCK_EX))
		defer syscall.Flock(int(lock.Fd()), syscall.LOCK_UN)
	}

	out := map[string]registry.Pushed{}
	for _, s := range specs {
		img := cached[s.Name]
		if img == nil {
			img = cachedBase(t, cache, s, e.BaseOptions(t))
		}
		tag, err := e.Registry.Tag(s.Name, s.Version)
		require.NoError(t, err)
		pushed, err := e.Registry.PushAll(ctx, []registry.Pending{{Tag: tag, Image: img}}, false)
		require.NoError(t, err)
		out[s.Name] = pushed[0]
	}
	return out
}

// cachedImage is the cached image of s, nil when it is not cached.
func cachedImage(t testing.TB, cache string, s base.Spec) v1.Image {
	dir := filepath.Join(cache, strings.TrimPrefix(s.RecipeDigest, "sha256:")[:32])
	if idx, err := layout.ImageIndexFromPath(dir); err == nil {
		if m, err := idx.IndexManifest(); err == nil && len(m.Manifests) == 1 {
			img, err := idx.Image(m.Manifests[0].Digest)
			require.NoError(t, err)
			return img
		}
	}
	return nil
}

func cachedBase(t testing.TB, cache string, s base.Spec, o base.Options) v1.Image {
	dir := filepath.Join(cache, strings.TrimPrefix(s.RecipeDigest, "sha256:")[:32])
	if img := cachedImage(t, cache, s); img != nil {
		return img
	}
	t.Logf("building base image %s:%s (cached in %s for later tests)", s.Name, s.Version, dir)
	res, err := base.Build(context.Background(), s, o)
	require.NoError(t, err)
	defer res.Close()
	_ = os.RemoveAll(dir)
	p, err := layout.Write(dir+".tmp", empty.Index)
	require.NoError(t, err)
	require.NoError(t, p.AppendImage(res.Image))
	require.NoError(t, os.Rename(dir+".tmp", dir))
	idx, err := layout.ImageIndexFromPath(dir)
	require.NoError(t, err)
	d, err := res.Image.Digest()
	require.NoError(t, err)
	img, err := idx.Image(d)
	require.NoError(t, err)
	return img
}
