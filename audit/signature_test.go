package audit_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/csv"
	"encoding/json"
	"net/http"
	"os"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"gopkg.in/yaml.v3"

	"github.com/sailmaker/sailmaker/audit"
)

func TestKeyVerifier(t *testing.T) {
	w := newWorld(t)
	s := w.seed()
	ctx := context.Background()
	pem, err := os.ReadFile(w.pubFile)
	require.NoError(t, err)
	// A file name or the PEM text itself.
	pub, err := audit.LoadPublicKey(string(pem))
	require.NoError(t, err)
	v, err := audit.NewKeyVerifier(pub)
	require.NoError(t, err)
	ref := func(repo string, d string) name.Digest {
		r, err := name.NewDigest(w.reg()+"/"+repo+"@"+d, name.Insecure)
		require.NoError(t, err)
		return r
	}
	require.NoError(t, v.VerifySignature(ctx, ref("demo/pilot", s.pilot1.String())))

	// No signature.
	err = v.VerifySignature(ctx, ref("base/bookworm", s.base.String()))
	assert.ErrorIs(t, err, audit.ErrSignatureMissing)

	// Another key.
	other, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	ov, err := audit.NewKeyVerifier(&other.PublicKey)
	require.NoError(t, err)
	err = ov.VerifySignature(ctx, ref("demo/pilot", s.pilot1.String()))
	assert.ErrorIs(t, err, audit.ErrSignatureInvalid)

	// A valid signature of another image copied under this image's tag.
	w.sign("demo/proxyv2", s.pxy, w.key, s.pilot1)
	err = v.VerifySignature(ctx, ref("demo/proxyv2", s.pxy.String()))
	assert.ErrorIs(t, err, audit.ErrSignatureInvalid)
	assert.Contains(t, err.Error(), "signs "+s.pilot1.String())

	// A registry that fails is neither missing nor invalid.
	failing := &faults{inner: remote.DefaultTransport, failures: func(*http.Request) int { return -1 }}
	err = v.VerifySignature(ctx, ref("demo/pilot", s.pilot1.String()), remote.WithTransport(failing), remote.WithRetryBackoff(fastRetry))
	require.Error(t, err)
	assert.NotErrorIs(t, err, audit.ErrSignatureMissing)
	assert.NotErrorIs(t, err, audit.ErrSignatureInvalid)

	_, err = audit.LoadPublicKey("-----BEGIN PUBLIC KEY-----\nnot base64\n-----END PUBLIC KEY-----\n")
	assert.Error(t, err)
	_, err = audit.LoadPublicKey(w.pubFile + ".missing")
	assert.Error(t, err)
}

func TestWriteFormats(t *testing.T) {
	d := "sha256:" + strings.Repeat("ab", 32)
	res := &audit.ImagesResult{Images: []audit.Image{{Repository: "demo/pilot", Tag: "1.0.0", Digest: d, Kind: audit.KindSailmaker, BaseDigest: d, Commit: "c,1", Provenance: true}}}

	var b bytes.Buffer
	require.NoError(t, audit.Write(&b, "table", res))
	lines := strings.Split(strings.TrimSpace(b.String()), "\n")
	require.Len(t, lines, 2)
	assert.True(t, strings.HasPrefix(lines[0], "REPOSITORY"))
	assert.Contains(t, lines[1], d, "the DIGEST column is whole")
	assert.Equal(t, 1, strings.Count(lines[1], d), "other digests are shortened")
	assert.Contains(t, lines[1], "sha256:abababababab ")

	b.Reset()
	require.NoError(t, audit.Write(&b, "csv", res))
	rows, err := csv.NewReader(&b).ReadAll()
	require.NoError(t, err)
	require.Len(t, rows, 2)
	assert.Equal(t, len(rows[0]), len(rows[1]))
	assert.Equal(t, "c,1", rows[1][6], "CSV quotes what needs quoting")

	b.Reset()
	require.NoError(t, audit.Write(&b, "json", res))
	var back audit.ImagesResult
	require.NoError(t, json.Unmarshal(b.Bytes(), &back))
	assert.Equal(t, res.Images, back.Images)

	// YAML is the JSON document in YAML syntax.
	b.Reset()
	require.NoError(t, audit.Write(&b, "yaml", res))
	var fromYAML audit.ImagesResult
	require.NoError(t, yaml.Unmarshal(b.Bytes(), &fromYAML))
	assert.Equal(t, res.Images[0].Repository, fromYAML.Images[0].Repository)
	assert.Contains(t, b.String(), "digest: "+d+"\n")

	assert.ErrorIs(t, audit.Write(&b, "xml", res), audit.ErrBadInput)
}
