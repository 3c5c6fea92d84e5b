package main

import (
	"bytes"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	"github.com/sirupsen/logrus"
	"github.com/spf13/cobra"

	"github.com/sailmaker/sailmaker/config"
	"github.com/sailmaker/sailmaker/internal/atomicfile"
	"github.com/sailmaker/sailmaker/internal/output"
	"github.com/sailmaker/sailmaker/internal/sample"
	"github.com/sailmaker/sailmaker/publish"
	"github.com/sailmaker/sailmaker/recipes"
)

func init() { subcommands = append(subcommands, newDemoCmd) }

// defaultDemoFixture is where the fixture upstream is in a sailmaker
// checkout, relative to its root (where `make demo` runs).
const defaultDemoFixture = "testdata/upstream"

type demoOptions struct {
	fixture  string
	output   *outputFlag
	progress string
}

func newDemoCmd(g *globalOptions) *cobra.Command {
	o := &demoOptions{}
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Build a small Istio-shaped fixture end to end, for real",
		Long: `Build sailmaker's test fixture the way 'sailmaker build' builds Istio: a tiny
Istio-shaped upstream (testdata/upstream) committed and tagged as a git
repository, a stand-in Envoy tarball, and a recipe for both, all kept under
<state-dir>/demo/. The images fixture/pilot and fixture/proxyv2 are built in
BuildKit on the internal base images, for linux/amd64 and linux/arm64 (each
tag an image index), with the distroless flavour (tags <version>-distroless),
validated (their binaries run in BuildKit) and pushed to the configured
registry, with the recipe's Debian packages (from linux/amd64's build) next
to them (fixture/istio-cni, the release's istioctl, and
fixture/istioctl-versions): the table lists both.

It needs what 'sailmaker build' needs (buildkitd, the registry and the base
images: 'sailmaker dev up' and 'sailmaker base build'), a module proxy for the
fixture's one Go dependency, and the go command to build the stand-in Envoy.
The fixture commit is fixed, so running it again builds nothing.`,
		Example: `  sailmaker demo
  sailmaker --state-dir /tmp/sm demo --fixture ~/src/sailmaker/testdata/upstream -o json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			switch o.progress {
			case "auto", "plain", "tty", "quiet", "rawjson":
			default:
				return fmt.Errorf("--progress %q: must be auto, plain, tty or quiet", o.progress)
			}
			cfg, err := g.load()
			if err != nil {
				return err
			}
			file, err := prepareDemo(cfg, o.fixture)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "demo: prepared %s (fixture git repository, stand-in Envoy, recipe); building it as `%s` would\n",
				filepath.Dir(file), equivalentBuild(g, file))
			r, err := recipes.Load(file, recipes.WithRegistry(cfg.Registry.Address), recipes.WithAllowedRegistries(cfg.AllowedRegistries()))
			if err != nil {
				return err
			}
			return runBuild(cmd.Context(), cmd.OutOrStdout(), cmd.ErrOrStderr(), cfg, r, []publish.Output{{Kind: publish.OutputRegistry}}, &buildOptions{
				file:     file,
				format:   o.output,
				progress: o.progress,
			})
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.fixture, "fixture", defaultDemoFixture, "the fixture upstream tree; its parent must also hold envoy-standin/ and recipes/fixture.yaml.tmpl, as sailmaker's testdata/ does")
	o.output = addOutputFlag(cmd)
	completeOutput(cmd, output.Table, output.JSON)
	f.StringVar(&o.progress, "progress", "auto", "build progress: auto, plain, tty or quiet")
	return cmd
}

// prepareDemo makes everything the demo builds under <state-dir>/demo and
// returns the recipe file:
//
//	upstream/                  the fixture tree, committed and tagged (fixed time)
//	artifacts/envoy-alpha-<proxySHA>.tar.gz   the stand-in Envoy (linux/amd64)
//	artifacts/envoy-alpha-<proxySHA>-arm64.tar.gz   and linux/arm64's
//	recipe.yaml                the fixture recipe for both platforms, with the
//	                           distroless flavour, registry from cfg
//
// It is idempotent: the same fixture gives the same commit, tarball and
// recipe, so a second build finds the registry up to date. If the fixture
// changed, the repository is made afresh.
func prepareDemo(cfg *config.Config, fixtureDir string) (recipeFile string, err error) {
	return prepareFixture(cfg, fixtureDir, sample.Demo, "recipe.yaml")
}

// prepareFixture is prepareDemo for the recipe rendered as o says (its
// Envoy URL and sums filled in), written as name.
func prepareFixture(cfg *config.Config, fixtureDir string, o sample.RecipeOptions, name string) (recipeFile string, err error) {
	if fixtureDir == "" {
		fixtureDir = defaultDemoFixture
	}
	src, err := filepath.Abs(fixtureDir)
	if err != nil {
		return "", err
	}
	if fi, err := os.Stat(filepath.Join(src, "istio.deps")); err != nil || !fi.Mode().IsRegular() {
		return "", fmt.Errorf("no demo fixture at %s (an Istio-shaped tree with istio.deps, like testdata/upstream): run it from a sailmaker checkout or pass --fixture", src)
	}
	testdata := filepath.Dir(src)
	standin := filepath.Join(testdata, sample.EnvoyStandinDir)
	tmpl := filepath.Join(testdata, filepath.FromSlash(sample.RecipeTemplate))
	for _, p := range []string{filepath.Join(standin, "main.go"), tmpl} {
		if _, err := os.Stat(p); err != nil {
			return "", fmt.Errorf("the demo fixture %s has no %s beside it (--fixture must be a tree of sailmaker's testdata/, like testdata/upstream): %w", src, p, err)
		}
	}

	stateDir, err := filepath.Abs(cfg.StateDir)
	if err != nil {
		return "", err
	}
	dir := filepath.Join(stateDir, "demo")
	repoDir := filepath.Join(dir, "upstream")
	opts := sample.UpstreamOptions{Dir: src}
	repo, err := sample.NewUpstream(repoDir, opts)
	if errors.Is(err, sample.ErrRepoMismatch) {
		logrus.WithField("dir", repoDir).Info("the demo fixture changed since the last run: making its git repository afresh")
		if err := os.RemoveAll(repoDir); err != nil {
			return "", err
		}
		repo, err = sample.NewUpstream(repoDir, opts)
	}
	if err != nil {
		return "", fmt.Errorf("preparing the demo's git repository: %w", err)
	}

	envoys, err := sample.BuildEnvoyTarballsFrom(standin, repo.ProxySHA)
	if err != nil {
		return "", fmt.Errorf("preparing the demo's stand-in Envoy: %w", err)
	}
	artifacts := filepath.Join(dir, "artifacts")
	for arch, tarball := range envoys.Tarballs {
		if err := writeFileIfChanged(filepath.Join(artifacts, sample.EnvoyTarballNameFor(repo.ProxySHA, arch)), tarball); err != nil {
			return "", err
		}
	}

	// The builder reads file:// URLs from disk; a trailing "/" makes the
	// recipe append envoy-alpha-${PROXY_REPO_SHA}[-<arch>].tar.gz.
	o.EnvoyURL = (&url.URL{Scheme: "file", Path: filepath.ToSlash(artifacts) + "/"}).String()
	o.EnvoySHA256, o.Registry = envoys.SHA256, cfg.Registry.Address
	text, err := sample.RenderRecipeWith(tmpl, repo, o)
	if err != nil {
		return "", err
	}
	recipeFile = filepath.Join(dir, name)
	if err := writeFileIfChanged(recipeFile, []byte(text)); err != nil {
		return "", err
	}
	return recipeFile, nil
}

// writeFileIfChanged writes data to path (parents created) through a
// temporary file and a rename, unless path already holds exactly data.
func writeFileIfChanged(path string, data []byte) error {
	if old, err := os.ReadFile(path); err == nil && bytes.Equal(old, data) {
		return nil
	}
	return atomicfile.Write(path, data)
}

// equivalentBuild is the `sailmaker build` command line that builds the
// demo's recipe with the same global settings.
func equivalentBuild(g *globalOptions, recipeFile string) string {
	args := []string{"sailmaker"}
	if g.configFile != "" {
		args = append(args, "--config", shellQuote(g.configFile))
	}
	if g.stateDir != "" {
		args = append(args, "--state-dir", shellQuote(g.stateDir))
	}
	args = append(args, "build", "-f", shellQuote(recipeFile))
	return strings.Join(args, " ")
}

// shellQuote quotes s for a POSIX shell when it needs it.
func shellQuote(s string) string {
	if s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789@%+=:,./_-") == "" {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
