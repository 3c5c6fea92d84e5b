package main

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

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
