package publish

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/partial"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"github.com/sirupsen/logrus"
	"golang.org/x/sync/errgroup"

	"github.com/sailmaker/sailmaker/api"
	"github.com/sailmaker/sailmaker/attest"
	"github.com/sailmaker/sailmaker/builder"
	"github.com/sailmaker/sailmaker/registry"
	"github.com/sailmaker/sailmaker/store"
)

// RequiredAttachments are the artifact types every image sailmaker pushes
// has; an image without them is not up to date.
var RequiredAttachments = []string{attest.ProvenanceArtifactType, attest.SBOMArtifactType}

// Registry publishes to the internal registry: every image's content by
// digest, then its attachments (OCI referrers), then its signature and
// signed attestations (cosign's .sig and .att tags), and only when all of
// that is in, the tags. Tags are immutable: one that names another digest
// is refused before anything is pushed, unless forced. With a ledger,
// every tag written is recorded before it is written (an intent) and
// confirmed after.
//
// It is also the builder's cache: Lookup finds images built from the same
// inputs under the recipe's tags.
type Registry struct {
	rc            *registry.Client
	force         bool
	ledger        Ledger
	requireSigned bool
	settleAfter   *time.Duration
	onConfirmed   func(context.Context, []store.Entry)
	log           logrus.FieldLogger
}

// Ledger records tag changes; *store.Store is one.
type Ledger interface {
	Append(ctx context.Context, entries ...store.Entry) error
	Tags(ctx context.Context) (map[string]store.TagState, error)
	PendingIntents(ctx context.Context) ([]store.Entry, error)
}

// RegistryOption configures a Registry publisher.
type RegistryOption func(*Registry) error

// WithForce moves tags that name another digest (recorded as forced).
// Default: such a tag refuses the whole publish.
func WithForce(force bool) RegistryOption {
	return func(r *Registry) error { r.force = force; return nil }
}

// WithLedger records every tag written, moved or refused in l. Default:
// nothing is recorded.
func WithLedger(l Ledger) RegistryOption {
	return func(r *Registry) error {
		if l == nil {
			return errors.New("publish.WithLedger: nil ledger")
		}
		r.ledger = l
		return nil
	}
}

// RequireSigned makes Lookup accept only images whose attestations are
// signed (used when a signing key is configured, so that a build signs
// what an earlier, keyless build attached). Default: unsigned will do.
func RequireSigned(b bool) RegistryOption {
	return func(r *Registry) error { r.requireSigned = b; return nil }
}

// WithLog logs pushes and tag moves to l. Default: the registry client's
// logger.
func WithLog(l logrus.FieldLogger) RegistryOption {
	return func(r *Registry) error { r.log = l; return nil }
}

// NewRegistry makes a publisher for rc's registry.
func NewRegistry(rc *registry.Client, opts ...RegistryOption) (*Registry, error) {
	if rc == nil {
		return nil, errors.New("publish.NewRegistry: nil registry client")
	}
	r := &Registry{rc: rc, log: logrus.StandardLogger()}
	for _, o := range opts {
		if err := o(r); err != nil {
			return nil, err
		}
	}
	return r, nil
}

// Lookup implements builder.Cache: every target's tag exists, names an
// image built from plan.InputsKey, with its provenance and SBOM attached
// (signed, with RequireSigned). For a multi-platform recipe the tag must
// name an image index of exactly the plan's platforms, and each of its
// images must be so; a package or binary (an artifact, of one platform)
// is found as an image is, its inputs key in its manifest's annotations.
func (r *Registry) Lookup(ctx context.Context, plan builder.Plan) ([]builder.Image, bool, error) {
	multi := plan.Recipe != nil && plan.Recipe.Spec.MultiPlatform()
	var out []builder.Image
	for _, t := range plan.Targets {
		desc, err := remote.Get(t.Tag, r.rc.Remote(ctx)...)
		if isNotFound(err) {
			return nil, false, nil
		}
		if err != nil {
			return nil, false, fmt.Errorf("reading %s: %w", t.Tag, err)
		}
		// A multi-platform recipe's images are indexes; its packages and
		// binaries are artifacts, of one platform.
		index := multi && (t.Kind == "" || t.Kind == builder.KindImage)
		if desc.MediaType.IsIndex() != index {
			return nil, false, nil
		}
		if !index {
			im, ok, err := r.lookupImage(ctx, t, desc.Digest, plan.InputsKey)
			if err != nil || !ok {
				return nil, false, err
			}
			out = append(out, im)
			continue
		}
		idx, err := desc.ImageIndex()
		if err != nil {
			return nil, false, err
		}
		m, err := idx.IndexManifest()
		if err != nil {
			return nil, false, err
		}
		if len(m.Manifests) != len(plan.Platforms) {
			return nil, false, nil
		}
		im := builder.Image{Name: t.Name, Kind: t.Kind, Tag: t.Tag, Index: idx, Digest: desc.Digest}
		for i, d := range m.Manifests {
			if d.Platform == nil || !samePlatform(platformString(*d.Platform), plan.Platforms[i]) {
				return nil, false, nil
			}
			child, ok, err := r.lookupImage(ctx, t, d.Digest, plan.InputsKey)
			if err != nil || !ok {
				return nil, false, err
			}
			child.Platform = platformString(*d.Platform)
			im.Manifests = append(im.Manifests, child)
		}
		out = append(out, im)
	}
	return out, true, nil
}

// lookupImage reads the image d of t's repository: it must be built from
// inputsKey and have the required attachments.
func (r *Registry) lookupImage(ctx context.Context, t builder.Target, d v1.Hash, inputsKey string) (builder.Image, bool, error) {
	byDigest := t.Tag.Context().Digest(d.String())
	img, err := r.rc.Image(ctx, byDigest)
	if err != nil {
		return builder.Image{}, false, err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return builder.Image{}, false, err
	}
	if inputsOf(img, cf) != inputsKey {
		return builder.Image{}, false, nil
	}
	have, err := r.rc.Attached(ctx, byDigest)
	if err != nil {
		return builder.Image{}, false, err
	}
	for _, at := range RequiredAttachments {
		desc, ok := have[at]
		if !ok || (r.requireSigned && desc.Annotations[attest.AnnotationSigned] != "true") {
			// Pushed before images were attested (or signed): build
			// again, to the same digest, to attach them.
			return builder.Image{}, false, nil
		}
	}
	return builder.Image{Name: t.Name, Kind: t.Kind, Tag: t.Tag, Image: img, Digest: d, Attached: have}, true, nil
}

// samePlatform compares os/arch[/variant]: a variant on one side only
// does not count.
func samePlatform(a, b string) bool {
	pa, pb := strings.Split(a, "/"), strings.Split(b, "/")
	if len(pa) < 2 || len(pb) < 2 {
		return a == b
	}
	if pa[0] != pb[0] || pa[1] != pb[1] {
		return false
	}
	return len(pa) < 3 || len(pb) < 3 || pa[2] == pb[2]
}

func platformString(p v1.Platform) string {
	s := p.OS + "/" + p.Architecture
	if p.Variant != "" {
		s += "/" + p.Variant
	}
	return s
}

func isNotFound(err error) bool {
	var terr *transport.Error
	return errors.As(err, &terr) && terr.StatusCode == http.StatusNotFound
}

// pushing is one image (or image index) on its way to the registry.
type pushing struct {
	img      builder.Image
	byDigest name.Digest
	result   api.Image
	// unchanged: the tag already names the image; previous: what it
	// named before (a forced move).
	unchanged bool
	previous  *v1.Hash
}

// Publish pushes res's images. Phases: check every tag (refuse moved ones),
// settle intents earlier runs left, push content by digest (an index's
// images, then the index), attach, sign (the images at once), then write
// the tags.
func (r *Registry) Publish(ctx context.Context, res *builder.Result) ([]api.Image, error) {
	imgs := make([]*pushing, len(res.Images))
	for i, im := range res.Images {
		result, err := resultOf(Output{Kind: OutputRegistry}, im, api.StatusPushed)
		if err != nil {
			return nil, err
		}
		imgs[i] = &pushing{img: im, byDigest: im.Tag.Context().Digest(im.Digest.String()), result: result}
	}
	if err := r.checkTags(ctx, res.Trigger, imgs); err != nil {
		return nil, err
	}
	if _, err := r.Reconcile(ctx); err != nil {
		r.log.WithError(err).Warn("could not settle tag writes an earlier run left unconfirmed in the ledger")
	}
	// Each image's content, attachments and signature at once: none of
	// them is tagged until every image is there.
	g, gctx := errgroup.WithContext(ctx)
	for _, p := range imgs {
		g.Go(func() error {
			for _, step := range []func(context.Context, *pushing) error{r.pushContent, r.attach, r.writeTagged} {
				if err := step(gctx, p); err != nil {
					return err
				}
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	var done []api.Image
	for _, p := range imgs {
		if err := r.tag(ctx, res.Trigger, p); err != nil {
			return done, err
		}
		done = append(done, p.result)
	}
	return done, nil
}

// checkTags resolves every tag first: if one names another digest and the
// publish is not forced, nothing is pushed, and the refusal is recorded.
func (r *Registry) checkTags(ctx context.Context, tr api.Trigger, imgs []*pushing) error {
	for _, p := range imgs {
		cur, ok, err := r.rc.Resolve(ctx, p.img.Tag)
		if err != nil {
			return err
		}
		switch {
		case !ok:
		case cur == p.img.Digest:
			p.unchanged = true
			p.result.Status = api.StatusUnchanged
		case !r.force:
			moved := &registry.TagMovedError{Tag: p.img.Tag, Current: cur, New: p.img.Digest}
			if r.ledger != nil {
				e := entry(tr, store.ActionRefused, p.img.Tag, cur.String(), p.img.Digest.String())
				if lerr := r.ledger.Append(context.WithoutCancel(ctx), e); lerr != nil {
					r.log.WithError(lerr).Error("could not record the refused push in the ledger")
				}
			}
			return moved
		default:
			prev := cur
			p.previous = &prev
			p.result.Status, p.result.PreviousDigest = api.StatusMoved, cur.String()
		}
	}
	return nil
}

func (r *Registry) pushContent(ctx context.Context, p *pushing) error {
	if p.unchanged {
		return nil
	}
	for _, u := range p.img.Manifests {
		n, err := r.rc.Write(ctx, p.img.Tag.Context().Digest(u.Digest.String()), u.Image)
		p.result.BytesUploaded += n
		if err != nil {
			return err
		}
	}
	if p.img.Index != nil {
		if err := remote.WriteIndex(p.byDigest, p.img.Index, r.rc.Remote(ctx)...); err != nil {
			return fmt.Errorf("pushing %s: %w", p.byDigest, err)
		}
	} else {
		n, err := r.rc.Write(ctx, p.byDigest, p.img.Image)
		p.result.BytesUploaded += n
		if err != nil {
			return err
		}
	}
	r.log.WithFields(logrus.Fields{"image": p.img.Tag.Context().String(), "digest": p.img.Digest.String()}).Info("pushed")
	return nil
}

// attach writes the attestations of the image (of each image of an index)
// as OCI referrers of it.
func (r *Registry) attach(ctx context.Context, p *pushing) error {
	if p.img.Index == nil {
		found, err := r.attachOne(ctx, p.img)
		if err != nil {
			return err
		}
		p.result.Provenance = found[attest.ProvenanceArtifactType]
		p.result.SBOM = found[attest.SBOMArtifactType]
		return nil
	}
	for i, u := range p.img.Manifests {
		found, err := r.attachOne(ctx, u)
		if err != nil {
			return err
		}
		p.result.Manifests[i].Provenance = found[attest.ProvenanceArtifactType]
		p.result.Manifests[i].SBOM = found[attest.SBOMArtifactType]
	}
	return nil
}

// attachOne writes one image's attestations as OCI referrers, except those
// of an artifact type the image already has (signed, when ours is). Of
// each type, the image keeps the first: its provenance is the build that
// pushed it first. It returns the attachments' digests by artifact type.
func (r *Registry) attachOne(ctx context.Context, im builder.Image) (map[string]string, error) {
	byDigest := im.Tag.Context().Digest(im.Digest.String())
	have := im.Attached
	if len(im.Attestations) > 0 {
		var err error
		if have, err = r.rc.Attached(ctx, byDigest); err != nil {
			return nil, err
		}
	}
	found := map[string]string{}
	for t, d := range have {
		found[t] = d.Digest.String()
	}
	if len(im.Attestations) == 0 {
		return found, nil
	}
	desc, err := partial.Descriptor(im.Image)
	if err != nil {
		return nil, err
	}
	for _, a := range im.Attestations {
		if d, ok := have[a.ArtifactType]; ok && (a.Envelope == nil || d.Annotations[attest.AnnotationSigned] == "true") {
			continue
		}
		art, err := attest.AttachmentOf(*desc, a)
		if err != nil {
			return nil, err
		}
		d, err := art.Digest()
		if err != nil {
			return nil, err
		}
		if err := remote.Write(im.Tag.Context().Digest(d.String()), art, r.rc.Remote(ctx)...); err != nil {
			return nil, fmt.Errorf("pushing the %s of %s: %w", a.Kind, byDigest, err)
		}
		found[a.ArtifactType] = d.String()
		r.log.WithFields(logrus.Fields{"image": byDigest.String(), "artifactType": a.ArtifactType, "digest": d.String()}).Info("attached")
	}
	return found, nil
}

// writeTagged writes the cosign signature and signed attestations of the
// image under their .sig and .att tags, merged with what is there: for an
// index, each of its images' own, and the index's: its signature, and as
// its attestations those of all its images (what `cosign
// verify-attestation` on the tag reads).
func (r *Registry) writeTagged(ctx context.Context, p *pushing) error {
	for i, u := range p.img.Manifests {
		sig, att, err := r.writeTaggedOne(ctx, u, u.Attestations)
		if err != nil {
			return err
		}
		p.result.Manifests[i].Signature, p.result.Manifests[i].Attestations = sig, att
	}
	all := p.img.Attestations
	for _, u := range p.img.Manifests {
		all = append(all, u.Attestations...)
	}
	sig, att, err := r.writeTaggedOne(ctx, p.img, all)
	if err != nil {
		return err
	}
	p.result.Signature, p.result.Attestations = sig, att
	return nil
}

// writeTaggedOne writes im's signature and atts (signed) under im's
// digest's .sig and .att tags, returning what they name.
func (r *Registry) writeTaggedOne(ctx context.Context, im builder.Image, atts []attest.Attestation) (sig, att string, err error) {
	byDigest := im.Tag.Context().Digest(im.Digest.String())
	if im.Signature != nil {
		d, err := attest.WriteTagged(ctx, byDigest, *im.Signature, r.rc.Remote(ctx)...)
		if err != nil {
			return "", "", fmt.Errorf("signing %s: %w", byDigest, err)
		}
		sig = d.String()
	}
	t, err := attest.Attestations(atts)
	if err != nil {
		return "", "", err
	}
	if len(t.Layers) > 0 {
		d, err := attest.WriteTagged(ctx, byDigest, t, r.rc.Remote(ctx)...)
		if err != nil {
			return "", "", fmt.Errorf("writing the signed attestations of %s: %w", byDigest, err)
		}
		att = d.String()
	}
	return sig, att, nil
}

// tag writes the image's tag: the ledger records the intent first, the
// registry is asked, the ledger confirms. If the registry's answer is lost
// (an error, a cancel), the tag is read back to settle the intent.
func (r *Registry) tag(ctx context.Context, tr api.Trigger, p *pushing) error {
	if p.unchanged {
		return r.recordUnchanged(ctx, tr, p)
	}
	old := ""
	if p.previous != nil {
		old = p.previous.String()
	}
	if r.ledger != nil {
		if err := r.ledger.Append(ctx, entry(tr, store.ActionIntent, p.img.Tag, old, p.img.Digest.String())); err != nil {
			return fmt.Errorf("recording in the ledger before tagging %s (nothing was tagged): %w", p.img.Tag, err)
		}
	}
	err := remote.Tag(p.img.Tag, taggable(p.img), r.rc.Remote(ctx)...)
	if err != nil {
		err = fmt.Errorf("tagging %s: %w", p.img.Tag, err)
		// The tag may have been written all the same (the answer was lost
		// or the build was cancelled mid-request): look.
		settle, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		cur, ok, rerr := r.rc.Resolve(settle, p.img.Tag)
		switch {
		case rerr != nil:
			return err // the intent stays pending; Reconcile settles it later
		case ok && cur == p.img.Digest:
			r.log.WithField("tag", p.img.Tag.String()).WithError(err).Warn("the registry's answer was an error, but the tag was written")
			err = nil
		case !refused(err):
			// No answer (the connection dropped, the build was cancelled,
			// a gateway gave up): the request may still reach the registry
			// after this read. The intent stays pending, and Reconcile
			// settles it once no request for it can still arrive.
			r.log.WithField("tag", p.img.Tag.String()).WithError(err).Warn("no answer to the tag write and the tag is not there yet: its ledger intent stays pending until it can be settled")
			return err
		default:
			if r.ledger != nil {
				e := entry(tr, store.ActionAbandoned, p.img.Tag, old, p.img.Digest.String())
				e.Note = appendNote(e.Note, "the registry did not take the tag: "+err.Error())
				if lerr := r.ledger.Append(settle, e); lerr != nil {
					r.log.WithError(lerr).Error("could not record an abandoned tag write in the ledger")
				}
			}
			return err
		}
	}
	p.result.Status = api.StatusPushed
	action := store.ActionPush
	if p.previous != nil {
		action = store.ActionForce
		p.result.Status = api.StatusMoved
		r.log.WithFields(logrus.Fields{"tag": p.img.Tag.String(), "digest": p.img.Digest.String(), "previous": old}).Warn("tag moved by --force")
	}
	if r.ledger != nil {
		if lerr := r.ledger.Append(context.WithoutCancel(ctx), entry(tr, action, p.img.Tag, old, p.img.Digest.String())); lerr != nil {
			// The intent is recorded; Reconcile confirms it later.
			r.log.WithError(lerr).WithField("tag", p.img.Tag.String()).Error("the tag is written but its confirmation could not be recorded; the ledger's intent stands for it until the next run confirms it")
		}
	}
	return err
}

// recordUnchanged records a tag that already names the build's image when
// the ledger does not say so (a build interrupted between tagging and
// recording, or images from before the ledger): the build has just checked
// the image is its own.
func (r *Registry) recordUnchanged(ctx context.Context, tr api.Trigger, p *pushing) error {
	if r.ledger == nil {
		return nil
	}
	known, err := r.ledger.Tags(ctx)
	if err != nil {
		return fmt.Errorf("reading the ledger: %w", err)
	}
	if known[p.img.Tag.RepositoryStr()+":"+p.img.Tag.TagStr()].Digest == p.img.Digest.String() {
		return nil
	}
	e := entry(tr, store.ActionPush, p.img.Tag, "", p.img.Digest.String())
	e.Note = appendNote(e.Note, "the tag already named this image: recorded by a later build")
	if err := r.ledger.Append(context.WithoutCancel(ctx), e); err != nil {
		return fmt.Errorf("recording in the ledger: %w", err)
	}
	return nil
}

// refused says whether a failed tag write got the registry's own answer
// (an HTTP error status), so that the tag was not and will not be written.
// Without an answer, or with a gateway's 502 or 504 (a proxy gave up, the
// registry behind it may still act), the request may yet land.
func refused(err error) bool {
	var te *transport.Error
	if !errors.As(err, &te) || te.StatusCode == 0 {
		return false
	}
	return te.StatusCode != http.StatusBadGateway && te.StatusCode != http.StatusGatewayTimeout
}

// DefaultSettleAfter is how old an unconfirmed intent must be before
// Reconcile records it as abandoned when its tag does not name its digest:
// a tag write sent just before its process died (or its answer was lost)
// may still be in flight to the registry.
const DefaultSettleAfter = 5 * time.Minute

// WithSettleAfter sets how old an intent must be before Reconcile
// abandons it. Default DefaultSettleAfter.
func WithSettleAfter(d time.Duration) RegistryOption {
	return func(r *Registry) error {
		if d < 0 {
			return errors.New("publish.WithSettleAfter: negative duration")
		}
		r.settleAfter = &d
		return nil
	}
}

// WithOnConfirmed calls fn with the intents Reconcile confirms (whichever
// publish settles them), so that the builds that meant them can be told:
// the service lists them on those builds' records. Default: nobody is
// told.
func WithOnConfirmed(fn func(context.Context, []store.Entry)) RegistryOption {
	return func(r *Registry) error { r.onConfirmed = fn; return nil }
}

// Reconcile settles intents the ledger holds without an outcome: a tag
// that names the intended digest is confirmed; an intent older than the
// settle time (WithSettleAfter) whose tag names something else, or
// nothing, is abandoned; a younger one stays pending (its write may still
// be on its way). It returns the intents it confirmed.
func (r *Registry) Reconcile(ctx context.Context) ([]store.Entry, error) {
	if r.ledger == nil {
		return nil, nil
	}
	pending, err := r.ledger.PendingIntents(ctx)
	if err != nil {
		return nil, err
	}
	settleAfter := DefaultSettleAfter
	if r.settleAfter != nil {
		settleAfter = *r.settleAfter
	}
	var confirmed []store.Entry
	for _, in := range pending {
		tag, err := r.rc.Tag(in.Repository, in.Tag)
		if err != nil {
			continue // a repository of another registry: not ours to settle
		}
		cur, ok, err := r.rc.Resolve(ctx, tag)
		if err != nil {
			return confirmed, err
		}
		e := in
		e.ID, e.Time = 0, time.Time{}
		switch {
		case ok && cur.String() == in.NewDigest:
			e.Action = store.ActionPush
			if in.OldDigest != "" {
				e.Action = store.ActionForce
			}
			e.Note = appendNote(in.Note, "confirmed later: the tag names the digest the build meant to write")
		case time.Since(in.Time) < settleAfter:
			continue
		default:
			e.Action = store.ActionAbandoned
			e.Note = appendNote(in.Note, "the tag was not written")
		}
		if err := r.ledger.Append(ctx, e); err != nil {
			return confirmed, err
		}
		if e.Action != store.ActionAbandoned {
			confirmed = append(confirmed, e)
		}
	}
	if len(confirmed) > 0 && r.onConfirmed != nil {
		r.onConfirmed(context.WithoutCancel(ctx), confirmed)
	}
	return confirmed, nil
}

func entry(tr api.Trigger, action string, tag name.Tag, old, new string) store.Entry {
	e := store.Entry{Actor: tr.Actor, BuildID: tr.BuildID, Action: action,
		Repository: tag.RepositoryStr(), Tag: tag.TagStr(), OldDigest: old, NewDigest: new}
	if tr.DeliveryID != "" {
		e.Note = "delivery " + tr.DeliveryID
	}
	return e
}

func appendNote(note, more string) string {
	if note == "" {
		return more
	}
	return note + "; " + more
}
