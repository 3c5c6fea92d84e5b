package service

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/sailmaker/sailmaker/builder"
	"github.com/sailmaker/sailmaker/builder/buildkitd"
	"github.com/sailmaker/sailmaker/config"
	"github.com/sailmaker/sailmaker/registry"
)

// defaultReady checks that buildkitd and the registry answer.
func defaultReady(cfg *config.Config) map[string]func(context.Context) error {
	return map[string]func(context.Context) error{
		"buildkit": func(ctx context.Context) error { return pingBuildKit(ctx, cfg) },
		"registry": func(ctx context.Context) error {
			return registry.Ping(ctx, cfg.Registry.Address, cfg.RegistryInsecure(cfg.Registry.Address))
		},
	}
}

// Embedded is what the service runs itself when nothing else does: the
// embedded registry (in-process) and a buildkitd (a supervised process).
type Embedded struct {
	cfg *config.Config
	log logrus.FieldLogger

	registry *registry.Server

	mu      sync.Mutex
	daemon  *buildkitd.Daemon // the buildkitd this process started, if any
	stop    chan struct{}
	stopped chan struct{}
}

// StartEmbedded starts what the configuration points at but does not find:
// the embedded registry when the configured registry is a loopback address
// that does not answer, and a buildkitd in <state>/buildkitd when the
// configured address is that one's and nothing answers there. The buildkitd
// is watched and started again if it exits. A buildkitd already answering
// there (one `sailmaker dev up` started, or one left by a service that was
// killed) is used as it is.
func StartEmbedded(ctx context.Context, cfg *config.Config, log logrus.FieldLogger) (*Embedded, error) {
	e := &Embedded{cfg: cfg, log: log, stop: make(chan struct{}), stopped: make(chan struct{})}
	insecure := cfg.RegistryInsecure(cfg.Registry.Address)
	if err := registry.Ping(ctx, cfg.Registry.Address, insecure); err != nil {
		if !config.IsLoopback(cfg.Registry.Address) {
			return nil, fmt.Errorf("the configured registry %s does not answer, and sailmaker serves the embedded registry only on a loopback address: %w", cfg.Registry.Address, err)
		}
		srv, err := registry.NewServer(ctx, cfg.Registry.Root)
		if err != nil {
			return nil, err
		}
		if err := srv.Start(cfg.Registry.Address); err != nil {
			return nil, err
		}
		e.registry = srv
		log.WithFields(logrus.Fields{"registry": srv.Addr(), "root": cfg.Registry.Root}).Info("serving the embedded registry")
	} else {
		log.WithField("registry", cfg.Registry.Address).Info("using the registry that answers there")
	}

	if n := len(cfg.BuildKit.Workers); n > 0 {
		log.WithField("workers", n).Info("builds run on the configured pool of BuildKit workers (buildkit.workers): no local buildkitd")
	} else if err := pingBuildKit(ctx, cfg); err == nil {
		log.WithField("buildkit", cfg.BuildKit.Address).Info("using the buildkitd that answers there")
	} else if e.owns() {
		if err := e.startBuildKit(ctx); err != nil {
			if e.registry != nil {
				_ = e.registry.Close(context.Background())
			}
			return nil, err
		}
	} else {
		log.WithError(err).WithField("buildkit", cfg.BuildKit.Address).Warn("buildkitd does not answer at the configured address (sailmaker starts its own only at the default, <state>/buildkitd): builds fail until it does")
	}
	if e.owns() {
		go e.supervise()
	} else {
		close(e.stopped)
	}
	return e, nil
}

// pingBuildKit checks that the configured buildkitd answers (with its TLS
// settings).
func pingBuildKit(ctx context.Context, cfg *config.Config) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	c, err := builder.Connect(ctx, cfg)
	if err != nil {
		return err
	}
	return c.Close()
}

// owns says whether the configured buildkitd is the one in <state>/buildkitd.
func (e *Embedded) owns() bool {
	return e.cfg.BuildKit.Address == buildkitd.Address(e.cfg.BuildKitDir())
}

func (e *Embedded) httpRegistries() []string {
	var regs []string
	for _, r := range e.cfg.AllowedRegistries() {
		if e.cfg.RegistryInsecure(r) {
			regs = append(regs, r)
		}
	}
	return regs
}

func (e *Embedded) startBuildKit(ctx context.Context) error {
	e.log.WithField("dir", e.cfg.BuildKitDir()).Info("starting buildkitd")
	// Detached, with a pid file: `sailmaker dev down` can stop it too, and
	// a buildkitd left by a killed service is found and used by the next.
	d, err := buildkitd.Start(ctx, buildkitd.Options{Dir: e.cfg.BuildKitDir(), HTTPRegistries: e.httpRegistries(), Detach: true})
	if err != nil {
		return fmt.Errorf("starting buildkitd: %w", err)
	}
	e.mu.Lock()
	e.daemon = d
	e.mu.Unlock()
	e.log.WithField("buildkit", d.Address).Info("started buildkitd")
	return nil
}

// supervise starts buildkitd again when its process is gone. It goes by the
// process, not by pings, so a buildkitd busy with a build is left alone.
func (e *Embedded) supervise() {
	defer close(e.stopped)
	ticker := time.NewTicker(3 * time.Second)
	defer ticker.Stop()
	for {
		select {
		case <-e.stop:
			return
		case <-ticker.C:
		}
		if pidAlive(buildkitd.PIDFile(e.cfg.BuildKitDir())) {
			continue
		}
		if pingBuildKit(context.Background(), e.cfg) == nil {
			continue // one answers without a pid file: not ours to manage
		}
		e.log.Warn("buildkitd is gone: starting it again")
		ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
		if err := e.startBuildKit(ctx); err != nil {
			e.log.WithError(err).Error("starting buildkitd again")
		}
		cancel()
	}
}

func pidAlive(file string) bool {
	b, err := os.ReadFile(file)
	if err != nil {
		return false
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 0 {
		return false
	}
	return syscall.Kill(pid, 0) == nil
}

// Close stops the buildkitd this process started (not one it found running)
// and the embedded registry.
func (e *Embedded) Close(ctx context.Context) error {
	select {
	case <-e.stop:
	default:
		close(e.stop)
	}
	<-e.stopped
	var errs []error
	e.mu.Lock()
	d := e.daemon
	e.daemon = nil
	e.mu.Unlock()
	if d != nil {
		e.log.Info("stopping buildkitd")
		errs = append(errs, d.Stop(ctx))
	}
	if e.registry != nil {
		errs = append(errs, e.registry.Close(ctx))
	}
	return errors.Join(errs...)
}
