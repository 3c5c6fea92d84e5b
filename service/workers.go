package service

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/sirupsen/logrus"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/sailmaker/sailmaker/builder/pool"
	"github.com/sailmaker/sailmaker/recipes"
)

// The service's side of the worker pool: a dispatcher that takes a build
// from the queue whenever a worker has a free slot, routes it by recipe
// line, records the worker on the build, and turns a worker lost mid-build
// into an interruption (the build is queued again while it has retries).

// lineOf is the recipe line of r: its routing key and cache tag.
func lineOf(r *recipes.Recipe) pool.Line {
	v := r.Metadata.Version
	if v == "" {
		v = r.Spec.Source.Tag
	}
	return pool.LineOf(r.Spec.Source.Git, v)
}

// cacheRef is where the line's registry cache goes, "" when off.
func (s *Service) cacheRef(l pool.Line) string {
	repo := s.cfg.CacheRepository()
	if repo == "" {
		return ""
	}
	return s.cfg.Registry.Address + "/" + repo + "/" + l.CacheRepository() + ":" + l.CacheTag()
}

// routingKey is the line of b's recipe; b's recipe id when it cannot be
// read (the attempt then fails saying why).
func (s *Service) routingKey(b *Build) string {
	r, err := s.loadBuildRecipe(context.Background(), b)
	if err != nil {
		return b.Recipe
	}
	return lineOf(r).String()
}

// dispatch runs builds on the pool: whenever a worker that takes builds
// has a free slot, the oldest queued build goes to the first free worker
// in its line's ranking.
func (s *Service) dispatch() {
	defer s.workers.Done()
	ticker := time.NewTicker(s.poll)
	defer ticker.Stop()
	for {
		if s.isClosing() {
			return
		}
		changed := s.pool.Changed()
		if s.pool.Free() > 0 {
			b, err := s.claim()
			if err != nil {
				s.log.WithError(err).Error("taking a build from the queue")
			}
			if b != nil {
				s.startOnPool(b)
				continue
			}
		}
		select {
		case <-s.wake:
		case <-changed:
		case <-ticker.C:
		case <-s.closing:
			return
		}
	}
}

func (s *Service) startOnPool(b *Build) {
	key := s.routingKey(b)
	lease, ok := s.pool.TryAcquire(key)
	if !ok {
		// The free slot's worker went away since Free: back to the queue.
		if _, err := s.db.update(context.Background(), b.ID, func(b *Build) error {
			b.State, b.Attempts = StateQueued, b.Attempts-1
			return nil
		}); err != nil {
			s.log.WithError(err).WithField("build", b.ID).Error("putting a build back in the queue")
		}
		return
	}
	s.workers.Add(1)
	go func() {
		defer s.workers.Done()
		s.execute(b, lease)
	}()
}

// onWorker records the attempt's worker on the build and in its log.
func (s *Service) onWorker(b *Build, l *pool.Lease, log logrus.FieldLogger) {
	if _, err := s.db.update(context.Background(), b.ID, func(b *Build) error {
		b.Worker = l.Name()
		return nil
	}); err != nil {
		log.WithError(err).Error("recording a build's worker")
	}
	b.Worker = l.Name()
	how := "the first choice for its recipe line"
	if l.Rank() > 0 {
		how = fmt.Sprintf("choice %d for its recipe line: the ones before were busy, down or draining", l.Rank()+1)
	}
	s.appendLog(b.ID, "sailmaker: attempt %d runs on worker %s (%s), %s\n", b.Attempts, l.Name(), l.Address(), how)
	s.metrics.onWorker(l.Name())
}

// workerLost decides what becomes of an attempt whose worker went away:
// like a crash of the service, it is an interruption that uses up a
// retry; the build is queued again (it runs on another worker) or, with
// no retries left, fails.
func (s *Service) workerLost(b *Build, cur *Build, lost error) (state State, errMsg string, intr *Interruption, msg string) {
	now := time.Now()
	reason := fmt.Sprintf("interrupted: %v (during %s)", lost, cur.State)
	var le *pool.LostError
	worker := ""
	if errors.As(lost, &le) {
		worker = le.Worker
		// Not the build's own error: what it says (the compile failed,
		// "it ran with no network", its last lines) is about a build
		// that did not fail, its daemon went away.
		reason = fmt.Sprintf("interrupted: worker %s (%s) was lost during the build: %s (during %s)", le.Worker, le.Address, lostCause(le.Err), cur.State)
	}
	intr = &Interruption{Time: now, Phase: cur.State, Reason: reason, Worker: worker}
	crashes := 1
	for _, in := range cur.Interruptions {
		if !in.Graceful {
			crashes++
		}
	}
	if retries := *s.srv.Retries; crashes > retries {
		return StateFailed, fmt.Sprintf("%s (attempt %d; retries: %d)", reason, b.Attempts, retries), intr,
			fmt.Sprintf("sailmaker: %s; no retries left: the build failed\n", reason)
	}
	where := "it runs on another worker"
	if len(s.pool.Status()) == 1 {
		where = "it runs once the worker answers again"
	}
	return StateQueued, "", intr, fmt.Sprintf("sailmaker: %s; queued again: %s\n", reason, where)
}

// lostCause says in a few words what became of a lost worker's buildkitd,
// from the error of the attempt it broke (and of the probe after it).
func lostCause(err error) string {
	what := "its buildkitd went away"
	if d := connectionDetail(err); d != "" {
		what += " (" + d + ")"
	}
	msg := err.Error()
	switch i := strings.Index(msg, "it does not answer"); {
	case i < 0:
	case strings.Contains(msg[i:], "connection refused"), strings.Contains(msg[i:], "no such file or directory"):
		what += " and refuses connections"
	default:
		what += " and does not answer"
	}
	return what
}

// connectionDetail is the message of the gRPC error in err's chain (how
// BuildKit's connection broke), "" if there is none.
func connectionDetail(err error) string {
	var st interface{ GRPCStatus() *status.Status }
	if errors.As(err, &st) {
		if s := st.GRPCStatus(); s != nil && s.Code() != codes.OK {
			return s.Message()
		}
	}
	var coded interface{ Code() codes.Code }
	if errors.As(err, &coded) && coded.Code() != codes.OK {
		e := coded.(error).Error()
		return strings.TrimPrefix(e, coded.Code().String()+": ")
	}
	return ""
}

// Workers lists the pool's workers; nil without a pool.
func (s *Service) Workers() []pool.Status {
	if s.pool == nil {
		return nil
	}
	return s.pool.Status()
}

// WorkersResponse is the body of GET /v1/workers.
type WorkersResponse struct {
	Workers []pool.Status `json:"workers"`
	// BuildKitVersion is the version every worker must run.
	BuildKitVersion string `json:"buildkitVersion"`
	// Capacity is the sum of the slots: builds run at once.
	Capacity int `json:"capacity"`
}

func (s *Service) workersHandler(w http.ResponseWriter, _ *http.Request, _ *principal) {
	if s.pool == nil {
		writeJSON(w, http.StatusOK, WorkersResponse{Workers: []pool.Status{}})
		return
	}
	writeJSON(w, http.StatusOK, WorkersResponse{Workers: s.pool.Status(), BuildKitVersion: s.pool.Version(), Capacity: s.pool.Capacity()})
}

// drainHandler stops new builds going to a worker; with ?wait=DURATION it
// answers once the running ones have ended (or the wait is over), else at
// once. ?undo=true lets the worker take builds again.
func (s *Service) drainHandler(w http.ResponseWriter, r *http.Request, p *principal) {
	name := r.PathValue("name")
	if s.pool == nil {
		writeError(w, http.StatusNotFound, "not_found", fmt.Sprintf("no worker %q: this service runs builds without a pool", name))
		return
	}
	q := r.URL.Query()
	var wait time.Duration
	if v := q.Get("wait"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d < 0 || d > time.Hour {
			writeError(w, http.StatusBadRequest, "bad_request", fmt.Sprintf("wait %q: must be a duration up to 1h, like 10m", v))
			return
		}
		wait = d
	}
	undo := false
	if v := q.Get("undo"); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			writeError(w, http.StatusBadRequest, "bad_request", fmt.Sprintf("undo %q: must be true or false", v))
			return
		}
		undo = b
	}
	var st pool.Status
	var err error
	if undo {
		st, err = s.pool.Undrain(name)
	} else {
		st, err = s.pool.Drain(name)
	}
	if errors.Is(err, pool.ErrUnknownWorker) {
		writeError(w, http.StatusNotFound, "not_found", fmt.Sprintf("no worker %q in the pool", name))
		return
	}
	if err != nil {
		s.internalError(w, r, err)
		return
	}
	action := "drain"
	if undo {
		action = "undrain"
	}
	s.log.WithFields(logrus.Fields{"worker": name, "by": p.Name, "running": st.InUse}).Info("worker " + action)
	if !undo && wait > 0 && st.InUse > 0 {
		ctx, cancel := context.WithTimeout(r.Context(), wait)
		st, _ = s.pool.WaitIdle(ctx, name)
		cancel()
	}
	writeJSON(w, http.StatusOK, st)
}

// poolReady is /readyz's check with a pool: at least one worker is up.
func (s *Service) poolReady(context.Context) error {
	if s.pool.Up() > 0 {
		return nil
	}
	msg := "no BuildKit worker is up"
	for _, st := range s.pool.Status() {
		if st.LastError != "" {
			msg += "; " + st.LastError
		}
	}
	return errors.New(msg)
}

// workerCollector reads the pool's state at scrape time.
type workerCollector struct{ s *Service }

var (
	workerUpDesc       = prometheus.NewDesc("sailmaker_worker_up", "1 when the BuildKit worker is up (answers, with the pinned version).", []string{"worker"}, nil)
	workerDrainingDesc = prometheus.NewDesc("sailmaker_worker_draining", "1 when the worker is draining: no new builds go there.", []string{"worker"}, nil)
	workerSlotsDesc    = prometheus.NewDesc("sailmaker_worker_slots", "Builds the worker runs at once.", []string{"worker"}, nil)
	workerInUseDesc    = prometheus.NewDesc("sailmaker_worker_slots_in_use", "Builds running on the worker.", []string{"worker"}, nil)
	workerRunDesc      = prometheus.NewDesc("sailmaker_worker_builds_total", "Build attempts the worker ran to their end.", []string{"worker"}, nil)
	workerLostDesc     = prometheus.NewDesc("sailmaker_worker_builds_lost_total", "Build attempts lost because the worker went away.", []string{"worker"}, nil)
)

func (c workerCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{workerUpDesc, workerDrainingDesc, workerSlotsDesc, workerInUseDesc, workerRunDesc, workerLostDesc} {
		ch <- d
	}
}

func (c workerCollector) Collect(ch chan<- prometheus.Metric) {
	b := func(v bool) float64 {
		if v {
			return 1
		}
		return 0
	}
	for _, st := range c.s.Workers() {
		ch <- prometheus.MustNewConstMetric(workerUpDesc, prometheus.GaugeValue, b(st.State == pool.StateUp), st.Name)
		ch <- prometheus.MustNewConstMetric(workerDrainingDesc, prometheus.GaugeValue, b(st.Draining), st.Name)
		ch <- prometheus.MustNewConstMetric(workerSlotsDesc, prometheus.GaugeValue, float64(st.Slots), st.Name)
		ch <- prometheus.MustNewConstMetric(workerInUseDesc, prometheus.GaugeValue, float64(st.InUse), st.Name)
		ch <- prometheus.MustNewConstMetric(workerRunDesc, prometheus.CounterValue, float64(st.BuildsRun), st.Name)
		ch <- prometheus.MustNewConstMetric(workerLostDesc, prometheus.CounterValue, float64(st.BuildsLost), st.Name)
	}
}
