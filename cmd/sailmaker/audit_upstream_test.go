package main

import (
	"archive/tar"
	"bytes"
	"encoding/json"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sailmaker/sailmaker/audit"
	"github.com/sailmaker/sailmaker/builder"
	"github.com/sailmaker/sailmaker/internal/fixture"
	"github.com/sailmaker/sailmaker/internal/testenv"
)

// pushLaidOut pushes an image laid out on base as sailmaker lays one out:
// files in one layer over the base's, the config's user, workdir,
// entrypoint and env, and the base named by annotations.
func pushLaidOut(t *testing.T, e *testenv.Env, ref string, base v1.Image, baseRef string, files []string, set func(*v1.Config)) {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, f := range files {
		require.NoError(t, tw.WriteHeader(&tar.Header{Name: f[1:], Mode: 0o755, Size: 2, Typeflag: tar.TypeReg}))
		_, err := tw.Write([]byte("x\n"))
		require.NoError(t, err)
	}
	require.NoError(t, tw.Close())
	l, err := tarball.LayerFromReader(bytes.NewReader(buf.Bytes()))
	require.NoError(t, err)
	img, err := mutate.AppendLayers(base, l)
	require.NoError(t, err)
	cf, err := img.ConfigFile()
	require.NoError(t, err)
	cf = cf.DeepCopy()
	set(&cf.Config)
	img, err = mutate.ConfigFile(img, cf)
	require.NoError(t, err)
	bd, err := base.Digest()
	require.NoError(t, err)
	img = mutate.Annotations(img, map[string]string{builder.AnnotationBaseName: baseRef, builder.AnnotationBaseDigest: bd.String()}).(v1.Image)
	tag, err := name.NewTag(ref, name.Insecure)
	require.NoError(t, err)
	require.NoError(t, remote.Write(tag, img))
}

// `audit diff upstream` compares an image with one of the fixture's
// Dockerfiles item by item; a difference fails it unless allowed, a
// missing Dockerfile or a bad build argument is refused before the
// registry is asked.
func TestAuditDiffUpstream(t *testing.T) {
	e := testenv.Registry(t)
	t.Setenv("SAILMAKER_REGISTRY", e.Config.Registry.Address)
	t.Setenv("SAILMAKER_SIGNING_PUB", "")
	t.Setenv("SAILMAKER_SIGNING_KEY", "")
	state := e.Config.StateDir
	reg := e.Config.Registry.Address

	base, err := random.Image(64, 1)
	require.NoError(t, err)
	cf, err := base.ConfigFile()
	require.NoError(t, err)
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", "amd64"
	cf.Config.User, cf.Config.WorkingDir, cf.Config.Env = "65532", "/home/nonroot", []string{"PATH=/usr/bin"}
	base, err = mutate.ConfigFile(base, cf)
	require.NoError(t, err)
	baseTag, err := name.NewTag(reg+"/base/iptables:1", name.Insecure)
	require.NoError(t, err)
	require.NoError(t, remote.Write(baseTag, base))

	// proxyv2-distroless as the recipe lays it out, and one with a USER of
	// its own and without Envoy.
	files := []string{"/var/lib/istio/envoy/envoy_bootstrap_tmpl.json", "/usr/local/bin/envoy", "/usr/local/bin/pilot-agent"}
	good := func(c *v1.Config) {
		c.WorkingDir, c.Entrypoint = "/", []string{"/usr/local/bin/pilot-agent"}
		c.Env = append(c.Env, "ISTIO_META_ISTIO_PROXY_SHA=abc123")
		c.Labels = map[string]string{builder.LabelProxySHA: "abc123"}
	}
	pushLaidOut(t, e, reg+"/fixture/proxyv2:1.0.0-distroless", base, baseTag.String(), files, good)
	pushLaidOut(t, e, reg+"/fixture/proxyv2:bad-distroless", base, baseTag.String(), files[:1], func(c *v1.Config) { good(c); c.User = "1337" })
	dockerfile := fixture.Testdata(t, "upstream/pilot/docker/Dockerfile.proxyv2")

	out, stderr, err := runCLI(t, state, "audit", "diff", "upstream", "fixture/proxyv2:1.0.0-distroless", "--dockerfile", dockerfile, "-o", "json")
	require.Error(t, err, "the base differs: %s", stderr)
	assert.Contains(t, err.Error(), "1 items differ")
	var d audit.UpstreamDiff
	require.NoError(t, json.Unmarshal([]byte(out), &d), out)
	status := map[string]string{}
	for _, it := range d.Items {
		status[it.Item] = it.Status
	}
	assert.Equal(t, map[string]string{
		"base": "differs", "user": "same", "workdir": "same", "entrypoint": "same", "cmd": "same",
		"env:ISTIO_META_ISTIO_PROXY_SHA": "same",
		"file:/usr/local/bin/envoy":      "same", "file:/usr/local/bin/pilot-agent": "same",
		"file:/var/lib/istio/envoy/envoy_bootstrap_tmpl.json": "same",
	}, status)
	assert.Equal(t, "distroless", d.BuildArgs["BASE_DISTRIBUTION"], "from the tag")
	assert.Equal(t, "abc123", d.BuildArgs["proxy_version"], "from the image's label")

	out, stderr, err = runCLI(t, state, "audit", "diff", "upstream", "fixture/proxyv2:1.0.0-distroless", "--dockerfile", dockerfile, "--deliberate")
	require.NoError(t, err, stderr)
	assert.Contains(t, out, "allowed")
	assert.Contains(t, stderr, "base is allowed to differ: upstream's base images")

	_, _, err = runCLI(t, state, "audit", "diff", "upstream", "fixture/proxyv2:bad-distroless", "--dockerfile", dockerfile, "--deliberate")
	require.Error(t, err)
	assert.Contains(t, err.Error(), "3 items differ", "the user and two missing files")
	out, _, _ = runCLI(t, state, "audit", "diff", "upstream", "fixture/proxyv2:bad-distroless", "--dockerfile", dockerfile, "--allow", "base", "--allow", "file:/usr/local/bin/*", "-o", "csv")
	assert.Contains(t, out, "user,differs,(the base's) 65532,1337")

	// Refused before any work.
	t.Setenv("SAILMAKER_REGISTRY", "127.0.0.1:1")
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"fixture/proxyv2:1.0.0"}, "--dockerfile FILE or --source-path PATH"},
		{[]string{"fixture/proxyv2:1.0.0", "--dockerfile", "x", "--source-path", "y"}, "one of them"},
		{[]string{"fixture/proxyv2:1.0.0", "--dockerfile", dockerfile, "--build-arg", "novalue"}, `--build-arg "novalue": want NAME=VALUE`},
	} {
		_, _, err := runCLI(t, state, append([]string{"audit", "diff", "upstream"}, c.args...)...)
		require.Error(t, err, "%v", c.args)
		assert.Contains(t, err.Error(), c.want)
		assert.NotContains(t, err.Error(), "127.0.0.1:1")
	}
}
