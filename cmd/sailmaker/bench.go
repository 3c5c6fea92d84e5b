package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	"github.com/sirupsen/logrus"
	"github.com/spf13/cobra"

	"github.com/sailmaker/sailmaker/bench"
	"github.com/sailmaker/sailmaker/config"
	"github.com/sailmaker/sailmaker/internal/output"
	"github.com/sailmaker/sailmaker/internal/sample"
	"github.com/sailmaker/sailmaker/recipes"
)

func init() { subcommands = append(subcommands, newBenchCmd) }

type benchOptions struct {
	runs, coldRuns   int
	scenarios, paths string
	recipe, file     string
	fixture          string
	source           string
	envoyFile        string
	envoySHA256      string
	out              string
	sailmaker        string
	buildctl         string
	output           string
	poolBuilds       int
}

func newBenchCmd(g *globalOptions) *cobra.Command {
	o := &benchOptions{}
	cmd := &cobra.Command{
		Use:   "bench",
		Short: "Measure sailmaker against a plain Dockerfile build and the host's own make",
		Long: `Build the same recipe three ways, side by side, and compare them:

  sailmaker  this binary, 'sailmaker build', as a process of its own
  plain      bench/Dockerfile built with buildctl on the same buildkitd,
             pushed by BuildKit to the same registry
  floor      upstream's make targets run on the host (Go from the
             golang.org/toolchain module), the layers pushed with
             go-containerregistry: the limit no image builder beats by much

in five scenarios: first-time (sailmaker only: BuildKit's cache pruned
entirely and the modules downloaded into an empty module cache: what a new
go.sum costs once), cold (an empty Go build cache; the builder and base
images and the module cache kept), no-op (the same again), incremental (a
one-line patch to pilot-discovery's main package) and base-bump (a base image
with a new digest, same layers). Warm scenarios run --runs times, the cold
one --cold-runs times; the table gives medians, bytes uploaded (counted by a
proxy in front of the registry), the module cache moved into BuildKit, where
the time went (fetch, module sync, builder pull, make, assemble, push) and
sailmaker's peak memory, and judges the targets.

Nothing is written to the configured registry or ledger: the benchmark runs
its own registry (the embedded one, in a temporary folder, with the builder
and base images copied in by digest) and gives the sailmaker runs a state
directory of their own that shares only the input cache; both are removed at
the end. The configured buildkitd is used, and its cache pruned as the
scenarios say. Results go to the output folder (results.json, results.md,
logs/).

It needs what 'make demo' sets up: buildkitd, the registry and the base
images. Without a recipe it builds the demo's fixture; --recipe istio@1.24.2
with --source (a local git mirror of istio/istio) and --envoy-file measures
real Istio (make bench ISTIO_SOURCE=... ENVOY_FILE=... does).`,
		Example: `  sailmaker bench
  sailmaker bench --runs 5 --scenarios incremental,no-op --paths sailmaker,floor
  sailmaker bench --recipe istio@1.24.2 --source /srv/git/istio.git --envoy-file envoy-alpha-1ed7d440.tar.gz \
    --envoy-sha256 <sum> --scenarios first-time,cold,no-op,incremental,base-bump --runs 3 --cold-runs 1`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			scenarios, err := bench.ParseScenarios(o.scenarios)
			if err != nil {
				return err
			}
			paths, err := bench.ParsePaths(o.paths)
			if err != nil {
				return err
			}
			if err := checkOutput(o.output, output.Table, output.JSON); err != nil {
				return err
			}
			if o.runs < 1 || o.coldRuns < 1 {
				return fmt.Errorf("--runs %d, --cold-runs %d: each must be at least 1", o.runs, o.coldRuns)
			}
			if o.recipe != "" && o.file != "" {
				return errors.New("--recipe and -f both name a recipe: give one")
			}
			cfg, err := g.load()
			if err != nil {
				return err
			}
			r, err := benchRecipe(cfg, o)
			if err != nil {
				return err
			}
			if o.sailmaker == "" {
				if o.sailmaker, err = os.Executable(); err != nil {
					return err
				}
			}
			if o.buildctl == "" {
				o.buildctl = findBuildctl()
			}
			if o.out == "" {
				o.out = filepath.Join("bench", "out", time.Now().UTC().Format("20060102-150405"))
			}
			log := logrus.New()
			log.SetOutput(cmd.ErrOrStderr())
			log.SetLevel(logrus.WarnLevel)
			// The benchmark's own registry logs every request through
			// logrus' standard logger: to a file, not the terminal.
			if err := os.MkdirAll(o.out, 0o755); err != nil {
				return err
			}
			regLog, err := os.Create(filepath.Join(o.out, "registry.log"))
			if err != nil {
				return err
			}
			defer regLog.Close()
			std := logrus.StandardLogger()
			prevOut := std.Out
			std.SetOutput(regLog)
			defer std.SetOutput(prevOut)
			single, pooled := bench.SplitScenarios(scenarios)
			if len(single) > 0 {
				res, err := bench.Run(cmd.Context(), bench.Options{
					Config: cfg, Recipe: r, Source: o.source,
					EnvoyFile: o.envoyFile, EnvoySHA256: o.envoySHA256,
					Sailmaker: o.sailmaker, Buildctl: o.buildctl,
					Scenarios: single, Paths: paths, Runs: o.runs, ColdRuns: o.coldRuns,
					Out: o.out, Progress: cmd.ErrOrStderr(), Log: log,
				})
				if res != nil {
					if perr := printBench(cmd, res, o); perr != nil && err == nil {
						err = perr
					}
				}
				if err != nil {
					return err
				}
			}
			if len(pooled) > 0 {
				return runPoolBench(cmd, cfg, r, o, pooled, log)
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.IntVar(&o.runs, "runs", 3, "runs of each warm scenario (no-op, incremental, base-bump); the table gives medians")
	f.IntVar(&o.coldRuns, "cold-runs", 1, "runs of the cold scenario (each empties the Go build caches)")
	f.StringVar(&o.scenarios, "scenarios", "all", "comma-separated: first-time, cold, no-op, incremental, base-bump, throughput, registry-cache")
	f.StringVar(&o.paths, "paths", "all", "comma-separated: sailmaker, plain, floor")
	f.StringVar(&o.recipe, "recipe", "", "an embedded recipe (name@version) instead of the demo's fixture")
	f.StringVarP(&o.file, "file", "f", "", "a recipe file instead of the demo's fixture")
	f.StringVar(&o.fixture, "fixture", defaultDemoFixture, "the fixture upstream tree, as for 'sailmaker demo' (without --recipe or -f)")
	f.StringVar(&o.source, "source", "", "a local git repository (upstream checkout or mirror) to take the recipe's tag from instead of its git URL")
	f.StringVar(&o.envoyFile, "envoy-file", "", "as for 'sailmaker build'")
	f.StringVar(&o.envoySHA256, "envoy-sha256", "", "as for 'sailmaker build'")
	f.StringVar(&o.out, "out", "", "output folder (default bench/out/<UTC time>)")
	f.StringVar(&o.sailmaker, "sailmaker", "", "the sailmaker binary to measure (default: this one)")
	f.StringVar(&o.buildctl, "buildctl", "", "buildctl for the plain path (default: $SAILMAKER_BIN_DIR/buildctl, beside this binary, or on PATH)")
	f.StringVarP(&o.output, "output", "o", "table", "output format: table or json (the table is Markdown)")
	completeOutput(cmd, output.Table, output.JSON)
	f.IntVar(&o.poolBuilds, "pool-builds", 6, "builds the throughput scenario queues at once (on 1 worker, then on 3)")
	return cmd
}

// benchRecipe is the recipe to measure: the one named, or the demo's
// fixture (prepared as 'sailmaker demo' prepares it).
func benchRecipe(cfg *config.Config, o *benchOptions) (*recipes.Recipe, error) {
	opts := []recipes.Option{recipes.WithRegistry(cfg.Registry.Address), recipes.WithAllowedRegistries(cfg.AllowedRegistries())}
	switch {
	case o.file != "":
		return recipes.Load(o.file, opts...)
	case o.recipe != "":
		return recipes.Get(o.recipe, opts...)
	}
	// The benchmark's paths build linux/amd64 (the plain Dockerfile and the
	// host's make): the demo's fixture for that platform alone.
	file, err := prepareFixture(cfg, o.fixture, sample.RecipeOptions{}, "recipe-amd64.yaml")
	if err != nil {
		return nil, err
	}
	return recipes.Load(file, opts...)
}

// findBuildctl looks where the Makefile puts buildctl, then beside this
// binary, then on PATH.
func findBuildctl() string {
	var dirs []string
	if d := os.Getenv("SAILMAKER_BIN_DIR"); d != "" {
		dirs = append(dirs, d)
	}
	if exe, err := os.Executable(); err == nil {
		dirs = append(dirs, filepath.Dir(exe))
	}
	for _, d := range dirs {
		p := filepath.Join(d, "buildctl")
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
			return p
		}
	}
	if p, err := exec.LookPath("buildctl"); err == nil {
		return p
	}
	return ""
}

func printBench(cmd *cobra.Command, res *bench.Results, o *benchOptions) error {
	md, err := os.Create(filepath.Join(res.Settings.Out, "results.md"))
	if err != nil {
		return err
	}
	defer md.Close()
	if err := res.WriteTable(md); err != nil {
		return err
	}
	fmt.Fprintf(cmd.ErrOrStderr(), "bench: results in %s (results.json, results.md, logs/)\n", res.Settings.Out)
	if o.output == "json" {
		enc := json.NewEncoder(cmd.OutOrStdout())
		enc.SetIndent("", "  ")
		return enc.Encode(res)
	}
	return res.WriteTable(cmd.OutOrStdout())
}

// runPoolBench runs the pool scenarios (throughput, registry-cache) and
// adds their tables to the output folder's pool.md and pool.json.
func runPoolBench(cmd *cobra.Command, cfg *config.Config, r *recipes.Recipe, o *benchOptions, scenarios []bench.Scenario, log logrus.FieldLogger) error {
	if o.poolBuilds < 1 {
		return fmt.Errorf("--pool-builds %d: must be at least 1", o.poolBuilds)
	}
	res, err := bench.RunPool(cmd.Context(), bench.PoolOptions{
		Config: cfg, Recipe: r, EnvoyFile: o.envoyFile, EnvoySHA256: o.envoySHA256,
		Scenarios: scenarios, Builds: o.poolBuilds, ColdRuns: o.coldRuns,
		Out: o.out, Progress: cmd.ErrOrStderr(), Log: log,
	})
	if res == nil {
		return err
	}
	if err != nil {
		res.Error = err.Error()
	}
	if data, jerr := json.MarshalIndent(res, "", "  "); jerr == nil {
		_ = os.WriteFile(filepath.Join(o.out, "pool.json"), data, 0o644)
	}
	if md, merr := os.Create(filepath.Join(o.out, "pool.md")); merr == nil {
		_ = res.WritePoolTable(md)
		md.Close()
	}
	if o.output == "json" {
		enc := json.NewEncoder(cmd.OutOrStdout())
		enc.SetIndent("", "  ")
		if jerr := enc.Encode(res); jerr != nil && err == nil {
			err = jerr
		}
	} else {
		fmt.Fprintln(cmd.OutOrStdout())
		if terr := res.WritePoolTable(cmd.OutOrStdout()); terr != nil && err == nil {
			err = terr
		}
	}
	return err
}
