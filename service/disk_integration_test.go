package service_test

import (
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sailmaker/sailmaker/internal/faultproxy"
	"github.com/sailmaker/sailmaker/service"
	"github.com/sailmaker/sailmaker/store"
)

// fillDisk writes a file in dir until its file system has no byte left,
// and returns the file.
func fillDisk(t *testing.T, dir string) string {
	t.Helper()
	p := filepath.Join(dir, "filler")
	f, err := os.OpenFile(p, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	require.NoError(t, err)
	defer f.Close()
	buf := make([]byte, 1<<20)
	for size := len(buf); size > 0; size /= 4 {
		for {
			if _, err := f.Write(buf[:size]); err != nil {
				require.True(t, store.DiskFull(err), "%v", err)
				break
			}
		}
	}
	return p
}

// Finding 2 of issue 16: the state directory's disk filled during a
// build, "recording the end of a build" failed, and the build stayed
// building for good: cancel answered 202 and did nothing, the same recipe
// asked again joined the stuck build, and a restart lost the cause. A
// real `sailmaker serve` on a small tmpfs state directory, the disk
// filled during the compile and during the push: each build ends failed
// with the disk as its cause, cancel answers that it has ended, the same
// request again is not joined to it, /readyz and the log say the disk is
// full, and once there is room builds run again.
func TestServeDiskFull(t *testing.T) {
	e := sharedFaultEnv(t)
	state := t.TempDir()
	// Room for a build of both platforms: its make results and layers.
	require.NoError(t, syscall.Mount("tmpfs", state, "tmpfs", 0, "size=768m,mode=0755"), "mounting a tmpfs needs root (make test runs as root)")
	t.Cleanup(func() { _ = syscall.Unmount(state, syscall.MNT_DETACH) })
	e.serveConfig(t, state, false, nil)
	listen := freeAddr(t)
	p := startServe(t, state, listen)
	a := api{t, p.url}

	fullAndBack := func(t *testing.T, id string, body []byte, filler string) {
		t.Helper()
		b := waitFinal(t, a, id, 5*time.Minute)
		require.Equal(t, service.StateFailed, b.State, "the build ends, with the disk as its cause")
		assert.Contains(t, b.Error, "disk is full")
		t.Logf("error: %s", errorLine(b.Error))

		status, resp := a.do("POST", "/v1/builds/"+id+"/cancel", "", nil)
		assert.Equal(t, http.StatusConflict, status, "cancel: %s", resp)

		// The build's end removed its temporary files (its make results
		// and layers), which gives room back: fill it too, so the
		// disk stays full for what follows. The service finds it full again
		// at its next look, if it had found room meanwhile.
		fillDisk(t, state)
		var ready struct{ Checks map[string]string }
		deadline := time.Now().Add(30 * time.Second)
		for {
			status, resp = a.do("GET", "/readyz", "", nil)
			ready.Checks = nil
			require.NoError(t, json.Unmarshal(resp, &ready))
			if status == http.StatusServiceUnavailable && strings.Contains(ready.Checks["stateDir"], "the state directory's disk is full") {
				break
			}
			require.True(t, time.Now().Before(deadline), "/readyz does not say the disk is full: %d %s", status, resp)
			time.Sleep(500 * time.Millisecond)
		}
		assert.Contains(t, lastLines(p.log, 200), "the state directory's disk is full")

		// Asked again: not joined to the ended build. While the disk is
		// full it is refused (507) or waits in the queue.
		status, resp = a.do("POST", "/v1/builds", "", body)
		var again service.Build
		switch status {
		case http.StatusInsufficientStorage:
		case http.StatusAccepted:
			require.NoError(t, json.Unmarshal(resp, &again))
			assert.NotEqual(t, id, again.ID)
			time.Sleep(3 * time.Second)
			assert.Equal(t, service.StateQueued, a.build(again.ID, "").State, "no build starts while the disk is full")
		default:
			t.Fatalf("asked again while the disk is full: %d %s", status, resp)
		}

		require.NoError(t, os.Remove(filler))
		deadline = time.Now().Add(30 * time.Second)
		for {
			if status, _ := a.do("GET", "/readyz", "", nil); status == http.StatusOK {
				break
			}
			require.True(t, time.Now().Before(deadline), "not ready again once there is room")
			time.Sleep(500 * time.Millisecond)
		}
		assert.Contains(t, lastLines(p.log, 200), "has room again")
		if again.ID == "" {
			again.ID = submit(t, a, body)
		}
		done := waitFinal(t, a, again.ID, 5*time.Minute)
		assert.Equal(t, service.StateSucceeded, done.State, done.Error)
	}

	t.Run("during the build", func(t *testing.T) {
		body := e.recipe(t, "f2a", true)
		id := submit(t, a, body)
		deadline := time.Now().Add(10 * time.Minute)
		for !processWith("sleep", e.slowSleep) {
			b := a.build(id, "")
			require.False(t, b.State.Final(), "the build ended before its compile: %s %s", b.State, b.Error)
			require.True(t, time.Now().Before(deadline), "the compile never started")
			time.Sleep(200 * time.Millisecond)
		}
		require.Equal(t, service.StateBuilding, a.build(id, "").State)
		fullAndBack(t, id, body, fillDisk(t, state))
	})

	t.Run("during the push", func(t *testing.T) {
		body := e.recipe(t, "f2b", false)
		rule := e.proxy.Arm(faultproxy.Rule{Repo: "f2b/", Target: faultproxy.BlobUpload, Fault: faultproxy.Delay, Gate: true, Count: 1})
		defer rule.Disarm()
		id := submit(t, a, body)
		select {
		case <-rule.Hit():
		case <-time.After(5 * time.Minute):
			t.Fatalf("the build never pushed: %+v", a.build(id, ""))
		}
		require.Equal(t, service.StatePushing, a.build(id, "").State)
		filler := fillDisk(t, state)
		rule.Release()
		// Nothing was tagged: the ledger could not record the intent.
		fullAndBack(t, id, body, filler)
		tags := e.tagsUnder(t, "f2b")
		ledger := ledgerTags(t, state)
		for _, tg := range tags {
			by, _ := builtBy(ledger[tg.Repo+":"+tg.Tag], tg.Digest)
			assert.NotEmpty(t, by, "%s:%s is in the ledger with its build", tg.Repo, tg.Tag)
		}
		for _, f := range e.auditVerify(t, state, "f2b") {
			t.Errorf("audit verify: %s %s: %s", f.Code, f.Image, f.Message)
		}
	})
}
