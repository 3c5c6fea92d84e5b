// Package buildkitd starts, finds and stops the buildkitd that sailmaker
// drives: the OCI worker with runc, state in one directory, and a config that
// marks the internal loopback registries as plain HTTP.
package buildkitd

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/moby/buildkit/client"

	"github.com/sailmaker/sailmaker/internal/tail"
)

// PinnedVersion is the BuildKit version sailmaker is built against and
// builds into bin/ (BUILDKIT_VERSION in the Makefile; a test keeps them
// equal). The build service refuses workers that report another.
const PinnedVersion = "v0.33.1"

// TLSFiles are a buildkitd's mutual TLS files: the CA that client
// certificates must be signed by, and the daemon's certificate and key.
type TLSFiles struct {
	CACert, Cert, Key string
}

// Options describe one buildkitd.
type Options struct {
	// Binary is the buildkitd executable; empty: FindBinary("buildkitd").
	Binary string
	// Dir holds buildkitd.toml, the socket, the log and the state (root/).
	Dir string
	// HTTPRegistries are host:port registries buildkitd may reach over plain
	// HTTP (loopback registries).
	HTTPRegistries []string
	// GCKeepBytes bounds the build cache; 0 means 20 GiB.
	GCKeepBytes int64
	// Detach starts buildkitd in its own session so that it outlives this
	// process (for `dev up`); otherwise it is stopped with the context.
	Detach bool
	// TCP, if set, is a host:port buildkitd listens on besides its unix
	// socket, with mutual TLS (TLS is then required): the way a pool
	// worker is reached.
	TCP string
	TLS *TLSFiles
	// Rootless runs buildkitd in BuildKit's rootless mode, through
	// rootlesskit, as User (a user name with /etc/subuid and /etc/subgid
	// ranges; required when this process is root). Dir must be writable by
	// that user, and TLS files readable.
	Rootless bool
	User     string
	// NoProcessSandbox passes --oci-worker-no-process-sandbox (rootless
	// only): build steps share buildkitd's PID namespace, for containers
	// that may not mount a new /proc (Kubernetes without procMount).
	NoProcessSandbox bool
}

// Daemon is a started buildkitd.
type Daemon struct {
	Address string
	Dir     string
	cmd     *exec.Cmd
	done    chan error
}

// Address is the unix socket of the buildkitd kept in dir.
func Address(dir string) string { return "unix://" + filepath.Join(dir, "buildkitd.sock") }

// PIDFile is where a detached buildkitd's pid is kept.
func PIDFile(dir string) string { return filepath.Join(dir, "buildkitd.pid") }

// LogFile is where buildkitd's output goes.
func LogFile(dir string) string { return filepath.Join(dir, "buildkitd.log") }

// Preflight checks what buildkitd's OCI worker needs and says what to do
// about whatever is missing.
func Preflight() error {
	if os.Geteuid() != 0 {
		return errors.New("buildkitd runs as root with the OCI worker: run this as root (for example `sudo make demo`)")
	}
	if _, err := exec.LookPath("runc"); err != nil {
		return errors.New("runc is missing: install it with `apt-get install runc` (make demo and make test do this)")
	}
	return nil
}

// FindBinary looks for a sailmaker helper binary (buildkitd, buildctl): in
// $SAILMAKER_BIN_DIR, next to the running executable, in ./bin, then in PATH.
func FindBinary(name string) (string, error) {
	var dirs []string
	if d := os.Getenv("SAILMAKER_BIN_DIR"); d != "" {
		dirs = append(dirs, d)
	}
	if exe, err := os.Executable(); err == nil {
		dirs = append(dirs, filepath.Dir(exe))
	}
	dirs = append(dirs, "bin")
	for _, d := range dirs {
		p := filepath.Join(d, name)
		if fi, err := os.Stat(p); err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0 {
			return filepath.Abs(p)
		}
	}
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	return "", fmt.Errorf("%s not found: run `make %s` to build it from the pinned BuildKit module, or set SAILMAKER_BIN_DIR", name, "bin/"+name)
}

// Config renders buildkitd.toml for these options.
func Config(o Options) string {
	keep := o.GCKeepBytes
	if keep == 0 {
		keep = 20 << 30
	}
	var b strings.Builder
	fmt.Fprintf(&b, "# Written by sailmaker.\nroot = %q\n\n", filepath.Join(o.Dir, "root"))
	b.WriteString("[grpc]\n")
	if o.TCP != "" {
		fmt.Fprintf(&b, "  address = [%q, %q]\n", Address(o.Dir), "tcp://"+o.TCP)
	} else {
		fmt.Fprintf(&b, "  address = [%q]\n", Address(o.Dir))
	}
	if o.TLS != nil {
		fmt.Fprintf(&b, "  [grpc.tls]\n    cert = %q\n    key = %q\n    ca = %q\n", o.TLS.Cert, o.TLS.Key, o.TLS.CACert)
	}
	b.WriteString("\n")
	b.WriteString("[worker.oci]\n  enabled = true\n  snapshotter = \"overlayfs\"\n  gc = true\n")
	fmt.Fprintf(&b, "  gckeepstorage = %d\n\n", keep)
	b.WriteString("[worker.containerd]\n  enabled = false\n")
	regs := append([]string(nil), o.HTTPRegistries...)
	sort.Strings(regs)
	for _, r := range regs {
		fmt.Fprintf(&b, "\n[registry.%q]\n  http = true\n", r)
	}
	return b.String()
}

// Start writes the config and starts buildkitd, then waits until it answers.
func Start(ctx context.Context, o Options) (*Daemon, error) {
	if o.TCP != "" && o.TLS == nil {
		return nil, fmt.Errorf("buildkitd on tcp://%s: mutual TLS files are required (sailmaker certs new makes them)", o.TCP)
	}
	if o.Rootless {
		if err := PreflightRootless(o.User); err != nil {
			return nil, err
		}
	} else if err := Preflight(); err != nil {
		return nil, err
	}
	if o.Binary == "" {
		p, err := FindBinary("buildkitd")
		if err != nil {
			return nil, err
		}
		o.Binary = p
	}
	if err := os.MkdirAll(o.Dir, 0o755); err != nil {
		return nil, fmt.Errorf("creating buildkitd directory: %w", err)
	}
	cfgPath := filepath.Join(o.Dir, "buildkitd.toml")
	if err := os.WriteFile(cfgPath, []byte(Config(o)), 0o644); err != nil {
		return nil, fmt.Errorf("writing buildkitd config: %w", err)
	}
	// A socket left by a killed buildkitd makes the new one fail to listen.
	_ = os.Remove(strings.TrimPrefix(Address(o.Dir), "unix://"))
	logf, err := os.OpenFile(LogFile(o.Dir), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("opening buildkitd log: %w", err)
	}
	defer logf.Close()

	name, args := o.Binary, []string{"--config", cfgPath}
	if o.Rootless {
		name, args = rootlessCommand(o, cfgPath)
	}
	var cmd *exec.Cmd
	if o.Detach {
		cmd = exec.Command(name, args...)
		cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	} else {
		cmd = exec.CommandContext(ctx, name, args...)
		cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
		cmd.WaitDelay = 10 * time.Second
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	if o.Rootless {
		if err := runAsUser(cmd, o); err != nil {
			return nil, err
		}
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting %s: %w", o.Binary, err)
	}
	d := &Daemon{Address: Address(o.Dir), Dir: o.Dir, cmd: cmd, done: make(chan error, 1)}
	go func() { d.done <- cmd.Wait() }()
	if o.Detach {
		if err := os.WriteFile(PIDFile(o.Dir), []byte(fmt.Sprintf("%d\n", cmd.Process.Pid)), 0o644); err != nil {
			return nil, err
		}
	}
	if err := d.waitReady(ctx, 60*time.Second); err != nil {
		_ = d.Stop(context.Background())
		return nil, err
	}
	return d, nil
}

func (d *Daemon) waitReady(ctx context.Context, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		select {
		case err := <-d.done:
			d.done <- err
			return fmt.Errorf("buildkitd exited while starting (%v); its log %s ends with:\n%s", err, LogFile(d.Dir), tail.File(LogFile(d.Dir), 15))
		default:
		}
		if err := Ping(ctx, d.Address); err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("buildkitd did not answer on %s within %s; its log %s ends with:\n%s", d.Address, timeout, LogFile(d.Dir), tail.File(LogFile(d.Dir), 15))
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// Stop ends the buildkitd this Daemon started: SIGTERM, then SIGKILL after
// 20 seconds.
func (d *Daemon) Stop(ctx context.Context) error {
	if d.cmd == nil || d.cmd.Process == nil {
		return nil
	}
	_ = d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-d.done:
	case <-time.After(20 * time.Second):
		_ = d.cmd.Process.Kill()
		<-d.done
	case <-ctx.Done():
		_ = d.cmd.Process.Kill()
	}
	_ = os.Remove(PIDFile(d.Dir))
	return nil
}

// Ping asks buildkitd at addr for its workers.
func Ping(ctx context.Context, addr string, opts ...client.ClientOpt) error {
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	c, err := client.New(ctx, addr, opts...)
	if err != nil {
		return err
	}
	defer c.Close()
	return CheckWorkers(ctx, c)
}

// CheckWorkers asks an open client's buildkitd for its workers, waiting at
// most 3 seconds.
func CheckWorkers(ctx context.Context, c *client.Client) error {
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	ws, err := c.ListWorkers(ctx)
	if err != nil {
		return err
	}
	if len(ws) == 0 {
		return errors.New("buildkitd has no workers")
	}
	return nil
}

// PID is the started process's pid (rootlesskit's, for a rootless daemon).
func (d *Daemon) PID() int {
	if d.cmd == nil || d.cmd.Process == nil {
		return 0
	}
	return d.cmd.Process.Pid
}

// Exited reports whether the process has ended.
func (d *Daemon) Exited() bool {
	select {
	case err := <-d.done:
		d.done <- err
		return true
	default:
		return false
	}
}
