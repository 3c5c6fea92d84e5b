package builder_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/crane"
	"github.com/moby/buildkit/client"
	"github.com/moby/buildkit/client/llb"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sailmaker/sailmaker/builder"
	"github.com/sailmaker/sailmaker/internal/fixture"
	"github.com/sailmaker/sailmaker/internal/testenv"
	"github.com/sailmaker/sailmaker/recipes"
	"github.com/sailmaker/sailmaker/registry"
)

// lockedBuffer is a bytes.Buffer a process writes to while the test reads.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// The recipe's builder image is in an internal registry behind basic auth
// (Debian's docker-registry with an htpasswd file). With the account in
// the docker config that DOCKER_CONFIG names, as `crane auth login` writes
// it, sailmaker resolves the image and buildkitd pulls it, asking
// sailmaker's session for the credentials: the registry logs buildkitd's
// authenticated pulls. Without them, the build fails before any work with
// one line that names the registry and DOCKER_CONFIG; so does a solve in
// which buildkitd itself is refused. The password is in no error, log or
// attestation.
func TestBuildPullsBuilderImageWithDockerConfigCredentials(t *testing.T) {
	const user, password = "sailmaker-ci", "pull-Pa55-7f3c9e1d"
	var regLog lockedBuffer
	authReg := testenv.DistributionWith(t, testenv.DistributionOptions{User: user, Password: password, Log: &regLog})
	e := testenv.Start(t, authReg)
	e.Config.Registry.Allow = append(e.Config.Registry.Allow, authReg)
	bases := e.Bases(t)
	ctx := context.Background()

	repo := fixture.Upstream(t, fixture.UpstreamOptions{Tag: "1.0.0"})
	envoy, envoySHA := fixture.EnvoyTarball(t, repo.ProxySHA)
	srv := fixture.ServeArtifacts(t, map[string][]byte{"/envoy/" + fixture.EnvoyTarballName(repo.ProxySHA): envoy})
	file := fixture.WriteRecipe(t, repo, srv.URL+"/envoy/", envoySHA, e.Config.Registry.Address)
	r, err := recipes.Load(file, recipes.WithRegistry(e.Config.Registry.Address))
	require.NoError(t, err)

	// The recipe's builder image, copied into the registry behind auth,
	// and the recipe pointed at it there.
	embedded, err := e.Registry.ParseRef(r.Spec.Toolchain.Builder)
	require.NoError(t, err)
	builderRepo := embedded.Context().RepositoryStr()
	builderSrc, ok := bases[builderRepo]
	require.True(t, ok, "the embedded bases have the builder image %s", embedded)
	authTag := authReg + "/" + builderRepo + ":" + builderSrc.Tag.TagStr()
	require.NoError(t, crane.Copy(builderSrc.Tag.String(), authTag, crane.Insecure,
		crane.WithAuth(&authn.Basic{Username: user, Password: password})))
	_, err = crane.Digest(authTag, crane.Insecure)
	require.Error(t, err, "the registry must refuse anonymous reads")
	text, err := os.ReadFile(file)
	require.NoError(t, err)
	require.Contains(t, string(text), embedded.String())
	require.NoError(t, os.WriteFile(file, []byte(strings.ReplaceAll(string(text), embedded.String(), authTag)), 0o644))
	r, err = recipes.Load(file, recipes.WithRegistry(e.Config.Registry.Address), recipes.WithAllowedRegistries(e.Config.AllowedRegistries()))
	require.NoError(t, err)
	require.Equal(t, authTag, r.Spec.Toolchain.Builder)

	var progress lockedBuffer
	b, err := builder.New(e.Config, e.Registry, builder.WithProgress(builder.Progress{Out: &progress, Mode: "plain"}))
	require.NoError(t, err)

	checkRefusal := func(t *testing.T, err error) {
		t.Helper()
		require.Error(t, err)
		var aerr *registry.AuthError
		require.True(t, errors.As(err, &aerr), "a registry refusal: %v", err)
		assert.Equal(t, authReg, aerr.Registry)
		msg := err.Error()
		assert.NotContains(t, msg, "\n", "one line")
		assert.Contains(t, msg, "the registry "+authReg+" needs credentials")
		assert.Contains(t, msg, "$DOCKER_CONFIG")
		assert.Contains(t, msg, "config.json")
		assert.NotContains(t, msg, password)
	}

	// No credentials: an empty docker config directory.
	t.Setenv("DOCKER_CONFIG", t.TempDir())
	_, err = b.Build(ctx, r, builder.Request{})
	checkRefusal(t, err)
	assert.Contains(t, err.Error(), "resolving "+authTag, "says what was being read")

	// buildkitd itself refused: a solve that pulls the builder image by
	// digest, with no credentials in the session's docker config.
	bk, err := builder.Connect(ctx, e.Config)
	require.NoError(t, err)
	defer bk.Close()
	byDigest := authReg + "/" + builderRepo + "@" + builderSrc.Digest.String()
	err = builder.Solve(ctx, bk, llb.Image(byDigest).Run(llb.Args([]string{"true"})).Root(), client.SolveOpt{}, builder.Progress{})
	checkRefusal(t, err)
	assert.Contains(t, err.Error(), "/v2/"+builderRepo+"/manifests/", "BuildKit's own error names the image")
	assert.Zero(t, buildKitPulls(regLog.String(), builderRepo), "no authenticated pull by buildkitd yet")

	// The credentials in the docker config, as `crane auth login` writes them.
	withCreds := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(withCreds, "config.json"),
		fmt.Appendf(nil, `{"auths": {%q: {"username": %q, "password": %q}}}`, authReg, user, password), 0o600))
	t.Setenv("DOCKER_CONFIG", withCreds)
	res, err := b.Build(ctx, r, builder.Request{})
	require.NoError(t, err)
	defer res.Close()
	require.NotEmpty(t, res.Images)

	// buildkitd pulled the builder image from the registry behind auth,
	// authenticated as the account: the registry's log has its manifest GET.
	assert.Positive(t, buildKitPulls(regLog.String(), builderRepo), "buildkitd's authenticated manifest GET in the registry log:\n%s", regLog.String())

	// The provenance names the builder image in the registry behind auth;
	// the password is nowhere.
	prov := false
	for _, im := range res.Images {
		for _, a := range im.Attestations {
			assert.NotContains(t, string(a.Statement), password)
			if bytes.Contains(a.Statement, []byte(authTag)) && bytes.Contains(a.Statement, []byte(builderSrc.Digest.Hex)) {
				prov = true
			}
		}
	}
	assert.True(t, prov, "a provenance names %s by digest", authTag)
	assert.NotContains(t, progress.String(), password)
}

// buildKitPulls counts the registry log's successful manifest GETs of repo
// by buildkitd. The registry answers every request without valid
// credentials with 401 (the test checks an anonymous read is refused), so
// each one was authenticated.
func buildKitPulls(log, repo string) int {
	n := 0
	for _, line := range strings.Split(log, "\n") {
		if strings.Contains(line, `msg="response completed"`) && strings.Contains(line, "http.request.method=GET") &&
			strings.Contains(line, "/v2/"+repo+"/manifests/") && strings.Contains(line, "http.request.useragent=buildkit/") &&
			strings.Contains(line, "http.response.status=200") {
			n++
		}
	}
	return n
}
