package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"github.com/sirupsen/logrus"
	"github.com/spf13/cobra"

	"github.com/sailmaker/sailmaker/audit"
	"github.com/sailmaker/sailmaker/config"
	"github.com/sailmaker/sailmaker/service"
	"github.com/sailmaker/sailmaker/store"
	"github.com/sailmaker/sailmaker/web"
)

func init() { subcommands = append(subcommands, newServeCmd) }

type serveOptions struct {
	listen       string
	concurrency  int
	buildTimeout time.Duration
	retries      int
	grace        time.Duration
}

func newServeCmd(g *globalOptions) *cobra.Command {
	o := &serveOptions{}
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run the build service: HTTP API, durable build queue, upstream-tag webhook",
		Long: `Run the build service in the foreground until SIGTERM or Ctrl-C.

It serves the HTTP API described in api/openapi.yaml: queue builds
(POST /v1/builds), follow and cancel them, and CI's signed webhook for new
upstream tags (POST /v1/hooks/upstream-tag). At / it serves web pages for
the same tokens and roles: the builds and their live logs, a form to queue
one, the registry as ` + "`sailmaker audit`" + ` sees it. The queue is kept in the state
directory's database and survives a crash: a build found interrupted is run
again (server.retries times) or marked failed with the reason.

With nothing configured it runs on the embedded defaults: the embedded
registry in-process if none answers at registry.address (loopback only), and
a buildkitd in <state-dir>/buildkitd, started and watched, if none answers at
the default address. Without server.tokens it listens on loopback only and
treats every caller as admin; create tokens with ` + "`sailmaker token new`" + `.

With signing.aptKey set, every build also updates the service's signed apt
repository (packages.aptDir, default <state-dir>/apt) with the recipe's
Debian packages, and it is served read-only under /apt/, to anyone (no
token: apt checks every file against the signed Release):

  deb [signed-by=/etc/apt/keyrings/sailmaker-apt.gpg] http://HOST:8080/apt/ stable main

On SIGTERM it stops taking requests, lets running builds go on for
server.shutdownGrace, then cancels them; they run again at the next start.`,
		Example: `  sailmaker serve
  sailmaker serve --listen 127.0.0.1:8080 --state-dir /srv/sailmaker
  SAILMAKER_WEBHOOK_SECRET=... sailmaker serve --config /etc/sailmaker/config.yaml`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := g.load()
			if err != nil {
				return err
			}
			f := cmd.Flags()
			if f.Changed("listen") {
				cfg.Server.Listen = o.listen
			}
			if f.Changed("concurrency") {
				cfg.Server.Concurrency = o.concurrency
			}
			if f.Changed("build-timeout") {
				cfg.Server.BuildTimeout = o.buildTimeout
			}
			if f.Changed("retries") {
				cfg.Server.Retries = &o.retries
			}
			if f.Changed("shutdown-grace") {
				cfg.Server.ShutdownGrace = o.grace
			}
			if err := cfg.Validate(); err != nil {
				return err
			}
			return runServe(cmd.Context(), cfg, serviceLogger())
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.listen, "listen", "", "listen address (default server.listen, "+config.DefaultListen+")")
	f.IntVar(&o.concurrency, "concurrency", 0, fmt.Sprintf("builds run at once (default server.concurrency, %d)", config.DefaultConcurrency))
	f.DurationVar(&o.buildTimeout, "build-timeout", 0, fmt.Sprintf("time limit of one build attempt (default server.buildTimeout, %s)", config.DefaultBuildTimeout))
	f.IntVar(&o.retries, "retries", 0, fmt.Sprintf("times a build interrupted by a crash is run again (default server.retries, %d)", config.DefaultRetries))
	f.DurationVar(&o.grace, "shutdown-grace", 0, fmt.Sprintf("time running builds get on SIGTERM before they are cancelled (default server.shutdownGrace, %s)", config.DefaultShutdownGrace))
	return cmd
}

// serviceLogger is the service's own logger, set up as the standard one
// (--log-level, --log-format). The embedded registry logs every request
// through the standard logger, and a 404 for a tag not yet pushed as an
// error: below --log-level debug the standard logger keeps only fatal lines.
func serviceLogger() *logrus.Logger {
	std := logrus.StandardLogger()
	l := logrus.New()
	l.SetOutput(std.Out)
	l.SetFormatter(std.Formatter)
	l.SetLevel(std.GetLevel())
	if std.GetLevel() < logrus.DebugLevel {
		std.SetLevel(logrus.FatalLevel)
	}
	return l
}

func runServe(ctx context.Context, cfg *config.Config, log *logrus.Logger) error {
	sc := cfg.Server
	if len(sc.Tokens) == 0 {
		if !config.IsLoopback(sc.Listen) {
			return fmt.Errorf("refusing to listen on %s without tokens: configure server.tokens (`sailmaker token new`), or listen on loopback", sc.Listen)
		}
		log.Warn("no server.tokens configured: every caller acts as admin; this is allowed on loopback only (create tokens with `sailmaker token new`)")
	}
	if sc.Webhook.Secret == "" {
		log.Info("the upstream-tag webhook is off: no secret (server.webhook.secret or SAILMAKER_WEBHOOK_SECRET)")
	}
	if err := os.MkdirAll(cfg.StateDir, 0o755); err != nil {
		return fmt.Errorf("creating the state directory: %w", err)
	}
	unlock, err := lockStateDir(cfg.StateDir)
	if err != nil {
		return err
	}
	defer unlock()
	ln, err := net.Listen("tcp", sc.Listen)
	if err != nil {
		return fmt.Errorf("listening on %s: %w", sc.Listen, err)
	}
	defer ln.Close()

	emb, err := service.StartEmbedded(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer func() {
		c, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := emb.Close(c); err != nil {
			log.WithError(err).Warn("stopping the embedded registry and buildkitd")
		}
	}()
	bg := context.Background()
	st, err := store.OpenDir(bg, cfg.StateDir)
	if err != nil {
		return err
	}
	defer st.Close()
	aud, err := serveAuditor(cfg, st)
	if err != nil {
		return err
	}
	opts := service.Options{Config: cfg, Store: st, Log: log, AuditHandler: audit.Handler(aud),
		// The web pages at / (package web): the same tokens, roles and
		// build operations as the API, and the same auditor.
		WebHandler: func(s *service.Service) http.Handler {
			return web.New(s, web.Options{Auditor: aud, Log: log})
		},
	}
	svc, err := service.New(bg, opts)
	if err != nil {
		return err
	}
	if err := svc.Start(bg); err != nil {
		return err
	}
	handler, err := withAptRepo(cfg, svc.Handler(), log)
	if err != nil {
		return err
	}
	// Slow clients are cut off: headers within service.ReadHeaderTimeout,
	// a body within service.BodyTimeout, idle connections closed after
	// service.IdleTimeout.
	srv := svc.HTTPServer()
	srv.Handler = handler
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	log.WithFields(logrus.Fields{
		"listen": ln.Addr().String(), "state": cfg.StateDir, "registry": cfg.Registry.Address,
		"buildkit": cfg.BuildKit.Address, "concurrency": sc.Concurrency, "tokens": len(sc.Tokens),
	}).Info("sailmaker serve: listening")

	var serveErr error
	select {
	case <-ctx.Done():
	case serveErr = <-served:
	}
	log.WithField("grace", sc.ShutdownGrace.String()).Info("stopping: no new requests; running builds get the grace period")
	shut := make(chan struct{})
	go func() {
		defer close(shut)
		c, cancel := context.WithTimeout(bg, sc.ShutdownGrace+15*time.Second)
		defer cancel()
		if err := srv.Shutdown(c); err != nil {
			_ = srv.Close()
		}
	}()
	stopCtx, cancel := context.WithTimeout(bg, sc.ShutdownGrace+2*time.Minute)
	defer cancel()
	if err := svc.Stop(stopCtx, sc.ShutdownGrace); err != nil {
		log.WithError(err).Error("stopping the builds")
	}
	<-shut
	log.Info("stopped")
	if serveErr != nil && !errors.Is(serveErr, http.ErrServerClosed) {
		return serveErr
	}
	return nil
}

// lockStateDir keeps a second service off the same state directory: the
// queue belongs to one service at a time. The lock goes with the process,
// however it ends.
func lockStateDir(dir string) (func(), error) {
	p := filepath.Join(dir, "serve.lock")
	f, err := os.OpenFile(p, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, fmt.Errorf("opening %s: %w", p, err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		return nil, fmt.Errorf("another `sailmaker serve` uses the state directory %s (%s is locked)", dir, p)
	}
	return func() { _ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN); f.Close() }, nil
}
