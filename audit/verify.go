package audit

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"golang.org/x/sync/errgroup"

	"github.com/sailmaker/sailmaker/attest"
	"github.com/sailmaker/sailmaker/builder"
	"github.com/sailmaker/sailmaker/builder/base"
	"github.com/sailmaker/sailmaker/recipes"
	"github.com/sailmaker/sailmaker/registry"
	"github.com/sailmaker/sailmaker/store"
)

// Finding codes: stable, for machines.
const (
	// CodeNoProvenance: an image sailmaker built has no provenance.
	CodeNoProvenance = "no-provenance"
	// CodeProvenanceInvalid: the provenance is unreadable as the contract
	// says, or is about another image.
	CodeProvenanceInvalid = "provenance-invalid"
	// CodeProvenanceMismatch: the provenance and the image's own labels
	// disagree (recipe, base, inputs).
	CodeProvenanceMismatch = "provenance-mismatch"
	// CodeNotBuiltBySailmaker: the image carries no sailmaker labels (or
	// its provenance names another builder): another client pushed it.
	CodeNotBuiltBySailmaker = "not-built-by-sailmaker"
	// CodeNoSBOM: an image sailmaker built has no SBOM.
	CodeNoSBOM = "no-sbom"
	// CodeSBOMInvalid: the SBOM attachment is not the contract's SPDX.
	CodeSBOMInvalid = "sbom-invalid"
	// CodeTagMoved: the tag names another digest than the ledger's last
	// push or forced move set: it was moved outside sailmaker.
	CodeTagMoved = "tag-moved"
	// CodeTagUnrecorded: a tag of a sailmaker-built image that the ledger
	// never recorded: it was made outside sailmaker.
	CodeTagUnrecorded = "tag-unrecorded"
	// CodeTagDeleted: the ledger says the tag exists; the registry has no
	// such tag.
	CodeTagDeleted = "tag-deleted"
	// CodeForeignBase: the base image is outside the internal registries,
	// not in the registry, or not a sailmaker base image.
	CodeForeignBase = "foreign-base"
	// CodeForeignLayer: a layer is neither the base's nor sailmaker's, or
	// is fetched from elsewhere (a foreign URL).
	CodeForeignLayer = "foreign-layer"
	// CodeCommitMismatch: the provenance's source commit is not what the
	// recipe pins.
	CodeCommitMismatch = "commit-mismatch"
	// CodeSignatureMissing / CodeSignatureInvalid: checked only with a
	// public key.
	CodeSignatureMissing = "signature-missing"
	CodeSignatureInvalid = "signature-invalid"
	// CodeAttestationUnsigned / CodeAttestationInvalid: checked only with
	// a key: the provenance or SBOM is a plain document (attached before
	// signing was configured: build again to sign it), or its DSSE
	// envelope does not verify with the key.
	CodeAttestationUnsigned = "attestation-unsigned"
	CodeAttestationInvalid  = "attestation-invalid"
	// CodePartialResult: the image could not be read after retries, so it
	// was not checked.
	CodePartialResult = "partial-result"
)

// Finding is one problem verify found.
type Finding struct {
	Code string `json:"code"`
	// Image is registry/repository:tag@digest (without the digest when
	// the image could not be read).
	Image      string `json:"image"`
	Repository string `json:"repository"`
	Tag        string `json:"tag,omitempty"`
	Digest     string `json:"digest,omitempty"`
	Message    string `json:"message"`
}

// Report is what verify found.
type Report struct {
	Registry          string    `json:"registry"`
	Checked           int       `json:"checked"`
	SignaturesChecked bool      `json:"signaturesChecked"`
	Findings          []Finding `json:"findings"`
	Warnings          Warnings  `json:"warnings,omitempty"`
	Notes             []string  `json:"notes,omitempty"`
}

// OK is true when nothing was found and everything could be read.
func (r *Report) OK() bool { return len(r.Findings) == 0 && len(r.Warnings) == 0 }

// Codes lists the distinct finding codes, sorted.
func (r *Report) Codes() []string {
	seen := map[string]bool{}
	var out []string
	for _, f := range r.Findings {
		if !seen[f.Code] {
			seen[f.Code] = true
			out = append(out, f.Code)
		}
	}
	sort.Strings(out)
	return out
}

// Header implements Tabular.
func (r *Report) Header() []string { return []string{"CODE", "IMAGE", "DIGEST", "MESSAGE"} }

// Rows implements Tabular.
func (r *Report) Rows() [][]string {
	var rows [][]string
	for _, f := range r.Findings {
		name := f.Repository
		if f.Tag != "" {
			name += ":" + f.Tag
		}
		rows = append(rows, []string{f.Code, name, f.Digest, f.Message})
	}
	return rows
}

// Partial implements Tabular.
func (r *Report) Partial() Warnings { return r.Warnings }

func finding(r *record, code, format string, args ...any) Finding {
	return Finding{Code: code, Image: r.Reference, Repository: r.Repository, Tag: r.Tag, Digest: r.Digest, Message: fmt.Sprintf(format, args...)}
}

// Verify checks every image in scope and the ledger's tags against the
// registry. The report lists findings; it is an error only when nothing
// could be checked.
func (a *Auditor) Verify(ctx context.Context) (*Report, error) {
	s, err := a.session(ctx)
	if err != nil {
		return nil, err
	}
	repos, err := s.repositories(ctx, "")
	if err != nil {
		return nil, err
	}
	refs, warn, err := s.tags(ctx, repos)
	if err != nil {
		return nil, err
	}
	recs, w2, err := s.readAll(ctx, refs)
	if err != nil {
		return nil, err
	}
	warn = append(warn, w2...)
	tags, err := a.ledger.Tags(ctx)
	if err != nil {
		return nil, ledgerErr(err)
	}
	rep := &Report{Registry: a.Registry(), Checked: len(recs), SignaturesChecked: a.verifier != nil, Findings: []Finding{}}
	if a.verifier == nil {
		rep.Notes = append(rep.Notes, "signatures not verified: no public key (--key or $SAILMAKER_SIGNING_PUB)")
	}
	if a.ledgerNote != "" {
		rep.Notes = append(rep.Notes, a.ledgerNote)
	}

	findings := make([][]Finding, len(recs))
	errs := make([]error, len(recs))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(a.concurrency)
	for i, r := range recs {
		g.Go(func() error {
			findings[i], errs[i] = s.check(gctx, r, tags)
			return nil
		})
	}
	_ = g.Wait()
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	for i, r := range recs {
		if errs[i] != nil {
			warn = append(warn, Unreadable{Reference: r.Reference, Error: errs[i].Error()})
			continue
		}
		rep.Findings = append(rep.Findings, findings[i]...)
	}

	// Tags the ledger knows that the registry does not have. A repository
	// that could not be listed says nothing about its tags.
	listed := map[string]bool{}
	for _, t := range refs {
		listed[t.repo+":"+t.tag] = true
	}
	unlisted := map[string]bool{}
	for _, w := range warn {
		unlisted[w.Reference] = true
	}
	for key, st := range tags {
		if listed[key] || !a.inScope(st.Repository) || st.Digest == "" {
			continue
		}
		repo, err := a.repo(st.Repository)
		if err != nil || unlisted[repo.String()] {
			continue
		}
		rep.Findings = append(rep.Findings, Finding{
			Code: CodeTagDeleted, Image: repo.String() + ":" + st.Tag + "@" + st.Digest,
			Repository: st.Repository, Tag: st.Tag, Digest: st.Digest,
			Message: fmt.Sprintf("the ledger's last entry (%s by %s at %s) set this tag; the registry does not have it: it was deleted outside sailmaker",
				st.Last.Action, st.Last.Actor, st.Last.Time.UTC().Format("2006-01-02T15:04:05Z")),
		})
	}

	for _, w := range warn {
		repo, tag := splitRef(w.Reference)
		rep.Findings = append(rep.Findings, Finding{Code: CodePartialResult, Image: w.Reference, Repository: repo, Tag: tag,
			Message: "not checked: could not be read after retries: " + w.Error})
	}
	rep.Warnings = warn
	sort.SliceStable(rep.Findings, func(i, j int) bool {
		a, b := rep.Findings[i], rep.Findings[j]
		if a.Repository != b.Repository {
			return a.Repository < b.Repository
		}
		if a.Tag != b.Tag {
			return a.Tag < b.Tag
		}
		return a.Code < b.Code
	})
	return rep, nil
}

// splitRef turns registry/repo:tag[@digest] into repo and tag.
func splitRef(ref string) (repo, tag string) {
	ref, _, _ = strings.Cut(ref, "@")
	if _, rest, ok := strings.Cut(ref, "/"); ok {
		ref = rest
	}
	if i := strings.LastIndex(ref, ":"); i > 0 && !strings.Contains(ref[i:], "/") {
		return ref[:i], ref[i+1:]
	}
	return ref, ""
}

// check returns the findings about one image. An error means a part of it
// could not be read.
func (s *session) check(ctx context.Context, r *record, ledger map[string]store.TagState) ([]Finding, error) {
	ctx, cancel := context.WithTimeout(ctx, s.a.timeout)
	defer cancel()
	var out []Finding
	if r.Tag != "" {
		st, known := ledger[r.Repository+":"+r.Tag]
		known = known && st.Digest != ""
		switch {
		case st.Names(r.Digest):
			// The last push, or a write whose confirmation is still to be
			// recorded (the build's process ended between the two).
		case known && st.Digest != r.Digest:
			out = append(out, finding(r, CodeTagMoved,
				"the ledger's last entry (%s by %s at %s) set this tag to %s; the registry has %s: it was moved outside sailmaker",
				st.Last.Action, st.Last.Actor, st.Last.Time.UTC().Format("2006-01-02T15:04:05Z"), st.Digest, r.Digest))
		case !known && (r.Kind == KindSailmaker || r.Kind.isArtifact()):
			out = append(out, finding(r, CodeTagUnrecorded, "the ledger has no push of this tag: it was made outside sailmaker (or before the ledger existed)"))
		}
	}
	switch r.Kind {
	case KindForeign:
		what := "an image"
		if r.manifest == nil {
			what = "an image index"
		}
		if r.derived != "" {
			out = append(out, finding(r, CodeNotBuiltBySailmaker, "built on the sailmaker base %s by another client: %s is not the base's", r.labels[base.LabelRecipe], r.derived))
		} else {
			out = append(out, finding(r, CodeNotBuiltBySailmaker, "%s without sailmaker's labels (dev.sailmaker.inputs, dev.sailmaker.recipe): pushed by another client", what))
		}
		return out, nil
	case KindBase, KindBuilder:
		return append(out, foreignURLs(r)...), nil
	case KindBuildCache:
		return out, nil
	}
	if len(r.platforms) > 0 {
		// An index of sailmaker images: each platform's image is checked
		// as an image, and the index's own signature.
		for _, c := range r.platforms {
			f, err := s.checkImage(ctx, c)
			if err != nil {
				return nil, err
			}
			out = append(out, f...)
		}
		return append(out, signatureFindings(s, r)...), nil
	}
	f, err := s.checkImage(ctx, r)
	if err != nil {
		return nil, err
	}
	return append(out, f...), nil
}

// signatureFindings says what is wrong with r's own signature, when a key
// checks them.
func signatureFindings(s *session, r *record) []Finding {
	if s.a.verifier == nil {
		return nil
	}
	switch r.Signature {
	case SignatureMissing:
		return []Finding{finding(r, CodeSignatureMissing, "no signature (%s.sig)", strings.Replace(r.Digest, ":", "-", 1))}
	case SignatureInvalid:
		return []Finding{finding(r, CodeSignatureInvalid, "%s", r.sigDetail)}
	}
	return nil
}

// checkImage returns the findings about one sailmaker image: attachments,
// base, layers, signature.
func (s *session) checkImage(ctx context.Context, r *record) ([]Finding, error) {
	var out []Finding
	prov, err := s.provenance(ctx, r)
	var invalid *invalidError
	switch {
	case errors.As(err, &invalid):
		out = append(out, finding(r, CodeProvenanceInvalid, "%s", invalid.msg))
	case err != nil:
		return nil, err
	case prov == nil:
		out = append(out, finding(r, CodeNoProvenance, "no provenance attached (%s referrer)", ArtifactTypeProvenance))
	default:
		f, err := s.checkProvenance(r, prov)
		if err != nil {
			return nil, err
		}
		out = append(out, f...)
	}
	sb, err := s.sbom(ctx, r)
	switch {
	case errors.As(err, &invalid):
		out = append(out, finding(r, CodeSBOMInvalid, "%s", invalid.msg))
	case err != nil:
		return nil, err
	case sb == nil:
		out = append(out, finding(r, CodeNoSBOM, "no SBOM attached (%s referrer)", ArtifactTypeSBOM))
	}
	if s.a.verifier != nil {
		if prov != nil {
			out = append(out, attestationFindings(r, "provenance", prov.Attachment, prov.Signed, prov.SignatureError)...)
		}
		if sb != nil {
			out = append(out, attestationFindings(r, "SBOM", sb.Attachment, sb.Signed, sb.SignatureError)...)
		}
	}
	if r.Kind.isArtifact() {
		out = append(out, checkArtifact(r)...)
	} else {
		f, err := s.checkBase(ctx, r, prov)
		if err != nil {
			return nil, err
		}
		out = append(out, f...)
	}
	return append(out, signatureFindings(s, r)...), nil
}

func foreignURLs(r *record) []Finding {
	var out []Finding
	if r.manifest == nil {
		return nil
	}
	for _, l := range r.manifest.Layers {
		if len(l.URLs) > 0 {
			out = append(out, finding(r, CodeForeignLayer, "layer %s is fetched from outside the registry (%s)", l.Digest, strings.Join(l.URLs, ", ")))
		}
	}
	return out
}

// checkProvenance compares the provenance with the image and the recipe.
func (s *session) checkProvenance(r *record, p *Provenance) ([]Finding, error) {
	var out []Finding
	st := p.Statement
	bd := st.Predicate.BuildDefinition
	ext := bd.ExternalParameters
	if id := st.Predicate.RunDetails.Builder.ID; !attest.IsBuilderID(id) || bd.BuildType != attest.BuildType {
		out = append(out, finding(r, CodeNotBuiltBySailmaker, "the provenance names builder %q and build type %q, not sailmaker's", id, bd.BuildType))
	}
	about := false
	for _, sub := range st.Subject {
		if "sha256:"+sub.Digest["sha256"] == r.Digest {
			about = true
		}
	}
	if !about {
		out = append(out, finding(r, CodeProvenanceInvalid, "the provenance %s is about another image (its subjects do not name %s)", p.Attachment, r.Digest))
	}
	mismatch := func(what, inProv, onImage string) {
		if onImage == "" && r.Kind.isArtifact() && r.label(builder.LabelRecipe) == "" {
			// A package made after the push from binaries already in the
			// registry (istioctl-versions) names the build that made it,
			// not a recipe of its own: its provenance's dependencies do.
			return
		}
		if inProv != onImage {
			out = append(out, finding(r, CodeProvenanceMismatch, "the provenance says %s %q, the image's labels %q", what, inProv, onImage))
		}
	}
	mismatch("recipe", ext.Recipe.ID, r.label(builder.LabelRecipe))
	mismatch("recipe digest", ext.Recipe.Digest, r.label(builder.LabelRecipeDigest))
	mismatch("base digest", ext.Base.Digest, r.BaseDigest)
	if k := bd.InternalParameters.InputsKey; k != "" {
		mismatch("inputs key", k, r.label(builder.LabelInputs))
	}

	commit := p.Commit()
	pinned, from, err := s.pinnedCommit(r, ext.Recipe.ID, ext.Recipe.Digest)
	if err != nil {
		return nil, err
	}
	if commit == "" {
		out = append(out, finding(r, CodeCommitMismatch, "the provenance names no source commit; %s pins %s", from, pinned))
	} else if pinned != "" && !strings.EqualFold(commit, pinned) {
		out = append(out, finding(r, CodeCommitMismatch, "the provenance says commit %s; %s pins %s", commit, from, pinned))
	}
	for _, dep := range bd.ResolvedDependencies {
		if c := dep.Digest["gitCommit"]; c != "" && commit != "" && !strings.EqualFold(c, commit) {
			out = append(out, finding(r, CodeCommitMismatch, "the provenance's source commit is %s but its resolved dependency %s is %s", commit, dep.URI, c))
		}
	}
	return out, nil
}

// pinnedCommit is the commit the recipe a provenance names pins. When that
// recipe (same id and digest) is embedded in this sailmaker, its pin is the
// authority. Otherwise (a recipe file, or another revision of an embedded
// recipe) this process cannot read the recipe; the image's own
// org.opencontainers.image.revision label, which sailmaker writes from the
// same pin at build time, is compared instead, so at least the provenance
// and the image cannot disagree unnoticed.
func (s *session) pinnedCommit(r *record, id, digest string) (commit, from string, err error) {
	if id != "" {
		rec, err := s.a.embeddedRecipe(id)
		if err == nil && rec.Digest() == digest {
			return rec.Spec.Source.Commit, "the embedded recipe " + id, nil
		}
		if err != nil && !errors.Is(err, recipes.ErrNotFound) {
			return "", "", fmt.Errorf("reading the embedded recipe %s: %w", id, err)
		}
	}
	return r.label(builder.AnnotationRevision), "the image's " + builder.AnnotationRevision + " label (recipe " + id + " is not embedded with that digest)", nil
}

func (a *Auditor) embeddedRecipe(id string) (*recipes.Recipe, error) {
	a.recipesMu.Lock()
	defer a.recipesMu.Unlock()
	if e, ok := a.recipes[id]; ok {
		return e.r, e.err
	}
	r, err := recipes.Get(id, recipes.WithRegistry(a.cfg.Registry.Address), recipes.WithAllowedRegistries(a.cfg.AllowedRegistries()))
	if a.recipes == nil {
		a.recipes = map[string]recipeEntry{}
	}
	a.recipes[id] = recipeEntry{r, err}
	return r, err
}

type recipeEntry struct {
	r   *recipes.Recipe
	err error
}

// checkBase checks that the base is a sailmaker base image in an internal
// registry and that the image is its layers plus sailmaker's.
func (s *session) checkBase(ctx context.Context, r *record, prov *Provenance) ([]Finding, error) {
	out := foreignURLs(r)
	if r.BaseDigest == "" || r.BaseName == "" {
		return append(out, finding(r, CodeForeignBase, "the image names no base (%s, %s)", builder.AnnotationBaseName, builder.AnnotationBaseDigest)), nil
	}
	if prov != nil {
		if b := prov.Statement.Predicate.BuildDefinition.ExternalParameters.Base.Name; b != "" && b != r.BaseName {
			out = append(out, finding(r, CodeProvenanceMismatch, "the provenance says base %q, the image's annotation %q", b, r.BaseName))
		}
	}
	if err := registry.CheckRef(r.BaseName, s.a.cfg.AllowedRegistries()); err != nil {
		return append(out, finding(r, CodeForeignBase, "the base %s is outside the internal registries: %v", r.BaseName, err)), nil
	}
	baseRef, err := s.a.rc.ParseRef(r.BaseName)
	if err != nil {
		return append(out, finding(r, CodeForeignBase, "the base %s: %v", r.BaseName, err)), nil
	}
	bd, err := v1.NewHash(r.BaseDigest)
	if err != nil {
		return append(out, finding(r, CodeForeignBase, "the base digest %q is not a digest", r.BaseDigest)), nil
	}
	baseRepo := baseRef.Context()
	raw, err := s.manifest(ctx, baseRepo, bd)
	if isNotFound(err) {
		return append(out, finding(r, CodeForeignBase, "the base %s is not in the internal registry", baseRepo.Digest(r.BaseDigest))), nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading the base %s: %w", baseRepo.Digest(r.BaseDigest), err)
	}
	pm, err := parseManifest(raw)
	if err == nil && pm.index != nil {
		// A multi-platform base: the image is built on its image for the
		// image's own platform.
		osName, arch := "linux", "amd64"
		if r.config != nil && r.config.Architecture != "" {
			osName, arch = r.config.OS, r.config.Architecture
		}
		if pm, err = s.platformChild(ctx, baseRepo, pm.index, osName, arch); err == nil && pm == nil {
			return append(out, finding(r, CodeForeignBase, "the base %s has no %s/%s image", baseRepo.Digest(r.BaseDigest), osName, arch)), nil
		}
	}
	if err != nil || pm.image == nil {
		return append(out, finding(r, CodeForeignBase, "the base %s is not an image manifest", baseRepo.Digest(r.BaseDigest))), nil
	}
	cfgRaw, err := s.blob(ctx, baseRepo, pm.image.Config.Digest)
	if err != nil {
		return nil, fmt.Errorf("reading the config of the base %s: %w", baseRepo.Digest(r.BaseDigest), err)
	}
	bcf, err := v1.ParseConfigFile(bytes.NewReader(cfgRaw))
	if err != nil || bcf.Config.Labels[base.LabelPackages] == "" {
		out = append(out, finding(r, CodeForeignBase, "the base %s is not a sailmaker base image (no %s label)", baseRepo.Digest(r.BaseDigest), base.LabelPackages))
	}

	if r.manifest == nil {
		return out, nil
	}
	layers := r.manifest.Layers
	bl := pm.image.Layers
	if len(layers) <= len(bl) {
		return append(out, finding(r, CodeForeignLayer, "the image has %d layers, its base %d: sailmaker adds at least one", len(layers), len(bl))), nil
	}
	for i := range bl {
		if layers[i].Digest != bl[i].Digest {
			return append(out, finding(r, CodeForeignLayer, "layer %d is %s, the base's is %s: the image is not built on its base", i, layers[i].Digest, bl[i].Digest)), nil
		}
	}
	// Every layer after the base's was added by sailmaker's assembly: its
	// history entry says so.
	var history []v1.History
	if r.config != nil {
		for _, h := range r.config.History {
			if !h.EmptyLayer {
				history = append(history, h)
			}
		}
	}
	for i := len(bl); i < len(layers); i++ {
		if i >= len(history) || !strings.HasPrefix(history[i].CreatedBy, "sailmaker:") {
			by := ""
			if i < len(history) {
				by = history[i].CreatedBy
			}
			out = append(out, finding(r, CodeForeignLayer, "layer %s was not added by sailmaker (history: %q)", layers[i].Digest, by))
		}
	}
	return out, nil
}

// attestationFindings says what is wrong with an attestation's signature.
func attestationFindings(r *record, what, attachment, signed, why string) []Finding {
	switch signed {
	case AttestationUnsigned:
		return []Finding{finding(r, CodeAttestationUnsigned, "the %s %s is not signed (attached before a signing key was configured: build again to sign it)", what, attachment)}
	case AttestationInvalid:
		return []Finding{finding(r, CodeAttestationInvalid, "the %s %s does not verify with the key: %s", what, attachment, why)}
	}
	return nil
}

// checkArtifact checks the shape of a package or binary artifact: one
// layer, of its artifact type, in the registry (no foreign URLs).
func checkArtifact(r *record) []Finding {
	out := foreignURLs(r)
	if r.manifest == nil {
		return out
	}
	if n := len(r.manifest.Layers); n != 1 {
		return append(out, finding(r, CodeForeignLayer, "a %s artifact holds one layer (the file); this one has %d", r.Kind, n))
	}
	if mt := string(r.manifest.Layers[0].MediaType); mt != r.manifest.ArtifactType {
		out = append(out, finding(r, CodeForeignLayer, "the layer is %s, not %s", mt, r.manifest.ArtifactType))
	}
	return out
}
