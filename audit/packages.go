package audit

import (
	"bytes"
	"context"
	"fmt"
	"path"
	"sort"
	"strings"

	"github.com/sailmaker/sailmaker/builder"
	"github.com/sailmaker/sailmaker/packaging/deb"
)

// PackagesFilter selects packages; zero fields match everything.
type PackagesFilter struct {
	// Name is a package name, or a glob pattern (path.Match).
	Name string `json:"name,omitempty"`
	// Binaries also lists the releases' programs the multi-version
	// packages are made from (a release's istioctl).
	Binaries bool `json:"binaries,omitempty"`
}

// PackagesResult is every package (and, asked for, binary) in scope.
type PackagesResult struct {
	Registry string         `json:"registry"`
	Filter   PackagesFilter `json:"filter"`
	Packages []Image        `json:"packages"`
	Warnings Warnings       `json:"warnings,omitempty"`
}

// Packages lists the Debian packages (and binaries) the registry holds,
// by name, then newest version first.
func (a *Auditor) Packages(ctx context.Context, f PackagesFilter) (*PackagesResult, error) {
	if f.Name != "" {
		if _, err := path.Match(f.Name, ""); err != nil {
			return nil, fmt.Errorf("%w: name pattern %q: %v", ErrBadInput, f.Name, err)
		}
	}
	s, err := a.session(ctx)
	if err != nil {
		return nil, err
	}
	recs, warn, err := s.scan(ctx, "")
	if err != nil {
		return nil, err
	}
	out := &PackagesResult{Registry: a.Registry(), Filter: f, Packages: []Image{}, Warnings: warn}
	for _, r := range recs {
		if r.Kind != KindPackage && !(f.Binaries && r.Kind == KindBinary) {
			continue
		}
		if f.Name != "" {
			if ok, _ := path.Match(f.Name, r.Package.Name); !ok {
				continue
			}
		}
		out.Packages = append(out.Packages, r.Image)
	}
	sort.SliceStable(out.Packages, func(i, j int) bool {
		a, b := out.Packages[i].Package, out.Packages[j].Package
		if a.Name != b.Name {
			return a.Name < b.Name
		}
		if c, err := deb.CompareVersions(a.Version, b.Version); err == nil && c != 0 {
			return c > 0
		}
		return a.Version > b.Version
	})
	return out, nil
}

// Header implements Tabular.
func (r *PackagesResult) Header() []string {
	return []string{"PACKAGE", "VERSION", "ARCH", "KIND", "REPOSITORY", "TAG", "DIGEST", "SIZE", "HOLDS", "PROVENANCE", "SBOM", "SIGNATURE"}
}

// Rows implements Tabular.
func (r *PackagesResult) Rows() [][]string {
	var rows [][]string
	for _, i := range r.Packages {
		p := i.Package
		rows = append(rows, []string{p.Name, p.Version, p.Architecture, string(i.Kind), i.Repository, i.Tag, i.Digest,
			fmt.Sprint(i.Size), strings.Join(p.Holds, " "), yesNo(i.Provenance), yesNo(i.SBOM), i.Signature})
	}
	return rows
}

// Partial implements Tabular.
func (r *PackagesResult) Partial() Warnings { return r.Warnings }

// PackageDetail is one package: what the registry says about it (as
// Show), its control fields and its files.
type PackageDetail struct {
	*Detail
	// Control is the package's control paragraph, as dpkg-deb --info
	// prints it.
	Control string `json:"control,omitempty"`
	// Files are the files it installs.
	Files []deb.Entry `json:"files,omitempty"`
}

// ShowPackage reads one package: name[=version] (the newest version when
// none is given), or repository:tag / repository@digest.
func (a *Auditor) ShowPackage(ctx context.Context, which string) (*PackageDetail, error) {
	which = strings.TrimSpace(which)
	ref := which
	if !strings.ContainsAny(which, ":@/") || strings.Contains(which, "=") {
		n, v, _ := strings.Cut(which, "=")
		list, err := a.Packages(ctx, PackagesFilter{Name: n, Binaries: true})
		if err != nil {
			return nil, err
		}
		ref = ""
		for _, p := range list.Packages {
			if p.Package.Name == n && (v == "" || p.Package.Version == v) {
				ref = p.Repository + "@" + p.Digest
				break
			}
		}
		if ref == "" {
			return nil, fmt.Errorf("%w: no package %s in %s (sailmaker packages list)", ErrNotFound, which, a.Registry())
		}
	}
	d, err := a.Show(ctx, ref)
	if err != nil {
		return nil, err
	}
	if d.Image.Tag == "" {
		// Found by name: say which tag names it.
		if list, err := a.Packages(ctx, PackagesFilter{Binaries: true}); err == nil {
			for _, p := range list.Packages {
				if p.Digest == d.Image.Digest && p.Repository == d.Image.Repository {
					d.Image = p
					break
				}
			}
		}
	}
	out := &PackageDetail{Detail: d}
	if d.Image.Kind != KindPackage {
		if d.Image.Kind == KindBinary {
			return out, nil
		}
		return nil, fmt.Errorf("%w: %s is a %s, not a package", ErrBadInput, which, d.Image.Kind)
	}
	rf, err := a.ParseImage(d.Image.Repository + "@" + d.Image.Digest)
	if err != nil {
		return nil, err
	}
	img, err := a.rc.Image(ctx, rf)
	if err != nil {
		return nil, err
	}
	data, err := builder.ArtifactContent(img, builder.ArtifactTypeDeb)
	if err != nil {
		return nil, fmt.Errorf("reading the .deb of %s: %w", rf, err)
	}
	info, err := deb.ReadInfo(bytes.NewReader(data))
	if err != nil {
		return nil, err
	}
	out.Control = info.Control.Raw
	if out.Files, err = deb.ReadContents(bytes.NewReader(data)); err != nil {
		return nil, err
	}
	return out, nil
}

// Rows implements Tabular: Show's rows, the control fields and the files.
func (p *PackageDetail) Rows() [][]string {
	rows := p.Detail.Rows()
	if p.Control != "" {
		if c, err := deb.ParseControl(p.Control); err == nil {
			for _, f := range c.Fields {
				rows = append(rows, []string{"control", f.Name, strings.ReplaceAll(f.Value, "\n", " / ")})
			}
		}
	}
	for _, f := range p.Files {
		if f.Type == "file" {
			rows = append(rows, []string{"file", f.Path, fmt.Sprintf("%04o %d bytes", f.Mode, f.Size)})
		}
	}
	return rows
}
