package recipes

import (
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"slices"
	"sort"
	"strings"

	"gopkg.in/yaml.v3"
)

// embedded holds the recipes shipped with sailmaker: one directory per
// recipe name (patch paths are relative to it) and bases/ for BaseImages.
//
//go:embed istio/*.yaml bases/*.yaml
var embedded embed.FS

const basesDir = "bases"

// ErrNotFound is returned by Get and GetBase for an unknown id.
var ErrNotFound = errors.New("no such recipe")

// Entry describes one embedded recipe.
type Entry struct {
	// ID is what Get (name@version) or GetBase (name) takes.
	ID      string `json:"id"`
	Kind    string `json:"kind"`
	Version string `json:"version"`
	// Description is a one-line summary.
	Description string `json:"description"`
}

// List describes the embedded recipes and base images, recipes first, each
// group sorted by id.
func List() []Entry {
	var recipes, bases []Entry
	for _, f := range embeddedFiles() {
		data, err := embedded.ReadFile(f)
		if err != nil {
			continue // cannot happen: the name came from the same FS
		}
		if path.Dir(f) == basesDir {
			e := Entry{Kind: KindBaseImage}
			b, err := ParseBase(f, data)
			if err != nil {
				e.ID, e.Description = f, "invalid: "+firstLine(err)
			} else {
				e.ID, e.Version, e.Description = b.Metadata.Name, b.Metadata.Version, describeBase(b)
			}
			bases = append(bases, e)
			continue
		}
		e := Entry{Kind: KindRecipe}
		r, err := Parse(f, data, WithDir(subFS(path.Dir(f))))
		if err != nil {
			e.ID, e.Description = f, "invalid: "+firstLine(err)
		} else {
			e.ID, e.Version, e.Description = r.ID(), r.Metadata.Version, describeRecipe(r)
		}
		recipes = append(recipes, e)
	}
	byID := func(es []Entry) { sort.Slice(es, func(i, j int) bool { return es[i].ID < es[j].ID }) }
	byID(recipes)
	byID(bases)
	return append(recipes, bases...)
}

// Get parses the embedded recipe with the id name@version, such as
// istio@1.24.2.
func Get(id string, opts ...Option) (*Recipe, error) {
	var ids []string
	for _, f := range embeddedFiles() {
		if path.Dir(f) == basesDir {
			continue
		}
		data, err := embedded.ReadFile(f)
		if err != nil {
			return nil, fmt.Errorf("reading embedded recipe %s: %w", f, err)
		}
		h := peek(data)
		if h.Kind != KindRecipe {
			continue
		}
		if got := h.Metadata.Name + "@" + h.Metadata.Version; got != id {
			ids = append(ids, got)
			continue
		}
		return Parse(f, data, append(slices.Clone(opts), WithDir(subFS(path.Dir(f))))...)
	}
	sort.Strings(ids)
	return nil, fmt.Errorf("recipe %q: %w (embedded: %s)", id, ErrNotFound, strings.Join(ids, ", "))
}

// GetBase parses the embedded base image recipe with the given name, such as
// base/bookworm.
func GetBase(name string, opts ...Option) (*BaseImage, error) {
	var names []string
	for _, f := range embeddedFiles() {
		if path.Dir(f) != basesDir {
			continue
		}
		data, err := embedded.ReadFile(f)
		if err != nil {
			return nil, fmt.Errorf("reading embedded base image recipe %s: %w", f, err)
		}
		if h := peek(data); h.Metadata.Name != name {
			names = append(names, h.Metadata.Name)
			continue
		}
		return ParseBase(f, data, opts...)
	}
	sort.Strings(names)
	return nil, fmt.Errorf("base image %q: %w (embedded: %s)", name, ErrNotFound, strings.Join(names, ", "))
}

// Bases parses every embedded base image recipe, sorted by name.
func Bases(opts ...Option) ([]*BaseImage, error) {
	var out []*BaseImage
	for _, f := range embeddedFiles() {
		if path.Dir(f) != basesDir {
			continue
		}
		data, err := embedded.ReadFile(f)
		if err != nil {
			return nil, fmt.Errorf("reading embedded base image recipe %s: %w", f, err)
		}
		b, err := ParseBase(f, data, opts...)
		if err != nil {
			return nil, fmt.Errorf("embedded base image recipe: %w", err)
		}
		out = append(out, b)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Metadata.Name < out[j].Metadata.Name })
	return out, nil
}

// embeddedFiles lists the embedded documents, sorted.
func embeddedFiles() []string {
	files, err := fs.Glob(embedded, "*/*.yaml")
	if err != nil {
		panic(fmt.Sprintf("recipes: listing embedded recipes: %v", err)) // the pattern is constant
	}
	sort.Strings(files)
	return files
}

func subFS(dir string) fs.FS {
	sub, err := fs.Sub(embedded, dir)
	if err != nil {
		panic(fmt.Sprintf("recipes: embedded directory %s: %v", dir, err)) // dir came from the same FS
	}
	return sub
}

// header is what peek reads of a document.
type header struct {
	Kind     string   `yaml:"kind"`
	Metadata Metadata `yaml:"metadata"`
}

// peek reads a document's kind and metadata, ignoring everything else.
func peek(data []byte) header {
	var h header
	_ = yaml.Unmarshal(data, &h) // a document that does not decode has no header
	return h
}

// KindOf returns the kind of a YAML or JSON document (Recipe or BaseImage),
// or "" when it names none.
func KindOf(data []byte) string { return peek(data).Kind }

func describeRecipe(r *Recipe) string {
	names := make([]string, len(r.Spec.Images))
	for i, img := range r.Spec.Images {
		names[i] = img.Name
	}
	d := fmt.Sprintf("%s %s from %s (images: %s", r.Metadata.Name, r.Metadata.Version, r.Spec.Source.Git, strings.Join(names, ", "))
	if len(r.Spec.Packages) > 0 {
		pkgs := make([]string, len(r.Spec.Packages))
		for i, p := range r.Spec.Packages {
			pkgs[i] = p.Name
		}
		d += "; packages: " + strings.Join(pkgs, ", ")
	}
	return d + ")"
}

func describeBase(b *BaseImage) string {
	d := fmt.Sprintf("Debian %s (%s) with %s", b.Spec.Suite, b.Spec.Variant, strings.Join(b.Spec.Packages, ", "))
	if b.Spec.Distroless != nil {
		d = fmt.Sprintf("Distroless: files of Debian %s's %s", b.Spec.Suite, strings.Join(b.Spec.Packages, ", "))
	}
	if b.Spec.Go != nil {
		d += ", Go " + b.Spec.Go.Version
	}
	return d + " [" + strings.Join(b.Spec.PlatformList(), ", ") + "]"
}

func firstLine(err error) string {
	s, _, _ := strings.Cut(err.Error(), "\n")
	return s
}
