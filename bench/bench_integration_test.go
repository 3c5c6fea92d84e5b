package bench_test

import (
	"archive/tar"
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"gopkg.in/yaml.v3"

	"github.com/sailmaker/sailmaker/bench"
	"github.com/sailmaker/sailmaker/internal/fixture"
	"github.com/sailmaker/sailmaker/internal/testenv"
	"github.com/sailmaker/sailmaker/recipes"
	"github.com/sailmaker/sailmaker/registry"
	"github.com/sailmaker/sailmaker/store"
)

// One scenario, one run, every path, for real: a sailmaker binary built
// from this tree, buildctl and a buildkitd from bin/, the host's make, a
// registry of the test's own. Each path must push both images with the
// incremental patch in pilot-discovery, and the results must say so.
func TestBenchIncrementalAllPaths(t *testing.T) {
	e := testenv.Start(t)
	e.Bases(t)
	ctx := context.Background()
	root := testenv.ModuleRoot(t)

	sailmaker := filepath.Join(t.TempDir(), "sailmaker")
	build := exec.Command("go", "build", "-o", sailmaker, "./cmd/sailmaker")
	build.Dir = root
	out, err := build.CombinedOutput()
	require.NoError(t, err, "building sailmaker: %s", out)
	buildctl := filepath.Join(os.Getenv("SAILMAKER_BIN_DIR"), "buildctl")
	require.FileExists(t, buildctl, "make test builds bin/buildctl")

	repo := fixture.Upstream(t, fixture.UpstreamOptions{})
	envoy, envoySHA := fixture.EnvoyTarball(t, repo.ProxySHA)
	srv := fixture.ServeArtifacts(t, map[string][]byte{"/envoy/" + fixture.EnvoyTarballName(repo.ProxySHA): envoy})
	file := fixture.WriteRecipe(t, repo, srv.URL+"/envoy/", envoySHA, e.Config.Registry.Address)
	r, err := recipes.Load(file, recipes.WithRegistry(e.Config.Registry.Address))
	require.NoError(t, err)

	// The user's registry and ledger hold a real build, as after make demo.
	cfgData, err := yaml.Marshal(e.Config)
	require.NoError(t, err)
	cfgFile := filepath.Join(t.TempDir(), "config.yaml")
	require.NoError(t, os.WriteFile(cfgFile, cfgData, 0o644))
	sm := func(args ...string) (string, error) {
		cmd := exec.Command(sailmaker, append([]string{"--config", cfgFile, "--state-dir", e.Config.StateDir}, args...)...)
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	out2, err := sm("build", "-f", file, "--progress", "plain")
	require.NoError(t, err, out2)
	regBefore := registryState(t, e)
	ledgerBefore := ledgerEntries(t, e.Config.StateDir)
	require.NotEmpty(t, ledgerBefore, "the build was recorded")

	outDir := filepath.Join(t.TempDir(), "bench-run")
	var progress strings.Builder
	pilots := map[bench.Path][]byte{}
	res, err := bench.Run(ctx, bench.Options{
		Config: e.Config, Recipe: r,
		Sailmaker: sailmaker, Buildctl: buildctl,
		Check: func(ctx context.Context, rc *registry.Client, m *bench.Measurement) error {
			ref, err := rc.ParseRef(m.Images[0].Ref)
			if err != nil {
				return err
			}
			img, err := rc.Image(ctx, ref.Context().Digest(m.Images[0].Digest))
			if err != nil {
				return err
			}
			pilots[m.Path] = fileIn(t, img, "usr/local/bin/pilot-discovery")
			return nil
		},
		ToolchainCache: filepath.Join(testenv.CacheDir(t), "toolchain-modcache"),
		Scenarios:      []bench.Scenario{bench.Incremental}, Runs: 1,
		Out: outDir, Progress: &progress,
	})
	t.Log(progress.String())
	require.NoError(t, err)

	// The benchmark left the user's registry and ledger as it found them,
	// and removed its own; the input cache it shared is still there.
	assert.Equal(t, regBefore, registryState(t, e), "the user's registry: catalog and tags")
	assert.Equal(t, ledgerBefore, ledgerEntries(t, e.Config.StateDir), "the user's ledger")
	out2, err = sm("audit", "verify")
	assert.NoError(t, err, "audit verify after the benchmark: %s", out2)
	assert.Contains(t, out2, "no findings")
	assert.NotEqual(t, e.Config.Registry.Address, res.Settings.Registry)
	assert.Equal(t, e.Config.Registry.Address, res.Settings.UserRegistry)
	require.NotEmpty(t, res.Settings.Sandbox)
	assert.NoDirExists(t, res.Settings.Sandbox)
	// The paths' work trees go when the run ends: only what it reports stays.
	assert.NoDirExists(t, filepath.Join(outDir, "floor"))
	assert.NoDirExists(t, filepath.Join(outDir, "plain", "src"))
	assert.FileExists(t, filepath.Join(outDir, "plain", "Dockerfile"))
	assert.FileExists(t, filepath.Join(outDir, "results.json"))
	assert.DirExists(t, filepath.Join(e.Config.CacheDir(), "gomod"))
	assert.Positive(t, res.ModuleCache.Files)
	assert.Positive(t, res.ModuleCache.Metadata)

	require.Len(t, res.Measurements, 3)
	marker := bench.Marker(res.Settings.RunID, 1)
	for _, m := range res.Measurements {
		t.Run(string(m.Path), func(t *testing.T) {
			assert.Equal(t, bench.Incremental, m.Scenario)
			assert.Positive(t, m.Wall)
			require.NotNil(t, m.Patch)
			assert.Contains(t, m.Patch.New, marker)
			// pilot-discovery changed: its layer went up, counted at the proxy.
			assert.Positive(t, m.Traffic.Uploaded)
			assert.GreaterOrEqual(t, m.UploadedLayers, 1)
			assert.Positive(t, m.Push)
			require.Len(t, m.Images, 2)
			for _, im := range m.Images {
				assert.Contains(t, im.Ref, "/bench/bench-run/c1/"+string(m.Path)+"/"+im.Name+":inc-1")
				assert.Regexp(t, `^sha256:[0-9a-f]{64}$`, im.Digest)
			}
			// The image in the benchmark's registry held the patched program.
			assert.Contains(t, string(pilots[m.Path]), marker)
			names := map[string]time.Duration{}
			for _, p := range m.Phases {
				names[p.Name] = p.Duration
			}
			if m.Path != bench.Floor {
				// Read from BuildKit's progress: make ran (a changed
				// source), and the module cache's content did not come in
				// again (BuildKit has it from the warm-up build).
				assert.Positive(t, names["make"], "phases %v", m.Phases)
				assert.Zero(t, m.ModuleContent, "module cache content moved: %d of %d bytes", m.ModuleContent, m.ModuleSync)
			}
			switch m.Path {
			case bench.Plain:
				// A local directory: BuildKit compares every file's metadata.
				assert.Positive(t, m.ModuleSync)
			case bench.Sailmaker:
				// An image layer BuildKit holds by digest: nothing at all.
				assert.Zero(t, m.ModuleSync)
			}
			if m.Path == bench.Sailmaker {
				assert.Positive(t, m.PeakRSS)
				for _, n := range []string{"fetch", "solve", "assemble", "push"} {
					assert.Contains(t, names, n, "phases %v", m.Phases)
				}
			}
		})
	}
	require.NotEmpty(t, res.Verdicts)
	assert.Equal(t, "incremental", res.Verdicts[0].Name)
	assert.NotNil(t, res.Verdicts[0].Met, "sailmaker and the floor ran: the target is judged")
	assert.Positive(t, res.Verdicts[0].VsFloor)
	assert.Positive(t, res.Verdicts[0].VsPlain)

	back, err := bench.ReadResults(filepath.Join(outDir, "results.json"))
	require.NoError(t, err)
	assert.Equal(t, res.Summaries, back.Summaries)
	var table strings.Builder
	require.NoError(t, back.WriteTable(&table))
	assert.Contains(t, table.String(), "| incremental | sailmaker |")
}

// registryState is every repository of e's registry with its tags and the
// digests they name.
func registryState(t *testing.T, e *testenv.Env) map[string]map[string]string {
	t.Helper()
	ctx := context.Background()
	reg, err := name.NewRegistry(e.Config.Registry.Address, name.Insecure)
	require.NoError(t, err)
	repos, err := remote.Catalog(ctx, reg)
	require.NoError(t, err)
	out := map[string]map[string]string{}
	for _, repo := range repos {
		r := reg.Repo(repo)
		tags, err := remote.List(r)
		require.NoError(t, err)
		out[repo] = map[string]string{}
		for _, tag := range tags {
			d, err := remote.Head(r.Tag(tag))
			require.NoError(t, err)
			out[repo][tag] = d.Digest.String()
		}
	}
	return out
}

// ledgerEntries are every entry of the ledger in stateDir.
func ledgerEntries(t *testing.T, stateDir string) []store.Entry {
	t.Helper()
	st, err := store.OpenDirReadOnly(context.Background(), stateDir)
	require.NoError(t, err)
	defer st.Close()
	es, err := st.Entries(context.Background(), store.LedgerFilter{})
	require.NoError(t, err)
	return es
}

// fileIn reads one file of an image's filesystem.
func fileIn(t *testing.T, img v1.Image, name string) []byte {
	t.Helper()
	rc := mutate.Extract(img)
	defer rc.Close()
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			t.Fatalf("%s is not in the image", name)
		}
		require.NoError(t, err)
		if strings.TrimPrefix(h.Name, "/") == name {
			b, err := io.ReadAll(tr)
			require.NoError(t, err)
			return b
		}
	}
}
