package audit

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"golang.org/x/sync/errgroup"
)

// UsesQuery names a Go module or a Debian package, with or without a
// version.
type UsesQuery struct {
	Module  string `json:"module,omitempty"`
	Package string `json:"package,omitempty"`
	Version string `json:"version,omitempty"`
}

// ParseUses makes a query from --module path[@version] or --package
// name[=version]; exactly one must be given.
func ParseUses(module, pkg string) (UsesQuery, error) {
	module, pkg = strings.TrimSpace(module), strings.TrimSpace(pkg)
	switch {
	case module != "" && pkg != "":
		return UsesQuery{}, fmt.Errorf("%w: ask for a module or a package, not both", ErrBadInput)
	case module != "":
		p, v, _ := strings.Cut(module, "@")
		if p == "" || strings.ContainsAny(p, " \t") {
			return UsesQuery{}, fmt.Errorf("%w: module %q: want path[@version]", ErrBadInput, module)
		}
		return UsesQuery{Module: p, Version: v}, nil
	case pkg != "":
		n, v, _ := strings.Cut(pkg, "=")
		if n == "" || strings.ContainsAny(n, " \t") {
			return UsesQuery{}, fmt.Errorf("%w: package %q: want name[=version]", ErrBadInput, pkg)
		}
		return UsesQuery{Package: n, Version: v}, nil
	}
	return UsesQuery{}, fmt.Errorf("%w: name a Go module (path[@version]) or a Debian package (name[=version])", ErrBadInput)
}

func (q UsesQuery) String() string {
	switch {
	case q.Module != "" && q.Version != "":
		return "Go module " + q.Module + "@" + q.Version
	case q.Module != "":
		return "Go module " + q.Module
	case q.Version != "":
		return "Debian package " + q.Package + "=" + q.Version
	}
	return "Debian package " + q.Package
}

// Use is an image that contains what was asked for.
type Use struct {
	Repository string `json:"repository"`
	Tag        string `json:"tag"`
	Digest     string `json:"digest"`
	Reference  string `json:"reference"`
	Kind       Kind   `json:"kind"`
	Name       string `json:"name"`
	Version    string `json:"version"`
	// From says where the answer comes from: sbom, or label (the
	// dev.sailmaker.packages label of the image or its base).
	From string `json:"from"`
}

// UsesResult lists the images that contain a module or package.
type UsesResult struct {
	Query UsesQuery `json:"query"`
	Uses  []Use     `json:"uses"`
	// NotSearched are images whose content is not known (no SBOM, and no
	// package label to fall back on): they may contain it.
	NotSearched []string `json:"notSearched,omitempty"`
	Warnings    Warnings `json:"warnings,omitempty"`
}

// Uses finds the images that contain a Go module or Debian package, from
// their SBOMs (and for Debian packages, base images' package labels when
// an image has no SBOM).
func (a *Auditor) Uses(ctx context.Context, q UsesQuery) (*UsesResult, error) {
	if (q.Module == "") == (q.Package == "") {
		return nil, fmt.Errorf("%w: name a Go module or a Debian package", ErrBadInput)
	}
	s, err := a.session(ctx)
	if err != nil {
		return nil, err
	}
	recs, warn, err := s.scan(ctx, "")
	if err != nil {
		return nil, err
	}
	uses := make([][]Use, len(recs))
	unknown := make([]bool, len(recs))
	errs := make([]error, len(recs))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(a.concurrency)
	for i, r := range recs {
		g.Go(func() error {
			uses[i], unknown[i], errs[i] = s.uses(gctx, r, q)
			return nil
		})
	}
	_ = g.Wait()
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	out := &UsesResult{Query: q, Uses: []Use{}}
	for i, r := range recs {
		switch {
		case errs[i] != nil:
			warn = append(warn, Unreadable{Reference: r.Reference, Error: errs[i].Error()})
		case unknown[i]:
			out.NotSearched = append(out.NotSearched, r.Reference)
		default:
			out.Uses = append(out.Uses, uses[i]...)
		}
	}
	out.Warnings = warn
	return out, nil
}

func (s *session) uses(ctx context.Context, r *record, q UsesQuery) ([]Use, bool, error) {
	ctx, cancel := context.WithTimeout(ctx, s.a.timeout)
	defer cancel()
	var invalid *invalidError
	sb, err := s.sbom(ctx, r.view())
	if err != nil && !errors.As(err, &invalid) {
		return nil, false, err
	}
	from := "sbom"
	if sb == nil {
		if q.Module != "" {
			// Base images hold no Go modules (the builder image's toolchain
			// is not linked into anything in it); other images without an
			// SBOM are unknown.
			return nil, r.Kind != KindBase && r.Kind != KindBuilder, nil
		}
		pkgs, _, err := s.labelPackages(ctx, r)
		if err != nil {
			return nil, false, err
		}
		if pkgs == nil {
			return nil, true, nil
		}
		sb, from = &SBOM{DebianPackages: pkgs}, "label"
	}
	list, wantName := sb.DebianPackages, q.Package
	if q.Module != "" {
		list, wantName = sb.GoModules, q.Module
	}
	var out []Use
	for _, p := range list {
		if p.Name != wantName || !versionMatches(q, p.Version) {
			continue
		}
		out = append(out, Use{Repository: r.Repository, Tag: r.Tag, Digest: r.Digest, Reference: r.Reference, Kind: r.Kind, Name: p.Name, Version: p.Version, From: from})
	}
	return out, false, nil
}

// versionMatches compares versions exactly; Go module versions also match
// without their leading "v" (1.6.0 finds v1.6.0).
func versionMatches(q UsesQuery, v string) bool {
	if q.Version == "" || q.Version == v {
		return true
	}
	return q.Module != "" && strings.TrimPrefix(q.Version, "v") == strings.TrimPrefix(v, "v")
}

// Header implements Tabular.
func (u *UsesResult) Header() []string {
	return []string{"REPOSITORY", "TAG", "DIGEST", "KIND", "NAME", "VERSION", "FROM"}
}

// Rows implements Tabular.
func (u *UsesResult) Rows() [][]string {
	var rows [][]string
	for _, x := range u.Uses {
		rows = append(rows, []string{x.Repository, x.Tag, x.Digest, string(x.Kind), x.Name, x.Version, x.From})
	}
	return rows
}

// Partial implements Tabular.
func (u *UsesResult) Partial() Warnings { return u.Warnings }
