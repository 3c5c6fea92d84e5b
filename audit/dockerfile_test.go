package audit

import (
	"os"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The fixture's Dockerfiles, shaped like upstream's, read with BuildKit's
// parser: the stage BASE_DISTRIBUTION picks, ARG defaults, TARGETARCH
// from the platform, ENV from a build argument.
func TestParseDockerfileFixture(t *testing.T) {
	proxy, err := os.ReadFile("../testdata/upstream/pilot/docker/Dockerfile.proxyv2")
	require.NoError(t, err)
	d, err := ParseDockerfile(proxy, map[string]string{"BASE_DISTRIBUTION": "distroless", "proxy_version": "abc123"}, "linux/arm64/v8")
	require.NoError(t, err)
	assert.Equal(t, "registry.fixture.invalid/istio-release/iptables:latest", d.Base)
	assert.Equal(t, []string{"distroless", "stage 2"}, d.Stages)
	assert.Nil(t, d.User, "proxyv2 sets no USER")
	require.NotNil(t, d.Workdir)
	assert.Equal(t, "/", *d.Workdir)
	assert.Equal(t, map[string]string{"ISTIO_META_ISTIO_PROXY_SHA": "abc123"}, d.Env)
	assert.Equal(t, []string{"/usr/local/bin/pilot-agent"}, d.Entrypoint)
	assert.True(t, d.EntrypointSet)
	assert.False(t, d.CmdSet)
	assert.Equal(t, map[string]DockerfileFile{
		"/var/lib/istio/envoy/envoy_bootstrap_tmpl.json": {Source: "envoy_bootstrap.json", Line: 25},
		"/usr/local/bin/envoy":                           {Source: "arm64/envoy", Line: 29},
		"/usr/local/bin/pilot-agent":                     {Source: "arm64/pilot-agent", Line: 35},
	}, d.Files)

	pilot, err := os.ReadFile("../testdata/upstream/pilot/docker/Dockerfile.pilot")
	require.NoError(t, err)
	d, err = ParseDockerfile(pilot, nil, "linux/amd64")
	require.NoError(t, err)
	assert.Equal(t, "registry.fixture.invalid/istio-release/base:latest", d.Base, "BASE_DISTRIBUTION defaults to debug")
	require.NotNil(t, d.User)
	assert.Equal(t, "1337:1337", *d.User)
	assert.Nil(t, d.Workdir)
	assert.Equal(t, map[string]DockerfileFile{"/usr/local/bin/pilot-discovery": {Source: "amd64/pilot-discovery", Line: 19}}, d.Files)
}

func TestParseDockerfileForms(t *testing.T) {
	d, err := ParseDockerfile([]byte(`ARG REG=example.invalid
FROM ${REG}/base:1 AS build
ENV A=1
WORKDIR /opt
WORKDIR app
COPY a b ./
COPY c /etc/c.conf
RUN make
FROM build
ARG X=x
ENV B=${A}-${X}
CMD ["serve"]
ENTRYPOINT /bin/run --flag
`), map[string]string{"X": "given"}, "linux/amd64")
	require.NoError(t, err)
	assert.Equal(t, "example.invalid/base:1", d.Base)
	assert.Equal(t, []string{"build", "stage 1"}, d.Stages)
	assert.Equal(t, "/opt/app", *d.Workdir)
	assert.Equal(t, map[string]string{"A": "1", "B": "1-given"}, d.Env)
	assert.Equal(t, []string{"/bin/sh", "-c", "/bin/run --flag"}, d.Entrypoint)
	assert.Equal(t, []string{"serve"}, d.Cmd, "CMD before ENTRYPOINT in the same stage stays")
	assert.Contains(t, d.Files, "/opt/app/a")
	assert.Contains(t, d.Files, "/opt/app/b")
	assert.Contains(t, d.Files, "/etc/c.conf")
	require.Len(t, d.Notes, 1)
	assert.Contains(t, d.Notes[0], "line 8: RUN make")

	_, err = ParseDockerfile([]byte("COPY a b\n"), nil, "linux/amd64")
	assert.ErrorIs(t, err, ErrBadInput)
	_, err = ParseDockerfile([]byte("FROM x\nUSER ${\n"), nil, "linux/amd64")
	assert.ErrorIs(t, err, ErrBadInput)
}
