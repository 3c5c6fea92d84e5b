package main

import (
	"fmt"
	"path/filepath"
	"strings"

	"github.com/sirupsen/logrus"
	"github.com/spf13/cobra"

	"github.com/sailmaker/sailmaker/api"
	"github.com/sailmaker/sailmaker/builder/base"
	"github.com/sailmaker/sailmaker/publish"
	"github.com/sailmaker/sailmaker/recipes"
	"github.com/sailmaker/sailmaker/registry"
	"github.com/sailmaker/sailmaker/store"
)

func init() { subcommands = append(subcommands, newBaseCmd) }

type baseBuildOptions struct {
	files   []string
	rebuild bool
	force   bool
	output  *outputFlag
}

func newBaseCmd(g *globalOptions) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "base",
		Short: "Internal base images, built from Debian packages",
	}
	o := &baseBuildOptions{}
	build := &cobra.Command{
		Use:   "build [NAME...]",
		Short: "Build and push the base images (all embedded ones, or those named)",
		Long: `Build the internal base images with mmdebstrap from Debian packages (and the
Go toolchain from the golang.org/toolchain module for builder images) and push
them to the internal registry. An image whose tag is already there is reused
unless --rebuild; a rebuild must give the same digest (the builds are
reproducible) or the tag is left alone unless --force.`,
		Example: `  sailmaker base build
  sailmaker base build base/bookworm --rebuild
  sailmaker base build -f my-base.yaml -o json`,
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := g.load()
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
			for _, n := range args {
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
			if err := registry.Ping(cmd.Context(), cfg.Registry.Address, cfg.RegistryInsecure(cfg.Registry.Address)); err != nil {
				return err
			}
			st, err := store.OpenDir(cmd.Context(), cfg.StateDir)
			if err != nil {
				return err
			}
			defer st.Close()
			trigger := localTrigger()
			var results []api.Image
			for _, b := range specs {
				p, err := base.Ensure(cmd.Context(), rc, base.FromRecipe(b), base.EnsureOptions{
					Options: base.Options{
						Mirror:   cfg.Debian.Mirror,
						GoProxy:  cfg.Go.Proxy,
						GoSumDB:  cfg.Go.SumDB,
						WorkDir:  filepath.Join(cfg.StateDir, "tmp"),
						CacheDir: cfg.CacheDir(),
						Log:      logrus.StandardLogger(),
					},
					Rebuild: o.rebuild,
					Force:   o.force,
				})
				// New and moved base tags, and refusals, go to the ledger
				// like the builds' tags, so audit can tell a base tag moved
				// behind sailmaker's back.
				if lerr := publish.RecordPushed(cmd.Context(), st, trigger, p, err); lerr != nil {
					return fmt.Errorf("recording in the ledger: %w", lerr)
				}
				if err != nil {
					return err
				}
				results = append(results, imageFromPushed(b.Metadata.Name, *p))
			}
			return printImages(cmd.OutOrStdout(), results, o.output.String())
		},
	}
	build.Flags().StringArrayVarP(&o.files, "file", "f", nil, "a BaseImage recipe file (repeatable)")
	build.Flags().BoolVar(&o.rebuild, "rebuild", false, "build even if the tag exists (the digest must not change)")
	build.Flags().BoolVar(&o.force, "force", false, "move a tag that points to a different digest")
	// The image rows of a build print as a table or JSON (see output.go).
	o.output = addOutputFlag(build)
	build.ValidArgsFunction = completeBaseNames
	cmd.AddCommand(build)

	var listOut *outputFlag
	list := &cobra.Command{
		Use:   "list",
		Short: "List the embedded base image recipes",
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
					Suite: b.Spec.Suite, Variant: b.Spec.Variant, Packages: b.Spec.Packages, Digest: b.Digest()}
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

// baseEntry is a line of `base list`.
type baseEntry struct {
	Name     string   `json:"name"`
	Version  string   `json:"version"`
	Image    string   `json:"image"`
	Suite    string   `json:"suite"`
	Variant  string   `json:"variant"`
	Go       string   `json:"go,omitempty"`
	Packages []string `json:"packages"`
	// Digest is the recipe's.
	Digest string `json:"recipeDigest"`
}

type baseList []baseEntry

func (l baseList) Header() []string {
	return []string{"NAME", "VERSION", "IMAGE", "DEBIAN", "GO", "PACKAGES"}
}

func (l baseList) Rows() [][]string {
	rows := make([][]string, len(l))
	for i, b := range l {
		rows[i] = []string{b.Name, b.Version, b.Image, b.Suite + " " + b.Variant, b.Go, strings.Join(b.Packages, " ")}
	}
	return rows
}
