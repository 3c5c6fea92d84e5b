package registry

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync/atomic"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"github.com/sirupsen/logrus"

	"github.com/sailmaker/sailmaker/config"
)

// ErrTagMoved is returned when a tag already names another digest and the
// push was not forced.
var ErrTagMoved = errors.New("tag already points to a different digest")

// Client pushes to and reads from the internal registries, with credentials
// from the docker keychain (config.json and credential helpers).
type Client struct {
	cfg       *config.Config
	keychain  authn.Keychain
	transport http.RoundTripper
	log       logrus.FieldLogger
}

// Option configures a Client.
type Option func(*Client) error

// WithTransport sets the HTTP transport (tests inject failures or records).
// Default: remote.DefaultTransport.
func WithTransport(t http.RoundTripper) Option {
	return func(c *Client) error {
		if t == nil {
			return errors.New("WithTransport: nil transport")
		}
		c.transport = t
		return nil
	}
}

// WithLogger sets the logger. Default: discard nothing, logrus' standard logger.
func WithLogger(l logrus.FieldLogger) Option {
	return func(c *Client) error { c.log = l; return nil }
}

// NewClient makes a client for the registries cfg allows.
func NewClient(cfg *config.Config, opts ...Option) (*Client, error) {
	c := &Client{cfg: cfg, keychain: authn.DefaultKeychain, transport: remote.DefaultTransport, log: logrus.StandardLogger()}
	for _, o := range opts {
		if err := o(c); err != nil {
			return nil, err
		}
	}
	return c, nil
}

// Config is the configuration the client was made with.
func (c *Client) Config() *config.Config { return c.cfg }

// ParseRef parses an image reference that must be fully qualified and on an
// allowed registry; plain HTTP is used for loopback registries (and the
// configured one when registry.insecure says so).
func (c *Client) ParseRef(s string) (name.Reference, error) {
	if err := CheckRef(s, c.cfg.AllowedRegistries()); err != nil {
		return nil, err
	}
	var opts []name.Option
	ref, err := name.ParseReference(s)
	if err != nil {
		return nil, err
	}
	if c.cfg.RegistryInsecure(ref.Context().RegistryStr()) {
		opts = append(opts, name.Insecure)
	}
	return name.ParseReference(s, opts...)
}

// Tag is ParseRef for <configured registry>/<repo>:<tag>.
func (c *Client) Tag(repo, tag string) (name.Tag, error) {
	ref, err := c.ParseRef(c.cfg.Registry.Address + "/" + repo + ":" + tag)
	if err != nil {
		return name.Tag{}, err
	}
	return ref.(name.Tag), nil
}

// Remote are the go-containerregistry options for ctx.
func (c *Client) Remote(ctx context.Context) []remote.Option {
	return []remote.Option{remote.WithContext(ctx), remote.WithAuthFromKeychain(c.keychain), remote.WithTransport(c.transport)}
}

// Resolve returns the digest ref points to, or ok=false if it does not exist.
func (c *Client) Resolve(ctx context.Context, ref name.Reference) (v1.Hash, bool, error) {
	desc, err := remote.Head(ref, c.Remote(ctx)...)
	if err != nil {
		var terr *transport.Error
		if errors.As(err, &terr) && terr.StatusCode == http.StatusNotFound {
			return v1.Hash{}, false, nil
		}
		return v1.Hash{}, false, fmt.Errorf("resolving %s: %w", ref, explainAuth(err, ref.Context().RegistryStr()))
	}
	return desc.Digest, true, nil
}

// Image reads an image.
func (c *Client) Image(ctx context.Context, ref name.Reference) (v1.Image, error) {
	img, err := remote.Image(ref, c.Remote(ctx)...)
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", ref, explainAuth(err, ref.Context().RegistryStr()))
	}
	return img, nil
}

// TagMovedError is a push refused because the tag names another digest.
// It wraps ErrTagMoved.
type TagMovedError struct {
	Tag          name.Tag
	Current, New v1.Hash
}

func (e *TagMovedError) Error() string {
	return fmt.Sprintf("%s: %s (%s, new build is %s); tags are immutable: pass --force to move it (recorded)", e.Tag, ErrTagMoved, e.Current, e.New)
}

func (e *TagMovedError) Unwrap() error { return ErrTagMoved }

// Pending is an image to be pushed under a tag.
type Pending struct {
	Tag   name.Tag
	Image v1.Image
	// Attachments refer to Image (OCI 1.1 subject): provenance, SBOM. They
	// are written by digest after Image and before any tag. One of an
	// artifact type the image already has (an unchanged image, attested
	// by an earlier build) is not written again.
	Attachments []Attachment
	// Sign, if set, signs the image (by digest) after its content and
	// attachments are in and before any tag is written; it returns the
	// digest of the signature manifest. It is called for unchanged images
	// too, and should do nothing when the signature is already there.
	Sign func(ctx context.Context, image name.Digest) (v1.Hash, error)
}

// Attachment is an artifact manifest whose subject is the pending image.
type Attachment struct {
	ArtifactType string
	Image        v1.Image
}

// Pushed says what a push did for one image.
type Pushed struct {
	Tag      name.Tag
	Digest   v1.Hash
	Size     int64 // manifest, config and layers
	Previous *v1.Hash
	// Unchanged is true when the tag already named this digest: nothing
	// was uploaded.
	Unchanged bool
	// Forced is true when the tag was moved from another digest by force.
	Forced bool
	// BytesUploaded counts blob bytes sent to the registry.
	BytesUploaded int64
	// Attached maps the artifact type of each Pending attachment to the
	// digest of the image's attachment of that type: pushed now, or found
	// in the registry.
	Attached map[string]v1.Hash
	// SignatureDigest is the digest of the signature manifest, when the
	// image was signed.
	SignatureDigest *v1.Hash
}

// PushAll pushes images by digest, then moves their tags. Tags are checked
// first, all of them: if any names a different digest and force is false,
// nothing is pushed and ErrTagMoved is returned. Tags are only written after
// every image's content, attachments and signature are in the registry, so
// a failure leaves no tag pointing at a half-pushed or unattested image.
func (c *Client) PushAll(ctx context.Context, images []Pending, force bool) ([]Pushed, error) {
	out := make([]Pushed, len(images))
	for i, p := range images {
		d, err := p.Image.Digest()
		if err != nil {
			return nil, fmt.Errorf("digest of %s: %w", p.Tag, err)
		}
		size, err := ImageSize(p.Image)
		if err != nil {
			return nil, err
		}
		out[i] = Pushed{Tag: p.Tag, Digest: d, Size: size}
		cur, ok, err := c.Resolve(ctx, p.Tag)
		if err != nil {
			return nil, err
		}
		if !ok {
			continue
		}
		if cur == d {
			out[i].Unchanged = true
			continue
		}
		prev := cur
		out[i].Previous = &prev
		if !force {
			return nil, &TagMovedError{Tag: p.Tag, Current: cur, New: d}
		}
		out[i].Forced = true
	}
	for i, p := range images {
		if out[i].Unchanged {
			continue
		}
		byDigest := p.Tag.Context().Digest(out[i].Digest.String())
		n, err := c.Write(ctx, byDigest, p.Image)
		if err != nil {
			return nil, err
		}
		out[i].BytesUploaded = n
		c.log.WithFields(logrus.Fields{"image": p.Tag.Context().String(), "digest": out[i].Digest.String()}).Info("pushed")
	}
	for i, p := range images {
		if err := c.attach(ctx, p, &out[i]); err != nil {
			return nil, err
		}
	}
	for i, p := range images {
		if out[i].Unchanged {
			continue
		}
		if err := remote.Tag(p.Tag, p.Image, c.Remote(ctx)...); err != nil {
			return nil, fmt.Errorf("tagging %s: %w", p.Tag, explainAuth(err, p.Tag.Context().RegistryStr()))
		}
		fields := logrus.Fields{"tag": p.Tag.String(), "digest": out[i].Digest.String()}
		if out[i].Forced {
			fields["previous"] = out[i].Previous.String()
			c.log.WithFields(fields).Warn("tag moved by --force")
		}
	}
	return out, nil
}

// Write pushes img by digest into ref's repository (blobs the registry
// has, or can mount, are not sent again) and returns the blob bytes that
// went over the wire.
func (c *Client) Write(ctx context.Context, ref name.Digest, img v1.Image) (int64, error) {
	counter := &uploadCounter{base: c.transport}
	opts := append(c.Remote(ctx), remote.WithTransport(counter))
	if err := remote.Write(ref, img, opts...); err != nil {
		return counter.n.Load(), fmt.Errorf("pushing %s: %w", ref, explainAuth(err, ref.Context().RegistryStr()))
	}
	return counter.n.Load(), nil
}

// attach writes p's attachments that the image does not have yet (one
// referrers call), then signs it.
func (c *Client) attach(ctx context.Context, p Pending, out *Pushed) error {
	byDigest := p.Tag.Context().Digest(out.Digest.String())
	if len(p.Attachments) > 0 {
		have, err := c.Attached(ctx, byDigest)
		if err != nil {
			return err
		}
		out.Attached = map[string]v1.Hash{}
		for _, a := range p.Attachments {
			if d, ok := have[a.ArtifactType]; ok {
				out.Attached[a.ArtifactType] = d.Digest
				continue
			}
			d, err := a.Image.Digest()
			if err != nil {
				return fmt.Errorf("digest of the %s attachment of %s: %w", a.ArtifactType, byDigest, err)
			}
			if err := remote.Write(p.Tag.Context().Digest(d.String()), a.Image, c.Remote(ctx)...); err != nil {
				return fmt.Errorf("pushing the %s attachment of %s: %w", a.ArtifactType, byDigest, err)
			}
			out.Attached[a.ArtifactType] = d
			c.log.WithFields(logrus.Fields{"image": byDigest.String(), "artifactType": a.ArtifactType, "digest": d.String()}).Info("attached")
		}
	}
	if p.Sign != nil {
		d, err := p.Sign(ctx, byDigest)
		if err != nil {
			return fmt.Errorf("signing %s: %w", byDigest, err)
		}
		out.SignatureDigest = &d
	}
	return nil
}

// Attached lists the referrers of an image (the OCI referrers API, or the
// sha256-<hex> fallback tag on registries without it) by artifact type.
// Of several of one type, a signed one (annotation dev.sailmaker.signed)
// wins over an unsigned one, then the one created last (annotation
// org.opencontainers.image.created).
func (c *Client) Attached(ctx context.Context, image name.Digest) (map[string]v1.Descriptor, error) {
	idx, err := remote.Referrers(image, c.Remote(ctx)...)
	if err != nil {
		return nil, fmt.Errorf("listing the referrers of %s: %w", image, err)
	}
	im, err := idx.IndexManifest()
	if err != nil {
		return nil, fmt.Errorf("listing the referrers of %s: %w", image, err)
	}
	rank := func(d v1.Descriptor) string {
		signed := "0"
		if d.Annotations["dev.sailmaker.signed"] == "true" {
			signed = "1"
		}
		return signed + d.Annotations["org.opencontainers.image.created"]
	}
	out := map[string]v1.Descriptor{}
	for _, d := range im.Manifests {
		if d.ArtifactType == "" {
			continue
		}
		if cur, ok := out[d.ArtifactType]; ok && rank(cur) > rank(d) {
			continue
		}
		out[d.ArtifactType] = d
	}
	return out, nil
}

// ImageSize is the bytes of an image: manifest, config and layers.
func ImageSize(img v1.Image) (int64, error) {
	m, err := img.Manifest()
	if err != nil {
		return 0, err
	}
	raw, err := img.RawManifest()
	if err != nil {
		return 0, err
	}
	n := int64(len(raw)) + m.Config.Size
	for _, l := range m.Layers {
		n += l.Size
	}
	return n, nil
}

// uploadCounter is a transport that counts the bytes of blob upload bodies.
type uploadCounter struct {
	base http.RoundTripper
	n    atomic.Int64
}

func (u *uploadCounter) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Body != nil && req.Method != http.MethodGet && strings.Contains(req.URL.Path, "/blobs/uploads/") {
		req = req.Clone(req.Context())
		req.Body = &countingBody{ReadCloser: req.Body, n: &u.n}
	}
	return u.base.RoundTrip(req)
}

type countingBody struct {
	io.ReadCloser
	n *atomic.Int64
}

func (b *countingBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	b.n.Add(int64(n))
	return n, err
}
