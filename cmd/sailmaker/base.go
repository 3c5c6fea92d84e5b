package main

import (
	"context"
	"fmt"
	"io"
	"path/filepath"
	"strings"

	"github.com/sirupsen/logrus"
	"github.com/spf13/cobra"

	"github.com/sailmaker/sailmaker/api"
	"github.com/sailmaker/sailmaker/builder/base"
	"github.com/sailmaker/sailmaker/config"
	"github.com/sailmaker/sailmaker/publish"
	"github.com/sailmaker/sailmaker/recipes"
	"github.com/sailmaker/sailmaker/registry"
	"github.com/sailmaker/sailmaker/store"
)

func init() { subcommands = append(subcommands, newBaseCmd) }

type baseBuildOptions struct {
	global  *globalOptions
	files   []string
	names   []string
	rebuild bool
	force   bool
	output  *outputFlag
}

func newBaseCmd(g *globalOptions) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "base",
		Short: "Internal base images, built from Debian packages",
		Example: `  sailmaker base list
  sailmaker base build`,
	}
	o := &baseBuildOptions{global: g}
	build := &cobra.Command{
		Use:   "build [NAME...]",
		Short: "Build and push the base images (all embedded ones, or those named)",
		Long: `Build the internal base images with mmdebstrap from Debian packages (and the
Go toolchain from the golang.org/toolchain module for builder images) and push
them to the internal registry. A base with several platforms (spec.platforms)
is built per platform and pushed as an OCI image index under its tag; each
platform's progress is logged. A distroless base holds only selected files of
its packages (no shell, no package manager).

An image whose tag is already there is reused unless --rebuild; a rebuild must
give the same digest (the builds are reproducible) or the tag is left alone
unless --force. Building a Debian base for another architecture (linux/arm64
here) needs qemu-user-static and binfmt_misc; this is checked before anything
is built.`,
		Example: `  sailmaker base build
  sailmaker base build base/bookworm --rebuild
  sailmaker base build base/iptables -o json
  sailmaker base build -f my-base.yaml -o csv`,
		RunE: func(cmd *cobra.Command, args []string) error {
			o.names = args
			return runBaseBuild(cmd.Context(), cmd.OutOrStdout(), o)
		},
	}
	build.Flags().StringArrayVarP(&o.files, "file", "f", nil, "a BaseImage recipe file (repeatable)")
	build.Flags().BoolVar(&o.rebuild, "rebuild", false, "build even if the tag exists (the digest must not change)")
	build.Flags().BoolVar(&o.force, "force", false, "move a tag that points to a different digest")
	o.output = addOutputFlag(build)
	build.ValidArgsFunction = completeBaseNames
	cmd.AddCommand(build)

	var listOut *outputFlag
	list := &cobra.Command{
		Use:   "list",
		Short: "List the embedded base image recipes",
		Long: `List the embedded base image recipes: name, tag, flavour (debian: an installed
Debian system; distroless: selected files only) and platforms.`,
		Example: `  sailmaker base list
  sailmaker base list -o yaml`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := g.load()
			if err != nil {
				return err
			}
			bases, err := recipes.Bases(recipeOptions(cfg)...)
			if err != nil {
				return err
			}
			l := make(baseList, len(bases))
			for i, b := range bases {
				l[i] = baseEntry{Name: b.Metadata.Name, Version: b.Metadata.Version, Image: b.Ref(cfg.Registry.Address),
					Flavour: flavour(b), Platforms: b.Spec.PlatformList(), Suite: b.Spec.Suite, Variant: b.Spec.Variant,
					Packages: b.Spec.Packages, Digest: b.Digest()}
				if b.Spec.Go != nil {
					l[i].Go = b.Spec.Go.Version
				}
			}
			return listOut.write(cmd.OutOrStdout(), l)
		},
	}
	listOut = addOutputFlag(list)
	cmd.AddCommand(list)
	return cmd
}

func runBaseBuild(ctx context.Context, w io.Writer, o *baseBuildOptions) error {
	cfg, err := o.global.load()
	if err != nil {
		return err
	}
	ropts := []recipes.Option{recipes.WithRegistry(cfg.Registry.Address), recipes.WithAllowedRegistries(cfg.AllowedRegistries())}
	var specs []*recipes.BaseImage
	for _, f := range o.files {
		b, err := recipes.LoadBase(f, ropts...)
		if err != nil {
			return err
		}
		specs = append(specs, b)
	}
	for _, n := range o.names {
		b, err := recipes.GetBase(n, ropts...)
		if err != nil {
			return err
		}
		specs = append(specs, b)
	}
	if len(specs) == 0 {
		if specs, err = recipes.Bases(ropts...); err != nil {
			return err
		}
	}
	rc, err := registry.NewClient(cfg)
	if err != nil {
		return err
	}
	if err := registry.Ping(ctx, cfg.Registry.Address, cfg.RegistryInsecure(cfg.Registry.Address)); err != nil {
		return err
	}
	// Everything that would stop a build is checked before the first one
	// starts: which bases need building, and whether this machine can.
	for _, b := range specs {
		s := base.FromRecipe(b)
		if !o.rebuild {
			tag, err := rc.Tag(s.Name, s.Version)
			if err != nil {
				return err
			}
			if _, ok, err := rc.Resolve(ctx, tag); err != nil {
				return err
			} else if ok {
				continue
			}
		}
		if err := base.PreflightSpec(s); err != nil {
			return err
		}
	}
	st, err := store.OpenDir(ctx, cfg.StateDir)
	if err != nil {
		return err
	}
	defer st.Close()
	trigger := localTrigger()
	var rows baseBuilt
	for _, b := range specs {
		p, err := base.Ensure(ctx, rc, base.FromRecipe(b), base.EnsureOptions{
			Options: baseOptions(cfg),
			Rebuild: o.rebuild,
			Force:   o.force,
		})
		// New and moved base tags, and refusals, go to the ledger like the
		// builds' tags, so audit can tell a base tag moved behind
		// sailmaker's back.
		if lerr := publish.RecordPushed(ctx, st, trigger, p, err); lerr != nil {
			return fmt.Errorf("recording in the ledger: %w", lerr)
		}
		if err != nil {
			return err
		}
		im := imageFromPushed(b.Metadata.Name, *p)
		im.Platforms = b.Spec.PlatformList()
		rows = append(rows, baseResult{Image: im, Flavour: flavour(b)})
	}
	return o.output.write(w, rows)
}

func baseOptions(cfg *config.Config) base.Options {
	return base.Options{
		Mirror:   cfg.Debian.Mirror,
		GoProxy:  cfg.Go.Proxy,
		GoSumDB:  cfg.Go.SumDB,
		WorkDir:  filepath.Join(cfg.StateDir, "tmp"),
		CacheDir: cfg.CacheDir(),
		Log:      logrus.StandardLogger(),
	}
}

// flavour is debian (an installed Debian system) or distroless (selected
// files of Debian packages).
func flavour(b *recipes.BaseImage) string {
	if b.Spec.Distroless != nil {
		return "distroless"
	}
	return "debian"
}

// baseResult is one base image `base build` pushed or found: the image
// result with the base's flavour and platforms.
type baseResult struct {
	api.Image
	Flavour string `json:"flavour"`
}

type baseBuilt []baseResult

func (l baseBuilt) Header() []string {
	return []string{"IMAGE", "TAG", "FLAVOUR", "PLATFORMS", "DIGEST", "SIZE", "STATUS"}
}

func (l baseBuilt) Rows() [][]string {
	rows := make([][]string, len(l))
	for i, r := range l {
		rows[i] = []string{r.Repository, r.Tag, r.Flavour, strings.Join(r.Platforms, ","), r.Digest, humanSize(r.Size), api.StatusText(r.Status)}
	}
	return rows
}

// baseEntry is a line of `base list`.
type baseEntry struct {
	Name      string   `json:"name"`
	Version   string   `json:"version"`
	Image     string   `json:"image"`
	Flavour   string   `json:"flavour"`
	Platforms []string `json:"platforms"`
	Suite     string   `json:"suite"`
	Variant   string   `json:"variant"`
	Go        string   `json:"go,omitempty"`
	Packages  []string `json:"packages"`
	// Digest is the recipe's.
	Digest string `json:"recipeDigest"`
}

type baseList []baseEntry

func (l baseList) Header() []string {
	return []string{"NAME", "VERSION", "IMAGE", "FLAVOUR", "PLATFORMS", "DEBIAN", "GO", "PACKAGES"}
}

func (l baseList) Rows() [][]string {
	rows := make([][]string, len(l))
	for i, b := range l {
		rows[i] = []string{b.Name, b.Version, b.Image, b.Flavour, strings.Join(b.Platforms, ","), b.Suite + " " + b.Variant, b.Go, strings.Join(b.Packages, " ")}
	}
	return rows
}
