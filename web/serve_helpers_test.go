package web_test

import (
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"gopkg.in/yaml.v3"

	"github.com/sailmaker/sailmaker/internal/testenv"
)

var (
	binOnce sync.Once
	binDir  string
	binPath string
	binErr  error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if binDir != "" {
		_ = os.RemoveAll(binDir)
	}
	os.Exit(code)
}

// sailmakerBinary builds the real binary once per test process.
func sailmakerBinary(t *testing.T) string {
	t.Helper()
	binOnce.Do(func() {
		if binDir, binErr = os.MkdirTemp("", "sailmaker-bin-"); binErr != nil {
			return
		}
		binPath = filepath.Join(binDir, "sailmaker")
		cmd := exec.Command("go", "build", "-o", binPath, "./cmd/sailmaker")
		cmd.Dir = testenv.ModuleRoot(t)
		if out, err := cmd.CombinedOutput(); err != nil {
			binErr = fmt.Errorf("go build: %w\n%s", err, out)
		}
	})
	require.NoError(t, binErr)
	return binPath
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	return ln.Addr().String()
}

// cleanEnv is this process's environment without sailmaker's settings.
func cleanEnv(extra ...string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "SAILMAKER_") || strings.HasPrefix(kv, "BUILDKIT_HOST=") {
			continue
		}
		env = append(env, kv)
	}
	return append(env, extra...)
}

func writeConfig(t *testing.T, state string, cfg map[string]any) {
	t.Helper()
	data, err := yaml.Marshal(cfg)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(state, "config.yaml"), data, 0o600))
}

// serveProc is a running `sailmaker serve`.
type serveProc struct {
	t    *testing.T
	cmd  *exec.Cmd
	url  string
	log  string
	done chan error
}

// startServe runs `sailmaker serve` on state (its config in
// <state>/config.yaml) and waits until it answers /healthz.
func startServe(t *testing.T, state, listen string, env ...string) *serveProc {
	t.Helper()
	logPath := filepath.Join(state, "serve.log")
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	require.NoError(t, err)
	defer logf.Close()
	cmd := exec.Command(sailmakerBinary(t), "serve", "--state-dir", state, "--listen", listen)
	cmd.Env = cleanEnv(append([]string{"SAILMAKER_BIN_DIR=" + filepath.Join(testenv.ModuleRoot(t), "bin")}, env...)...)
	cmd.Stdout, cmd.Stderr = logf, logf
	require.NoError(t, cmd.Start())
	p := &serveProc{t: t, cmd: cmd, url: "http://" + listen, log: logPath, done: make(chan error, 1)}
	go func() { p.done <- cmd.Wait() }()
	t.Cleanup(func() {
		if p.cmd.ProcessState == nil {
			_ = p.cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-p.done:
			case <-time.After(90 * time.Second):
				_ = p.cmd.Process.Kill()
			}
		}
		if t.Failed() {
			t.Logf("serve log (%s), last lines:\n%s", logPath, lastLines(logPath, 60))
		}
	})
	deadline := time.Now().Add(120 * time.Second)
	for {
		resp, err := http.Get(p.url + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return p
			}
		}
		select {
		case err := <-p.done:
			p.done <- err
			t.Fatalf("sailmaker serve exited while starting (%v):\n%s", err, lastLines(logPath, 40))
		case <-time.After(200 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("sailmaker serve did not answer on %s:\n%s", listen, lastLines(logPath, 40))
		}
	}
}

// term sends SIGTERM and waits for a clean exit.
func (p *serveProc) term(within time.Duration) {
	p.t.Helper()
	require.NoError(p.t, p.cmd.Process.Signal(syscall.SIGTERM))
	select {
	case err := <-p.done:
		require.NoError(p.t, err, "serve should exit 0 on SIGTERM:\n%s", lastLines(p.log, 30))
	case <-time.After(within):
		p.t.Fatalf("serve did not stop within %s of SIGTERM", within)
	}
}

func lastLines(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
