package service_test

import (
	"net/http"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sailmaker/sailmaker/internal/faultproxy"
	"github.com/sailmaker/sailmaker/service"
)

// stateDir is a new state directory, with a short path (a service's own
// buildkitd puts its socket in it).
func stateDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("/tmp", "smt-")
	require.NoError(t, err)
	t.Cleanup(func() { removeAll(dir) })
	return dir
}

// removeAll removes dir, first unmounting what is mounted under it: a
// buildkitd killed with -9 leaves its running step's rootfs mounted.
func removeAll(dir string) {
	if info, err := os.ReadFile("/proc/self/mountinfo"); err == nil {
		for _, line := range strings.Split(string(info), "\n") {
			if f := strings.Fields(line); len(f) > 4 && strings.HasPrefix(f[4], dir+"/") {
				_ = syscall.Unmount(f[4], syscall.MNT_DETACH)
			}
		}
	}
	_ = os.RemoveAll(dir)
}

// Finding 1 of issue 16 at the service level: every tag that reaches the
// registry is in the ledger with its build, whatever happens after, and
// the build's record lists every image it tagged, when the registry
// answers 503 to the second image's tag PUT (a), when the build is
// cancelled while a tag PUT is in flight (b), and when the service is
// killed during pushing twice (c). A real `sailmaker serve`, buildkitd and
// registry, with the fault proxy between the service and the registry.
func TestServeLedgerUnderRegistryFaults(t *testing.T) {
	e := sharedFaultEnv(t)
	state := stateDir(t)
	e.serveConfig(t, state, false, map[string]any{"retries": 1})
	listen := freeAddr(t)
	top := t // services started in subtests run on after them
	p := startServe(top, state, listen)
	a := api{t, p.url}

	checkLedger := func(t *testing.T, prefix, build string, wantTags int, confirmed bool) {
		t.Helper()
		tags := e.tagsUnder(t, prefix)
		require.Len(t, tags, wantTags, "tags under %s: %v", prefix, tags)
		ledger := ledgerTags(t, state)
		rec := a.build(build, "")
		for _, tg := range tags {
			by, ok := builtBy(ledger[tg.Repo+":"+tg.Tag], tg.Digest)
			assert.Equal(t, build, by, "the ledger has %s:%s with its build", tg.Repo, tg.Tag)
			if confirmed {
				assert.True(t, ok, "the ledger confirms %s:%s", tg.Repo, tg.Tag)
			}
			assert.True(t, imageListed(rec, e.addr, tg), "build %s lists %s:%s: %+v", build, tg.Repo, tg.Tag, rec.Images)
			assert.Empty(t, e.complete(t, tg), "%s:%s names a complete image", tg.Repo, tg.Tag)
		}
		for _, f := range e.auditVerify(t, state, prefix) {
			t.Errorf("audit verify: %s %s: %s", f.Code, f.Image, f.Message)
		}
	}

	t.Run("503 to the second tag PUT", func(t *testing.T) {
		rule := e.proxy.Arm(faultproxy.Rule{Repo: "f1a/proxyv2", Target: faultproxy.TagPut, Fault: faultproxy.Burst503, Count: 100})
		defer rule.Disarm()
		id := submit(t, a, e.recipe(t, "f1a", false))
		b := waitFinal(t, a, id, 10*time.Minute)
		require.Equal(t, service.StateFailed, b.State)
		assert.Contains(t, b.Error, "tagging "+e.addr+"/f1a/proxyv2:1.0.0")
		assert.Positive(t, rule.Hits())
		checkLedger(t, "f1a", id, 1, true)
		assert.Equal(t, "f1a/pilot", e.tagsUnder(t, "f1a")[0].Repo, "the first image is tagged, and recorded with its build")
	})

	t.Run("cancel while a tag PUT is in flight", func(t *testing.T) {
		rule := e.proxy.Arm(faultproxy.Rule{Repo: "f1b/pilot", Target: faultproxy.TagPut, Fault: faultproxy.Delay, Delay: 3 * time.Second})
		defer rule.Disarm()
		id := submit(t, a, e.recipe(t, "f1b", false))
		select {
		case <-rule.Hit():
		case <-time.After(10 * time.Minute):
			t.Fatalf("the build never tagged: %+v", a.build(id, ""))
		}
		status, body := a.do("POST", "/v1/builds/"+id+"/cancel", "", nil)
		require.Equal(t, http.StatusAccepted, status, string(body))
		b := waitFinal(t, a, id, time.Minute)
		assert.Equal(t, service.StateCancelled, b.State)
		// The tag PUT lands after the cancel.
		require.NoError(t, e.proxy.WaitIdle("f1b/", time.Minute))
		tags := e.tagsUnder(t, "f1b")
		require.Len(t, tags, 1, "the delayed tag PUT reached the registry")
		by, _ := builtBy(ledgerTags(t, state)[tags[0].Repo+":"+tags[0].Tag], tags[0].Digest)
		assert.Equal(t, id, by, "the ledger accounts for the tag that landed after the cancel")
		// The next start settles it: confirmed, and on the build's record.
		p.term(time.Minute)
		p = startServe(top, state, listen)
		a = api{t, p.url}
		checkLedger(t, "f1b", id, 1, true)
	})

	t.Run("two crashes during pushing", func(t *testing.T) {
		prefix := "f1c"
		id := ""
		for crash, repo := range []string{prefix + "/pilot", prefix + "/proxyv2"} {
			rule := e.proxy.Arm(faultproxy.Rule{Repo: repo, Target: faultproxy.TagPut, Fault: faultproxy.Delay, Delay: time.Second, Gate: true, Count: 1})
			if id == "" {
				id = submit(t, a, e.recipe(t, prefix, false))
			}
			select {
			case <-rule.Hit():
			case <-time.After(10 * time.Minute):
				t.Fatalf("crash %d: the build never tagged %s: %+v", crash+1, repo, a.build(id, ""))
			}
			require.Equal(t, service.StatePushing, a.build(id, "").State)
			p.kill9()
			rule.Release() // the tag PUT lands after the crash
			require.NoError(t, e.proxy.WaitIdle(prefix+"/", time.Minute))
			p = startServe(top, state, listen)
			a = api{t, p.url}
		}
		b := waitFinal(t, a, id, time.Minute)
		require.Equal(t, service.StateFailed, b.State)
		assert.Equal(t, 2, b.Attempts)
		assert.Contains(t, b.Error, "interrupted: the service stopped during pushing")
		checkLedger(t, prefix, id, 2, true)
		logs := lastLines(p.log, 400)
		assert.Contains(t, logs, "settled tag writes a previous run left unconfirmed in the ledger")
	})
}
