package builder

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/uuid"
	"github.com/moby/buildkit/client"
	"github.com/sirupsen/logrus"

	"github.com/sailmaker/sailmaker/attest"
	"github.com/sailmaker/sailmaker/builder/base"
	"github.com/sailmaker/sailmaker/config"
	"github.com/sailmaker/sailmaker/recipes"
	"github.com/sailmaker/sailmaker/registry"
	"github.com/sailmaker/sailmaker/store"
)

// ErrNotReproducible is returned by --check-reproducible when two builds differ.
var ErrNotReproducible = errors.New("the two builds gave different images")

// Options configure one build.
type Options struct {
	Config   *config.Config
	Registry *registry.Client
	// BuildKit is an open client; nil connects to Config.BuildKit.Address.
	BuildKit *client.Client
	Progress Progress
	Log      logrus.FieldLogger
	// EnvoyFile replaces the download of the Envoy artifact; EnvoySHA256
	// replaces the recipe's pinned checksum (both are recorded).
	EnvoyFile   string
	EnvoySHA256 string
	// Force moves tags that point elsewhere, and rebuilds even when the
	// registry already has images from the same inputs.
	Force bool
	// CheckReproducible builds twice, the second time with no cache, and
	// fails unless the image digests are equal.
	CheckReproducible bool
	// Trigger says who or what asked for the build; it is recorded in the
	// ledger and the provenance.
	Trigger Trigger
	// OnPhase, if set, is called as the build enters each phase.
	OnPhase func(Phase)
	// Ledger, if set, records every tag the build creates, moves or is
	// refused.
	Ledger Ledger
	// Worker names the pool worker BuildKit runs on (the service's); it is
	// recorded in the provenance's builder id.
	Worker string
	// CacheRef, if set, is a registry reference BuildKit exports the
	// compile's cache to and imports it from (see registryCache).
	CacheRef string
}

// Trigger is who or what started a build.
type Trigger struct {
	// Actor is a user or token name, "ci" for the webhook, or the local user
	// for the CLI.
	Actor string `json:"actor"`
	// Kind is how: cli, api or webhook.
	Kind string `json:"kind"`
	// DeliveryID is the webhook delivery that queued the build.
	DeliveryID string `json:"deliveryId,omitempty"`
	// BuildID is the service's build id.
	BuildID string `json:"buildId,omitempty"`
	// Time is when the build was asked for.
	Time time.Time `json:"time"`
}

// Phase is a step of a build.
type Phase string

// The phases of a build, in order.
const (
	PhaseFetching Phase = "fetching"
	PhaseBuilding Phase = "building"
	PhasePushing  Phase = "pushing"
)

// Ledger records tag changes; *store.Store is one.
type Ledger interface {
	Append(ctx context.Context, entries ...store.Entry) error
	Tags(ctx context.Context) (map[string]store.TagState, error)
}

// ImageResult is one image of a build.
type ImageResult struct {
	Name string
	registry.Pushed
	// Provenance, SBOM and Signature are the digests of the image's
	// provenance and SBOM attachments and of its signature manifest
	// (empty when not signed).
	Provenance string `json:"provenance,omitempty"`
	SBOM       string `json:"sbom,omitempty"`
	Signature  string `json:"signature,omitempty"`
}

// Timings split a build's wall time into phases.
type Timings struct {
	Fetch    time.Duration `json:"fetch"`
	Solve    time.Duration `json:"solve"`
	Assemble time.Duration `json:"assemble"`
	Push     time.Duration `json:"push"`
	Total    time.Duration `json:"total"`
}

// Result is what a build did.
type Result struct {
	RecipeID     string
	RecipeDigest string
	Commit       string
	InputsKey    string
	Images       []ImageResult
	// UpToDate is true when the registry already had images built from the
	// same inputs: nothing was built or pushed.
	UpToDate bool
	// Reproducible is set by CheckReproducible.
	Reproducible *bool
	Timings      Timings
}

// Build fetches and verifies the inputs of r, compiles in BuildKit with no
// network, assembles the images and pushes them.
func Build(ctx context.Context, r *recipes.Recipe, o Options) (*Result, error) {
	start := time.Now()
	if o.Log == nil {
		o.Log = logrus.StandardLogger()
	}
	log := o.Log.WithField("recipe", r.ID())
	res := &Result{RecipeID: r.ID(), RecipeDigest: r.Digest()}
	rc := o.Registry
	var signKey *attest.Key
	if o.Config.Signing.Key != "" {
		var err error
		if signKey, err = attest.LoadKey(o.Config.Signing.Key); err != nil {
			return nil, fmt.Errorf("signing.key: %w", err)
		}
	}
	if o.Trigger.Time.IsZero() {
		o.Trigger.Time = start
	}
	phase := func(p Phase) {
		if o.OnPhase != nil {
			o.OnPhase(p)
		}
	}
	phase(PhaseFetching)

	// Everything the build stands on, by digest, before any work.
	builderRef, err := rc.ParseRef(r.Spec.Toolchain.Builder)
	if err != nil {
		return nil, fmt.Errorf("toolchain.builder: %w", err)
	}
	builderImg, builderDigest, err := resolveImage(ctx, rc, builderRef, "the builder image")
	if err != nil {
		return nil, err
	}
	bcf, err := builderImg.ConfigFile()
	if err != nil {
		return nil, err
	}
	if v := bcf.Config.Labels[base.LabelGoVersion]; v != r.Spec.Toolchain.Go {
		return nil, fmt.Errorf("the builder image %s has Go %q, the recipe says toolchain.go %s", builderRef, v, r.Spec.Toolchain.Go)
	}
	bases := map[string]BaseImage{}
	for _, img := range r.Spec.Images {
		if _, ok := bases[img.Base]; ok {
			continue
		}
		ref, err := rc.ParseRef(img.Base)
		if err != nil {
			return nil, fmt.Errorf("image %s: base: %w", img.Name, err)
		}
		bi, d, err := resolveImage(ctx, rc, ref, "the base image")
		if err != nil {
			return nil, err
		}
		bases[img.Base] = BaseImage{Ref: img.Base, Digest: d, Image: bi}
	}

	t := time.Now()
	in, err := FetchInputs(ctx, r, InputOptions{Config: o.Config, EnvoyFile: o.EnvoyFile, EnvoySHA256: o.EnvoySHA256, Log: log})
	if err != nil {
		return nil, err
	}
	res.Timings.Fetch = time.Since(t)
	res.Commit = in.Commit
	res.InputsKey = inputsKey(res.RecipeDigest, in, builderDigest, bases)

	var tags []name.Tag
	for _, img := range r.Spec.Images {
		tag, err := rc.Tag(img.Repository, img.Tag)
		if err != nil {
			return nil, fmt.Errorf("image %s: %w", img.Name, err)
		}
		tags = append(tags, tag)
	}
	if !o.Force && !o.CheckReproducible {
		upToDate, images, err := alreadyBuilt(ctx, rc, r, tags, res.InputsKey)
		if err != nil {
			return nil, err
		}
		if upToDate {
			log.Info("the registry already has these images from the same recipe and inputs: nothing to build or push")
			if sign := signer(rc, signKey); sign != nil {
				for i := range images {
					h, err := sign(ctx, images[i].Tag.Context().Digest(images[i].Digest.String()))
					if err != nil {
						return nil, fmt.Errorf("signing %s: %w", images[i].Tag, err)
					}
					images[i].SignatureDigest = &h
					images[i] = withAttachments(images[i])
				}
			}
			res.UpToDate = true
			res.Images = images
			pushed := make([]registry.Pushed, len(images))
			for i := range images {
				pushed[i] = images[i].Pushed
			}
			if err := record(ctx, o, pushed, nil); err != nil {
				return nil, fmt.Errorf("recording in the ledger: %w", err)
			}
			res.Timings.Total = time.Since(start)
			return res, nil
		}
	}

	phase(PhaseBuilding)
	if err := os.MkdirAll(filepath.Join(o.Config.StateDir, "tmp"), 0o755); err != nil {
		return nil, err
	}
	work, err := os.MkdirTemp(filepath.Join(o.Config.StateDir, "tmp"), "build-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(work)

	bk := o.BuildKit
	if bk == nil {
		if bk, err = Connect(ctx, o.Config); err != nil {
			return nil, err
		}
		defer bk.Close()
	}
	att := &attestation{recipe: r, trigger: o.Trigger, invocationID: o.Trigger.BuildID, started: start, log: log, worker: o.Worker}
	if att.invocationID == "" {
		att.invocationID = uuid.NewString()
	}
	if info, err := bk.Info(ctx); err != nil {
		log.WithError(err).Warn("could not ask buildkitd for its version; the provenance will not name it")
	} else {
		att.buildKit = info.BuildkitVersion.Version
	}
	spec := CompileSpec{
		Recipe:     r,
		Inputs:     in,
		Builder:    builderRef.Context().Digest(builderDigest.String()).String(),
		BuilderEnv: bcf.Config.Env,
		CacheID:    "sailmaker-gocache-" + builderDigest.Hex[:16],
	}
	prov := Provenance{
		RecipeID:      r.ID(),
		RecipeDigest:  res.RecipeDigest,
		SourceURL:     r.Spec.Source.Git,
		Tag:           r.Spec.Source.Tag,
		Commit:        in.Commit,
		Version:       versionOf(r),
		Created:       time.Unix(in.CommitTime, 0).UTC(),
		Builder:       r.Spec.Toolchain.Builder,
		BuilderDigest: builderDigest.String(),
		GoVersion:     r.Spec.Toolchain.Go,
		EnvoySHA256:   in.EnvoySHA256,
		EnvoyURL:      in.EnvoyURL,
		ProxySHA:      in.ProxySHA,
		EnvoyOverride: o.EnvoySHA256 != "" || o.EnvoyFile != "",
		MakeTargets:   r.Spec.Make.Targets,
		InputsKey:     res.InputsKey,
	}
	att.prov = prov

	images, err := compileAndAssemble(ctx, bk, spec, r, bases, prov, in, filepath.Join(work, "a"), o, &res.Timings)
	if err != nil {
		return nil, err
	}
	if o.CheckReproducible {
		log.Info("building a second time with no cache, to check reproducibility")
		spec2 := spec
		spec2.CacheID = fmt.Sprintf("sailmaker-gocache-check-%d", time.Now().UnixNano())
		spec2.NoCache = true
		var t2 Timings
		images2, err := compileAndAssemble(ctx, bk, spec2, r, bases, prov, in, filepath.Join(work, "b"), o, &t2)
		if err != nil {
			return nil, fmt.Errorf("second build: %w", err)
		}
		same := true
		for i := range images {
			d1, _ := images[i].image.Digest()
			d2, _ := images2[i].image.Digest()
			if d1 != d2 {
				same = false
				log.WithFields(logrus.Fields{"image": r.Spec.Images[i].Name, "first": d1.String(), "second": d2.String()}).Error("not reproducible")
			}
		}
		res.Reproducible = &same
		if !same {
			return res, ErrNotReproducible
		}
		log.Info("reproducible: both builds gave the same digests")
	}

	phase(PhasePushing)
	t = time.Now()
	pending := make([]registry.Pending, len(images))
	finished := time.Now()
	for i, img := range r.Spec.Images {
		atts, err := att.attachments(img, tags[i], bases[img.Base], images[i], finished)
		if err != nil {
			return nil, err
		}
		pending[i] = registry.Pending{Tag: tags[i], Image: images[i].image, Attachments: atts, Sign: signer(rc, signKey)}
	}
	pushed, err := rc.PushAll(ctx, pending, o.Force)
	if lerr := record(ctx, o, pushed, err); lerr != nil {
		if err == nil {
			err = lerr
		}
		log.WithError(lerr).Error("could not record the push in the ledger")
	}
	if err != nil {
		return nil, err
	}
	res.Timings.Push = time.Since(t)
	for i, p := range pushed {
		res.Images = append(res.Images, withAttachments(ImageResult{Name: r.Spec.Images[i].Name, Pushed: p}))
	}
	res.Timings.Total = time.Since(start)
	return res, nil
}

func compileAndAssemble(ctx context.Context, bk *client.Client, spec CompileSpec, r *recipes.Recipe, bases map[string]BaseImage, prov Provenance, in *Inputs, work string, o Options, tm *Timings) ([]assembled, error) {
	outDir := filepath.Join(work, "out")
	if err := os.MkdirAll(outDir, 0o755); err != nil {
		return nil, err
	}
	mounts, err := compileMounts(in)
	if err != nil {
		return nil, err
	}
	t := time.Now()
	tail := &logTail{max: 64 << 10}
	p := o.Progress
	if p.Log != nil {
		p.Log = io.MultiWriter(p.Log, tail)
	} else {
		p.Log = tail
	}
	imports, exports := registryCache(o.CacheRef)
	_, err = Solve(ctx, bk, CompileState(spec), client.SolveOpt{
		LocalMounts:  mounts,
		Exports:      []client.ExportEntry{{Type: client.ExporterLocal, OutputDir: outDir}},
		CacheImports: imports,
		CacheExports: exports,
	}, p)
	if err != nil {
		if ctx.Err() != nil {
			return nil, fmt.Errorf("build cancelled: %w", ctx.Err())
		}
		return nil, explainFailure(err, tail.String())
	}
	tm.Solve = time.Since(t)

	t = time.Now()
	var images []assembled
	for _, img := range r.Spec.Images {
		out, err := Assemble(img, bases[img.Base], prov, outDir, in.EnvoyDir, work)
		if err != nil {
			return nil, err
		}
		bins, err := goBinaries(img, outDir, in.EnvoyDir, prov.Version)
		if err != nil {
			return nil, err
		}
		images = append(images, assembled{image: out, binaries: bins})
	}
	tm.Assemble = time.Since(t)
	return images, nil
}

func resolveImage(ctx context.Context, rc *registry.Client, ref name.Reference, what string) (v1.Image, v1.Hash, error) {
	d, ok, err := rc.Resolve(ctx, ref)
	if err != nil {
		return nil, v1.Hash{}, err
	}
	if !ok {
		return nil, v1.Hash{}, fmt.Errorf("%s %s is not in the registry: build it with `sailmaker base build`", what, ref)
	}
	img, err := rc.Image(ctx, ref.Context().Digest(d.String()))
	if err != nil {
		return nil, v1.Hash{}, err
	}
	return img, d, nil
}

// inputsKey identifies everything that decides the images' content.
func inputsKey(recipeDigest string, in *Inputs, builder v1.Hash, bases map[string]BaseImage) string {
	h := sha256.New()
	fmt.Fprintln(h, "assembly", assemblyFormatRevision)
	fmt.Fprintln(h, "recipe", recipeDigest)
	fmt.Fprintln(h, "commit", in.Commit)
	fmt.Fprintln(h, "gomod", in.GoSumSHA)
	fmt.Fprintln(h, "envoy", in.EnvoySHA256)
	fmt.Fprintln(h, "builder", builder)
	keys := make([]string, 0, len(bases))
	for k := range bases {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		fmt.Fprintln(h, "base", k, bases[k].Digest)
	}
	return "sha256:" + hex.EncodeToString(h.Sum(nil))
}

// alreadyBuilt reports whether every tag exists, was built from inputs and
// has its provenance and SBOM attached (one referrers call per image).
func alreadyBuilt(ctx context.Context, rc *registry.Client, r *recipes.Recipe, tags []name.Tag, key string) (bool, []ImageResult, error) {
	var out []ImageResult
	for i, tag := range tags {
		d, ok, err := rc.Resolve(ctx, tag)
		if err != nil || !ok {
			return false, nil, err
		}
		img, err := rc.Image(ctx, tag.Context().Digest(d.String()))
		if err != nil {
			return false, nil, err
		}
		cf, err := img.ConfigFile()
		if err != nil {
			return false, nil, err
		}
		if cf.Config.Labels[LabelInputs] != key {
			return false, nil, nil
		}
		have, err := rc.Attached(ctx, tag.Context().Digest(d.String()))
		if err != nil {
			return false, nil, err
		}
		attached := map[string]v1.Hash{}
		for _, t := range requiredAttachments {
			desc, ok := have[t]
			if !ok {
				// Pushed before images were attested: rebuild (to the same
				// digest) to attach them.
				return false, nil, nil
			}
			attached[t] = desc.Digest
		}
		size, _ := registry.ImageSize(img)
		out = append(out, withAttachments(ImageResult{Name: r.Spec.Images[i].Name, Pushed: registry.Pushed{Tag: tag, Digest: d, Size: size, Unchanged: true, Attached: attached}}))
	}
	return true, out, nil
}

func versionOf(r *recipes.Recipe) string {
	if v := r.Spec.Make.Variables["VERSION"]; v != "" {
		return v
	}
	return r.Metadata.Version
}

func record(ctx context.Context, o Options, pushed []registry.Pushed, pushErr error) error {
	return RecordPushes(ctx, o.Ledger, o.Trigger, pushed, pushErr)
}

// RecordPushes appends what a push did, or its refusal, to the ledger l (nil:
// nothing). Unchanged images are recorded only when the ledger does not yet
// say their tag names them: pass them only when the caller knows the image
// is its own.
func RecordPushes(ctx context.Context, l Ledger, tr Trigger, pushed []registry.Pushed, pushErr error) error {
	if l == nil {
		return nil
	}
	base := store.Entry{Actor: tr.Actor, BuildID: tr.BuildID}
	if tr.DeliveryID != "" {
		base.Note = "delivery " + tr.DeliveryID
	}
	var moved *registry.TagMovedError
	if errors.As(pushErr, &moved) {
		e := base
		e.Action, e.Repository, e.Tag = store.ActionRefused, moved.Tag.RepositoryStr(), moved.Tag.TagStr()
		e.OldDigest, e.NewDigest = moved.Current.String(), moved.New.String()
		// A refusal is recorded even though the push failed; use a context
		// that outlives a cancelled build.
		return l.Append(context.WithoutCancel(ctx), e)
	}
	if pushErr != nil {
		return nil
	}
	var entries []store.Entry
	var known map[string]store.TagState
	for _, p := range pushed {
		if p.Unchanged {
			// The tag already names this build's image. If the ledger does
			// not say so (a build interrupted between moving the tag and
			// writing the ledger, or images from before the ledger), the
			// build has just checked that the image is ours: record it.
			if known == nil {
				var err error
				if known, err = l.Tags(ctx); err != nil {
					return err
				}
			}
			if known[p.Tag.RepositoryStr()+":"+p.Tag.TagStr()].Digest == p.Digest.String() {
				continue
			}
			e := base
			e.Action, e.Repository, e.Tag, e.NewDigest = store.ActionPush, p.Tag.RepositoryStr(), p.Tag.TagStr(), p.Digest.String()
			note := "the tag already named this image: recorded by a later build"
			if e.Note != "" {
				note = e.Note + "; " + note
			}
			e.Note = note
			entries = append(entries, e)
			continue
		}
		e := base
		e.Action, e.Repository, e.Tag, e.NewDigest = store.ActionPush, p.Tag.RepositoryStr(), p.Tag.TagStr(), p.Digest.String()
		if p.Previous != nil {
			e.OldDigest = p.Previous.String()
		}
		if p.Forced {
			e.Action = store.ActionForce
		}
		entries = append(entries, e)
	}
	if len(entries) == 0 {
		return nil
	}
	return l.Append(context.WithoutCancel(ctx), entries...)
}
