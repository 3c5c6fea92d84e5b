package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/sirupsen/logrus"
	"gopkg.in/yaml.v3"

	"github.com/sailmaker/sailmaker/api"
	"github.com/sailmaker/sailmaker/builder"
	"github.com/sailmaker/sailmaker/builder/buildkitd"
	"github.com/sailmaker/sailmaker/builder/pool"
	"github.com/sailmaker/sailmaker/config"
	"github.com/sailmaker/sailmaker/internal/output"
	"github.com/sailmaker/sailmaker/publish"
	"github.com/sailmaker/sailmaker/recipes"
	"github.com/sailmaker/sailmaker/registry"
	"github.com/sailmaker/sailmaker/service"
	"github.com/sailmaker/sailmaker/store"
)

// The pool scenarios measure the build service on a pool of buildkitd
// workers rather than one build: they start their own workers (cold, on
// loopback TCP ports with mutual TLS) and run the service in-process.
const (
	// Throughput: N builds of the recipe (two recipe lines) queued at once
	// through the service, on 1 worker and on 3.
	Throughput Scenario = "throughput"
	// RegistryCache: a cold worker builds what another worker built and
	// exported to the registry cache, once importing that cache and once
	// not.
	RegistryCache Scenario = "registry-cache"
)

// PoolScenarios are the scenarios RunPool runs, in order.
var PoolScenarios = []Scenario{Throughput, RegistryCache}

// PoolOptions configure RunPool.
type PoolOptions struct {
	// Config is the user's: its registry is only read (the builder and
	// base images are copied into a registry of the benchmark's own), its
	// input cache is shared.
	Config *config.Config
	// Recipe is built N times (its version varied over two minor lines).
	Recipe      *recipes.Recipe
	EnvoyFile   string
	EnvoySHA256 string
	Scenarios   []Scenario
	// Builds is N (default 6); Workers the pool sizes compared (default 1
	// and 3).
	Builds  int
	Workers []int
	// ColdRuns is how many times the registry-cache pair runs (default 1).
	ColdRuns int
	// Out is the benchmark's folder; RunID names the registry repositories
	// (bench/<RunID>/...).
	Out      string
	RunID    string
	Progress io.Writer
	Log      logrus.FieldLogger
}

// PoolResults are what RunPool measured.
type PoolResults struct {
	Started  time.Time `json:"started"`
	Finished time.Time `json:"finished"`
	Machine  Machine   `json:"machine"`
	// Error is why the run stopped early, if it did.
	Error      string          `json:"error,omitempty"`
	Throughput []ThroughputRun `json:"throughput,omitempty"`
	Cache      []CacheRun      `json:"registryCache,omitempty"`
}

// ThroughputRun is N builds through the service on a pool of Workers.
type ThroughputRun struct {
	Workers int `json:"workers"`
	Builds  int `json:"builds"`
	// Wall is from the first request to the last build's end, in seconds.
	Wall float64 `json:"wall"`
	// BuildSeconds are each build's start-to-end times.
	BuildSeconds []float64 `json:"buildSeconds"`
	Succeeded    int       `json:"succeeded"`
	// ByWorker counts the builds each worker ran; Lines the recipe lines.
	ByWorker map[string]int `json:"byWorker"`
	Lines    int            `json:"lines"`
	// Sticky: every build of a line ran on one worker.
	Sticky bool `json:"sticky"`
}

// CacheRun is one build of the same inputs on a fresh worker, with or
// without importing what another worker exported to the registry cache.
type CacheRun struct {
	Run    int  `json:"run"`
	Import bool `json:"import"`
	// Total and Solve are sailmaker's timings of the build, in seconds;
	// Exporter is the exporting build's on its own fresh worker.
	Total    float64 `json:"total"`
	Solve    float64 `json:"solve"`
	Exporter float64 `json:"exporterTotal"`
}

// RunPool runs the pool scenarios.
func RunPool(ctx context.Context, o PoolOptions) (*PoolResults, error) {
	if o.Config == nil || o.Recipe == nil || o.Out == "" {
		return nil, errors.New("bench: the pool scenarios need a config, a recipe and an output folder")
	}
	if o.Builds == 0 {
		o.Builds = 6
	}
	if len(o.Workers) == 0 {
		o.Workers = []int{1, 3}
	}
	if o.ColdRuns < 1 {
		o.ColdRuns = 1
	}
	if o.Progress == nil {
		o.Progress = io.Discard
	}
	if o.Log == nil {
		l := logrus.New()
		l.SetOutput(io.Discard)
		o.Log = l
	}
	if o.RunID == "" {
		o.RunID = filepath.Base(o.Out)
	}
	o.RunID = repoComponent(o.RunID)
	if err := os.MkdirAll(o.Out, 0o755); err != nil {
		return nil, err
	}
	// A registry and state of its own, as Run's: the user's registry is
	// only read (the builder and base images are copied in).
	sb, err := newSandbox(ctx, o.Config, recipeImages(o.Recipe), o.Progress)
	if err != nil {
		return nil, err
	}
	defer sb.close()
	o.Config = sb.cfg
	// Short paths: buildkitd's unix socket lives in the worker's folder.
	tmp, err := os.MkdirTemp("/tmp", "smbench-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)
	certs := filepath.Join(tmp, "certs")
	var names []string
	for i := 0; i < slices.Max(append(o.Workers, 3)); i++ {
		names = append(names, fmt.Sprintf("bk-%d", i))
	}
	if _, err := pool.MakeCerts(pool.CertOptions{Dir: certs, Workers: names}); err != nil {
		return nil, err
	}
	// The inputs once, so that no scenario measures the first fetch.
	fmt.Fprintf(o.Progress, "bench: fetching the inputs of %s\n", o.Recipe.ID())
	if _, err := builder.FetchInputs(ctx, o.Recipe, builder.InputOptions{Config: o.Config, EnvoyFile: o.EnvoyFile, EnvoySHA256: o.EnvoySHA256, Log: o.Log}); err != nil {
		return nil, err
	}
	res := &PoolResults{Started: time.Now().UTC(), Machine: describeMachine()}
	defer func() {
		res.Finished = time.Now().UTC()
		res.Machine.LoadEnd = loadAverage()
	}()
	e := &poolEnv{o: o, tmp: tmp, certs: certs, user: sb.user}
	defer e.stopAll()
	for _, sc := range o.Scenarios {
		switch sc {
		case Throughput:
			for _, k := range o.Workers {
				run, err := e.throughput(ctx, k)
				if err != nil {
					return res, fmt.Errorf("throughput on %d workers: %w", k, err)
				}
				res.Throughput = append(res.Throughput, *run)
			}
		case RegistryCache:
			for i := 1; i <= o.ColdRuns; i++ {
				runs, err := e.registryCache(ctx, i)
				if err != nil {
					return res, fmt.Errorf("registry cache run %d: %w", i, err)
				}
				res.Cache = append(res.Cache, runs...)
			}
		}
	}
	return res, nil
}

type poolEnv struct {
	o PoolOptions
	// user is the user's registry, the one the recipe names its builder
	// and bases on.
	user    string
	tmp     string
	certs   string
	seq     int
	daemons []*buildkitd.Daemon
	cancels []context.CancelFunc
	// inputs, while a service runs, are where its recipes' inputs are.
	inputs *serviceInputs
}

func (e *poolEnv) stopAll() {
	for i, d := range e.daemons {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		_ = d.Stop(ctx)
		cancel()
		e.cancels[i]()
	}
	e.daemons, e.cancels = nil, nil
}

// workers starts n fresh buildkitd (empty caches) and returns their config.
func (e *poolEnv) workers(ctx context.Context, n int) ([]config.WorkerConfig, []*buildkitd.Daemon, error) {
	var out []config.WorkerConfig
	var ds []*buildkitd.Daemon
	one := 1
	for i := 0; i < n; i++ {
		e.seq++
		name := fmt.Sprintf("bk-%d", i)
		addr, err := freeLoopback()
		if err != nil {
			return nil, nil, err
		}
		dctx, cancel := context.WithCancel(context.Background())
		d, err := buildkitd.Start(dctx, buildkitd.Options{
			Dir: filepath.Join(e.tmp, fmt.Sprintf("w%d", e.seq)), HTTPRegistries: []string{e.o.Config.Registry.Address},
			TCP: addr, TLS: &buildkitd.TLSFiles{CACert: filepath.Join(e.certs, "ca.pem"), Cert: filepath.Join(e.certs, name+".pem"), Key: filepath.Join(e.certs, name+"-key.pem")},
		})
		if err != nil {
			cancel()
			return nil, nil, err
		}
		e.daemons, e.cancels = append(e.daemons, d), append(e.cancels, cancel)
		ds = append(ds, d)
		out = append(out, config.WorkerConfig{Name: name, Address: "tcp://" + addr, CACert: filepath.Join(e.certs, "ca.pem"),
			Cert: filepath.Join(e.certs, "client.pem"), Key: filepath.Join(e.certs, "client-key.pem"), Slots: &one})
	}
	return out, ds, nil
}

func freeLoopback() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// variant is the recipe as version v, its images in bench/<run>/<prefix>/.
func (e *poolEnv) variant(prefix, v string) ([]byte, *recipes.Recipe, error) {
	raw, err := recipes.Marshal(e.o.Recipe)
	if err != nil {
		return nil, nil, err
	}
	var r recipes.Recipe
	if err := yaml.Unmarshal(raw, &r); err != nil {
		return nil, nil, err
	}
	rehome(&r, e.user)
	if e.inputs != nil {
		e.inputs.apply(&r)
	}
	r.Metadata.Version = v
	if r.Spec.Make.Variables == nil {
		r.Spec.Make.Variables = map[string]string{}
	}
	r.Spec.Make.Variables["VERSION"] = v
	for i := range r.Spec.Images {
		r.Spec.Images[i].Repository = "bench/" + e.o.RunID + "/" + prefix + "/" + r.Spec.Images[i].Name
		r.Spec.Images[i].Tag = v
	}
	// Packages too: each pool size's builds publish their own (the
	// provenance names the worker, so the digests differ).
	for i := range r.Spec.Packages {
		r.Spec.Packages[i].Repository = "bench/" + e.o.RunID + "/" + prefix + "/" + path.Base(r.Spec.Packages[i].Repository)
	}
	doc, err := yaml.Marshal(&r)
	if err != nil {
		return nil, nil, err
	}
	parsed, err := recipes.Parse("bench "+v, doc, recipes.WithRegistry(e.o.Config.Registry.Address), recipes.WithAllowedRegistries(e.o.Config.AllowedRegistries()))
	if err != nil {
		return nil, nil, err
	}
	return doc, parsed, nil
}

// throughput queues N builds at once on a service with k fresh workers.
func (e *poolEnv) throughput(ctx context.Context, k int) (*ThroughputRun, error) {
	defer e.stopAll()
	fmt.Fprintf(e.o.Progress, "bench: throughput: starting %d fresh worker(s)\n", k)
	ws, _, err := e.workers(ctx, k)
	if err != nil {
		return nil, err
	}
	cfg := *e.o.Config
	cfg.BuildKit.Address = ""
	cfg.BuildKit.Workers = ws
	// A cache of its own: the other pool size's exports would be hits.
	cfg.BuildKit.Cache.Repository = "bench/" + e.o.RunID + fmt.Sprintf("/cache-%dw", k)
	cfg.Server = config.ServerConfig{}
	inputs, err := newServiceInputs(e.o.Recipe)
	if err != nil {
		return nil, err
	}
	defer inputs.close()
	cfg.Server.Inputs = inputs.policy
	e.inputs = inputs
	defer func() { e.inputs = nil }()
	state := filepath.Join(e.o.Out, fmt.Sprintf("service-%dw", k))
	if err := os.MkdirAll(state, 0o755); err != nil {
		return nil, err
	}
	st, err := store.OpenDir(ctx, state)
	if err != nil {
		return nil, err
	}
	defer st.Close()
	// The service keeps its queue and logs in its own folder, and shares
	// the input cache (and its registry settings) with the benchmark.
	svcCfg := cfg
	svcCfg.StateDir = state
	rcCfg := cfg
	log := logrus.New()
	log.SetOutput(io.Discard)
	p, err := pool.New(pool.Options{Workers: ws, Log: log})
	if err != nil {
		return nil, err
	}
	defer p.Close()
	// The service's own Run, as builder.Build with the worker's client,
	// name and registry cache, but with the benchmark's input cache.
	svc, err := service.New(ctx, service.Options{Config: &svcCfg, Store: st, Log: log, PollInterval: 200 * time.Millisecond,
		Run: func(ctx context.Context, j service.Job) (*api.Result, error) {
			rc, err := registry.NewClient(&rcCfg, registry.WithLogger(j.Logger))
			if err != nil {
				return nil, err
			}
			pub, cache, err := publish.New(publish.Settings{Registry: rc, Ledger: st, Log: j.Logger})
			if err != nil {
				return nil, err
			}
			b, err := builder.New(&rcCfg, rc, builder.WithProgress(builder.Progress{Out: j.Log, Mode: "plain"}), builder.WithLogger(j.Logger),
				builder.WithCache(cache), builder.WithBuildKit(j.BuildKit), builder.WithWorker(j.Worker), builder.WithRegistryCache(j.CacheRef))
			if err != nil {
				return nil, err
			}
			out, err := publish.BuildAndPublish(ctx, b, j.Recipe, builder.Request{OnPhase: j.OnPhase,
				Trigger: api.Trigger{Actor: "bench", Kind: api.TriggerAPI, BuildID: j.Build.ID, Time: j.Build.Created}}, pub)
			if out == nil {
				return nil, err
			}
			res := out.API()
			return &res, err
		},
		Pool: p,
	})
	if err != nil {
		return nil, err
	}
	if err := svc.Start(ctx); err != nil {
		return nil, err
	}
	srv := &http.Server{Handler: svc.Handler()}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	go func() { _ = srv.Serve(ln) }()
	defer func() {
		_ = srv.Close()
		sctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		_ = svc.Stop(sctx, time.Minute)
	}()
	c, err := service.NewClient("http://"+ln.Addr().String(), "")
	if err != nil {
		return nil, err
	}

	run := &ThroughputRun{Workers: k, Builds: e.o.Builds, ByWorker: map[string]int{}}
	lines := map[string]string{}
	var ids []string
	start := time.Now()
	for i := 0; i < e.o.Builds; i++ {
		// Two recipe lines, alternating: 1.0.x and 1.1.x.
		v := fmt.Sprintf("1.%d.%d", i%2, i/2+1)
		doc, r, err := e.variant(fmt.Sprintf("pool-%dw", k), v)
		if err != nil {
			return nil, err
		}
		jdoc, err := service.RecipeDocument(doc)
		if err != nil {
			return nil, err
		}
		b, _, err := c.Submit(ctx, service.SubmitRequest{Recipe: jdoc, EnvoySHA256: e.o.EnvoySHA256})
		if err != nil {
			return nil, err
		}
		ids = append(ids, b.ID)
		lines[b.ID] = pool.LineOf(r.Spec.Source.Git, v).String()
	}
	fmt.Fprintf(e.o.Progress, "bench: throughput: %d builds queued on %d worker(s)\n", len(ids), k)
	var last time.Time
	lineWorkers := map[string]map[string]bool{}
	for _, id := range ids {
		var b *service.Build
		for {
			if b, err = c.Get(ctx, id); err != nil {
				return nil, err
			}
			if b.State.Final() {
				break
			}
			select {
			case <-ctx.Done():
				return nil, ctx.Err()
			case <-time.After(200 * time.Millisecond):
			}
		}
		if b.State != service.StateSucceeded {
			return nil, fmt.Errorf("build %s (%s) %s: %s (log: %s)", b.ID, b.Recipe, b.State, b.Error, filepath.Join(state, "builds", b.ID+".log"))
		}
		run.Succeeded++
		run.ByWorker[b.Worker]++
		if lineWorkers[lines[id]] == nil {
			lineWorkers[lines[id]] = map[string]bool{}
		}
		lineWorkers[lines[id]][b.Worker] = true
		run.BuildSeconds = append(run.BuildSeconds, b.Finished.Sub(*b.Started).Seconds())
		if b.Finished.After(last) {
			last = *b.Finished
		}
	}
	run.Wall = last.Sub(start).Seconds()
	run.Lines = len(lineWorkers)
	run.Sticky = true
	for _, ws := range lineWorkers {
		if len(ws) != 1 {
			run.Sticky = false
		}
	}
	fmt.Fprintf(e.o.Progress, "bench: throughput: %d builds on %d worker(s): %.1f s (%v)\n", run.Succeeded, k, run.Wall, run.ByWorker)
	return run, nil
}

// registryCache builds the recipe on a fresh worker that exports to the
// registry cache, then on two more fresh workers the same inputs again
// (forced, so they compile): one importing the cache, one not.
func (e *poolEnv) registryCache(ctx context.Context, run int) ([]CacheRun, error) {
	defer e.stopAll()
	_, r, err := e.variant(fmt.Sprintf("cache-%d", run), fmt.Sprintf("1.9.%d", run))
	if err != nil {
		return nil, err
	}
	ref := e.o.Config.Registry.Address + "/bench/" + e.o.RunID + "/cache-" + fmt.Sprint(run) + ":" + pool.LineOf(r.Spec.Source.Git, r.Metadata.Version).CacheTag()
	rc, err := registry.NewClient(e.o.Config, registry.WithLogger(e.o.Log))
	if err != nil {
		return nil, err
	}
	build := func(what string, cacheRef string) (*builder.Result, error) {
		ws, _, err := e.workers(ctx, 1)
		if err != nil {
			return nil, err
		}
		p, err := pool.New(pool.Options{Workers: ws, Log: e.o.Log})
		if err != nil {
			return nil, err
		}
		defer p.Close()
		p.Start(ctx)
		l, ok := p.TryAcquire("")
		if !ok {
			return nil, fmt.Errorf("the fresh worker is not up: %v", p.Status()[0].LastError)
		}
		defer l.Release(ctx, nil)
		logf, err := os.Create(filepath.Join(e.o.Out, fmt.Sprintf("registry-cache-%d-%s.log", run, what)))
		if err != nil {
			return nil, err
		}
		defer logf.Close()
		fmt.Fprintf(e.o.Progress, "bench: registry-cache %d: %s on a fresh worker...\n", run, what)
		b, err := builder.New(e.o.Config, rc, builder.WithBuildKit(l.Client()), builder.WithWorker(l.Name()), builder.WithRegistryCache(cacheRef),
			builder.WithProgress(builder.Progress{Out: logf, Mode: "plain"}), builder.WithLogger(e.o.Log))
		if err != nil {
			return nil, err
		}
		res, err := b.Build(ctx, r, builder.Request{NoCache: true, EnvoyFile: e.o.EnvoyFile, EnvoySHA256: e.o.EnvoySHA256,
			Trigger: api.Trigger{Actor: "bench", Kind: api.TriggerCLI}})
		if err != nil {
			return nil, fmt.Errorf("%s: %w (log %s)", what, err, logf.Name())
		}
		res.Close()
		fmt.Fprintf(e.o.Progress, "bench: registry-cache %d: %s: %.1f s (solve %.1f s)\n", run, what, res.Timings.Total.Seconds(), res.Timings.Solve.Seconds())
		return res, nil
	}
	exp, err := build("export", ref)
	if err != nil {
		return nil, err
	}
	var out []CacheRun
	// Alternate the order from run to run.
	order := []bool{true, false}
	if run%2 == 0 {
		order = []bool{false, true}
	}
	for _, imp := range order {
		what, cacheRef := "without the import", ""
		if imp {
			what, cacheRef = "with the import", ref
		}
		res, err := build(what, cacheRef)
		if err != nil {
			return nil, err
		}
		out = append(out, CacheRun{Run: run, Import: imp, Total: res.Timings.Total.Seconds(), Solve: res.Timings.Solve.Seconds(), Exporter: exp.Timings.Total.Seconds()})
	}
	return out, nil
}

// WritePoolTable writes the pool scenarios' results as Markdown.
func (r *PoolResults) WritePoolTable(w io.Writer) error {
	m := r.Machine
	fmt.Fprintf(w, "%s, %d cores, %s, %s; load average %s at the start, %s at the end (%s to %s UTC)\n\n",
		m.CPU, m.Cores, output.Bytes(m.Memory), m.Kernel, m.LoadStart, m.LoadEnd, r.Started.Format("2006-01-02 15:04"), r.Finished.Format("15:04"))
	if len(r.Throughput) > 0 {
		fmt.Fprintln(w, "| workers | builds | lines | wall | per build (median) | builds per worker | sticky |")
		fmt.Fprintln(w, "| ------- | ------ | ----- | ---- | ------------------ | ----------------- | ------ |")
		for _, t := range r.Throughput {
			per := slices.Clone(t.BuildSeconds)
			sort.Float64s(per)
			med := 0.0
			if len(per) > 0 {
				med = per[len(per)/2]
			}
			var bw []string
			for n, c := range t.ByWorker {
				bw = append(bw, fmt.Sprintf("%s %d", n, c))
			}
			sort.Strings(bw)
			fmt.Fprintf(w, "| %d | %d/%d succeeded | %d | %.1f s | %.1f s | %s | %t |\n", t.Workers, t.Succeeded, t.Builds, t.Lines, t.Wall, med, strings.Join(bw, ", "), t.Sticky)
		}
		fmt.Fprintln(w)
	}
	if len(r.Cache) > 0 {
		fmt.Fprintln(w, "| run | cold worker | total | solve | the exporting build |")
		fmt.Fprintln(w, "| --- | ----------- | ----- | ----- | ------------------- |")
		for _, c := range r.Cache {
			what := "without the registry cache"
			if c.Import {
				what = "importing the registry cache"
			}
			fmt.Fprintf(w, "| %d | %s | %.1f s | %.1f s | %.1f s |\n", c.Run, what, c.Total, c.Solve, c.Exporter)
		}
	}
	return nil
}
