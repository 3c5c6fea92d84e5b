package audit

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"path"
	"regexp"
	"sort"
	"strings"
	"sync"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"golang.org/x/sync/errgroup"

	"github.com/sailmaker/sailmaker/attest"
	"github.com/sailmaker/sailmaker/builder"
	"github.com/sailmaker/sailmaker/builder/base"
)

// Artifact types and annotations of sailmaker's attachments (see the
// attestation contract: OCI referrers of the image manifest).
const (
	ArtifactTypeProvenance = attest.ProvenanceArtifactType
	ArtifactTypeSBOM       = attest.SBOMArtifactType
	AnnotationAttestation  = attest.AnnotationKind
)

// bookkeeping matches tags that are not images: the referrers fallback tag
// and cosign's .sig/.att/.sbom tags.
var bookkeeping = regexp.MustCompile(`^sha256-[0-9a-f]{64}(\.(sig|att|sbom))?$`)

// maxDocument bounds an attestation document read into memory.
const maxDocument = 64 << 20

// session is one query's view of the registry: one puller, so that
// authentication and pings are done once per repository, not per request.
type session struct {
	a *Auditor
	p *remote.Puller
	// attached holds *attached by repository@digest.
	attached sync.Map
}

func (a *Auditor) session(ctx context.Context) (*session, error) {
	opts := append(a.rc.Remote(ctx), remote.WithRetryBackoff(a.backoff))
	p, err := remote.NewPuller(opts...)
	if err != nil {
		return nil, err
	}
	return &session{a: a, p: p}, nil
}

func (s *session) remote(ctx context.Context) []remote.Option {
	return []remote.Option{remote.Reuse(s.p), remote.WithContext(ctx)}
}

// record is an image as read, with what the checks need beyond Image.
type record struct {
	Image
	repo        name.Repository
	digest      v1.Hash
	manifest    *v1.Manifest // nil for an index
	config      *v1.ConfigFile
	labels      map[string]string
	annotations map[string]string
	referrers   []v1.Descriptor
	// sigDetail is why the signature is invalid.
	sigDetail string
	// derived describes the first layer that is not a base image's, for
	// an image that carries a base image's labels but is not one.
	derived string
	// platforms are the images of an image index of sailmaker images (a
	// multi-platform build), in index order, each read as an image of the
	// same tag; each has its own attachments and signature.
	platforms []*record
}

// view is the record whose attachments and layers stand for r in show,
// diff and uses: for an index of sailmaker images its linux/amd64 image
// (the one go-containerregistry's remote.Image picks), else r.
func (r *record) view() *record {
	for _, c := range r.platforms {
		if c.config != nil && c.config.OS == "linux" && c.config.Architecture == "amd64" {
			return c
		}
	}
	if len(r.platforms) > 0 {
		return r.platforms[0]
	}
	return r
}

// History of the layers builder/base makes (builder/base/base.go).
var baseLayerHistory = []string{"mmdebstrap ", "golang.org/toolchain@", base.HistoryDistroless}

// notBaseLayer describes the first layer that builder/base did not make,
// or returns "" when all are its.
func (r *record) notBaseLayer() string {
	if r.manifest == nil || r.config == nil {
		return "not an image"
	}
	var history []v1.History
	for _, h := range r.config.History {
		if !h.EmptyLayer {
			history = append(history, h)
		}
	}
	for i, l := range r.manifest.Layers {
		by := ""
		if i < len(history) {
			by = history[i].CreatedBy
		}
		ok := false
		for _, p := range baseLayerHistory {
			ok = ok || strings.HasPrefix(by, p)
		}
		if !ok {
			return fmt.Sprintf("layer %s (%q)", l.Digest, by)
		}
	}
	return ""
}

// label is the manifest annotation, or else the config label, of key.
func (r *record) label(key string) string {
	if v := r.annotations[key]; v != "" {
		return v
	}
	return r.labels[key]
}

func (r *record) referrersOf(artifactType string) []v1.Descriptor {
	var out []v1.Descriptor
	for _, d := range r.referrers {
		if d.ArtifactType == artifactType {
			out = append(out, d)
		}
	}
	return out
}

func isNotFound(err error) bool {
	var terr *transport.Error
	return errors.As(err, &terr) && terr.StatusCode == http.StatusNotFound
}

// manifest reads a manifest by digest, from the cache if it is there.
func (s *session) manifest(ctx context.Context, repo name.Repository, d v1.Hash) ([]byte, error) {
	if b, ok := s.a.cache.get(d); ok {
		return b, nil
	}
	desc, err := s.p.Get(ctx, repo.Digest(d.String()))
	if err != nil {
		return nil, err
	}
	if !s.a.cache.put(d, desc.Manifest) {
		return nil, fmt.Errorf("the registry returned a manifest for %s whose content does not match that digest", d)
	}
	return desc.Manifest, nil
}

// blob reads a small blob (config, document) by digest, from the cache if
// it is there.
func (s *session) blob(ctx context.Context, repo name.Repository, d v1.Hash) ([]byte, error) {
	if b, ok := s.a.cache.get(d); ok {
		return b, nil
	}
	l, err := s.p.Layer(ctx, repo.Digest(d.String()))
	if err != nil {
		return nil, err
	}
	rc, err := l.Compressed()
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	b, err := io.ReadAll(io.LimitReader(rc, maxDocument+1))
	if err != nil {
		return nil, err
	}
	if len(b) > maxDocument {
		return nil, fmt.Errorf("blob %s is larger than %d bytes", d, maxDocument)
	}
	if !s.a.cache.put(d, b) {
		return nil, fmt.Errorf("the registry returned a blob for %s whose content does not match that digest", d)
	}
	return b, nil
}

type parsedManifest struct {
	mediaType types.MediaType
	image     *v1.Manifest
	index     *v1.IndexManifest
	size      int64
}

func parseManifest(raw []byte) (*parsedManifest, error) {
	var peek struct {
		MediaType types.MediaType   `json:"mediaType"`
		Manifests []json.RawMessage `json:"manifests"`
	}
	if err := json.Unmarshal(raw, &peek); err != nil {
		return nil, fmt.Errorf("parsing manifest: %w", err)
	}
	pm := &parsedManifest{mediaType: peek.MediaType, size: int64(len(raw))}
	if peek.MediaType.IsIndex() || (peek.MediaType == "" && peek.Manifests != nil) {
		idx, err := v1.ParseIndexManifest(bytes.NewReader(raw))
		if err != nil {
			return nil, fmt.Errorf("parsing index: %w", err)
		}
		if pm.mediaType == "" {
			pm.mediaType = types.OCIImageIndex
		}
		pm.index = idx
		return pm, nil
	}
	m, err := v1.ParseManifest(bytes.NewReader(raw))
	if err != nil {
		return nil, fmt.Errorf("parsing manifest: %w", err)
	}
	if pm.mediaType == "" {
		pm.mediaType = types.OCIManifestSchema1
	}
	pm.image = m
	return pm, nil
}

// platformChild reads the image manifest of an index for os/arch; nil
// when the index has none.
func (s *session) platformChild(ctx context.Context, repo name.Repository, idx *v1.IndexManifest, os, arch string) (*parsedManifest, error) {
	for _, m := range idx.Manifests {
		if m.Platform == nil || m.Platform.OS != os || m.Platform.Architecture != arch || !m.MediaType.IsImage() {
			continue
		}
		raw, err := s.manifest(ctx, repo, m.Digest)
		if err != nil {
			return nil, fmt.Errorf("reading the %s/%s image %s: %w", os, arch, m.Digest, err)
		}
		pm, err := parseManifest(raw)
		if err != nil || pm.image == nil {
			return nil, fmt.Errorf("the %s/%s entry %s is not an image manifest", os, arch, m.Digest)
		}
		return pm, nil
	}
	return nil, nil
}

// readImage reads what the audit knows about repo at ref (a tag or a
// digest): manifest, config, attachments and signature.
func (s *session) readImage(ctx context.Context, ref name.Reference) (*record, error) {
	ctx, cancel := context.WithTimeout(ctx, s.a.timeout)
	defer cancel()
	repo := ref.Context()
	var d v1.Hash
	var err error
	if dig, ok := ref.(name.Digest); ok {
		if d, err = v1.NewHash(dig.DigestStr()); err != nil {
			return nil, fmt.Errorf("%w: %s: %v", ErrBadInput, ref, err)
		}
	} else {
		desc, err := s.p.Head(ctx, ref)
		if err != nil {
			if isNotFound(err) {
				return nil, fmt.Errorf("%s: %w", ref, ErrNotFound)
			}
			return nil, fmt.Errorf("reading %s: %w", ref, err)
		}
		d = desc.Digest
	}
	raw, err := s.manifest(ctx, repo, d)
	if err != nil {
		if isNotFound(err) {
			return nil, fmt.Errorf("%s: %w", repo.Digest(d.String()), ErrNotFound)
		}
		return nil, fmt.Errorf("reading the manifest of %s: %w", ref, err)
	}
	pm, err := parseManifest(raw)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", ref, err)
	}
	r := &record{repo: repo, digest: d, labels: map[string]string{}, annotations: map[string]string{}}
	r.Repository = repo.RepositoryStr()
	if t, ok := ref.(name.Tag); ok {
		r.Tag = t.TagStr()
	}
	r.Digest = d.String()
	r.Reference = repo.String()
	if r.Tag != "" {
		r.Reference += ":" + r.Tag
	}
	r.Reference += "@" + r.Digest
	r.MediaType = string(pm.mediaType)
	r.Size = pm.size
	r.Kind = KindForeign
	img := pm.image
	if pm.index != nil {
		// A multi-platform image (a base built for linux/amd64 and
		// linux/arm64): labels, config and layers are its linux/amd64
		// image's, as go-containerregistry's remote.Image reads it.
		child, err := s.platformChild(ctx, repo, pm.index, "linux", "amd64")
		if err != nil {
			return nil, fmt.Errorf("%s: %w", ref, err)
		}
		if child != nil {
			img = child.image
		}
	}
	if img != nil {
		r.manifest = img
		for k, v := range img.Annotations {
			r.annotations[k] = v
		}
		cfgRaw, err := s.blob(ctx, repo, img.Config.Digest)
		if err != nil {
			return nil, fmt.Errorf("reading the config of %s: %w", ref, err)
		}
		// Artifacts (an empty config) are not images; their config has no
		// labels and parsing it gives an empty ConfigFile.
		if cf, err := v1.ParseConfigFile(bytes.NewReader(cfgRaw)); err == nil {
			r.config = cf
			for k, v := range cf.Config.Labels {
				r.labels[k] = v
			}
			if !cf.Created.IsZero() {
				r.Created = cf.Created.UTC().Format("2006-01-02T15:04:05Z07:00")
			}
		}
		if pm.image != nil {
			r.Size += pm.image.Config.Size
			for _, l := range pm.image.Layers {
				r.Size += l.Size
			}
		}
	}
	if pm.index != nil {
		for _, m := range pm.index.Manifests {
			r.Size += m.Size
		}
	}
	r.fill()
	if pm.image != nil && string(pm.image.Config.MediaType) == buildCacheConfigType {
		r.Kind = KindBuildCache
	}

	at := s.attachments(ctx, repo, d)
	if at.err != nil {
		return nil, fmt.Errorf("%s: %w", ref, at.err)
	}
	r.referrers = at.referrers
	r.Signature, r.sigDetail = at.signature, at.sigDetail
	r.Provenance = len(r.referrersOf(ArtifactTypeProvenance)) > 0
	r.SBOM = len(r.referrersOf(ArtifactTypeSBOM)) > 0
	if pm.index != nil && r.Kind == KindSailmaker {
		// A multi-platform build: each platform's image has its own
		// provenance, SBOM and signature; the index has none but its
		// signature.
		r.Provenance, r.SBOM = true, true
		for _, m := range pm.index.Manifests {
			if m.Platform == nil || !m.MediaType.IsImage() {
				continue
			}
			c, err := s.readImage(ctx, repo.Digest(m.Digest.String()))
			if err != nil {
				return nil, fmt.Errorf("%s: the %s image: %w", ref, platformName(*m.Platform), err)
			}
			c.Tag = r.Tag
			c.Reference = repo.String() + ":" + r.Tag + "@" + c.Digest
			if r.Tag == "" {
				c.Reference = repo.String() + "@" + c.Digest
			}
			c.Platforms = []string{platformName(*m.Platform)}
			r.platforms = append(r.platforms, c)
			r.Platforms = append(r.Platforms, platformName(*m.Platform))
			r.Provenance = r.Provenance && c.Provenance
			r.SBOM = r.SBOM && c.SBOM
		}
	}
	return r, nil
}

// platformName is os/arch[/variant].
func platformName(p v1.Platform) string {
	s := p.OS + "/" + p.Architecture
	if p.Variant != "" {
		s += "/" + p.Variant
	}
	return s
}

// attached is what is attached to one image digest: referrers and
// signature. Many tags may name one digest (every release tag, "latest");
// a query reads this once per digest.
type attached struct {
	once      sync.Once
	referrers []v1.Descriptor
	signature string
	sigDetail string
	err       error
}

func (s *session) attachments(ctx context.Context, repo name.Repository, d v1.Hash) *attached {
	v, _ := s.attached.LoadOrStore(repo.String()+"@"+d.String(), &attached{})
	at := v.(*attached)
	at.once.Do(func() {
		ref := repo.Digest(d.String())
		idx, err := remote.Referrers(ref, s.remote(ctx)...)
		if err == nil {
			var im *v1.IndexManifest
			if im, err = idx.IndexManifest(); err == nil {
				at.referrers = im.Manifests
			}
		}
		if err != nil {
			at.err = fmt.Errorf("listing the attachments: %w", err)
			return
		}
		at.signature, at.sigDetail, at.err = s.signature(ctx, ref)
	})
	return at
}

// fill sets the Image fields from labels and annotations.
func (r *record) fill() {
	if r.manifest != nil {
		switch r.manifest.ArtifactType {
		case builder.ArtifactTypeDeb:
			r.Kind = KindPackage
		case builder.ArtifactTypeBinary:
			r.Kind = KindBinary
		}
	}
	if r.Kind.isArtifact() {
		a := r.annotations
		r.Package = &PackageInfo{Name: a[builder.AnnotationPackageName], Version: a[builder.AnnotationPackageVersion],
			Architecture: a[builder.AnnotationPackageArch], Type: a[builder.AnnotationPackageType],
			File: a[builder.AnnotationTitle], Collection: a[builder.AnnotationCollection]}
		if r.Kind == KindBinary {
			r.Package.Name = a[builder.AnnotationTitle]
		}
		if h := a[builder.AnnotationHolds]; h != "" {
			r.Package.Holds = strings.Split(h, ",")
		}
	}
	switch {
	case r.Kind.isArtifact():
	case r.labels[builder.LabelInputs] != "" && r.labels[builder.LabelRecipe] != "":
		r.Kind = KindSailmaker
	case r.labels[base.LabelPackages] != "":
		// Images built on a base by other tools inherit its labels; a
		// base image is only what builder/base makes: every layer from
		// mmdebstrap or the Go toolchain module.
		if l := r.notBaseLayer(); l != "" {
			r.derived = l
		} else if r.labels[base.LabelGoVersion] != "" {
			r.Kind = KindBuilder
		} else {
			r.Kind = KindBase
		}
	}
	if v := r.label(builder.AnnotationCreated); v != "" {
		r.Created = v
	}
	r.Version = r.label(builder.AnnotationVersion)
	r.Commit = r.label(builder.AnnotationRevision)
	r.Source = r.label(builder.AnnotationSource)
	r.BaseName = r.label(builder.AnnotationBaseName)
	r.BaseDigest = r.label(builder.AnnotationBaseDigest)
	r.GoVersion = r.label(builder.LabelGoVersion)
	if r.Kind != KindForeign {
		r.Recipe = r.label(builder.LabelRecipe)
		r.RecipeDigest = r.label(builder.LabelRecipeDigest)
	}
}

// signature says whether ref is signed: missing when there is no cosign
// tag, present when there is one and no verifier, and otherwise what the
// verifier says (with why, when invalid). A verdict is remembered for the
// pair of image and signature manifest digests (neither content can
// change), so the signature's payloads are read and checked once.
func (s *session) signature(ctx context.Context, ref name.Digest) (state, detail string, err error) {
	sigTag := ref.Context().Tag(strings.Replace(ref.DigestStr(), ":", "-", 1) + ".sig")
	desc, err := s.p.Head(ctx, sigTag)
	switch {
	case isNotFound(err):
		return SignatureMissing, "", nil
	case err != nil:
		return "", "", fmt.Errorf("looking for the signature: %w", err)
	case s.a.verifier == nil:
		return SignaturePresent, "", nil
	}
	key := ref.DigestStr() + " " + desc.Digest.String()
	if v, ok := s.a.verdicts.Get(key); ok {
		return v[0], v[1], nil
	}
	err = s.a.verifier.VerifySignature(ctx, ref, s.remote(ctx)...)
	switch {
	case err == nil:
		state = SignatureValid
	case errors.Is(err, ErrSignatureMissing):
		// Deleted between the two reads: not remembered.
		return SignatureMissing, "", nil
	case errors.Is(err, ErrSignatureInvalid):
		state, detail = SignatureInvalid, err.Error()
	default:
		return "", "", fmt.Errorf("verifying the signature: %w", err)
	}
	s.a.verdicts.Add(key, [2]string{state, detail})
	return state, detail, nil
}

// tagRef is a tag to read.
type tagRef struct {
	repo string
	tag  string
}

// repositories lists the repositories in scope: the one named, or the
// catalog's that match the prefixes and the glob pattern.
func (s *session) repositories(ctx context.Context, pattern string) ([]string, error) {
	if pattern != "" && !strings.ContainsAny(pattern, "*?[") {
		if !s.a.inScope(pattern) {
			return nil, nil
		}
		return []string{pattern}, nil
	}
	all, err := s.p.Catalog(ctx, s.a.registry)
	if err != nil {
		return nil, fmt.Errorf("listing the repositories of %s: %w", s.a.registry, err)
	}
	var out []string
	for _, r := range all {
		if !s.a.inScope(r) {
			continue
		}
		if pattern != "" {
			if ok, _ := path.Match(pattern, r); !ok {
				continue
			}
		}
		out = append(out, r)
	}
	sort.Strings(out)
	return out, nil
}

func (a *Auditor) repo(repository string) (name.Repository, error) {
	var opts []name.Option
	if a.registry.Scheme() == "http" {
		opts = append(opts, name.Insecure)
	}
	r, err := name.NewRepository(a.registry.RegistryStr()+"/"+repository, opts...)
	if err != nil {
		return name.Repository{}, fmt.Errorf("%w: repository %q: %v", ErrBadInput, repository, err)
	}
	return r, nil
}

// tags lists the image tags (not bookkeeping tags) of the repositories,
// concurrently. A repository that cannot be listed is a warning.
func (s *session) tags(ctx context.Context, repos []string) ([]tagRef, Warnings, error) {
	var mu sync.Mutex
	var out []tagRef
	var warn Warnings
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(s.a.concurrency)
	for _, rname := range repos {
		repo, err := s.a.repo(rname)
		if err != nil {
			return nil, nil, err
		}
		g.Go(func() error {
			tags, err := s.p.List(gctx, repo)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				if ctx.Err() != nil {
					return ctx.Err()
				}
				if noTags(err) {
					// In the catalog, but no tag: content pushed by
					// digest whose tag was never written (a push that
					// failed before its tags). Nothing to check.
					return nil
				}
				warn = append(warn, Unreadable{Reference: repo.String(), Error: "listing tags: " + err.Error()})
				return nil
			}
			for _, t := range tags {
				if !bookkeeping.MatchString(t) {
					out = append(out, tagRef{repo: rname, tag: t})
				}
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, nil, err
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].repo != out[j].repo {
			return out[i].repo < out[j].repo
		}
		return out[i].tag < out[j].tag
	})
	return out, warn, nil
}

// noTags says whether listing a repository's tags failed because it has
// none: the distribution registry answers NAME_UNKNOWN for a repository
// that holds manifests but no tag.
func noTags(err error) bool {
	var te *transport.Error
	if !errors.As(err, &te) || te.StatusCode != http.StatusNotFound {
		return false
	}
	for _, d := range te.Errors {
		if d.Code == transport.NameUnknownErrorCode {
			return true
		}
	}
	return false
}

// readAll reads every tag, concurrently with the auditor's bound. Tags that
// vanished meanwhile are skipped; tags that could not be read are warnings.
func (s *session) readAll(ctx context.Context, refs []tagRef) ([]*record, Warnings, error) {
	recs := make([]*record, len(refs))
	errs := make([]error, len(refs))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(s.a.concurrency)
	for i, t := range refs {
		repo, err := s.a.repo(t.repo)
		if err != nil {
			return nil, nil, err
		}
		g.Go(func() error {
			recs[i], errs[i] = s.readImage(gctx, repo.Tag(t.tag))
			return nil
		})
	}
	_ = g.Wait()
	if err := ctx.Err(); err != nil {
		return nil, nil, err
	}
	var out []*record
	var warn Warnings
	for i, r := range recs {
		switch {
		case errs[i] == nil:
			out = append(out, r)
		case errors.Is(errs[i], ErrNotFound):
			s.a.log.WithField("tag", refs[i].repo+":"+refs[i].tag).Debug("tag disappeared while auditing")
		default:
			ref := s.a.registry.RegistryStr() + "/" + refs[i].repo + ":" + refs[i].tag
			warn = append(warn, Unreadable{Reference: ref, Error: errs[i].Error()})
		}
	}
	return out, warn, nil
}

// scan lists and reads every image in scope whose repository matches
// pattern (exact name or glob; "" for all).
func (s *session) scan(ctx context.Context, pattern string) ([]*record, Warnings, error) {
	repos, err := s.repositories(ctx, pattern)
	if err != nil {
		return nil, nil, err
	}
	refs, warn, err := s.tags(ctx, repos)
	if err != nil {
		return nil, nil, err
	}
	recs, w2, err := s.readAll(ctx, refs)
	if err != nil {
		return nil, nil, err
	}
	return recs, append(warn, w2...), nil
}

// ParseImage reads an image argument: repository:tag or repository@digest
// in the audited registry, or a full reference naming that registry.
func (a *Auditor) ParseImage(s string) (name.Reference, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return nil, fmt.Errorf("%w: no image named", ErrBadInput)
	}
	full := s
	first, _, hasSlash := strings.Cut(s, "/")
	if !hasSlash || !(first == "localhost" || strings.ContainsAny(first, ".:")) {
		full = a.registry.RegistryStr() + "/" + s
	} else if !strings.EqualFold(first, a.registry.RegistryStr()) {
		return nil, fmt.Errorf("%w: %s is not in the audited registry %s", ErrBadInput, s, a.registry.RegistryStr())
	}
	var opts []name.Option
	if a.registry.Scheme() == "http" {
		opts = append(opts, name.Insecure)
	}
	ref, err := name.ParseReference(full, append(opts, name.StrictValidation)...)
	if err != nil {
		return nil, fmt.Errorf("%w: image %q: %v (want repository:tag or repository@sha256:…)", ErrBadInput, s, err)
	}
	return ref, nil
}
