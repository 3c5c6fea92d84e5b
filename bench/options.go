package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/sirupsen/logrus"

	"github.com/sailmaker/sailmaker/config"
	"github.com/sailmaker/sailmaker/recipes"
	"github.com/sailmaker/sailmaker/registry"
)

// Scenario is one situation a maintainer rebuilds in.
type Scenario string

// The scenarios, in the order they run.
const (
	// FirstTime: what a go.sum costs the first time, on its own: BuildKit's
	// cache pruned entirely (the builder image, the module cache's
	// snapshot, the Go build cache), the modules downloaded into an empty
	// module cache; then a full build and push. Sailmaker only.
	FirstTime Scenario = "first-time"
	// Cold: an empty Go build cache (BuildKit's Go build cache mounts and
	// the results of the make step pruned, the floor's GOCACHE emptied);
	// the builder and base images, the module cache and its snapshot in
	// BuildKit are kept. A full build and push of every image.
	Cold Scenario = "cold"
	// NoOp: the same recipe again, nothing changed.
	NoOp Scenario = "no-op"
	// Incremental: one line of pilot-discovery's main package changed by a
	// patch (a different line each run).
	Incremental Scenario = "incremental"
	// BaseBump: the base image has a new digest with the same layers; the
	// binaries did not change.
	BaseBump Scenario = "base-bump"
)

// Scenarios are all scenarios in the order they run.
var Scenarios = []Scenario{FirstTime, Cold, NoOp, Incremental, BaseBump}

// Path is one way of building the images.
type Path string

// The paths, in the order they are reported.
const (
	Sailmaker Path = "sailmaker"
	Plain     Path = "plain"
	Floor     Path = "floor"
)

// Paths are all paths.
var Paths = []Path{Sailmaker, Plain, Floor}

// ParseScenarios reads a comma-separated list ("all" or empty: every
// scenario); the result is in running order, without duplicates.
func ParseScenarios(s string) ([]Scenario, error) {
	if s == "" || s == "all" {
		return append(slices.Clone(Scenarios), PoolScenarios...), nil
	}
	alias := map[string]Scenario{"first-time": FirstTime, "first": FirstTime, "firsttime": FirstTime, "cold": Cold, "no-op": NoOp, "noop": NoOp, "incremental": Incremental, "base-bump": BaseBump, "basebump": BaseBump, "base": BaseBump,
		"throughput": Throughput, "registry-cache": RegistryCache, "cache": RegistryCache}
	seen := map[Scenario]bool{}
	for _, f := range strings.Split(s, ",") {
		sc, ok := alias[strings.TrimSpace(strings.ToLower(f))]
		if !ok {
			return nil, fmt.Errorf("unknown scenario %q: choose from first-time, cold, no-op, incremental, base-bump, throughput, registry-cache (or all)", strings.TrimSpace(f))
		}
		seen[sc] = true
	}
	var out []Scenario
	for _, sc := range append(slices.Clone(Scenarios), PoolScenarios...) {
		if seen[sc] {
			out = append(out, sc)
		}
	}
	return out, nil
}

// SplitScenarios separates the scenarios Run measures from the pool
// scenarios RunPool does.
func SplitScenarios(all []Scenario) (single, pooled []Scenario) {
	for _, sc := range all {
		if slices.Contains(PoolScenarios, sc) {
			pooled = append(pooled, sc)
		} else {
			single = append(single, sc)
		}
	}
	return single, pooled
}

// ParsePaths reads a comma-separated list ("all" or empty: every path); the
// result is in reporting order, without duplicates.
func ParsePaths(s string) ([]Path, error) {
	if s == "" || s == "all" {
		return slices.Clone(Paths), nil
	}
	seen := map[Path]bool{}
	for _, f := range strings.Split(s, ",") {
		p := Path(strings.TrimSpace(strings.ToLower(f)))
		if !slices.Contains(Paths, p) {
			return nil, fmt.Errorf("unknown path %q: choose from sailmaker, plain, floor (or all)", strings.TrimSpace(f))
		}
		seen[p] = true
	}
	var out []Path
	for _, p := range Paths {
		if seen[p] {
			out = append(out, p)
		}
	}
	return out, nil
}

// Options configure a benchmark run.
type Options struct {
	// Config is the user's environment: its buildkitd, its input cache
	// (<state>/cache, shared), and its registry, from which the builder
	// and base images are copied into the benchmark's own registry
	// (nothing is written to it, nor to its ledger).
	Config *config.Config
	// Recipe is the recipe every path builds (images, make targets, files).
	Recipe *recipes.Recipe
	// Source, if set, is a local git repository to fetch the recipe's tag
	// from instead of its git URL (a real upstream checkout or mirror).
	Source string
	// EnvoyFile and EnvoySHA256 are handed to sailmaker (and used for the
	// other paths' inputs) as `sailmaker build` takes them.
	EnvoyFile   string
	EnvoySHA256 string
	// PatchFile is the Go file the incremental scenario changes, relative
	// to the source root. Default: pilot/cmd/pilot-discovery/main.go.
	PatchFile string

	// Sailmaker is the sailmaker binary and SailmakerArgs global flags it
	// runs with besides the sandbox's --config and --state-dir (which
	// win); Env is added to its environment.
	Sailmaker     string
	SailmakerArgs []string
	Env           []string
	// Buildctl is the buildctl binary for the plain path.
	Buildctl string
	// ToolchainCache is the module cache holding golang.org/toolchain for
	// the floor's host Go (default <cache>/toolchain-modcache, where
	// `sailmaker base build` put it).
	ToolchainCache string

	Scenarios []Scenario
	Paths     []Path
	// Runs is how many times each warm scenario runs (default 3);
	// ColdRuns how many times the cold one does (default 1).
	Runs     int
	ColdRuns int
	// Out is the benchmark's folder: recipes, checkouts, logs, results.json.
	Out string
	// RunID names the registry repositories, bench/<RunID>/...; default:
	// the base name of Out.
	RunID string

	// Check, if set, is called after each measured build with a client of
	// the benchmark's registry, which is gone once Run returns (tests read
	// the images back); an error stops the run.
	Check func(ctx context.Context, rc *registry.Client, m *Measurement) error

	// Progress receives one line per step (the benchmark takes minutes).
	Progress io.Writer
	Log      logrus.FieldLogger
}

// DefaultPatchFile is the file the incremental scenario changes.
const DefaultPatchFile = "pilot/cmd/pilot-discovery/main.go"

func (o *Options) validate() error {
	var errs []error
	if o.Config == nil {
		errs = append(errs, errors.New("no configuration"))
	}
	if o.Recipe == nil {
		errs = append(errs, errors.New("no recipe"))
	}
	if o.Out == "" {
		errs = append(errs, errors.New("no output folder"))
	}
	if o.Runs < 1 {
		errs = append(errs, fmt.Errorf("runs %d: at least 1", o.Runs))
	}
	if o.ColdRuns < 1 && slices.Contains(o.Scenarios, Cold) {
		errs = append(errs, fmt.Errorf("cold runs %d: at least 1", o.ColdRuns))
	}
	if len(o.Scenarios) == 0 {
		errs = append(errs, errors.New("no scenario"))
	}
	if len(o.Paths) == 0 {
		errs = append(errs, errors.New("no path"))
	}
	if slices.Contains(o.Paths, Sailmaker) && o.Sailmaker == "" {
		errs = append(errs, errors.New("no sailmaker binary to measure"))
	}
	if slices.Contains(o.Paths, Plain) && o.Buildctl == "" {
		errs = append(errs, errors.New("no buildctl for the plain path: `make tools` builds bin/buildctl; or pass --buildctl, or leave the path out with --paths"))
	}
	return errors.Join(errs...)
}
