// Package devenv starts and stops what sailmaker runs on this machine by
// default: the embedded registry and a buildkitd, both in the background with
// their state in the state directory, so that later commands find them.
package devenv

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/sailmaker/sailmaker/builder/buildkitd"
	"github.com/sailmaker/sailmaker/config"
	"github.com/sailmaker/sailmaker/registry"

	"github.com/sailmaker/sailmaker/internal/tail"
)

// Status says what is running.
type Status struct {
	Registry    string `json:"registry"`
	RegistryUp  bool   `json:"registryUp"`
	RegistryPID int    `json:"registryPid,omitempty"`
	BuildKit    string `json:"buildkit"`
	BuildKitUp  bool   `json:"buildkitUp"`
	BuildKitPID int    `json:"buildkitPid,omitempty"`
	StateDir    string `json:"stateDir"`
}

func registryPIDFile(cfg *config.Config) string { return filepath.Join(cfg.StateDir, "registry.pid") }
func registryLog(cfg *config.Config) string     { return filepath.Join(cfg.StateDir, "registry.log") }

// ownsBuildKit says whether the configured buildkitd is the one dev up starts.
func ownsBuildKit(cfg *config.Config) bool {
	return cfg.BuildKit.Address == buildkitd.Address(cfg.BuildKitDir())
}

// Up starts whatever of the embedded registry and the local buildkitd is
// not already answering. What it starts outlives this process.
func Up(ctx context.Context, cfg *config.Config, log logrus.FieldLogger) (*Status, error) {
	if err := os.MkdirAll(cfg.StateDir, 0o755); err != nil {
		return nil, fmt.Errorf("creating state directory %s: %w", cfg.StateDir, err)
	}
	insecure := cfg.RegistryInsecure(cfg.Registry.Address)
	if err := registry.Ping(ctx, cfg.Registry.Address, insecure); err == nil {
		log.WithField("registry", cfg.Registry.Address).Info("registry already running")
	} else {
		if !config.IsLoopback(cfg.Registry.Address) {
			return nil, fmt.Errorf("the configured registry %s is not reachable, and sailmaker only starts the embedded registry on a loopback address: %w", cfg.Registry.Address, err)
		}
		if err := startRegistry(ctx, cfg); err != nil {
			return nil, err
		}
		log.WithFields(logrus.Fields{"registry": cfg.Registry.Address, "root": cfg.Registry.Root}).Info("started the embedded registry")
	}

	if err := buildkitd.Ping(ctx, cfg.BuildKit.Address); err == nil {
		log.WithField("buildkit", cfg.BuildKit.Address).Info("buildkitd already running")
	} else {
		if !ownsBuildKit(cfg) {
			return nil, fmt.Errorf("buildkitd at %s is not answering (sailmaker starts its own only at the default address): %w", cfg.BuildKit.Address, err)
		}
		var httpRegs []string
		for _, r := range cfg.AllowedRegistries() {
			if cfg.RegistryInsecure(r) {
				httpRegs = append(httpRegs, r)
			}
		}
		log.Info("starting buildkitd")
		if _, err := buildkitd.Start(ctx, buildkitd.Options{Dir: cfg.BuildKitDir(), HTTPRegistries: httpRegs, Detach: true}); err != nil {
			return nil, err
		}
		log.WithField("buildkit", cfg.BuildKit.Address).Info("started buildkitd")
	}
	return Check(ctx, cfg), nil
}

func startRegistry(ctx context.Context, cfg *config.Config) error {
	exe, err := os.Executable()
	if err != nil {
		return err
	}
	logf, err := os.OpenFile(registryLog(cfg), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer logf.Close()
	cmd := exec.Command(exe, "registry", "serve", "--addr", cfg.Registry.Address, "--root", cfg.Registry.Root)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("starting the embedded registry: %w", err)
	}
	pid := cmd.Process.Pid
	if err := os.WriteFile(registryPIDFile(cfg), []byte(strconv.Itoa(pid)+"\n"), 0o644); err != nil {
		return err
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	deadline := time.Now().Add(20 * time.Second)
	for {
		if registry.Ping(ctx, cfg.Registry.Address, true) == nil {
			return nil
		}
		select {
		case err := <-exited:
			return fmt.Errorf("the embedded registry exited while starting (%v); %s ends with:\n%s", err, registryLog(cfg), tail.File(registryLog(cfg), 10))
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the embedded registry did not answer on %s; see %s", cfg.Registry.Address, registryLog(cfg))
		}
	}
}

// Down stops what Up started (by pid file): SIGTERM, then SIGKILL after 20s.
func Down(ctx context.Context, cfg *config.Config, log logrus.FieldLogger) error {
	var errs []error
	for _, p := range []struct{ what, file string }{
		{"buildkitd", buildkitd.PIDFile(cfg.BuildKitDir())},
		{"registry", registryPIDFile(cfg)},
	} {
		pid, ok := readPID(p.file)
		if !ok {
			log.WithField("what", p.what).Info("not running")
			continue
		}
		if err := stopPID(ctx, pid); err != nil {
			errs = append(errs, fmt.Errorf("stopping %s (pid %d): %w", p.what, pid, err))
			continue
		}
		_ = os.Remove(p.file)
		log.WithFields(logrus.Fields{"what": p.what, "pid": pid}).Info("stopped")
	}
	return errors.Join(errs...)
}

// Check reports what answers now.
func Check(ctx context.Context, cfg *config.Config) *Status {
	s := &Status{Registry: cfg.Registry.Address, BuildKit: cfg.BuildKit.Address, StateDir: cfg.StateDir}
	s.RegistryUp = registry.Ping(ctx, cfg.Registry.Address, cfg.RegistryInsecure(cfg.Registry.Address)) == nil
	s.BuildKitUp = buildkitd.Ping(ctx, cfg.BuildKit.Address) == nil
	s.RegistryPID, _ = readPID(registryPIDFile(cfg))
	s.BuildKitPID, _ = readPID(buildkitd.PIDFile(cfg.BuildKitDir()))
	return s
}

// readPID returns the pid in file if that process is alive.
func readPID(file string) (int, bool) {
	b, err := os.ReadFile(file)
	if err != nil {
		return 0, false
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 0 {
		return 0, false
	}
	if syscall.Kill(pid, 0) != nil {
		return 0, false
	}
	return pid, true
}

func stopPID(ctx context.Context, pid int) error {
	if err := syscall.Kill(pid, syscall.SIGTERM); err != nil {
		return err
	}
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		if syscall.Kill(pid, 0) != nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
	return syscall.Kill(pid, syscall.SIGKILL)
}
