package builder_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sailmaker/sailmaker/builder"
)

// A signing key that cannot be used stops the build before anything is
// fetched, and says which setting is wrong.
func TestBadSigningKeyFailsFirst(t *testing.T) {
	s := newSetup(t)
	r := s.recipe(t, s.sum)
	missing := filepath.Join(t.TempDir(), "nope.key")
	err := s.build(r, func(o *builder.Options) { o.Config.Signing.Key = missing })
	require.Error(t, err)
	assert.Contains(t, err.Error(), "signing.key")
	assert.Contains(t, err.Error(), missing)

	notKey := filepath.Join(t.TempDir(), "cert.pem")
	require.NoError(t, os.WriteFile(notKey, []byte("hello"), 0o600))
	err = s.build(r, func(o *builder.Options) { o.Config.Signing.Key = notKey })
	require.Error(t, err)
	assert.Contains(t, err.Error(), "not a PEM file")
	assert.Zero(t, s.srv.TotalHits(), "nothing was fetched")
}
