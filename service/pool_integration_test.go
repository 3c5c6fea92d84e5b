package service_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sailmaker/sailmaker/attest"
	"github.com/sailmaker/sailmaker/builder/buildkitd"
	"github.com/sailmaker/sailmaker/builder/pool"
	"github.com/sailmaker/sailmaker/config"
	"github.com/sailmaker/sailmaker/internal/fixture"
	"github.com/sailmaker/sailmaker/internal/testenv"
	"github.com/sailmaker/sailmaker/service"
)

// poolWorker is one real buildkitd of the test's pool, on a loopback TCP
// port with mutual TLS.
type poolWorker struct {
	name string
	addr string // host:port
	opts buildkitd.Options
	d    *buildkitd.Daemon
}

func (w *poolWorker) start(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	d, err := buildkitd.Start(ctx, w.opts)
	if err != nil {
		cancel()
		require.NoError(t, err, "buildkitd %s must start (make test builds bin/buildkitd; rootless needs make deps)", w.name)
	}
	w.d = d
	t.Cleanup(func() {
		stop, c := context.WithTimeout(context.Background(), 30*time.Second)
		defer c()
		_ = d.Stop(stop)
		cancel()
	})
}

// startPoolWorker starts a buildkitd named name with the certificates in
// certs (as `sailmaker certs new` names them).
func startPoolWorker(t *testing.T, name, certs, registry string, mod func(*buildkitd.Options)) *poolWorker {
	t.Helper()
	dir, err := os.MkdirTemp("/tmp", "smpool-") // a short unix socket path
	require.NoError(t, err)
	t.Cleanup(func() {
		// A buildkitd killed with -9 leaves its running step's rootfs
		// mounted: unmount what is left under the directory first.
		if info, err := os.ReadFile("/proc/self/mountinfo"); err == nil {
			for _, line := range strings.Split(string(info), "\n") {
				if f := strings.Fields(line); len(f) > 4 && strings.HasPrefix(f[4], dir+"/") {
					_ = syscall.Unmount(f[4], syscall.MNT_DETACH)
				}
			}
		}
		_ = os.RemoveAll(dir)
	})
	w := &poolWorker{name: name, addr: freeAddr(t)}
	w.opts = buildkitd.Options{
		Dir:            dir,
		HTTPRegistries: []string{registry},
		GCKeepBytes:    10 << 30,
		TCP:            w.addr,
		TLS: &buildkitd.TLSFiles{
			CACert: filepath.Join(certs, "ca.pem"),
			Cert:   filepath.Join(certs, name+".pem"),
			Key:    filepath.Join(certs, name+"-key.pem"),
		},
	}
	if mod != nil {
		mod(&w.opts)
	}
	w.start(t)
	return w
}

// otherVersionBuildKitd is the pinned buildkitd built with another version
// stamped into it (-X .../version.Version, as the Makefile stamps the pinned
// one): a real daemon whose Info answers v0.32.0. It is kept in the test
// cache, by the tools module's go.sum.
func otherVersionBuildKitd(t *testing.T) string {
	t.Helper()
	root := testenv.ModuleRoot(t)
	sum, err := os.ReadFile(filepath.Join(root, "tools", "buildkit", "go.sum"))
	require.NoError(t, err)
	h := sha256.Sum256(sum)
	bin := filepath.Join(testenv.CacheDir(t), "buildkitd-stamped-v0.32.0-"+hex.EncodeToString(h[:6]))
	if _, err := os.Stat(bin); err == nil {
		return bin
	}
	cmd := exec.Command("go", "build", "-trimpath", "-ldflags", "-X github.com/moby/buildkit/version.Version=v0.32.0", "-o", bin+".tmp", "github.com/moby/buildkit/cmd/buildkitd")
	cmd.Dir = filepath.Join(root, "tools", "buildkit")
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "building buildkitd stamped v0.32.0: %s", out)
	require.NoError(t, os.Rename(bin+".tmp", bin))
	return bin
}

// The build service on a pool of real buildkitd workers on loopback TCP
// ports with mutual TLS from `sailmaker certs new`: builds of one recipe
// line stay on one worker; a worker with another BuildKit version, and one
// reached with a client certificate of another CA, are refused; kill -9 of
// the worker running a build moves the build to another worker, where it
// succeeds; the worker is taken back when it answers again; a rootless
// worker builds the fixture; drain keeps builds off a worker. One pool
// serves all the steps.
func TestServicePool(t *testing.T) {
	testenv.Integration(t)
	if os.Getenv("SAILMAKER_BIN_DIR") == "" {
		t.Setenv("SAILMAKER_BIN_DIR", filepath.Join(testenv.ModuleRoot(t), "bin"))
	}
	e := testenv.Registry(t)
	e.Bases(t)
	reg := e.Config.Registry.Address
	bin := sailmakerBinary(t)
	rootlessUser := testenv.EnsureRootlessUser(t)

	// Certificates, as a user makes them.
	certs := t.TempDir()
	out, err := exec.Command(bin, "certs", "new", "--out", certs, "--worker", "bk-0,bk-1,bk-2,bk-old,bk-rootless").CombinedOutput()
	require.NoError(t, err, "%s", out)
	require.Contains(t, string(out), "client:  "+filepath.Join(certs, "client.pem"))
	foreign := t.TempDir()
	out, err = exec.Command(bin, "certs", "new", "--out", foreign).CombinedOutput()
	require.NoError(t, err, "%s", out)

	workers := map[string]*poolWorker{}
	for _, n := range []string{"bk-0", "bk-1", "bk-2"} {
		workers[n] = startPoolWorker(t, n, certs, reg, nil)
	}
	old := startPoolWorker(t, "bk-old", certs, reg, func(o *buildkitd.Options) { o.Binary = otherVersionBuildKitd(t) })
	// The rootless worker runs as an unprivileged user: its files are its
	// own (buildkitd.Start gives it the directory).
	rootless := startPoolWorker(t, "bk-rootless", certs, reg, func(o *buildkitd.Options) {
		tlsDir := filepath.Join(o.Dir, "tls")
		require.NoError(t, os.MkdirAll(tlsDir, 0o700))
		for _, f := range []string{"ca.pem", "bk-rootless.pem", "bk-rootless-key.pem"} {
			data, err := os.ReadFile(filepath.Join(certs, f))
			require.NoError(t, err)
			require.NoError(t, os.WriteFile(filepath.Join(tlsDir, f), data, 0o600))
		}
		o.TLS = &buildkitd.TLSFiles{CACert: filepath.Join(tlsDir, "ca.pem"), Cert: filepath.Join(tlsDir, "bk-rootless.pem"), Key: filepath.Join(tlsDir, "bk-rootless-key.pem")}
		// Its binary where that user can run it.
		src, err := buildkitd.FindBinary("buildkitd")
		require.NoError(t, err)
		data, err := os.ReadFile(src)
		require.NoError(t, err)
		o.Binary = filepath.Join(o.Dir, "buildkitd")
		require.NoError(t, os.WriteFile(o.Binary, data, 0o755))
		o.Rootless, o.User = true, rootlessUser
	})
	u, err := user.Lookup(rootlessUser)
	require.NoError(t, err)
	procStatus, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", rootless.d.PID()))
	require.NoError(t, err)
	assert.Regexp(t, `(?m)^Uid:\s+`+u.Uid+`\s`, string(procStatus), "the rootless worker runs as %s", rootlessUser)

	client := map[string]string{"caCert": filepath.Join(certs, "ca.pem"), "cert": filepath.Join(certs, "client.pem"), "key": filepath.Join(certs, "client-key.pem")}
	workerCfg := func(name, addr string, files map[string]string) map[string]any {
		m := map[string]any{"name": name, "address": "tcp://" + addr, "slots": 1}
		for k, v := range files {
			m[k] = v
		}
		return m
	}
	var poolCfg []map[string]any
	for _, n := range []string{"bk-0", "bk-1", "bk-2"} {
		poolCfg = append(poolCfg, workerCfg(n, workers[n].addr, client))
	}
	poolCfg = append(poolCfg,
		workerCfg("bk-old", old.addr, client),
		workerCfg("bk-rootless", rootless.addr, client),
		// bk-0 again, with a client certificate of another CA.
		workerCfg("bk-wrongcert", workers["bk-0"].addr, map[string]string{"caCert": client["caCert"], "cert": filepath.Join(foreign, "client.pem"), "key": filepath.Join(foreign, "client-key.pem")}),
	)

	// The fixture: one upstream with two lines, 1.0.x and 1.1.x; a slow
	// twin (another repository, so another line) whose 1.2.0 sleeps in
	// make, long enough to kill its worker.
	repo := fixture.Upstream(t, fixture.UpstreamOptions{Tag: "1.0.0"})
	for _, tag := range []string{"1.0.1", "1.0.2", "1.0.3", "1.1.0", "1.1.1", "1.1.2"} {
		repo.Git(t, "tag", "--annotate", "--no-sign", "-m", "fixture release "+tag, tag, repo.Commit)
	}
	sleep := fmt.Sprintf("20.%06d", rand.IntN(1000000))
	overlay := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(overlay, "Makefile.overrides.mk"),
		[]byte("ifeq ($(VERSION),1.2.0)\nPILOT_DISCOVERY_PRE := sleep "+sleep+"\nendif\n"), 0o644))
	slow := fixture.Upstream(t, fixture.UpstreamOptions{Tag: "1.2.0", Overlay: overlay})
	slow.Git(t, "tag", "--annotate", "--no-sign", "-m", "fixture release 1.2.1", "1.2.1", slow.Commit)
	envoy, envoySHA := fixture.EnvoyTarball(t, repo.ProxySHA)
	arts := fixture.ServeArtifacts(t, map[string][]byte{"/envoy/" + fixture.EnvoyTarballName(repo.ProxySHA): envoy})
	recipe := func(r *fixture.Repo, tag string) string {
		c := *r
		c.Tag = tag
		return fixture.WriteRecipe(t, &c, arts.URL+"/envoy/", envoySHA, reg)
	}

	state := t.TempDir()
	writeConfig(t, state, map[string]any{
		"registry": map[string]any{"address": reg},
		"buildkit": map[string]any{"workers": poolCfg},
		"server": map[string]any{"retries": 1,
			// The fixture's repositories and artifact server.
			"inputs": map[string]any{"git": []string{"file:///tmp/"}, "artifacts": []string{arts.URL + "/envoy/"}}},
	})
	p := startServe(t, state, freeAddr(t))
	a := api{t, p.url}
	cli := func(args ...string) (string, error) {
		cmd := exec.Command(bin, args...)
		cmd.Env = cleanEnv("SAILMAKER_SERVER="+p.url, "SAILMAKER_STATE_DIR="+t.TempDir())
		var o bytes.Buffer
		cmd.Stdout, cmd.Stderr = &o, &o
		err := cmd.Run()
		return o.String(), err
	}
	listWorkers := func() map[string]pool.Status {
		t.Helper()
		status, body := a.do("GET", "/v1/workers", "", nil)
		require.Equal(t, http.StatusOK, status, string(body))
		var resp service.WorkersResponse
		require.NoError(t, json.Unmarshal(body, &resp))
		out := map[string]pool.Status{}
		for _, w := range resp.Workers {
			out[w.Name] = w
		}
		return out
	}
	// The rootless worker waits, drained, for its own step.
	drained, err := cli("workers", "drain", "bk-rootless")
	require.NoError(t, err, drained)
	assert.Contains(t, drained, "worker bk-rootless is drained")

	submit := func(file string) *service.Build {
		t.Helper()
		status, body := a.do("POST", "/v1/builds", "", submitBody(t, file))
		require.Equal(t, http.StatusAccepted, status, string(body))
		var b service.Build
		require.NoError(t, json.Unmarshal(body, &b))
		return &b
	}
	succeeded := func(b *service.Build) *service.Build {
		t.Helper()
		return a.waitFor(b.ID, "", 10*time.Minute, "success", func(b *service.Build) bool { return b.State == service.StateSucceeded })
	}

	t.Run("workers refused with a clear message", func(t *testing.T) {
		var ws map[string]pool.Status
		require.Eventually(t, func() bool {
			ws = listWorkers()
			return ws["bk-0"].State == pool.StateUp && ws["bk-old"].State == pool.StateRefused && ws["bk-wrongcert"].State == pool.StateRefused
		}, time.Minute, 500*time.Millisecond, "workers: %+v", ws)
		for _, n := range []string{"bk-0", "bk-1", "bk-2", "bk-rootless"} {
			assert.Equal(t, pool.StateUp, ws[n].State, "%s: %s", n, ws[n].LastError)
			assert.Equal(t, buildkitd.PinnedVersion, ws[n].BuildKitVersion)
			assert.Contains(t, ws[n].Platforms, "linux/amd64")
		}
		assert.Equal(t, `worker bk-old (tcp://`+old.addr+`) runs BuildKit "v0.32.0"; sailmaker needs `+buildkitd.PinnedVersion+", the pinned version (BUILDKIT_VERSION in the Makefile): run the buildkitd that `make tools` builds there", ws["bk-old"].LastError)
		assert.Contains(t, ws["bk-wrongcert"].LastError, "worker bk-wrongcert (tcp://"+workers["bk-0"].addr+") refused sailmaker's client certificate (tls: ")
		assert.Contains(t, ws["bk-wrongcert"].LastError, "make cert/key ("+filepath.Join(foreign, "client.pem")+") with the CA the worker was started with")

		out, err := cli("workers", "list")
		require.NoError(t, err, out)
		t.Logf("sailmaker workers list:\n%s", out)
		assert.Regexp(t, `bk-old\s+tcp://\S+\s+refused\s+v0\.32\.0\s`, out)
		assert.Regexp(t, `bk-rootless\s+tcp://\S+\s+up,draining\s+`+buildkitd.PinnedVersion, out)
		status, body := a.do("GET", "/readyz", "", nil)
		assert.Equal(t, http.StatusOK, status, string(body))
	})

	// The workers that take builds, in each line's order of preference.
	usable := map[string]bool{"bk-0": true, "bk-1": true, "bk-2": true}
	ranking, err := pool.New(pool.Options{Workers: mustWorkers(t, state)})
	require.NoError(t, err)
	defer ranking.Close()
	preferred := func(r *fixture.Repo, tag string, taken string) string {
		for _, n := range ranking.Rank(pool.LineOf(r.URL, tag).String()) {
			if usable[n] && n != taken {
				return n
			}
		}
		return ""
	}

	t.Run("six builds of two lines stay on their workers", func(t *testing.T) {
		// A is submitted first: if B prefers A's worker, that one is busy
		// and B goes to the next in its line's ranking.
		wantA := preferred(repo, "1.0.0", "")
		wantB := preferred(repo, "1.1.0", wantA)
		for i := 0; i < 3; i++ {
			ba := submit(recipe(repo, fmt.Sprintf("1.0.%d", i)))
			bb := submit(recipe(repo, fmt.Sprintf("1.1.%d", i)))
			da, db := succeeded(ba), succeeded(bb)
			assert.Equal(t, wantA, da.Worker, "build %s of %s", da.ID, da.Recipe)
			assert.Equal(t, wantB, db.Worker, "build %s of %s", db.ID, db.Recipe)
			require.Len(t, da.Images, 5, "pilot, proxyv2, istio-cni, istioctl and istioctl-versions")
		}
		// The provenance names the worker in its builder id.
		show := exec.Command(bin, "audit", "show", "fixture/pilot:1.0.2", "--state-dir", state)
		show.Env = cleanEnv()
		shown, err := show.CombinedOutput()
		require.NoError(t, err, "%s", shown)
		assert.Contains(t, string(shown), attest.WorkerBuilderID(wantA))
		ws := listWorkers()
		assert.Equal(t, 3, ws[wantA].BuildsRun)
		assert.Equal(t, 0, ws["bk-old"].BuildsRun+ws["bk-wrongcert"].BuildsRun+ws["bk-rootless"].BuildsRun)
		out, err := cli("builds", "show", "-o", "table", mustLastID(t, a))
		require.NoError(t, err, out)
		assert.Regexp(t, `Worker:\s+bk-\d`, out)

		// Each line's layers are in the registry cache.
		for _, tag := range []string{"1.0.0", "1.1.0"} {
			l := pool.LineOf(repo.URL, tag)
			ref, err := name.ParseReference(reg+"/"+config.DefaultCacheRepository+"/"+l.CacheRepository()+":"+l.CacheTag(), name.Insecure)
			require.NoError(t, err)
			_, err = remote.Head(ref)
			assert.NoError(t, err, "the registry cache of line %s", l)
		}
		status, body := a.do("GET", "/metrics", "", nil)
		require.Equal(t, http.StatusOK, status)
		assert.Contains(t, string(body), fmt.Sprintf(`sailmaker_build_attempts_by_worker_total{worker=%q} 3`, wantA))
		assert.Contains(t, string(body), `sailmaker_worker_up{worker="bk-old"} 0`)
	})

	outer := t // what the subtests start lives as long as the pool
	t.Run("kill -9 of the worker running a build", func(t *testing.T) {
		b := submit(recipe(slow, "1.2.0"))
		deadline := time.Now().Add(5 * time.Minute)
		for !processWith("sleep", sleep) {
			cur := a.build(b.ID, "")
			require.False(t, cur.State.Final(), "the slow build ended: %s %s", cur.State, cur.Error)
			require.True(t, time.Now().Before(deadline), "the slow build's sleep never started")
			time.Sleep(300 * time.Millisecond)
		}
		victim := a.build(b.ID, "").Worker
		require.Contains(t, workers, victim)
		require.NoError(t, syscall.Kill(workers[victim].d.PID(), syscall.SIGKILL))

		// The attempt is lost to the worker: the build is queued again and
		// runs elsewhere; the worker is down.
		moved := a.waitFor(b.ID, "", 2*time.Minute, "a second attempt", func(b *service.Build) bool { return b.Attempts == 2 && b.Worker != victim && b.Worker != "" })
		require.Len(t, moved.Interruptions, 1)
		in := moved.Interruptions[0]
		assert.Equal(t, victim, in.Worker)
		assert.False(t, in.Graceful)
		assert.Contains(t, in.Reason, "interrupted: worker "+victim+" (tcp://"+workers[victim].addr+") was lost during the build")
		ws := listWorkers()
		assert.Equal(t, pool.StateDown, ws[victim].State)
		assert.Equal(t, 1, ws[victim].BuildsLost)

		// Brought back while the build goes on elsewhere.
		for !workers[victim].d.Exited() {
			time.Sleep(100 * time.Millisecond)
		}
		workers[victim].start(outer)

		done := succeeded(b)
		assert.NotEqual(t, victim, done.Worker)
		assert.Equal(t, 2, done.Attempts)
		status, body := a.do("GET", "/v1/builds/"+b.ID+"/log?follow=false", "", nil)
		require.Equal(t, http.StatusOK, status)
		assert.Contains(t, string(body), "queued again: it runs on another worker")

		// Every tag names a complete image: its manifest, config and every
		// layer are in the registry.
		for _, im := range done.Images {
			ref, err := name.ParseReference(im.Repository+":"+im.Tag, name.Insecure)
			require.NoError(t, err)
			img, err := remote.Image(ref)
			require.NoError(t, err)
			d, err := img.Digest()
			require.NoError(t, err)
			assert.Equal(t, im.Digest, d.String())
			m, err := img.Manifest()
			require.NoError(t, err)
			blobs := []string{m.Config.Digest.String()}
			for _, l := range m.Layers {
				blobs = append(blobs, l.Digest.String())
			}
			for _, bd := range blobs {
				resp, err := http.Head(fmt.Sprintf("http://%s/v2/%s/blobs/%s", reg, ref.Context().RepositoryStr(), bd))
				require.NoError(t, err)
				resp.Body.Close()
				assert.Equal(t, http.StatusOK, resp.StatusCode, "blob %s of %s is in the registry", bd, im.Reference)
			}
		}
		verify := exec.Command(bin, "audit", "verify", "--state-dir", state)
		verify.Env = cleanEnv()
		out, err := verify.CombinedOutput()
		assert.NoError(t, err, "audit verify finds nothing wrong:\n%s", out)

		// Up again, the worker gets its line back.
		require.Eventually(t, func() bool { return listWorkers()[victim].State == pool.StateUp }, 2*time.Minute, 500*time.Millisecond)
		again := succeeded(submit(recipe(slow, "1.2.1")))
		assert.Equal(t, victim, again.Worker, "the line's worker, back, builds it again")
	})

	t.Run("a rootless worker builds the fixture", func(t *testing.T) {
		for _, n := range []string{"bk-0", "bk-1", "bk-2"} {
			out, err := cli("workers", "drain", n)
			require.NoError(t, err, out)
			assert.Contains(t, out, "worker "+n+" is drained")
		}
		out, err := cli("workers", "drain", "bk-rootless", "--undo")
		require.NoError(t, err, out)
		b := succeeded(submit(recipe(repo, "1.0.3")))
		assert.Equal(t, "bk-rootless", b.Worker)
		require.Len(t, b.Images, 5, "pilot, proxyv2, istio-cni, istioctl and istioctl-versions")
		for _, n := range []string{"bk-0", "bk-1", "bk-2"} {
			_, err := cli("workers", "drain", n, "--undo")
			require.NoError(t, err)
		}
	})

	t.Run("the service image builds with the Dockerfile frontend", func(t *testing.T) {
		buildServiceImage(t, workers["bk-1"].d.Address, reg, bin)
	})
}

// The deployment's service image builds from docker/Dockerfile with
// BuildKit's built-in Dockerfile frontend, on the internal builder image,
// and the binary in it runs there.
func buildServiceImage(t *testing.T, buildkitAddr, reg, bin string) {
	t.Helper()
	buildctl, err := buildkitd.FindBinary("buildctl")
	require.NoError(t, err)
	root := testenv.ModuleRoot(t)
	ctxDir := t.TempDir()
	require.NoError(t, os.MkdirAll(filepath.Join(ctxDir, "bin", "image"), 0o755))
	require.NoError(t, os.MkdirAll(filepath.Join(ctxDir, "docker"), 0o755))
	for src, dst := range map[string]string{
		bin: "bin/image/sailmaker",
		filepath.Join(root, "docker", "Dockerfile"):              "docker/Dockerfile",
		filepath.Join(root, "docker", "Dockerfile.dockerignore"): "docker/Dockerfile.dockerignore",
	} {
		data, err := os.ReadFile(src)
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(filepath.Join(ctxDir, dst), data, 0o755))
	}
	ref := reg + "/sailmaker/sailmaker:test"
	run := func(dockerfileDir string, output string) {
		t.Helper()
		args := []string{"--addr", buildkitAddr, "build", "--frontend", "dockerfile.v0",
			"--local", "context=" + ctxDir, "--local", "dockerfile=" + dockerfileDir, "--opt", "build-arg:REGISTRY=" + reg}
		if output != "" {
			args = append(args, "--output", output)
		}
		cmd := exec.Command(buildctl, args...)
		out, err := cmd.CombinedOutput()
		require.NoError(t, err, "buildctl: %s", out)
	}
	run(filepath.Join(ctxDir, "docker"), "type=image,name="+ref+",push=true,registry.insecure=true")
	r, err := name.ParseReference(ref, name.Insecure)
	require.NoError(t, err)
	img, err := remote.Image(r)
	require.NoError(t, err)
	cf, err := img.ConfigFile()
	require.NoError(t, err)
	assert.Equal(t, []string{"/usr/local/bin/sailmaker"}, cf.Config.Entrypoint)
	assert.Equal(t, []string{"serve", "--config", "/etc/sailmaker/config.yaml"}, cf.Config.Cmd)
	assert.Equal(t, "65532:65532", cf.Config.User)
	base, err := name.ParseReference(reg+"/builder/go1.23.4:1", name.Insecure)
	require.NoError(t, err)
	bimg, err := remote.Image(base)
	require.NoError(t, err)
	bl, err := bimg.Layers()
	require.NoError(t, err)
	il, err := img.Layers()
	require.NoError(t, err)
	require.Len(t, il, len(bl)+1, "the builder image's layers and one with the binary")
	for i := range bl {
		a, _ := bl[i].Digest()
		b, _ := il[i].Digest()
		assert.Equal(t, a, b, "layer %d is the builder image's", i)
	}
	// The binary runs in the image (a RUN step in BuildKit).
	check := filepath.Join(ctxDir, "check")
	require.NoError(t, os.MkdirAll(check, 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(check, "Dockerfile"), []byte("FROM "+ref+"\nRUN [\"/usr/local/bin/sailmaker\", \"recipes\", \"list\"]\n"), 0o644))
	run(check, "") // built, exported nowhere
}

// mustWorkers reads the pool of the config in state.
func mustWorkers(t *testing.T, state string) []config.WorkerConfig {
	t.Helper()
	cfg, err := config.Load(filepath.Join(state, "config.yaml"), state)
	require.NoError(t, err)
	return cfg.Workers()
}

func mustLastID(t *testing.T, a api) string {
	t.Helper()
	status, body := a.do("GET", "/v1/builds?limit=1", "", nil)
	require.Equal(t, http.StatusOK, status)
	var list struct{ Builds []service.Build }
	require.NoError(t, json.Unmarshal(body, &list))
	require.NotEmpty(t, list.Builds)
	return list.Builds[0].ID
}
