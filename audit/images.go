package audit

import (
	"context"
	"fmt"
	"path"
	"strings"
)

// Filter selects images; zero fields match everything.
type Filter struct {
	// Repository is a repository name, or a glob pattern (path.Match:
	// "istio/*").
	Repository string `json:"repository,omitempty"`
	// Version matches the org.opencontainers.image.version exactly.
	Version string `json:"version,omitempty"`
	// Commit matches the source commit, or its prefix (at least 7 hex
	// digits).
	Commit string `json:"commit,omitempty"`
	// Base matches the base image: its digest, the hex prefix of the
	// digest (at least 7 digits), or its name as the image records it.
	Base string `json:"base,omitempty"`
}

// Validate rejects filters that cannot match as meant.
func (f Filter) Validate() error {
	if f.Repository != "" {
		if _, err := path.Match(f.Repository, ""); err != nil {
			return fmt.Errorf("%w: repository pattern %q: %v", ErrBadInput, f.Repository, err)
		}
	}
	if f.Commit != "" && (len(f.Commit) < 7 || strings.Trim(strings.ToLower(f.Commit), "0123456789abcdef") != "") {
		return fmt.Errorf("%w: commit %q: want at least 7 hex digits", ErrBadInput, f.Commit)
	}
	if b := strings.TrimPrefix(f.Base, "sha256:"); b != f.Base && (len(b) < 7 || strings.Trim(b, "0123456789abcdef") != "") {
		return fmt.Errorf("%w: base digest %q: want sha256: and at least 7 hex digits", ErrBadInput, f.Base)
	}
	return nil
}

func (f Filter) match(i Image) bool {
	if f.Repository != "" {
		if ok, _ := path.Match(f.Repository, i.Repository); !ok {
			return false
		}
	}
	if f.Version != "" && i.Version != f.Version {
		return false
	}
	if f.Commit != "" && !strings.HasPrefix(strings.ToLower(i.Commit), strings.ToLower(f.Commit)) {
		return false
	}
	if f.Base != "" {
		hex := strings.TrimPrefix(f.Base, "sha256:")
		byDigest := i.BaseDigest != "" && len(hex) >= 7 && strings.HasPrefix(strings.TrimPrefix(i.BaseDigest, "sha256:"), hex)
		if !byDigest && i.BaseName != f.Base {
			return false
		}
	}
	return true
}

// ImagesResult is every image in scope that matched.
type ImagesResult struct {
	Registry string   `json:"registry"`
	Filter   Filter   `json:"filter"`
	Images   []Image  `json:"images"`
	Warnings Warnings `json:"warnings,omitempty"`
}

// Images lists every tag of every repository in scope (bookkeeping tags
// left out) with what it says about itself and its attachments.
func (a *Auditor) Images(ctx context.Context, f Filter) (*ImagesResult, error) {
	if err := f.Validate(); err != nil {
		return nil, err
	}
	s, err := a.session(ctx)
	if err != nil {
		return nil, err
	}
	recs, warn, err := s.scan(ctx, f.Repository)
	if err != nil {
		return nil, err
	}
	out := &ImagesResult{Registry: a.Registry(), Filter: f, Images: []Image{}, Warnings: warn}
	for _, r := range recs {
		if f.match(r.Image) {
			out.Images = append(out.Images, r.Image)
		}
	}
	return out, nil
}

// Header implements Tabular.
func (r *ImagesResult) Header() []string {
	return []string{"REPOSITORY", "TAG", "DIGEST", "KIND", "CREATED", "VERSION", "COMMIT", "BASE DIGEST", "PROVENANCE", "SBOM", "SIGNATURE"}
}

// Rows implements Tabular.
func (r *ImagesResult) Rows() [][]string {
	var rows [][]string
	for _, i := range r.Images {
		rows = append(rows, []string{i.Repository, i.Tag, i.Digest, string(i.Kind), i.Created, i.Version, i.Commit, i.BaseDigest, yesNo(i.Provenance), yesNo(i.SBOM), i.Signature})
	}
	return rows
}

// Partial implements Tabular.
func (r *ImagesResult) Partial() Warnings { return r.Warnings }

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}
