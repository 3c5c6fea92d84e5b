package service_test

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	sapi "github.com/sailmaker/sailmaker/api"
	"github.com/sailmaker/sailmaker/aptrepo"
	"github.com/sailmaker/sailmaker/aptrepo/apttest"
	"github.com/sailmaker/sailmaker/internal/fixture"
	"github.com/sailmaker/sailmaker/service"
)

// aptKey writes a new OpenPGP key for the service's apt repository into
// dir and returns the secret key's path and the key.
func aptKey(t *testing.T, dir string) (string, *aptrepo.Key) {
	t.Helper()
	k, err := aptrepo.GenerateKey("sailmaker test", "test@example.org", time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC))
	require.NoError(t, err)
	p := filepath.Join(dir, "sailmaker-apt.asc")
	require.NoError(t, os.WriteFile(p, k.Private, 0o600))
	return p, k
}

// published are a build's results at one output.
func published(b *service.Build, output string) []sapi.Image {
	var out []sapi.Image
	for _, im := range b.Images {
		if im.Output == output {
			out = append(out, im)
		}
	}
	return out
}

func packageNamed(t *testing.T, imgs []sapi.Image, name string) sapi.Image {
	t.Helper()
	for _, im := range imgs {
		if im.Package != nil && im.Package.Name == name {
			return im
		}
	}
	t.Fatalf("no package %s among %+v", name, imgs)
	return sapi.Image{}
}

// webhookSecondRelease is the operator's path for packages, on a running
// service: upstream tags a second release (1.1.0), CI's webhook queues it,
// the build makes its images and a new istioctl-versions holding the old
// istioctl and the new; the real apt-get then installs istio-cni and
// istioctl-versions from the repository the service serves at /apt/
// (signed-by the exported key, no --allow-insecure-repositories), each
// installed istioctl-<v> prints its own version, and a Packages file
// changed after signing makes apt-get update fail.
func webhookSecondRelease(t *testing.T, a api, auditor, secret, state string, repo *fixture.Repo, key *aptrepo.Key, first *service.Build) {
	t.Helper()
	// The first release's istioctl-versions holds it alone.
	v1 := packageNamed(t, published(first, "registry"), "istioctl-versions")
	assert.Equal(t, []string{"1.0.0"}, v1.Package.Holds)

	repo.Git(t, "tag", "--annotate", "--no-sign", "-m", "fixture release 1.1.0", "1.1.0", repo.Commit)
	hook, err := json.Marshal(map[string]string{"repo": repo.URL, "tag": "1.1.0"})
	require.NoError(t, err)
	status, body := a.do("POST", "/v1/hooks/upstream-tag", "", hook, service.SignatureHeader, service.Sign(secret, hook), service.SailmakerDeliveryHeader, "del-2")
	require.Equal(t, http.StatusAccepted, status, string(body))
	var hr service.WebhookResponse
	require.NoError(t, json.Unmarshal(body, &hr))
	assert.Equal(t, "istio@1.1.0", hr.Recipe)
	b := a.waitFor(hr.Build.ID, auditor, 10*time.Minute, "success", func(b *service.Build) bool { return b.State.Final() })
	require.Equal(t, service.StateSucceeded, b.State, b.Error)

	reg := published(b, "registry")
	var images []string
	for _, im := range reg {
		if im.Package == nil {
			images = append(images, im.Repository[strings.Index(im.Repository, "/")+1:]+":"+im.Tag)
		}
	}
	assert.ElementsMatch(t, []string{"istio/pilot:1.1.0", "istio/proxyv2:1.1.0", "istio/pilot:1.1.0-distroless", "istio/proxyv2:1.1.0-distroless"}, images,
		"the template's images, with the distroless flavour")
	ctl := packageNamed(t, reg, "istioctl")
	assert.Equal(t, sapi.KindBinary, ctl.Kind)
	assert.Equal(t, "1.1.0", ctl.Tag)
	v2 := packageNamed(t, reg, "istioctl-versions")
	assert.Equal(t, sapi.StatusPushed, v2.Status)
	assert.Equal(t, []string{"1.1.0", "1.0.0"}, v2.Package.Holds, "a new release adds a version and keeps the old")
	assert.Equal(t, "1.1.0+2.2001000", v2.Package.Version)
	assert.Equal(t, "1.1.0_2.2001000", v2.Tag)
	assert.NotEqual(t, v1.Digest, v2.Digest)
	apt := published(b, "apt:"+filepath.Join(state, "apt"))
	assert.Equal(t, "pool/main/i/istioctl-versions/istioctl-versions_1.1.0+2.2001000_amd64.deb", packageNamed(t, apt, "istioctl-versions").Reference)

	// The repository is served to anyone, read-only.
	status, _ = a.do("GET", "/apt/dists/stable/InRelease", "", nil)
	assert.Equal(t, http.StatusOK, status, "no token needed")
	status, _ = a.do("POST", "/apt/dists/stable/InRelease", "", nil)
	assert.Equal(t, http.StatusMethodNotAllowed, status)
	status, _ = a.do("GET", "/apt/.lock", "", nil)
	assert.Equal(t, http.StatusNotFound, status)

	root := apttest.NewRoot(t)
	keyring := root.Path("/etc/apt/keyrings/sailmaker-apt.gpg")
	require.NoError(t, os.WriteFile(keyring, key.PublicKeyring, 0o644))
	root.SetSources(t, fmt.Sprintf("[signed-by=%s] %s/apt/ stable main", keyring, a.url))
	root.PretendInstalled(t, "iptables", "1.8.9-2")
	out, err := root.AptGet("update")
	require.NoError(t, err, out)
	assert.NotContains(t, out, "W:", out)
	out, err = root.AptGet("install", "-y", "istio-cni", "istioctl-versions")
	require.NoError(t, err, out)
	assert.Contains(t, out, "Setting up istioctl-versions (1.1.0+2.2001000)")
	assert.Contains(t, out, "Setting up istio-cni (1.1.0-1)")
	for _, v := range []string{"1.0.0", "1.1.0"} {
		cmd := root.Path("/usr/bin/istioctl-" + strings.ReplaceAll(v, ".", ""))
		got, err := exec.Command(cmd, "version", "--remote=false").CombinedOutput()
		require.NoError(t, err, "%s", got)
		assert.Equal(t, "client version: "+v+"\n", string(got))
	}
	plugin, err := exec.Command(root.Path("/opt/cni/bin/istio-cni")).CombinedOutput()
	require.NoError(t, err, "%s", plugin)
	assert.Contains(t, string(plugin), "istio-cni 1.1.0 ")

	// A Packages file changed after signing: apt-get update fails.
	dir := filepath.Join(state, "apt", "dists", "stable", "main", "binary-amd64")
	for _, f := range []string{"Packages", "Packages.gz"} {
		p := filepath.Join(dir, f)
		data, err := os.ReadFile(p)
		require.NoError(t, err)
		if f == "Packages.gz" {
			zr, err := gzip.NewReader(bytes.NewReader(data))
			require.NoError(t, err)
			plain, err := io.ReadAll(zr)
			require.NoError(t, err)
			var buf bytes.Buffer
			zw := gzip.NewWriter(&buf)
			_, _ = zw.Write(bytes.Replace(plain, []byte("Version: 1.1.0-1"), []byte("Version: 1.1.0-9"), 1))
			require.NoError(t, zw.Close())
			data = buf.Bytes()
		} else {
			data = bytes.Replace(data, []byte("Version: 1.1.0-1"), []byte("Version: 1.1.0-9"), 1)
		}
		require.NoError(t, os.WriteFile(p, data, 0o644))
	}
	root.ForgetLists(t)
	out, err = root.AptGet("update")
	assert.Error(t, err, out)
	assert.Contains(t, out, "binary-amd64/Packages")
}
