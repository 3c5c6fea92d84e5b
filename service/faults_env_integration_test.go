package service_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/sirupsen/logrus"
	"github.com/stretchr/testify/require"

	"github.com/sailmaker/sailmaker/audit"
	"github.com/sailmaker/sailmaker/builder/buildkitd"
	"github.com/sailmaker/sailmaker/config"
	"github.com/sailmaker/sailmaker/internal/faultproxy"
	"github.com/sailmaker/sailmaker/internal/fixture"
	"github.com/sailmaker/sailmaker/internal/testenv"
	"github.com/sailmaker/sailmaker/registry"
	"github.com/sailmaker/sailmaker/service"
	"github.com/sailmaker/sailmaker/store"
)

// The fault tests of issue 16 share one environment, started by the first
// of them and stopped when the test process ends: the embedded registry
// (in this process) behind a fault proxy, which is the registry address
// every `sailmaker serve` of these tests is given, the base images in it,
// a buildkitd (so that the fixture's compile is warm in BuildKit's cache
// after the first build: the faults are in publishing), the fixture
// upstream and its Envoy artifact.
type faultEnv struct {
	reg       *registry.Server
	direct    *registry.Client // to the registry, past the proxy
	proxy     *faultproxy.Proxy
	addr      string // the proxy: registry.address of the services
	bk        *buildkitd.Daemon
	repo      *fixture.Repo
	slow      *fixture.Repo // its make sleeps first (sleep <slowSleep>)
	slowSleep string
	artifacts *fixture.ArtifactServer
	envoySHA  string
	dir       string
}

var (
	faultOnce sync.Once
	faults    *faultEnv
	faultErr  error
)

// stopFaultEnv runs from TestMain once the tests are done.
func stopFaultEnv() {
	if faults == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if faults.bk != nil {
		_ = faults.bk.Stop(ctx)
	}
	faults.proxy.Close()
	faults.artifacts.Close()
	_ = faults.reg.Close(ctx)
	removeAll(faults.dir)
}

func sharedFaultEnv(t *testing.T) *faultEnv {
	t.Helper()
	testenv.Integration(t)
	faultOnce.Do(func() { faults, faultErr = startFaultEnv(t) })
	require.NoError(t, faultErr)
	return faults
}

func startFaultEnv(t *testing.T) (*faultEnv, error) {
	if os.Getenv("SAILMAKER_BIN_DIR") == "" {
		os.Setenv("SAILMAKER_BIN_DIR", filepath.Join(testenv.ModuleRoot(t), "bin"))
	}
	logrus.SetLevel(logrus.FatalLevel)       // the embedded registry logs every request
	dir, err := os.MkdirTemp("/tmp", "smf-") // short: buildkitd's socket is in it
	if err != nil {
		return nil, err
	}
	e := &faultEnv{dir: dir}
	faults = e // stopped by TestMain, also if starting fails half-way
	ctx := context.Background()
	if e.reg, err = registry.NewServer(ctx, filepath.Join(dir, "registry")); err != nil {
		return nil, err
	}
	if err := e.reg.Start("127.0.0.1:0"); err != nil {
		return nil, err
	}
	cfg := config.Default()
	cfg.StateDir = dir
	cfg.Registry.Address = e.reg.Addr()
	if e.direct, err = registry.NewClient(cfg); err != nil {
		return nil, err
	}
	(&testenv.Env{Config: cfg, Registry: e.direct}).Bases(t)
	if e.proxy, err = faultproxy.New(e.reg.Addr()); err != nil {
		return nil, err
	}
	e.addr = e.proxy.Addr()
	if e.bk, err = buildkitd.Start(ctx, buildkitd.Options{Dir: filepath.Join(dir, "bk"), HTTPRegistries: []string{e.addr}, GCKeepBytes: 10 << 30}); err != nil {
		return nil, fmt.Errorf("buildkitd must start (make test builds bin/buildkitd): %w", err)
	}
	if e.repo, err = fixture.NewUpstream(filepath.Join(dir, "upstream"), fixture.UpstreamOptions{Tag: "1.0.0"}); err != nil {
		return nil, err
	}
	// The slow twin: pilot-discovery's build first sleeps some seconds,
	// with a number to find the process by.
	e.slowSleep = fmt.Sprintf("8.%06d", time.Now().UnixNano()%1000000)
	overlay := filepath.Join(dir, "overlay")
	if err := os.MkdirAll(overlay, 0o755); err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(overlay, "Makefile.overrides.mk"), []byte("PILOT_DISCOVERY_PRE := sleep "+e.slowSleep+"\n"), 0o644); err != nil {
		return nil, err
	}
	if e.slow, err = fixture.NewUpstream(filepath.Join(dir, "slow"), fixture.UpstreamOptions{Tag: "1.2.0", Overlay: overlay}); err != nil {
		return nil, err
	}
	envoy, sum, err := fixture.BuildEnvoyTarball(e.repo.ProxySHA)
	if err != nil {
		return nil, err
	}
	e.envoySHA = sum
	if e.artifacts, err = fixture.StartArtifactServer("127.0.0.1:0", map[string][]byte{"/envoy/" + fixture.EnvoyTarballName(e.repo.ProxySHA): envoy}); err != nil {
		return nil, err
	}
	return e, nil
}

// serveConfig is a service's config on the shared environment: the proxy
// as its registry, the shared buildkitd unless ownBuildKit (then the
// service runs its own, supervised, in <state>/buildkitd).
func (e *faultEnv) serveConfig(t *testing.T, state string, ownBuildKit bool, server map[string]any) {
	t.Helper()
	srv := map[string]any{
		"inputs": map[string]any{"git": []string{"file://" + e.dir + "/"}, "artifacts": []string{e.artifacts.URL + "/envoy/"}},
	}
	for k, v := range server {
		srv[k] = v
	}
	cfg := map[string]any{"registry": map[string]any{"address": e.addr}, "server": srv}
	if !ownBuildKit {
		cfg["buildkit"] = map[string]any{"address": e.bk.Address}
	}
	writeConfig(t, state, cfg)
}

// recipe is the fixture recipe (or its slow twin) with its images in
// prefix/pilot and prefix/proxyv2: a fresh repository for each test
// case, with the same compile.
func (e *faultEnv) recipe(t *testing.T, prefix string, slow bool) []byte {
	t.Helper()
	repo := e.repo
	if slow {
		repo = e.slow
	}
	text, err := fixture.RenderRecipe(repo, e.artifacts.URL+"/envoy/", e.envoySHA, e.addr)
	require.NoError(t, err)
	doc, err := service.RecipeDocument([]byte(text))
	require.NoError(t, err)
	var r map[string]any
	require.NoError(t, json.Unmarshal(doc, &r))
	for _, im := range r["spec"].(map[string]any)["images"].([]any) {
		m := im.(map[string]any)
		m["repository"] = prefix + "/" + m["name"].(string)
	}
	// Packages get their own repositories under prefix too: their tags
	// (version-revision) are the same in every build of the release.
	if pkgs, ok := r["spec"].(map[string]any)["packages"].([]any); ok {
		for _, pk := range pkgs {
			m := pk.(map[string]any)
			m["repository"] = prefix + "/" + m["name"].(string)
		}
	}
	body, err := json.Marshal(map[string]any{"recipe": r})
	require.NoError(t, err)
	return body
}

// submit queues a build and returns its id.
func submit(t *testing.T, a api, body []byte) string {
	t.Helper()
	status, resp := a.do("POST", "/v1/builds", "", body)
	require.Equal(t, http.StatusAccepted, status, string(resp))
	var b service.Build
	require.NoError(t, json.Unmarshal(resp, &b))
	return b.ID
}

// waitFinal waits for a build to reach a final state.
func waitFinal(t *testing.T, a api, id string, timeout time.Duration) *service.Build {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		b := a.build(id, "")
		if b.State.Final() {
			return b
		}
		if time.Now().After(deadline) {
			t.Fatalf("build %s is still %s after %s", id, b.State, timeout)
		}
		time.Sleep(300 * time.Millisecond)
	}
}

// tagged is a tag in the registry and the manifest it names.
type tagged struct {
	Repo, Tag, Digest string
}

// tagsUnder lists the tags of prefix's pilot and proxyv2 repositories, read
// past the proxy.
func (e *faultEnv) tagsUnder(t *testing.T, prefix string) []tagged {
	t.Helper()
	var out []tagged
	for _, img := range []string{"pilot", "proxyv2"} {
		repoName := prefix + "/" + img
		repo, err := name.NewRepository(e.reg.Addr()+"/"+repoName, name.Insecure)
		require.NoError(t, err)
		tags, err := remote.List(repo)
		if err != nil {
			continue // no such repository: nothing was pushed there
		}
		for _, tg := range tags {
			d, err := remote.Head(repo.Tag(tg))
			require.NoError(t, err)
			out = append(out, tagged{Repo: repoName, Tag: tg, Digest: d.Digest.String()})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Repo+out[i].Tag < out[j].Repo+out[j].Tag })
	return out
}

// complete says what is missing of the image a tag names: its config and
// layers, its provenance and SBOM (nothing when complete).
func (e *faultEnv) complete(t *testing.T, tg tagged) []string {
	t.Helper()
	ref, err := name.NewDigest(e.reg.Addr()+"/"+tg.Repo+"@"+tg.Digest, name.Insecure)
	require.NoError(t, err)
	img, err := remote.Image(ref)
	if err != nil {
		return []string{"manifest: " + err.Error()}
	}
	m, err := img.Manifest()
	if err != nil {
		return []string{"manifest: " + err.Error()}
	}
	var missing []string
	for _, d := range append(m.Layers, m.Config) {
		if _, err := remote.Layer(ref.Context().Digest(d.Digest.String())); err != nil {
			missing = append(missing, "blob "+d.Digest.String())
			continue
		}
		resp, err := http.Head("http://" + e.reg.Addr() + "/v2/" + tg.Repo + "/blobs/" + d.Digest.String())
		if err != nil || resp.StatusCode != http.StatusOK {
			missing = append(missing, "blob "+d.Digest.String())
		}
		if resp != nil {
			resp.Body.Close()
		}
	}
	have, err := e.direct.Attached(context.Background(), ref)
	if err != nil {
		return append(missing, "referrers: "+err.Error())
	}
	for _, at := range []string{audit.ArtifactTypeProvenance, audit.ArtifactTypeSBOM} {
		if _, ok := have[at]; !ok {
			missing = append(missing, "attachment "+at)
		}
	}
	return missing
}

// ledgerTags is the ledger of a state directory, as the audit reads it.
func ledgerTags(t *testing.T, state string) map[string]store.TagState {
	t.Helper()
	st, err := store.OpenDirReadOnly(context.Background(), state)
	require.NoError(t, err)
	defer st.Close()
	tags, err := st.Tags(context.Background())
	require.NoError(t, err)
	return tags
}

// ledgerEntries is every entry of a state directory's ledger.
func ledgerEntries(t *testing.T, state string) []store.Entry {
	t.Helper()
	st, err := store.OpenDirReadOnly(context.Background(), state)
	require.NoError(t, err)
	defer st.Close()
	entries, err := st.Entries(context.Background(), store.LedgerFilter{})
	require.NoError(t, err)
	return entries
}

// builtBy is the build the ledger says wrote digest under the tag: the
// confirmed entry's, or a pending intent's ("" if the ledger does not
// account for it). confirmed says which.
func builtBy(st store.TagState, digest string) (build string, confirmed bool) {
	if st.Digest == digest && st.Digest != "" {
		return st.Last.BuildID, true
	}
	for _, p := range st.Pending {
		if p.NewDigest == digest {
			return p.BuildID, false
		}
	}
	return "", false
}

// auditVerify runs the real `sailmaker audit verify` on a state directory
// and its registry, for repositories under prefix, and returns its
// findings.
func (e *faultEnv) auditVerify(t *testing.T, state, prefix string) []audit.Finding {
	t.Helper()
	cmd := exec.Command(sailmakerBinary(t), "audit", "verify", "--prefix", prefix, "-o", "json", "--no-disk-cache")
	cmd.Env = cleanEnv("SAILMAKER_STATE_DIR="+state, "SAILMAKER_CONFIG="+filepath.Join(state, "config.yaml"))
	out, err := cmd.Output()
	var rep audit.Report
	if jerr := json.Unmarshal(out, &rep); jerr != nil {
		stderr := ""
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = string(ee.Stderr)
		}
		t.Fatalf("audit verify: %v (%v)\n%s\n%s", err, jerr, out, stderr)
	}
	return rep.Findings
}

// imageListed says whether the build's record lists the tag's image.
func imageListed(b *service.Build, addr string, tg tagged) bool {
	for _, im := range b.Images {
		if im.Repository == addr+"/"+tg.Repo && im.Tag == tg.Tag && im.Digest == tg.Digest {
			return true
		}
	}
	return false
}

func errorLine(s string) string {
	s, _, _ = strings.Cut(s, "\n")
	return s
}
