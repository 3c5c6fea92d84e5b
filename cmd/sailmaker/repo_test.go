package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sailmaker/sailmaker/aptrepo"
	"github.com/sailmaker/sailmaker/aptrepo/apttest"
	"github.com/sailmaker/sailmaker/internal/fakeistio"
	"github.com/sailmaker/sailmaker/packaging/deb"
	"github.com/sailmaker/sailmaker/packaging/istio"
)

func TestSigningKeygenOpenPGP(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "keys")
	out, _, err := runRecipesCmd(t, "", "signing", "keygen", "--openpgp", "--out", dir, "--email", "apt@example.org")
	require.NoError(t, err)
	assert.Contains(t, out, "sailmaker-apt.asc")
	assert.Contains(t, out, "SAILMAKER_APT_KEY=")

	for file, mode := range map[string]os.FileMode{"sailmaker-apt.asc": 0o600, "sailmaker-apt.pub.asc": 0o644, "sailmaker-apt.gpg": 0o644} {
		fi, err := os.Stat(filepath.Join(dir, file))
		require.NoError(t, err)
		assert.Equal(t, mode, fi.Mode().Perm(), file)
	}
	signer, err := aptrepo.LoadSigner(filepath.Join(dir, "sailmaker-apt.asc"))
	require.NoError(t, err)
	assert.Contains(t, out, "fingerprint "+signer.Fingerprint())
	pub, ring, err := signer.PublicKey()
	require.NoError(t, err)
	gotPub, err := os.ReadFile(filepath.Join(dir, "sailmaker-apt.pub.asc"))
	require.NoError(t, err)
	gotRing, err := os.ReadFile(filepath.Join(dir, "sailmaker-apt.gpg"))
	require.NoError(t, err)
	assert.Equal(t, pub, gotPub, "the files are one key")
	assert.Equal(t, ring, gotRing)
	// The public files carry no secret.
	_, err = aptrepo.ParseSigner(gotPub)
	assert.ErrorContains(t, err, "is a public key")
	// gpg reads the keyring and sees the user ID.
	list, err := exec.Command("gpg", "--no-default-keyring", "--homedir", t.TempDir(), "--show-keys", filepath.Join(dir, "sailmaker-apt.gpg")).CombinedOutput()
	require.NoError(t, err, "%s", list)
	assert.Contains(t, string(list), "sailmaker apt repository <apt@example.org>")
	assert.Contains(t, string(list), "ed25519")

	_, _, err = runRecipesCmd(t, "", "signing", "keygen", "--openpgp", "--out", dir)
	assert.ErrorContains(t, err, "--force")
	_, _, err = runRecipesCmd(t, "", "signing", "keygen", "--out", dir, "--email", "x@example.org")
	assert.ErrorContains(t, err, "--name and --email are for --openpgp keys")
}

func TestRepoBuildRefusesBadInput(t *testing.T) {
	_, _, err := runRecipesCmd(t, "", "repo", "build", "--out", t.TempDir(), "-o", "xml", "x.deb")
	assert.ErrorContains(t, err, `output format "xml"`)
	_, _, err = runRecipesCmd(t, "", "repo", "build", "--out", t.TempDir(), "x.deb")
	assert.ErrorContains(t, err, "no apt signing key")
	_, _, err = runRecipesCmd(t, "signing:\n  aptKey: /nonexistent/sailmaker-apt.asc\n", "repo", "build", "--out", t.TempDir(), "x.deb")
	assert.ErrorContains(t, err, "reading the apt signing key")
	_, _, err = runRecipesCmd(t, "", "repo", "serve", "--dir", t.TempDir())
	assert.ErrorContains(t, err, "is not an apt repository")
}

// TestPackagesThroughApt is the user's path end to end: istio-cni and the
// istioctl package made from two istioctl releases, a signed repository
// made and served by the CLI, the real apt-get installing from it (signed-by
// the exported keyring, no --allow-insecure-repositories), each installed
// istioctl-<v> reporting its own version; then a third release adds a
// version to the package and an upgrade installs it next to the others.
func TestPackagesThroughApt(t *testing.T) {
	if testing.Short() {
		t.Skip("runs apt-get (make test)")
	}
	ctx := context.Background()
	work := t.TempDir()
	keys := filepath.Join(work, "keys")
	_, _, err := runRecipesCmd(t, "", "signing", "keygen", "--openpgp", "--out", keys)
	require.NoError(t, err)
	t.Setenv("SAILMAKER_APT_KEY", filepath.Join(keys, "sailmaker-apt.asc"))

	commit := time.Unix(1734146883, 0).UTC()
	bins := map[string]istio.Istioctl{}
	for i, v := range []string{"1.0.0", "1.1.0", "1.2.0"} {
		p, err := fakeistio.Build(ctx, filepath.Join(work, "out", v), "istioctl", v, "amd64")
		require.NoError(t, err)
		bins[v] = istio.Istioctl{Version: v, Path: p, Time: commit.AddDate(0, i, 0)}
	}
	plugin, err := fakeistio.Build(ctx, filepath.Join(work, "out", "1.1.0"), "istio-cni", "1.1.0", "amd64")
	require.NoError(t, err)
	const maint = "Sail Maker <sailmaker@example.org>"
	cni, err := istio.CNIPackage(istio.CNI{Version: "1.1.0", Plugin: plugin, Maintainer: maint, Source: istio.Source{Tag: "1.1.0", Time: commit}})
	require.NoError(t, err)
	debs := filepath.Join(work, "debs")
	require.NoError(t, os.MkdirAll(debs, 0o755))
	cniDeb := filepath.Join(debs, cni.FileName())
	require.NoError(t, deb.WriteFile(ctx, cniDeb, *cni))
	ctl, err := istio.IstioctlPackage(ctx, istio.IstioctlSet{Maintainer: maint, Binaries: []istio.Istioctl{bins["1.0.0"], bins["1.1.0"]}})
	require.NoError(t, err)
	ctlDeb := filepath.Join(debs, ctl.Package.FileName())
	require.NoError(t, os.WriteFile(ctlDeb, ctl.Deb, 0o644))

	repo := filepath.Join(work, "repo")
	out, _, err := runRecipesCmd(t, "", "repo", "build", "--out", repo, "-o", "json", cniDeb, ctlDeb)
	require.NoError(t, err)
	var built struct {
		Packages []aptrepo.Package `json:"packages"`
		Suite    string            `json:"suite"`
	}
	require.NoError(t, json.Unmarshal([]byte(out), &built))
	require.Len(t, built.Packages, 2)
	assert.Equal(t, "istio-cni", built.Packages[0].Name)
	assert.Equal(t, "added", built.Packages[0].Status)
	assert.Equal(t, "istioctl-versions", built.Packages[1].Name)
	assert.Equal(t, "1.1.0+2.2001000", built.Packages[1].Version)

	// repo serve, as a user runs it, on a free loopback port.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := l.Addr().String()
	require.NoError(t, l.Close())
	serveCtx, stop := context.WithCancel(ctx)
	served := make(chan error, 1)
	go func() {
		root := newRootCmd()
		root.SetArgs([]string{"repo", "serve", "--dir", repo, "--listen", addr})
		root.SetOut(&bytes.Buffer{})
		root.SetErr(&bytes.Buffer{})
		served <- root.ExecuteContext(serveCtx)
	}()
	t.Cleanup(func() {
		stop()
		assert.NoError(t, <-served)
	})
	require.Eventually(t, func() bool {
		resp, err := http.Get("http://" + addr + "/dists/stable/InRelease")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	}, 10*time.Second, 50*time.Millisecond, "repo serve did not come up")

	root := apttest.NewRoot(t)
	// What README tells the operator: the keyring in /etc/apt/keyrings,
	// named by signed-by.
	keyring := root.Path("/etc/apt/keyrings/sailmaker-apt.gpg")
	ring, err := os.ReadFile(filepath.Join(keys, "sailmaker-apt.gpg"))
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(keyring, ring, 0o644))
	root.SetSources(t, fmt.Sprintf("[signed-by=%s] http://%s/ stable main", keyring, addr))
	root.PretendInstalled(t, "iptables", "1.8.9-2")
	out, err = root.AptGet("update")
	require.NoError(t, err, out)
	out, err = root.AptGet("install", "-y", "istio-cni", "istioctl-versions")
	require.NoError(t, err, out)

	plug, err := exec.Command(root.Path(istio.CNIPluginPath)).CombinedOutput()
	require.NoError(t, err, "%s", plug)
	assert.Contains(t, string(plug), "istio-cni 1.1.0")
	version := func(v string) string {
		t.Helper()
		b, err := exec.Command(root.Path("/usr/bin/"+istio.CommandName(v)), "version", "--remote=false").CombinedOutput()
		require.NoError(t, err, "%s", b)
		return string(b)
	}
	assert.Equal(t, "client version: 1.0.0\n", version("1.0.0"))
	assert.Equal(t, "client version: 1.1.0\n", version("1.1.0"))

	// A new release: the istioctl package gets a new version holding all
	// three, the repository keeps the old one, apt upgrades.
	prev, err := istio.PreviousFromDeb(ctl.Deb)
	require.NoError(t, err)
	ctl2, err := istio.IstioctlPackage(ctx, istio.IstioctlSet{Maintainer: maint, Previous: prev,
		Binaries: []istio.Istioctl{bins["1.0.0"], bins["1.1.0"], bins["1.2.0"]}})
	require.NoError(t, err)
	assert.Equal(t, "1.2.0+3.3003000", ctl2.Package.Version)
	ctl2Deb := filepath.Join(debs, ctl2.Package.FileName())
	require.NoError(t, os.WriteFile(ctl2Deb, ctl2.Deb, 0o644))
	out, _, err = runRecipesCmd(t, "", "repo", "build", "--out", repo, ctl2Deb)
	require.NoError(t, err)
	assert.Regexp(t, `istioctl-versions\s+1\.1\.0\+2\.2001000\s+amd64\s+kept`, out)
	assert.Regexp(t, `istioctl-versions\s+1\.2\.0\+3\.3003000\s+amd64\s+added`, out)
	out, err = root.AptGet("update")
	require.NoError(t, err, out)
	out, err = root.AptGet("install", "-y", "istioctl-versions")
	require.NoError(t, err, out)
	assert.Contains(t, out, "Unpacking istioctl-versions (1.2.0+3.3003000) over (1.1.0+2.2001000)")
	for _, v := range []string{"1.0.0", "1.1.0", "1.2.0"} {
		assert.Equal(t, "client version: "+v+"\n", version(v))
	}
	listed, err := os.ReadFile(root.Path(istio.VersionsFile("istioctl-versions")))
	require.NoError(t, err)
	assert.Equal(t, 4, len(strings.Split(strings.TrimSpace(string(listed)), "\n")), "a header and three versions:\n%s", listed)
}
