package builder

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
	"unsafe"

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

// The compile places Envoy in out/ under both of upstream's names. A
// second build with the same Envoy finds the same bytes there and only
// touches them (nothing is written to them, as inotify shows); a new Envoy
// replaces them.
func TestCompilePlacesEnvoyOnce(t *testing.T) {
	r, err := recipes.Get("istio@1.24.2")
	require.NoError(t, err)
	in := &Inputs{ProxySHA: "1ed7d44031746a2ad74707202464b4bfdcb38e82", Envoy: map[string]*EnvoyInput{"amd64": {}}}
	var lines []string
	for _, l := range strings.Split(compileScript(r, in, "amd64", outDir), "\n") {
		if strings.Contains(l, "release") {
			lines = append(lines, l)
		}
	}
	require.Len(t, lines, 3, "mkdir and one line per name")
	inputs, work := t.TempDir(), t.TempDir()
	script := strings.ReplaceAll(strings.Join(lines, "\n"), envoyInDir, inputs)
	release := filepath.Join(work, "out", "linux_amd64", "release")
	names := []string{"envoy-" + in.ProxySHA, "envoy"}
	// place runs the lines with envoy as the input and returns how many
	// writes to release's files inotify saw.
	place := func(envoy string) (writes int) {
		t.Helper()
		require.NoError(t, os.WriteFile(filepath.Join(inputs, "envoy"), []byte(envoy), 0o755))
		require.NoError(t, os.MkdirAll(release, 0o755))
		fd, err := syscall.InotifyInit1(syscall.IN_NONBLOCK | syscall.IN_CLOEXEC)
		require.NoError(t, err)
		defer syscall.Close(fd)
		_, err = syscall.InotifyAddWatch(fd, release, syscall.IN_MODIFY)
		require.NoError(t, err)
		for _, n := range names {
			require.NoError(t, os.Chtimes(filepath.Join(release, n), time.Unix(0, 0), time.Unix(0, 0)), "%s", n)
		}
		cmd := exec.Command("/bin/sh", "-euc", script)
		cmd.Dir = work
		out, err := cmd.CombinedOutput()
		require.NoError(t, err, "%s", out)
		for _, n := range names {
			p := filepath.Join(release, n)
			b, err := os.ReadFile(p)
			require.NoError(t, err)
			assert.Equal(t, envoy, string(b), n)
			st, err := os.Stat(p)
			require.NoError(t, err)
			assert.WithinDuration(t, time.Now(), st.ModTime(), time.Minute, "%s has the time of this build", n)
		}
		buf := make([]byte, 64<<10)
		for {
			n, err := syscall.Read(fd, buf)
			if err == syscall.EAGAIN {
				return writes
			}
			require.NoError(t, err)
			for off := 0; off < n; {
				ev := (*syscall.InotifyEvent)(unsafe.Pointer(&buf[off]))
				writes++
				off += syscall.SizeofInotifyEvent + int(ev.Len)
			}
		}
	}
	require.NoError(t, os.MkdirAll(release, 0o755))
	for _, n := range names {
		require.NoError(t, os.WriteFile(filepath.Join(release, n), []byte("what upstream's init left"), 0o755))
	}
	assert.Positive(t, place("envoy one"), "an Envoy that differs is written")
	assert.Zero(t, place("envoy one"), "the same Envoy is not written again")
	assert.Positive(t, place("envoy two"), "a new Envoy is written over the old one")
}
