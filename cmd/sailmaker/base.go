package main

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"text/tabwriter"

	"github.com/sirupsen/logrus"
	"github.com/spf13/cobra"
	"gopkg.in/yaml.v3"

	"github.com/sailmaker/sailmaker/builder"
	"github.com/sailmaker/sailmaker/builder/base"
	"github.com/sailmaker/sailmaker/config"
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
	output  string
}

type baseListOptions struct {
	output string
}

// baseRow is one base image in `base build` and `base list` output.
type baseRow struct {
	Name      string   `json:"name" yaml:"name"`
	Image     string   `json:"image,omitempty" yaml:"image,omitempty"`
	Tag       string   `json:"tag" yaml:"tag"`
	Flavour   string   `json:"flavour" yaml:"flavour"` // debian or distroless
	Platforms []string `json:"platforms" yaml:"platforms"`
	Digest    string   `json:"digest,omitempty" yaml:"digest,omitempty"`
	// Index says the digest names an OCI image index (several platforms).
	Index       bool   `json:"index,omitempty" yaml:"index,omitempty"`
	Size        int64  `json:"size,omitempty" yaml:"size,omitempty"`
	Status      string `json:"status,omitempty" yaml:"status,omitempty"`
	Previous    string `json:"previous,omitempty" yaml:"previous,omitempty"`
	Description string `json:"description,omitempty" yaml:"description,omitempty"`
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
	build.Flags().StringVarP(&o.output, "output", "o", "table", "output format: table, json, yaml or csv")
	cmd.AddCommand(build)

	lo := &baseListOptions{}
	list := &cobra.Command{
		Use:   "list",
		Short: "List the embedded base image recipes",
		Long: `List the embedded base image recipes: name, tag, flavour (debian: an installed
Debian system; distroless: selected files only) and platforms.`,
		Example: `  sailmaker base list
  sailmaker base list -o json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runBaseList(cmd.OutOrStdout(), lo)
		},
	}
	list.Flags().StringVarP(&lo.output, "output", "o", "table", "output format: table, json, yaml or csv")
	cmd.AddCommand(list)
	return cmd
}

func checkBaseOutput(output string) error {
	switch output {
	case "table", "json", "yaml", "csv":
		return nil
	}
	return fmt.Errorf("-o %q: use table, json, yaml or csv", output)
}

func runBaseBuild(ctx context.Context, w io.Writer, o *baseBuildOptions) error {
	if err := checkBaseOutput(o.output); err != nil {
		return err
	}
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
	trigger := builder.Trigger{Actor: localActor(), Kind: "cli"}
	var rows []baseRow
	for _, b := range specs {
		p, err := base.Ensure(ctx, rc, base.FromRecipe(b), base.EnsureOptions{
			Options: baseOptions(cfg),
			Rebuild: o.rebuild,
			Force:   o.force,
		})
		// New and moved base tags, and refusals, go to the ledger
		// like the builds' tags, so audit can tell a base tag moved
		// behind sailmaker's back.
		var done []registry.Pushed
		if p != nil && !p.Unchanged {
			done = []registry.Pushed{*p}
		}
		if lerr := builder.RecordPushes(ctx, st, trigger, done, err); lerr != nil {
			return fmt.Errorf("recording in the ledger: %w", lerr)
		}
		if err != nil {
			return err
		}
		r := describeBaseRow(b)
		r.Image, r.Tag, r.Digest, r.Size, r.Status = p.Tag.Context().String(), p.Tag.TagStr(), p.Digest.String(), p.Size, pushStatus(*p)
		if p.Previous != nil {
			r.Previous = p.Previous.String()
		}
		rows = append(rows, r)
	}
	return printBaseRows(w, rows, o.output, true)
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

func describeBaseRow(b *recipes.BaseImage) baseRow {
	r := baseRow{Name: b.Metadata.Name, Tag: b.Metadata.Version, Flavour: "debian", Platforms: b.Spec.PlatformList()}
	r.Index = len(r.Platforms) > 1
	if b.Spec.Distroless != nil {
		r.Flavour = "distroless"
	}
	r.Description = fmt.Sprintf("debian %s %s", b.Spec.Suite, b.Spec.Variant)
	if b.Spec.Distroless != nil {
		r.Description = fmt.Sprintf("files of debian %s's %s", b.Spec.Suite, strings.Join(b.Spec.Packages, ", "))
	}
	if b.Spec.Go != nil {
		r.Description += " + Go " + b.Spec.Go.Version
	}
	return r
}

func runBaseList(w io.Writer, o *baseListOptions) error {
	if err := checkBaseOutput(o.output); err != nil {
		return err
	}
	bases, err := recipes.Bases()
	if err != nil {
		return err
	}
	rows := make([]baseRow, len(bases))
	for i, b := range bases {
		rows[i] = describeBaseRow(b)
	}
	return printBaseRows(w, rows, o.output, false)
}

func printBaseRows(w io.Writer, rows []baseRow, output string, built bool) error {
	switch output {
	case "json":
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(rows)
	case "yaml":
		enc := yaml.NewEncoder(w)
		enc.SetIndent(2)
		if err := enc.Encode(rows); err != nil {
			return err
		}
		return enc.Close()
	case "csv":
		cw := csv.NewWriter(w)
		if built {
			_ = cw.Write([]string{"image", "tag", "flavour", "platforms", "digest", "size", "status"})
		} else {
			_ = cw.Write([]string{"name", "tag", "flavour", "platforms", "description"})
		}
		for _, r := range rows {
			if built {
				_ = cw.Write([]string{r.Image, r.Tag, r.Flavour, strings.Join(r.Platforms, " "), r.Digest, fmt.Sprint(r.Size), r.Status})
			} else {
				_ = cw.Write([]string{r.Name, r.Tag, r.Flavour, strings.Join(r.Platforms, " "), r.Description})
			}
		}
		cw.Flush()
		return cw.Error()
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	if built {
		fmt.Fprintln(tw, "IMAGE\tTAG\tFLAVOUR\tPLATFORMS\tDIGEST\tSIZE\tSTATUS")
		for _, r := range rows {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.Image, r.Tag, r.Flavour, strings.Join(r.Platforms, ","), r.Digest, humanSize(r.Size), r.Status)
		}
	} else {
		fmt.Fprintln(tw, "NAME\tTAG\tFLAVOUR\tPLATFORMS\tDESCRIPTION")
		for _, r := range rows {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", r.Name, r.Tag, r.Flavour, strings.Join(r.Platforms, ","), r.Description)
		}
	}
	return tw.Flush()
}
