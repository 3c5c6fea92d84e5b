package testenv

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/stretchr/testify/require"
	"golang.org/x/sync/errgroup"

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
// wait for each other instead of building twice). A multi-platform base is
// pushed as its image index.
func (e *Env) Bases(t testing.TB) map[string]registry.Pushed {
	t.Helper()
	ctx := context.Background()
	cache := CacheDir(t)
	specs := e.BaseSpecs(t)
	arts := make([]base.Artifact, len(specs))
	// A complete cache entry is never removed or changed (new ones are
	// renamed into place): when every base is cached, no lock is needed,
	// and a process building other bases does not hold this one up.
	missing := false
	for i, s := range specs {
		a, err := readCached(filepath.Join(cache, cacheKey(s)))
		arts[i], missing = a, missing || err != nil
	}
	if missing {
		lock, err := os.OpenFile(filepath.Join(cache, "lock"), os.O_CREATE|os.O_RDWR, 0o644)
		require.NoError(t, err)
		defer lock.Close()
		require.NoError(t, syscall.Flock(int(lock.Fd()), syscall.LOCK_EX))
		defer syscall.Flock(int(lock.Fd()), syscall.LOCK_UN)

		// Missing bases are built two at a time: the arm64 Debian base
		// takes minutes under emulation, the others fit in beside it.
		var eg errgroup.Group
		eg.SetLimit(2)
		for i, s := range specs {
			eg.Go(func() error {
				a, err := cachedBase(t, cache, s, e.BaseOptions(t))
				arts[i] = a
				return err
			})
		}
		require.NoError(t, eg.Wait())
	}
	out := map[string]registry.Pushed{}
	for i, s := range specs {
		tag, err := e.Registry.Tag(s.Name, s.Version)
		require.NoError(t, err)
		pushed, err := base.Push(ctx, e.Registry, tag, arts[i], false)
		require.NoError(t, err)
		out[s.Name] = *pushed
	}
	return out
}

// cacheKey names a base's cache entry: its recipe and the revision of the
// code that builds it.
func cacheKey(s base.Spec) string {
	sum := sha256.Sum256([]byte(s.RecipeDigest + "\n" + base.Revision))
	return hex.EncodeToString(sum[:16])
}

func cachedBase(t testing.TB, cache string, s base.Spec, o base.Options) (base.Artifact, error) {
	dir := filepath.Join(cache, cacheKey(s))
	if a, err := readCached(dir); err == nil {
		return a, nil
	}
	t.Logf("building base image %s:%s for %s (cached in %s for later tests)", s.Name, s.Version, strings.Join(s.PlatformList(), ", "), dir)
	start := time.Now()
	res, err := base.Build(context.Background(), s, o)
	if err != nil {
		return base.Artifact{}, fmt.Errorf("building %s: %w", s.Name, err)
	}
	defer res.Close()
	t.Logf("built %s in %s", s.Name, time.Since(start).Round(time.Second))
	_ = os.RemoveAll(dir)
	_ = os.RemoveAll(dir + ".tmp")
	p, err := layout.Write(dir+".tmp", empty.Index)
	if err != nil {
		return base.Artifact{}, err
	}
	if res.Index != nil {
		err = p.AppendIndex(res.Index)
	} else {
		err = p.AppendImage(res.Image)
	}
	if err != nil {
		return base.Artifact{}, fmt.Errorf("caching %s: %w", s.Name, err)
	}
	if err := os.Rename(dir+".tmp", dir); err != nil {
		return base.Artifact{}, err
	}
	return readCached(dir)
}

// readCached opens a cached base: the one image or index of the layout.
func readCached(dir string) (base.Artifact, error) {
	idx, err := layout.ImageIndexFromPath(dir)
	if err != nil {
		return base.Artifact{}, err
	}
	m, err := idx.IndexManifest()
	if err != nil {
		return base.Artifact{}, err
	}
	if len(m.Manifests) != 1 {
		return base.Artifact{}, fmt.Errorf("%s holds %d manifests", dir, len(m.Manifests))
	}
	d := m.Manifests[0]
	if d.MediaType.IsIndex() {
		ii, err := idx.ImageIndex(d.Digest)
		return base.Artifact{Index: ii}, err
	}
	img, err := idx.Image(d.Digest)
	return base.Artifact{Image: img}, err
}
