package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sailmaker/sailmaker/api"
	"github.com/sailmaker/sailmaker/attest"
)

func TestSigningKeygen(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "keys")
	out, _, err := runRecipesCmd(t, "", "signing", "keygen", "--out", dir)
	require.NoError(t, err)
	assert.Contains(t, out, "sailmaker.key")

	fi, err := os.Stat(filepath.Join(dir, "sailmaker.key"))
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o600), fi.Mode().Perm())
	key, err := attest.LoadKey(filepath.Join(dir, "sailmaker.key"))
	require.NoError(t, err)
	pub, err := attest.LoadPublicKey(filepath.Join(dir, "sailmaker.pub"))
	require.NoError(t, err)
	kp, err := key.PublicPEM()
	require.NoError(t, err)
	pubPEM, err := os.ReadFile(filepath.Join(dir, "sailmaker.pub"))
	require.NoError(t, err)
	assert.Equal(t, pubPEM, kp, "the two files are one pair")
	assert.NotNil(t, pub)

	// An existing key is not replaced unless --force.
	before, err := os.ReadFile(filepath.Join(dir, "sailmaker.key"))
	require.NoError(t, err)
	_, _, err = runRecipesCmd(t, "", "signing", "keygen", "--out", dir)
	require.ErrorContains(t, err, "--force")
	after, err := os.ReadFile(filepath.Join(dir, "sailmaker.key"))
	require.NoError(t, err)
	assert.Equal(t, before, after)
	_, _, err = runRecipesCmd(t, "", "signing", "keygen", "--out", dir, "--force")
	require.NoError(t, err)
	after, err = os.ReadFile(filepath.Join(dir, "sailmaker.key"))
	require.NoError(t, err)
	assert.NotEqual(t, before, after)
}

// The JSON of a build's images shows the digests of what is attached, and
// leaves out what is not.
func TestImagesShowAttachments(t *testing.T) {
	d := func(c string) string { return "sha256:" + strings.Repeat(c, 64) }
	im := api.Image{Name: "pilot", Output: "registry", Repository: "127.0.0.1:5000/fixture/pilot", Tag: "1.0.0", Digest: d("1"),
		Provenance: d("2"), SBOM: d("3"), Signature: d("4"), Attestations: d("5"), Status: api.StatusPushed}
	var buf bytes.Buffer
	require.NoError(t, printImages(&buf, []api.Image{im}, "json"))
	var rows []map[string]any
	require.NoError(t, json.Unmarshal(buf.Bytes(), &rows))
	require.Len(t, rows, 1)
	assert.Equal(t, d("2"), rows[0]["provenance"])
	assert.Equal(t, d("3"), rows[0]["sbom"])
	assert.Equal(t, d("4"), rows[0]["signature"])
	assert.Equal(t, d("5"), rows[0]["attestations"])

	buf.Reset()
	im.Signature, im.Attestations = "", ""
	require.NoError(t, printImages(&buf, []api.Image{im}, "json"))
	assert.NotContains(t, buf.String(), "signature")
	assert.NotContains(t, buf.String(), "attestations")
}
