package recipes

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path"
	"path/filepath"
	"reflect"
	"slices"
	"sort"
)

// DefaultRegistry is what ${REGISTRY} expands to unless WithRegistry says
// otherwise: the embedded registry.
const DefaultRegistry = "127.0.0.1:5000"

// Option configures parsing.
type Option func(*options)

type options struct {
	registry string
	allow    []string
	allowed  []string // registry, then allow
	dir      fs.FS
}

// WithRegistry sets the internal registry (host[:port]) that ${REGISTRY}
// expands to. It is always an allowed registry.
func WithRegistry(addr string) Option {
	return func(o *options) { o.registry = addr }
}

// WithAllowedRegistries sets further registries (host[:port]) that image
// references may name, besides the internal registry.
func WithAllowedRegistries(regs []string) Option {
	return func(o *options) { o.allow = slices.Clone(regs) }
}

// WithDir sets the directory that patch paths are relative to. Load sets it
// to the recipe file's directory; without it a recipe that lists patches does
// not parse.
func WithDir(fsys fs.FS) Option {
	return func(o *options) { o.dir = fsys }
}

func makeOptions(opts []Option) *options {
	o := &options{}
	for _, opt := range opts {
		opt(o)
	}
	if o.registry == "" {
		o.registry = DefaultRegistry
	}
	o.allowed = append([]string{o.registry}, o.allow...)
	return o
}

// Parse reads a Recipe from data, a YAML or JSON document; filename is used
// in messages. Variables are expanded and the result validated; the error
// lists every problem found, as ValidationErrors.
func Parse(filename string, data []byte, opts ...Option) (*Recipe, error) {
	o := makeOptions(opts)
	c := &collector{file: filename, lines: lineIndex{}}
	root := readDocument(c, data)
	if root == nil || !checkKind(c, root, KindRecipe) {
		return nil, c.err()
	}
	r := &Recipe{}
	d := &decoder{collector: c, budget: maxNodes}
	d.decode(root, "", reflect.ValueOf(r).Elem())
	raw := r.clone()

	vars := map[string]string{
		VarRegistry: o.registry,
		VarVersion:  r.Metadata.Version,
		VarTag:      r.Spec.Source.Tag,
		VarCommit:   r.Spec.Source.Commit,
	}
	unset := map[string]string{}
	if e := r.Spec.Inputs.Envoy; e != nil {
		vars[VarProxyRepoSHA] = e.ProxySHA
	} else {
		unset[VarProxyRepoSHA] = "it comes from spec.inputs.envoy.proxySHA, which is not set"
	}
	x := &expander{collector: c, vars: vars, unset: unset, perPlatform: true, literal: map[string]bool{
		"apiVersion":                 true,
		"kind":                       true,
		"metadata.version":           true,
		"spec.source.tag":            true,
		"spec.source.commit":         true,
		"spec.inputs.envoy.proxySHA": true,
	}}
	x.walk("", reflect.ValueOf(r).Elem())

	validateRecipe(c, r, o)
	r.patches = readPatches(c, r.Spec.Source.Patches, o.dir)
	if err := c.err(); err != nil {
		return nil, err
	}
	r.file, r.raw, r.lines = filename, raw, c.lines
	r.warnings = recipeWarnings(c, r)
	return r, nil
}

// Load reads a Recipe from a file; patch paths are relative to its
// directory.
func Load(file string, opts ...Option) (*Recipe, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("reading recipe: %w", err)
	}
	root, err := os.OpenRoot(filepath.Dir(file))
	if err != nil {
		return nil, fmt.Errorf("opening the recipe's directory: %w", err)
	}
	defer root.Close()
	return Parse(file, data, append(slices.Clone(opts), WithDir(root.FS()))...)
}

// ParseBase reads a BaseImage from data, a YAML or JSON document. ${REGISTRY}
// and ${VERSION} (metadata.version) are expanded.
func ParseBase(filename string, data []byte, opts ...Option) (*BaseImage, error) {
	o := makeOptions(opts)
	c := &collector{file: filename, lines: lineIndex{}}
	root := readDocument(c, data)
	if root == nil || !checkKind(c, root, KindBaseImage) {
		return nil, c.err()
	}
	b := &BaseImage{}
	d := &decoder{collector: c, budget: maxNodes}
	d.decode(root, "", reflect.ValueOf(b).Elem())
	x := &expander{collector: c,
		vars:    map[string]string{VarRegistry: o.registry, VarVersion: b.Metadata.Version},
		literal: map[string]bool{"apiVersion": true, "kind": true, "metadata.version": true},
	}
	x.walk("", reflect.ValueOf(b).Elem())
	validateBase(c, b)
	if err := c.err(); err != nil {
		return nil, err
	}
	b.file = filename
	return b, nil
}

// LoadBase reads a BaseImage from a file.
func LoadBase(file string, opts ...Option) (*BaseImage, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("reading base image recipe: %w", err)
	}
	return ParseBase(file, data, opts...)
}

// readPatches reads the patches whose paths are valid from dir.
func readPatches(c *collector, paths []string, dir fs.FS) []Patch {
	var out []Patch
	for i, p := range paths {
		f := fmt.Sprintf("spec.source.patches[%d]", i)
		if checkRelPath(p) != "" {
			continue // already reported
		}
		if dir == nil {
			c.errorf(f, "cannot read %s: the recipe was not read from a directory", p)
			continue
		}
		data, err := fs.ReadFile(dir, path.Clean(p))
		if err != nil {
			c.errorf(f, "reading patch: %v", err)
			continue
		}
		sum := sha256.Sum256(data)
		out = append(out, Patch{Path: p, SHA256: hex.EncodeToString(sum[:]), Data: data})
	}
	return out
}

func recipeWarnings(c *collector, r *Recipe) []ValidationError {
	var w []ValidationError
	s := &r.Spec
	usesEnvoy := false
	targets := map[string]bool{}
	for _, t := range s.Make.Targets {
		targets[path.Clean(t)] = true
	}
	for i, img := range s.Images {
		for j, f := range img.Files {
			switch kind, p := f.Source(); kind {
			case FromInput:
				usesEnvoy = true
			case FromBuild:
				if !targets[path.Clean(p)] {
					w = append(w, c.warnf(fmt.Sprintf("spec.images[%d].files[%d].from", i, j),
						"%s is not one of spec.make.targets; make may not produce it", p))
				}
			}
		}
	}
	if e := s.Inputs.Envoy; e != nil {
		if e.Unconfirmed {
			w = append(w, c.warnf("spec.inputs.envoy.unconfirmed",
				"the Envoy tarball's sha256 has not been confirmed against the internal mirror; building needs an explicit override"))
		}
		for _, a := range sortedKeys(e.Arch) {
			if e.Arch[a].Unconfirmed {
				w = append(w, c.warnf(joinKey("spec.inputs.envoy.arch", a)+".unconfirmed",
					"the %s Envoy tarball's sha256 has not been confirmed against the internal mirror; building %s needs an explicit override", a, a))
			}
		}
		if !usesEnvoy {
			w = append(w, c.warnf("spec.inputs.envoy", "no image uses input:envoy"))
		}
	}
	if v, ok := s.Make.Variables["VERSION"]; !ok {
		w = append(w, c.warnf("spec.make.variables", "VERSION is not set; the binaries will not report the release %s", r.Metadata.Version))
	} else if v != r.Metadata.Version {
		w = append(w, c.warnf("spec.make.variables.VERSION", "%q differs from metadata.version %q", v, r.Metadata.Version))
	}
	return w
}

// ID is the recipe's id, name@version.
func (r *Recipe) ID() string { return r.Metadata.Name + "@" + r.Metadata.Version }

// Warnings are problems that do not stop the recipe from validating, such as
// an unconfirmed Envoy sha256, formatted like validation errors.
func (r *Recipe) Warnings() []string {
	out := make([]string, len(r.warnings))
	for i, w := range r.warnings {
		out[i] = w.Error()
	}
	return out
}

// Patches are the recipe's patches, with their contents, in order.
func (r *Recipe) Patches() []Patch { return slices.Clone(r.patches) }

// Digest is "sha256:" and the hex sha256 of the canonical JSON encoding of
// the recipe after variable expansion, with the sha256 of every patch folded
// in. Two recipes with the same digest build the same thing.
func (r *Recipe) Digest() string {
	type patchSum struct {
		Path   string `json:"path"`
		SHA256 string `json:"sha256"`
	}
	doc := struct {
		Recipe  *Recipe    `json:"recipe"`
		Patches []patchSum `json:"patches,omitempty"`
	}{Recipe: r}
	for _, p := range r.patches {
		doc.Patches = append(doc.Patches, patchSum{p.Path, p.SHA256})
	}
	return digestJSON(doc)
}

// ConfirmEnvoySHA256 is the explicit override for a recipe whose Envoy
// sha256 is unconfirmed: it sets the sha256 (64 lowercase hex digits) and
// clears the mark, which changes the digest. A recipe that already pins a
// confirmed sha256 only accepts that same value.
func (r *Recipe) ConfirmEnvoySHA256(sum string) error {
	e := r.Spec.Inputs.Envoy
	if e == nil {
		return fmt.Errorf("recipe %s has no Envoy input", r.ID())
	}
	if checkHex(sum, 64) != "" {
		return fmt.Errorf("Envoy sha256 %q: must be 64 lowercase hex digits", sum)
	}
	if !e.Unconfirmed {
		if e.SHA256 != sum {
			return fmt.Errorf("recipe %s pins the Envoy sha256 %s; refusing to override it with %s", r.ID(), e.SHA256, sum)
		}
		return nil
	}
	e.SHA256, e.Unconfirmed = sum, false
	if r.raw != nil && r.raw.Spec.Inputs.Envoy != nil {
		r.raw.Spec.Inputs.Envoy.SHA256, r.raw.Spec.Inputs.Envoy.Unconfirmed = sum, false
	}
	r.warnings = slices.DeleteFunc(r.warnings, func(w ValidationError) bool {
		return w.Field == "spec.inputs.envoy.unconfirmed"
	})
	return nil
}

// ConfirmEnvoyArchSHA256 is ConfirmEnvoySHA256 for the tarball of arch:
// amd64's is inputs.envoy's own, another's inputs.envoy.arch.<arch>.
func (r *Recipe) ConfirmEnvoyArchSHA256(arch, sum string) error {
	if arch == DefaultArch || arch == "" {
		return r.ConfirmEnvoySHA256(sum)
	}
	e := r.Spec.Inputs.Envoy
	if e == nil {
		return fmt.Errorf("recipe %s has no Envoy input", r.ID())
	}
	x, ok := e.Arch[arch]
	if !ok {
		return fmt.Errorf("recipe %s has no %s Envoy tarball (spec.inputs.envoy.arch.%s)", r.ID(), arch, arch)
	}
	if checkHex(sum, 64) != "" {
		return fmt.Errorf("%s Envoy sha256 %q: must be 64 lowercase hex digits", arch, sum)
	}
	if !x.Unconfirmed {
		if x.SHA256 != sum {
			return fmt.Errorf("recipe %s pins the %s Envoy sha256 %s; refusing to override it with %s", r.ID(), arch, x.SHA256, sum)
		}
		return nil
	}
	set := func(e *Envoy) {
		m := maps.Clone(e.Arch)
		m[arch] = EnvoyArch{URL: m[arch].URL, SHA256: sum}
		e.Arch = m
	}
	set(e)
	if r.raw != nil && r.raw.Spec.Inputs.Envoy != nil && r.raw.Spec.Inputs.Envoy.Arch != nil {
		set(r.raw.Spec.Inputs.Envoy)
	}
	field := joinKey("spec.inputs.envoy.arch", arch) + ".unconfirmed"
	r.warnings = slices.DeleteFunc(r.warnings, func(w ValidationError) bool { return w.Field == field })
	return nil
}

// clone is a deep copy of the exported fields.
func (r *Recipe) clone() *Recipe {
	data, err := json.Marshal(r)
	if err != nil {
		panic(fmt.Sprintf("recipes: encoding a recipe: %v", err)) // plain data cannot fail
	}
	out := &Recipe{}
	if err := json.Unmarshal(data, out); err != nil {
		panic(fmt.Sprintf("recipes: decoding a recipe: %v", err))
	}
	return out
}

// Ref is the image reference of the base image in registry
// (registry/name:version).
func (b *BaseImage) Ref(registry string) string {
	return registry + "/" + b.Metadata.Name + ":" + b.Metadata.Version
}

// Digest is "sha256:" and the hex sha256 of the canonical JSON encoding of
// the base image recipe after variable expansion.
func (b *BaseImage) Digest() string { return digestJSON(b) }

func digestJSON(v any) string {
	data, err := json.Marshal(v)
	if err != nil {
		panic(fmt.Sprintf("recipes: encoding for a digest: %v", err)) // plain data cannot fail
	}
	sum := sha256.Sum256(data)
	return "sha256:" + hex.EncodeToString(sum[:])
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// Position is where a field (a dotted path such as spec.inputs.envoy.proxySHA)
// was written: the recipe's file name and the line of the field, or of the
// nearest enclosing field. Line is 0 when the recipe was not parsed from a
// file, as with New.
func (r *Recipe) Position(field string) (file string, line int) {
	if r.lines == nil {
		return r.file, 0
	}
	return r.file, r.lines.lineOf(field)
}
