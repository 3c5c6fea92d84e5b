package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/user"

	"github.com/moby/buildkit/util/progress/progressui"
	"github.com/sirupsen/logrus"
	"github.com/spf13/cobra"

	"github.com/sailmaker/sailmaker/builder"
	"github.com/sailmaker/sailmaker/config"
	"github.com/sailmaker/sailmaker/recipes"
	"github.com/sailmaker/sailmaker/registry"
	"github.com/sailmaker/sailmaker/store"
)

func init() { subcommands = append(subcommands, newBuildCmd) }

type buildOptions struct {
	file              string
	envoyFile         string
	envoySHA256       string
	force             bool
	checkReproducible bool
	output            string
	progress          string
	timings           bool
	server            string
}

func newBuildCmd(g *globalOptions) *cobra.Command {
	o := &buildOptions{}
	cmd := &cobra.Command{
		Use:   "build [RECIPE]",
		Short: "Build a recipe's images from upstream source and push them",
		Long: `Build the images of one recipe: fetch and verify the source at the pinned
commit, the Go modules against go.sum and Envoy by sha256; run upstream's make
targets in BuildKit with no network; assemble the images on the internal base
images; push them by digest, then tag them. Tags are immutable: a tag that
names another digest is refused unless --force. When the registry already has
the images from the same inputs, nothing is built or pushed.`,
		Example: `  sailmaker build istio@1.24.2
  sailmaker build -f my-recipe.yaml -o json
  sailmaker build istio@1.24.2 --envoy-file envoy.tar.gz --envoy-sha256 <sum>
  sailmaker build istio@1.24.2 --check-reproducible --timings
  sailmaker build istio@1.24.2 --server http://127.0.0.1:8080   # queue it on a build service`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if (len(args) == 0) == (o.file == "") {
				return errors.New("name one recipe: an embedded one (see `sailmaker recipes list`) or -f FILE")
			}
			cfg, err := g.load()
			if err != nil {
				return err
			}
			if serverURL(o.server, cfg) != "" {
				c, err := serviceClient(o.server, cfg)
				if err != nil {
					return err
				}
				return runRemoteBuild(cmd.Context(), cmd.OutOrStdout(), cmd.ErrOrStderr(), c, args, o)
			}
			r, err := loadRecipe(cfg, args, o.file)
			if err != nil {
				return err
			}
			return runBuild(cmd.Context(), cmd.OutOrStdout(), cmd.ErrOrStderr(), cfg, r, o)
		},
	}
	f := cmd.Flags()
	f.StringVarP(&o.file, "file", "f", "", "recipe file (YAML or JSON) instead of an embedded recipe")
	f.StringVar(&o.envoyFile, "envoy-file", "", "use this local Envoy tarball instead of downloading it (its sha256 is still checked)")
	f.StringVar(&o.envoySHA256, "envoy-sha256", "", "expect this sha256 for the Envoy tarball instead of the recipe's pin (recorded on the images)")
	f.BoolVar(&o.force, "force", false, "rebuild even if up to date, and move tags that point to other digests (recorded)")
	f.BoolVar(&o.checkReproducible, "check-reproducible", false, "build twice, the second time without cache, and fail unless the digests are equal")
	f.StringVarP(&o.output, "output", "o", "table", "output format: table or json")
	f.StringVar(&o.progress, "progress", "auto", "build progress: auto, plain, tty or quiet")
	f.BoolVar(&o.timings, "timings", false, "print how long each phase took (with -o json: an object {images, timings in nanoseconds, upToDate} instead of the list of images)")
	f.StringVar(&o.server, "server", "", "queue the build on this build service and follow it (default $SAILMAKER_SERVER or server.url; none: build here)")
	return cmd
}

func loadRecipe(cfg *config.Config, args []string, file string) (*recipes.Recipe, error) {
	opts := []recipes.Option{recipes.WithRegistry(cfg.Registry.Address), recipes.WithAllowedRegistries(cfg.AllowedRegistries())}
	if file != "" {
		return recipes.Load(file, opts...)
	}
	return recipes.Get(args[0], opts...)
}

func runBuild(ctx context.Context, stdout, stderr io.Writer, cfg *config.Config, r *recipes.Recipe, o *buildOptions) error {
	for _, w := range r.Warnings() {
		logrus.Warn(w)
	}
	rc, err := registry.NewClient(cfg)
	if err != nil {
		return err
	}
	if err := registry.Ping(ctx, cfg.Registry.Address, cfg.RegistryInsecure(cfg.Registry.Address)); err != nil {
		return err
	}
	mode := progressui.DisplayMode(o.progress)
	if o.progress == "auto" {
		mode = progressui.AutoMode
		if f, ok := stderr.(*os.File); !ok || !isTerminal(f) {
			mode = progressui.PlainMode
		}
	}
	st, err := store.OpenDir(ctx, cfg.StateDir)
	if err != nil {
		return err
	}
	defer st.Close()
	res, err := builder.Build(ctx, r, builder.Options{
		Trigger:           builder.Trigger{Actor: localActor(), Kind: "cli"},
		Ledger:            st,
		Config:            cfg,
		Registry:          rc,
		Progress:          builder.Progress{Out: stderr, Mode: mode},
		Log:               logrus.StandardLogger(),
		EnvoyFile:         o.envoyFile,
		EnvoySHA256:       o.envoySHA256,
		Force:             o.force,
		CheckReproducible: o.checkReproducible,
	})
	if err != nil {
		return err
	}
	if res.UpToDate {
		fmt.Fprintf(stderr, "%s is up to date: the registry has its images from the same inputs; nothing built, nothing pushed\n", r.ID())
	}
	if o.timings {
		t := res.Timings
		fmt.Fprintf(stderr, "timings: fetch %s, solve %s, assemble %s, push %s, total %s\n", t.Fetch.Round(1e6), t.Solve.Round(1e6), t.Assemble.Round(1e6), t.Push.Round(1e6), t.Total.Round(1e6))
	}
	names := make([]string, len(res.Images))
	pushed := make([]registry.Pushed, len(res.Images))
	for i, im := range res.Images {
		names[i], pushed[i] = im.Name, im.Pushed
	}
	rows := rowsFromPushed(names, pushed)
	if o.timings && o.output == "json" {
		// The machine-readable form of --timings: the rows with the
		// timings (nanoseconds) beside them.
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(buildJSON{Images: rows, Timings: res.Timings, UpToDate: res.UpToDate})
	}
	return printRows(stdout, rows, o.output)
}

// buildJSON is what `build -o json --timings` prints.
type buildJSON struct {
	Images   []imageRow      `json:"images"`
	Timings  builder.Timings `json:"timings"`
	UpToDate bool            `json:"upToDate"`
}

// localActor names the user running the CLI, for the ledger and provenance.
func localActor() string {
	if u, err := user.Current(); err == nil && u.Username != "" {
		return u.Username
	}
	return fmt.Sprintf("uid:%d", os.Getuid())
}

func isTerminal(f *os.File) bool {
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}
