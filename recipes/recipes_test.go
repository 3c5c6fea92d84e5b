package recipes

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestEmbeddedRecipes(t *testing.T) {
	entries := List()
	require.Len(t, entries, 5)
	for _, e := range entries {
		assert.NotContains(t, e.Description, "invalid", e.ID)
	}
	assert.Equal(t, Entry{ID: "istio@1.24.2", Kind: KindRecipe, Version: "1.24.2",
		Description: "istio 1.24.2 from https://github.com/istio/istio.git (images: pilot, proxyv2, pilot-distroless, proxyv2-distroless; packages: istio-cni, istioctl-versions)"}, entries[0])
	assert.Equal(t, "base/bookworm", entries[1].ID)
	assert.Equal(t, "base/distroless", entries[2].ID)
	assert.Equal(t, "base/iptables", entries[3].ID)
	assert.Equal(t, "builder/go1.23.4", entries[4].ID)

	r, err := Get("istio@1.24.2")
	require.NoError(t, err)
	s := r.Spec
	assert.Equal(t, Source{Git: "https://github.com/istio/istio.git", Tag: "1.24.2", Commit: "7754674f65d38523e49b692cbb95a5bb1e2a93b8"}, s.Source)
	assert.Equal(t, Toolchain{Builder: "127.0.0.1:5000/builder/go1.23.4:1", Go: "1.23.4"}, s.Toolchain)
	assert.Equal(t, []string{"linux/amd64", "linux/arm64"}, s.PlatformList())
	assert.Equal(t, map[string]string{"VERSION": "1.24.2", "BUILD_WITH_CONTAINER": "0", "BUILD_ALL": "false"}, s.Make.Variables,
		"TARGET_ARCH is the builder's, per platform")
	assert.Equal(t, []string{"out/linux_${TARGET_ARCH}/pilot-discovery", "out/linux_${TARGET_ARCH}/pilot-agent",
		"out/linux_amd64/istioctl", "out/linux_amd64/istio-cni"}, s.Make.Targets)
	assert.Equal(t, []string{"out/linux_amd64/pilot-discovery", "out/linux_amd64/pilot-agent", "out/linux_amd64/istioctl", "out/linux_amd64/istio-cni"},
		s.Make.TargetsFor("amd64"), "linux/amd64's build makes the packages' binaries too")
	assert.Equal(t, []string{"out/linux_arm64/pilot-discovery", "out/linux_arm64/pilot-agent"}, s.Make.TargetsFor("arm64"))
	maint := "sailmaker <packages@sailmaker.dev>"
	assert.Equal(t, []Package{
		{Name: "istio-cni", Type: PackageIstioCNI, Repository: "istio/istio-cni", Version: "1.24.2-1", Maintainer: maint,
			Files: []File{{From: "build:out/linux_amd64/istio-cni", To: "/opt/cni/bin/istio-cni"}}},
		{Name: "istioctl-versions", Type: PackageIstioctl, Repository: "istio/istioctl", Maintainer: maint,
			Files: []File{{From: "build:out/linux_amd64/istioctl"}}},
	}, s.Packages)
	assert.Equal(t, "istio/istioctl-versions", s.Packages[1].CollectionRepository())
	assert.Equal(t, "amd64", r.PackageArchitecture(s.Packages[0]))
	assert.Equal(t, "linux/amd64", r.PackagePlatform(s.Packages[0]))
	const mirror = "https://artifacts.sailmaker.internal/istio/envoy/envoy-alpha-1ed7d44031746a2ad74707202464b4bfdcb38e82"
	assert.Equal(t, &Envoy{
		URL:         mirror + ".tar.gz",
		ProxySHA:    "1ed7d44031746a2ad74707202464b4bfdcb38e82",
		Binary:      "usr/local/bin/envoy",
		Unconfirmed: true,
		Arch:        map[string]EnvoyArch{"arm64": {URL: mirror + "-arm64.tar.gz", Unconfirmed: true}},
	}, s.Inputs.Envoy)
	for arch, url := range map[string]string{"amd64": mirror + ".tar.gz", "arm64": mirror + "-arm64.tar.gz"} {
		a, ok := s.Inputs.Envoy.For(arch)
		require.True(t, ok, arch)
		assert.Equal(t, EnvoyArtifact{Arch: arch, URL: url, Unconfirmed: true}, a)
	}
	require.Len(t, s.Images, 4)
	pilot, proxy := s.Images[0], s.Images[1]
	// Upstream's pilot/docker/Dockerfile.pilot and Dockerfile.proxyv2 at
	// the tag, item by item.
	assert.Equal(t, Image{
		Name: "pilot", Repository: "istio/pilot", Tag: "1.24.2", Base: "127.0.0.1:5000/base/bookworm:2",
		Files:      []File{{From: "build:out/linux_${TARGET_ARCH}/pilot-discovery", To: "/usr/local/bin/pilot-discovery"}},
		User:       "1337:1337",
		Entrypoint: []string{"/usr/local/bin/pilot-discovery"},
	}, pilot)
	assert.Equal(t, Image{
		Name: "proxyv2", Repository: "istio/proxyv2", Tag: "1.24.2", Base: "127.0.0.1:5000/base/bookworm:2",
		Files: []File{
			{From: "source:tools/packaging/common/envoy_bootstrap.json", To: "/var/lib/istio/envoy/envoy_bootstrap_tmpl.json", Mode: "0644"},
			{From: "input:envoy", To: "/usr/local/bin/envoy"},
			{From: "build:out/linux_${TARGET_ARCH}/pilot-agent", To: "/usr/local/bin/pilot-agent"},
		},
		Env:        map[string]string{"ISTIO_META_ISTIO_PROXY_SHA": "1ed7d44031746a2ad74707202464b4bfdcb38e82"},
		Workdir:    "/",
		Entrypoint: []string{"/usr/local/bin/pilot-agent"},
	}, proxy, "no USER: the injector sets it")
	// The distroless flavour: the same layout on the distroless bases,
	// tagged <version>-distroless.
	dl, pdl := s.Images[2], s.Images[3]
	wantDL := pilot
	wantDL.Name, wantDL.Tag, wantDL.Base = "pilot-distroless", "1.24.2-distroless", "127.0.0.1:5000/base/distroless:1"
	assert.Equal(t, wantDL, dl)
	wantPDL := proxy
	wantPDL.Name, wantPDL.Tag, wantPDL.Base = "proxyv2-distroless", "1.24.2-distroless", "127.0.0.1:5000/base/iptables:1"
	assert.Equal(t, wantPDL, pdl)
	require.Len(t, r.Warnings(), 2)
	assert.Contains(t, r.Warnings()[0], "spec.inputs.envoy.unconfirmed")
	assert.Contains(t, r.Warnings()[1], "spec.inputs.envoy.arch.arm64.unconfirmed")

	r2, err := Get("istio@1.24.2", WithRegistry("registry.internal:5000"))
	require.NoError(t, err)
	assert.Equal(t, "registry.internal:5000/builder/go1.23.4:1", r2.Spec.Toolchain.Builder)
	assert.NotEqual(t, r.Digest(), r2.Digest(), "the digest covers the expanded registry")

	_, err = Get("istio@0.0.1")
	assert.ErrorIs(t, err, ErrNotFound)
	assert.ErrorContains(t, err, "istio@1.24.2")
}

func TestEmbeddedBases(t *testing.T) {
	b, err := GetBase("base/bookworm")
	require.NoError(t, err)
	assert.Equal(t, BaseImageSpec{
		Suite: "bookworm", Variant: "minbase",
		Platforms: []string{"linux/amd64", "linux/arm64"},
		// upstream's docker/Dockerfile.base at 1.24.2, in its order
		Packages:        []string{"ca-certificates", "curl", "iptables", "iproute2", "iputils-ping", "knot-dnsutils", "netcat-openbsd", "tcpdump", "conntrack", "bsdmainutils", "net-tools", "lsof", "sudo"},
		SourceDateEpoch: 1734146883,
		Alternatives:    []Alternative{{Name: "iptables", Path: "/usr/sbin/iptables-legacy"}, {Name: "ip6tables", Path: "/usr/sbin/ip6tables-legacy"}},
		Users:           []User{{Name: "istio-proxy", UID: 1337}},
		Sudoers:         []string{"istio-proxy ALL=NOPASSWD: ALL"},
		Env:             map[string]string{"DEBIAN_FRONTEND": "noninteractive"},
	}, b.Spec)
	assert.Equal(t, "127.0.0.1:5000/base/bookworm:2", b.Ref(DefaultRegistry))

	g, err := GetBase("builder/go1.23.4")
	require.NoError(t, err)
	assert.Equal(t, &GoToolchain{Version: "1.23.4"}, g.Spec.Go)
	assert.Equal(t, []string{"ca-certificates", "git", "make"}, g.Spec.Packages)
	assert.Equal(t, []string{"linux/amd64"}, g.Spec.PlatformList(), "the builder image stays amd64: builds cross-compile")
	assert.Equal(t, b.Spec.SourceDateEpoch, g.Spec.SourceDateEpoch)

	all, err := Bases()
	require.NoError(t, err)
	var names []string
	for _, b := range all {
		names = append(names, b.Metadata.Name)
		if b.Spec.Distroless != nil {
			assert.Equal(t, []string{"linux/amd64", "linux/arm64"}, b.Spec.Platforms, b.Metadata.Name)
			assert.True(t, b.Spec.Distroless.CACertificates, b.Metadata.Name)
		}
	}
	assert.Equal(t, []string{"base/bookworm", "base/distroless", "base/iptables", "builder/go1.23.4"}, names)

	_, err = GetBase("base/alpine")
	assert.ErrorIs(t, err, ErrNotFound)
}

// The recipe's builder and base images are the embedded base images.
func TestEmbeddedRecipeUsesEmbeddedBases(t *testing.T) {
	bases, err := Bases()
	require.NoError(t, err)
	refs := map[string]bool{}
	for _, b := range bases {
		refs[b.Ref(DefaultRegistry)] = true
	}
	r, err := Get("istio@1.24.2")
	require.NoError(t, err)
	assert.True(t, refs[r.Spec.Toolchain.Builder], r.Spec.Toolchain.Builder)
	for _, img := range r.Spec.Images {
		assert.True(t, refs[img.Base], img.Base)
	}
}

func TestFileSource(t *testing.T) {
	for _, tc := range []struct {
		from, kind, path string
		mode             uint32
	}{
		{"build:out/linux_amd64/pilot-agent", FromBuild, "out/linux_amd64/pilot-agent", 0o755},
		{"source:tools/x.json", FromSource, "tools/x.json", 0o644},
		{"input:envoy", FromInput, "envoy", 0o755},
		{"elsewhere:x", "", "elsewhere:x", 0o755},
	} {
		f := File{From: tc.from}
		kind, p := f.Source()
		assert.Equal(t, tc.kind, kind, tc.from)
		assert.Equal(t, tc.path, p, tc.from)
		assert.Equal(t, tc.mode, f.FileMode(), tc.from)
	}
	assert.Equal(t, uint32(0o600), File{From: "source:x", Mode: "0600"}.FileMode())
}

func TestLoadWithPatches(t *testing.T) {
	r, err := Load("testdata/patched/recipe.yaml")
	require.NoError(t, err)
	want, err := os.ReadFile("testdata/patched/patches/0001-example.patch")
	require.NoError(t, err)
	patches := r.Patches()
	require.Len(t, patches, 1)
	assert.Equal(t, "patches/0001-example.patch", patches[0].Path)
	assert.Equal(t, want, patches[0].Data)
	assert.Regexp(t, `^[0-9a-f]{64}$`, patches[0].SHA256)
	assert.Equal(t, "1.24.2", r.Spec.Make.Variables["VERSION"], "${VERSION} expands in make variables")
	assert.Equal(t, "1.24.2-patched", r.Spec.Images[0].Tag)
	assert.Nil(t, r.Spec.Inputs.Envoy)
	assert.Empty(t, r.Warnings())
}

// copyPatched copies testdata/patched to a temporary directory.
func copyPatched(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	require.NoError(t, os.CopyFS(dir, os.DirFS("testdata/patched")))
	return dir
}

func TestDigest(t *testing.T) {
	r1, err := Load("testdata/patched/recipe.yaml")
	require.NoError(t, err)
	r2, err := Load("testdata/patched/recipe.yaml")
	require.NoError(t, err)
	assert.Regexp(t, `^sha256:[0-9a-f]{64}$`, r1.Digest())
	assert.Equal(t, r1.Digest(), r2.Digest(), "stable")

	// Comments, key order and variables written out do not matter.
	dir := copyPatched(t)
	file := filepath.Join(dir, "recipe.yaml")
	data, err := os.ReadFile(file)
	require.NoError(t, err)
	rewritten := strings.NewReplacer(
		"# A recipe with a patch, for tests.\n", "",
		"      VERSION: ${VERSION}\n      BUILD_WITH_CONTAINER: \"0\"\n", "      BUILD_WITH_CONTAINER: \"0\"\n      VERSION: 1.24.2\n",
		"tag: ${VERSION}-patched", "tag: 1.24.2-patched",
	).Replace(string(data))
	require.NotEqual(t, string(data), rewritten)
	require.NoError(t, os.WriteFile(file, []byte(rewritten), 0o644))
	r3, err := Load(file)
	require.NoError(t, err)
	assert.Equal(t, r1.Digest(), r3.Digest())

	// A changed patch changes the digest.
	require.NoError(t, os.WriteFile(filepath.Join(dir, "patches/0001-example.patch"), []byte("diff --git a/x b/x\n"), 0o644))
	r4, err := Load(file)
	require.NoError(t, err)
	assert.NotEqual(t, r1.Digest(), r4.Digest())

	// So does any field.
	require.NoError(t, os.WriteFile(file, []byte(strings.Replace(rewritten, "BUILD_ALL: \"false\"", "BUILD_ALL: \"true\"", 1)), 0o644))
	r5, err := Load(file)
	require.NoError(t, err)
	assert.NotEqual(t, r4.Digest(), r5.Digest())
}

func TestLoadPatchErrors(t *testing.T) {
	dir := copyPatched(t)
	require.NoError(t, os.Remove(filepath.Join(dir, "patches/0001-example.patch")))
	_, err := Load(filepath.Join(dir, "recipe.yaml"))
	var errs ValidationErrors
	require.ErrorAs(t, err, &errs)
	require.Len(t, errs, 1)
	assert.Equal(t, 13, errs[0].Line)
	assert.Equal(t, "spec.source.patches[0]", errs[0].Field)
	assert.Contains(t, errs[0].Msg, "reading patch")

	// A symlink out of the recipe's directory is not followed.
	outside := filepath.Join(t.TempDir(), "secret")
	require.NoError(t, os.WriteFile(outside, []byte("secret"), 0o600))
	require.NoError(t, os.Symlink(outside, filepath.Join(dir, "patches/0001-example.patch")))
	_, err = Load(filepath.Join(dir, "recipe.yaml"))
	require.ErrorAs(t, err, &errs)
	assert.Contains(t, errs[0].Msg, "reading patch")

	_, err = Load(filepath.Join(dir, "missing.yaml"))
	assert.ErrorIs(t, err, os.ErrNotExist)
}

func TestLoadErrorsNameTheFile(t *testing.T) {
	_, err := Load("testdata/invalid.yaml")
	require.Error(t, err)
	assert.Equal(t, strings.Join([]string{
		`testdata/invalid.yaml:12: spec.toolchain.builder: image reference "golang:1.23" is not fully qualified: it must start with a registry host, such as ${REGISTRY}/`,
		`testdata/invalid.yaml:20: spec.inputs.envoy.sha256: must be 64 lowercase hex digits`,
		`testdata/invalid.yaml:26: spec.images[0].base: image reference "docker.io/library/debian:bookworm": Docker Hub is never used; build the image into the internal registry`,
	}, "\n"), err.Error())
}

func TestCheckImageRef(t *testing.T) {
	allowed := []string{"127.0.0.1:5000", "Mirror.Internal"}
	for _, tc := range []struct {
		ref     string
		wantErr error
		msg     string
	}{
		{"127.0.0.1:5000/base/bookworm:2", nil, ""},
		{"127.0.0.1:5000/base/bookworm@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef", nil, ""},
		{"127.0.0.1:5000/base/bookworm:2@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef", nil, ""},
		{"mirror.internal/golang:1.23", nil, ""},
		{"docker.io/library/golang:1.23", ErrDockerHub, "Docker Hub is never used; build the image into the internal registry"},
		{"index.docker.io/library/golang:1.23", ErrDockerHub, ""},
		{"registry-1.docker.io/library/golang:1.23", ErrDockerHub, ""},
		{"DOCKER.IO:443/library/golang:1.23", ErrDockerHub, ""},
		{"golang:1.23", ErrNotQualified, "not fully qualified"},
		{"library/alpine", ErrNotQualified, ""},
		{"golang", ErrNotQualified, ""},
		{"istio/pilot:1.24.2", ErrNotQualified, ""},
		{"quay.io/istio/pilot:1.24.2", ErrRegistryNotAllowed, "quay.io is not among 127.0.0.1:5000, Mirror.Internal"},
		{"localhost:5000/base/bookworm:2", ErrRegistryNotAllowed, ""},
		{"127.0.0.1:5000/base/bookworm", nil, "neither a tag nor a digest"},
		{"127.0.0.1:5000/Base/bookworm:1", nil, "parsing image reference"},
		{"127.0.0.1:5000/base/bookworm:2 ", nil, "whitespace"},
		{"", nil, "empty"},
		{"https://127.0.0.1:5000/base/bookworm:2", nil, "URL scheme"},
	} {
		err := CheckImageRef(tc.ref, allowed)
		if tc.wantErr == nil && tc.msg == "" {
			assert.NoError(t, err, tc.ref)
			continue
		}
		require.Error(t, err, tc.ref)
		if tc.wantErr != nil {
			assert.ErrorIs(t, err, tc.wantErr, tc.ref)
		} else {
			for _, sentinel := range []error{ErrDockerHub, ErrNotQualified, ErrRegistryNotAllowed} {
				assert.False(t, errors.Is(err, sentinel), "%s: %v", tc.ref, err)
			}
		}
		assert.Contains(t, err.Error(), tc.msg, tc.ref)
	}
	// Docker Hub is refused even when allowed.
	assert.ErrorIs(t, CheckImageRef("docker.io/library/golang:1.23", []string{"docker.io", "index.docker.io"}), ErrDockerHub)
	assert.ErrorIs(t, CheckImageRef("127.0.0.1:5000/x:1", nil), ErrRegistryNotAllowed)
}

func TestMarshalRoundTrip(t *testing.T) {
	r, err := Get("istio@1.24.2", WithRegistry("registry.internal"))
	require.NoError(t, err)
	data, err := Marshal(r)
	require.NoError(t, err)
	s := string(data)
	assert.True(t, strings.HasPrefix(s, "# sailmaker recipe istio@1.24.2\n# TO CONFIRM: spec.inputs.envoy.unconfirmed: "), s)
	assert.Contains(t, s, "builder: ${REGISTRY}/builder/go1.23.4:1", "variables are kept")
	assert.Contains(t, s, "tag: ${VERSION}")

	back, err := Parse("back.yaml", data, WithRegistry("registry.internal"))
	require.NoError(t, err)
	assert.Equal(t, r.Digest(), back.Digest())
	assert.Equal(t, r.Spec, back.Spec)
}
