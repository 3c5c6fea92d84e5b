package builder

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sailmaker/sailmaker/builder/base"
	"github.com/sailmaker/sailmaker/recipes"
)

// istio@1.24.2 builds two platforms and its packages from linux/amd64's
// build: amd64's make runs the packages' targets and copies their
// binaries out, arm64's does neither; a build of arm64 alone makes no
// packages.
func TestPackagesFromOnePlatform(t *testing.T) {
	r, err := recipes.Get("istio@1.24.2")
	require.NoError(t, err)
	in := &Inputs{ProxySHA: "1ed7d44031746a2ad74707202464b4bfdcb38e82", Envoy: map[string]*EnvoyInput{"amd64": {}, "arm64": {}}}

	amd64 := compileScript(r, in, "amd64", outDir)
	arm64 := compileScript(r, in, "arm64", outDir)
	for _, want := range []string{"'/src/out/linux_amd64/istioctl'", "'/src/out/linux_amd64/istio-cni'",
		"cp -L '/src/out/linux_amd64/istioctl' '/out/build/out/linux_amd64/istioctl'",
		"cp -L '/src/out/linux_amd64/istio-cni' '/out/build/out/linux_amd64/istio-cni'",
		"'/src/out/linux_amd64/pilot-discovery'"} {
		assert.Contains(t, amd64, want)
	}
	assert.Contains(t, arm64, "'/src/out/linux_arm64/pilot-discovery'")
	assert.Contains(t, arm64, "'TARGET_ARCH=arm64'")
	assert.NotContains(t, arm64, "istioctl", "arm64's build makes no package binaries")
	assert.NotContains(t, arm64, "istio-cni")
	assert.NotContains(t, arm64, "linux_amd64")

	platforms := func(names ...string) []platform {
		var out []platform
		for _, n := range names {
			p, err := base.ParsePlatform(n)
			require.NoError(t, err)
			out = append(out, platform{name: n, arch: recipes.ArchOf(n), oci: p})
		}
		return out
	}
	pkgs, left := builtPackages(r, platforms("linux/amd64", "linux/arm64"))
	assert.Empty(t, left)
	require.Len(t, pkgs, 2)
	for i, p := range pkgs {
		assert.Equal(t, i, p.index)
		assert.Equal(t, "linux/amd64", p.platform.name)
	}
	pkgs, left = builtPackages(r, platforms("linux/arm64"))
	assert.Empty(t, pkgs)
	assert.Equal(t, "istio-cni (linux/amd64), istioctl-versions (linux/amd64)", strings.Join(left, ", "))
}
