// Package pool keeps a pool of stock buildkitd workers for the build
// service: one long-lived BuildKit client per worker (TCP with mutual TLS,
// or a unix socket), health probes with backoff, a check that every worker
// runs the pinned BuildKit version, drains, and sticky routing.
//
// Routing is by recipe line (the source repository and minor version, see
// LineOf): the workers are ranked for a line by rendezvous hashing, so a
// line keeps going to the same worker while it is up and has a free slot
// (its Go build cache mount stays warm there), the next in its ranking
// takes it otherwise, and adding or removing a worker moves only the lines
// that ranked it first.
//
// sailmaker stays the client: a worker is a plain buildkitd, and nothing
// but BuildKit's own API goes over the wire.
package pool

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/cespare/xxhash/v2"
	"github.com/containerd/platforms"
	"github.com/moby/buildkit/client"
	"github.com/sirupsen/logrus"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/sailmaker/sailmaker/builder/buildkitd"
	"github.com/sailmaker/sailmaker/config"
)

// State is what the pool knows of a worker.
type State string

// The states of a worker. Only an up worker gets builds.
const (
	// StateUnknown: not probed yet.
	StateUnknown State = "unknown"
	// StateUp: answered its last probe, with the pinned BuildKit version.
	StateUp State = "up"
	// StateDown: did not answer; probed again with backoff.
	StateDown State = "down"
	// StateRefused: answered, but cannot be used: another BuildKit version,
	// or the TLS handshake failed (a certificate the other side does not
	// trust). Probed again with backoff, in case it is fixed.
	StateRefused State = "refused"
)

// Status is one worker as the pool sees it (GET /v1/workers).
type Status struct {
	Name    string `json:"name"`
	Address string `json:"address"`
	State   State  `json:"state"`
	// Reachable: the last probe got an answer (whatever the version).
	Reachable bool `json:"reachable"`
	// Draining: no new builds go there (sailmaker workers drain).
	Draining        bool     `json:"draining"`
	BuildKitVersion string   `json:"buildkitVersion,omitempty"`
	Platforms       []string `json:"platforms,omitempty"`
	Slots           int      `json:"slots"`
	InUse           int      `json:"inUse"`
	// BuildsRun counts the attempts the worker ran to their end (succeeded
	// or failed); BuildsLost those it lost by going away.
	BuildsRun  int        `json:"buildsRun"`
	BuildsLost int        `json:"buildsLost"`
	LastError  string     `json:"lastError,omitempty"`
	LastCheck  *time.Time `json:"lastCheck,omitempty"`
	NextCheck  *time.Time `json:"nextCheck,omitempty"`
	// Since is when the worker entered its state.
	Since *time.Time `json:"since,omitempty"`
}

// Info is what a probe learns from a worker.
type Info struct {
	Version   string
	Platforms []string
}

// ProbeFunc asks a worker's buildkitd, through its client c, for its
// version and platforms.
type ProbeFunc func(ctx context.Context, w config.WorkerConfig, c *client.Client) (Info, error)

// Options configure a Pool.
type Options struct {
	// Workers are the buildkitd of the pool (config.Config.Workers()).
	Workers []config.WorkerConfig
	// Version is the BuildKit version every worker must run; default
	// PinnedVersion(), the version of the BuildKit client sailmaker is
	// built with (BUILDKIT_VERSION in the Makefile).
	Version string
	// Log receives state changes; default: discarded.
	Log logrus.FieldLogger
	// Interval is the time between probes of an up worker; default 15s.
	Interval time.Duration
	// MinBackoff and MaxBackoff bound the time between probes of a worker
	// that is down or refused: it doubles from MinBackoff (default 1s) up
	// to MaxBackoff (default 30s).
	MinBackoff, MaxBackoff time.Duration
	// ProbeTimeout bounds one probe; default 5s.
	ProbeTimeout time.Duration
	// Probe replaces the probe (Info and ListWorkers over the client).
	Probe ProbeFunc
}

// Pool is a set of buildkitd workers.
type Pool struct {
	o       Options
	log     logrus.FieldLogger
	workers []*worker
	byName  map[string]*worker

	mu        sync.Mutex
	changed   chan struct{} // closed and replaced on every change
	listeners []func()
	kick      chan struct{}
	stop      chan struct{}
	stopped   chan struct{}
	started   bool
	closeOnce sync.Once
}

type worker struct {
	cfg    config.WorkerConfig
	slots  int
	client *client.Client

	state     State
	reachable bool
	draining  bool
	version   string
	platforms []string
	inUse     int
	runs      int
	lost      int
	lastErr   string
	lastCheck time.Time
	nextCheck time.Time
	since     time.Time
	failures  int
	probing   bool
}

// PinnedVersion is the BuildKit version every worker must run:
// buildkitd.PinnedVersion, which a test holds equal to the Makefile's
// BUILDKIT_VERSION and go.mod's BuildKit client.
func PinnedVersion() string { return buildkitd.PinnedVersion }

// New opens a client for every worker (reading its TLS files, so a missing
// or bad file is reported now) without contacting any: Start probes them.
func New(o Options) (*Pool, error) {
	if len(o.Workers) == 0 {
		return nil, errors.New("pool: no workers")
	}
	if o.Version == "" {
		o.Version = PinnedVersion()
	}
	if o.Log == nil {
		l := logrus.New()
		l.SetOutput(nopWriter{})
		o.Log = l
	}
	if o.Interval <= 0 {
		o.Interval = 15 * time.Second
	}
	if o.MinBackoff <= 0 {
		o.MinBackoff = time.Second
	}
	if o.MaxBackoff < o.MinBackoff {
		o.MaxBackoff = max(30*time.Second, o.MinBackoff)
	}
	if o.ProbeTimeout <= 0 {
		o.ProbeTimeout = 5 * time.Second
	}
	if o.Probe == nil {
		o.Probe = Probe
	}
	p := &Pool{
		o: o, log: o.Log, byName: map[string]*worker{},
		changed: make(chan struct{}), kick: make(chan struct{}, 1),
		stop: make(chan struct{}), stopped: make(chan struct{}),
	}
	now := time.Now()
	for i, wc := range o.Workers {
		if _, dup := p.byName[wc.Name]; dup {
			p.closeClients()
			return nil, fmt.Errorf("buildkit.workers[%d]: the name %q is used twice", i, wc.Name)
		}
		c, err := Dial(context.Background(), wc)
		if err != nil {
			p.closeClients()
			return nil, fmt.Errorf("buildkit.workers[%d] (%s): %w", i, wc.Name, err)
		}
		w := &worker{cfg: wc, slots: wc.SlotCount(), client: c, state: StateUnknown, since: now}
		p.workers = append(p.workers, w)
		p.byName[wc.Name] = w
	}
	return p, nil
}

type nopWriter struct{}

func (nopWriter) Write(b []byte) (int, error) { return len(b), nil }

// Dial opens a BuildKit client for one worker, with its TLS settings. It
// does not wait for the worker to answer.
func Dial(ctx context.Context, wc config.WorkerConfig) (*client.Client, error) {
	var opts []client.ClientOpt
	if strings.HasPrefix(wc.Address, "tcp://") && wc.CACert != "" {
		opts = append(opts, client.WithServerConfig(wc.ServerName, wc.CACert))
		if wc.Cert != "" {
			opts = append(opts, client.WithCredentials(wc.Cert, wc.Key))
		}
	}
	c, err := client.New(ctx, wc.Address, opts...)
	if err != nil {
		return nil, fmt.Errorf("opening a BuildKit client for %s: %w", wc.Address, err)
	}
	return c, nil
}

// Probe asks buildkitd for its version and its workers' platforms.
func Probe(ctx context.Context, _ config.WorkerConfig, c *client.Client) (Info, error) {
	info, err := c.Info(ctx)
	if err != nil {
		return Info{}, err
	}
	ws, err := c.ListWorkers(ctx)
	if err != nil {
		return Info{}, err
	}
	out := Info{Version: info.BuildkitVersion.Version}
	seen := map[string]bool{}
	for _, w := range ws {
		for _, pl := range w.Platforms {
			s := platforms.Format(pl)
			if !seen[s] {
				seen[s] = true
				out.Platforms = append(out.Platforms, s)
			}
		}
	}
	if len(ws) == 0 {
		return out, errors.New("buildkitd has no workers")
	}
	return out, nil
}

// Start probes every worker once (at most ProbeTimeout), then keeps
// probing in the background until Close.
func (p *Pool) Start(ctx context.Context) {
	p.mu.Lock()
	if p.started {
		p.mu.Unlock()
		return
	}
	p.started = true
	p.mu.Unlock()
	var wg sync.WaitGroup
	for _, w := range p.workers {
		wg.Add(1)
		go func() { defer wg.Done(); p.probe(ctx, w) }()
	}
	wg.Wait()
	go p.loop()
}

// Close stops the probes and closes the clients: call it after the builds
// holding leases have stopped.
func (p *Pool) Close() error {
	p.closeOnce.Do(func() {
		close(p.stop)
		p.mu.Lock()
		started := p.started
		p.mu.Unlock()
		if started {
			<-p.stopped
		}
		p.closeClients()
	})
	return nil
}

func (p *Pool) closeClients() {
	for _, w := range p.workers {
		if w.client != nil {
			_ = w.client.Close()
		}
	}
}

// OnChange registers fn to be called (without locks held) whenever a
// worker changes state, a slot is freed or a drain is asked for.
func (p *Pool) OnChange(fn func()) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.listeners = append(p.listeners, fn)
}

// changedLocked wakes whoever waits for a change; call with p.mu held,
// then call the returned listeners without it.
func (p *Pool) changedLocked() []func() {
	close(p.changed)
	p.changed = make(chan struct{})
	return append([]func(){}, p.listeners...)
}

func callAll(fns []func()) {
	for _, fn := range fns {
		fn()
	}
}

func (p *Pool) loop() {
	defer close(p.stopped)
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		now := time.Now()
		next := now.Add(p.o.Interval)
		var due []*worker
		p.mu.Lock()
		for _, w := range p.workers {
			if w.probing {
				continue
			}
			if !w.nextCheck.After(now) {
				w.probing = true
				due = append(due, w)
			} else if w.nextCheck.Before(next) {
				next = w.nextCheck
			}
		}
		p.mu.Unlock()
		for _, w := range due {
			go func() {
				ctx, cancel := context.WithCancel(context.Background())
				defer cancel()
				go func() {
					select {
					case <-p.stop:
						cancel()
					case <-ctx.Done():
					}
				}()
				p.probe(ctx, w)
			}()
		}
		if len(due) > 0 {
			next = now.Add(50 * time.Millisecond)
		}
		if !timer.Stop() {
			select {
			case <-timer.C:
			default:
			}
		}
		timer.Reset(time.Until(next))
		select {
		case <-p.stop:
			return
		case <-p.kick:
		case <-timer.C:
		}
	}
}

// probe asks one worker and records what it learnt.
func (p *Pool) probe(ctx context.Context, w *worker) {
	ctx, cancel := context.WithTimeout(ctx, p.o.ProbeTimeout)
	info, err := p.o.Probe(ctx, w.cfg, w.client)
	cancel()
	p.record(w, info, err)
}

func (p *Pool) record(w *worker, info Info, err error) {
	now := time.Now()
	p.mu.Lock()
	w.probing = false
	w.lastCheck = now
	prev := w.state
	var state State
	switch {
	case err != nil:
		w.reachable = false
		if tlsMsg := explainTLS(w.cfg, err); tlsMsg != "" {
			state, w.lastErr = StateRefused, tlsMsg
			w.reachable = true
		} else {
			state, w.lastErr = StateDown, fmt.Sprintf("worker %s (%s) does not answer: %v", w.cfg.Name, w.cfg.Address, err)
		}
	case info.Version != p.o.Version:
		w.reachable, w.version, w.platforms = true, info.Version, info.Platforms
		state = StateRefused
		w.lastErr = fmt.Sprintf("worker %s (%s) runs BuildKit %q; sailmaker needs %s, the pinned version (BUILDKIT_VERSION in the Makefile): run the buildkitd that `make tools` builds there", w.cfg.Name, w.cfg.Address, info.Version, p.o.Version)
	default:
		w.reachable, w.version, w.platforms = true, info.Version, info.Platforms
		state = StateUp
	}
	if state == StateUp {
		w.failures = 0
		w.nextCheck = now.Add(p.o.Interval)
	} else {
		w.failures++
		w.nextCheck = now.Add(p.backoff(w.failures))
	}
	var fns []func()
	if state != prev {
		w.state, w.since = state, now
		fns = p.changedLocked()
	}
	lastErr := w.lastErr
	p.mu.Unlock()
	p.wakeLoop() // the worker's next check may be sooner than the loop's
	if state == prev {
		return
	}
	callAll(fns)
	log := p.log.WithFields(logrus.Fields{"worker": w.cfg.Name, "address": w.cfg.Address, "state": state, "was": prev})
	switch state {
	case StateUp:
		log.WithFields(logrus.Fields{"buildkit": info.Version, "platforms": strings.Join(info.Platforms, ",")}).Info("worker is up")
	case StateRefused:
		log.Error(lastErr)
	default:
		log.Warn(lastErr)
	}
}

func (p *Pool) wakeLoop() {
	select {
	case p.kick <- struct{}{}:
	default:
	}
}

func (p *Pool) backoff(failures int) time.Duration {
	d := p.o.MinBackoff
	for i := 1; i < failures && d < p.o.MaxBackoff; i++ {
		d *= 2
	}
	return min(d, p.o.MaxBackoff)
}

// explainTLS turns a TLS handshake failure into what is wrong and what to
// do; "" when err is not one.
func explainTLS(wc config.WorkerConfig, err error) string {
	msg := err.Error()
	at := fmt.Sprintf("worker %s (%s)", wc.Name, wc.Address)
	switch {
	case strings.Contains(msg, "remote error: tls:"):
		alert := msg[strings.Index(msg, "remote error: tls:")+len("remote error: "):]
		if i := strings.IndexAny(alert, "\"\n"); i >= 0 {
			alert = alert[:i]
		}
		return fmt.Sprintf("%s refused sailmaker's client certificate (%s): the worker trusts another CA; make cert/key (%s) with the CA the worker was started with (--tlscacert), e.g. `sailmaker certs new`", at, alert, wc.Cert)
	case strings.Contains(msg, "x509: certificate signed by unknown authority"):
		return fmt.Sprintf("%s presented a certificate not signed by caCert (%s): give the CA that signed the worker's certificate", at, wc.CACert)
	case strings.Contains(msg, "x509: certificate is valid for"):
		return fmt.Sprintf("%s presented a certificate for other names (%s): set serverName to one of them, or make the worker's certificate with this name", at, firstLine(msg[strings.Index(msg, "x509:"):]))
	case strings.Contains(msg, "x509:") || strings.Contains(msg, "tls:"):
		return fmt.Sprintf("%s: TLS handshake failed: %s", at, firstLine(msg))
	}
	return ""
}

func firstLine(s string) string {
	if i := strings.IndexAny(s, "\"\n"); i >= 0 {
		return s[:i]
	}
	return s
}

// Capacity is the sum of the workers' slots: the most builds the pool runs
// at once.
func (p *Pool) Capacity() int {
	n := 0
	for _, w := range p.workers {
		n += w.slots
	}
	return n
}

// Version is the BuildKit version the workers must run.
func (p *Pool) Version() string { return p.o.Version }

// Status lists the workers, in configuration order.
func (p *Pool) Status() []Status {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make([]Status, 0, len(p.workers))
	for _, w := range p.workers {
		out = append(out, w.status())
	}
	return out
}

// Worker is one worker's status; false when there is none of that name.
func (p *Pool) Worker(name string) (Status, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	w, ok := p.byName[name]
	if !ok {
		return Status{}, false
	}
	return w.status(), true
}

func (w *worker) status() Status {
	s := Status{
		Name: w.cfg.Name, Address: w.cfg.Address, State: w.state, Reachable: w.reachable, Draining: w.draining,
		BuildKitVersion: w.version, Platforms: append([]string(nil), w.platforms...),
		Slots: w.slots, InUse: w.inUse, BuildsRun: w.runs, BuildsLost: w.lost, LastError: w.lastErr,
	}
	if !w.lastCheck.IsZero() {
		t, n := w.lastCheck, w.nextCheck
		s.LastCheck, s.NextCheck = &t, &n
	}
	since := w.since
	s.Since = &since
	return s
}

// Free is the number of free slots on workers that take builds.
func (p *Pool) Free() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for _, w := range p.workers {
		if w.usable() {
			n += w.slots - w.inUse
		}
	}
	return n
}

// Up is the number of workers that are up (draining or not).
func (p *Pool) Up() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for _, w := range p.workers {
		if w.state == StateUp {
			n++
		}
	}
	return n
}

func (w *worker) usable() bool { return w.state == StateUp && !w.draining }

// Rank orders the pool's worker names for a routing key by rendezvous
// (highest random weight) hashing: the first is the key's preferred
// worker. The order depends only on the key and the names.
func (p *Pool) Rank(key string) []string {
	ws := p.ranked(key)
	out := make([]string, len(ws))
	for i, w := range ws {
		out[i] = w.cfg.Name
	}
	return out
}

func (p *Pool) ranked(key string) []*worker {
	type scored struct {
		w     *worker
		score uint64
	}
	s := make([]scored, len(p.workers))
	for i, w := range p.workers {
		s[i] = scored{w, xxhash.Sum64String(key + "\x00" + w.cfg.Name)}
	}
	sort.Slice(s, func(i, j int) bool {
		if s[i].score != s[j].score {
			return s[i].score > s[j].score
		}
		return s[i].w.cfg.Name < s[j].w.cfg.Name
	})
	out := make([]*worker, len(s))
	for i := range s {
		out[i] = s[i].w
	}
	return out
}

// Lease is a slot on one worker, held for one attempt of a build.
type Lease struct {
	p    *Pool
	w    *worker
	rank int
	once sync.Once
}

// Name is the worker's name.
func (l *Lease) Name() string { return l.w.cfg.Name }

// Address is the worker's address.
func (l *Lease) Address() string { return l.w.cfg.Address }

// Client is the worker's BuildKit client; it stays open after Release (the
// pool owns it).
func (l *Lease) Client() *client.Client { return l.w.client }

// Rank is the worker's place in the key's ranking: 0 for the preferred
// worker, 1 when the preferred one was busy, down or draining, and so on.
func (l *Lease) Rank() int { return l.rank }

// TryAcquire takes a slot for key on the first worker in key's ranking
// that is up, not draining and has a free slot; false when there is none.
func (p *Pool) TryAcquire(key string) (*Lease, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for i, w := range p.ranked(key) {
		if w.usable() && w.inUse < w.slots {
			w.inUse++
			return &Lease{p: p, w: w, rank: i}, true
		}
	}
	return nil, false
}

// Acquire is TryAcquire that waits for a free slot until ctx is done.
func (p *Pool) Acquire(ctx context.Context, key string) (*Lease, error) {
	for {
		p.mu.Lock()
		ch := p.changed
		p.mu.Unlock()
		if l, ok := p.TryAcquire(key); ok {
			return l, nil
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("waiting for a free BuildKit worker: %w", context.Cause(ctx))
		case <-ch:
		}
	}
}

// Changed returns a channel closed at the next change of the pool.
func (p *Pool) Changed() <-chan struct{} {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.changed
}

// LostError says that an attempt failed because its worker went away.
type LostError struct {
	Worker, Address string
	Err             error
}

func (e *LostError) Error() string {
	return fmt.Sprintf("worker %s (%s) was lost during the build: %v", e.Worker, e.Address, e.Err)
}

func (e *LostError) Unwrap() error { return e.Err }

// Release gives the slot back. err is how the attempt ended. When it
// failed, the worker is probed at once: if it refuses the connection, or
// the error is BuildKit's connection breaking, the worker is marked down (and
// probed with backoff from then on) and Release returns a *LostError:
// the attempt was lost to the worker, not failed by the build. Release
// does nothing the second time.
func (l *Lease) Release(ctx context.Context, err error) (lost error) {
	l.once.Do(func() {
		p, w := l.p, l.w
		var probeErr error
		if err != nil && ctx.Err() == nil {
			pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*p.o.ProbeTimeout)
			_, probeErr = p.o.Probe(pctx, w.cfg, w.client)
			cancel()
			// A worker too busy to answer in time is not lost: only one
			// that refuses the connection, or whose connection broke.
			slow := errors.Is(probeErr, context.DeadlineExceeded) || status.Code(probeErr) == codes.DeadlineExceeded
			if (probeErr != nil && !slow) || connectionLost(err) {
				cause := err
				if probeErr != nil {
					cause = fmt.Errorf("%w; it does not answer: %v", err, probeErr)
				}
				lost = &LostError{Worker: w.cfg.Name, Address: w.cfg.Address, Err: cause}
			}
		}
		now := time.Now()
		p.mu.Lock()
		w.inUse--
		if lost != nil {
			w.lost++
			w.lastErr = lost.Error()
			if w.state != StateDown {
				w.state, w.since = StateDown, now
			}
			w.reachable = false
			w.failures = max(w.failures, 1)
			w.nextCheck = now.Add(p.backoff(w.failures))
		} else {
			w.runs++
		}
		fns := p.changedLocked()
		p.mu.Unlock()
		callAll(fns)
		if lost != nil {
			p.log.WithFields(logrus.Fields{"worker": w.cfg.Name, "address": w.cfg.Address}).WithError(err).Warn("worker lost during a build: marked down, probed with backoff")
			p.wakeLoop()
		}
	})
	return lost
}

// connectionLost says whether err is BuildKit's gRPC connection breaking
// (the daemon went away), rather than the build failing.
func connectionLost(err error) bool {
	for e := err; e != nil; {
		if s, ok := status.FromError(e); ok && s.Code() == codes.Unavailable {
			return true
		}
		u, ok := e.(interface{ Unwrap() error })
		if !ok {
			break
		}
		e = u.Unwrap()
	}
	msg := err.Error()
	return strings.Contains(msg, "code = Unavailable") || strings.Contains(msg, "error reading from server: EOF") || strings.Contains(msg, "connection reset by peer")
}

// ErrUnknownWorker is returned for a name that is not in the pool.
var ErrUnknownWorker = errors.New("no such worker")

// Drain stops new builds going to the worker; running ones go on.
func (p *Pool) Drain(name string) (Status, error) { return p.setDraining(name, true) }

// Undrain lets the worker take builds again.
func (p *Pool) Undrain(name string) (Status, error) { return p.setDraining(name, false) }

func (p *Pool) setDraining(name string, on bool) (Status, error) {
	p.mu.Lock()
	w, ok := p.byName[name]
	if !ok {
		p.mu.Unlock()
		return Status{}, fmt.Errorf("%w %q", ErrUnknownWorker, name)
	}
	w.draining = on
	st := w.status()
	fns := p.changedLocked()
	p.mu.Unlock()
	callAll(fns)
	what := "draining worker: no new builds go there"
	if !on {
		what = "worker takes builds again"
	}
	p.log.WithFields(logrus.Fields{"worker": name, "running": st.InUse}).Info(what)
	return st, nil
}

// WaitIdle waits until the worker runs no build, or ctx is done.
func (p *Pool) WaitIdle(ctx context.Context, name string) (Status, error) {
	for {
		p.mu.Lock()
		w, ok := p.byName[name]
		if !ok {
			p.mu.Unlock()
			return Status{}, fmt.Errorf("%w %q", ErrUnknownWorker, name)
		}
		st, ch := w.status(), p.changed
		p.mu.Unlock()
		if st.InUse == 0 {
			return st, nil
		}
		select {
		case <-ctx.Done():
			return st, ctx.Err()
		case <-ch:
		}
	}
}

// ProbeNow asks every worker at once, instead of at its next check (for
// `workers list` without a service, and tests).
func (p *Pool) ProbeNow(ctx context.Context) {
	var wg sync.WaitGroup
	for _, w := range p.workers {
		p.mu.Lock()
		skip := w.probing
		if !skip {
			w.probing = true
		}
		p.mu.Unlock()
		if skip {
			continue
		}
		wg.Add(1)
		go func() { defer wg.Done(); p.probe(ctx, w) }()
	}
	wg.Wait()
}
