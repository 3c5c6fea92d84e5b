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

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"gopkg.in/yaml.v3"

	"github.com/sailmaker/sailmaker/bench"
	"github.com/sailmaker/sailmaker/internal/fixture"
	"github.com/sailmaker/sailmaker/internal/testenv"
	"github.com/sailmaker/sailmaker/recipes"
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

	// The sailmaker process reads the test's configuration from a file.
	cfgData, err := yaml.Marshal(e.Config)
	require.NoError(t, err)
	cfgFile := filepath.Join(t.TempDir(), "config.yaml")
	require.NoError(t, os.WriteFile(cfgFile, cfgData, 0o644))

	outDir := filepath.Join(t.TempDir(), "bench-run")
	var progress strings.Builder
	res, err := bench.Run(ctx, bench.Options{
		Config: e.Config, Recipe: r,
		Sailmaker: sailmaker, SailmakerArgs: []string{"--config", cfgFile, "--state-dir", e.Config.StateDir},
		Buildctl:       buildctl,
		ToolchainCache: filepath.Join(testenv.CacheDir(t), "toolchain-modcache"),
		Scenarios:      []bench.Scenario{bench.Incremental}, Runs: 1,
		Out: outDir, Progress: &progress,
	})
	t.Log(progress.String())
	require.NoError(t, err)

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
			// The image in the registry holds the patched program.
			ref, err := e.Registry.ParseRef(strings.Replace(m.Images[0].Ref, res.Settings.Proxy, e.Config.Registry.Address, 1))
			require.NoError(t, err)
			img, err := e.Registry.Image(ctx, ref.Context().Digest(m.Images[0].Digest))
			require.NoError(t, err)
			assert.Contains(t, string(fileIn(t, img, "usr/local/bin/pilot-discovery")), marker)
			if m.Path == bench.Sailmaker {
				assert.Positive(t, m.PeakRSS)
				names := map[string]bool{}
				for _, p := range m.Phases {
					names[p.Name] = true
				}
				assert.True(t, names["fetch"] && names["solve"] && names["assemble"] && names["push"], "phases %v", m.Phases)
			}
		})
	}
	require.Len(t, res.Verdicts, 1)
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
