package recipes

import (
	"errors"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// multiDoc is validDoc built for two platforms: ${TARGET_ARCH} in the
// targets, the build: path and the Envoy URL, and arm64's Envoy sha256.
var multiDoc = strings.NewReplacer(
	"  make:\n", "  platforms: [linux/amd64, linux/arm64]\n  make:\n",
	"out/linux_amd64/", "out/linux_${TARGET_ARCH}/",
	"envoy-alpha-${PROXY_REPO_SHA}.tar.gz", "${TARGET_ARCH}/envoy-alpha-${PROXY_REPO_SHA}.tar.gz",
	"      binary: usr/local/bin/envoy\n", "      binary: usr/local/bin/envoy\n      arch:\n        arm64: {sha256: "+strings.Repeat("ab", 32)+"}\n",
).Replace(validDoc)

func TestMultiPlatformDoc(t *testing.T) {
	r, err := Parse("multi.yaml", []byte(multiDoc))
	require.NoError(t, err)
	s := r.Spec
	assert.Equal(t, []string{"linux/amd64", "linux/arm64"}, s.PlatformList())
	assert.True(t, s.MultiPlatform())
	// ${TARGET_ARCH} is left for the builder, which expands it per platform.
	assert.Equal(t, []string{"out/linux_${TARGET_ARCH}/pilot-discovery", "out/linux_${TARGET_ARCH}/pilot-agent"}, s.Make.Targets)
	assert.Equal(t, []string{"out/linux_arm64/pilot-discovery", "out/linux_arm64/pilot-agent"}, s.Make.TargetsFor("arm64"))
	assert.Equal(t, "build:out/linux_amd64/pilot-discovery", s.Images[0].Files[0].For("amd64").From)
	amd, ok := s.Inputs.Envoy.For("amd64")
	require.True(t, ok)
	assert.Equal(t, EnvoyArtifact{Arch: "amd64", URL: "https://artifacts.example/amd64/envoy-alpha-1ed7d44031746a2ad74707202464b4bfdcb38e82.tar.gz",
		SHA256: "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"}, amd)
	arm, ok := s.Inputs.Envoy.For("arm64")
	require.True(t, ok)
	assert.Equal(t, EnvoyArtifact{Arch: "arm64", URL: "https://artifacts.example/arm64/envoy-alpha-1ed7d44031746a2ad74707202464b4bfdcb38e82.tar.gz",
		SHA256: strings.Repeat("ab", 32)}, arm)
	assert.Empty(t, r.Warnings())

	// A single-platform recipe keeps its digest: the new fields are empty
	// and left out of the canonical encoding (the digest is what sailmaker
	// computed for validDoc before platforms existed).
	single, err := Parse("my.yaml", []byte(validDoc))
	require.NoError(t, err)
	assert.Equal(t, "sha256:cc2d8e0c2658d35b0a8ff888ea117b606e894e265286c0453cf93c1e2966671e", single.Digest())
	assert.NotContains(t, marshalRecipe(t, single), "platforms")
	assert.NotContains(t, marshalRecipe(t, single), `"arch"`)
	assert.Equal(t, []string{"linux/amd64"}, single.Spec.PlatformList())
	assert.False(t, single.Spec.MultiPlatform())

	// Confirming arm64's sha256 of an unconfirmed recipe changes the digest.
	unconf := strings.Replace(multiDoc, "arm64: {sha256: "+strings.Repeat("ab", 32)+"}", "arm64: {unconfirmed: true}", 1)
	u, err := Parse("multi.yaml", []byte(unconf))
	require.NoError(t, err)
	require.Len(t, u.Warnings(), 1)
	assert.Contains(t, u.Warnings()[0], "multi.yaml:28: spec.inputs.envoy.arch.arm64.unconfirmed: ")
	d := u.Digest()
	require.NoError(t, u.ConfirmEnvoyArchSHA256("arm64", strings.Repeat("cd", 32)))
	assert.NotEqual(t, d, u.Digest())
	assert.Empty(t, u.Warnings())
	assert.ErrorContains(t, u.ConfirmEnvoyArchSHA256("arm64", strings.Repeat("ef", 32)), "refusing to override")
	assert.ErrorContains(t, u.ConfirmEnvoyArchSHA256("riscv64", strings.Repeat("ef", 32)), "no riscv64 Envoy tarball")
}

func marshalRecipe(t *testing.T, r *Recipe) string {
	t.Helper()
	data, err := Marshal(r)
	require.NoError(t, err)
	return string(data)
}

func TestMultiPlatformErrors(t *testing.T) {
	for _, tc := range []struct {
		name     string
		doc      string // validDoc or multiDoc
		old, new string
		line     int
		field    string
		msg      string
	}{
		{"unknown platform", multiDoc, "platforms: [linux/amd64, linux/arm64]", "platforms: [linux/amd64, linux/s390x]", 14, "spec.platforms[1]", `unknown platform "linux/s390x"`},
		{"platform twice", multiDoc, "platforms: [linux/amd64, linux/arm64]", "platforms: [linux/arm64, linux/arm64]", 14, "spec.platforms[1]", "listed twice"},
		{"TARGET_ARCH variable with platforms", multiDoc, "      VERSION: 1.24.2\n", "      VERSION: 1.24.2\n      TARGET_ARCH: amd64\n", 18, "spec.make.variables.TARGET_ARCH", "the builder sets TARGET_ARCH"},
		{"TARGET_ARCH of another platform", validDoc, "      VERSION: 1.24.2\n", "      VERSION: 1.24.2\n      TARGET_ARCH: arm64\n", 17, "spec.make.variables.TARGET_ARCH", `"arm64" is not the architecture of linux/amd64`},
		{"TARGET_ARCH in a make variable", validDoc, "      VERSION: 1.24.2\n", "      VERSION: 1.24.2\n      OUT: out/${TARGET_ARCH}\n", 17, "spec.make.variables.OUT", "${TARGET_ARCH} is each platform's architecture"},
		{"TARGET_ARCH in a tag", multiDoc, "tag: ${VERSION}", "tag: ${VERSION}-${TARGET_ARCH}", 32, "spec.images[0].tag", "may be used only in spec.make.targets"},
		{"one platform's target", multiDoc, "- out/linux_${TARGET_ARCH}/pilot-agent", "- out/linux_amd64/pilot-agent", 20, "spec.make.targets[1]", "names one platform's output"},
		{"one platform's binary", multiDoc, "from: build:out/linux_${TARGET_ARCH}/pilot-discovery", "from: build:out/linux_arm64/pilot-discovery", 35, "spec.images[0].files[0].from", "names one platform's output"},
		{"no arm64 envoy", multiDoc, "      arch:\n        arm64: {sha256: " + strings.Repeat("ab", 32) + "}\n", "", 22, "spec.inputs.envoy.arch", "linux/arm64 has no Envoy tarball"},
		{"arm64 envoy sha256 missing", multiDoc, "arm64: {sha256: " + strings.Repeat("ab", 32) + "}", "arm64: {url: https://x.example/e.tgz}", 28, "spec.inputs.envoy.arch.arm64.sha256", "unconfirmed: true"},
		{"amd64 under arch", multiDoc, "arm64: {sha256: ", "amd64: {sha256: ", 28, "spec.inputs.envoy.arch.amd64", "amd64's tarball is spec.inputs.envoy.url"},
		{"unknown arch", multiDoc, "arm64: {sha256: ", "mips: {sha256: ", 28, "spec.inputs.envoy.arch.mips", `unknown architecture "mips"`},
		{"same tarball for both", multiDoc, "${TARGET_ARCH}/envoy-alpha", "envoy-alpha", 23, "spec.inputs.envoy.url", "would download the same tarball"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			require.Contains(t, tc.doc, tc.old)
			doc := strings.Replace(tc.doc, tc.old, tc.new, 1)
			_, err := Parse("my.yaml", []byte(doc))
			require.Error(t, err)
			var errs ValidationErrors
			require.True(t, errors.As(err, &errs), "%T is not ValidationErrors", err)
			for _, e := range errs {
				if e.Field == tc.field && strings.Contains(e.Msg, tc.msg) {
					assert.Equal(t, tc.line, e.Line, "line of %v", e)
					return
				}
			}
			t.Errorf("no error for field %q containing %q; got:\n%v", tc.field, tc.msg, err)
		})
	}
}

// multiPackagesDoc is packagesDoc for two platforms: the images' targets
// and binaries per platform, the packages' from linux/amd64's build.
var multiPackagesDoc = strings.NewReplacer(
	"  make:\n", "  platforms: [linux/amd64, linux/arm64]\n  make:\n",
	"out/linux_amd64/pilot-", "out/linux_${TARGET_ARCH}/pilot-",
	"envoy-alpha-${PROXY_REPO_SHA}.tar.gz", "${TARGET_ARCH}/envoy-alpha-${PROXY_REPO_SHA}.tar.gz",
	"      binary: usr/local/bin/envoy\n", "      binary: usr/local/bin/envoy\n      arch:\n        arm64: {sha256: "+strings.Repeat("ab", 32)+"}\n",
).Replace(packagesDoc)

// A multi-platform recipe's packages come from one platform's build: the
// targets that name linux/amd64's directory are made by its build only,
// and the packages take their files from there.
func TestMultiPlatformPackages(t *testing.T) {
	r, err := Parse("multi.yaml", []byte(multiPackagesDoc))
	require.NoError(t, err)
	s := r.Spec
	assert.Equal(t, []string{"out/linux_amd64/pilot-discovery", "out/linux_amd64/pilot-agent", "out/linux_amd64/istioctl", "out/linux_amd64/istio-cni"}, s.Make.TargetsFor("amd64"))
	assert.Equal(t, []string{"out/linux_arm64/pilot-discovery", "out/linux_arm64/pilot-agent"}, s.Make.TargetsFor("arm64"),
		"arm64's build leaves out what only the packages take from amd64's")
	for _, p := range s.Packages {
		assert.Equal(t, "linux/amd64", r.PackagePlatform(p), p.Name)
		assert.Equal(t, "amd64", r.PackageArchitecture(p), p.Name)
	}
	assert.Equal(t, "build:out/linux_amd64/istio-cni", r.PackageFiles(s.Packages[0])[0].From)

	// ${TARGET_ARCH} in a package's files is its platform's architecture;
	// a package of arm64 comes from linux/arm64's build.
	perArch := strings.NewReplacer(
		"      - out/linux_amd64/istio-cni\n", "      - out/linux_${TARGET_ARCH}/istio-cni\n",
		"from: build:out/linux_amd64/istio-cni", "from: build:out/linux_${TARGET_ARCH}/istio-cni",
		"      version: ${VERSION}-1\n", "      version: ${VERSION}-1\n      architecture: arm64\n",
	).Replace(multiPackagesDoc)
	r, err = Parse("multi.yaml", []byte(perArch))
	require.NoError(t, err)
	cni := r.Spec.Packages[0]
	assert.Equal(t, "linux/arm64", r.PackagePlatform(cni))
	assert.Equal(t, "arm64", r.PackageArchitecture(cni))
	assert.Equal(t, "build:out/linux_arm64/istio-cni", r.PackageFiles(cni)[0].From)
	assert.Contains(t, r.Spec.Make.TargetsFor("arm64"), "out/linux_arm64/istio-cni")

	// A single-platform recipe's packages come from its one build, as
	// before platforms.
	single, err := Parse("my.yaml", []byte(packagesDoc))
	require.NoError(t, err)
	assert.Equal(t, "linux/amd64", single.PackagePlatform(single.Spec.Packages[0]))
	assert.Equal(t, single.Spec.Make.Targets, single.Spec.Make.TargetsFor("amd64"))
}

func TestMultiPlatformPackageErrors(t *testing.T) {
	for _, tc := range []struct {
		name     string
		doc      string
		old, new string
		line     int
		field    string
		msg      string
	}{
		{"one platform's target no package takes", multiPackagesDoc, "      - out/linux_amd64/istio-cni\n", "      - out/linux_amd64/istio-cni\n      - out/linux_amd64/extra\n", 23, "spec.make.targets[4]", "only a package's file may come from one platform's build"},
		{"package of a platform not built", multiPackagesDoc, "      version: ${VERSION}-1\n", "      version: ${VERSION}-1\n      architecture: riscv64\n", 56, "spec.packages[0].architecture", "linux/riscv64 is not one of spec.platforms"},
		{"package file from another platform's build", multiPackagesDoc, "      version: ${VERSION}-1\n", "      version: ${VERSION}-1\n      architecture: arm64\n", 59, "spec.packages[0].files[0].from", "is not one of spec.make.targets (for linux/arm64)"},
		{"target of a platform not built", packagesDoc, "      - out/linux_amd64/istio-cni\n", "      - out/linux_arm64/istio-cni\n", 21, "spec.make.targets[3]", "names the output of linux/arm64, which this recipe does not build"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			require.Contains(t, tc.doc, tc.old)
			doc := strings.Replace(tc.doc, tc.old, tc.new, 1)
			_, err := Parse("my.yaml", []byte(doc))
			require.Error(t, err)
			var errs ValidationErrors
			require.True(t, errors.As(err, &errs), "%T is not ValidationErrors", err)
			for _, e := range errs {
				if e.Field == tc.field && strings.Contains(e.Msg, tc.msg) {
					assert.Equal(t, tc.line, e.Line, "line of %v", e)
					return
				}
			}
			t.Errorf("no error for field %q containing %q; got:\n%v", tc.field, tc.msg, err)
		})
	}
}
