package builder

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
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

	"github.com/sailmaker/sailmaker/api"
	"github.com/sailmaker/sailmaker/builder/base"
	"github.com/sailmaker/sailmaker/recipes"
	"github.com/sailmaker/sailmaker/registry"
)

// Build fetches and verifies the inputs of r, compiles in BuildKit with no
// network, assembles the images and makes their attestations. It reads
// the internal registry (builder and base images, the cache) but writes
// nothing to it.
func (b *Builder) Build(ctx context.Context, r *recipes.Recipe, req Request) (*Result, error) {
	run := &buildRun{Builder: b, recipe: r, req: req, start: time.Now(),
		log: b.log.WithField("recipe", r.ID())}
	if run.req.Trigger.Time.IsZero() {
		run.req.Trigger.Time = run.start
	}
	run.res = &Result{RecipeID: r.ID(), RecipeDigest: r.Digest(), Trigger: run.req.Trigger}
	defer run.close()
	ok := false
	defer func() {
		if !ok {
			run.removeWork()
		}
	}()
	for _, phase := range []func(context.Context) error{
		run.connect, // BuildKit answers, before anything is downloaded
		run.resolve, // the builder and base images, by digest
		run.fetch,   // source, modules, Envoy: fetched and verified
		run.lookup,  // the cache may already have the images
		run.compile, // upstream's make targets in BuildKit, images assembled
		run.attest,  // provenance and SBOM for each image
	} {
		if run.done {
			break
		}
		if err := phase(ctx); err != nil {
			return run.failed(err)
		}
	}
	run.res.Timings.Total = time.Since(run.start)
	// The images' layers are files in the work directory: the caller
	// removes it with Result.Close once they are published.
	work := run.work
	run.res.cleanup = func() { os.RemoveAll(work) }
	ok = true
	return run.res, nil
}

// buildRun is one Build in progress.
type buildRun struct {
	*Builder
	recipe *recipes.Recipe
	req    Request
	start  time.Time
	log    logrus.FieldLogger
	res    *Result
	// done is set by a phase that finished the build early (cache hit).
	done bool

	bk        *client.Client
	closeBK   func()
	buildKit  string // buildkitd's version, for the provenance
	toolchain *toolchain
	bases     map[string]BaseImage
	inputs    *Inputs
	targets   []Target
	assembled []assembled
	work      string
}

// toolchain is the builder image resolved to its digest.
type toolchain struct {
	ref    string // by digest
	digest v1.Hash
	env    []string
}

func (run *buildRun) phase(p api.Phase) {
	if run.req.OnPhase != nil {
		run.req.OnPhase(p)
	}
}

func (run *buildRun) close() {
	if run.closeBK != nil {
		run.closeBK()
	}
}

func (run *buildRun) removeWork() {
	if run.work != "" {
		os.RemoveAll(run.work)
	}
}

// failed returns err, keeping the reproducibility verdict of a result that
// got that far.
func (run *buildRun) failed(err error) (*Result, error) {
	if run.res.Reproducible != nil {
		return run.res, err
	}
	return nil, err
}

func (run *buildRun) connect(ctx context.Context) error {
	run.phase(api.PhaseFetching)
	run.bk = run.Builder.bk
	if run.bk == nil {
		c, err := Connect(ctx, run.cfg)
		if err != nil {
			return err
		}
		run.bk, run.closeBK = c, func() { c.Close() }
	}
	if info, err := run.bk.Info(ctx); err != nil {
		run.log.WithError(err).Warn("could not ask buildkitd for its version; the provenance will not name it")
	} else {
		run.buildKit = info.BuildkitVersion.Version
	}
	return nil
}

func (run *buildRun) resolve(ctx context.Context) error {
	r, rc := run.recipe, run.reg
	ref, err := rc.ParseRef(r.Spec.Toolchain.Builder)
	if err != nil {
		return fmt.Errorf("toolchain.builder: %w", err)
	}
	img, d, err := resolveImage(ctx, rc, ref, "the builder image")
	if err != nil {
		return err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return err
	}
	if v := cf.Config.Labels[base.LabelGoVersion]; v != r.Spec.Toolchain.Go {
		return fmt.Errorf("the builder image %s has Go %q, the recipe says toolchain.go %s", ref, v, r.Spec.Toolchain.Go)
	}
	run.toolchain = &toolchain{ref: ref.Context().Digest(d.String()).String(), digest: d, env: cf.Config.Env}
	run.bases = map[string]BaseImage{}
	for _, im := range r.Spec.Images {
		if _, ok := run.bases[im.Base]; ok {
			continue
		}
		ref, err := rc.ParseRef(im.Base)
		if err != nil {
			return fmt.Errorf("image %s: base: %w", im.Name, err)
		}
		bi, d, err := resolveImage(ctx, rc, ref, "the base image")
		if err != nil {
			return err
		}
		run.bases[im.Base] = BaseImage{Ref: im.Base, Digest: d, Image: bi}
	}
	for _, im := range r.Spec.Images {
		tag, err := rc.Tag(im.Repository, im.Tag)
		if err != nil {
			return fmt.Errorf("image %s: %w", im.Name, err)
		}
		run.targets = append(run.targets, Target{Name: im.Name, Tag: tag, Kind: KindImage})
	}
	pkgs, err := packageTargets(rc, r)
	if err != nil {
		return err
	}
	run.targets = append(run.targets, pkgs...)
	return nil
}

func (run *buildRun) fetch(ctx context.Context) error {
	t := time.Now()
	in, err := FetchInputs(ctx, run.recipe, InputOptions{Config: run.cfg, EnvoyFile: run.req.EnvoyFile, EnvoySHA256: run.req.EnvoySHA256, Log: run.log,
		Policy: run.policy, HideChecksums: run.policy != nil})
	if err != nil {
		return err
	}
	run.inputs = in
	run.res.Timings.Fetch = time.Since(t)
	run.res.Commit = in.Commit
	run.res.InputsKey = packagesKey(run.recipe, inputsKey(run.res.RecipeDigest, in, run.toolchain.digest, run.bases))
	return nil
}

func (run *buildRun) lookup(ctx context.Context) error {
	if run.cache == nil || run.req.NoCache || run.req.CheckReproducible {
		return nil
	}
	images, ok, err := run.cache.Lookup(ctx, Plan{Recipe: run.recipe, InputsKey: run.res.InputsKey, Targets: run.targets})
	if err != nil || !ok {
		return err
	}
	run.log.Info("the registry already has these images from the same recipe and inputs: nothing to build")
	run.res.UpToDate, run.res.Images, run.done = true, images, true
	return nil
}

func (run *buildRun) compile(ctx context.Context) error {
	run.phase(api.PhaseBuilding)
	tmp := filepath.Join(run.cfg.StateDir, "tmp")
	if err := os.MkdirAll(tmp, 0o755); err != nil {
		return err
	}
	work, err := os.MkdirTemp(tmp, "build-")
	if err != nil {
		return err
	}
	run.work = work
	spec := run.compileSpec()
	if run.assembled, err = run.compileAndAssemble(ctx, spec, filepath.Join(work, "a"), &run.res.Timings); err != nil {
		return err
	}
	if run.req.CheckReproducible {
		return run.checkReproducible(ctx, spec)
	}
	return nil
}

func (run *buildRun) compileSpec() CompileSpec {
	return CompileSpec{
		Recipe:     run.recipe,
		Inputs:     run.inputs,
		Builder:    run.toolchain.ref,
		BuilderEnv: run.toolchain.env,
		CacheID:    "sailmaker-gocache-" + run.toolchain.digest.Hex[:16],
	}
}

// checkReproducible builds again with a fresh Go build cache and no
// BuildKit cache, and compares the image digests.
func (run *buildRun) checkReproducible(ctx context.Context, spec CompileSpec) error {
	run.log.Info("building a second time with no cache, to check reproducibility")
	spec.CacheID = fmt.Sprintf("sailmaker-gocache-check-%d", time.Now().UnixNano())
	spec.NoCache = true
	var t api.Timings
	second, err := run.compileAndAssemble(ctx, spec, filepath.Join(run.work, "b"), &t)
	if err != nil {
		return fmt.Errorf("second build: %w", err)
	}
	same := true
	for i := range run.assembled {
		d1, _ := run.assembled[i].image.Digest()
		d2, _ := second[i].image.Digest()
		if d1 != d2 {
			same = false
			run.log.WithFields(logrus.Fields{"image": run.targets[i].Name, "first": d1.String(), "second": d2.String()}).Error("not reproducible")
		}
	}
	run.res.Reproducible = &same
	if !same {
		return ErrNotReproducible
	}
	run.log.Info("reproducible: both builds gave the same digests")
	return nil
}

func (run *buildRun) attest(ctx context.Context) error {
	att := &attestation{
		recipe: run.recipe, trigger: run.req.Trigger, buildKit: run.buildKit,
		invocationID: run.req.Trigger.BuildID, started: run.start, log: run.log,
		prov: run.provenance(), worker: run.worker,
	}
	if att.invocationID == "" {
		att.invocationID = uuid.NewString()
	}
	finished := time.Now()
	for i, im := range run.recipe.Spec.Images {
		a := run.assembled[i]
		d, err := a.image.Digest()
		if err != nil {
			return err
		}
		docs, err := att.documents(im, run.targets[i].Tag, run.bases[im.Base], a, finished)
		if err != nil {
			return err
		}
		run.res.Images = append(run.res.Images, Image{Name: im.Name, Kind: KindImage, Tag: run.targets[i].Tag, Image: a.image, Digest: d, Attestations: docs})
	}
	for i := len(run.recipe.Spec.Images); i < len(run.assembled); i++ {
		a, t := run.assembled[i], run.targets[i]
		d, err := a.image.Digest()
		if err != nil {
			return err
		}
		docs, err := att.packageDocuments(t, a, finished)
		if err != nil {
			return err
		}
		run.res.Images = append(run.res.Images, Image{Name: t.Name, Kind: t.Kind, Tag: t.Tag, Image: a.image, Digest: d, Attestations: docs})
	}
	return nil
}

// provenance is what the labels and the provenance record of every image.
func (run *buildRun) provenance() Provenance {
	r, in := run.recipe, run.inputs
	return Provenance{
		RecipeID:      r.ID(),
		RecipeDigest:  run.res.RecipeDigest,
		SourceURL:     r.Spec.Source.Git,
		Tag:           r.Spec.Source.Tag,
		Commit:        in.Commit,
		Version:       versionOf(r),
		Created:       time.Unix(in.CommitTime, 0).UTC(),
		Builder:       r.Spec.Toolchain.Builder,
		BuilderDigest: run.toolchain.digest.String(),
		GoVersion:     r.Spec.Toolchain.Go,
		EnvoySHA256:   in.EnvoySHA256,
		EnvoyURL:      in.EnvoyURL,
		ProxySHA:      in.ProxySHA,
		EnvoyOverride: run.req.EnvoySHA256 != "" || run.req.EnvoyFile != "",
		MakeTargets:   r.Spec.Make.Targets,
		InputsKey:     run.res.InputsKey,
	}
}

// compileAndAssemble solves the compile step and lays out the images in
// work, recording solve and assemble times in tm.
func (run *buildRun) compileAndAssemble(ctx context.Context, spec CompileSpec, work string, tm *api.Timings) ([]assembled, error) {
	outDir := filepath.Join(work, "out")
	if err := os.MkdirAll(outDir, 0o755); err != nil {
		return nil, err
	}
	mounts, err := compileMounts(run.inputs)
	if err != nil {
		return nil, err
	}
	t := time.Now()
	tail := &logTail{max: 64 << 10}
	p := run.progress
	if p.Log != nil {
		p.Log = io.MultiWriter(p.Log, tail)
	} else {
		p.Log = tail
	}
	imports, exports := registryCache(run.cacheRef)
	_, err = Solve(ctx, run.bk, CompileState(spec), client.SolveOpt{
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
	prov := run.provenance()
	var images []assembled
	for _, img := range run.recipe.Spec.Images {
		out, err := Assemble(img, run.bases[img.Base], prov, outDir, run.inputs.EnvoyDir, work)
		if err != nil {
			return nil, err
		}
		bins, err := goBinaries(img, outDir, run.inputs.EnvoyDir, prov.Version)
		if err != nil {
			return nil, err
		}
		images = append(images, assembled{image: out, binaries: bins})
	}
	pkgs, err := run.makePackages(ctx, outDir, work, prov)
	if err != nil {
		return nil, err
	}
	images = append(images, pkgs...)
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

func versionOf(r *recipes.Recipe) string {
	if v := r.Spec.Make.Variables["VERSION"]; v != "" {
		return v
	}
	return r.Metadata.Version
}
