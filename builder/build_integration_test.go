package builder_test

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"debug/elf"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sailmaker/sailmaker/api"
	"github.com/sailmaker/sailmaker/attest"
	"github.com/sailmaker/sailmaker/audit"
	"github.com/sailmaker/sailmaker/builder"
	"github.com/sailmaker/sailmaker/builder/base"
	"github.com/sailmaker/sailmaker/internal/fixture"
	"github.com/sailmaker/sailmaker/internal/testenv"
	"github.com/sailmaker/sailmaker/publish"
	"github.com/sailmaker/sailmaker/recipes"
	"github.com/sailmaker/sailmaker/registry"
	"github.com/sailmaker/sailmaker/store"
)

// fileFromImage reads one file from an image's flattened filesystem.
func fileFromImage(t *testing.T, img v1.Image, p string) ([]byte, *tar.Header) {
	t.Helper()
	rc := mutate.Extract(img)
	defer rc.Close()
	tr := tar.NewReader(rc)
	want := strings.TrimPrefix(p, "/")
	for {
		h, err := tr.Next()
		if err == io.EOF {
			t.Fatalf("%s is not in the image", p)
		}
		require.NoError(t, err)
		if strings.TrimPrefix(h.Name, "./") == want {
			b, err := io.ReadAll(tr)
			require.NoError(t, err)
			return b, h
		}
	}
}

// runBinary writes a static binary taken from an image to disk and runs it.
func runBinary(t *testing.T, data []byte, args ...string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "bin")
	require.NoError(t, os.WriteFile(p, data, 0o755))
	out, err := exec.Command(p, args...).CombinedOutput()
	require.NoError(t, err, string(out))
	return strings.TrimSpace(string(out))
}

func sha(b []byte) string { s := sha256.Sum256(b); return hex.EncodeToString(s[:]) }

// The demo's fixture recipe end to end: real buildkitd, real registry,
// linux/amd64 and linux/arm64, the debug and distroless flavours, and the
// packages. Each image tag is an OCI image index of both platforms (as
// skopeo reads it); every platform's image is on that platform's base
// image, with binaries for its CPU that report the recipe's version and
// commit (validated in BuildKit before anything was pushed, and recorded
// in the provenance); proxyv2 holds each platform's pinned Envoy; the
// distroless images have no shell; the images match the fixture's
// Dockerfiles item by item but for the deliberate differences. Beside
// them, the packages of linux/amd64's build (istio-cni, this release's
// istioctl, and the istioctl-versions package made after the push) are
// OCI artifacts that dpkg-deb and lintian accept. A second build from the
// same inputs pushes nothing, and a build with no cache gives the same
// digests, so the same .debs.
func TestBuildFixtureEndToEnd(t *testing.T) {
	skopeo := lookTool(t, "skopeo")
	e := testenv.Start(t)
	bases := e.Bases(t)
	ctx := context.Background()
	opts := e.Registry.Remote(ctx)
	reg := e.Config.Registry.Address

	repo := fixture.Upstream(t, fixture.UpstreamOptions{Tag: "1.0.0"})
	envoys := fixture.EnvoyTarballs(t, repo.ProxySHA)
	srv := fixture.ServeArtifacts(t, envoys.Files("/envoy", repo.ProxySHA))
	o := fixture.Demo
	o.EnvoyURL, o.EnvoySHA256, o.Registry = srv.URL+"/envoy/", envoys.SHA256, reg
	file := fixture.WriteRecipeWith(t, repo, o)
	r, err := recipes.Load(file, recipes.WithRegistry(reg))
	require.NoError(t, err)

	// Signed, with the ledger, as the CLI publishes.
	privPEM, pubPEM, err := attest.GenerateKey()
	require.NoError(t, err)
	key, err := attest.ParseKey(privPEM)
	require.NoError(t, err)
	st, err := store.OpenDir(ctx, filepath.Join(t.TempDir(), "state"))
	require.NoError(t, err)
	defer st.Close()
	settings := publish.Settings{Key: key, Ledger: st}

	res, err := buildAndPublish(t, e, r, builder.Request{}, settings)
	require.NoError(t, err)
	require.False(t, res.UpToDate)
	require.Len(t, res.Published, 7, "four images, istio-cni, istioctl, istioctl-versions")
	images := res.Published[:4]
	names := []string{"pilot", "proxyv2", "pilot-distroless", "proxyv2-distroless"}
	for i, im := range images {
		assert.Equal(t, names[i], im.Name)
		assert.Equal(t, api.StatusPushed, im.Status)
		assert.Equal(t, "application/vnd.oci.image.index.v1+json", im.MediaType)
		assert.Equal(t, []string{"linux/amd64", "linux/arm64/v8"}, im.Platforms)
		require.Len(t, im.Manifests, 2)
	}
	assert.Equal(t, "1.0.0", res.Published[0].Tag)
	assert.Equal(t, "1.0.0-distroless", res.Published[2].Tag)

	// skopeo, an independent client, reads each tag as an image index of
	// both platforms.
	for _, im := range images {
		raw, err := exec.Command(skopeo, "inspect", "--raw", "--tls-verify=false", "docker://"+im.Repository+":"+im.Tag).CombinedOutput()
		require.NoError(t, err, string(raw))
		var idx v1.IndexManifest
		require.NoError(t, json.Unmarshal(raw, &idx), string(raw))
		assert.Equal(t, "application/vnd.oci.image.index.v1+json", string(idx.MediaType))
		require.Len(t, idx.Manifests, 2, string(raw))
		assert.Equal(t, "amd64", idx.Manifests[0].Platform.Architecture)
		assert.Equal(t, "arm64", idx.Manifests[1].Platform.Architecture)
		assert.Equal(t, im.Manifests[0].Digest, idx.Manifests[0].Digest.String())
		assert.Equal(t, im.Manifests[1].Digest, idx.Manifests[1].Digest.String())
	}

	baseOf := map[string]string{"pilot": "base/bookworm", "proxyv2": "base/bookworm", "pilot-distroless": "base/distroless", "proxyv2-distroless": "base/iptables"}
	for _, im := range images {
		for _, m := range im.Manifests {
			what := im.Name + " " + m.Platform
			ref, err := name.NewDigest(m.Reference, name.Insecure)
			require.NoError(t, err)
			img, err := remote.Image(ref, opts...)
			require.NoError(t, err)
			arch := strings.Split(m.Platform, "/")[1]
			plat, err := base.ParsePlatform("linux/" + arch)
			require.NoError(t, err)

			// Built on the base's image for this platform, which it names
			// by its own digest.
			b := bases[baseOf[im.Name]]
			baseImg, baseDigest, err := base.PlatformImage(ctx, e.Registry, b.Tag.Context().Digest(b.Digest.String()), plat)
			require.NoError(t, err)
			mf, err := img.Manifest()
			require.NoError(t, err)
			assert.Equal(t, baseDigest.String(), mf.Annotations[builder.AnnotationBaseDigest], what)
			assert.Equal(t, b.Tag.String(), mf.Annotations[builder.AnnotationBaseName], what)
			baseLayers, err := baseImg.Layers()
			require.NoError(t, err)
			layers, err := img.Layers()
			require.NoError(t, err)
			require.Len(t, layers, len(baseLayers)+1, what)
			cf, err := img.ConfigFile()
			require.NoError(t, err)
			assert.Equal(t, arch, cf.Architecture, what)

			// The binaries are for this platform's CPU (read from the ELF
			// header), and proxyv2's Envoy is the pinned one of this
			// platform.
			files := imageFiles(t, img)
			want := map[string]elf.Machine{"amd64": elf.EM_X86_64, "arm64": elf.EM_AARCH64}[arch]
			for _, p := range []string{"usr/local/bin/pilot-discovery", "usr/local/bin/pilot-agent", "usr/local/bin/envoy"} {
				if data, ok := files[p]; ok {
					f, err := elf.NewFile(bytes.NewReader(data))
					require.NoError(t, err, "%s: %s", what, p)
					assert.Equal(t, want, f.Machine, "%s: %s", what, p)
				}
			}
			if strings.HasPrefix(im.Name, "proxyv2") {
				tgz := envoys.Tarballs[arch]
				wantEnvoy, err := extractEnvoy(tgz)
				require.NoError(t, err)
				assert.Equal(t, sha(wantEnvoy), sha(files["usr/local/bin/envoy"]), what)
				assert.Equal(t, envoys.SHA256[arch], cf.Config.Labels[builder.LabelEnvoySHA256], what)
				assert.Contains(t, cf.Config.Env, "ISTIO_META_ISTIO_PROXY_SHA="+repo.ProxySHA, what)
				assert.Equal(t, "/", cf.Config.WorkingDir, what)
				bcf, err := baseImg.ConfigFile()
				require.NoError(t, err)
				assert.Equal(t, bcf.Config.User, cf.Config.User, "%s: no USER of its own, as the Dockerfile", what)
			} else {
				assert.Equal(t, "1337:1337", cf.Config.User, what)
			}
			if arch == "amd64" {
				bin := files["usr/local/bin/pilot-discovery"]
				if bin == nil {
					bin = files["usr/local/bin/pilot-agent"]
				}
				assert.Equal(t, "1.0.0", runBinary(t, bin, "version", "--short"), what)
			}
			// The distroless images have no shell at all.
			if strings.HasSuffix(im.Name, "-distroless") {
				for _, sh := range []string{"bin/sh", "usr/bin/sh", "bin/bash", "usr/bin/bash", "bin/dash", "usr/bin/dash"} {
					_, ok := files[sh]
					assert.False(t, ok, "%s has %s", what, sh)
				}
			} else {
				_, ok := files["usr/bin/sh"]
				if !ok {
					_, ok = files["bin/sh"]
				}
				assert.True(t, ok, "%s: the debug image has a shell", what)
			}

			// Each platform's image has its own provenance and SBOM; the
			// provenance records the validation: what the binaries
			// reported, run in the image before anything was tagged.
			refs := referrersOf(t, ref, opts)
			require.Len(t, refs["application/vnd.in-toto+json"], 1, what)
			require.Len(t, refs["application/spdx+json"], 1, what)
			assert.Equal(t, refs["application/vnd.in-toto+json"][0].Digest.String(), m.Provenance)
			prov := readAttachment(t, ref, refs["application/vnd.in-toto+json"][0], opts, publicKey(t, pubPEM))
			assert.Equal(t, m.Platform, field(t, prov, "predicate.buildDefinition.externalParameters.image.platform"))
			v := field(t, prov, "predicate.buildDefinition.internalParameters.validation").(map[string]any)
			assert.Equal(t, true, v["passed"], what)
			assert.Equal(t, arch == "arm64", v["emulated"] == true, what)
			bins := v["binaries"].([]any)
			require.Len(t, bins, 1, what)
			bin := bins[0].(map[string]any)
			assert.Equal(t, "1.0.0", bin["version"], what)
			assert.Equal(t, repo.Commit, bin["revision"], what)
			assert.Equal(t, "Clean", bin["status"], what)
			if strings.HasPrefix(im.Name, "proxyv2") {
				ev := v["envoy"].(map[string]any)
				assert.Equal(t, ev["verifiedSha256"], ev["sha256"], what)
				assert.Contains(t, ev["version"], repo.ProxySHA, what)
			}
			sbom := readAttachment(t, ref, refs["application/spdx+json"][0], opts, publicKey(t, pubPEM))
			assert.Contains(t, fmt.Sprint(sbom), "?arch="+arch, "%s: the SBOM's Debian packages are %s's", what, arch)
		}
	}

	// The images match the fixture's Dockerfiles at the tag, item by item,
	// but for the deliberate differences (the base is built here).
	checkUpstreamParity(t, e, repo, images)

	// The audit reads the indexes: every platform's image checked, with
	// its provenance, SBOM and signature, and the index's signature.
	v, err := audit.NewKeyVerifier(key.Public())
	require.NoError(t, err)
	a, err := audit.New(e.Config, audit.WithLedger(st), audit.WithSignatureVerifier(v), audit.WithCacheDir(""))
	require.NoError(t, err)
	rep, err := a.Verify(ctx)
	require.NoError(t, err)
	assert.Empty(t, rep.Findings, "audit verify after the build")
	imgs, err := a.Images(ctx, audit.Filter{Repository: "fixture/*"})
	require.NoError(t, err)
	require.Len(t, imgs.Images, 7, "four images, three artifacts")
	for _, im := range imgs.Images {
		if im.Kind != audit.KindSailmaker {
			assert.Contains(t, []audit.Kind{audit.KindPackage, audit.KindBinary}, im.Kind, im.Name())
			assert.Empty(t, im.Platforms, "%s: a package is no index", im.Name())
		} else {
			assert.Equal(t, []string{"linux/amd64", "linux/arm64/v8"}, im.Platforms, im.Name())
		}
		assert.True(t, im.Provenance && im.SBOM, im.Name())
		assert.Equal(t, audit.SignatureValid, im.Signature, im.Name())
	}

	checkFixturePackages(t, e, repo, res.Published[4:])

	// Nothing changed: nothing is built or pushed.
	again, err := buildAndPublish(t, e, r, builder.Request{}, settings)
	require.NoError(t, err)
	assert.True(t, again.UpToDate)
	require.Len(t, again.Published, len(res.Published))
	for i, im := range again.Published {
		assert.Equal(t, api.StatusUnchanged, im.Status)
		assert.Equal(t, res.Published[i].Digest, im.Digest)
		assert.Zero(t, im.BytesUploaded)
	}

	// Two builds, the second with no cache, give identical digests, per
	// platform and per index; the tags already name them, so nothing
	// moves.
	check, err := buildAndPublish(t, e, r, builder.Request{CheckReproducible: true}, settings)
	require.NoError(t, err)
	require.NotNil(t, check.Reproducible)
	assert.True(t, *check.Reproducible)
	require.Len(t, check.Published, len(res.Published))
	for i, im := range check.Published {
		assert.Equal(t, res.Published[i].Digest, im.Digest, "rebuild of %s", im.Name)
		assert.Equal(t, api.StatusUnchanged, im.Status)
		if im.Kind != "" && im.Kind != api.KindImage {
			assert.Empty(t, im.Manifests, im.Name)
			continue
		}
		require.Len(t, im.Manifests, 2)
		for j, m := range im.Manifests {
			first := res.Published[i].Manifests[j]
			assert.Equal(t, first.Digest, m.Digest, "rebuild of %s %s", im.Name, m.Platform)
			assert.Equal(t, first.Provenance, m.Provenance, "%s %s: the first build's provenance stays", im.Name, m.Platform)
			assert.Equal(t, first.Signature, m.Signature, "%s %s: signatures are deterministic", im.Name, m.Platform)
		}
		assert.Equal(t, api.StatusUnchanged, im.Status)
	}
	// The second build's throw-away Go build cache mount is gone from
	// buildkitd (the regular one stays), and its time is in the timings.
	checkCacheMounts(t, e)
	assert.Positive(t, check.Timings.Check, "the second build's time")
	tm := check.Timings
	assert.GreaterOrEqual(t, tm.Total, tm.Fetch+tm.Solve+tm.Assemble+tm.Check+tm.Push, "the total includes the second build: %+v", tm)
	assert.Zero(t, again.Timings.Check, "a build that does not check has no check time")

	// Validation: a recipe whose make VERSION is not its version gives
	// binaries that report another version; the build fails naming both,
	// before anything is tagged.
	bad := fixture.RecipeOptions{EnvoyURL: srv.URL + "/envoy/", EnvoySHA256: envoys.SHA256, Registry: reg, Version: "9.9.9"}
	badRecipe, err := recipes.Load(fixture.WriteRecipeWith(t, repo, bad), recipes.WithRegistry(reg))
	require.NoError(t, err)
	badRecipe.Metadata.Version = "1.0.1" // other tags than the good build's
	for i := range badRecipe.Spec.Images {
		badRecipe.Spec.Images[i].Tag = "1.0.1"
	}
	_, err = buildAndPublish(t, e, badRecipe, builder.Request{}, publish.Settings{})
	require.ErrorIs(t, err, builder.ErrValidation)
	assert.Contains(t, err.Error(), `reports version "9.9.9", the recipe's version is "1.0.1"`)
	assert.Contains(t, err.Error(), "nothing was tagged")
	for _, repoName := range []string{"fixture/pilot", "fixture/proxyv2"} {
		tag, err := e.Registry.Tag(repoName, "1.0.1")
		require.NoError(t, err)
		_, ok, err := e.Registry.Resolve(ctx, tag)
		require.NoError(t, err)
		assert.False(t, ok, "%s:1.0.1 was tagged", repoName)
	}

	// --platform builds a subset: an index of that platform only, which
	// the existing tags do not name, so publishing it is refused.
	_, err = buildAndPublish(t, e, r, builder.Request{Platforms: []string{"linux/arm64"}}, publish.Settings{})
	var moved *registry.TagMovedError
	require.ErrorAs(t, err, &moved)
}

// imageFiles reads the regular files of an image's flattened filesystem.
func imageFiles(t *testing.T, img v1.Image) map[string][]byte {
	t.Helper()
	rc := mutate.Extract(img)
	defer rc.Close()
	tr := tar.NewReader(rc)
	out := map[string][]byte{}
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return out
		}
		require.NoError(t, err)
		p := strings.TrimPrefix(strings.TrimPrefix(h.Name, "./"), "/")
		switch h.Typeflag {
		case tar.TypeReg:
			b, err := io.ReadAll(tr)
			require.NoError(t, err)
			out[p] = b
		case tar.TypeSymlink, tar.TypeLink:
			out[p] = []byte("-> " + h.Linkname)
		}
	}
}

// lookTool finds a tool the Makefile's deps install; missing, the test
// fails (skipped is not passed).
func lookTool(t *testing.T, name string) string {
	t.Helper()
	testenv.Integration(t)
	p, err := exec.LookPath(name)
	require.NoError(t, err, "%s is needed (make deps installs it)", name)
	return p
}

// A build that reaches for the network fails, and says why.
func TestBuildWithoutNetwork(t *testing.T) {
	e := testenv.Start(t)
	e.Bases(t)
	repo := fixture.Upstream(t, fixture.UpstreamOptions{Overlay: "upstream-network", Tag: "1.0.1"})
	envoy, envoySHA := fixture.EnvoyTarball(t, repo.ProxySHA)
	srv := fixture.ServeArtifacts(t, map[string][]byte{"/envoy/" + fixture.EnvoyTarballName(repo.ProxySHA): envoy})
	file := fixture.WriteRecipe(t, repo, srv.URL+"/envoy/", envoySHA, e.Config.Registry.Address)
	r, err := recipes.Load(file, recipes.WithRegistry(e.Config.Registry.Address))
	require.NoError(t, err)
	_, err = buildAndPublish(t, e, r, builder.Request{}, publish.Settings{})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "tried to reach the network")
	assert.Contains(t, err.Error(), "no network")
	// Nothing was tagged.
	tag, _ := e.Registry.Tag("fixture/pilot", "1.0.1")
	_, ok, err := e.Registry.Resolve(context.Background(), tag)
	require.NoError(t, err)
	assert.False(t, ok)
}

func extractEnvoy(tgz []byte) ([]byte, error) {
	return builder.ExtractFile(tgz, fixture.EnvoyBinaryPath)
}

// buildAndPublish builds r in e and publishes it as s says (by default to
// e's registry, with the registry as the cache), as the CLI does.
func buildAndPublish(t *testing.T, e *testenv.Env, r *recipes.Recipe, req builder.Request, s publish.Settings) (*publish.Outcome, error) {
	t.Helper()
	s.Registry = e.Registry
	if s.Key == nil && e.Config.Signing.Key != "" {
		k, err := attest.LoadKey(e.Config.Signing.Key)
		require.NoError(t, err)
		s.Key = k
	}
	pub, cache, err := publish.New(s)
	require.NoError(t, err)
	b, err := builder.New(e.Config, e.Registry, builder.WithProgress(builder.Progress{Out: testWriter{t}, Mode: "plain"}), builder.WithCache(cache))
	require.NoError(t, err)
	return publish.BuildAndPublish(context.Background(), b, r, req, pub)
}

// checkCacheMounts asserts that buildkitd holds no Go build cache mount of
// --check-reproducible's (sailmaker-gocache-check-*), but does hold the
// builds' own Go build cache.
func checkCacheMounts(t *testing.T, e *testenv.Env) {
	t.Helper()
	ctx := context.Background()
	bk, err := builder.Connect(ctx, e.Config)
	require.NoError(t, err)
	defer bk.Close()
	du, err := bk.DiskUsage(ctx)
	require.NoError(t, err)
	var own int
	for _, u := range du {
		assert.NotContains(t, u.Description, "sailmaker-gocache-check-", "record %s (%s, %d bytes) is left in buildkitd", u.ID, u.RecordType, u.Size)
		if strings.Contains(u.Description, `with id "sailmaker-gocache-`) {
			own++
		}
	}
	assert.Positive(t, own, "the builds' Go build cache is still in buildkitd")
}

// imageAt reads an image from e's registry.
func imageAt(t *testing.T, e *testenv.Env, ref string) v1.Image {
	t.Helper()
	r, err := e.Registry.ParseRef(ref)
	require.NoError(t, err)
	img, err := e.Registry.Image(context.Background(), r)
	require.NoError(t, err)
	return img
}

func digestOf(t *testing.T, img v1.Image) string {
	t.Helper()
	d, err := img.Digest()
	require.NoError(t, err)
	return d.String()
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(bytes.TrimSpace(p)), "\n"))
	return len(p), nil
}

// checkUpstreamParity compares every image of every platform with the
// fixture's Dockerfile at the tag (read from the build's git mirror, as
// `sailmaker audit diff upstream --source-path` does): no differences but
// the deliberate ones. The comparison can fail: pilot against proxyv2's
// Dockerfile differs.
func checkUpstreamParity(t *testing.T, e *testenv.Env, repo *fixture.Repo, published []api.Image) {
	t.Helper()
	ctx := context.Background()
	a, err := audit.New(e.Config, audit.WithCacheDir(""))
	require.NoError(t, err)
	defer a.Close()
	dockerfile := map[string]string{"pilot": "pilot/docker/Dockerfile.pilot", "proxyv2": "pilot/docker/Dockerfile.proxyv2"}
	for _, im := range published {
		for _, m := range im.Manifests {
			df := dockerfile[strings.TrimSuffix(im.Name, "-distroless")]
			d, err := a.DiffUpstream(ctx, im.Repository+":"+im.Tag, audit.UpstreamOptions{SourcePath: df, Platform: m.Platform, Allow: audit.DeliberateDifferences})
			require.NoError(t, err, "%s %s", im.Name, m.Platform)
			what := fmt.Sprintf("%s %s against %s", im.Name, m.Platform, df)
			assert.Zero(t, d.Differences, "%s: %+v", what, d.Items)
			status := map[string]string{}
			for _, it := range d.Items {
				status[it.Item] = it.Status
			}
			assert.Equal(t, audit.UpstreamAllowed, status["base"], what)
			for _, item := range []string{"user", "workdir", "entrypoint", "cmd"} {
				assert.Equal(t, audit.UpstreamSame, status[item], "%s: %s", what, item)
			}
			if strings.HasPrefix(im.Name, "proxyv2") {
				assert.Equal(t, audit.UpstreamSame, status["env:ISTIO_META_ISTIO_PROXY_SHA"], what)
				for _, f := range []string{"/usr/local/bin/pilot-agent", "/usr/local/bin/envoy", "/var/lib/istio/envoy/envoy_bootstrap_tmpl.json"} {
					assert.Equal(t, audit.UpstreamSame, status["file:"+f], "%s: %s", what, f)
				}
				wantBase := "base"
				if strings.HasSuffix(im.Name, "-distroless") {
					wantBase = "iptables"
				}
				assert.Contains(t, d.Stages[0], map[string]string{"base": "debug", "iptables": "distroless"}[wantBase], what)
			} else {
				assert.Equal(t, audit.UpstreamSame, status["file:/usr/local/bin/pilot-discovery"], what)
			}
		}
	}
	// The same program finds differences where there are some.
	d, err := a.DiffUpstream(ctx, published[0].Repository+":"+published[0].Tag, audit.UpstreamOptions{SourcePath: dockerfile["proxyv2"], Allow: audit.DeliberateDifferences})
	require.NoError(t, err)
	assert.Positive(t, d.Differences, "pilot is not laid out as Dockerfile.proxyv2")
}
