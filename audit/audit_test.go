package audit_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"sort"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sailmaker/sailmaker/audit"
	"github.com/sailmaker/sailmaker/recipes"
	"github.com/sailmaker/sailmaker/store"
)

func (w *world) auditor(opts ...audit.Option) *audit.Auditor {
	w.t.Helper()
	pub, err := audit.LoadPublicKey(w.pubFile)
	require.NoError(w.t, err)
	v, err := audit.NewKeyVerifier(pub)
	require.NoError(w.t, err)
	base := []audit.Option{audit.WithLedger(w.store), audit.WithSignatureVerifier(v), audit.WithCacheDir(w.t.TempDir())}
	a, err := audit.New(w.cfg, append(base, opts...)...)
	require.NoError(w.t, err)
	w.t.Cleanup(func() { a.Close() })
	return a
}

func byName(imgs []audit.Image) map[string]audit.Image {
	out := map[string]audit.Image{}
	for _, i := range imgs {
		out[i.Name()] = i
	}
	return out
}

func names(imgs []audit.Image) []string {
	var out []string
	for _, i := range imgs {
		out = append(out, i.Name())
	}
	sort.Strings(out)
	return out
}

func TestImages(t *testing.T) {
	w := newWorld(t)
	s := w.seed()
	a := w.auditor()
	ctx := context.Background()

	res, err := a.Images(ctx, audit.Filter{})
	require.NoError(t, err)
	assert.Empty(t, res.Warnings)
	// Bookkeeping tags (referrers fallback, .sig) are not images.
	assert.Equal(t, []string{"base/bookworm:1", "builder/go1.23.4:1", "demo/pilot:1.0.0", "demo/pilot:1.1.0", "demo/proxyv2:1.0.0"}, names(res.Images))
	imgs := byName(res.Images)

	p := imgs["demo/pilot:1.0.0"]
	assert.Equal(t, audit.KindSailmaker, p.Kind)
	assert.Equal(t, s.pilot1.String(), p.Digest)
	assert.Equal(t, w.reg()+"/demo/pilot:1.0.0@"+s.pilot1.String(), p.Reference)
	assert.Equal(t, commit1, p.Commit)
	assert.Equal(t, "1.0.0", p.Version)
	assert.Equal(t, "2025-01-02T03:04:05Z", p.Created)
	assert.Equal(t, s.base.String(), p.BaseDigest)
	assert.Equal(t, "demo@1.0.0", p.Recipe)
	assert.True(t, p.Provenance)
	assert.True(t, p.SBOM)
	assert.Equal(t, audit.SignatureValid, p.Signature)

	b := imgs["base/bookworm:1"]
	assert.Equal(t, audit.KindBase, b.Kind)
	assert.False(t, b.Provenance)
	assert.Equal(t, audit.SignatureMissing, b.Signature)
	assert.Equal(t, audit.KindBuilder, imgs["builder/go1.23.4:1"].Kind)

	for _, tc := range []struct {
		f    audit.Filter
		want []string
	}{
		{audit.Filter{Commit: commit2[:8]}, []string{"demo/pilot:1.1.0"}},
		{audit.Filter{Commit: strings.ToUpper(commit1[:10])}, []string{"demo/pilot:1.0.0", "demo/proxyv2:1.0.0"}},
		{audit.Filter{Version: "1.0.0"}, []string{"demo/pilot:1.0.0", "demo/proxyv2:1.0.0"}},
		{audit.Filter{Base: s.base.String()}, []string{"demo/pilot:1.0.0", "demo/pilot:1.1.0", "demo/proxyv2:1.0.0"}},
		{audit.Filter{Base: s.base.Hex[:10]}, []string{"demo/pilot:1.0.0", "demo/pilot:1.1.0", "demo/proxyv2:1.0.0"}},
		{audit.Filter{Base: w.reg() + "/base/bookworm:1", Version: "1.1.0"}, []string{"demo/pilot:1.1.0"}},
		{audit.Filter{Repository: "demo/*"}, []string{"demo/pilot:1.0.0", "demo/pilot:1.1.0", "demo/proxyv2:1.0.0"}},
		{audit.Filter{Repository: "demo/proxyv2"}, []string{"demo/proxyv2:1.0.0"}},
		{audit.Filter{Repository: "nothing/here"}, nil},
	} {
		res, err := a.Images(ctx, tc.f)
		require.NoError(t, err, "%+v", tc.f)
		assert.Equal(t, tc.want, names(res.Images), "%+v", tc.f)
	}
	for _, bad := range []audit.Filter{{Commit: "12"}, {Commit: "xyzxyzxyz"}, {Repository: "demo/["}, {Base: "sha256:zz"}} {
		_, err := a.Images(ctx, bad)
		assert.ErrorIs(t, err, audit.ErrBadInput, "%+v", bad)
	}

	// Prefixes scope the whole audit; without a key signatures are only
	// present or missing.
	scoped, err := audit.New(w.cfg, audit.WithLedger(w.store), audit.WithPrefixes("demo/pilot", "base"), audit.WithCacheDir(""))
	require.NoError(t, err)
	res, err = scoped.Images(ctx, audit.Filter{})
	require.NoError(t, err)
	assert.Equal(t, []string{"base/bookworm:1", "demo/pilot:1.0.0", "demo/pilot:1.1.0"}, names(res.Images))
	assert.Equal(t, audit.SignaturePresent, byName(res.Images)["demo/pilot:1.0.0"].Signature)
	res, err = scoped.Images(ctx, audit.Filter{Repository: "demo/proxyv2"})
	require.NoError(t, err)
	assert.Empty(t, res.Images, "a repository outside the prefixes is not audited even when named")
}

func TestVerifyClean(t *testing.T) {
	w := newWorld(t)
	w.seed()
	rep, err := w.auditor().Verify(context.Background())
	require.NoError(t, err)
	assert.Empty(t, rep.Findings)
	assert.True(t, rep.OK())
	assert.Equal(t, 5, rep.Checked)
	assert.True(t, rep.SignaturesChecked)
}

// Audit finds the attachments on both kinds of registry: through the
// referrers API on the embedded registry, which therefore has no
// sha256-<hex> fallback tags, and through the fallback tags on Debian's
// docker-registry, which has no referrers API.
func TestAttachmentsOnBothKindsOfRegistry(t *testing.T) {
	for _, tc := range []struct {
		name     string
		world    func(*testing.T) *world
		fallback bool
	}{
		{"embedded", newWorld, false},
		{"debian-docker-registry", newDistributionWorld, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := tc.world(t)
			s := w.seed()
			ctx := context.Background()
			a := w.auditor()
			res, err := a.Images(ctx, audit.Filter{})
			require.NoError(t, err)
			assert.Equal(t, []string{"base/bookworm:1", "builder/go1.23.4:1", "demo/pilot:1.0.0", "demo/pilot:1.1.0", "demo/proxyv2:1.0.0"}, names(res.Images))
			for _, im := range res.Images {
				if im.Kind == audit.KindSailmaker {
					assert.True(t, im.Provenance, im.Name)
					assert.True(t, im.SBOM, im.Name)
					assert.Equal(t, audit.SignatureValid, im.Signature, im.Name)
				}
			}
			rep, err := a.Verify(ctx)
			require.NoError(t, err)
			assert.Empty(t, rep.Findings)

			tags, err := remote.List(w.tag("demo/pilot", "1.0.0").Context())
			require.NoError(t, err)
			fallback := "sha256-" + s.pilot1.Hex
			if tc.fallback {
				assert.Contains(t, tags, fallback)
			} else {
				assert.NotContains(t, tags, fallback)
				assert.Contains(t, tags, fallback+".sig")
			}
		})
	}
}

type found struct{ code, image string }

func findingSet(rep *audit.Report) []found {
	var out []found
	for _, f := range rep.Findings {
		name := f.Repository
		if f.Tag != "" {
			name += ":" + f.Tag
		}
		out = append(out, found{f.Code, name})
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].image != out[j].image {
			return out[i].image < out[j].image
		}
		return out[i].code < out[j].code
	})
	return out
}

// Everything verify is for, each once, and nothing else.
func TestVerifyFindings(t *testing.T) {
	w := newWorld(t)
	s := w.seed()
	ctx := context.Background()
	mods := map[string]string{"istio.io/istio": "1.0.0"}
	debs := map[string]string{"libc6": "2.36-9+deb12u9"}

	// Pushed by another client: no labels, no provenance, not in the ledger.
	foreign, err := random.Image(64, 1)
	require.NoError(t, err)
	w.push("other/tool", "1", foreign)

	// Built on our base by another tool: it inherits the base's labels.
	derivedLayer, err := random.Layer(64, types.OCILayer)
	require.NoError(t, err)
	derived, err := mutate.Append(s.baseImg, mutate.Addendum{Layer: derivedLayer, History: v1.History{CreatedBy: "RUN apt-get install -y curl"}})
	require.NoError(t, err)
	w.push("other/derived", "1", derived)

	// demo/pilot:1.0.0 moved behind sailmaker's back to a rebuilt-looking
	// image that has none of the attachments.
	w.push("demo/pilot", "1.0.0", w.builtImage(build{repo: "demo/pilot", tag: "1.0.0", base: s.baseImg, commit: commit1}))

	// A base from outside the internal registries.
	w.sailmakerImage(s, build{repo: "demo/fb", tag: "1", base: s.baseImg, baseName: "quay.example/x/base:1", commit: commit1}, mods, debs)
	// A layer not added by sailmaker.
	w.sailmakerImage(s, build{repo: "demo/fl", tag: "1", base: s.baseImg, commit: commit1, layerBy: "/bin/sh -c curl -o /usr/bin/x https://example.invalid/x"}, mods, debs)
	// Provenance commit differs from the image's pin (recipe not embedded).
	b := build{repo: "demo/cm", tag: "1", base: s.baseImg, commit: commit1}
	d := w.push(b.repo, b.tag, w.builtImage(b))
	w.record(b.repo, b.tag, d)
	w.attach(b.repo, d, "application/vnd.in-toto+json", "provenance", w.provenance(b.repo, d, b, commit2), s0)
	w.attach(b.repo, d, "application/spdx+json", "sbom", sbom(mods, debs), s0)
	w.sign(b.repo, d, w.key, d)
	// Provenance and labels disagree on the recipe.
	b = build{repo: "demo/pm", tag: "1", base: s.baseImg, commit: commit1}
	d = w.push(b.repo, b.tag, w.builtImage(b))
	w.record(b.repo, b.tag, d)
	other := b
	other.recipeDigest = "sha256:" + strings.Repeat("e", 64)
	w.attach(b.repo, d, "application/vnd.in-toto+json", "provenance", w.provenance(b.repo, d, other, commit1), s0)
	w.attach(b.repo, d, "application/spdx+json", "sbom", sbom(mods, debs), s0)
	w.sign(b.repo, d, w.key, d)
	// An embedded recipe: its pin is the authority.
	r, err := recipes.Get("istio@1.24.2", recipes.WithRegistry(w.reg()), recipes.WithAllowedRegistries(w.cfg.AllowedRegistries()))
	require.NoError(t, err)
	w.sailmakerImage(s, build{repo: "istio/pilot", tag: "1.24.2", base: s.baseImg, recipe: r.ID(), recipeDigest: r.Digest(), commit: r.Spec.Source.Commit}, mods, debs)
	w.sailmakerImage(s, build{repo: "istio/proxyv2", tag: "1.24.2", base: s.baseImg, recipe: r.ID(), recipeDigest: r.Digest(), commit: strings.Repeat("de", 20)}, mods, debs)
	// Signed with another key.
	otherKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	b = build{repo: "demo/si", tag: "1", base: s.baseImg, commit: commit1}
	d = w.push(b.repo, b.tag, w.builtImage(b))
	w.record(b.repo, b.tag, d)
	w.attach(b.repo, d, "application/vnd.in-toto+json", "provenance", w.provenance(b.repo, d, b, commit1), s0)
	w.attach(b.repo, d, "application/spdx+json", "sbom", sbom(mods, debs), s0)
	w.sign(b.repo, d, otherKey, d)
	// A signature by the right key, of another image.
	b = build{repo: "demo/sx", tag: "1", base: s.baseImg, commit: commit1}
	d = w.push(b.repo, b.tag, w.builtImage(b))
	w.record(b.repo, b.tag, d)
	w.attach(b.repo, d, "application/vnd.in-toto+json", "provenance", w.provenance(b.repo, d, b, commit1), s0)
	w.attach(b.repo, d, "application/spdx+json", "sbom", sbom(mods, debs), s0)
	w.sign(b.repo, d, w.key, s.pilot2)
	// Tagged outside sailmaker: everything in place but the ledger entry.
	b = build{repo: "demo/nr", tag: "1", base: s.baseImg, commit: commit1}
	d = w.push(b.repo, b.tag, w.builtImage(b))
	w.attach(b.repo, d, "application/vnd.in-toto+json", "provenance", w.provenance(b.repo, d, b, commit1), s0)
	w.attach(b.repo, d, "application/spdx+json", "sbom", sbom(mods, debs), s0)
	w.sign(b.repo, d, w.key, d)
	// The ledger knows a tag the registry lost.
	w.record("demo/gone", "1", s.pilot1)
	// Attested before a signing key was configured: plain documents.
	b = build{repo: "demo/au", tag: "1", base: s.baseImg, commit: commit1}
	d = w.push(b.repo, b.tag, w.builtImage(b))
	w.record(b.repo, b.tag, d)
	w.attachWith(b.repo, d, "application/vnd.in-toto+json", "provenance", w.provenance(b.repo, d, b, commit1), s0, nil)
	w.attachWith(b.repo, d, "application/spdx+json", "sbom", sbom(mods, debs), s0, nil)
	w.sign(b.repo, d, w.key, d)
	// Attestations signed with another key.
	b = build{repo: "demo/ai", tag: "1", base: s.baseImg, commit: commit1}
	d = w.push(b.repo, b.tag, w.builtImage(b))
	w.record(b.repo, b.tag, d)
	w.attachWith(b.repo, d, "application/vnd.in-toto+json", "provenance", w.provenance(b.repo, d, b, commit1), s0, otherKey)
	w.attach(b.repo, d, "application/spdx+json", "sbom", sbom(mods, debs), s0)
	w.sign(b.repo, d, w.key, d)

	rep, err := w.auditor().Verify(ctx)
	require.NoError(t, err)
	assert.False(t, rep.OK())
	assert.Equal(t, sortFound([]found{
		{"not-built-by-sailmaker", "other/tool:1"},
		{"not-built-by-sailmaker", "other/derived:1"},
		{"commit-mismatch", "demo/cm:1"},
		{"foreign-base", "demo/fb:1"},
		{"foreign-layer", "demo/fl:1"},
		{"provenance-mismatch", "demo/pm:1"},
		{"tag-deleted", "demo/gone:1"},
		{"tag-unrecorded", "demo/nr:1"},
		{"no-provenance", "demo/pilot:1.0.0"},
		{"no-sbom", "demo/pilot:1.0.0"},
		{"signature-missing", "demo/pilot:1.0.0"},
		{"tag-moved", "demo/pilot:1.0.0"},
		{"signature-invalid", "demo/si:1"},
		{"signature-invalid", "demo/sx:1"},
		{"commit-mismatch", "istio/proxyv2:1.24.2"},
		{"attestation-unsigned", "demo/au:1"},
		{"attestation-unsigned", "demo/au:1"},
		{"attestation-invalid", "demo/ai:1"},
	}), findingSet(rep))

	for _, f := range rep.Findings {
		switch {
		case f.Code == "tag-moved":
			assert.Contains(t, f.Message, s.pilot1.String(), "names the ledger's digest")
			assert.Contains(t, f.Image, "demo/pilot:1.0.0@sha256:")
		case f.Code == "commit-mismatch" && f.Repository == "istio/proxyv2":
			assert.Contains(t, f.Message, "embedded recipe istio@1.24.2")
			assert.Contains(t, f.Message, r.Spec.Source.Commit)
		case f.Code == "commit-mismatch":
			assert.Contains(t, f.Message, commit2)
			assert.Contains(t, f.Message, "revision label")
		case f.Code == "foreign-base":
			assert.Contains(t, f.Message, "quay.example")
		case f.Code == "not-built-by-sailmaker" && f.Repository == "other/derived":
			assert.Contains(t, f.Message, "built on the sailmaker base base/bookworm by another client")
			assert.Contains(t, f.Message, "apt-get install")
		case f.Code == "provenance-mismatch":
			assert.Contains(t, f.Message, "recipe digest")
		case f.Code == "attestation-unsigned":
			assert.Contains(t, f.Message, "build again to sign it")
		case f.Code == "attestation-invalid":
			assert.Contains(t, f.Message, "the provenance")
			assert.Contains(t, f.Message, "none by this key")
		}
	}
	assert.Equal(t, []string{"attestation-invalid", "attestation-unsigned", "commit-mismatch", "foreign-base", "foreign-layer", "no-provenance", "no-sbom", "not-built-by-sailmaker",
		"provenance-mismatch", "signature-invalid", "signature-missing", "tag-deleted", "tag-moved", "tag-unrecorded"}, rep.Codes())
}

var s0 = mustTime("2025-01-02T03:04:05Z")

func sortFound(f []found) []found {
	sort.Slice(f, func(i, j int) bool {
		if f[i].image != f[j].image {
			return f[i].image < f[j].image
		}
		return f[i].code < f[j].code
	})
	return f
}

func TestShow(t *testing.T) {
	w := newWorld(t)
	s := w.seed()
	a := w.auditor()
	ctx := context.Background()

	d, err := a.Show(ctx, "demo/pilot:1.0.0")
	require.NoError(t, err)
	assert.Equal(t, s.pilot1.String(), d.Image.Digest)
	require.NotNil(t, d.Provenance)
	assert.Equal(t, commit1, d.Provenance.Commit())
	assert.Equal(t, "demo@1.0.0", d.Provenance.Statement.Predicate.BuildDefinition.ExternalParameters.Recipe.ID)
	assert.Equal(t, "tester", d.Provenance.Statement.Predicate.BuildDefinition.InternalParameters.Trigger.Actor)
	assert.Equal(t, audit.AttestationSigned, d.Provenance.Signed, "the DSSE envelope verifies with the key")
	assert.Equal(t, audit.AttestationSigned, d.SBOM.Signed)
	require.NotNil(t, d.SBOM)
	assert.False(t, d.SBOM.FromLabel)
	assert.Contains(t, d.SBOM.GoModules, audit.Package{Name: "github.com/google/uuid", Version: "v1.6.0", PURL: "pkg:golang/github.com/google/uuid@v1.6.0"})
	assert.Contains(t, d.SBOM.DebianPackages, audit.Package{Name: "libc6", Version: "2.36-9+deb12u9", PURL: "pkg:deb/debian/libc6@2.36-9+deb12u9?arch=amd64"})
	require.Len(t, d.Ledger, 1)
	assert.Equal(t, store.ActionPush, d.Ledger[0].Action)
	assert.Equal(t, s.pilot1.String(), d.Ledger[0].NewDigest)
	assert.Empty(t, d.Findings)
	assert.Len(t, d.Attachments, 2)
	require.Len(t, d.Layers, 2)
	assert.Equal(t, "sailmaker: COPY /usr/local/bin/pilot-discovery", d.Layers[1].CreatedBy)

	// By digest, and by full reference.
	byDigest, err := a.Show(ctx, "demo/pilot@"+s.pilot2.String())
	require.NoError(t, err)
	assert.Equal(t, commit2, byDigest.Image.Commit)
	assert.Empty(t, byDigest.Image.Tag)
	require.Len(t, byDigest.Ledger, 1, "the ledger entries that set this digest")
	assert.Equal(t, "1.1.0", byDigest.Ledger[0].Tag)
	full, err := a.Show(ctx, w.reg()+"/demo/proxyv2:1.0.0")
	require.NoError(t, err)
	assert.Equal(t, s.pxy.String(), full.Image.Digest)

	// A base image: no SBOM, the packages from its label.
	bd, err := a.Show(ctx, "base/bookworm:1")
	require.NoError(t, err)
	require.NotNil(t, bd.SBOM)
	assert.True(t, bd.SBOM.FromLabel)
	assert.Len(t, bd.SBOM.DebianPackages, 3)

	_, err = a.Show(ctx, "demo/pilot:9.9.9")
	assert.ErrorIs(t, err, audit.ErrNotFound)
	for _, bad := range []string{"", "docker.io/library/golang:1.23", "demo/pilot", "Demo/Pilot:1"} {
		_, err = a.Show(ctx, bad)
		assert.ErrorIs(t, err, audit.ErrBadInput, bad)
	}
}

func TestUses(t *testing.T) {
	w := newWorld(t)
	w.seed()
	foreign, err := random.Image(64, 1)
	require.NoError(t, err)
	w.push("other/tool", "1", foreign)
	a := w.auditor()
	ctx := context.Background()

	uses := func(module, pkg string) *audit.UsesResult {
		t.Helper()
		q, err := audit.ParseUses(module, pkg)
		require.NoError(t, err)
		res, err := a.Uses(ctx, q)
		require.NoError(t, err)
		assert.Equal(t, []string{w.reg() + "/other/tool:1@" + digestOf(t, foreign)}, res.NotSearched, "a foreign image's content is unknown")
		return res
	}
	got := func(res *audit.UsesResult) []string {
		var out []string
		for _, u := range res.Uses {
			out = append(out, u.Repository+":"+u.Tag+" "+u.Name+"="+u.Version+" "+u.From)
		}
		sort.Strings(out)
		return out
	}
	assert.Equal(t, []string{"demo/pilot:1.0.0 github.com/google/uuid=v1.6.0 sbom", "demo/pilot:1.1.0 github.com/google/uuid=v1.5.0 sbom"}, got(uses("github.com/google/uuid", "")))
	assert.Equal(t, []string{"demo/pilot:1.0.0 github.com/google/uuid=v1.6.0 sbom"}, got(uses("github.com/google/uuid@v1.6.0", "")))
	assert.Equal(t, []string{"demo/pilot:1.0.0 github.com/google/uuid=v1.6.0 sbom"}, got(uses("github.com/google/uuid@1.6.0", "")))
	assert.Empty(t, got(uses("github.com/google/uuid@v9.9.9", "")))
	assert.Equal(t, []string{"demo/pilot:1.1.0 ca-certificates=20240203 sbom"}, got(uses("", "ca-certificates=20240203")))
	assert.Equal(t, []string{
		"base/bookworm:1 libc6=2.36-9+deb12u9 label",
		"demo/pilot:1.0.0 libc6=2.36-9+deb12u9 sbom",
		"demo/pilot:1.1.0 libc6=2.36-9+deb12u9 sbom",
		"demo/proxyv2:1.0.0 libc6=2.36-9+deb12u9 sbom",
	}, got(uses("", "libc6")))

	for _, bad := range [][2]string{{"", ""}, {"a", "b"}, {"@v1", ""}, {"", "=1"}} {
		_, err := audit.ParseUses(bad[0], bad[1])
		assert.ErrorIs(t, err, audit.ErrBadInput, "%q", bad)
	}
}

func digestOf(t *testing.T, img v1.Image) string {
	d, err := img.Digest()
	require.NoError(t, err)
	return d.String()
}

func TestDiff(t *testing.T) {
	w := newWorld(t)
	s := w.seed()
	d, err := w.auditor().Diff(context.Background(), "demo/pilot:1.0.0", "demo/pilot:1.1.0")
	require.NoError(t, err)
	changes := map[string][2]string{}
	for _, c := range d.Changes {
		changes[c.Field] = [2]string{c.A, c.B}
	}
	assert.Equal(t, [2]string{commit1, commit2}, changes["commit"])
	assert.Equal(t, [2]string{"1.0.0", "1.1.0"}, changes["version"])
	assert.Contains(t, changes, "envoy sha256")
	assert.NotContains(t, changes, "base digest", "same base")
	assert.NotContains(t, changes, "go")
	assert.Equal(t, []audit.PackageChange{
		{Name: "github.com/google/uuid", A: "v1.6.0", B: "v1.5.0", Change: "changed"},
		{Name: "golang.org/x/net", B: "v0.30.0", Change: "added"},
		{Name: "istio.io/istio", A: "1.0.0", B: "1.1.0", Change: "changed"},
	}, d.Modules)
	assert.Equal(t, []audit.PackageChange{{Name: "ca-certificates", A: "20230311", B: "20240203", Change: "changed"}}, d.Packages)

	// Against the base image: no SBOM there, so no module comparison, and
	// its packages come from its label.
	d, err = w.auditor().Diff(context.Background(), "base/bookworm:1", "demo/proxyv2@"+s.pxy.String())
	require.NoError(t, err)
	assert.Empty(t, d.Modules)
	assert.Empty(t, d.Packages, "the same Debian packages")
	assert.NotEmpty(t, d.Notes)
}

func TestLedger(t *testing.T) {
	w := newWorld(t)
	w.seed()
	res, err := w.auditor().Ledger(context.Background(), store.LedgerFilter{Repository: "demo/pilot"})
	require.NoError(t, err)
	require.Len(t, res.Entries, 2)
	assert.Equal(t, "1.0.0", res.Entries[0].Tag)
	assert.Equal(t, "1.1.0", res.Entries[1].Tag)
}

// Without a store file, the auditor creates none and says so.
func TestNoLedger(t *testing.T) {
	w := newWorld(t)
	w.seed()
	cfg := *w.cfg
	cfg.StateDir = t.TempDir()
	a, err := audit.New(&cfg)
	require.NoError(t, err)
	defer a.Close()
	rep, err := a.Verify(context.Background())
	require.NoError(t, err)
	assert.NoFileExists(t, cfg.StateDir+"/"+store.FileName)
	assert.Contains(t, strings.Join(rep.Notes, "\n"), "no ledger")
	assert.Equal(t, []string{"tag-unrecorded"}, rep.Codes(), "no tag can be traced to a sailmaker push")
}
