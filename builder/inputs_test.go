package builder

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/sirupsen/logrus"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sailmaker/sailmaker/config"
	"github.com/sailmaker/sailmaker/recipes"
)

func envoyTarball(t *testing.T) ([]byte, string) {
	t.Helper()
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	tw := tar.NewWriter(gz)
	body := []byte("#!/bin/sh\necho envoy\n")
	require.NoError(t, tw.WriteHeader(&tar.Header{Name: "usr/local/bin/envoy", Mode: 0o755, Size: int64(len(body)), Typeflag: tar.TypeReg}))
	_, err := tw.Write(body)
	require.NoError(t, err)
	require.NoError(t, tw.Close())
	require.NoError(t, gz.Close())
	s := sha256.Sum256(buf.Bytes())
	return buf.Bytes(), hex.EncodeToString(s[:])
}

func envoyRecipe(url, sum string) *recipes.Recipe {
	return &recipes.Recipe{Spec: recipes.RecipeSpec{Inputs: recipes.Inputs{Envoy: &recipes.Envoy{
		URL: url, SHA256: sum, Binary: "usr/local/bin/envoy", ProxySHA: strings.Repeat("1", 40),
	}}}}
}

func inputOptions(t *testing.T) InputOptions {
	cfg := config.Default()
	cfg.StateDir = t.TempDir()
	quiet := logrus.New()
	quiet.SetOutput(io.Discard)
	return InputOptions{Config: cfg, Log: quiet}
}

// With the service's policy, an artifact must come from an allowed mirror:
// never a file of the host, never a loopback URL nobody allowed, not even
// by a redirect from an allowed one; and a wrong checksum does not say what
// the content's checksum is.
func TestEnvoyInputPolicy(t *testing.T) {
	data, sum := envoyTarball(t)
	internal := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.Write(data) }))
	defer internal.Close()
	mirror := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/redirect" {
			http.Redirect(w, r, internal.URL+"/envoy.tar.gz", http.StatusFound)
			return
		}
		w.Write(data)
	}))
	defer mirror.Close()
	secret := filepath.Join(t.TempDir(), "secret")
	require.NoError(t, os.WriteFile(secret, []byte("do not read"), 0o600))

	policy := &config.InputPolicy{Artifacts: []string{mirror.URL + "/"}}
	for name, c := range map[string]struct{ url, want string }{
		"host file":   {"file://" + secret, "never reads files of its own host"},
		"loopback":    {internal.URL + "/envoy.tar.gz", "is not a source the service downloads from"},
		"redirected":  {mirror.URL + "/redirect", "redirected: " + internal.URL},
		"other host":  {strings.Replace(mirror.URL, "127.0.0.1", "localhost", 1) + "/envoy.tar.gz", "is not a source"},
		"user in URL": {strings.Replace(mirror.URL, "http://", "http://me@", 1) + "/envoy.tar.gz", "is not a source"},
	} {
		t.Run(name, func(t *testing.T) {
			o := inputOptions(t)
			o.Policy, o.HideChecksums = policy, true
			err := fetchEnvoy(context.Background(), envoyRecipe(c.url, sum), o, &Inputs{})
			require.Error(t, err)
			assert.Contains(t, err.Error(), c.want)
		})
	}

	// Allowed, with a wrong pin: the error names the pin, not the content's
	// sum; nothing is kept.
	o := inputOptions(t)
	o.Policy, o.HideChecksums = policy, true
	wrong := strings.Repeat("ab", 32)
	err := fetchEnvoy(context.Background(), envoyRecipe(mirror.URL+"/envoy.tar.gz", wrong), o, &Inputs{})
	require.ErrorIs(t, err, ErrChecksum)
	assert.Contains(t, err.Error(), wrong)
	assert.NotContains(t, err.Error(), sum, "the content's checksum is not disclosed")
	entries, _ := os.ReadDir(filepath.Join(o.Config.CacheDir(), "artifacts"))
	assert.Empty(t, entries, "nothing kept of a refused artifact")

	// Allowed and right: cached for its owner only.
	in := &Inputs{}
	require.NoError(t, fetchEnvoy(context.Background(), envoyRecipe(mirror.URL+"/envoy.tar.gz", sum), o, in))
	fi, err := os.Stat(filepath.Join(o.Config.CacheDir(), "artifacts", sum))
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o600), fi.Mode().Perm())
	bin, err := os.ReadFile(filepath.Join(in.EnvoyDir, "envoy"))
	require.NoError(t, err)
	assert.Equal(t, "#!/bin/sh\necho envoy\n", string(bin))

	// The local CLI (no policy) may read a file, and sees the real sum.
	o = inputOptions(t)
	err = fetchEnvoy(context.Background(), envoyRecipe("file://"+secret, wrong), o, &Inputs{})
	require.ErrorIs(t, err, ErrChecksum)
	s := sha256.Sum256([]byte("do not read"))
	assert.Contains(t, err.Error(), hex.EncodeToString(s[:]))
}

// A large artifact goes to disk as it arrives: the process does not hold
// it in memory.
func TestEnvoyDownloadIsStreamed(t *testing.T) {
	const size = 256 << 20
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		chunk := bytes.Repeat([]byte("0123456789abcdef"), 4096)
		for sent := 0; sent < size; sent += len(chunk) {
			if _, err := w.Write(chunk); err != nil {
				return
			}
		}
	}))
	defer srv.Close()
	o := inputOptions(t)
	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	err := fetchEnvoy(context.Background(), envoyRecipe(srv.URL+"/big.tar.gz", strings.Repeat("ab", 32)), o, &Inputs{})
	runtime.ReadMemStats(&after)
	require.ErrorIs(t, err, ErrChecksum, "the download completed and was checked")
	assert.Less(t, after.Sys-before.Sys, uint64(64<<20), "memory taken from the OS while downloading %d MiB", size>>20)
}
