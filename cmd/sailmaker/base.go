package main

import (
	"fmt"
	"path/filepath"

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
	output  string
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
			return printImages(cmd.OutOrStdout(), results, o.output)
		},
	}
	build.Flags().StringArrayVarP(&o.files, "file", "f", nil, "a BaseImage recipe file (repeatable)")
	build.Flags().BoolVar(&o.rebuild, "rebuild", false, "build even if the tag exists (the digest must not change)")
	build.Flags().BoolVar(&o.force, "force", false, "move a tag that points to a different digest")
	build.Flags().StringVarP(&o.output, "output", "o", "table", "output format: table or json")
	cmd.AddCommand(build)
	cmd.AddCommand(&cobra.Command{
		Use:     "list",
		Short:   "List the embedded base image recipes",
		Example: `  sailmaker base list`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			bases, err := recipes.Bases()
			if err != nil {
				return err
			}
			for _, b := range bases {
				goV := ""
				if b.Spec.Go != nil {
					goV = " + Go " + b.Spec.Go.Version
				}
				fmt.Fprintf(cmd.OutOrStdout(), "%s:%s\tdebian %s %s%s\n", b.Metadata.Name, b.Metadata.Version, b.Spec.Suite, b.Spec.Variant, goV)
			}
			return nil
		},
	})
	return cmd
}
