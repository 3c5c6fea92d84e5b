package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/spf13/cobra"
	"gopkg.in/yaml.v3"

	"github.com/sailmaker/sailmaker/config"
	"github.com/sailmaker/sailmaker/internal/output"
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
		newRecipesListCmd(g),
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

// recipeEntry is a line of `recipes list`: an embedded recipe or base
// image, or a recipe stored in the state directory (made by the build
// service's webhook, or put there by an operator).
type recipeEntry struct {
	recipes.Entry
	// Source is embedded or stored.
	Source string `json:"source"`
	// File is a stored recipe's file.
	File string `json:"file,omitempty"`
}

type recipeList []recipeEntry

func (l recipeList) Header() []string {
	return []string{"ID", "KIND", "VERSION", "SOURCE", "DESCRIPTION"}
}

func (l recipeList) Rows() [][]string {
	rows := make([][]string, len(l))
	for i, e := range l {
		rows[i] = []string{e.ID, e.Kind, e.Version, e.Source, e.Description}
	}
	return rows
}

// storedRecipeDir is where the build service keeps the recipes its webhook
// makes, by id: <state-dir>/recipes/<name>@<version>.yaml.
func storedRecipeDir(cfg *config.Config) string { return filepath.Join(cfg.StateDir, "recipes") }

// storedRecipeIDs are the ids of the recipes stored in the state
// directory, from their file names; none when it cannot be read.
func storedRecipeIDs(cfg *config.Config) []string {
	files, _ := filepath.Glob(filepath.Join(storedRecipeDir(cfg), "*@*.yaml"))
	ids := make([]string, 0, len(files))
	for _, f := range files {
		ids = append(ids, strings.TrimSuffix(filepath.Base(f), ".yaml"))
	}
	return ids
}

// storedRecipe reads the recipe stored under id, or says it is not there
// (ErrNotFound).
func storedRecipe(cfg *config.Config, id string) (*recipes.Recipe, error) {
	if !slices.Contains(storedRecipeIDs(cfg), id) {
		return nil, recipes.ErrNotFound
	}
	r, err := recipes.Load(filepath.Join(storedRecipeDir(cfg), id+".yaml"), recipeOptions(cfg)...)
	if err != nil {
		return nil, err
	}
	if r.ID() != id {
		return nil, fmt.Errorf("the stored recipe %s is %s, not %s", filepath.Join(storedRecipeDir(cfg), id+".yaml"), r.ID(), id)
	}
	return r, nil
}

func listRecipes(cfg *config.Config) recipeList {
	var l recipeList
	for _, e := range recipes.List() {
		l = append(l, recipeEntry{Entry: e, Source: "embedded"})
	}
	for _, id := range storedRecipeIDs(cfg) {
		file := filepath.Join(storedRecipeDir(cfg), id+".yaml")
		e := recipeEntry{Entry: recipes.Entry{ID: id, Kind: recipes.KindRecipe}, Source: "stored", File: file}
		r, err := recipes.Load(file, recipeOptions(cfg)...)
		if err != nil {
			first, _, _ := strings.Cut(err.Error(), "\n")
			e.Description = "invalid: " + first
		} else {
			e.Version = r.Metadata.Version
			e.Description = fmt.Sprintf("%s %s from %s (%s)", r.Metadata.Name, r.Metadata.Version, r.Spec.Source.Git, file)
		}
		l = append(l, e)
	}
	return l
}

func newRecipesListCmd(g *globalOptions) *cobra.Command {
	var out *outputFlag
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List the recipes and base images: embedded, and stored in the state directory",
		Long: `List the embedded recipes and base images, and the recipes stored in
<state-dir>/recipes (those the build service's webhook made from upstream tags).`,
		Example: `  sailmaker recipes list
  sailmaker recipes list -o json
  sailmaker recipes list -o csv > recipes.csv`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := g.load()
			if err != nil {
				return err
			}
			return out.write(cmd.OutOrStdout(), listRecipes(cfg))
		},
	}
	out = addOutputFlag(cmd)
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

// WriteText is the view for people (-o table): the facts as comments, then
// the recipe as YAML, which reads back as a recipe.
func (s *recipeShown) WriteText(out io.Writer) error {
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
}

// findRecipe reads a recipe or base image by id: an embedded recipe
// (name@version) or one stored in the state directory, or an embedded base
// image (name). An unknown id says how to list the known ones.
func findRecipe(cfg *config.Config, id string) (*recipes.Recipe, *recipes.BaseImage, error) {
	opts := recipeOptions(cfg)
	if strings.Contains(id, "@") {
		r, err := recipes.Get(id, opts...)
		if errors.Is(err, recipes.ErrNotFound) {
			r, err = storedRecipe(cfg, id)
		}
		if errors.Is(err, recipes.ErrNotFound) {
			return nil, nil, unknownRecipe(cfg, id)
		}
		return r, nil, err
	}
	b, err := recipes.GetBase(id, opts...)
	if errors.Is(err, recipes.ErrNotFound) {
		return nil, nil, unknownRecipe(cfg, id)
	}
	return nil, b, err
}

// unknownRecipe is the error for an id no recipe has, with the ids that
// have its name, if any.
func unknownRecipe(cfg *config.Config, id string) error {
	name, _, _ := strings.Cut(id, "@")
	var like []string
	for _, e := range listRecipes(cfg) {
		if n, _, _ := strings.Cut(e.ID, "@"); n == name && e.ID != id {
			like = append(like, e.ID)
		}
	}
	hint := ""
	if len(like) > 0 {
		hint = " (did you mean " + strings.Join(like, " or ") + "?)"
	}
	return &notFound{fmt.Sprintf("unknown recipe %q%s: no embedded recipe (name@version) or base image (name) has this id, and none is stored in %s; `sailmaker recipes list` lists the known ones (a file goes with -f FILE)",
		id, hint, storedRecipeDir(cfg))}
}

// notFound is an error of its own words that is recipes.ErrNotFound.
type notFound struct{ msg string }

func (e *notFound) Error() string { return e.msg }
func (e *notFound) Unwrap() error { return recipes.ErrNotFound }

func newRecipesShowCmd(g *globalOptions) *cobra.Command {
	var file string
	var out *outputFlag
	cmd := &cobra.Command{
		Use:   "show ID | -f FILE",
		Short: "Print a recipe in full, with its variables expanded",
		Long: `Print a recipe with its variables expanded for the configured registry: an
embedded one by id (istio@1.24.2 for a Recipe, base/bookworm for a BaseImage),
one stored in the state directory, or a file. -o table (the default) gives
the recipe's digest, its patches' sha256 and any warnings as comments, then
the recipe as YAML; -o json and -o yaml give the same as one document.`,
		Example: `  sailmaker recipes show istio@1.24.2
  sailmaker recipes show base/bookworm -o json
  sailmaker recipes show -f ./istio-1.24.3.yaml -o yaml`,
		Args:              cobra.MaximumNArgs(1),
		ValidArgsFunction: completeRecipeIDs(g, true),
		RunE: func(cmd *cobra.Command, args []string) error {
			if (file == "") == (len(args) == 0) {
				return errors.New("give either a recipe id or -f FILE")
			}
			cfg, err := g.load()
			if err != nil {
				return err
			}
			opts := recipeOptions(cfg)
			s := &recipeShown{}
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
			} else if s.Recipe, s.Base, err = findRecipe(cfg, args[0]); err != nil {
				return err
			}

			if r := s.Recipe; r != nil {
				s.ID, s.Kind, s.Digest, s.Warnings = r.ID(), recipes.KindRecipe, r.Digest(), r.Warnings()
				if f, _ := r.Position(""); file == "" && strings.HasPrefix(f, storedRecipeDir(cfg)) {
					s.File = f
				}
				for _, p := range r.Patches() {
					s.Patches = append(s.Patches, recipeShownPatch{Path: p.Path, SHA256: p.SHA256})
				}
			} else {
				b := s.Base
				s.ID, s.Kind, s.Digest, s.Ref = b.Metadata.Name, recipes.KindBaseImage, b.Digest(), b.Ref(cfg.Registry.Address)
			}
			return out.write(cmd.OutOrStdout(), s)
		},
	}
	cmd.Flags().StringVarP(&file, "file", "f", "", "recipe file to show instead of an embedded recipe")
	out = addOutputFlag(cmd, output.Documents...)
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

// validation is what `recipes validate` found in one file.
type validation struct {
	File     string    `json:"file"`
	Valid    bool      `json:"valid"`
	Kind     string    `json:"kind,omitempty"`
	ID       string    `json:"id,omitempty"`
	Digest   string    `json:"digest,omitempty"`
	Problems []problem `json:"problems,omitempty"`
	Warnings []string  `json:"warnings,omitempty"`
	err      error
}

// problem is one thing wrong in a recipe file, where it is.
type problem struct {
	Line    int    `json:"line,omitempty"`
	Field   string `json:"field,omitempty"`
	Message string `json:"message"`
}

type validations []validation

// WriteText is the view for people: "FILE: ok: ID DIGEST" and its
// warnings, or every problem as FILE:LINE: FIELD: MESSAGE.
func (vs validations) WriteText(w io.Writer) error {
	for _, v := range vs {
		if v.err != nil {
			var ve recipes.ValidationErrors
			if errors.As(v.err, &ve) {
				fmt.Fprintln(w, v.err)
			} else {
				fmt.Fprintf(w, "%s: %v\n", v.File, v.err)
			}
			continue
		}
		fmt.Fprintf(w, "%s: ok: %s %s\n", v.File, v.ID, v.Digest)
		for _, warn := range v.Warnings {
			fmt.Fprintf(w, "  warning: %s\n", warn)
		}
	}
	return nil
}

func (vs validations) Header() []string {
	return []string{"FILE", "STATUS", "ID", "DIGEST", "LINE", "FIELD", "MESSAGE"}
}

func (vs validations) Rows() [][]string {
	var rows [][]string
	for _, v := range vs {
		if v.Valid {
			rows = append(rows, []string{v.File, "ok", v.ID, v.Digest, "", "", ""})
			for _, w := range v.Warnings {
				rows = append(rows, []string{v.File, "warning", v.ID, v.Digest, "", "", w})
			}
			continue
		}
		for _, p := range v.Problems {
			line := ""
			if p.Line > 0 {
				line = strconv.Itoa(p.Line)
			}
			rows = append(rows, []string{v.File, "invalid", v.ID, "", line, p.Field, p.Message})
		}
	}
	return rows
}

func newRecipesValidateCmd(g *globalOptions) *cobra.Command {
	var files []string
	var out *outputFlag
	cmd := &cobra.Command{
		Use:   "validate FILE... | -f FILE",
		Short: "Check recipe files, reporting every problem with its line",
		Long: `Check recipe files (Recipe or BaseImage, YAML or JSON), as build and base
build would read them, and report every problem with its file, line and
field. The exit status is 1 when any file is invalid.`,
		Example: `  sailmaker recipes validate istio-1.24.3.yaml
  sailmaker recipes validate -f istio-1.24.3.yaml -o json
  sailmaker recipes validate recipes/istio/*.yaml recipes/bases/*.yaml`,
		RunE: func(cmd *cobra.Command, args []string) error {
			files := append(slices.Clone(files), args...)
			if len(files) == 0 {
				return errors.New("name the recipe files to check: sailmaker recipes validate FILE... (or -f FILE)")
			}
			cfg, err := g.load()
			if err != nil {
				return err
			}
			opts := recipeOptions(cfg)
			var res validations
			invalid := 0
			for _, file := range files {
				v := validateRecipeFile(file, opts)
				if !v.Valid {
					invalid++
				}
				res = append(res, v)
			}
			if err := out.write(cmd.OutOrStdout(), res); err != nil {
				return err
			}
			if invalid > 0 {
				return fmt.Errorf("%d of %d recipe files are invalid", invalid, len(files))
			}
			return nil
		},
	}
	cmd.Flags().StringArrayVarP(&files, "file", "f", nil, "a recipe file to check (repeatable; as with build -f)")
	out = addOutputFlag(cmd)
	return cmd
}

func validateRecipeFile(file string, opts []recipes.Option) validation {
	v := validation{File: file}
	data, err := os.ReadFile(file)
	if err == nil {
		if v.Kind = recipes.KindOf(data); v.Kind == recipes.KindBaseImage {
			var b *recipes.BaseImage
			if b, err = recipes.LoadBase(file, opts...); err == nil {
				v.ID, v.Digest = b.Metadata.Name+":"+b.Metadata.Version, b.Digest()
			}
		} else {
			var r *recipes.Recipe
			if r, err = recipes.Load(file, opts...); err == nil {
				v.Kind, v.ID, v.Digest, v.Warnings = recipes.KindRecipe, r.ID(), r.Digest(), r.Warnings()
			}
		}
	} else {
		err = fmt.Errorf("reading recipe: %w", err)
	}
	if err == nil {
		v.Valid = true
		return v
	}
	v.err = err
	var ve recipes.ValidationErrors
	if errors.As(err, &ve) {
		for _, e := range ve {
			v.Problems = append(v.Problems, problem{Line: e.Line, Field: e.Field, Message: e.Msg})
		}
	} else {
		v.Problems = []problem{{Message: err.Error()}}
	}
	return v
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
