package audit

import (
	"context"
	"errors"
	"sort"
	"strings"

	"github.com/sailmaker/sailmaker/builder"
)

// Change is one field that differs between two images.
type Change struct {
	Field string `json:"field"`
	A     string `json:"a"`
	B     string `json:"b"`
}

// PackageChange is a module or package added, removed or changed.
type PackageChange struct {
	Name string `json:"name"`
	// A and B are the versions (comma separated when several); empty
	// where it is absent.
	A      string `json:"a"`
	B      string `json:"b"`
	Change string `json:"change"` // added, removed, changed
}

// Diff is what changed from image A to image B.
type Diff struct {
	A        Image           `json:"a"`
	B        Image           `json:"b"`
	Changes  []Change        `json:"changes"`
	Modules  []PackageChange `json:"modules"`
	Packages []PackageChange `json:"packages"`
	Notes    []string        `json:"notes,omitempty"`
}

// Diff compares two images: source commit and version, recipe, base,
// toolchain, Envoy, and their Go modules and Debian packages.
func (a *Auditor) Diff(ctx context.Context, imageA, imageB string) (*Diff, error) {
	refA, err := a.ParseImage(imageA)
	if err != nil {
		return nil, err
	}
	refB, err := a.ParseImage(imageB)
	if err != nil {
		return nil, err
	}
	s, err := a.session(ctx)
	if err != nil {
		return nil, err
	}
	ra, err := s.readImage(ctx, refA)
	if err != nil {
		return nil, err
	}
	rb, err := s.readImage(ctx, refB)
	if err != nil {
		return nil, err
	}
	d := &Diff{A: ra.Image, B: rb.Image, Changes: []Change{}, Modules: []PackageChange{}, Packages: []PackageChange{}}
	pa, err := s.facts(ctx, ra.view())
	if err != nil {
		return nil, err
	}
	pb, err := s.facts(ctx, rb.view())
	if err != nil {
		return nil, err
	}
	for _, f := range diffFields {
		if va, vb := pa.fields[f], pb.fields[f]; va != vb {
			d.Changes = append(d.Changes, Change{Field: f, A: va, B: vb})
		}
	}
	switch {
	case pa.sbom == nil || pb.sbom == nil:
		d.Notes = append(d.Notes, "Go modules not compared: "+missing(pa.sbom == nil, pb.sbom == nil)+" no SBOM")
	default:
		d.Modules = diffPackages(pa.sbom.GoModules, pb.sbom.GoModules)
	}
	switch {
	case pa.debs == nil || pb.debs == nil:
		d.Notes = append(d.Notes, "Debian packages not compared: "+missing(pa.debs == nil, pb.debs == nil)+" no package list")
	default:
		d.Packages = diffPackages(pa.debs, pb.debs)
	}
	return d, nil
}

func missing(a, b bool) string {
	switch {
	case a && b:
		return "neither image has"
	case a:
		return "image A has"
	}
	return "image B has"
}

// diffFields are compared in this order.
var diffFields = []string{
	"kind", "commit", "version", "source", "source tag", "recipe", "recipe digest",
	"base", "base digest", "go", "builder digest",
	"envoy url", "envoy sha256", "envoy proxy sha", "envoy override",
	"make targets", "patches", "layers",
}

type imageFacts struct {
	fields map[string]string
	sbom   *SBOM
	debs   []Package
}

func (s *session) facts(ctx context.Context, r *record) (*imageFacts, error) {
	f := &imageFacts{fields: map[string]string{
		"kind":            string(r.Kind),
		"commit":          r.Commit,
		"version":         r.Version,
		"source":          r.Source,
		"source tag":      r.label(builder.LabelTag),
		"recipe":          r.Recipe,
		"recipe digest":   r.RecipeDigest,
		"base":            r.BaseName,
		"base digest":     r.BaseDigest,
		"go":              r.GoVersion,
		"builder digest":  r.label(builder.LabelBuilderDigest),
		"envoy url":       r.label(builder.LabelEnvoyURL),
		"envoy sha256":    r.label(builder.LabelEnvoySHA256),
		"envoy proxy sha": r.label(builder.LabelProxySHA),
		"envoy override":  r.label(builder.LabelEnvoyOverride),
		"make targets":    r.label(builder.LabelMakeTargets),
	}}
	if r.manifest != nil {
		var ls []string
		for _, l := range r.manifest.Layers {
			ls = append(ls, l.Digest.String())
		}
		f.fields["layers"] = strings.Join(ls, " ")
	}
	var invalid *invalidError
	prov, err := s.provenance(ctx, r)
	if err != nil && !errors.As(err, &invalid) {
		return nil, err
	}
	if prov != nil {
		var ps []string
		for _, p := range prov.Statement.Predicate.BuildDefinition.ExternalParameters.Patches {
			ps = append(ps, p.Path+"@"+p.SHA256)
		}
		f.fields["patches"] = strings.Join(ps, " ")
		if c := prov.Commit(); f.fields["commit"] == "" {
			f.fields["commit"] = c
		}
	}
	sb, err := s.sbom(ctx, r)
	if err != nil && !errors.As(err, &invalid) {
		return nil, err
	}
	f.sbom = sb
	if sb != nil {
		f.debs = sb.DebianPackages
	} else {
		if f.debs, _, err = s.labelPackages(ctx, r); err != nil {
			return nil, err
		}
	}
	return f, nil
}

func diffPackages(a, b []Package) []PackageChange {
	versions := func(ps []Package) map[string]string {
		m := map[string][]string{}
		for _, p := range ps {
			m[p.Name] = append(m[p.Name], p.Version)
		}
		out := map[string]string{}
		for k, v := range m {
			sort.Strings(v)
			out[k] = strings.Join(v, ", ")
		}
		return out
	}
	va, vb := versions(a), versions(b)
	names := map[string]bool{}
	for n := range va {
		names[n] = true
	}
	for n := range vb {
		names[n] = true
	}
	out := []PackageChange{}
	for n := range names {
		x, inA := va[n]
		y, inB := vb[n]
		switch {
		case !inA:
			out = append(out, PackageChange{Name: n, B: y, Change: "added"})
		case !inB:
			out = append(out, PackageChange{Name: n, A: x, Change: "removed"})
		case x != y:
			out = append(out, PackageChange{Name: n, A: x, B: y, Change: "changed"})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// Header implements Tabular.
func (d *Diff) Header() []string { return []string{"WHAT", "NAME", "A", "B"} }

// Rows implements Tabular.
func (d *Diff) Rows() [][]string {
	rows := [][]string{{"image", "reference", d.A.Reference, d.B.Reference}}
	for _, c := range d.Changes {
		rows = append(rows, []string{"field", c.Field, c.A, c.B})
	}
	for _, m := range d.Modules {
		rows = append(rows, []string{"go module " + m.Change, m.Name, m.A, m.B})
	}
	for _, p := range d.Packages {
		rows = append(rows, []string{"debian package " + p.Change, p.Name, p.A, p.B})
	}
	for _, n := range d.Notes {
		rows = append(rows, []string{"note", "", n, ""})
	}
	return rows
}

// Partial implements Tabular.
func (d *Diff) Partial() Warnings { return nil }
