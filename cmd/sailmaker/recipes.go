package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"
	"gopkg.in/yaml.v3"

	"github.com/sailmaker/sailmaker/config"
	"github.com/sailmaker/sailmaker/recipes"
)

func init() { subcommands = append(subcommands, newRecipesCmd) }

func newRecipesCmd(g *globalOptions) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "recipes",
		Short: "List, show, create and validate recipes",
		Long: `Recipes say how to build one upstream release (kind Recipe) or one internal
base image (kind BaseImage); see docs/recipes.md. sailmaker embeds the recipes
it ships; files of your own work everywhere a recipe is read.`,
		Example: `  sailmaker recipes list
  sailmaker recipes show istio@1.24.2
  sailmaker recipes new --from https://github.com/istio/istio.git --tag 1.24.3 --out istio-1.24.3.yaml
  sailmaker recipes validate istio-1.24.3.yaml`,
	}
	cmd.AddCommand(
		newRecipesListCmd(),
		newRecipesShowCmd(g),
		newRecipesNewCmd(g),
		newRecipesValidateCmd(g),
	)
	return cmd
}

// recipeOptions are the parsing options the configuration implies.
func recipeOptions(cfg *config.Config) []recipes.Option {
	return []recipes.Option{
		recipes.WithRegistry(cfg.Registry.Address),
		recipes.WithAllowedRegistries(cfg.AllowedRegistries()),
	}
}

func newRecipesListCmd() *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List the embedded recipes and base images",
		Example: `  sailmaker recipes list
  sailmaker recipes list -o json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			entries := recipes.List()
			out := cmd.OutOrStdout()
			switch output {
			case "table":
				tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "ID\tKIND\tVERSION\tDESCRIPTION")
				for _, e := range entries {
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", e.ID, e.Kind, e.Version, e.Description)
				}
				return tw.Flush()
			case "json":
				return writeRecipesJSON(out, entries)
			}
			return fmt.Errorf("-o %q: must be table or json", output)
		},
	}
	cmd.Flags().StringVarP(&output, "output", "o", "table", "output format: table or json")
	return cmd
}

// recipeShownPatch is a patch as `recipes show` prints it.
type recipeShownPatch struct {
	Path   string `json:"path"`
	SHA256 string `json:"sha256"`
}

// recipeShown is what `recipes show -o json` prints.
type recipeShown struct {
	ID       string             `json:"id"`
	Kind     string             `json:"kind"`
	File     string             `json:"file,omitempty"`
	Digest   string             `json:"digest"`
	Ref      string             `json:"ref,omitempty"`
	Patches  []recipeShownPatch `json:"patches,omitempty"`
	Warnings []string           `json:"warnings,omitempty"`
	Recipe   *recipes.Recipe    `json:"recipe,omitempty"`
	Base     *recipes.BaseImage `json:"baseImage,omitempty"`
}

func newRecipesShowCmd(g *globalOptions) *cobra.Command {
	var file, output string
	cmd := &cobra.Command{
		Use:   "show ID | -f FILE",
		Short: "Print a recipe in full, with its variables expanded",
		Long: `Print a recipe with its variables expanded for the configured registry: an
embedded one by id (istio@1.24.2 for a Recipe, base/bookworm for a BaseImage)
or a file. The header gives the recipe's digest, its patches' sha256 and any
warnings.`,
		Example: `  sailmaker recipes show istio@1.24.2
  sailmaker recipes show base/bookworm -o json
  sailmaker recipes show -f ./istio-1.24.3.yaml`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if (file == "") == (len(args) == 0) {
				return errors.New("give either a recipe id or -f FILE")
			}
			if output != "yaml" && output != "json" {
				return fmt.Errorf("-o %q: must be yaml or json", output)
			}
			cfg, err := g.load()
			if err != nil {
				return err
			}
			opts := recipeOptions(cfg)
			var s recipeShown
			if file != "" {
				s.File = file
				data, err := os.ReadFile(file)
				if err != nil {
					return fmt.Errorf("reading recipe: %w", err)
				}
				if recipes.KindOf(data) == recipes.KindBaseImage {
					s.Base, err = recipes.LoadBase(file, opts...)
				} else {
					s.Recipe, err = recipes.Load(file, opts...)
				}
				if err != nil {
					return err
				}
			} else if strings.Contains(args[0], "@") {
				if s.Recipe, err = recipes.Get(args[0], opts...); err != nil {
					return err
				}
			} else if s.Base, err = recipes.GetBase(args[0], opts...); err != nil {
				return err
			}

			if r := s.Recipe; r != nil {
				s.ID, s.Kind, s.Digest, s.Warnings = r.ID(), recipes.KindRecipe, r.Digest(), r.Warnings()
				for _, p := range r.Patches() {
					s.Patches = append(s.Patches, recipeShownPatch{Path: p.Path, SHA256: p.SHA256})
				}
			} else {
				b := s.Base
				s.ID, s.Kind, s.Digest, s.Ref = b.Metadata.Name, recipes.KindBaseImage, b.Digest(), b.Ref(cfg.Registry.Address)
			}

			out := cmd.OutOrStdout()
			if output == "json" {
				return writeRecipesJSON(out, s)
			}
			fmt.Fprintf(out, "# %s %s\n", s.Kind, s.ID)
			if s.File != "" {
				fmt.Fprintf(out, "# file: %s\n", s.File)
			}
			if s.Ref != "" {
				fmt.Fprintf(out, "# image: %s\n", s.Ref)
			}
			fmt.Fprintf(out, "# digest: %s\n", s.Digest)
			for _, p := range s.Patches {
				fmt.Fprintf(out, "# patch: %s sha256:%s\n", p.Path, p.SHA256)
			}
			for _, w := range s.Warnings {
				fmt.Fprintf(out, "# warning: %s\n", w)
			}
			var doc any = s.Recipe
			if s.Base != nil {
				doc = s.Base
			}
			return writeRecipesYAML(out, doc)
		},
	}
	cmd.Flags().StringVarP(&file, "file", "f", "", "recipe file to show instead of an embedded recipe")
	cmd.Flags().StringVarP(&output, "output", "o", "yaml", "output format: yaml or json")
	return cmd
}

func newRecipesNewCmd(g *globalOptions) *cobra.Command {
	var from, tag, envoySHA256, envoyURL, outFile string
	cmd := &cobra.Command{
		Use:   "new --from GITURL --tag TAG",
		Short: "Derive a recipe for an Istio release from its source",
		Long: `Fetch only the tag (through the configured git mirrors) and derive a recipe
from it: the commit the tag names, Envoy's PROXY_REPO_SHA from istio.deps and the
Go version from go.mod. Images and make settings are those of the embedded istio
recipe. The recipe goes to stdout or --out; what remains to be confirmed by hand
goes to stderr. Without --envoy-sha256 the Envoy sha256 is marked unconfirmed.`,
		Example: `  sailmaker recipes new --from https://github.com/istio/istio.git --tag 1.24.3 > istio-1.24.3.yaml
  sailmaker recipes new --from https://github.com/istio/istio.git --tag 1.24.3 \
      --envoy-sha256 0123...cdef --out istio-1.24.3.yaml`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := g.load()
			if err != nil {
				return err
			}
			fetchURL := cfg.RewriteGitURL(from)
			r, err := recipes.New(cmd.Context(), recipes.NewOptions{
				GitURL:      from,
				FetchURL:    fetchURL,
				Tag:         tag,
				Registry:    cfg.Registry.Address,
				EnvoyURL:    envoyURL,
				EnvoySHA256: envoySHA256,
			})
			if err != nil {
				return err
			}
			data, err := recipes.Marshal(r)
			if err != nil {
				return err
			}
			if outFile == "" {
				if _, err := cmd.OutOrStdout().Write(data); err != nil {
					return fmt.Errorf("writing the recipe: %w", err)
				}
			} else if err := os.WriteFile(outFile, data, 0o644); err != nil {
				return fmt.Errorf("writing the recipe: %w", err)
			}

			errOut := cmd.ErrOrStderr()
			where := "stdout"
			if outFile != "" {
				where = outFile
			}
			fmt.Fprintf(errOut, "Wrote recipe %s to %s: tag %s is commit %s; PROXY_REPO_SHA %s; Go %s.\n",
				r.ID(), where, tag, r.Spec.Source.Commit, r.Spec.Inputs.Envoy.ProxySHA, r.Spec.Toolchain.Go)
			if fetchURL != from {
				fmt.Fprintf(errOut, "Fetched from the mirror %s.\n", fetchURL)
			}
			if w := r.Warnings(); len(w) > 0 {
				fmt.Fprintln(errOut, "To confirm before building:")
				for _, line := range w {
					fmt.Fprintf(errOut, "  - %s\n", line)
				}
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&from, "from", "", "git URL of the Istio source, as it goes into the recipe (mirrors apply when fetching)")
	cmd.Flags().StringVar(&tag, "tag", "", "release tag")
	cmd.Flags().StringVar(&envoySHA256, "envoy-sha256", "", "sha256 of the Envoy tarball, if confirmed")
	cmd.Flags().StringVar(&envoyURL, "envoy-url", recipes.DefaultEnvoyURL, "URL template of the Envoy tarball")
	cmd.Flags().StringVar(&outFile, "out", "", "file to write the recipe to (default stdout)")
	_ = cmd.MarkFlagRequired("from")
	_ = cmd.MarkFlagRequired("tag")
	return cmd
}

func newRecipesValidateCmd(g *globalOptions) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "validate FILE...",
		Short: "Check recipe files, reporting every problem with its line",
		Example: `  sailmaker recipes validate istio-1.24.3.yaml
  sailmaker recipes validate recipes/istio/*.yaml recipes/bases/*.yaml`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := g.load()
			if err != nil {
				return err
			}
			opts := recipeOptions(cfg)
			out := cmd.OutOrStdout()
			invalid := 0
			for _, file := range args {
				id, digest, warnings, err := validateRecipeFile(file, opts)
				if err != nil {
					invalid++
					var ve recipes.ValidationErrors
					if !errors.As(err, &ve) {
						err = fmt.Errorf("%s: %w", file, err)
					}
					fmt.Fprintln(out, err)
					continue
				}
				fmt.Fprintf(out, "%s: ok: %s %s\n", file, id, digest)
				for _, w := range warnings {
					fmt.Fprintf(out, "  warning: %s\n", w)
				}
			}
			if invalid > 0 {
				return fmt.Errorf("%d of %d recipe files are invalid", invalid, len(args))
			}
			return nil
		},
	}
	return cmd
}

func validateRecipeFile(file string, opts []recipes.Option) (id, digest string, warnings []string, err error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return "", "", nil, fmt.Errorf("reading recipe: %w", err)
	}
	if recipes.KindOf(data) == recipes.KindBaseImage {
		b, err := recipes.LoadBase(file, opts...)
		if err != nil {
			return "", "", nil, err
		}
		return b.Metadata.Name + ":" + b.Metadata.Version, b.Digest(), nil, nil
	}
	r, err := recipes.Load(file, opts...)
	if err != nil {
		return "", "", nil, err
	}
	return r.ID(), r.Digest(), r.Warnings(), nil
}

func writeRecipesJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		return fmt.Errorf("writing JSON: %w", err)
	}
	return nil
}

func writeRecipesYAML(w io.Writer, v any) error {
	enc := yaml.NewEncoder(w)
	enc.SetIndent(2)
	if err := enc.Encode(v); err != nil {
		return fmt.Errorf("writing YAML: %w", err)
	}
	if err := enc.Close(); err != nil {
		return fmt.Errorf("writing YAML: %w", err)
	}
	return nil
}
