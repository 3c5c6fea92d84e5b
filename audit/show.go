package audit

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/sailmaker/sailmaker/builder/base"
	"github.com/sailmaker/sailmaker/store"
)

// Layer is one layer of an image.
type Layer struct {
	Digest    string   `json:"digest"`
	MediaType string   `json:"mediaType"`
	Size      int64    `json:"size"`
	CreatedBy string   `json:"createdBy,omitempty"`
	URLs      []string `json:"urls,omitempty"`
}

// Attachment is one referrer of an image.
type Attachment struct {
	Digest       string `json:"digest"`
	ArtifactType string `json:"artifactType"`
	// Kind is the dev.sailmaker.attestation annotation: provenance, sbom.
	Kind    string `json:"kind,omitempty"`
	Created string `json:"created,omitempty"`
}

// Detail is everything known about one image.
type Detail struct {
	Image       Image             `json:"image"`
	Labels      map[string]string `json:"labels,omitempty"`
	Annotations map[string]string `json:"annotations,omitempty"`
	Layers      []Layer           `json:"layers"`
	Attachments []Attachment      `json:"attachments"`
	Provenance  *Provenance       `json:"provenance,omitempty"`
	// SBOM summarises the SBOM attachment; for an image without one, the
	// Debian packages of its base's label (FromLabel).
	SBOM *SBOM `json:"sbom,omitempty"`
	// Ledger is the ledger's history of this tag and of any tag of the
	// repository that was set to or moved from this digest.
	Ledger   []store.Entry `json:"ledger"`
	Findings []Finding     `json:"findings"`
	Notes    []string      `json:"notes,omitempty"`
}

// Show reads everything known about one image: repository:tag or
// repository@digest (or a full reference in the audited registry).
func (a *Auditor) Show(ctx context.Context, image string) (*Detail, error) {
	ref, err := a.ParseImage(image)
	if err != nil {
		return nil, err
	}
	s, err := a.session(ctx)
	if err != nil {
		return nil, err
	}
	top, err := s.readImage(ctx, ref)
	if err != nil {
		return nil, err
	}
	// Of a multi-platform image, its linux/amd64 image is shown (the
	// others by digest: repository@sha256:...).
	r := top.view()
	d := &Detail{Image: top.Image, Labels: r.labels, Annotations: r.annotations, Layers: []Layer{}, Attachments: []Attachment{}, Ledger: []store.Entry{}}
	if r != top {
		d.Notes = append(d.Notes, fmt.Sprintf("an image index of %s: this shows its %s image %s; show another as %s@<digest>",
			strings.Join(top.Platforms, ", "), strings.Join(r.Platforms, ""), r.Digest, top.Repository))
		for _, c := range top.platforms {
			d.Notes = append(d.Notes, fmt.Sprintf("%s: %s", strings.Join(c.Platforms, ""), c.Digest))
		}
	}
	if r.manifest != nil {
		var history []v1.History
		if r.config != nil {
			for _, h := range r.config.History {
				if !h.EmptyLayer {
					history = append(history, h)
				}
			}
		}
		for i, l := range r.manifest.Layers {
			ly := Layer{Digest: l.Digest.String(), MediaType: string(l.MediaType), Size: l.Size, URLs: l.URLs}
			if i < len(history) {
				ly.CreatedBy = history[i].CreatedBy
			}
			d.Layers = append(d.Layers, ly)
		}
	}
	for _, ref := range r.referrers {
		d.Attachments = append(d.Attachments, Attachment{Digest: ref.Digest.String(), ArtifactType: ref.ArtifactType,
			Kind: ref.Annotations[AnnotationAttestation], Created: ref.Annotations[annotationCreated]})
	}

	var invalid *invalidError
	d.Provenance, err = s.provenance(ctx, r)
	if errors.As(err, &invalid) {
		d.Notes = append(d.Notes, invalid.msg)
	} else if err != nil {
		return nil, err
	}
	d.SBOM, err = s.sbom(ctx, r)
	if errors.As(err, &invalid) {
		d.Notes = append(d.Notes, invalid.msg)
	} else if err != nil {
		return nil, err
	}
	if d.SBOM == nil {
		pkgs, from, err := s.labelPackages(ctx, r)
		if err != nil {
			return nil, err
		}
		if pkgs != nil {
			d.SBOM = &SBOM{GoModules: []Package{}, DebianPackages: pkgs, FromLabel: true}
			d.Notes = append(d.Notes, "no SBOM: the Debian packages are from the "+base.LabelPackages+" label of "+from)
		}
	}

	entries, err := a.ledger.Entries(ctx, store.LedgerFilter{Repository: r.Repository})
	if err != nil {
		return nil, ledgerErr(err)
	}
	for _, e := range entries {
		if (r.Tag != "" && e.Tag == r.Tag) || e.NewDigest == r.Digest || e.OldDigest == r.Digest {
			d.Ledger = append(d.Ledger, e)
		}
	}
	tags, err := a.ledger.Tags(ctx)
	if err != nil {
		return nil, ledgerErr(err)
	}
	if d.Findings, err = s.check(ctx, r, tags); err != nil {
		return nil, err
	}
	if d.Findings == nil {
		d.Findings = []Finding{}
	}
	if a.ledgerNote != "" {
		d.Notes = append(d.Notes, a.ledgerNote)
	}
	return d, nil
}

// labelPackages is the Debian package list of a base image's label: the
// image's own for a base image, its base's for an image sailmaker built.
// nil when there is none.
func (s *session) labelPackages(ctx context.Context, r *record) ([]Package, string, error) {
	switch r.Kind {
	case KindBase, KindBuilder:
		if pkgs, err := packagesLabel(r.labels[base.LabelPackages]); err == nil && len(pkgs) > 0 {
			return pkgs, "the image", nil
		}
	case KindSailmaker:
		if r.BaseName == "" || r.BaseDigest == "" {
			return nil, "", nil
		}
		ref, err := s.a.rc.ParseRef(r.BaseName)
		if err != nil {
			return nil, "", nil
		}
		bd, err := v1.NewHash(r.BaseDigest)
		if err != nil {
			return nil, "", nil
		}
		repo := ref.Context()
		raw, err := s.manifest(ctx, repo, bd)
		if isNotFound(err) {
			return nil, "", nil
		}
		if err != nil {
			return nil, "", fmt.Errorf("reading the base %s: %w", repo.Digest(r.BaseDigest), err)
		}
		pm, err := parseManifest(raw)
		if err != nil || pm.image == nil {
			return nil, "", nil
		}
		cfgRaw, err := s.blob(ctx, repo, pm.image.Config.Digest)
		if err != nil {
			return nil, "", fmt.Errorf("reading the base %s: %w", repo.Digest(r.BaseDigest), err)
		}
		cf, err := v1.ParseConfigFile(bytes.NewReader(cfgRaw))
		if err != nil {
			return nil, "", nil
		}
		if pkgs, err := packagesLabel(cf.Config.Labels[base.LabelPackages]); err == nil && len(pkgs) > 0 {
			return pkgs, "its base " + r.BaseName, nil
		}
	}
	return nil, "", nil
}

// Header implements Tabular: one row per fact, grouped by section.
func (d *Detail) Header() []string { return []string{"SECTION", "NAME", "VALUE"} }

// Rows implements Tabular.
func (d *Detail) Rows() [][]string {
	var rows [][]string
	add := func(section, name, value string) {
		if value != "" {
			rows = append(rows, []string{section, name, value})
		}
	}
	i := d.Image
	add("image", "reference", i.Reference)
	add("image", "kind", string(i.Kind))
	add("image", "created", i.Created)
	add("image", "version", i.Version)
	add("image", "commit", i.Commit)
	add("image", "source", i.Source)
	add("image", "recipe", i.Recipe)
	add("image", "recipe digest", i.RecipeDigest)
	add("image", "base", i.BaseName)
	add("image", "base digest", i.BaseDigest)
	add("image", "go", i.GoVersion)
	add("image", "signature", i.Signature)
	if p := i.Package; p != nil {
		add("package", "name", p.Name)
		add("package", "version", p.Version)
		add("package", "architecture", p.Architecture)
		add("package", "type", p.Type)
		add("package", "file", p.File)
		add("package", "holds", strings.Join(p.Holds, ", "))
		add("package", "collection", p.Collection)
	}
	keys := make([]string, 0, len(d.Labels))
	for k := range d.Labels {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		add("label", k, d.Labels[k])
	}
	for _, l := range d.Layers {
		add("layer", l.Digest, strings.TrimSpace(fmt.Sprintf("%d bytes %s", l.Size, l.CreatedBy)))
	}
	for _, at := range d.Attachments {
		add("attachment", at.Digest, strings.TrimSpace(at.ArtifactType+" "+at.Created))
	}
	if p := d.Provenance; p != nil {
		bd := p.Statement.Predicate.BuildDefinition
		ext := bd.ExternalParameters
		add("provenance", "attachment", p.Attachment)
		add("provenance", "signed", p.Signed)
		add("provenance", "builder", p.Statement.Predicate.RunDetails.Builder.ID)
		add("provenance", "recipe", strings.TrimSpace(ext.Recipe.ID+" "+ext.Recipe.Digest))
		add("provenance", "source", strings.TrimSpace(ext.Source.Git+" "+ext.Source.Tag))
		add("provenance", "commit", ext.Source.Commit)
		for _, pt := range ext.Patches {
			add("provenance", "patch", pt.Path+" "+pt.SHA256)
		}
		add("provenance", "go", ext.Toolchain.Go)
		add("provenance", "builder image", strings.TrimSpace(ext.Toolchain.Builder+" "+ext.Toolchain.BuilderDigest))
		add("provenance", "base", strings.TrimSpace(ext.Base.Name+" "+ext.Base.Digest))
		if e := ext.Envoy; e != nil {
			add("provenance", "envoy", strings.TrimSpace(e.URL+" "+e.SHA256))
			add("provenance", "proxy sha", e.ProxySHA)
		}
		t := bd.InternalParameters.Trigger
		add("provenance", "trigger", strings.Join(strings.Fields(strings.Join([]string{t.Kind, t.Actor, t.DeliveryID, t.BuildID, rfc3339(t.Time)}, " ")), " "))
		add("provenance", "sailmaker", bd.InternalParameters.SailmakerVersion)
		add("provenance", "buildkit", bd.InternalParameters.BuildKitVersion)
		add("provenance", "started", rfc3339(p.Statement.Predicate.RunDetails.Metadata.StartedOn))
		add("provenance", "finished", rfc3339(p.Statement.Predicate.RunDetails.Metadata.FinishedOn))
	}
	if sb := d.SBOM; sb != nil {
		if sb.Attachment != "" {
			add("sbom", "attachment", sb.Attachment)
			add("sbom", "signed", sb.Signed)
		}
		for _, m := range sb.GoModules {
			add("go module", m.Name, m.Version)
		}
		for _, p := range sb.DebianPackages {
			add("debian package", p.Name, p.Version)
		}
	}
	for _, e := range d.Ledger {
		v := e.Action + " by " + e.Actor
		if e.OldDigest != "" {
			v += " from " + e.OldDigest
		}
		if e.NewDigest != "" {
			v += " to " + e.NewDigest
		}
		if e.BuildID != "" {
			v += " (build " + e.BuildID + ")"
		}
		add("ledger", e.Time.UTC().Format("2006-01-02T15:04:05Z")+" "+e.Repository+":"+e.Tag, v)
	}
	for _, f := range d.Findings {
		add("finding", f.Code, f.Message)
	}
	for _, n := range d.Notes {
		add("note", "", n)
	}
	return rows
}

// Partial implements Tabular.
func (d *Detail) Partial() Warnings { return nil }

func rfc3339(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339)
}
