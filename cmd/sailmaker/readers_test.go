package main

import (
	"context"
	"encoding/json"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sailmaker/sailmaker/api"
	"github.com/sailmaker/sailmaker/config"
	"github.com/sailmaker/sailmaker/internal/testenv"
	"github.com/sailmaker/sailmaker/service"
	"github.com/sailmaker/sailmaker/store"
)

// sharedDir is a directory of root's that others may read and enter
// (0755), as a state directory made by root is.
func sharedDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "sm-shared-")
	require.NoError(t, err)
	t.Cleanup(func() { os.RemoveAll(dir) })
	require.NoError(t, os.Chmod(dir, 0o755))
	return dir
}

// testService is a real build service (its API, queue and store) on a
// local port; builds "succeed" at once without building anything.
func testService(t *testing.T, cfg *config.Config, st *store.Store) string {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	s, err := service.New(ctx, service.Options{
		Config: cfg,
		Store:  st,
		Run: func(ctx context.Context, j service.Job) (*api.Result, error) {
			return &api.Result{}, nil
		},
	})
	require.NoError(t, err)
	require.NoError(t, s.Start(ctx))
	srv := httptest.NewServer(s.Handler())
	t.Cleanup(srv.Close)
	t.Cleanup(func() { _ = s.Stop(context.Background(), 0) })
	return srv.URL
}

// Read-only commands work for a user who may only read the state directory
// (root's, 0755 with 0644 files), while the service has its database open
// and after: audit reads the ledger, recipes the stored recipes, builds the
// service.
func TestReadOnlyCommandsAsAnotherUser(t *testing.T) {
	testenv.Integration(t)
	require.Equal(t, 0, os.Geteuid(), "this test runs as root (as make test does) to run commands as another user")
	_, err := exec.LookPath("setpriv")
	require.NoError(t, err, "setpriv (util-linux) runs the commands as another user")
	ctx := context.Background()

	reg := testenv.Registry(t)
	state := sharedDir(t)
	cfgFile := filepath.Join(state, "config.yaml")
	require.NoError(t, os.WriteFile(cfgFile, []byte("registry:\n  address: "+reg.Config.Registry.Address+"\n"), 0o644))
	for _, k := range []string{"SAILMAKER_CONFIG", "SAILMAKER_REGISTRY", "SAILMAKER_SERVER", "SAILMAKER_SIGNING_KEY", "SAILMAKER_SIGNING_PUB", "BUILDKIT_HOST"} {
		t.Setenv(k, "")
	}
	t.Setenv("SAILMAKER_STATE_DIR", state)
	cfg, err := config.Load("", state)
	require.NoError(t, err)

	// An image another client pushed, and the ledger with an entry.
	img, err := random.Image(64, 1)
	require.NoError(t, err)
	tag, err := name.NewTag(reg.Config.Registry.Address+"/other/tool:1", name.Insecure)
	require.NoError(t, err)
	require.NoError(t, remote.Write(tag, img))
	d, err := img.Digest()
	require.NoError(t, err)
	st, err := store.OpenDir(ctx, state)
	require.NoError(t, err)
	defer st.Close()
	require.NoError(t, st.Append(ctx, store.Entry{Actor: "alice", Action: store.ActionPush, Repository: "other/tool", Tag: "1", NewDigest: d.String()}))

	// A recipe the webhook stored.
	data, err := os.ReadFile(filepath.Join(testenv.ModuleRoot(t), "recipes", "istio", "1.24.2.yaml"))
	require.NoError(t, err)
	stored := strings.ReplaceAll(string(data), "1.24.2", "1.24.9")
	require.NoError(t, os.MkdirAll(filepath.Join(state, "recipes"), 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(state, "recipes", "istio@1.24.9.yaml"), []byte(stored), 0o644))

	// The service, with a build queued and done.
	url := testService(t, cfg, st)
	c, err := service.NewClient(url, "")
	require.NoError(t, err)
	b, _, err := c.Submit(ctx, service.SubmitRequest{Recipe: json.RawMessage(`"istio@1.24.2"`), EnvoySHA256: strings.Repeat("0a", 32)})
	require.NoError(t, err)

	binDir := sharedDir(t)
	bin := makeBinaryIn(t, binDir)
	asNobody := func(args ...string) (stdout, stderr string, err error) {
		cmd := exec.Command("setpriv", append([]string{"--reuid=65534", "--regid=65534", "--clear-groups", "--", bin}, args...)...)
		cmd.Env = append(os.Environ(), "HOME=/nonexistent")
		cmd.Dir = "/"
		var out, errb strings.Builder
		cmd.Stdout, cmd.Stderr = &out, &errb
		err = cmd.Run()
		return out.String(), errb.String(), err
	}

	out, stderr, err := asNobody("builds", "list", "--server", url, "-o", "json")
	require.NoError(t, err, stderr)
	assert.Contains(t, out, `"id": "`+b.ID+`"`)
	out, stderr, err = asNobody("builds", "show", b.ID, "--server", url)
	require.NoError(t, err, stderr)
	assert.Regexp(t, `(?m)^ID:\s+`+b.ID+`$`, out)

	// The service has the database open (-wal and -shm exist), then not.
	require.FileExists(t, filepath.Join(state, store.FileName+"-wal"))
	for _, open := range []bool{true, false} {
		if !open {
			require.NoError(t, st.Close())
			require.NoFileExists(t, filepath.Join(state, store.FileName+"-wal"))
		}
		out, stderr, err := asNobody("audit", "ledger", "-o", "json")
		require.NoError(t, err, stderr)
		var ledger struct{ Entries []store.Entry }
		require.NoError(t, json.Unmarshal([]byte(out), &ledger), out)
		require.NotEmpty(t, ledger.Entries, "database open by the service: %v", open)
		assert.Equal(t, "alice", ledger.Entries[0].Actor)

		out, stderr, err = asNobody("audit", "images", "-o", "csv")
		require.NoError(t, err, stderr)
		assert.Contains(t, out, "other/tool,1,"+d.String())
		assert.NotContains(t, stderr, "readonly")

		// verify finds something (an image pushed by another client) and
		// says so; it does not fail to read.
		out, stderr, err = asNobody("audit", "verify")
		assert.Error(t, err)
		assert.Contains(t, out, "not-built-by-sailmaker")
		assert.Contains(t, stderr, "verify: ")
		assert.NotContains(t, stderr, "readonly")
	}

	out, stderr, err = asNobody("recipes", "list", "-o", "csv")
	require.NoError(t, err, stderr)
	assert.Contains(t, out, "istio@1.24.2,Recipe,1.24.2,embedded,")
	assert.Contains(t, out, "istio@1.24.9,Recipe,1.24.9,stored,")
	out, stderr, err = asNobody("recipes", "show", "istio@1.24.9")
	require.NoError(t, err, stderr)
	assert.Contains(t, out, "# file: "+filepath.Join(state, "recipes", "istio@1.24.9.yaml")+"\n")
	_, stderr, err = asNobody("recipes", "validate", filepath.Join(state, "recipes", "istio@1.24.9.yaml"))
	require.NoError(t, err, stderr)
	_, stderr, err = asNobody("base", "list")
	require.NoError(t, err, stderr)

}

// A build that goes to a service instead of running here says so, naming
// the setting that sent it there.
func TestRemoteBuildNamesWhereTheServiceCameFrom(t *testing.T) {
	ctx := context.Background()
	svcState := t.TempDir()
	cfg, err := config.Load("", svcState)
	require.NoError(t, err)
	st, err := store.OpenDir(ctx, svcState)
	require.NoError(t, err)
	defer st.Close()
	url := testService(t, cfg, st)
	sum := strings.Repeat("0a", 32)

	t.Setenv("SAILMAKER_SERVER", url)
	_, stderr, err := runRecipesCmd(t, "", "build", "istio@1.24.2", "--envoy-sha256", sum)
	require.NoError(t, err, stderr)
	assert.Contains(t, stderr, "building on the service at "+url+" (from $SAILMAKER_SERVER), not on this machine\n")
	assert.Contains(t, stderr, "queued build ")

	t.Setenv("SAILMAKER_SERVER", "")
	_, stderr, err = runRecipesCmd(t, "server:\n  url: "+url+"\n", "build", "istio@1.24.2", "--envoy-sha256", sum, "--force")
	require.NoError(t, err, stderr)
	assert.Regexp(t, `building on the service at `+url+` \(from server\.url in /\S+/config\.yaml\), not on this machine`, stderr)

	_, stderr, err = runRecipesCmd(t, "", "build", "istio@1.24.2", "--envoy-sha256", sum, "--server", url)
	require.NoError(t, err, stderr)
	assert.Contains(t, stderr, "(from --server)")

	// The service's builds complete the id of builds show/logs/cancel.
	builds, err := service.NewClient(url, "")
	require.NoError(t, err)
	list, err := builds.List(ctx, service.ListFilter{})
	require.NoError(t, err)
	require.Len(t, list, 3)
	for _, sub := range []string{"show", "logs", "cancel"} {
		got, _ := complete(t, t.TempDir(), "builds", sub, "--server", url, "")
		assert.Equal(t, []string{list[0].ID, list[1].ID, list[2].ID}, got, sub)
	}
	got, _ := complete(t, t.TempDir(), "builds", "show", "--server", url, list[1].ID[:len(list[1].ID)-1])
	assert.Equal(t, []string{list[1].ID}, got)
}
