package publish_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/stretchr/testify/require"

	"github.com/sailmaker/sailmaker/api"
	"github.com/sailmaker/sailmaker/attest"
	"github.com/sailmaker/sailmaker/builder"
	"github.com/sailmaker/sailmaker/internal/testenv"
)

func testKey(t *testing.T) *attest.Key {
	t.Helper()
	priv, _, err := attest.GenerateKey()
	require.NoError(t, err)
	k, err := attest.ParseKey(priv)
	require.NoError(t, err)
	return k
}

// withLabel returns im with a label set in its config.
func withLabel(t *testing.T, im builder.Image, k, v string) builder.Image {
	t.Helper()
	cf, err := im.Image.ConfigFile()
	require.NoError(t, err)
	cf = cf.DeepCopy()
	if cf.Config.Labels == nil {
		cf.Config.Labels = map[string]string{}
	}
	cf.Config.Labels[k] = v
	img, err := mutate.ConfigFile(im.Image, cf)
	require.NoError(t, err)
	im.Image = img
	im.Digest, err = img.Digest()
	require.NoError(t, err)
	return im
}

// documents are a provenance and an SBOM about im, as a build makes them.
func documents(t *testing.T, im builder.Image) []attest.Attestation {
	t.Helper()
	return documentsIn(t, im, nil)
}

// documentsIn is documents about an image of the index (whose digest is
// index), naming both.
func documentsIn(t *testing.T, im builder.Image, index *name.Digest) []attest.Attestation {
	t.Helper()
	ref := im.Tag.Context().Digest(im.Digest.String())
	created := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	st, err := attest.NewProvenance(attest.ProvenanceParams{
		Image: ref,
		Index: index,
		External: attest.ExternalParameters{
			Recipe:    attest.RecipeParam{ID: "demo@1.0", Digest: "sha256:" + strings.Repeat("a", 64)},
			Source:    attest.SourceParam{Git: "https://example.invalid/demo.git", Tag: "1.0", Commit: strings.Repeat("c", 40)},
			Toolchain: attest.ToolchainParam{Go: "1.23.4", Builder: "reg.invalid/builder:1", BuilderDigest: "sha256:" + strings.Repeat("b", 64)},
			Base:      attest.BaseParam{Name: "reg.invalid/base:1", Digest: "sha256:" + strings.Repeat("d", 64)},
			Image:     attest.ImageParam{Name: im.Name, Repository: im.Tag.RepositoryStr(), Tag: im.Tag.TagStr()},
		},
		Internal:     attest.InternalParameters{SailmakerVersion: "test", Trigger: api.Trigger{Actor: "alice", Kind: "cli"}},
		InvocationID: "b-1", StartedOn: created, FinishedOn: created,
	})
	require.NoError(t, err)
	prov, err := attest.ProvenanceDocument(st, created)
	require.NoError(t, err)
	sbom, err := attest.NewSBOM(attest.SBOMParams{Image: ref, Created: created, Debian: []attest.DebianPackage{{Name: "libc6", Version: "2.36-9"}}})
	require.NoError(t, err)
	sb, err := attest.SBOMDocumentFor(st.Subject, sbom, created)
	require.NoError(t, err)
	return []attest.Attestation{{Document: prov}, {Document: sb}}
}

// tool finds an independent client the Makefile's deps install: in bin/
// (cosign, pinned there) or on PATH (skopeo, from Debian). A missing tool
// fails the test: skipped is not passed.
func tool(t *testing.T, name string) string {
	t.Helper()
	testenv.Integration(t)
	dir := os.Getenv("SAILMAKER_BIN_DIR")
	if dir == "" {
		dir = filepath.Join(testenv.ModuleRoot(t), "bin")
	}
	if p := filepath.Join(dir, name); fileExists(p) {
		return p
	}
	p, err := exec.LookPath(name)
	require.NoError(t, err, "%s is needed (make test installs it: make deps / make tools)", name)
	return p
}

func fileExists(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && !fi.IsDir()
}

func run(t *testing.T, env []string, name string, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// attestKeyFiles makes a key pair in dir (<name>.key, <name>.pub) and
// returns the key and the public key's file.
func attestKeyFiles(t *testing.T, dir, name string) (*attest.Key, string, error) {
	t.Helper()
	priv, pub, err := attest.GenerateKey()
	if err != nil {
		return nil, "", err
	}
	pubFile := filepath.Join(dir, name+".pub")
	if err := os.WriteFile(filepath.Join(dir, name+".key"), priv, 0o600); err != nil {
		return nil, "", err
	}
	if err := os.WriteFile(pubFile, pub, 0o644); err != nil {
		return nil, "", err
	}
	k, err := attest.ParseKey(priv)
	return k, pubFile, err
}
