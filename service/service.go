// Package service is sailmaker's build service: an HTTP API (versioned under
// /v1, described by api/openapi.yaml) in front of a durable build queue kept
// in the store, the upstream-tag webhook CI calls, and roles by bearer token.
//
// Builds run one attempt at a time through builder.Build (or Options.Run),
// with a concurrency limit and a timeout per attempt. The queue survives a
// crash: a build found running when the service starts was interrupted, and
// is queued again or, with its retries used up, marked failed; the builder
// writes tags only after all content is pushed, so an interrupted push never
// leaves a tag on a half-pushed image.
package service

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/moby/buildkit/client"

	"github.com/sailmaker/sailmaker/api"
	"github.com/sailmaker/sailmaker/aptrepo"
	"github.com/sailmaker/sailmaker/attest"
	"github.com/sailmaker/sailmaker/builder"
	"github.com/sailmaker/sailmaker/builder/pool"
	"github.com/sailmaker/sailmaker/config"
	"github.com/sailmaker/sailmaker/publish"
	"github.com/sailmaker/sailmaker/recipes"
	"github.com/sailmaker/sailmaker/registry"
	"github.com/sailmaker/sailmaker/store"
)

// Job is one attempt of a build, as a RunFunc sees it.
type Job struct {
	Build  *Build
	Recipe *recipes.Recipe
	// Log is the build's log file: progress goes there.
	Log io.Writer
	// Logger writes to Log.
	Logger logrus.FieldLogger
	// OnPhase records the build's phase.
	OnPhase func(api.Phase)
	// BuildKit is the client of the pool worker the attempt runs on, and
	// Worker its name (nil and "" without a pool); CacheRef is the registry
	// cache of the recipe's line ("" when off).
	BuildKit *client.Client
	Worker   string
	CacheRef string
}

// RunFunc runs one attempt of a build. It must return when ctx is done.
// On an error it may still return a result: the images it published
// before it failed.
type RunFunc func(ctx context.Context, job Job) (*api.Result, error)

// Options configure a Service.
type Options struct {
	Config *config.Config
	Store  *store.Store
	// Log receives the service's own log lines (never a token or a secret).
	Log logrus.FieldLogger
	// Run runs a build; default: builder.Build against the configured
	// registry and buildkitd, recording pushes in Store's ledger.
	Run RunFunc
	// NewRecipe derives a recipe from an upstream tag for the webhook;
	// default recipes.New.
	NewRecipe func(context.Context, recipes.NewOptions) (*recipes.Recipe, error)
	// Ready checks what builds need, for /readyz: name -> check. Default:
	// buildkitd and the registry answer.
	Ready map[string]func(context.Context) error
	// AuditHandler, if set, serves GET /v1/audit/... to the auditor role
	// (and above). It sees the request with its full path.
	AuditHandler http.Handler
	// WebHandler, if set, makes the web pages' handler (package web) for
	// the service: it serves every path but /v1/... and the health,
	// readiness and metrics endpoints, and authenticates its own callers
	// (AuthenticateToken, Allows).
	WebHandler func(*Service) http.Handler
	// PollInterval is how often idle workers look at the queue besides being
	// woken; default 2s.
	PollInterval time.Duration
	// Pool is the BuildKit workers builds run on. Default: with the
	// default Run, a pool of the configured workers (Config.Workers()), which
	// the service starts and closes; with a Run of the caller's, none (builds
	// run server.concurrency at a time, with no worker).
	Pool *pool.Pool
}

// Service is a running build service.
type Service struct {
	cfg     *config.Config
	srv     config.ServerConfig
	db      *db
	st      *store.Store
	log     logrus.FieldLogger
	run     RunFunc
	newRec  func(context.Context, recipes.NewOptions) (*recipes.Recipe, error)
	ready   map[string]func(context.Context) error
	audit   http.Handler
	signKey *attest.Key
	policy  config.InputPolicy
	auth    *authenticator
	metrics *metrics
	poll    time.Duration
	// bodyTimeout is how long a request's body may take to arrive.
	bodyTimeout time.Duration
	pool        *pool.Pool
	ownPool     bool
	disk        *diskGuard

	mu      sync.Mutex
	running map[string]*attempt
	queueMu sync.Mutex // serialises dedup checks and inserts

	wake      chan struct{}
	closing   chan struct{}
	closeOnce sync.Once
	workers   sync.WaitGroup
	handler   http.Handler
	mux       *http.ServeMux
	routes    []route
	web       http.Handler // the web pages, if mounted

	// aptSigner signs the service's apt repository (signing.aptKey);
	// without it the service keeps none.
	aptSigner *aptrepo.Signer
}

// attempt is a running attempt of a build.
type attempt struct {
	cancel context.CancelCauseFunc
	done   chan struct{}
}

// reconcileTimeout bounds settling the ledger's pending tag writes when
// the service starts.
const reconcileTimeout = 30 * time.Second

// Causes of a build's context ending early.
var (
	errCancelled = errors.New("cancelled")
	errShutdown  = errors.New("the service is stopping")
)

// New prepares a service: its tables in the store, its routes. Start runs
// the queue.
func New(ctx context.Context, o Options) (*Service, error) {
	if o.Config == nil || o.Store == nil {
		return nil, errors.New("service: Config and Store are required")
	}
	if o.Log == nil {
		l := logrus.New()
		l.SetOutput(io.Discard)
		o.Log = l
	}
	d, err := openDB(ctx, o.Store)
	if err != nil {
		return nil, err
	}
	s := &Service{
		cfg:         o.Config,
		srv:         o.Config.Server,
		db:          d,
		st:          o.Store,
		log:         o.Log,
		run:         o.Run,
		newRec:      o.NewRecipe,
		ready:       o.Ready,
		audit:       o.AuditHandler,
		poll:        o.PollInterval,
		pool:        o.Pool,
		bodyTimeout: BodyTimeout,
		running:     map[string]*attempt{},
		wake:        make(chan struct{}, 1),
		closing:     make(chan struct{}),
	}
	s.policy = o.Config.Server.Policy()
	s.disk = newDiskGuard(o.Config.StateDir, o.Log)
	if s.srv.Retries == nil {
		n := config.DefaultRetries
		s.srv.Retries = &n
	}
	if s.srv.Concurrency < 1 {
		s.srv.Concurrency = 1
	}
	if s.srv.MaxBodyBytes <= 0 {
		s.srv.MaxBodyBytes = config.DefaultMaxBodyBytes
	}
	if s.poll <= 0 {
		s.poll = 2 * time.Second
	}
	if s.run == nil {
		// The configuration's registry settings are checked now, not at
		// the first build.
		if _, err := registry.NewClient(o.Config); err != nil {
			return nil, err
		}
		if o.Config.Signing.Key != "" {
			if s.signKey, err = attest.LoadKey(o.Config.Signing.Key); err != nil {
				return nil, fmt.Errorf("signing.key: %w", err)
			}
		}
		if o.Config.Signing.AptKey != "" {
			if s.aptSigner, err = aptrepo.LoadSigner(o.Config.Signing.AptKey); err != nil {
				return nil, fmt.Errorf("signing.aptKey: %w", err)
			}
		}
		s.run = s.builderRun
		if s.pool == nil {
			p, err := pool.New(pool.Options{Workers: o.Config.Workers(), Log: o.Log})
			if err != nil {
				return nil, err
			}
			s.pool, s.ownPool = p, true
		}
	}
	if s.newRec == nil {
		s.newRec = recipes.New
	}
	if s.ready == nil {
		s.ready = defaultReady(o.Config)
		if s.pool != nil {
			s.ready["buildkit"] = s.poolReady
		}
	}
	// The service's own disk, whatever else is checked.
	ready := map[string]func(context.Context) error{"stateDir": s.disk.check}
	for k, v := range s.ready {
		ready[k] = v
	}
	s.ready = ready
	if s.auth, err = newAuthenticator(s.srv.Tokens); err != nil {
		return nil, err
	}
	s.metrics = newMetrics(s.db)
	if o.WebHandler != nil {
		s.web = o.WebHandler(s)
	}
	if s.pool != nil {
		s.metrics.reg.MustRegister(workerCollector{s})
		s.pool.OnChange(s.kick)
	}
	s.handler = s.routesHandler()
	for _, dir := range []string{s.logDir(), s.recipeDir()} {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, err
		}
	}
	if err := s.disk.makeReserve(); err != nil {
		s.log.WithError(err).WithField("dir", o.Config.StateDir).Warn("no disk reserve in the state directory: if its disk fills up, the end of a build may not be recorded until there is room")
	}
	return s, nil
}

// Open reports whether the service lets unauthenticated callers act as
// admin (no tokens configured).
func (s *Service) Open() bool { return s.auth.open() }

func (s *Service) logDir() string    { return filepath.Join(s.cfg.StateDir, "builds") }
func (s *Service) recipeDir() string { return filepath.Join(s.cfg.StateDir, "recipes") }

// LogPath is where a build's log is kept.
func (s *Service) LogPath(id string) string { return filepath.Join(s.logDir(), id+".log") }

// builderRun is the default RunFunc: the builder, then the registry
// publisher (signing with the configured key, recording in the ledger), its
// pushes logged to the build's log.
func (s *Service) builderRun(ctx context.Context, j Job) (*api.Result, error) {
	rc, err := registry.NewClient(s.cfg, registry.WithLogger(j.Logger))
	if err != nil {
		return nil, err
	}
	pub, cache, err := publish.New(publish.Settings{Outputs: s.outputs(), Registry: rc, Ledger: s.st, Force: j.Build.Force, Key: s.signKey, Log: j.Logger,
		AptSigner: s.aptSigner, IstioctlRetention: s.cfg.Packages.Retention(),
		// Tag writes of earlier builds this publish finds done go on
		// those builds' records.
		OnConfirmed: s.onConfirmed})
	if err != nil {
		return nil, err
	}
	opts := []builder.Option{
		builder.WithProgress(builder.Progress{Out: j.Log, Mode: "plain"}),
		builder.WithLogger(j.Logger),
		builder.WithCache(cache),
	}
	if j.Build.Source != SourceEmbedded {
		opts = append(opts, builder.WithInputPolicy(s.policy))
	}
	if j.BuildKit != nil {
		opts = append(opts, builder.WithBuildKit(j.BuildKit), builder.WithWorker(j.Worker))
	}
	if j.CacheRef != "" {
		opts = append(opts, builder.WithRegistryCache(j.CacheRef))
	}
	b, err := builder.New(s.cfg, rc, opts...)
	if err != nil {
		return nil, err
	}
	tr := j.Build.Trigger
	tr.BuildID, tr.Time = j.Build.ID, j.Build.Created
	req := BuildRequest(j.Build.EnvoySHA256, j.Build.EnvoySHA256ByArch, j.Build.Platforms)
	// The overrides are recorded on the images as the CLI's are.
	req.Trigger, req.NoCache, req.OnPhase = tr, j.Build.Force, j.OnPhase
	out, err := publish.BuildAndPublish(ctx, b, j.Recipe, req, pub)
	if out == nil {
		return nil, err
	}
	res := out.API()
	return &res, err
}

// Start settles the tag writes a previous run left unconfirmed in the
// ledger, recovers builds it left running (each build's record then lists
// every image the ledger says it tagged), then starts the workers. It
// returns without waiting for builds.
func (s *Service) Start(ctx context.Context) error {
	rctx, cancel := context.WithTimeout(ctx, reconcileTimeout)
	touched := s.reconcileLedger(rctx)
	cancel()
	recovered, err := s.recoverInterrupted(ctx)
	if err != nil {
		return fmt.Errorf("recovering the build queue: %w", err)
	}
	seen := map[string]bool{}
	for _, id := range append(touched, recovered...) {
		if !seen[id] {
			seen[id] = true
			s.recordLedgerImages(ctx, id)
		}
	}
	s.workers.Add(1)
	go s.watchDisk()
	if s.pool != nil {
		s.pool.Start(ctx)
		s.workers.Add(1)
		go s.dispatch()
		s.kick()
		return nil
	}
	for i := 0; i < s.srv.Concurrency; i++ {
		s.workers.Add(1)
		go s.worker()
	}
	s.kick()
	return nil
}

// Stop stops taking builds from the queue and ends log streams, lets running
// builds go on for grace, then cancels them and queues them again so the
// next start runs them. It returns when every worker has stopped, or ctx is
// done.
func (s *Service) Stop(ctx context.Context, grace time.Duration) error {
	s.closeOnce.Do(func() { close(s.closing) })
	done := make(chan struct{})
	go func() {
		s.workers.Wait()
		if s.ownPool {
			_ = s.pool.Close()
		}
		close(done)
	}()
	timer := time.NewTimer(grace)
	defer timer.Stop()
	select {
	case <-done:
		return nil
	case <-timer.C:
	case <-ctx.Done():
	}
	s.mu.Lock()
	n := len(s.running)
	for _, a := range s.running {
		a.cancel(errShutdown)
	}
	s.mu.Unlock()
	if n > 0 {
		s.log.WithField("builds", n).Warn("grace period over: cancelling running builds; they are queued again for the next start")
	}
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("builds still running at shutdown: %w", ctx.Err())
	}
}

func (s *Service) kick() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

func (s *Service) isClosing() bool {
	select {
	case <-s.closing:
		return true
	default:
		return false
	}
}

func (s *Service) worker() {
	defer s.workers.Done()
	ticker := time.NewTicker(s.poll)
	defer ticker.Stop()
	for {
		if s.isClosing() {
			return
		}
		b, err := s.claim()
		if err != nil {
			s.log.WithError(err).Error("taking a build from the queue")
		}
		if b != nil {
			s.execute(b, nil)
			continue
		}
		select {
		case <-s.wake:
		case <-ticker.C:
		case <-s.closing:
			return
		}
	}
}

func (s *Service) claim() (*Build, error) {
	s.queueMu.Lock()
	defer s.queueMu.Unlock()
	if s.isClosing() || s.disk.isFull() {
		// A build started on a full disk would fail for that alone.
		return nil, nil
	}
	b, err := s.db.claim(context.Background(), time.Now())
	if errors.Is(err, errNotQueued) {
		return nil, nil
	}
	if store.DiskFull(err) {
		s.disk.noteFull("taking a build from the queue", err)
		return nil, nil
	}
	return b, err
}

// recoverInterrupted handles builds a previous run of the service left
// running: each was interrupted (the service crashed or was killed). It is
// queued again while it has retries left, else marked failed, the reason
// kept either way.
func (s *Service) recoverInterrupted(ctx context.Context) ([]string, error) {
	stuck, err := s.db.list(ctx, ListFilter{States: []State{StateFetching, StateBuilding, StatePushing}})
	if err != nil {
		return nil, err
	}
	retries := *s.srv.Retries
	var ids []string
	for _, b := range stuck {
		ids = append(ids, b.ID)
		now := time.Now()
		reason := fmt.Sprintf("interrupted: the service stopped during %s", b.State)
		nb, err := s.saveRecord(ctx, b.ID, "recording an interrupted build", func(b *Build) error {
			b.Interruptions = append(b.Interruptions, Interruption{Time: now, Phase: b.State, Reason: reason})
			crashes := 0
			for _, in := range b.Interruptions {
				if !in.Graceful {
					crashes++
				}
			}
			if crashes > retries {
				b.State, b.Finished = StateFailed, &now
				b.Error = fmt.Sprintf("%s (attempt %d; retries: %d)", reason, b.Attempts, retries)
			} else {
				b.State = StateQueued
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
		fields := logrus.Fields{"build": b.ID, "recipe": b.Recipe, "phase": b.State, "attempts": nb.Attempts}
		if nb.State == StateFailed {
			s.log.WithFields(fields).Warn(reason + "; no retries left: marked failed")
			s.appendLog(b.ID, "sailmaker: %s; no retries left: the build failed\n", reason)
			s.metrics.finished(nb)
		} else {
			s.log.WithFields(fields).Warn(reason + "; queued again")
			s.appendLog(b.ID, "sailmaker: %s; queued again\n", reason)
		}
	}
	return ids, nil
}

func (s *Service) appendLog(id, format string, args ...any) {
	f, err := os.OpenFile(s.LogPath(id), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err == nil {
		_, err = fmt.Fprintf(f, format, args...)
		f.Close()
	}
	if err != nil {
		if store.DiskFull(err) {
			s.disk.noteFull("writing a build log", err)
		}
		s.log.WithError(err).WithField("build", id).Error("writing the build log")
	}
}

// execute runs one attempt of b, which claim moved to fetching, on the
// leased worker (nil without a pool), and gives the lease back.
func (s *Service) execute(b *Build, lease *pool.Lease) {
	log := s.log.WithFields(logrus.Fields{"build": b.ID, "recipe": b.Recipe, "attempt": b.Attempts})
	base, cancel := context.WithCancelCause(context.Background())
	defer cancel(nil)
	ctx := base
	if s.srv.BuildTimeout > 0 {
		var c context.CancelFunc
		ctx, c = context.WithTimeout(base, s.srv.BuildTimeout)
		defer c()
	}
	a := &attempt{cancel: cancel, done: make(chan struct{})}
	s.mu.Lock()
	s.running[b.ID] = a
	s.mu.Unlock()
	// A cancel that came between the claim and now found no attempt to stop.
	if cur, err := s.db.get(context.Background(), b.ID); err == nil && cur.CancelledBy != "" {
		cancel(errCancelled)
	}
	defer func() {
		s.mu.Lock()
		delete(s.running, b.ID)
		s.mu.Unlock()
		close(a.done)
	}()
	if lease != nil {
		log = log.WithField("worker", lease.Name())
		s.onWorker(b, lease, log)
	}
	s.metrics.started()
	log.Info("build started")

	res, err := s.runAttempt(ctx, b, lease, log)
	var lost error
	if lease != nil {
		lost = lease.Release(ctx, err)
	}

	now := time.Now()
	cause := context.Cause(ctx)
	cur, gerr := s.db.get(context.Background(), b.ID)
	if gerr != nil {
		log.WithError(gerr).Error("recording the end of a build")
		return
	}
	// Work out the end, write it to the build log, then record it: a
	// follower of the log stops once the state is final.
	var (
		state   = StateFailed
		msg     string
		intr    *Interruption
		lostMsg string
	)
	switch {
	case err == nil:
		state, msg = StateSucceeded, fmt.Sprintf("sailmaker: build %s succeeded\n", b.ID)
	case lost != nil && cause == nil:
		state, lostMsg, intr, msg = s.workerLost(b, cur, lost)
	case errors.Is(cause, errCancelled):
		state = StateCancelled
	case errors.Is(cause, errShutdown):
		state = StateQueued
		reason := fmt.Sprintf("interrupted: the service was stopped during %s", cur.State)
		intr = &Interruption{Time: now, Phase: cur.State, Reason: reason, Graceful: true}
		msg = "sailmaker: " + reason + "; it is queued again for the next start\n"
	}
	errMsg := ""
	switch {
	case state == StateCancelled:
		errMsg = "cancelled by " + cur.CancelledBy
	case state == StateFailed && lostMsg != "":
		errMsg = lostMsg
	case state == StateFailed && errors.Is(cause, context.DeadlineExceeded):
		errMsg = fmt.Sprintf("timed out after %s (server.buildTimeout) during %s: %v", s.srv.BuildTimeout, cur.State, err)
	case state == StateFailed && (store.DiskFull(err) || s.disk.fullNow()):
		// The error may not say so (BuildKit's export to a full disk can
		// end in a bare EOF): the disk is full now, and that is the cause
		// to name first.
		s.disk.noteFull("build "+b.ID, err)
		errMsg = fmt.Sprintf("the state directory's disk is full (%s): %s", s.cfg.StateDir, diskFullCause(err))
	case state == StateFailed:
		errMsg = err.Error()
	}
	if msg == "" {
		msg = fmt.Sprintf("sailmaker: build %s %s: %s\n", b.ID, state, errMsg)
	}
	s.appendLog(b.ID, "%s", msg)
	nb, uerr := s.saveRecord(context.Background(), b.ID, "recording the end of build "+b.ID, func(b *Build) error {
		b.State, b.Error = state, errMsg
		if state == StateCancelled {
			// The first cancel's actor, as recorded (a later one changes
			// nothing).
			b.Error = "cancelled by " + b.CancelledBy
		} else if state.Final() {
			// A cancel that came after the attempt ended did nothing.
			b.CancelledBy = ""
		}
		if state.Final() {
			b.Finished = &now
		}
		if intr != nil {
			b.Interruptions = append(b.Interruptions, *intr)
		}
		if res != nil {
			// A failed build keeps the images it published before it
			// failed (their tags are in the registry), and those an
			// earlier attempt tagged.
			b.Images = mergeImages(b.Images, res.Images)
		}
		if state == StateSucceeded {
			b.UpToDate = res.UpToDate
			b.Timings = res.Timings
		}
		return nil
	})
	if uerr != nil {
		log.WithError(uerr).Error("recording the end of a build")
		return
	}
	s.metrics.finished(nb)
	fields := logrus.Fields{"state": nb.State}
	if nb.Error != "" {
		fields["error"] = nb.Error
	}
	if lost != nil {
		fields["lost"] = lost.Error()
	}
	log.WithFields(fields).Info("build ended")
	if nb.State == StateQueued {
		s.kick()
	}
}

// compileFailed is how the builder explains a failed compile; a full disk
// is not a build that tried the network.
const compileFailed = "the build failed (it ran with no network; upstream's make targets ran in the builder image): "

// diskFullCause is a build's error that a full disk caused, without the
// builder's explanation of a failed compile.
func diskFullCause(err error) string {
	msg := strings.Replace(err.Error(), compileFailed, "", 1)
	if i := strings.Index(msg, "\nlast lines of the build:"); i >= 0 {
		msg = msg[:i]
	}
	return msg
}

// runAttempt loads the recipe and runs the build with its log file.
func (s *Service) runAttempt(ctx context.Context, b *Build, lease *pool.Lease, log logrus.FieldLogger) (*api.Result, error) {
	f, err := os.OpenFile(s.LogPath(b.ID), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("opening the build log: %w", err)
	}
	defer f.Close()
	out := &lockedWriter{w: f}
	fmt.Fprintf(out, "sailmaker: build %s of %s, attempt %d, asked for by %s (%s) at %s\n",
		b.ID, b.Recipe, b.Attempts, b.Trigger.Actor, b.Trigger.Kind, b.Created.UTC().Format(time.RFC3339))
	r, err := s.loadBuildRecipe(ctx, b)
	if err != nil {
		return nil, err
	}
	logger := logrus.New()
	logger.SetOutput(out)
	logger.SetLevel(logrus.InfoLevel)
	logger.SetFormatter(&logrus.TextFormatter{DisableColors: true, FullTimestamp: true})
	for _, w := range r.Warnings() {
		logger.Warn(w)
	}
	job := Job{
		Build:  b,
		Recipe: r,
		Log:    out,
		Logger: logger.WithField("build", b.ID),
		OnPhase: func(p api.Phase) {
			s.phase(b.ID, State(p), log)
		},
	}
	if lease != nil {
		job.BuildKit, job.Worker = lease.Client(), lease.Name()
		job.CacheRef = s.cacheRef(lineOf(r))
		job.Logger = job.Logger.WithField("worker", lease.Name())
	}
	res, err := s.runSafely(ctx, job)
	if err == nil && res == nil {
		err = errors.New("the build returned no result")
	}
	return res, err
}

// runSafely turns a panic in a build into its failure.
func (s *Service) runSafely(ctx context.Context, j Job) (res *api.Result, err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("internal error: %v", p)
			s.log.WithField("build", j.Build.ID).WithField("panic", p).Error("a build panicked")
		}
	}()
	return s.run(ctx, j)
}

func (s *Service) phase(id string, p State, log logrus.FieldLogger) {
	now := time.Now()
	_, err := s.db.update(context.Background(), id, func(b *Build) error {
		if !b.State.Running() {
			return nil
		}
		b.State = p
		if b.Phases == nil {
			b.Phases = map[State]time.Time{}
		}
		b.Phases[p] = now
		return nil
	})
	if err != nil {
		if store.DiskFull(err) {
			s.disk.noteFull("recording a build's phase", err)
		}
		log.WithError(err).Error("recording a build's phase")
		return
	}
	log.WithField("phase", p).Debug("build phase")
}

// Cancel cancels a queued or running build; it returns the build once the
// attempt has stopped (or after wait), and ErrFinal for a finished one.
//
// Of two cancels at once, the first recorded wins: the build's
// cancelledBy and error name its actor. The other changes nothing; it
// waits as the first does and returns the build as the first left it
// (cancelledBy then names someone else than actor).
func (s *Service) Cancel(ctx context.Context, id, actor string, wait time.Duration) (*Build, error) {
	s.queueMu.Lock()
	now := time.Now()
	first := false
	b, err := s.saveRecord(ctx, id, "recording the cancel of build "+id, func(b *Build) error {
		if b.State.Final() {
			return &finalError{state: b.State, by: b.CancelledBy}
		}
		if b.CancelledBy == "" {
			b.CancelledBy, first = actor, true
		}
		if b.State == StateQueued {
			b.State, b.Finished = StateCancelled, &now
			b.Error = "cancelled by " + b.CancelledBy + " before it started"
			if b.Attempts > 0 {
				b.Error = "cancelled by " + b.CancelledBy + " while it was queued again"
			}
		}
		return nil
	})
	s.queueMu.Unlock()
	if err != nil {
		return nil, err
	}
	fields := logrus.Fields{"build": id, "by": actor}
	if !first {
		s.log.WithFields(fields).WithField("first", b.CancelledBy).Info("build already being cancelled: this cancel changes nothing")
	} else {
		s.log.WithFields(fields).Info("build cancelled")
	}
	if b.State == StateCancelled {
		s.appendLog(b.ID, "sailmaker: %s\n", b.Error)
		s.metrics.finished(b)
		return b, nil
	}
	// A build just taken from the queue may not have its attempt yet (it
	// cancels itself when it starts): wait for either.
	timeout := time.After(wait)
	var a *attempt
	for a == nil {
		s.mu.Lock()
		a = s.running[id]
		s.mu.Unlock()
		if a != nil {
			break
		}
		cur, err := s.db.get(context.WithoutCancel(ctx), id)
		if err != nil || !cur.State.Running() {
			return cur, err
		}
		select {
		case <-time.After(20 * time.Millisecond):
		case <-timeout:
			return cur, nil
		case <-ctx.Done():
			return cur, nil
		}
	}
	a.cancel(errCancelled)
	select {
	case <-a.done:
	case <-timeout:
	case <-ctx.Done():
	}
	return s.db.get(context.WithoutCancel(ctx), id)
}

type finalError struct {
	state State
	by    string // who cancelled it
}

func (e *finalError) Error() string {
	if e.state == StateCancelled && e.by != "" {
		return "the build was already cancelled by " + e.by
	}
	return fmt.Sprintf("the build has already %s", e.state)
}

// lockedWriter serialises the writes of the progress display and the
// build's logger to the one log file.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}
