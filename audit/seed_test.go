package audit_test

// Test data: images laid out the way sailmaker's builder and the attestation
// contract lay them out, built here with go-containerregistry directly (not
// with the audit package), pushed to a real in-process registry.

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/partial"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/stretchr/testify/require"

	"github.com/sailmaker/sailmaker/config"
	"github.com/sailmaker/sailmaker/internal/testenv"
	"github.com/sailmaker/sailmaker/store"
)

type world struct {
	t     *testing.T
	cfg   *config.Config
	store *store.Store
	key   *ecdsa.PrivateKey
	// pubFile holds the PEM public key of key.
	pubFile string
}

func newWorld(t *testing.T) *world {
	t.Helper()
	return worldOn(t, testenv.Registry(t).Config)
}

// newDistributionWorld is a world on Debian's docker-registry, which has no
// referrers API: go-containerregistry keeps the attachments in the
// sha256-<hex> fallback tags there.
func newDistributionWorld(t *testing.T) *world {
	t.Helper()
	cfg := testenv.Registry(t).Config
	cfg.Registry.Address = testenv.Distribution(t)
	return worldOn(t, cfg)
}

func worldOn(t *testing.T, cfg *config.Config) *world {
	t.Helper()
	// The registry's shutdown waits 5 s for connections that never carried
	// a request; the client's pool has such spares after concurrent reads.
	t.Cleanup(func() { remote.DefaultTransport.(*http.Transport).CloseIdleConnections() })
	st, err := store.OpenDir(context.Background(), cfg.StateDir)
	require.NoError(t, err)
	t.Cleanup(func() { st.Close() })
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	der, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	require.NoError(t, err)
	pubFile := filepath.Join(t.TempDir(), "cosign.pub")
	require.NoError(t, os.WriteFile(pubFile, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), 0o644))
	return &world{t: t, cfg: cfg, store: st, key: key, pubFile: pubFile}
}

func (w *world) reg() string { return w.cfg.Registry.Address }

func (w *world) tag(repo, tag string) name.Tag {
	t, err := name.NewTag(w.reg()+"/"+repo+":"+tag, name.Insecure)
	require.NoError(w.t, err)
	return t
}

// push writes img under repo:tag with go-containerregistry, as any other
// client would, and returns its digest.
func (w *world) push(repo, tag string, img v1.Image) v1.Hash {
	w.t.Helper()
	require.NoError(w.t, remote.Write(w.tag(repo, tag), img))
	d, err := img.Digest()
	require.NoError(w.t, err)
	return d
}

// record appends what sailmaker's builder appends after a push.
func (w *world) record(repo, tag string, d v1.Hash) {
	w.t.Helper()
	require.NoError(w.t, w.store.Append(context.Background(), store.Entry{Actor: "tester", Action: store.ActionPush, Repository: repo, Tag: tag, NewDigest: d.String(), BuildID: "b-" + tag}))
}

// baseImage is a base image as builder/base makes it.
func (w *world) baseImage(name, packages, goVersion string) v1.Image {
	w.t.Helper()
	rootfs, err := random.Layer(256, types.OCILayer)
	require.NoError(w.t, err)
	adds := []mutate.Addendum{{Layer: rootfs, History: v1.History{CreatedBy: "mmdebstrap --variant=minbase bookworm"}}}
	if goVersion != "" {
		gol, err := random.Layer(256, types.OCILayer)
		require.NoError(w.t, err)
		adds = append(adds, mutate.Addendum{Layer: gol, History: v1.History{CreatedBy: "golang.org/toolchain@v0.0.1-go" + goVersion + ".linux-amd64"}})
	}
	img, err := mutate.Append(mutate.MediaType(empty.Image, types.OCIManifestSchema1), adds...)
	require.NoError(w.t, err)
	cf, err := img.ConfigFile()
	require.NoError(w.t, err)
	cf = cf.DeepCopy()
	cf.Config.Labels = map[string]string{
		"dev.sailmaker.packages":          packages,
		"dev.sailmaker.recipe":            name,
		"dev.sailmaker.recipe.digest":     "sha256:" + strings.Repeat("b", 64),
		"org.opencontainers.image.source": "debian:bookworm",
	}
	if goVersion != "" {
		cf.Config.Labels["dev.sailmaker.go.version"] = goVersion
	}
	img, err = mutate.ConfigFile(img, cf)
	require.NoError(w.t, err)
	return img
}

// build describes one image sailmaker built.
type build struct {
	repo, tag    string
	base         v1.Image
	baseName     string // default <reg>/base/bookworm:1
	recipe       string // default demo@<tag>
	recipeDigest string
	commit       string // the image's revision label
	version      string
	// layerBy is the history of the added layer (default sailmaker's).
	layerBy string
}

// builtImage lays out an image the way builder.Assemble does: the base's
// layers, one layer with history "sailmaker: COPY …", labels and the same
// values as manifest annotations.
// fill sets the defaults of a build.
func (w *world) fill(b build) build {
	if b.baseName == "" {
		b.baseName = w.reg() + "/base/bookworm:1"
	}
	if b.recipe == "" {
		b.recipe = "demo@" + b.tag
	}
	if b.recipeDigest == "" {
		b.recipeDigest = "sha256:" + strings.Repeat("c", 64)
	}
	if b.version == "" {
		b.version = b.tag
	}
	if b.layerBy == "" {
		b.layerBy = "sailmaker: COPY /usr/local/bin/pilot-discovery"
	}
	return b
}

func (w *world) builtImage(b build) v1.Image {
	w.t.Helper()
	b = w.fill(b)
	baseDigest, err := b.base.Digest()
	require.NoError(w.t, err)
	l, err := random.Layer(128, types.OCILayer)
	require.NoError(w.t, err)
	img, err := mutate.Append(b.base, mutate.Addendum{Layer: l, MediaType: types.OCILayer, History: v1.History{CreatedBy: b.layerBy}})
	require.NoError(w.t, err)
	ann := map[string]string{
		"org.opencontainers.image.source":      "https://example.invalid/demo.git",
		"org.opencontainers.image.revision":    b.commit,
		"org.opencontainers.image.version":     b.version,
		"org.opencontainers.image.created":     "2025-01-02T03:04:05Z",
		"org.opencontainers.image.base.name":   b.baseName,
		"org.opencontainers.image.base.digest": baseDigest.String(),
		"dev.sailmaker.recipe":                 b.recipe,
		"dev.sailmaker.recipe.digest":          b.recipeDigest,
		"dev.sailmaker.source.tag":             b.tag,
		"dev.sailmaker.builder.digest":         "sha256:" + strings.Repeat("d", 64),
		"dev.sailmaker.go.version":             "1.23.4",
		"dev.sailmaker.inputs":                 "sha256:" + hexOf(b.repo+b.tag+b.commit),
		"dev.sailmaker.built-by":               "sailmaker",
		"dev.sailmaker.envoy.sha256":           hexOf("envoy" + b.tag),
	}
	cf, err := img.ConfigFile()
	require.NoError(w.t, err)
	cf = cf.DeepCopy()
	labels := map[string]string{}
	for k, v := range cf.Config.Labels {
		labels[k] = v
	}
	for k, v := range ann {
		labels[k] = v
	}
	cf.Config.Labels = labels
	img, err = mutate.ConfigFile(img, cf)
	require.NoError(w.t, err)
	return mutate.Annotations(img, ann).(v1.Image)
}

func hexOf(s string) string { h := sha256.Sum256([]byte(s)); return hex.EncodeToString(h[:]) }

// artifact is an OCI artifact manifest: empty config, one document layer,
// artifactType and subject, as the attestation contract says.
type artifact struct {
	manifest []byte
	doc      v1.Layer
}

func (a artifact) RawConfigFile() ([]byte, error)      { return []byte("{}"), nil }
func (a artifact) MediaType() (types.MediaType, error) { return types.OCIManifestSchema1, nil }
func (a artifact) RawManifest() ([]byte, error)        { return a.manifest, nil }
func (a artifact) LayerByDigest(h v1.Hash) (partial.CompressedLayer, error) {
	if d, _ := a.doc.Digest(); d == h {
		return a.doc, nil
	}
	if h.Hex == hexOf("{}") {
		return static.NewLayer([]byte("{}"), "application/vnd.oci.empty.v1+json"), nil
	}
	return nil, fmt.Errorf("no layer %s", h)
}

// attach pushes doc as an attachment of repo@subject, signed with the
// world's key as sailmaker signs: a DSSE envelope of the in-toto statement
// (for an SBOM, a statement whose predicate is the SPDX document).
func (w *world) attach(repo string, subject v1.Hash, artifactType, kind string, doc []byte, created time.Time) v1.Hash {
	return w.attachWith(repo, subject, artifactType, kind, doc, created, w.key)
}

// attachWith is attach signed with key, or a plain document with none (as
// before signing was configured).
func (w *world) attachWith(repo string, subject v1.Hash, artifactType, kind string, doc []byte, created time.Time, key *ecdsa.PrivateKey) v1.Hash {
	w.t.Helper()
	ctx := context.Background()
	subjRef := w.tag(repo, "x").Context().Digest(subject.String())
	desc, err := remote.Head(subjRef, remote.WithContext(ctx))
	require.NoError(w.t, err)
	layerType := artifactType
	annotations := map[string]string{
		"org.opencontainers.image.created": created.UTC().Format(time.RFC3339),
		"dev.sailmaker.attestation":        kind,
	}
	if key != nil {
		statement := doc
		if kind == "sbom" {
			statement, err = json.Marshal(map[string]any{
				"_type":         "https://in-toto.io/Statement/v1",
				"subject":       []any{map[string]any{"name": w.reg() + "/" + repo, "digest": map[string]string{"sha256": subject.Hex}}},
				"predicateType": "https://spdx.dev/Document",
				"predicate":     json.RawMessage(doc),
			})
			require.NoError(w.t, err)
		}
		const pt = "application/vnd.in-toto+json"
		sum := sha256.Sum256([]byte(fmt.Sprintf("DSSEv1 %d %s %d %s", len(pt), pt, len(statement), statement)))
		sig, err := ecdsa.SignASN1(rand.Reader, key, sum[:])
		require.NoError(w.t, err)
		doc, err = json.Marshal(map[string]any{"payloadType": pt, "payload": base64.StdEncoding.EncodeToString(statement),
			"signatures": []any{map[string]string{"keyid": "", "sig": base64.StdEncoding.EncodeToString(sig)}}})
		require.NoError(w.t, err)
		layerType = "application/vnd.dsse.envelope.v1+json"
		annotations["dev.sailmaker.signed"] = "true"
	}
	layer := static.NewLayer(doc, types.MediaType(layerType))
	ld, _ := layer.Digest()
	m := map[string]any{
		"schemaVersion": 2,
		"mediaType":     "application/vnd.oci.image.manifest.v1+json",
		"artifactType":  artifactType,
		"config":        map[string]any{"mediaType": "application/vnd.oci.empty.v1+json", "digest": "sha256:" + hexOf("{}"), "size": 2},
		"layers":        []any{map[string]any{"mediaType": layerType, "digest": ld.String(), "size": len(doc)}},
		"subject":       map[string]any{"mediaType": string(desc.MediaType), "digest": desc.Digest.String(), "size": desc.Size},
		"annotations":   annotations,
	}
	raw, err := json.Marshal(m)
	require.NoError(w.t, err)
	img, err := partial.CompressedToImage(artifact{manifest: raw, doc: layer})
	require.NoError(w.t, err)
	d, err := img.Digest()
	require.NoError(w.t, err)
	require.NoError(w.t, remote.Write(subjRef.Context().Digest(d.String()), img, remote.WithContext(ctx)))
	return d
}

// provenance is an in-toto statement with the contract's fields.
func (w *world) provenance(repo string, d v1.Hash, b build, commit string) []byte {
	b = w.fill(b)
	baseDigest, _ := b.base.Digest()
	st := map[string]any{
		"_type":         "https://in-toto.io/Statement/v1",
		"subject":       []any{map[string]any{"name": w.reg() + "/" + repo, "digest": map[string]string{"sha256": d.Hex}}},
		"predicateType": "https://slsa.dev/provenance/v1",
		"predicate": map[string]any{
			"buildDefinition": map[string]any{
				"buildType": "https://sailmaker.dev/build/v1",
				"externalParameters": map[string]any{
					"recipe":    map[string]string{"id": b.recipe, "digest": b.recipeDigest},
					"source":    map[string]string{"git": "https://example.invalid/demo.git", "tag": b.tag, "commit": commit},
					"patches":   []any{},
					"make":      map[string]any{"targets": []string{"out/linux_amd64/pilot-discovery"}, "variables": map[string]string{"VERSION": b.version}},
					"envoy":     map[string]any{"url": "https://artifacts.invalid/envoy.tar.gz", "sha256": hexOf("envoy" + b.tag), "proxySha": "abc", "override": false},
					"toolchain": map[string]string{"go": "1.23.4", "builder": w.reg() + "/builder/go1.23.4:1", "builderDigest": "sha256:" + strings.Repeat("d", 64)},
					"base":      map[string]string{"name": b.baseName, "digest": baseDigest.String()},
					"image":     map[string]string{"name": "pilot", "repository": repo, "tag": b.tag},
				},
				"internalParameters": map[string]any{
					"buildkitVersion": "v0.33.1", "sailmakerVersion": "test", "inputsKey": "sha256:" + hexOf(b.repo+b.tag+b.commit),
					"trigger": map[string]string{"actor": "tester", "kind": "cli", "buildId": "b-" + b.tag, "time": "2025-01-02T03:04:05Z"},
				},
				"resolvedDependencies": []any{
					map[string]any{"uri": "git+https://example.invalid/demo.git@refs/tags/" + b.tag, "digest": map[string]string{"gitCommit": commit}},
					map[string]any{"uri": b.baseName, "digest": map[string]string{"sha256": baseDigest.Hex}},
				},
			},
			"runDetails": map[string]any{
				"builder":  map[string]string{"id": "https://sailmaker.dev/sailmaker"},
				"metadata": map[string]string{"invocationId": "b-" + b.tag, "startedOn": "2025-01-02T03:04:05Z", "finishedOn": "2025-01-02T03:05:05Z"},
			},
		},
	}
	raw, err := json.Marshal(st)
	require.NoError(w.t, err)
	return raw
}

// sbom is an SPDX 2.3 document with Go modules and Debian packages.
func sbom(modules map[string]string, debs map[string]string) []byte {
	var pkgs []any
	add := func(name, version, purl, comment string) {
		pkgs = append(pkgs, map[string]any{
			"SPDXID": "SPDXRef-Package-" + hexOf(purl)[:12], "name": name, "versionInfo": version, "downloadLocation": "NOASSERTION",
			"externalRefs": []any{map[string]string{"referenceCategory": "PACKAGE-MANAGER", "referenceType": "purl", "referenceLocator": purl}},
			"comment":      comment,
		})
	}
	for n, v := range modules {
		add(n, v, "pkg:golang/"+n+"@"+v, "go module; in: /usr/local/bin/pilot-discovery")
	}
	for n, v := range debs {
		add(n, v, "pkg:deb/debian/"+n+"@"+v+"?arch=amd64", "")
	}
	doc := map[string]any{
		"spdxVersion": "SPDX-2.3", "dataLicense": "CC0-1.0", "SPDXID": "SPDXRef-DOCUMENT", "name": "test",
		"documentNamespace": "https://sailmaker.dev/spdx/test",
		"creationInfo":      map[string]any{"created": "2025-01-02T03:04:05Z", "creators": []string{"Tool: sailmaker"}},
		"packages":          pkgs, "relationships": []any{},
	}
	b, _ := json.Marshal(doc)
	return b
}

// sign pushes a cosign-style signature of repo@d made with key.
func (w *world) sign(repo string, d v1.Hash, key *ecdsa.PrivateKey, signed v1.Hash) {
	w.t.Helper()
	payload := fmt.Sprintf(`{"critical":{"identity":{"docker-reference":"%s/%s"},"image":{"docker-manifest-digest":"%s"},"type":"cosign container image signature"},"optional":null}`,
		w.reg(), repo, signed)
	sum := sha256.Sum256([]byte(payload))
	sig, err := ecdsa.SignASN1(rand.Reader, key, sum[:])
	require.NoError(w.t, err)
	img, err := mutate.Append(mutate.MediaType(empty.Image, types.OCIManifestSchema1), mutate.Addendum{
		Layer:       static.NewLayer([]byte(payload), "application/vnd.dev.cosign.simplesigning.v1+json"),
		Annotations: map[string]string{"dev.cosignproject.cosign/signature": base64.StdEncoding.EncodeToString(sig)},
	})
	require.NoError(w.t, err)
	require.NoError(w.t, remote.Write(w.tag(repo, "sha256-"+d.Hex+".sig"), img))
}

// seeded is the registry after a clean history: bases, two builds of
// demo/pilot and one of demo/proxyv2, all with provenance, SBOM, signature
// and ledger entries.
type seeded struct {
	base, builder       v1.Hash
	baseImg             v1.Image
	pilot1, pilot2, pxy v1.Hash
	builds              map[string]build
}

const (
	commit1 = "1111111111111111111111111111111111111111"
	commit2 = "2222222222222222222222222222222222222222"
)

func (w *world) seed() *seeded {
	w.t.Helper()
	s := &seeded{builds: map[string]build{}}
	s.baseImg = w.baseImage("base/bookworm", "base-files=12.4+deb12u9,ca-certificates=20230311,libc6=2.36-9+deb12u9", "")
	s.base = w.push("base/bookworm", "1", s.baseImg)
	s.builder = w.push("builder/go1.23.4", "1", w.baseImage("builder/go1.23.4", "base-files=12.4+deb12u9,make=4.3-4.1", "1.23.4"))

	debs := map[string]string{"base-files": "12.4+deb12u9", "ca-certificates": "20230311", "libc6": "2.36-9+deb12u9"}
	s.pilot1 = w.sailmakerImage(s, build{repo: "demo/pilot", tag: "1.0.0", base: s.baseImg, commit: commit1},
		map[string]string{"istio.io/istio": "1.0.0", "github.com/google/uuid": "v1.6.0", "stdlib": "go1.23.4"}, debs)
	s.pilot2 = w.sailmakerImage(s, build{repo: "demo/pilot", tag: "1.1.0", base: s.baseImg, commit: commit2},
		map[string]string{"istio.io/istio": "1.1.0", "github.com/google/uuid": "v1.5.0", "golang.org/x/net": "v0.30.0", "stdlib": "go1.23.4"},
		map[string]string{"base-files": "12.4+deb12u9", "ca-certificates": "20240203", "libc6": "2.36-9+deb12u9"})
	s.pxy = w.sailmakerImage(s, build{repo: "demo/proxyv2", tag: "1.0.0", base: s.baseImg, commit: commit1},
		map[string]string{"istio.io/istio": "1.0.0", "stdlib": "go1.23.4"}, debs)
	return s
}

// sailmakerImage pushes a built image with everything a sailmaker build
// gives it and records it in the ledger.
func (w *world) sailmakerImage(s *seeded, b build, modules, debs map[string]string) v1.Hash {
	w.t.Helper()
	d := w.push(b.repo, b.tag, w.builtImage(b))
	w.record(b.repo, b.tag, d)
	created := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	w.attach(b.repo, d, "application/vnd.in-toto+json", "provenance", w.provenance(b.repo, d, b, b.commit), created)
	w.attach(b.repo, d, "application/spdx+json", "sbom", sbom(modules, debs), created)
	w.sign(b.repo, d, w.key, d)
	s.builds[b.repo+":"+b.tag] = b
	return d
}

func mustTime(s string) time.Time {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		panic(err)
	}
	return t
}
