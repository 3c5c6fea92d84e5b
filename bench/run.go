package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/moby/buildkit/client"
	"github.com/sirupsen/logrus"
	"golang.org/x/sync/errgroup"
	"gopkg.in/yaml.v3"

	"github.com/sailmaker/sailmaker/api"
	"github.com/sailmaker/sailmaker/builder"
	"github.com/sailmaker/sailmaker/config"
	"github.com/sailmaker/sailmaker/internal/output"
	"github.com/sailmaker/sailmaker/recipes"
	"github.com/sailmaker/sailmaker/registry"
)

// LabelBump is the label that gives a base image a new digest with the same
// layers, for the base-bump scenario.
const LabelBump = "dev.sailmaker.bench.bump"

// Run runs the benchmark and returns what it measured, also written to
// <Out>/results.json after every build (so an interrupted run keeps what
// it had). An error stops the run; the results then say why.
func Run(ctx context.Context, o Options) (*Results, error) {
	if o.Runs == 0 {
		o.Runs = 3
	}
	if o.ColdRuns == 0 {
		o.ColdRuns = 1
	}
	if o.Scenarios == nil {
		o.Scenarios = Scenarios
	}
	if o.Paths == nil {
		o.Paths = Paths
	}
	if o.PatchFile == "" {
		o.PatchFile = DefaultPatchFile
	}
	if o.Progress == nil {
		o.Progress = io.Discard
	}
	if o.Log == nil {
		l := logrus.New()
		l.SetOutput(io.Discard)
		o.Log = l
	}
	if err := o.validate(); err != nil {
		return nil, err
	}
	out, err := filepath.Abs(o.Out)
	if err != nil {
		return nil, err
	}
	o.Out = out
	if o.RunID == "" {
		o.RunID = filepath.Base(out)
	}
	o.RunID = repoComponent(o.RunID)
	if err := os.MkdirAll(filepath.Join(out, "logs"), 0o755); err != nil {
		return nil, fmt.Errorf("creating the benchmark folder: %w", err)
	}
	res := &Results{Started: time.Now().UTC(), Machine: describeMachine(), Settings: Settings{
		Recipe: o.Recipe.ID(), Source: o.Recipe.Spec.Source.Git, Commit: o.Recipe.Spec.Source.Commit,
		Scenarios: o.Scenarios, Paths: o.Paths, Runs: o.Runs, ColdRuns: o.ColdRuns,
		UserRegistry: o.Config.Registry.Address, BuildKit: o.Config.BuildKit.Address, RunID: o.RunID, Out: out,
	}}
	if o.Source != "" {
		res.Settings.Source = o.Source
	}
	resultsFile := filepath.Join(out, "results.json")
	save := func() error {
		res.update()
		return res.WriteJSON(resultsFile)
	}

	e, err := setup(ctx, &o, res)
	if e != nil && e.sb != nil {
		res.Settings.Sandbox = e.sb.dir
	}
	if err == nil {
		res.Settings.Registry, res.Settings.Proxy = e.o.Config.Registry.Address, e.proxy.Addr
		err = e.runAll(ctx, res, save)
	}
	if e != nil {
		e.close()
	}
	removeWorkTrees(out, o.Progress)
	res.Finished = time.Now().UTC()
	res.Machine.LoadEnd = loadAverage()
	if err != nil {
		res.Error = err.Error()
	}
	if serr := save(); serr != nil && err == nil {
		err = fmt.Errorf("writing %s: %w", resultsFile, serr)
	}
	return res, err
}

// workTrees are what the plain and floor paths build in, under the
// benchmark's folder: checkouts, the floor's Go build cache and layers
// (about 1.7 GB for Istio). They go when the run ends, so that runs do not
// fill the disk; the results, logs, recipes and the Dockerfile stay.
var workTrees = []string{"floor", filepath.Join("plain", "src")}

func removeWorkTrees(out string, progress io.Writer) {
	for _, w := range workTrees {
		dir := filepath.Join(out, w)
		if _, err := os.Stat(dir); err != nil {
			continue
		}
		if err := os.RemoveAll(dir); err != nil {
			fmt.Fprintf(progress, "bench: could not remove the work tree %s: %v (remove it by hand)\n", dir, err)
			continue
		}
		fmt.Fprintf(progress, "bench: removed the work tree %s\n", dir)
	}
}

var repoInvalid = regexp.MustCompile(`[^a-z0-9]+`)

// repoComponent makes s usable as one component of a repository name.
func repoComponent(s string) string {
	s = strings.Trim(repoInvalid.ReplaceAllString(strings.ToLower(s), "-"), "-")
	if s == "" {
		return "run"
	}
	return s
}

// env is what the paths of one benchmark run share.
type env struct {
	o *Options // with Config the sandbox's
	// sb is the benchmark's own registry and state; user the user's
	// configuration (its registry only read).
	sb    *sandbox
	user  *config.Config
	cfg   *config.Config // the sandbox's configuration with the proxy as registry
	proxy *Proxy
	rc    *registry.Client
	log   logrus.FieldLogger

	raw    recipes.Recipe  // as written, ${REGISTRY} for the registry
	recipe *recipes.Recipe // expanded for the proxy
	gitURL string
	// recipeDir holds the recipes sailmaker builds; patchPaths are the
	// recipe's own patches copied there.
	recipeDir  string
	patchPaths []string
	written    map[string]string

	in       *builder.Inputs
	builder  string // the builder image by digest
	pristine []byte // the file the incremental scenario patches
	// modules describes the module cache: what BuildKit receives for it
	// when its snapshot has every file.
	modules ModuleCache
	runners []runner
	logs    int
	// firstTime is set once the first-time build ran: sailmaker needs no
	// priming after it.
	firstTime bool
}

type runner interface {
	path() Path
	// prime makes BuildKit hold what the path builds with between
	// releases (the images pulled, the module cache and the source taken
	// in), unmeasured, before the cold runs.
	prime(ctx context.Context) error
	// cold empties the Go build cache the path builds with (and BuildKit's
	// results of its make step).
	cold(ctx context.Context) error
	// build builds and pushes v; it calls env.startWindow right before
	// the part it times.
	build(ctx context.Context, v variant) (*Measurement, error)
}

// variant is one build asked of every path.
type variant struct {
	name   string // unique in the run: recipe and log file names
	series int    // the cold run whose repositories it pushes to
	tag    string
	patch  *Patch
	// bases replaces base image references (as written in the recipe).
	bases map[string]string
}

// setup starts the sandbox (o.Config becomes its configuration), the
// proxy, fetches the inputs and sets up the paths. The env it returns,
// even with an error, must be closed.
func setup(ctx context.Context, o *Options, res *Results) (*env, error) {
	e := &env{o: o, user: o.Config, log: o.Log, written: map[string]string{}, recipeDir: filepath.Join(o.Out, "recipes")}
	user := o.Config
	if err := registry.Ping(ctx, user.Registry.Address, user.RegistryInsecure(user.Registry.Address)); err != nil {
		return nil, err
	}
	var err error
	if e.sb, err = newSandbox(ctx, user, recipeImages(o.Recipe), o.Progress); err != nil {
		return nil, err
	}
	o.Config = e.sb.cfg
	if e.proxy, err = StartProxy(o.Config.Registry.Address); err != nil {
		return e, err
	}
	cfg := *o.Config
	cfg.Registry.Address = e.proxy.Addr
	e.cfg = &cfg
	if e.rc, err = registry.NewClient(e.cfg, registry.WithLogger(e.log)); err != nil {
		return e, err
	}
	if err := e.loadRecipe(); err != nil {
		return e, err
	}

	fmt.Fprintf(o.Progress, "bench: fetching the inputs of %s (as sailmaker does; the paths share them)\n", e.recipe.ID())
	e.in, err = builder.FetchInputs(ctx, e.recipe, builder.InputOptions{Config: e.cfg, EnvoyFile: o.EnvoyFile, EnvoySHA256: o.EnvoySHA256, Log: e.log})
	if err != nil {
		return e, err
	}
	if res.ModuleCache, err = describeModuleCache(ctx, e.in.GoModCache); err != nil {
		return e, err
	}
	e.modules = res.ModuleCache
	if e.pristine, err = os.ReadFile(filepath.Join(e.in.SourceDir, filepath.FromSlash(o.PatchFile))); err != nil {
		return e, fmt.Errorf("the incremental scenario patches %s: %w", o.PatchFile, err)
	}
	if _, err := MakePatch(o.PatchFile, e.pristine, 1, Marker(o.RunID, 1)); err != nil {
		return e, err
	}
	ref, err := e.rc.ParseRef(e.recipe.Spec.Toolchain.Builder)
	if err != nil {
		return e, fmt.Errorf("toolchain.builder: %w", err)
	}
	d, ok, err := e.rc.Resolve(ctx, ref)
	if err != nil {
		return e, err
	}
	if !ok {
		return e, fmt.Errorf("the builder image %s is not in the registry: run `sailmaker base build` (make demo does)", e.recipe.Spec.Toolchain.Builder)
	}
	e.builder = ref.Context().Digest(d.String()).String()

	for _, p := range o.Paths {
		var r runner
		switch p {
		case Sailmaker:
			r = &sailmakerRunner{e: e}
		case Plain:
			r, err = newPlainRunner(ctx, e)
		case Floor:
			r, err = newFloorRunner(ctx, e)
		}
		if err != nil {
			return e, fmt.Errorf("setting up the %s path: %w", p, err)
		}
		e.runners = append(e.runners, r)
	}
	return e, nil
}

func (e *env) close() {
	if e.proxy != nil {
		_ = e.proxy.Close()
	}
	e.sb.close()
	e.o.Config = e.user
}

// loadRecipe copies the recipe (and its patches) into the benchmark folder,
// with the user's registry written as ${REGISTRY} (so that it expands to
// the proxy in front of the sandbox's), the git URL replaced by
// Options.Source, and only the make targets the images take files from.
func (e *env) loadRecipe() error {
	o := e.o
	data, err := recipes.Marshal(o.Recipe)
	if err != nil {
		return err
	}
	if err := yaml.Unmarshal(data, &e.raw); err != nil {
		return fmt.Errorf("reading back recipe %s: %w", o.Recipe.ID(), err)
	}
	rehome(&e.raw, e.user.Registry.Address)
	if o.Source != "" {
		src, err := filepath.Abs(o.Source)
		if err != nil {
			return err
		}
		e.raw.Spec.Source.Git = "file://" + src
	}
	e.raw.Spec.Source.Patches = nil
	// The paths are compared on the images: every path runs the make
	// targets the images need, and sailmaker makes no Debian packages here
	// (their repositories and tags would not change with the benchmark's
	// series).
	e.raw.Spec.Packages = nil
	onePlatformPerRepository(&e.raw)
	e.raw.Spec.Make.Targets = imageTargets(&e.raw)
	if err := os.MkdirAll(filepath.Join(e.recipeDir, "patches"), 0o755); err != nil {
		return err
	}
	for i, p := range o.Recipe.Patches() {
		rel := fmt.Sprintf("patches/recipe-%02d-%s", i+1, path.Base(p.Path))
		if err := os.WriteFile(filepath.Join(e.recipeDir, filepath.FromSlash(rel)), p.Data, 0o644); err != nil {
			return err
		}
		e.patchPaths = append(e.patchPaths, rel)
	}
	file, err := e.writeRecipe("recipe", e.raw)
	if err != nil {
		return err
	}
	if e.recipe, err = recipes.Load(file, recipes.WithRegistry(e.cfg.Registry.Address), recipes.WithAllowedRegistries(e.cfg.AllowedRegistries())); err != nil {
		return fmt.Errorf("the benchmark's copy of the recipe: %w", err)
	}
	e.gitURL = e.cfg.RewriteGitURL(e.recipe.Spec.Source.Git)
	return nil
}

// onePlatformPerRepository narrows r to what the plain Dockerfile and the
// floor build too: the first of its platforms (linux/amd64 for Istio's
// and the fixture's recipes), with ${TARGET_ARCH} written out and
// TARGET_ARCH passed to make as the builder passes it, and the first image
// of each repository (the debug flavour; the distroless tags hold the same
// binaries on other bases).
func onePlatformPerRepository(r *recipes.Recipe) {
	platform := r.Spec.PlatformList()[0]
	arch := recipes.ArchOf(platform)
	r.Spec.Platforms = []string{platform}
	r.Spec.Make.Targets = r.Spec.Make.TargetsFor(arch)
	vars := map[string]string{}
	for k, v := range r.Spec.Make.Variables {
		vars[k] = v
	}
	vars[recipes.VarTargetArch] = arch
	r.Spec.Make.Variables = vars
	seen := map[string]bool{}
	var images []recipes.Image
	for _, im := range r.Spec.Images {
		if seen[im.Repository] {
			continue
		}
		seen[im.Repository] = true
		files := make([]recipes.File, len(im.Files))
		for i, f := range im.Files {
			files[i] = f.For(arch)
		}
		im.Files = files
		images = append(images, im)
	}
	r.Spec.Images = images
}

// imageTargets are r's make targets that its images take files from (all
// of them if none is).
func imageTargets(r *recipes.Recipe) []string {
	need := map[string]bool{}
	for _, im := range r.Spec.Images {
		for _, f := range im.Files {
			if kind, p := f.Source(); kind == recipes.FromBuild {
				need[p] = true
			}
		}
	}
	var out []string
	for _, t := range r.Spec.Make.Targets {
		if need[t] {
			out = append(out, t)
		}
	}
	if len(out) == 0 {
		return r.Spec.Make.Targets
	}
	return out
}

// writeRecipe writes r with the recipe's patches (and extra ones, relative
// to the recipe folder) as <name>.yaml.
func (e *env) writeRecipe(name string, r recipes.Recipe, extra ...string) (string, error) {
	r.Spec.Source.Patches = append(append([]string{}, e.patchPaths...), extra...)
	data, err := yaml.Marshal(&r)
	if err != nil {
		return "", err
	}
	file := filepath.Join(e.recipeDir, name+".yaml")
	head := "# Written by sailmaker's benchmark for one build.\n"
	return file, os.WriteFile(file, append([]byte(head), data...), 0o644)
}

// cloneRecipe is a deep copy of the raw recipe.
func (e *env) cloneRecipe() recipes.Recipe {
	data, _ := json.Marshal(e.raw)
	var r recipes.Recipe
	_ = json.Unmarshal(data, &r)
	return r
}

// repository is where path p pushes image in series k.
func (e *env) repository(p Path, k int, image string) string {
	return fmt.Sprintf("bench/%s/c%d/%s/%s", e.o.RunID, k, p, image)
}

// ref is path p's image reference for v.
func (e *env) ref(p Path, v variant, image string) string {
	return e.cfg.Registry.Address + "/" + e.repository(p, v.series, image) + ":" + v.tag
}

// expand turns a reference as written in the recipe into one for the proxy.
func (e *env) expand(ref string) string {
	return strings.ReplaceAll(ref, "${REGISTRY}", e.cfg.Registry.Address)
}

// baseRef is the base image of the recipe's i-th image in v, resolved to
// its digest.
func (e *env) baseRef(ctx context.Context, v variant, i int) (name.Digest, error) {
	raw := e.raw.Spec.Images[i].Base
	if b, ok := v.bases[raw]; ok {
		raw = b
	}
	ref, err := e.rc.ParseRef(e.expand(raw))
	if err != nil {
		return name.Digest{}, err
	}
	d, ok, err := e.rc.Resolve(ctx, ref)
	if err != nil {
		return name.Digest{}, err
	}
	if !ok {
		return name.Digest{}, fmt.Errorf("the base image %s is not in the registry", ref)
	}
	return ref.Context().Digest(d.String()), nil
}

// startWindow starts counting registry traffic afresh and returns the time.
func (e *env) startWindow() time.Time {
	e.proxy.Take()
	return time.Now()
}

func (e *env) logFile(v variant, p Path, what string) string {
	e.logs++
	return filepath.Join(e.o.Out, "logs", fmt.Sprintf("%03d-%s-%s%s.log", e.logs, v.name, p, what))
}

// pruneAll empties BuildKit's cache, all of it: the builder and base
// images, the module cache's snapshot, the Go build cache mounts (the
// first-time scenario).
func (e *env) pruneAll(ctx context.Context) error {
	c, err := builder.Connect(ctx, e.o.Config)
	if err != nil {
		return err
	}
	defer c.Close()
	freed, err := prune(ctx, c, client.PruneAll)
	if err != nil {
		return fmt.Errorf("pruning BuildKit's cache: %w", err)
	}
	fmt.Fprintf(e.o.Progress, "bench:   pruned BuildKit's cache, all of it (%s)\n", output.Bytes(freed))
	return nil
}

// prune runs one BuildKit prune and adds up what it freed.
func prune(ctx context.Context, c *client.Client, opts ...client.PruneOption) (int64, error) {
	ch := make(chan client.UsageInfo)
	var freed int64
	done := make(chan struct{})
	go func() {
		for u := range ch {
			freed += u.Size
		}
		close(done)
	}()
	err := c.Prune(ctx, ch, opts...)
	close(ch)
	<-done
	return freed, err
}

// goCacheRecords tells a path's records in BuildKit's cache that make a
// build cold when pruned: its Go build cache mount (a cache mount with the
// given id) and the results of its make step (whose description is
// "mount <dir> from exec <args>", the args matching makeStep); the results
// must go too, or BuildKit would reuse them for the same inputs instead of
// running make.
type goCacheRecords struct {
	cacheID  string
	makeStep func(args string) bool
	// downstream tells, by description, the records made from the make
	// step's results (the plain Dockerfile's COPY --from=build): BuildKit
	// reuses a cached step without running the steps before it, so they
	// must go too.
	downstream func(desc string) bool
}

func (g goCacheRecords) match(u *client.UsageInfo) (isCacheMount, ok bool) {
	if u.RecordType == client.UsageRecordTypeCacheMount {
		// The Dockerfile frontend writes the id as a path ("/id").
		// builder.OutCacheID keeps make's out/ tree next to it: Go would
		// not link again what is there.
		for _, id := range []string{g.cacheID, builder.OutCacheID(g.cacheID)} {
			if strings.HasSuffix(u.Description, fmt.Sprintf(" with id %q", id)) ||
				strings.HasSuffix(u.Description, fmt.Sprintf(" with id %q", "/"+id)) {
				return true, true
			}
		}
		return true, false
	}
	if g.downstream != nil && g.downstream(u.Description) {
		return false, true
	}
	rest, ok := strings.CutPrefix(u.Description, "mount ")
	if !ok {
		return false, false
	}
	_, args, ok := strings.Cut(rest, " from exec ")
	return false, ok && g.makeStep(args)
}

// pruneGoCache prunes the records g matches and nothing else: the builder
// and base images, the module cache's snapshot and the source stay, as
// they do on a maintainer's machine between releases. It fails when
// BuildKit holds results of the path's make step but no cache mount by
// that id (the build would not be cold); with neither, the path has not
// built here yet and is cold already.
func (e *env) pruneGoCache(ctx context.Context, p Path, g goCacheRecords) error {
	c, err := builder.Connect(ctx, e.o.Config)
	if err != nil {
		return err
	}
	defer c.Close()
	du, err := c.DiskUsage(ctx)
	if err != nil {
		return fmt.Errorf("reading BuildKit's cache: %w", err)
	}
	var filters []string
	mounts := 0
	for _, u := range du {
		isMount, ok := g.match(u)
		if !ok {
			continue
		}
		if isMount {
			mounts++
		}
		filters = append(filters, "id=="+u.ID)
	}
	if len(filters) == 0 {
		// No filter would prune everything.
		fmt.Fprintf(e.o.Progress, "bench:   the %s path has no Go build cache in BuildKit yet: cold already\n", p)
		return nil
	}
	if mounts == 0 {
		// Results of its make step, but no cache mount by that id: the
		// path builds with another one, which this would leave warm.
		return fmt.Errorf("the %s path's Go build cache (a BuildKit cache mount with id %q) is not in BuildKit's cache, so pruning it would not make a cold build: was it renamed?", p, g.cacheID)
	}
	freed, err := prune(ctx, c, client.WithFilter(filters))
	if err != nil {
		return fmt.Errorf("pruning the %s path's Go build cache: %w", p, err)
	}
	fmt.Fprintf(e.o.Progress, "bench:   pruned the %s path's Go build cache and make results (%d records, %s)\n", p, len(filters), output.Bytes(freed))
	return nil
}

// bumpBases gives every base image of the recipe a new digest with the
// same layers (a label), pushed as bench/<run>/bases/<name>:bump-<n>, and
// returns the replacements for variant.bases.
func (e *env) bumpBases(ctx context.Context, n int) (map[string]string, error) {
	out := map[string]string{}
	for i, img := range e.raw.Spec.Images {
		if _, ok := out[img.Base]; ok {
			continue
		}
		ref, err := e.baseRef(ctx, variant{}, i)
		if err != nil {
			return nil, err
		}
		base, err := e.rc.Image(ctx, ref)
		if err != nil {
			return nil, err
		}
		cf, err := base.ConfigFile()
		if err != nil {
			return nil, err
		}
		cf = cf.DeepCopy()
		if cf.Config.Labels == nil {
			cf.Config.Labels = map[string]string{}
		}
		cf.Config.Labels[LabelBump] = fmt.Sprintf("%s-%d", e.o.RunID, n)
		bumped, err := mutate.ConfigFile(base, cf)
		if err != nil {
			return nil, err
		}
		repo := fmt.Sprintf("bench/%s/bases/%s", e.o.RunID, path.Base(ref.RepositoryStr()))
		tag, err := e.rc.Tag(repo, fmt.Sprintf("bump-%d", n))
		if err != nil {
			return nil, err
		}
		if err := remote.Write(tag, bumped, e.rc.Remote(ctx)...); err != nil {
			return nil, fmt.Errorf("pushing the bumped base %s: %w", tag, err)
		}
		out[img.Base] = "${REGISTRY}/" + repo + ":" + tag.TagStr()
	}
	return out, nil
}

// uploadedLayers counts the layers of m's images that were uploaded during
// the build.
func (e *env) uploadedLayers(ctx context.Context, m *Measurement) (int, error) {
	up := map[string]bool{}
	for _, b := range m.Traffic.Blobs {
		up[b] = true
	}
	n := 0
	for _, im := range m.Images {
		ref, err := e.rc.ParseRef(im.Ref)
		if err != nil {
			return 0, err
		}
		img, err := e.rc.Image(ctx, ref.Context().Digest(im.Digest))
		if err != nil {
			return 0, err
		}
		layers, err := img.Layers()
		if err != nil {
			return 0, err
		}
		for _, l := range layers {
			d, err := l.Digest()
			if err != nil {
				return 0, err
			}
			if up[d.String()] {
				n++
				delete(up, d.String())
			}
		}
	}
	return n, nil
}

// rotate starts the runners at offset k, so that no path always goes first.
func rotate(rs []runner, k int) []runner {
	if len(rs) == 0 {
		return nil
	}
	k %= len(rs)
	return append(append([]runner{}, rs[k:]...), rs[:k]...)
}

func (e *env) runAll(ctx context.Context, res *Results, save func() error) error {
	o := e.o
	want := map[Scenario]bool{}
	for _, sc := range o.Scenarios {
		want[sc] = true
	}
	measure := func(sc Scenario, run, runs int, r runner, v variant, adjust func(*Measurement)) error {
		// What the run before wrote goes to disk first: BuildKit
		// unmounts a container's overlay root with a sync of the whole
		// filesystem, so a run in BuildKit would otherwise also wait
		// for the previous run's writes (the floor's, a few hundred MB),
		// and a run on the host never does.
		syscall.Sync()
		load := loadAverage()
		fmt.Fprintf(o.Progress, "bench: %s %d/%d: %s (load average %s)...\n", sc, run, runs, r.path(), load)
		m, err := r.build(ctx, v)
		if err != nil {
			return fmt.Errorf("%s run %d, %s path: %w", sc, run, r.path(), err)
		}
		m.Traffic = e.proxy.Take()
		m.Scenario, m.Path, m.Run, m.Patch, m.Load = sc, r.path(), run, v.patch, load
		if mustMake(sc, m.Path) && !m.MakeRan {
			return fmt.Errorf("%s run %d, %s path: BuildKit did not run make but reused a cached result (see %s): the benchmark left a record of the previous build in BuildKit's cache, so this would not measure a %s build", sc, run, r.path(), m.Log, sc)
		}
		if adjust != nil {
			adjust(m)
		}
		if m.UploadedLayers, err = e.uploadedLayers(ctx, m); err != nil {
			return fmt.Errorf("reading back the images of %s run %d, %s path: %w", sc, run, r.path(), err)
		}
		if o.Check != nil {
			if err := o.Check(ctx, e.rc, m); err != nil {
				return fmt.Errorf("checking the images of %s run %d, %s path: %w", sc, run, r.path(), err)
			}
			e.proxy.Take()
		}
		sync := ""
		if m.ModuleSync > 0 {
			sync = fmt.Sprintf(", module cache %s in (%s content)", output.Bytes(m.ModuleSync), output.Bytes(m.ModuleContent))
		}
		fmt.Fprintf(o.Progress, "bench: %s %d/%d: %s: %s, uploaded %s (%d layers), pulled %s%s\n",
			sc, run, runs, r.path(), fmtDuration(m.Wall), output.Bytes(m.Traffic.Uploaded), m.UploadedLayers, output.Bytes(m.Traffic.Downloaded), sync)
		res.Measurements = append(res.Measurements, *m)
		return save()
	}
	unmeasured := func(what string, r runner, v variant) error {
		fmt.Fprintf(o.Progress, "bench: %s (not measured): %s...\n", what, r.path())
		if _, err := r.build(ctx, v); err != nil {
			return fmt.Errorf("%s, %s path: %w", what, r.path(), err)
		}
		e.proxy.Take()
		return nil
	}

	if want[FirstTime] {
		var sm runner
		for _, r := range e.runners {
			if r.path() == Sailmaker {
				sm = r
			}
		}
		if sm == nil {
			fmt.Fprintf(o.Progress, "bench: the first-time scenario measures sailmaker only: skipped (--paths has no sailmaker)\n")
		} else {
			fmt.Fprintf(o.Progress, "bench: first-time: downloading every module of go.sum into an empty module cache, as sailmaker's fetch does...\n")
			dl, err := timeModuleDownload(ctx, e.in.SourceDir, e.sb.dir, e.cfg.Go)
			if err != nil {
				return err
			}
			fmt.Fprintf(o.Progress, "bench: first-time: module download %s\n", fmtDuration(dl))
			if err := e.pruneAll(ctx); err != nil {
				return err
			}
			// sailmaker writes the module cache and the source as input
			// layers once per go.sum and commit: in its fetch phase.
			if err := builder.ForgetInputLayers(e.cfg.CacheDir(), e.in); err != nil {
				return err
			}
			v := variant{name: "c0-first", series: 0, tag: "first"}
			if err := measure(FirstTime, 1, 1, sm, v, func(m *Measurement) {
				m.Wall += dl
				m.Phases = append([]Phase{{Name: "module download", Duration: dl}}, m.Phases...)
			}); err != nil {
				return err
			}
			e.firstTime = true
		}
	}

	var last variant
	if want[Cold] {
		for _, r := range e.runners {
			if err := r.prime(ctx); err != nil {
				return fmt.Errorf("priming the %s path: %w", r.path(), err)
			}
		}
		for k := 1; k <= o.ColdRuns; k++ {
			v := variant{name: fmt.Sprintf("c%d-cold", k), series: k, tag: "cold"}
			for _, r := range rotate(e.runners, k-1) {
				if err := r.cold(ctx); err != nil {
					return err
				}
				if err := measure(Cold, k, o.ColdRuns, r, v, nil); err != nil {
					return err
				}
			}
			last = v
		}
	} else {
		// One build each (not measured) to start the warm scenarios from,
		// as a maintainer's caches are between releases. The no-op
		// scenario repeats it.
		last = variant{name: "c1-warm", series: 1, tag: "warm"}
		for _, r := range e.runners {
			if err := unmeasured("warm-up build", r, last); err != nil {
				return err
			}
		}
	}
	if want[NoOp] {
		for i := 1; i <= o.Runs; i++ {
			for _, r := range rotate(e.runners, i-1) {
				if err := measure(NoOp, i, o.Runs, r, last, nil); err != nil {
					return err
				}
			}
		}
	}
	if want[Incremental] {
		for i := 1; i <= o.Runs; i++ {
			p, err := MakePatch(o.PatchFile, e.pristine, i, Marker(o.RunID, i))
			if err != nil {
				return err
			}
			fmt.Fprintf(o.Progress, "bench: incremental %d/%d changes %s:%d to %q\n", i, o.Runs, p.File, p.Line, strings.TrimSpace(p.New))
			v := variant{name: fmt.Sprintf("c%d-inc-%d", last.series, i), series: last.series, tag: fmt.Sprintf("inc-%d", i), patch: p}
			for _, r := range rotate(e.runners, i-1) {
				if err := measure(Incremental, i, o.Runs, r, v, nil); err != nil {
					return err
				}
			}
		}
	}
	if want[BaseBump] {
		for i := 1; i <= o.Runs; i++ {
			bases, err := e.bumpBases(ctx, i)
			if err != nil {
				return err
			}
			v := variant{name: fmt.Sprintf("c%d-base-%d", last.series, i), series: last.series, tag: fmt.Sprintf("base-%d", i), bases: bases}
			for _, r := range rotate(e.runners, i-1) {
				if err := measure(BaseBump, i, o.Runs, r, v, nil); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// sailmakerRunner drives the real CLI.
type sailmakerRunner struct{ e *env }

func (s *sailmakerRunner) path() Path { return Sailmaker }

// prime builds once, unless the first-time build just did (then BuildKit
// holds the builder image and the module cache's snapshot).
func (s *sailmakerRunner) prime(ctx context.Context) error {
	if s.e.firstTime {
		return nil
	}
	fmt.Fprintf(s.e.o.Progress, "bench: priming BuildKit for the sailmaker path (a build, not measured)...\n")
	_, err := s.build(ctx, variant{name: "c0-prime", series: 0, tag: "prime"})
	s.e.proxy.Take()
	return err
}

// SailmakerGoCacheID is the id of the cache mount that holds sailmaker's
// Go build cache in BuildKit, for a builder image digest (hex).
func SailmakerGoCacheID(builderHex string) string {
	return "sailmaker-gocache-" + builderHex[:min(16, len(builderHex))]
}

func (s *sailmakerRunner) cold(ctx context.Context) error {
	e := s.e
	_, hex, _ := strings.Cut(e.builder, "@sha256:")
	target := path.Join("/src", e.recipe.Spec.Make.Targets[0])
	return e.pruneGoCache(ctx, Sailmaker, goCacheRecords{
		cacheID: SailmakerGoCacheID(hex),
		makeStep: func(args string) bool {
			return strings.HasPrefix(args, "/bin/sh -euc ") && strings.Contains(args, target)
		},
		// builder.CompileState merges the platforms' make results into
		// one tree ("collect the linux/amd64, linux/arm64 builds"); one
		// platform's is exported as it is.
		downstream: isCollectStep,
	})
}

// isCollectStep tells the records of builder.CompileState's merge of the
// platforms' make results (or, before, its copy of each), by description.
func isCollectStep(desc string) bool {
	return strings.HasPrefix(desc, "collect the ") && (strings.HasSuffix(desc, " build") || strings.HasSuffix(desc, " builds"))
}

// mustMake says whether path p's build in scenario sc has to run make: a
// cached make step there means the benchmark failed to make the build
// what the scenario says. (The floor always runs make.)
func mustMake(sc Scenario, p Path) bool {
	return p != Floor && (sc == FirstTime || sc == Cold || sc == Incremental)
}

func (s *sailmakerRunner) build(ctx context.Context, v variant) (*Measurement, error) {
	e := s.e
	file, ok := e.written[v.name]
	if !ok {
		r := e.cloneRecipe()
		for i := range r.Spec.Images {
			img := &r.Spec.Images[i]
			if b, ok := v.bases[img.Base]; ok {
				img.Base = b
			}
			img.Repository = e.repository(Sailmaker, v.series, img.Name)
			img.Tag = v.tag
		}
		var extra []string
		if v.patch != nil {
			rel := "patches/" + v.name + ".patch"
			if err := os.WriteFile(filepath.Join(e.recipeDir, rel), v.patch.Diff, 0o644); err != nil {
				return nil, err
			}
			extra = append(extra, rel)
		}
		var err error
		if file, err = e.writeRecipe(v.name, r, extra...); err != nil {
			return nil, err
		}
		e.written[v.name] = file
	}
	logFile := e.logFile(v, Sailmaker, "")
	e.startWindow()
	run, err := runSailmaker(ctx, e.o, append(e.o.SailmakerArgs, e.sb.args()...), file, logFile, []string{"SAILMAKER_REGISTRY=" + e.cfg.Registry.Address})
	if err != nil {
		return nil, err
	}
	var t api.Timings
	if run.Result.Timings != nil {
		t = *run.Result.Timings
	}
	lf, err := os.Open(logFile)
	if err != nil {
		return nil, err
	}
	st, err := parseProgress(lf, "gomodcache")
	lf.Close()
	if err != nil {
		return nil, err
	}
	m := &Measurement{Wall: run.Wall, Push: t.Push, PeakRSS: run.PeakRSS, UpToDate: run.Result.UpToDate, Log: logFile, MakeRan: st.MakeRan,
		ModuleSync: st.ModuleSyncBytes, ModuleContent: e.modules.contentOf(st.ModuleSyncBytes), ImagePull: st.PullBytes}
	m.Phases = append([]Phase{{Name: "fetch", Duration: t.Fetch}, {Name: "solve", Duration: t.Solve}}, st.solvePhases("builder pull")...)
	m.Phases = append(m.Phases, Phase{Name: "assemble", Duration: t.Assemble}, Phase{Name: "images", Duration: st.Assembly, Within: "assemble"},
		Phase{Name: "validate", Duration: st.Validate, Within: "assemble"}, Phase{Name: "push", Duration: t.Push},
		Phase{Name: "other", Duration: max(0, run.Wall-t.Fetch-t.Solve-t.Assemble-t.Push)})
	for _, im := range run.Result.Images {
		m.Images = append(m.Images, Image{Name: im.Name, Ref: im.Repository + ":" + im.Tag, Digest: im.Digest})
		m.SelfReportedUploaded += im.BytesUploaded
	}
	return m, nil
}

// plainRunner builds the plain Dockerfile with buildctl, one build per
// image, both at once (as a bake would).
type plainRunner struct {
	e             *env
	co            *checkout
	dockerfileDir string
}

func newPlainRunner(ctx context.Context, e *env) (*plainRunner, error) {
	for _, img := range e.recipe.Spec.Images {
		if img.Name != "pilot" && img.Name != "proxyv2" {
			return nil, fmt.Errorf("the plain Dockerfile builds pilot and proxyv2; it has no stage for the recipe's image %s", img.Name)
		}
	}
	dir := filepath.Join(e.o.Out, "plain")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(dir, "Dockerfile"), Dockerfile, 0o644); err != nil {
		return nil, err
	}
	co, err := newCheckout(ctx, e.gitURL, e.recipe.Spec.Source.Tag, e.recipe.Spec.Source.Commit, filepath.Join(dir, "src"), e.o.PatchFile, e.recipe.Patches())
	if err != nil {
		return nil, err
	}
	return &plainRunner{e: e, co: co, dockerfileDir: dir}, nil
}

func (p *plainRunner) path() Path { return Plain }

// PlainGoCacheID is the id of the plain Dockerfile's Go build cache mount.
const PlainGoCacheID = "sailmaker-bench-plain-gocache"

// prime builds the Dockerfile's prime stage: it pulls the builder and the
// base and takes in the source, the module cache and Envoy, and compiles
// nothing.
func (p *plainRunner) prime(ctx context.Context) error {
	e := p.e
	if err := p.co.use(ctx, nil); err != nil {
		return err
	}
	base, err := e.baseRef(ctx, variant{}, 0)
	if err != nil {
		return err
	}
	fmt.Fprintf(e.o.Progress, "bench: priming BuildKit for the plain path (its prime stage: pulls and transfers, no compile; not measured)...\n")
	// As many sessions at once as the path's builds: each session takes
	// the source and the module cache into a snapshot of its own when
	// another holds the first.
	g, gctx := errgroup.WithContext(ctx)
	for i := range e.recipe.Spec.Images {
		b := PlainBuild{Target: PrimeTarget, PrimeID: fmt.Sprintf("%s-%d", e.o.RunID, i), Builder: e.builder, Base: base.String(),
			Context: p.co.Dir, DockerfileDir: p.dockerfileDir, GoModCache: e.in.GoModCache, EnvoyDir: e.in.EnvoyDir}
		log := e.logFile(variant{name: fmt.Sprintf("prime-%d", i)}, Plain, "")
		g.Go(func() error {
			_, err := runBuildctl(gctx, e.o.Buildctl, e.o.Config, b, log)
			return err
		})
	}
	err = g.Wait()
	e.proxy.Take()
	return err
}

func (p *plainRunner) cold(ctx context.Context) error {
	return p.e.pruneGoCache(ctx, Plain, goCacheRecords{
		cacheID:    PlainGoCacheID,
		makeStep:   func(args string) bool { return strings.HasPrefix(args, "/bin/sh -c make ${MAKE_ARGS}") },
		downstream: func(desc string) bool { return strings.Contains(desc, "] COPY --from=build ") },
	})
}

func (p *plainRunner) build(ctx context.Context, v variant) (*Measurement, error) {
	e := p.e
	if err := p.co.use(ctx, v.patch); err != nil {
		return nil, err
	}
	r := e.recipe
	builds := make([]PlainBuild, len(r.Spec.Images))
	logs := make([]string, len(builds))
	for i, img := range r.Spec.Images {
		base, err := e.baseRef(ctx, v, i)
		if err != nil {
			return nil, err
		}
		logs[i] = e.logFile(v, Plain, "-"+img.Name)
		builds[i] = PlainBuild{
			Target: img.Name, Image: e.ref(Plain, v, img.Name), Builder: e.builder, Base: base.String(),
			MakeArgs:   MakeArgs(r.Spec.Make.Variables, r.Spec.Make.Targets, "/src"),
			TargetArch: r.Spec.Make.Variables["TARGET_ARCH"], ProxySHA: e.in.ProxySHA, SourceDateEpoch: e.in.CommitTime,
			Context: p.co.Dir, DockerfileDir: p.dockerfileDir, GoModCache: e.in.GoModCache, EnvoyDir: e.in.EnvoyDir,
			MetadataFile: strings.TrimSuffix(logs[i], ".log") + ".metadata.json",
		}
		if _, err := builds[i].Args(); err != nil {
			return nil, err
		}
	}
	runs := make([]buildctlRun, len(builds))
	start := e.startWindow()
	g, gctx := errgroup.WithContext(ctx)
	for i := range builds {
		g.Go(func() error {
			var err error
			runs[i], err = runBuildctl(gctx, e.o.Buildctl, e.o.Config, builds[i], logs[i])
			return err
		})
	}
	err := g.Wait()
	wall := time.Since(start)
	if err != nil {
		return nil, err
	}
	m := &Measurement{Wall: wall, Log: logs[0]}
	var export, push window
	var st solveStats
	for i, run := range runs {
		export, push = union(export, run.Export), union(push, run.Push)
		// Each build takes in the module cache in its own session; the
		// layers they pull are the same.
		st.ModuleSync, st.Pull, st.Make = union(st.ModuleSync, run.ModuleSync), union(st.Pull, run.Pull), union(st.Make, run.Make)
		m.MakeRan = m.MakeRan || run.MakeRan
		m.ModuleSync += run.ModuleSyncBytes
		m.ModuleContent += e.modules.contentOf(run.ModuleSyncBytes)
		m.ImagePull = max(m.ImagePull, run.PullBytes)
		m.Images = append(m.Images, Image{Name: builds[i].Target, Ref: builds[i].Image, Digest: run.Digest})
		if run.Digest == "" {
			return nil, fmt.Errorf("buildctl did not say what it pushed for %s (see %s)", builds[i].Target, logs[i])
		}
	}
	m.Push = push.duration()
	solve := wall
	if !export.empty() {
		solve = export.Start.Sub(start)
	}
	exp := max(0, export.duration()-m.Push)
	m.Phases = append([]Phase{{Name: "solve", Duration: solve}}, st.solvePhases("image pull")...)
	m.Phases = append(m.Phases, Phase{Name: "export", Duration: exp}, Phase{Name: "push", Duration: m.Push}, Phase{Name: "other", Duration: max(0, wall-solve-exp-m.Push)})
	return m, nil
}

// floorRunner runs upstream's make on the host and pushes with
// go-containerregistry.
type floorRunner struct {
	e       *env
	co      *checkout
	goroot  string
	gocache string
	layers  string
}

func newFloorRunner(ctx context.Context, e *env) (*floorRunner, error) {
	dir := filepath.Join(e.o.Out, "floor")
	modcache := e.o.ToolchainCache
	if modcache == "" {
		modcache = filepath.Join(e.o.Config.CacheDir(), "toolchain-modcache")
	}
	fmt.Fprintf(e.o.Progress, "bench: the floor builds with Go %s on the host (from %s)\n", e.recipe.Spec.Toolchain.Go, modcache)
	goroot, err := HostGo(ctx, e.recipe.Spec.Toolchain.Go, modcache, e.o.Config.Go)
	if err != nil {
		return nil, err
	}
	co, err := newCheckout(ctx, e.gitURL, e.recipe.Spec.Source.Tag, e.recipe.Spec.Source.Commit, filepath.Join(dir, "src"), e.o.PatchFile, e.recipe.Patches())
	if err != nil {
		return nil, err
	}
	f := &floorRunner{e: e, co: co, goroot: goroot, gocache: filepath.Join(dir, "gocache"), layers: filepath.Join(dir, "layers")}
	return f, os.MkdirAll(f.layers, 0o755)
}

func (f *floorRunner) path() Path { return Floor }

// prime has nothing to do: the floor's Go was installed when it was set
// up, and its module cache is the one the inputs were fetched into.
func (f *floorRunner) prime(context.Context) error { return nil }

func (f *floorRunner) cold(context.Context) error { return os.RemoveAll(f.gocache) }

func (f *floorRunner) build(ctx context.Context, v variant) (*Measurement, error) {
	e := f.e
	if err := f.co.use(ctx, v.patch); err != nil {
		return nil, err
	}
	r := e.recipe
	logFile := e.logFile(v, Floor, "")
	lf, err := os.Create(logFile)
	if err != nil {
		return nil, err
	}
	defer lf.Close()
	start := e.startWindow()

	cmd := exec.CommandContext(ctx, "make", MakeArgs(r.Spec.Make.Variables, r.Spec.Make.Targets, f.co.Dir)...)
	cmd.Dir = f.co.Dir
	cmd.Env = hostBuildEnv(f.goroot, f.gocache, e.in.GoModCache, e.in.CommitTime)
	cmd.Stdout, cmd.Stderr = lf, lf
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("make on the host: %w\n%s\n(the whole output is in %s)", err, tailFile(logFile, 1500), logFile)
	}
	tMake := time.Since(start)

	t := time.Now()
	epoch := time.Unix(e.in.CommitTime, 0).UTC()
	writes := map[name.Reference]remote.Taggable{}
	m := &Measurement{Log: logFile}
	for i, img := range r.Spec.Images {
		baseRef, err := e.baseRef(ctx, v, i)
		if err != nil {
			return nil, err
		}
		base, err := e.rc.Image(ctx, baseRef)
		if err != nil {
			return nil, err
		}
		out, err := FloorImage(img, base, f.co.Dir, e.in.EnvoyDir, epoch, filepath.Join(f.layers, v.name+"-"+img.Name+".tar.gz"))
		if err != nil {
			return nil, err
		}
		ref, err := e.rc.ParseRef(e.ref(Floor, v, img.Name))
		if err != nil {
			return nil, err
		}
		d, err := out.Digest()
		if err != nil {
			return nil, err
		}
		writes[ref] = out
		m.Images = append(m.Images, Image{Name: img.Name, Ref: ref.String(), Digest: d.String()})
	}
	tAssemble := time.Since(t)

	t = time.Now()
	if err := remote.MultiWrite(writes, e.rc.Remote(ctx)...); err != nil {
		return nil, fmt.Errorf("pushing the floor's images: %w", err)
	}
	m.Push = time.Since(t)
	m.Wall = time.Since(start)
	m.Phases = []Phase{{Name: "make", Duration: tMake}, {Name: "assemble", Duration: tAssemble}, {Name: "push", Duration: m.Push}}
	return m, nil
}
