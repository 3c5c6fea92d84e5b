package builder

import (
	"context"
	"errors"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/moby/buildkit/client"
	"github.com/sirupsen/logrus"

	"github.com/sailmaker/sailmaker/api"
	"github.com/sailmaker/sailmaker/attest"
	"github.com/sailmaker/sailmaker/config"
	"github.com/sailmaker/sailmaker/recipes"
	"github.com/sailmaker/sailmaker/registry"
)

// ErrNotReproducible is returned by Request.CheckReproducible when two
// builds differ.
var ErrNotReproducible = errors.New("the two builds gave different images")

// Builder turns recipes into images and their attestations. It pushes
// nothing: a publisher (package publish) puts the Result somewhere.
type Builder struct {
	cfg      *config.Config
	reg      *registry.Client
	bk       *client.Client
	progress Progress
	log      logrus.FieldLogger
	cache    Cache
	policy   *config.InputPolicy
	worker   string
	cacheRef string
}

// Option configures a Builder.
type Option func(*Builder) error

// WithBuildKit builds with an open BuildKit client (the caller closes it).
// Default: each build dials the configured buildkitd first, before it
// fetches anything, and closes it at the end.
func WithBuildKit(c *client.Client) Option {
	return func(b *Builder) error {
		if c == nil {
			return errors.New("builder.WithBuildKit: nil client")
		}
		b.bk = c
		return nil
	}
}

// WithProgress shows BuildKit's progress. Default: none shown.
func WithProgress(p Progress) Option {
	return func(b *Builder) error { b.progress = p; return nil }
}

// WithLogger sets the logger. Default: a logger that discards.
func WithLogger(l logrus.FieldLogger) Option {
	return func(b *Builder) error {
		if l == nil {
			return errors.New("builder.WithLogger: nil logger")
		}
		b.log = l
		return nil
	}
}

// WithCache looks images up in c before solving: when c has them, built
// from the same inputs, nothing is built. Default: no cache, every build
// solves.
func WithCache(c Cache) Option {
	return func(b *Builder) error { b.cache = c; return nil }
}

// WithInputPolicy limits where the recipes' source and artifacts may come
// from (the service's server.inputs), and leaves the checksums of
// downloaded content out of errors, for callers who may not read it.
// Default: no limit beyond the recipe's validation (the local CLI).
func WithInputPolicy(p config.InputPolicy) Option {
	return func(b *Builder) error { b.policy = &p; return nil }
}

// WithWorker names the pool worker the BuildKit client leads to; the
// provenance's builder id names it. Default: none (a local buildkitd).
func WithWorker(name string) Option {
	return func(b *Builder) error { b.worker = name; return nil }
}

// WithRegistryCache imports BuildKit's cache of the compile from ref, and
// exports it there after (type=registry, mode=max), so a worker that never
// built the recipe's line reuses another's work. Default: no registry cache.
func WithRegistryCache(ref string) Option {
	return func(b *Builder) error { b.cacheRef = ref; return nil }
}

// New makes a Builder. cfg says where buildkitd, the caches and the state
// are; reg reads the builder and base images from the internal registry.
func New(cfg *config.Config, reg *registry.Client, opts ...Option) (*Builder, error) {
	if cfg == nil || reg == nil {
		return nil, errors.New("builder.New: a config and a registry client are required")
	}
	quiet := logrus.New()
	quiet.SetOutput(discard{})
	b := &Builder{cfg: cfg, reg: reg, log: quiet}
	for _, o := range opts {
		if err := o(b); err != nil {
			return nil, err
		}
	}
	return b, nil
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }

// Request is one build of a recipe.
type Request struct {
	// Trigger says who or what asked for the build (ledger, provenance).
	Trigger api.Trigger
	// EnvoyFile replaces the download of the Envoy artifact; EnvoySHA256
	// replaces the recipe's pinned checksum (both are recorded).
	EnvoyFile   string
	EnvoySHA256 string
	// EnvoyByArch are EnvoyFile and EnvoySHA256 for other architectures'
	// tarballs (arm64), by TARGET_ARCH.
	EnvoyByArch map[string]EnvoyOverride
	// Platforms, if set, builds only these of the recipe's platforms
	// (os/arch). A multi-platform recipe still gives an image index, of
	// these platforms only.
	Platforms []string
	// NoCache builds even when the cache has the images, runs every
	// validation program again (no memo is taken), reads every make
	// result out of BuildKit and writes every layer again (nothing the
	// last build left in the work folder is taken).
	NoCache bool
	// CheckReproducible builds twice, the second time with no BuildKit
	// cache, and fails unless the image digests are equal.
	CheckReproducible bool
	// OnPhase, if set, is called as the build enters each phase.
	OnPhase func(api.Phase)
}

// Result is what a build made: images with their attestations, not yet
// published.
type Result struct {
	RecipeID     string
	RecipeDigest string
	Commit       string
	// InputsKey identifies everything that decides the images' content.
	InputsKey string
	Trigger   api.Trigger
	Images    []Image
	// UpToDate is true when the cache had every image from the same
	// inputs: nothing was built, the images are the cache's.
	UpToDate bool
	// Reproducible is set by Request.CheckReproducible.
	Reproducible *bool
	// Timings has fetch, solve and assemble; publishers add the rest.
	Timings api.Timings

	// cleanup lets another build write over the files the images'
	// layers are read from.
	cleanup func()
}

// Close gives the work folder the images' layers are read from back to
// the next build: call it once the result is published.
func (r *Result) Close() {
	if r != nil && r.cleanup != nil {
		r.cleanup()
		r.cleanup = nil
	}
}

// Image is one image of a recipe: where it goes and what it is. A recipe
// built for several platforms gives an image index: Index is set (Image is
// nil) and Manifests are its images, one per platform, each with its own
// attestations and signature; Digest is the index's.
type Image struct {
	// Name is the image's name in the recipe.
	Name string
	// Kind is what it is: KindImage (also when empty), KindPackage (a
	// Debian package as an OCI artifact) or KindBinary (a program as an
	// OCI artifact). Packages and binaries are v1.Images too: every
	// publisher handles them as images, except where a format holds only
	// images (a docker archive).
	Kind string
	// Tag is where the recipe wants it in the internal registry.
	Tag name.Tag
	// Image is the image. For an image found in the cache it reads from
	// the registry.
	Image  v1.Image
	Digest v1.Hash
	// Index is the image index of a multi-platform image, Manifests its
	// images in index order (each with Platform set).
	Index     v1.ImageIndex
	Manifests []Image
	// Platform is the os/arch[/variant] of one image of an index.
	Platform string
	// Attestations are what the build says about the image (provenance,
	// SBOM), to attach to it; none for an image found in the cache.
	Attestations []attest.Attestation
	// Attached are attachments the image already has, by artifact type
	// (an image found in the cache).
	Attached map[string]v1.Descriptor
	// Signature is the image's cosign signature, when a signing publisher
	// made one.
	Signature *attest.Tagged
}

// Cache finds images a build would make, built before from the same inputs.
type Cache interface {
	// Lookup returns the images of plan when every one of them is there,
	// built from plan.InputsKey and attested; ok is false otherwise.
	Lookup(ctx context.Context, plan Plan) (images []Image, ok bool, err error)
}

// Plan is what a build is about to make, once its inputs are known.
type Plan struct {
	Recipe    *recipes.Recipe
	InputsKey string
	// Targets are the recipe's images with their tags, in recipe order,
	// then its packages' artifacts.
	Targets []Target
	// Platforms are the platforms built (os/arch): a multi-platform
	// recipe's tags name indexes of exactly these.
	Platforms []string
}

// Target is one image (or package, or binary) a build makes and its tag.
type Target struct {
	Name string
	Tag  name.Tag
	// Kind is as Image.Kind.
	Kind string
}

// Clone returns a copy of r whose Images can be changed without changing
// r's (wrappers return new results, as mutate returns new images).
func (r *Result) Clone() *Result {
	c := *r
	c.cleanup = nil // the original owns the files
	c.Images = cloneImages(r.Images)
	return &c
}

func cloneImages(in []Image) []Image {
	if in == nil {
		return nil
	}
	out := append([]Image(nil), in...)
	for i := range out {
		out[i].Attestations = append([]attest.Attestation(nil), in[i].Attestations...)
		out[i].Manifests = cloneImages(in[i].Manifests)
	}
	return out
}

// IsIndex says whether im is an image index (a multi-platform image).
func (im Image) IsIndex() bool { return im.Index != nil }

// Platforms are the os/arch of im's images: one per manifest of an index.
func (im Image) Platforms() []string {
	if im.Index != nil {
		out := make([]string, len(im.Manifests))
		for i, m := range im.Manifests {
			out[i] = m.Platform
		}
		return out
	}
	if im.Platform != "" {
		return []string{im.Platform}
	}
	if im.Image == nil {
		return nil
	}
	cf, err := im.Image.ConfigFile()
	if err != nil || cf.OS == "" {
		return nil
	}
	return []string{platformOf(cf)}
}

// All is im's images and index, in the order a registry takes them: an
// index's images first, then the index; a single image alone.
func (im Image) All() []Image {
	if im.Index == nil {
		return []Image{im}
	}
	return append(append([]Image(nil), im.Manifests...), im)
}
