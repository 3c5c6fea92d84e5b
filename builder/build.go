package builder

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/containerd/containerd/v2/core/content"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/uuid"
	"github.com/moby/buildkit/client"
	"github.com/moby/buildkit/client/llb"
	gateway "github.com/moby/buildkit/frontend/gateway/client"
	"github.com/sirupsen/logrus"
	"golang.org/x/sync/errgroup"

	"github.com/sailmaker/sailmaker/api"
	"github.com/sailmaker/sailmaker/attest"
	"github.com/sailmaker/sailmaker/builder/base"
	"github.com/sailmaker/sailmaker/internal/output"
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
	platforms, err := buildPlatforms(r, req)
	if err != nil {
		return nil, err
	}
	run.platforms = platforms
	defer run.close()
	ok := false
	defer func() {
		if !ok {
			run.releaseWork()
		}
	}()
	for _, phase := range []func(context.Context) error{
		run.connect,  // BuildKit answers, before anything is downloaded
		run.resolve,  // the builder and base images, by digest
		run.fetch,    // source, modules, Envoy: fetched and verified
		run.lookup,   // the cache may already have the images
		run.compile,  // upstream's make targets in BuildKit, images assembled
		run.validate, // the images' binaries run in BuildKit and say what they are
		run.attest,   // provenance and SBOM for each image
	} {
		if run.done {
			break
		}
		if err := phase(ctx); err != nil {
			return run.failed(err)
		}
	}
	run.res.Timings.Total = time.Since(run.start)
	// The images' layers are files in the work folder: the caller gives
	// it back with Result.Close once they are published.
	w := run.workDir
	run.res.cleanup = w.release
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
	native    string // the architecture buildkitd runs without emulation
	toolchain *toolchain
	platforms []platform
	// bases are the base images by reference and platform (baseKey).
	bases  map[string]BaseImage
	inputs *Inputs
	// targets are the recipe's images, then the packages' artifacts.
	targets   []Target
	assembled []assembledImage // one per recipe image
	// pkgs are the recipe's packages this build makes, packages their
	// artifacts (in the same order, after the images in targets).
	pkgs     []builtPackage
	packages []assembled
	// validation is what running the images' binaries found, per image
	// and platform (validationKey).
	validation map[string]*attest.Validation
	// checking is the validation's run: its programs run during the
	// compile, on the make results.
	checking *validationRun
	// workDir is the build's work folder, held until the result is
	// closed.
	workDir *workDir
}

// baseKey is how bases are keyed: reference and platform.
func baseKey(ref string, p platform) string { return ref + " " + p.name }

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

// releaseWork lets another build take the work folder of a build that
// failed.
func (run *buildRun) releaseWork() {
	run.workDir.release()
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
	run.native = run.nativeArch(ctx)
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
		if _, ok := run.bases[baseKey(im.Base, run.platforms[0])]; ok {
			continue
		}
		ref, err := rc.ParseRef(im.Base)
		if err != nil {
			return fmt.Errorf("image %s: base: %w", im.Name, err)
		}
		d, ok, err := rc.Resolve(ctx, ref)
		if err != nil {
			return err
		}
		if !ok {
			return fmt.Errorf("the base image %s is not in the registry: build it with `sailmaker base build`", ref)
		}
		byDigest := ref.Context().Digest(d.String())
		// Each platform's image is built on the base's image for that
		// platform. An image of a multi-platform recipe names that image
		// (by its own digest) as its base; a single-platform recipe's
		// names what the base's reference resolves to, as before
		// platforms existed, so its images keep their digests.
		for _, p := range run.platforms {
			bi, pd, err := base.PlatformImage(ctx, rc, byDigest, p.oci)
			if err != nil {
				return fmt.Errorf("image %s: base: %w", im.Name, err)
			}
			named := d
			if r.Spec.MultiPlatform() {
				named = pd
			}
			run.bases[baseKey(im.Base, p)] = BaseImage{Ref: im.Base, Digest: named, Image: bi, Platform: p.name}
		}
	}
	for _, im := range r.Spec.Images {
		tag, err := rc.Tag(im.Repository, im.Tag)
		if err != nil {
			return fmt.Errorf("image %s: %w", im.Name, err)
		}
		run.targets = append(run.targets, Target{Name: im.Name, Tag: tag, Kind: KindImage})
	}
	var left []string
	run.pkgs, left = builtPackages(r, run.platforms)
	if len(left) > 0 {
		run.log.Warnf("this build makes no %s: packages come from the build of their platform, which is not among the platforms built (%s)",
			strings.Join(left, ", "), strings.Join(run.platformNames(), ", "))
	}
	pkgs, err := packageTargets(rc, r, run.pkgs)
	if err != nil {
		return err
	}
	run.targets = append(run.targets, pkgs...)
	return nil
}

func (run *buildRun) fetch(ctx context.Context) error {
	t := time.Now()
	var arches []string
	for _, p := range run.platforms {
		arches = append(arches, p.arch)
	}
	in, err := FetchInputs(ctx, run.recipe, InputOptions{Config: run.cfg, EnvoyFile: run.req.EnvoyFile, EnvoySHA256: run.req.EnvoySHA256,
		EnvoyByArch: run.req.EnvoyByArch, Arches: arches, Log: run.log, Policy: run.policy, HideChecksums: run.policy != nil})
	if err != nil {
		return err
	}
	run.inputs = in
	run.res.Timings.Fetch = time.Since(t)
	run.res.Commit = in.Commit
	run.res.InputsKey = packagesKey(run.recipe, inputsKey(run.res.RecipeDigest, in, run.toolchain.digest, run.platforms, run.bases, run.recipe.Spec.MultiPlatform()))
	return nil
}

func (run *buildRun) lookup(ctx context.Context) error {
	if run.cache == nil || run.req.NoCache || run.req.CheckReproducible {
		return nil
	}
	images, ok, err := run.cache.Lookup(ctx, Plan{Recipe: run.recipe, InputsKey: run.res.InputsKey, Targets: run.targets, Platforms: run.platformNames()})
	if err != nil || !ok {
		return err
	}
	run.log.Info("the registry already has these images from the same recipe and inputs: nothing to build")
	run.res.UpToDate, run.res.Images, run.done = true, images, true
	return nil
}

func (run *buildRun) compile(ctx context.Context) error {
	run.phase(api.PhaseBuilding)
	w, err := acquireWork(run.cfg.StateDir)
	if err != nil {
		return err
	}
	run.workDir = w
	spec := run.compileSpec()
	run.checking = run.newValidation()
	if run.assembled, run.packages, err = run.compileAndAssemble(ctx, spec, filepath.Join(w.dir, "a"), &run.res.Timings, run.checking, !run.req.NoCache); err != nil {
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
		Platforms:  run.platformNames(),
	}
}

func (run *buildRun) platformNames() []string {
	out := make([]string, len(run.platforms))
	for i, p := range run.platforms {
		out[i] = p.name
	}
	return out
}

// checkReproducible builds again with a fresh Go build cache and no
// BuildKit cache, and compares the image digests.
// The second build's Go build cache is a throw-away cache mount: it is
// removed from buildkitd once the build is over, whether it succeeded,
// failed or was cancelled. Timings.Check is the second build's wall time,
// its removal included.
func (run *buildRun) checkReproducible(ctx context.Context, spec CompileSpec) error {
	start := time.Now()
	run.log.Info("building a second time with no cache, to check reproducibility")
	spec.CacheID = checkCacheIDPrefix + fmt.Sprintf("%d", time.Now().UnixNano())
	spec.NoCache = true
	defer func() {
		run.removeCacheMount(ctx, spec.CacheID)
		run.res.Timings.Check = time.Since(start)
	}()
	var t api.Timings
	second, secondPkgs, err := run.compileAndAssemble(ctx, spec, filepath.Join(run.workDir.dir, "b"), &t, nil, false)
	if err != nil {
		return fmt.Errorf("second build: %w", err)
	}
	same := true
	for i := range run.assembled {
		for j, a := range run.assembled[i].platforms {
			d1, _ := a.image.Digest()
			d2, _ := second[i].platforms[j].image.Digest()
			if d1 != d2 {
				same = false
				run.log.WithFields(logrus.Fields{"image": run.recipe.Spec.Images[i].Name, "platform": a.platform.name, "first": d1.String(), "second": d2.String()}).Error("not reproducible")
			}
		}
		d1, _ := run.assembled[i].digest()
		d2, _ := second[i].digest()
		if d1 != d2 {
			same = false
			run.log.WithFields(logrus.Fields{"image": run.targets[i].Name, "first": d1.String(), "second": d2.String()}).Error("not reproducible")
		}
	}
	for i, a := range run.packages {
		d1, _ := a.image.Digest()
		d2, _ := secondPkgs[i].image.Digest()
		if d1 != d2 {
			same = false
			run.log.WithFields(logrus.Fields{"package": run.targets[len(run.assembled)+i].Name, "first": d1.String(), "second": d2.String()}).Error("not reproducible")
		}
	}
	run.res.Reproducible = &same
	if !same {
		return ErrNotReproducible
	}
	run.log.Info("reproducible: both builds gave the same digests")
	return nil
}

// checkCacheIDPrefix starts the id of --check-reproducible's throw-away
// Go build cache mount.
const checkCacheIDPrefix = "sailmaker-gocache-check-"

// cacheMountFilter is the BuildKit prune and disk-usage filter that selects
// the records of the Go build cache mount with the given id and of the
// out/ tree kept beside it (OutCacheID): BuildKit names a cache mount's
// record `cached mount <dir> from exec with id "<id>"`.
func cacheMountFilter(id string) string {
	ids := regexp.QuoteMeta(id) + "|" + regexp.QuoteMeta(OutCacheID(id))
	return "type==" + string(client.UsageRecordTypeCacheMount) +
		",description~=" + strconv.Quote(regexp.QuoteMeta(`with id "`)+"("+ids+")"+`"$`)
}

// removeCacheMount removes the Go build cache mount id, and the out/ tree
// kept beside it, from buildkitd. It runs after
// a build that may have failed or been cancelled, so it has a context of
// its own; buildkitd may take a moment to release the mount of a
// cancelled build, so it tries again until nothing with that id is left
// or the time is up. What it cannot remove it says, with the command that
// removes it.
func (run *buildRun) removeCacheMount(ctx context.Context, id string) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), removeCacheMountTimeout)
	defer cancel()
	filter := client.WithFilter([]string{cacheMountFilter(id)})
	var err error
	for {
		var freed int64
		ch := make(chan client.UsageInfo)
		done := make(chan struct{})
		go func() {
			defer close(done)
			for u := range ch {
				freed += u.Size
			}
		}()
		err = run.bk.Prune(ctx, ch, filter, client.PruneAll)
		close(ch)
		<-done
		if err == nil {
			var left []*client.UsageInfo
			left, err = run.bk.DiskUsage(ctx, filter)
			if err == nil && len(left) == 0 {
				run.log.WithFields(logrus.Fields{"cacheID": id, "bytes": freed}).Debug("removed the second build's Go build cache and out/ tree")
				return
			}
			if err == nil {
				err = fmt.Errorf("%d record(s) still in use", len(left))
			}
		}
		select {
		case <-ctx.Done():
			run.log.WithError(err).WithField("cacheID", id).Warnf("could not remove the second build's Go build cache and out/ tree from buildkitd; remove it with: buildctl prune --all --filter '%s'", cacheMountFilter(id))
			return
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// removeCacheMountTimeout bounds removeCacheMount.
const removeCacheMountTimeout = 30 * time.Second

func (run *buildRun) attest(ctx context.Context) error {
	att := &attestation{
		recipe: run.recipe, trigger: run.req.Trigger, buildKit: run.buildKit,
		invocationID: run.req.Trigger.BuildID, started: run.start, log: run.log,
		worker: run.worker,
	}
	if att.invocationID == "" {
		att.invocationID = uuid.NewString()
	}
	finished := time.Now()
	for i, im := range run.recipe.Spec.Images {
		a := run.assembled[i]
		tag := run.targets[i].Tag
		var index *v1.Hash
		if a.index != nil {
			d, err := a.index.Digest()
			if err != nil {
				return err
			}
			index = &d
		}
		var manifests []Image
		for _, pa := range a.platforms {
			d, err := pa.image.Digest()
			if err != nil {
				return err
			}
			docs, err := att.documents(im, tag, pa, run.validation[validationKey(im.Name, pa.platform)], index, finished)
			if err != nil {
				return err
			}
			manifests = append(manifests, Image{Name: im.Name, Kind: KindImage, Tag: tag, Image: pa.image, Digest: d, Attestations: docs, Platform: pa.platform.platformString(pa.image)})
		}
		if a.index == nil {
			run.res.Images = append(run.res.Images, manifests[0])
			continue
		}
		d, err := a.index.Digest()
		if err != nil {
			return err
		}
		run.res.Images = append(run.res.Images, Image{Name: im.Name, Kind: KindImage, Tag: tag, Index: a.index, Digest: d, Manifests: manifests})
	}
	for i, a := range run.packages {
		t := run.targets[len(run.recipe.Spec.Images)+i]
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

// provenance is what the labels and the provenance record of the image
// of platform p.
func (run *buildRun) provenance(p platform) Provenance {
	r, in := run.recipe, run.inputs
	prov := Provenance{
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
		ProxySHA:      in.ProxySHA,
		MakeTargets:   r.Spec.Make.TargetsFor(p.arch),
		InputsKey:     run.res.InputsKey,
		Platform:      p.name,
		Arch:          p.arch,
	}
	if e := in.Envoy[p.arch]; e != nil {
		prov.EnvoySHA256, prov.EnvoyURL, prov.EnvoyOverride = e.SHA256, e.URL, e.Override
	}
	return prov
}

// compileAndAssemble solves the compile step for every platform, reads
// its results into work and lays out there the images (one per recipe
// image, each of every platform) and the packages' artifacts, recording
// solve and assemble times in tm. With vr, the images' programs run in
// BuildKit on the make results (validation) while the images are
// assembled. With reuse, what the last build left in work is taken again
// where it is the same bytes: its Go binaries (not read again, see keep)
// and its layers (not written again, see reuseLayer).
func (run *buildRun) compileAndAssemble(ctx context.Context, spec CompileSpec, work string, tm *api.Timings, vr *validationRun, reuse bool) ([]assembledImage, []assembled, error) {
	outDir := filepath.Join(work, "out")
	if err := os.MkdirAll(outDir, 0o755); err != nil {
		return nil, nil, err
	}
	mounts, err := compileMounts(run.inputs)
	if err != nil {
		return nil, nil, err
	}
	layers, err := OpenLayerStore(run.cfg.CacheDir())
	if err != nil {
		return nil, nil, err
	}
	def, err := CompileState(spec).Marshal(ctx, llb.LinuxAmd64)
	if err != nil {
		return nil, nil, fmt.Errorf("marshalling build definition: %w", err)
	}
	tail := &logTail{max: 64 << 10}
	p := run.progress
	if p.Log != nil {
		p.Log = io.MultiWriter(p.Log, tail)
	} else {
		p.Log = tail
	}
	var collect func(*client.SolveStatus)
	if vr != nil {
		collect = vr.collect
	}
	var (
		images []assembledImage
		pkgs   []assembled
		// ours is an error of sailmaker's own work in the build (reading
		// the results, assembling, validating), not BuildKit's.
		ours error
	)
	t := time.Now()
	imports, exports := registryCache(run.cacheRef)
	err = buildWithStatus(ctx, run.bk, client.SolveOpt{
		LocalMounts:  mounts,
		OCIStores:    map[string]content.Store{LayerStoreID: layers},
		CacheImports: imports,
		CacheExports: exports,
	}, func(ctx context.Context, gc gateway.Client) (*gateway.Result, error) {
		// Evaluate: make runs here, so that its failure is BuildKit's,
		// not the reading's.
		res, err := gc.Solve(ctx, gateway.SolveRequest{Definition: def.ToPB(), CacheImports: gatewayCacheImports(imports), Evaluate: true})
		if err != nil {
			return nil, err
		}
		ref, err := res.SingleRef()
		if err != nil {
			return nil, err
		}
		// Reading the make results out and, as their bytes come, assembling
		// the images, while validation runs their programs on the results
		// BuildKit holds.
		tree, err := listTree(ctx, ref, outDir, reuse)
		if err != nil {
			ours = err
			return nil, err
		}
		var readAt time.Time
		g, gctx := errgroup.WithContext(ctx)
		g.Go(func() error {
			if err := tree.read(gctx, ref); err != nil {
				return err
			}
			readAt = time.Now()
			tm.Solve = readAt.Sub(t)
			run.log.WithFields(logrus.Fields{"files": tree.stats.Files, "bytes": output.Bytes(tree.stats.Bytes), "kept": tree.stats.Kept, "keptBytes": output.Bytes(tree.stats.KeptBytes), "took": tree.stats.Took.Round(time.Millisecond)}).Debug("read the make results out of BuildKit")
			return nil
		})
		g.Go(func() error {
			start := time.Now()
			var known Known
			if reuse {
				known = tree.known
			}
			if images, pkgs, err = run.assemble(gctx, outDir, work, tree.open, known, tree.wait); err != nil {
				return err
			}
			run.log.WithFields(logrus.Fields{"took": time.Since(start).Round(time.Millisecond), "kept": tree.stats.Kept}).Info("assembled: the images and packages are laid out")
			return nil
		})
		if vr != nil {
			g.Go(func() error {
				if err := vr.plan(gctx, run, ref, tree); err != nil {
					return err
				}
				out, err := ref.ToState()
				if err != nil {
					return err
				}
				return vr.run(gctx, run, gc, out)
			})
		}
		if err := g.Wait(); err != nil {
			ours = err
			return nil, err
		}
		// From the results read to the images assembled and their
		// programs run.
		tm.Assemble = time.Since(readAt)
		// The result is what the registry cache, when there is one,
		// exports.
		return res, nil
	}, p, collect)
	switch {
	case err != nil && ctx.Err() != nil:
		return nil, nil, fmt.Errorf("build cancelled: %w", ctx.Err())
	case ours != nil:
		return nil, nil, ours
	case err != nil:
		return nil, nil, explainFailure(err, tail.String())
	}
	return images, pkgs, nil
}

// assemble lays out in work the images (one per recipe image, each of
// every platform) and the packages' artifacts from the make results in
// outDir. The images are assembled at once, each as its files' bytes
// come (open); what reads the results whole waits for them (wait).
func (run *buildRun) assemble(ctx context.Context, outDir, work string, open Opener, known Known, wait func() error) ([]assembledImage, []assembled, error) {
	images := make([]assembledImage, len(run.recipe.Spec.Images))
	var g errgroup.Group
	for i, img := range run.recipe.Spec.Images {
		images[i].platforms = make([]assembled, len(run.platforms))
		for j, pl := range run.platforms {
			g.Go(func() error {
				a, err := run.assembleOne(img, pl, outDir, work, open, known)
				images[i].platforms[j] = a
				return err
			})
		}
	}
	if err := g.Wait(); err != nil {
		return nil, nil, err
	}
	if err := wait(); err != nil {
		return nil, nil, err
	}
	for i, img := range run.recipe.Spec.Images {
		ai := &images[i]
		for j := range ai.platforms {
			a := &ai.platforms[j]
			bins, err := goBinaries(a.spec, a.outDir, a.envoyDir, versionOf(run.recipe))
			if err != nil {
				return nil, nil, err
			}
			a.binaries = bins
		}
		if run.recipe.Spec.MultiPlatform() {
			var err error
			if ai.index, err = newIndex(ai.platforms); err != nil {
				return nil, nil, fmt.Errorf("image %s: %w", img.Name, err)
			}
		}
	}
	pkgs, err := run.makePackages(ctx, outDir, work)
	if err != nil {
		return nil, nil, err
	}
	return images, pkgs, nil
}

// assembleOne lays out img for pl from the make results in outDir.
// known says the sha256 of the make results' files that is known without
// reading them; Envoy's is the verified binary's.
func (run *buildRun) assembleOne(img recipes.Image, pl platform, outDir, work string, open Opener, known Known) (assembled, error) {
	pimg := imageFor(img, pl.arch)
	bi := run.bases[baseKey(img.Base, pl)]
	pout := filepath.Join(outDir, pl.outDir())
	envoyDir := ""
	if e := run.inputs.Envoy[pl.arch]; e != nil {
		envoyDir = e.Dir
		if known != nil {
			results, envoy := known, filepath.Join(e.Dir, "envoy")
			known = func(p string) (string, bool) {
				if p == envoy {
					return e.BinarySHA256, true
				}
				return results(p)
			}
		}
	}
	pwork := filepath.Join(work, pl.outDir())
	if err := os.MkdirAll(pwork, 0o755); err != nil {
		return assembled{}, err
	}
	prov := run.provenance(pl)
	out, err := Assemble(pimg, bi, prov, pout, envoyDir, pwork, open, known)
	if err != nil {
		return assembled{}, err
	}
	return assembled{image: out, platform: pl, base: bi, prov: prov,
		layer: filepath.Join(pwork, pimg.Name+".tar.gz"), spec: pimg, outDir: pout, envoyDir: envoyDir}, nil
}

// imageFor is img with ${TARGET_ARCH} expanded in its files for arch.
func imageFor(img recipes.Image, arch string) recipes.Image {
	out := img
	out.Files = make([]recipes.File, len(img.Files))
	for i, f := range img.Files {
		out.Files[i] = f.For(arch)
	}
	return out
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

// inputsKey identifies everything that decides the images' content. A
// single-platform build is keyed as builds were before platforms existed
// (so that its images are found up to date); more platforms add theirs.
func inputsKey(recipeDigest string, in *Inputs, builder v1.Hash, platforms []platform, bases map[string]BaseImage, multi bool) string {
	h := sha256.New()
	legacy := !multi && len(platforms) == 1
	fmt.Fprintln(h, "assembly", assemblyFormatRevision)
	fmt.Fprintln(h, "recipe", recipeDigest)
	fmt.Fprintln(h, "commit", in.Commit)
	fmt.Fprintln(h, "gomod", in.GoSumSHA)
	if legacy && platforms[0].arch == recipes.DefaultArch {
		fmt.Fprintln(h, "envoy", in.EnvoySHA256)
	} else {
		for _, p := range platforms {
			fmt.Fprintln(h, "platform", p.name)
			if e := in.Envoy[p.arch]; e != nil {
				fmt.Fprintln(h, "envoy", p.arch, e.SHA256)
			}
		}
	}
	fmt.Fprintln(h, "builder", builder)
	lines := map[string]bool{}
	for _, b := range bases {
		if legacy {
			lines["base "+b.Ref+" "+b.Digest.String()] = true
		} else {
			lines["base "+b.Ref+" "+b.Platform+" "+b.Digest.String()] = true
		}
	}
	keys := make([]string, 0, len(lines))
	for k := range lines {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		fmt.Fprintln(h, k)
	}
	return "sha256:" + hex.EncodeToString(h.Sum(nil))
}

func versionOf(r *recipes.Recipe) string {
	if v := r.Spec.Make.Variables["VERSION"]; v != "" {
		return v
	}
	return r.Metadata.Version
}
