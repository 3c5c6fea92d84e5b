package config

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestInputPolicy(t *testing.T) {
	s := ServerConfig{Webhook: WebhookConfig{Repos: []string{"https://github.com/istio/istio.git"}, EnvoyURL: "https://mirror.internal/envoy/envoy-${PROXY_REPO_SHA}.tar.gz"}}
	p := s.Policy()
	assert.NoError(t, p.CheckGit("https://github.com/istio/istio.git"), "the webhook's repository")
	assert.NoError(t, p.CheckGit("https://github.com/istio/proxy.git"), "the default prefix")
	assert.ErrorContains(t, p.CheckGit("file:///srv/private.git"), "is not a source the service builds from")
	assert.ErrorContains(t, p.CheckGit("https://github.com/istio-evil/x.git"), "not a source")
	assert.NoError(t, p.CheckArtifact("https://mirror.internal/envoy/envoy-1.tar.gz"), "the webhook's mirror")
	assert.ErrorContains(t, p.CheckArtifact("http://mirror.internal/envoy/envoy-1.tar.gz"), "not a source", "another scheme")
	assert.ErrorContains(t, p.CheckArtifact("https://mirror.internal.evil.example/x"), "not a source")
	assert.ErrorContains(t, p.CheckArtifact("https://user@mirror.internal/x"), "not a source")
	assert.ErrorContains(t, p.CheckArtifact("file:///etc/shadow"), "never reads files of its own host")

	s.Inputs = InputPolicy{Git: []string{"https://git.internal/"}, Artifacts: []string{"https://artifacts.internal/istio/"}}
	p = s.Policy()
	assert.NoError(t, p.CheckGit("https://git.internal/istio.git"))
	assert.ErrorContains(t, p.CheckGit("https://github.com/istio/proxy.git"), "not a source", "the default is replaced")
	assert.NoError(t, p.CheckArtifact("https://artifacts.internal/istio/envoy.tar.gz"))
	assert.ErrorContains(t, p.CheckArtifact("https://artifacts.internal/other/envoy.tar.gz"), "not a source", "outside the path")
	assert.NoError(t, p.CheckArtifact("https://mirror.internal/x"), "the webhook's mirror still")

	for _, bad := range []InputPolicy{
		{Artifacts: []string{"file:///srv/artifacts/"}},
		{Artifacts: []string{"https://artifacts.internal"}},
		{Artifacts: []string{"https://me@artifacts.internal/"}},
		{Git: []string{""}},
	} {
		require.Error(t, bad.validate(), "%+v", bad)
	}
}
