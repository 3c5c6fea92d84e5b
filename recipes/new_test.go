package recipes

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const testProxySHA = "0123456789abcdef0123456789abcdef01234567"

// gitRepo creates a repository with go.mod and istio.deps, commits them and
// tags the commit (annotated, so that New must peel it); it returns a file://
// URL and the commit.
func gitRepo(t *testing.T, tag, gomod, deps string) (string, string) {
	t.Helper()
	if _, err := exec.LookPath("git"); err != nil {
		t.Skip("git is not installed")
	}
	dir := t.TempDir()
	run := func(args ...string) string {
		cmd := exec.Command("git", args...)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(),
			"GIT_CONFIG_GLOBAL=/dev/null", "GIT_CONFIG_NOSYSTEM=1",
			"GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@example.com", "GIT_AUTHOR_DATE=2024-12-14T03:28:03Z",
			"GIT_COMMITTER_NAME=t", "GIT_COMMITTER_EMAIL=t@example.com", "GIT_COMMITTER_DATE=2024-12-14T03:28:03Z")
		out, err := cmd.CombinedOutput()
		require.NoError(t, err, "git %v: %s", args, out)
		return strings.TrimSpace(string(out))
	}
	run("init", "--quiet", "--initial-branch=master")
	require.NoError(t, os.WriteFile(filepath.Join(dir, "go.mod"), []byte(gomod), 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "istio.deps"), []byte(deps), 0o644))
	run("add", "go.mod", "istio.deps")
	run("commit", "--quiet", "-m", "release")
	commit := run("rev-parse", "HEAD")
	run("tag", "-a", "-m", "release "+tag, tag)
	// A later commit, so that the tag is not simply HEAD.
	require.NoError(t, os.WriteFile(filepath.Join(dir, "README.md"), []byte("next\n"), 0o644))
	run("add", "README.md")
	run("commit", "--quiet", "-m", "next")
	return "file://" + dir, commit
}

func istioDeps(sha string) string {
	return `[
  {"_comment": "", "name": "PROXY_REPO_SHA", "repoName": "proxy", "file": "", "lastStableSHA": "` + sha + `"},
  {"_comment": "", "name": "ZTUNNEL_REPO_SHA", "repoName": "ztunnel", "file": "", "lastStableSHA": "fedcba9876543210fedcba9876543210fedcba98"}
]
`
}

func TestNew(t *testing.T) {
	url, commit := gitRepo(t, "1.99.0", "module istio.io/istio\n\ngo 1.22.0\n\ntoolchain go1.23.4 // pinned\n\nrequire x v1.0.0\n", istioDeps(testProxySHA))

	r, err := New(context.Background(), NewOptions{
		GitURL:   "https://github.com/istio/istio.git",
		FetchURL: url,
		Tag:      "1.99.0",
		Registry: "registry.internal:5000",
	})
	require.NoError(t, err)
	assert.Equal(t, "istio@1.99.0", r.ID())
	assert.Equal(t, Source{Git: "https://github.com/istio/istio.git", Tag: "1.99.0", Commit: commit}, r.Spec.Source)
	assert.Equal(t, Toolchain{Builder: "registry.internal:5000/builder/go1.23.4:1", Go: "1.23.4"}, r.Spec.Toolchain)
	assert.Equal(t, "1.99.0", r.Spec.Make.Variables["VERSION"])
	assert.Equal(t, "0", r.Spec.Make.Variables["BUILD_WITH_CONTAINER"])
	assert.Equal(t, &Envoy{
		URL:         "https://artifacts.sailmaker.internal/istio/envoy/envoy-alpha-" + testProxySHA + ".tar.gz",
		ProxySHA:    testProxySHA,
		Binary:      "usr/local/bin/envoy",
		Unconfirmed: true,
		Arch: map[string]EnvoyArch{"arm64": {
			URL: "https://artifacts.sailmaker.internal/istio/envoy/envoy-alpha-" + testProxySHA + "-arm64.tar.gz", Unconfirmed: true}},
	}, r.Spec.Inputs.Envoy)
	assert.Equal(t, []string{"linux/amd64", "linux/arm64"}, r.Spec.Platforms, "the template's platforms, with the mirror's arm64 tarball")
	require.Len(t, r.Spec.Images, 4)
	assert.Equal(t, "1.99.0", r.Spec.Images[1].Tag)
	assert.Equal(t, testProxySHA, r.Spec.Images[1].Env["ISTIO_META_ISTIO_PROXY_SHA"])
	assert.Equal(t, "registry.internal:5000/base/bookworm:2", r.Spec.Images[1].Base)

	w := strings.Join(r.Warnings(), "\n")
	assert.Contains(t, w, "spec.inputs.envoy.unconfirmed: ")
	assert.Contains(t, w, "spec.toolchain.go: 1.23.4 was taken from go.mod's toolchain line")
	assert.NotContains(t, w, "new recipe", "no intermediate file name")

	// What Marshal writes parses back to the same recipe.
	data, err := Marshal(r)
	require.NoError(t, err)
	assert.Contains(t, string(data), "builder: ${REGISTRY}/builder/go1.23.4:1")
	assert.Contains(t, string(data), "# TO CONFIRM: spec.toolchain.go: ")
	back, err := Parse("istio-1.99.0.yaml", data, WithRegistry("registry.internal:5000"))
	require.NoError(t, err)
	assert.Equal(t, r.Digest(), back.Digest())

	// With the Envoy sha256.
	sum := strings.Repeat("5a", 32)
	r, err = New(context.Background(), NewOptions{GitURL: url, Tag: "1.99.0", EnvoySHA256: sum,
		EnvoyURL: "file:///srv/envoy/envoy-${PROXY_REPO_SHA}.tgz"})
	require.NoError(t, err)
	assert.Equal(t, url, r.Spec.Source.Git)
	assert.Equal(t, sum, r.Spec.Inputs.Envoy.SHA256)
	assert.False(t, r.Spec.Inputs.Envoy.Unconfirmed)
	assert.Equal(t, "file:///srv/envoy/envoy-"+testProxySHA+".tgz", r.Spec.Inputs.Envoy.URL)
	assert.Equal(t, "127.0.0.1:5000/builder/go1.23.4:1", r.Spec.Toolchain.Builder)
	assert.NotContains(t, strings.Join(r.Warnings(), "\n"), "unconfirmed")
	// That URL names no architecture: only linux/amd64 is built, and the
	// warnings say why.
	assert.Equal(t, []string{"linux/amd64"}, r.Spec.PlatformList())
	assert.Nil(t, r.Spec.Inputs.Envoy.Arch)
	assert.Contains(t, strings.Join(r.Warnings(), "\n"), "spec.platforms: linux/arm64 left out: the Envoy URL")

	// A URL with ${TARGET_ARCH} serves every platform; arm64's sha256 given.
	armSum := strings.Repeat("a7", 32)
	r, err = New(context.Background(), NewOptions{GitURL: url, Tag: "1.99.0", EnvoySHA256: sum,
		EnvoyURL: "https://mirror.internal/envoy/${TARGET_ARCH}/envoy-${PROXY_REPO_SHA}.tgz", EnvoyArch: map[string]EnvoyArch{"arm64": {SHA256: armSum}}})
	require.NoError(t, err)
	assert.Equal(t, []string{"linux/amd64", "linux/arm64"}, r.Spec.PlatformList())
	arm, ok := r.Spec.Inputs.Envoy.For("arm64")
	require.True(t, ok)
	assert.Equal(t, EnvoyArtifact{Arch: "arm64", URL: "https://mirror.internal/envoy/arm64/envoy-" + testProxySHA + ".tgz", SHA256: armSum}, arm)
	assert.NotContains(t, strings.Join(r.Warnings(), "\n"), "unconfirmed")
}

func TestNewGoLine(t *testing.T) {
	url, _ := gitRepo(t, "1.24.2", "module istio.io/istio\n\ngo 1.22\n", istioDeps(testProxySHA))
	r, err := New(context.Background(), NewOptions{GitURL: url, Tag: "1.24.2"})
	require.NoError(t, err)
	assert.Equal(t, "1.22.0", r.Spec.Toolchain.Go)
	assert.Equal(t, "127.0.0.1:5000/builder/go1.22.0:1", r.Spec.Toolchain.Builder)
	assert.Contains(t, strings.Join(r.Warnings(), "\n"), "go.mod's go line")
}

func TestNewErrors(t *testing.T) {
	url, _ := gitRepo(t, "1.99.0", "module istio.io/istio\n\ngo 1.22.0\n", `[{"name": "ZTUNNEL_REPO_SHA", "lastStableSHA": "`+testProxySHA+`"}]`)
	ctx := context.Background()
	for _, tc := range []struct {
		name string
		opts NewOptions
		msg  string
	}{
		{"missing tag", NewOptions{GitURL: url, Tag: "1.0.0"}, "fetching tag 1.0.0 from " + url},
		{"no PROXY_REPO_SHA", NewOptions{GitURL: url, Tag: "1.99.0"}, "istio.deps at 1.99.0: no PROXY_REPO_SHA entry"},
		{"bad tag", NewOptions{GitURL: url, Tag: "--upload-pack=x"}, `must not start with "-"`},
		{"bad URL", NewOptions{GitURL: "-oProxyCommand=x", Tag: "1.99.0"}, "git URL"},
		{"bad fetch URL", NewOptions{GitURL: url, FetchURL: "/srv/x", Tag: "1.99.0"}, "fetch URL"},
		{"bad sha256", NewOptions{GitURL: url, Tag: "1.99.0", EnvoySHA256: "abc"}, "Envoy sha256"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := New(ctx, tc.opts)
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.msg)
		})
	}

	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	_, err := New(cancelled, NewOptions{GitURL: url, Tag: "1.99.0"})
	assert.Error(t, err)
}

func TestGoVersion(t *testing.T) {
	for _, tc := range []struct {
		gomod, version, line, err string
	}{
		{"module x\ngo 1.22.0\n", "1.22.0", "go", ""},
		{"module x\ngo 1.22\n", "1.22.0", "go", ""},
		{"module x\ngo 1.20\n", "1.20", "go", ""},
		{"module x\ngo 1.22.0\ntoolchain go1.23.4\n", "1.23.4", "toolchain", ""},
		{"module x\ngo 1.22.0\ntoolchain default\n", "1.22.0", "go", ""},
		{"module x\ngo 1.21rc2\n", "1.21rc2", "go", ""},
		{"module x // go 1.30\n\tgo   1.23.1   // comment\n", "1.23.1", "go", ""},
		{"module x\n", "", "", "no go line"},
		{"module x\ngo banana\n", "", "", "not a Go version"},
	} {
		v, l, err := goVersion([]byte(tc.gomod))
		if tc.err != "" {
			assert.ErrorContains(t, err, tc.err, tc.gomod)
			continue
		}
		require.NoError(t, err, tc.gomod)
		assert.Equal(t, tc.version, v, tc.gomod)
		assert.Equal(t, tc.line, l, tc.gomod)
	}
}

func TestProxyRepoSHA(t *testing.T) {
	sha, err := proxyRepoSHA([]byte(istioDeps(testProxySHA)))
	require.NoError(t, err)
	assert.Equal(t, testProxySHA, sha)
	_, err = proxyRepoSHA([]byte(istioDeps("1ED7")))
	assert.ErrorContains(t, err, "not 40 lowercase hex")
	_, err = proxyRepoSHA([]byte("{"))
	assert.ErrorContains(t, err, "decoding")
}
