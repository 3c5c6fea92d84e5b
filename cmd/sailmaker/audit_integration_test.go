package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sailmaker/sailmaker/api"
	"github.com/sailmaker/sailmaker/attest"
	"github.com/sailmaker/sailmaker/audit"
	"github.com/sailmaker/sailmaker/builder"
	"github.com/sailmaker/sailmaker/internal/fixture"
	"github.com/sailmaker/sailmaker/internal/testenv"
	"github.com/sailmaker/sailmaker/publish"
	"github.com/sailmaker/sailmaker/recipes"
	"github.com/sailmaker/sailmaker/store"
)

type logWriter struct{ t *testing.T }

func (w logWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// The fixture built for real (buildkitd, registry, ledger, signing key),
// then audited through the command tree: images, show, verify (clean),
// uses; then another client pushes an image and moves a tag, and verify
// names both. What audit says about the attestations agrees with a direct
// go-containerregistry read of them.
func TestAuditFixtureEndToEnd(t *testing.T) {
	e := testenv.Start(t)
	bases := e.Bases(t)
	ctx := context.Background()
	state := e.Config.StateDir

	keyDir := t.TempDir()
	priv, pub, err := attest.GenerateKey()
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(keyDir, "sailmaker.key"), priv, 0o600))
	require.NoError(t, os.WriteFile(filepath.Join(keyDir, "sailmaker.pub"), pub, 0o644))
	e.Config.Signing.Key = filepath.Join(keyDir, "sailmaker.key")

	repo := fixture.Upstream(t, fixture.UpstreamOptions{Tag: "1.0.0"})
	envoy, envoySHA := fixture.EnvoyTarball(t, repo.ProxySHA)
	srv := fixture.ServeArtifacts(t, map[string][]byte{"/envoy/" + fixture.EnvoyTarballName(repo.ProxySHA): envoy})
	file := fixture.WriteRecipe(t, repo, srv.URL+"/envoy/", envoySHA, e.Config.Registry.Address)
	r, err := recipes.Load(file, recipes.WithRegistry(e.Config.Registry.Address))
	require.NoError(t, err)
	st, err := store.OpenDir(ctx, state)
	require.NoError(t, err)
	key, err := attest.LoadKey(e.Config.Signing.Key)
	require.NoError(t, err)
	publisher, cache, err := publish.New(publish.Settings{Registry: e.Registry, Ledger: st, Key: key})
	require.NoError(t, err)
	b, err := builder.New(e.Config, e.Registry, builder.WithProgress(builder.Progress{Out: logWriter{t}, Mode: "plain"}), builder.WithCache(cache))
	require.NoError(t, err)
	res, err := publish.BuildAndPublish(ctx, b, r, builder.Request{Trigger: api.Trigger{Actor: "tester", Kind: "cli"}}, publisher)
	require.NoError(t, err)
	require.NoError(t, st.Close())
	require.Len(t, res.Published, 5, "the images, istio-cni, istioctl and istioctl-versions")
	pilot := res.Published[0]

	// The CLI as after `make demo`: the registry and state of this test,
	// the public key in the environment, no other flags.
	t.Setenv("SAILMAKER_REGISTRY", e.Config.Registry.Address)
	t.Setenv("SAILMAKER_SIGNING_KEY", "")
	t.Setenv("SAILMAKER_SIGNING_PUB", filepath.Join(keyDir, "sailmaker.pub"))

	// images
	out, stderr, err := runCLI(t, state, "audit", "images", "-o", "json")
	require.NoError(t, err, stderr)
	var imgs audit.ImagesResult
	require.NoError(t, json.Unmarshal([]byte(out), &imgs), out)
	assert.Empty(t, imgs.Warnings)
	byName := map[string]audit.Image{}
	var names []string
	for _, i := range imgs.Images {
		byName[i.Name()] = i
		names = append(names, i.Name())
	}
	sort.Strings(names)
	assert.Equal(t, []string{"base/bookworm:2", "base/distroless:1", "base/iptables:1", "builder/go1.23.4:1", "fixture/istio-cni:1.0.0-1", "fixture/istioctl-versions:1.0.0_1.1000000",
		"fixture/istioctl:1.0.0", "fixture/pilot:1.0.0", "fixture/proxyv2:1.0.0"}, names,
		"every image and package, and no bookkeeping tag")
	for _, im := range res.Published {
		got := byName[strings.TrimPrefix(im.Repository, e.Config.Registry.Address+"/")+":"+im.Tag]
		assert.Equal(t, im.Digest, got.Digest, im.Name)
		assert.True(t, got.Provenance, im.Name)
		assert.True(t, got.SBOM, im.Name)
		assert.Equal(t, audit.SignatureValid, got.Signature, im.Name)
		if im.Package == nil {
			continue
		}
		assert.Equal(t, audit.Kind(im.Kind), got.Kind, im.Name)
		require.NotNil(t, got.Package, im.Name)
		assert.Equal(t, im.Package.Version, got.Package.Version, im.Name)
	}
	for _, im := range res.Published[:2] {
		got := byName[strings.TrimPrefix(im.Repository, e.Config.Registry.Address+"/")+":"+im.Tag]
		assert.Equal(t, audit.KindSailmaker, got.Kind, im.Name)
		assert.Equal(t, im.Digest, got.Digest)
		assert.Equal(t, repo.Commit, got.Commit)
		assert.Equal(t, "1.0.0", got.Version)
		assert.Equal(t, bases["base/bookworm"].Digest.String(), got.BaseDigest)
		assert.True(t, got.Provenance, im.Name)
		assert.True(t, got.SBOM, im.Name)
		assert.Equal(t, audit.SignatureValid, got.Signature, im.Name)
	}
	assert.Equal(t, audit.KindBase, byName["base/bookworm:2"].Kind)
	assert.Equal(t, audit.KindBuilder, byName["builder/go1.23.4:1"].Kind)

	// show
	out, stderr, err = runCLI(t, state, "audit", "show", "fixture/pilot:1.0.0", "-o", "json")
	require.NoError(t, err, stderr)
	var d audit.Detail
	require.NoError(t, json.Unmarshal([]byte(out), &d), out)
	require.NotNil(t, d.Provenance)
	assert.Equal(t, repo.Commit, d.Provenance.Commit())
	assert.Equal(t, r.ID(), d.Provenance.Statement.Predicate.BuildDefinition.ExternalParameters.Recipe.ID)
	assert.Equal(t, "tester", d.Provenance.Statement.Predicate.BuildDefinition.InternalParameters.Trigger.Actor)
	require.NotNil(t, d.SBOM)
	assert.Contains(t, d.SBOM.GoModules, audit.Package{Name: "github.com/google/uuid", Version: "v1.6.0", PURL: "pkg:golang/github.com/google/uuid@v1.6.0"})
	assert.Greater(t, len(d.SBOM.DebianPackages), 20)
	require.Len(t, d.Ledger, 2, "the intent to tag, then the push")
	assert.Equal(t, store.ActionIntent, d.Ledger[0].Action)
	assert.Equal(t, store.ActionPush, d.Ledger[1].Action)
	assert.Equal(t, "tester", d.Ledger[1].Actor)
	assert.Equal(t, pilot.Digest, d.Ledger[1].NewDigest)
	assert.Empty(t, d.Findings)
	out, _, err = runCLI(t, state, "audit", "show", "fixture/pilot:1.0.0")
	require.NoError(t, err)
	assert.Contains(t, out, "github.com/google/uuid")
	assert.Contains(t, out, repo.Commit)

	// Independent tools agree: the attachments read with
	// go-containerregistry alone say what audit says.
	opts := e.Registry.Remote(ctx)
	pilotRef, err := name.NewDigest(pilot.Reference, name.Insecure)
	require.NoError(t, err)
	pilotTag := pilotRef.Context().Tag(pilot.Tag)
	idx, err := remote.Referrers(pilotRef, opts...)
	require.NoError(t, err)
	im, err := idx.IndexManifest()
	require.NoError(t, err)
	byType := map[string]v1.Descriptor{}
	for _, m := range im.Manifests {
		byType[m.ArtifactType] = m
	}
	require.Contains(t, byType, "application/vnd.in-toto+json")
	require.Contains(t, byType, "application/spdx+json")
	assert.Equal(t, byType["application/vnd.in-toto+json"].Digest.String(), d.Provenance.Attachment)
	assert.Equal(t, byType["application/spdx+json"].Digest.String(), d.SBOM.Attachment)
	var prov struct {
		Subject []struct {
			Digest map[string]string `json:"digest"`
		} `json:"subject"`
		Predicate struct {
			BuildDefinition struct {
				ExternalParameters struct {
					Source struct {
						Commit string `json:"commit"`
					} `json:"source"`
				} `json:"externalParameters"`
			} `json:"buildDefinition"`
		} `json:"predicate"`
	}
	require.NoError(t, json.Unmarshal(dssePayload(t, readDocument(t, pilotRef, byType["application/vnd.in-toto+json"], opts)), &prov))
	assert.Equal(t, strings.TrimPrefix(pilot.Digest, "sha256:"), prov.Subject[0].Digest["sha256"])
	assert.Equal(t, d.Provenance.Commit(), prov.Predicate.BuildDefinition.ExternalParameters.Source.Commit)
	var spdx struct {
		Predicate struct {
			Packages []struct {
				Name        string `json:"name"`
				VersionInfo string `json:"versionInfo"`
			} `json:"packages"`
		} `json:"predicate"`
	}
	require.NoError(t, json.Unmarshal(dssePayload(t, readDocument(t, pilotRef, byType["application/spdx+json"], opts)), &spdx))
	assert.Equal(t, len(spdx.Predicate.Packages), len(d.SBOM.GoModules)+len(d.SBOM.DebianPackages)+d.SBOM.Other, "every package of the SBOM is summarised")

	// verify: clean
	out, stderr, err = runCLI(t, state, "audit", "verify")
	require.NoError(t, err, "%s\n%s", out, stderr)
	assert.Contains(t, out, "9 images")
	assert.Contains(t, out, "no findings")

	// uses: the fixture's third-party module
	out, _, err = runCLI(t, state, "audit", "uses", "--module", "github.com/google/uuid", "-o", "json")
	require.NoError(t, err)
	var uses audit.UsesResult
	require.NoError(t, json.Unmarshal([]byte(out), &uses))
	var using []string
	for _, u := range uses.Uses {
		assert.Equal(t, "v1.6.0", u.Version)
		using = append(using, u.Repository+":"+u.Tag)
	}
	sort.Strings(using)
	assert.Equal(t, []string{"fixture/istio-cni:1.0.0-1", "fixture/istioctl-versions:1.0.0_1.1000000", "fixture/istioctl:1.0.0",
		"fixture/pilot:1.0.0", "fixture/proxyv2:1.0.0"}, using, "pilot-discovery, pilot-agent, istio-cni and istioctl all link it")
	assert.Empty(t, uses.NotSearched)
	// ... and a package's Depends.
	out, _, err = runCLI(t, state, "audit", "uses", "--package", "iptables", "-o", "json")
	require.NoError(t, err)
	uses = audit.UsesResult{}
	require.NoError(t, json.Unmarshal([]byte(out), &uses))
	using = nil
	for _, u := range uses.Uses {
		if u.Kind == audit.KindPackage {
			using = append(using, u.Repository+":"+u.Tag)
		}
	}
	assert.Equal(t, []string{"fixture/istio-cni:1.0.0-1"}, using)

	// packages list and show, for people and machines.
	out, stderr, err = runCLI(t, state, "packages", "list")
	require.NoError(t, err, stderr)
	assert.Regexp(t, `istio-cni\s+1\.0\.0-1\s+amd64\s+fixture/istio-cni\s+1\.0\.0-1\s+sha256:[0-9a-f]{64}\s+-\s+valid`, out)
	assert.Regexp(t, `istioctl-versions\s+1\.0\.0\+1\.1000000\s+amd64\s+fixture/istioctl-versions\s+1\.0\.0_1\.1000000\s+sha256:[0-9a-f]{64}\s+1\.0\.0\s+valid`, out)
	assert.NotContains(t, out, "(binary)", "binaries only with --binaries")
	out, stderr, err = runCLI(t, state, "packages", "list", "--binaries", "-o", "json")
	require.NoError(t, err, stderr)
	var listed audit.PackagesResult
	require.NoError(t, json.Unmarshal([]byte(out), &listed), out)
	require.Len(t, listed.Packages, 3)
	assert.Equal(t, "istio-cni", listed.Packages[0].Package.Name)
	assert.Equal(t, "istioctl", listed.Packages[1].Package.Name)
	assert.Equal(t, audit.KindBinary, listed.Packages[1].Kind)
	assert.Equal(t, "istioctl-versions", listed.Packages[2].Package.Name)
	out, stderr, err = runCLI(t, state, "packages", "show", "istioctl-versions", "-o", "json")
	require.NoError(t, err, stderr)
	var shown audit.PackageDetail
	require.NoError(t, json.Unmarshal([]byte(out), &shown), out)
	assert.Equal(t, "fixture/istioctl-versions", shown.Image.Repository)
	assert.Equal(t, "1.0.0_1.1000000", shown.Image.Tag)
	assert.Contains(t, shown.Control, "Package: istioctl-versions\n")
	assert.Contains(t, shown.Control, "Version: 1.0.0+1.1000000\n")
	var paths []string
	for _, f := range shown.Files {
		paths = append(paths, f.Path)
	}
	assert.Contains(t, paths, "/usr/bin/istioctl-100")
	assert.Contains(t, paths, "/usr/share/istioctl-versions/versions")
	require.NotNil(t, shown.Provenance)
	assert.Equal(t, repo.Commit, shown.Provenance.Commit())
	assert.Empty(t, shown.Findings)
	out, _, err = runCLI(t, state, "packages", "show", "istio-cni=1.0.0-1")
	require.NoError(t, err)
	assert.Regexp(t, `control\s+Depends\s+iptables`, out)
	assert.Regexp(t, `file\s+/opt/cni/bin/istio-cni\s+0755`, out)
	_, _, err = runCLI(t, state, "packages", "show", "istio-cni=9.9.9-1")
	assert.ErrorContains(t, err, "no package istio-cni=9.9.9-1")

	// Another client pushes an image, and moves a tag behind sailmaker's
	// back, with go-containerregistry directly.
	foreign, err := random.Image(256, 2)
	require.NoError(t, err)
	foreignTag, err := name.NewTag(e.Config.Registry.Address+"/tools/debug:latest", name.Insecure)
	require.NoError(t, err)
	require.NoError(t, remote.Write(foreignTag, foreign, opts...))
	pilotImg, err := remote.Image(pilotRef, opts...)
	require.NoError(t, err)
	cf, err := pilotImg.ConfigFile()
	require.NoError(t, err)
	cf = cf.DeepCopy()
	cf.Config.Env = append(cf.Config.Env, "PILOT_DEBUG=1")
	moved, err := mutate.ConfigFile(pilotImg, cf)
	require.NoError(t, err)
	require.NoError(t, remote.Write(pilotTag, moved, opts...))
	movedDigest, err := moved.Digest()
	require.NoError(t, err)

	out, stderr, err = runCLI(t, state, "audit", "verify", "-o", "json")
	require.Error(t, err, "findings: non-zero exit")
	var rep audit.Report
	require.NoError(t, json.Unmarshal([]byte(out), &rep), out+stderr)
	got := map[string][]string{}
	for _, f := range rep.Findings {
		got[f.Repository+":"+f.Tag] = append(got[f.Repository+":"+f.Tag], f.Code)
		if f.Code == audit.CodeTagMoved {
			assert.Contains(t, f.Message, pilot.Digest, "the ledger's digest")
			assert.Equal(t, movedDigest.String(), f.Digest, "the registry's digest")
		}
	}
	assert.Contains(t, got["tools/debug:latest"], audit.CodeNotBuiltBySailmaker)
	assert.Contains(t, got["fixture/pilot:1.0.0"], audit.CodeTagMoved)
	assert.Contains(t, got["fixture/pilot:1.0.0"], audit.CodeNoProvenance, "the moved-to image has no attestations")
	assert.NotContains(t, got, "fixture/proxyv2:1.0.0", "untouched")
	// By name, for people too.
	out, _, err = runCLI(t, state, "audit", "verify")
	require.Error(t, err)
	assert.Contains(t, out, "tools/debug:latest")
	assert.Contains(t, out, "fixture/pilot:1.0.0")
	assert.Contains(t, err.Error(), "tag-moved")
	assert.Contains(t, err.Error(), "not-built-by-sailmaker")
}

// dssePayload opens a signed attachment's DSSE envelope (by hand, not
// with sailmaker's code) and returns the statement in it.
func dssePayload(t *testing.T, envelope []byte) []byte {
	t.Helper()
	var env struct {
		PayloadType string `json:"payloadType"`
		Payload     string `json:"payload"`
	}
	require.NoError(t, json.Unmarshal(envelope, &env))
	require.Equal(t, "application/vnd.in-toto+json", env.PayloadType)
	b, err := base64.StdEncoding.DecodeString(env.Payload)
	require.NoError(t, err)
	return b
}

// readDocument reads an attachment's one layer with go-containerregistry.
func readDocument(t *testing.T, subject name.Digest, d v1.Descriptor, opts []remote.Option) []byte {
	t.Helper()
	img, err := remote.Image(subject.Context().Digest(d.Digest.String()), opts...)
	require.NoError(t, err)
	layers, err := img.Layers()
	require.NoError(t, err)
	require.Len(t, layers, 1)
	rc, err := layers[0].Compressed()
	require.NoError(t, err)
	defer rc.Close()
	var b bytes.Buffer
	_, err = io.Copy(&b, rc)
	require.NoError(t, err)
	return b.Bytes()
}
