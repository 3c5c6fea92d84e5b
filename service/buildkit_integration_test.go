package service_test

import (
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sailmaker/sailmaker/builder/buildkitd"
	"github.com/sailmaker/sailmaker/service"
)

// Finding 7 of issue 16: buildkitd killed mid-build failed the build at
// once, without a retry, saying "it ran with no network". The service's
// own buildkitd (the single, supervised daemon of the embedded defaults)
// killed during the compile is an interruption, like a crash of the
// service: recorded, retried while retries last (server.retries: 1), and
// the error says what happened.
func TestServeBuildKitKilledMidBuild(t *testing.T) {
	e := sharedFaultEnv(t)
	state := stateDir(t)
	t.Cleanup(func() { stopBuildKit(t, state) })
	e.serveConfig(t, state, true, map[string]any{"retries": 1})
	p := startServe(t, state, freeAddr(t))
	a := api{t, p.url}
	pidFile := buildkitd.PIDFile(filepath.Join(state, "buildkitd"))

	id := submit(t, a, e.recipe(t, "f7", true))
	for attempt := 1; attempt <= 2; attempt++ {
		// The compile's make sleeps first: kill buildkitd then.
		deadline := time.Now().Add(10 * time.Minute)
		for !processWith("sleep", e.slowSleep) {
			b := a.build(id, "")
			require.False(t, b.State.Final(), "attempt %d: the build ended before its compile: %s %s", attempt, b.State, b.Error)
			require.True(t, time.Now().Before(deadline), "attempt %d: the compile never started", attempt)
			time.Sleep(200 * time.Millisecond)
		}
		b := a.build(id, "")
		require.Equal(t, service.StateBuilding, b.State)
		require.Equal(t, attempt, b.Attempts)
		pid := readPID(t, pidFile)
		require.Positive(t, pid)
		require.NoError(t, syscall.Kill(pid, syscall.SIGKILL))
		// What the killed daemon's container leaves runs on; it is not
		// the next attempt's.
		for processWith("sleep", e.slowSleep) {
			_ = killProcessWith("sleep", e.slowSleep)
			time.Sleep(100 * time.Millisecond)
		}
	}
	b := waitFinal(t, a, id, 10*time.Minute)
	require.Equal(t, service.StateFailed, b.State)
	assert.Equal(t, 2, b.Attempts, "retried once (server.retries: 1)")
	require.Len(t, b.Interruptions, 2)
	for _, in := range b.Interruptions {
		assert.Equal(t, service.StateBuilding, in.Phase)
		assert.False(t, in.Graceful)
		assert.Contains(t, in.Reason, "buildkitd")
		assert.NotContains(t, in.Reason, "no network")
	}
	assert.Contains(t, b.Error, "buildkitd")
	assert.Contains(t, b.Error, "(attempt 2; retries: 1)")
	assert.NotContains(t, b.Error, "it ran with no network")
	t.Logf("error: %s", b.Error)
	status, body := a.do("GET", "/v1/builds/"+id+"/log", "", nil)
	require.Equal(t, 200, status)
	assert.Contains(t, string(body), "queued again")

	// The daemon is started again, and builds go on.
	ok := submit(t, a, e.recipe(t, "f7ok", false))
	done := waitFinal(t, a, ok, 10*time.Minute)
	assert.Equal(t, service.StateSucceeded, done.State, done.Error)
	assert.True(t, strings.Contains(lastLines(p.log, 400), "buildkitd is gone: starting it again"))
}
