package main

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sailmaker/sailmaker/builder/pool"
)

// certs new makes what mutual TLS between the service and its workers
// needs: each server certificate verifies for the worker's names and
// addresses, the client certificate for client auth, against one CA; a
// second run adds a worker with the same CA.
func TestCertsNew(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "certs")
	out, _, err := runRecipesCmd(t, "", "certs", "new", "--out", dir, "--worker", "bk-0,bk-1", "--san", "{worker}.buildkitd.svc", "-o", "json")
	require.NoError(t, err)
	var files pool.CertFiles
	require.NoError(t, json.Unmarshal([]byte(out), &files))
	assert.True(t, files.NewCA)
	require.Len(t, files.Workers, 2)
	require.NotNil(t, files.Client)

	roots := x509.NewCertPool()
	ca, err := os.ReadFile(filepath.Join(dir, "ca.pem"))
	require.NoError(t, err)
	require.True(t, roots.AppendCertsFromPEM(ca))
	leaf := func(cert, key string) *x509.Certificate {
		kp, err := tls.LoadX509KeyPair(cert, key)
		require.NoError(t, err, "%s and %s are a pair", cert, key)
		c, err := x509.ParseCertificate(kp.Certificate[0])
		require.NoError(t, err)
		fi, err := os.Stat(key)
		require.NoError(t, err)
		assert.Equal(t, os.FileMode(0o600), fi.Mode().Perm(), "%s is private", key)
		return c
	}
	for _, w := range []string{"bk-0", "bk-1"} {
		c := leaf(filepath.Join(dir, w+".pem"), filepath.Join(dir, w+"-key.pem"))
		for _, host := range []string{w, "localhost", "127.0.0.1", w + ".buildkitd.svc"} {
			_, err := c.Verify(x509.VerifyOptions{Roots: roots, DNSName: host, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}})
			assert.NoError(t, err, "%s's certificate for %s", w, host)
		}
		_, err := c.Verify(x509.VerifyOptions{Roots: roots, DNSName: "bk-9"})
		assert.Error(t, err, "not for another worker's name")
		assert.True(t, c.IPAddresses[0].Equal(net.ParseIP("127.0.0.1")))
	}
	client := leaf(filepath.Join(dir, "client.pem"), filepath.Join(dir, "client-key.pem"))
	_, err = client.Verify(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}})
	assert.NoError(t, err)
	_, err = client.Verify(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}})
	assert.Error(t, err, "the client certificate is not a server's")

	// Existing certificates are kept unless --force; the CA signs new ones.
	_, _, err = runRecipesCmd(t, "", "certs", "new", "--out", dir, "--worker", "bk-0")
	assert.ErrorContains(t, err, "bk-0.pem exists: pass --force")
	out, _, err = runRecipesCmd(t, "", "certs", "new", "--out", dir, "--worker", "bk-2", "--no-client")
	require.NoError(t, err)
	assert.Contains(t, out, "kept: it signed the new certificates")
	c := leaf(filepath.Join(dir, "bk-2.pem"), filepath.Join(dir, "bk-2-key.pem"))
	_, err = c.Verify(x509.VerifyOptions{Roots: roots, DNSName: "bk-2"})
	assert.NoError(t, err)

	for _, bad := range [][]string{
		{"certs", "new", "--worker", "bk-0"},
		{"certs", "new", "--out", dir, "--worker", "BK_0"},
		{"certs", "new", "--out", dir, "--no-client"},
		{"certs", "new", "--out", dir, "--worker", "bk-3", "-o", "yaml"},
	} {
		_, _, err := runRecipesCmd(t, "", bad...)
		assert.Error(t, err, "%v", bad)
	}
	_, err = os.Stat(filepath.Join(dir, "bk-3.pem"))
	assert.True(t, os.IsNotExist(err), "a bad -o is refused before anything is written")
}

// workers list without a service probes the config's workers itself, and
// says what is wrong with each; -o is checked before any work.
func TestWorkersListWithoutAService(t *testing.T) {
	cfg := "buildkit:\n  workers:\n    - {name: bk-0, address: \"unix:///nonexistent/bk-0.sock\", slots: 2}\n"
	out, _, err := runRecipesCmd(t, cfg, "workers", "list", "-o", "yaml")
	require.NoError(t, err)
	assert.Contains(t, out, "name: bk-0")
	assert.Contains(t, out, "state: down")
	assert.Contains(t, out, "slots: 2")
	assert.Contains(t, out, "lastError: 'worker bk-0 (unix:///nonexistent/bk-0.sock) does not answer")
	out, _, err = runRecipesCmd(t, cfg, "workers", "list")
	require.NoError(t, err)
	assert.Regexp(t, `(?m)^bk-0\s+unix:///nonexistent/bk-0.sock\s+down\s+-\s+-\s+0/2\s+0\s+0\s+worker bk-0`, out)
	out, _, err = runRecipesCmd(t, cfg, "workers", "list", "-o", "csv")
	require.NoError(t, err)
	assert.Contains(t, out, "NAME,ADDRESS,STATE,BUILDKIT,PLATFORMS,SLOTS,BUILDS,LOST,LAST ERROR\nbk-0,unix:///nonexistent/bk-0.sock,down,")
	_, _, err = runRecipesCmd(t, cfg, "workers", "drain", "bk-0")
	assert.ErrorContains(t, err, "no build service given")
}
