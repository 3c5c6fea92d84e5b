package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sailmaker/sailmaker/attest"
	"github.com/sailmaker/sailmaker/registry"
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

// The JSON rows of a build show the digests of what is attached.
func TestRowsShowAttachments(t *testing.T) {
	tag, err := name.NewTag("127.0.0.1:5000/fixture/pilot:1.0.0")
	require.NoError(t, err)
	h := func(c string) v1.Hash {
		d, err := v1.NewHash("sha256:" + strings.Repeat(c, 64))
		require.NoError(t, err)
		return d
	}
	sig := h("4")
	p := registry.Pushed{Tag: tag, Digest: h("1"), Attached: map[string]v1.Hash{
		attest.ProvenanceArtifactType: h("2"), attest.SBOMArtifactType: h("3"),
	}, SignatureDigest: &sig}
	var buf bytes.Buffer
	require.NoError(t, printRows(&buf, rowsFromPushed([]string{"pilot"}, []registry.Pushed{p}), "json"))
	var rows []map[string]any
	require.NoError(t, json.Unmarshal(buf.Bytes(), &rows))
	require.Len(t, rows, 1)
	assert.Equal(t, h("2").String(), rows[0]["provenance"])
	assert.Equal(t, h("3").String(), rows[0]["sbom"])
	assert.Equal(t, sig.String(), rows[0]["signature"])

	buf.Reset()
	require.NoError(t, printRows(&buf, rowsFromPushed([]string{"pilot"}, []registry.Pushed{{Tag: tag, Digest: h("1")}}), "json"))
	assert.NotContains(t, buf.String(), "signature")
}
