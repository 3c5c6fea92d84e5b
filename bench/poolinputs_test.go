package bench

import (
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sailmaker/sailmaker/recipes"
)

// The throughput service's recipes take a file:// Envoy over loopback
// HTTP, which only serves the folder the URL names, and the policy allows
// the recipe's git URL and that server.
func TestServiceInputsServeFileEnvoyOverHTTP(t *testing.T) {
	dir := t.TempDir()
	arts := filepath.Join(dir, "artifacts")
	require.NoError(t, os.MkdirAll(filepath.Join(arts, "arm64"), 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(arts, "envoy-amd64.tar.gz"), []byte("amd64 tarball"), 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(arts, "arm64", "envoy.tar.gz"), []byte("arm64 tarball"), 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "secret"), []byte("not for the service"), 0o644))

	var r recipes.Recipe
	r.Spec.Source.Git = "file://" + filepath.Join(dir, "upstream")
	r.Spec.Inputs.Envoy = &recipes.Envoy{URL: "file://" + arts + "/envoy-${TARGET_ARCH}.tar.gz",
		Arch: map[string]recipes.EnvoyArch{"arm64": {URL: "file://" + arts + "/arm64/envoy.tar.gz"}}}
	si, err := newServiceInputs(&r)
	require.NoError(t, err)
	defer si.close()
	si.apply(&r)

	assert.Equal(t, []string{"file://" + filepath.Join(dir, "upstream")}, si.policy.Git)
	require.Len(t, si.policy.Artifacts, 1)
	base := strings.TrimSuffix(si.policy.Artifacts[0], "/")
	assert.Equal(t, base+arts+"/envoy-${TARGET_ARCH}.tar.gz", r.Spec.Inputs.Envoy.URL)
	get := func(u string) (int, string) {
		resp, err := http.Get(u)
		require.NoError(t, err)
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	code, body := get(strings.ReplaceAll(r.Spec.Inputs.Envoy.URL, "${TARGET_ARCH}", "amd64"))
	assert.Equal(t, http.StatusOK, code)
	assert.Equal(t, "amd64 tarball", body)
	code, body = get(r.Spec.Inputs.Envoy.Arch["arm64"].URL)
	assert.Equal(t, http.StatusOK, code)
	assert.Equal(t, "arm64 tarball", body)
	for _, p := range []string{dir + "/secret", arts + "/../secret", "/etc/passwd"} {
		code, _ = get(base + p)
		assert.Equal(t, http.StatusNotFound, code, p)
	}
	for _, raw := range []string{r.Spec.Inputs.Envoy.URL, r.Spec.Inputs.Envoy.Arch["arm64"].URL} {
		assert.NoError(t, si.policy.CheckArtifact(strings.ReplaceAll(raw, "${TARGET_ARCH}", "amd64")))
	}
	assert.NoError(t, si.policy.CheckGit(r.Spec.Source.Git))
}
