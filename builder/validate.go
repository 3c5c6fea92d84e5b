package builder

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"debug/buildinfo"
	"debug/elf"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"runtime"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/moby/buildkit/client"
	"github.com/moby/buildkit/client/llb"
	gateway "github.com/moby/buildkit/frontend/gateway/client"
	ocispecs "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/sirupsen/logrus"
	"golang.org/x/sync/errgroup"

	"github.com/sailmaker/sailmaker/attest"
	"github.com/sailmaker/sailmaker/builder/base"
	"github.com/sailmaker/sailmaker/recipes"
)

// ErrValidation is wrapped when a built image's programs do not say what
// the recipe pins (version, revision, Envoy): nothing is published.
var ErrValidation = errors.New("the built images failed validation")

// Statuses the binaries report (upstream's report_build_info.sh).
const (
	statusClean    = "Clean"
	statusModified = "Modified"
	dirtySuffix    = "-dirty"
)

// validationTimeout bounds the runs of the images' programs.
const validationTimeout = 15 * time.Minute

// validationKey is how validations are keyed: image and platform.
func validationKey(image string, p platform) string { return image + " " + p.name }

// validate judges what the images' programs said when they ran (during
// the compile, on the make results: validationRun) and checks in each
// assembled image's layer that its Envoy is the verified binary, as
// release-builder validates a release: each Go binary must report the
// recipe's version and the pinned commit (with -dirty and Modified only
// when the recipe has patches), and Envoy must be the verified input
// (its sha256 read from the image's layer, and `envoy --version` naming
// the PROXY_REPO_SHA). Every image of every platform is checked; a
// mismatch fails the build naming both values.
func (run *buildRun) validate(ctx context.Context) error {
	t := time.Now()
	defer func() { run.res.Timings.Assemble += time.Since(t) }()
	vr := run.checking
	problems := append([]string(nil), vr.problems...)
	for i, img := range run.recipe.Spec.Images {
		for _, a := range run.assembled[i].platforms {
			problems = append(problems, envoyInLayer(img.Name, a, run.validation[validationKey(img.Name, a.platform)])...)
		}
	}
	passed := map[*check]bool{}
	if vr.ran {
		for _, c := range vr.checks {
			msg := c.verdict(vr.want, run.inputs.ProxySHA)
			if msg != "" {
				problems = append(problems, msg)
			}
			passed[c] = msg == ""
			c.record()
		}
	}
	for _, v := range run.validation {
		v.Passed = len(problems) == 0
	}
	if len(problems) > 0 {
		sort.Strings(problems)
		return fmt.Errorf("%w; nothing was tagged:\n  %s", ErrValidation, strings.Join(problems, "\n  "))
	}
	reused := 0
	for _, c := range vr.checks {
		if c.reused {
			reused++
		} else if passed[c] {
			if err := vr.remember(c); err != nil {
				run.log.WithError(err).Warn("could not keep what a validated program printed: it will run again next time")
			}
		}
	}
	// took is the programs' run, which overlapped the assembly.
	run.log.WithFields(logrus.Fields{"took": vr.took.Round(time.Millisecond), "checks": len(vr.checks), "reused": reused}).Info("validated: every binary reports the recipe's version and commit, Envoy is the verified input")
	return nil
}

// memo is c's memo, if validation keeps memos and c has one.
func (vr *validationRun) memo(c *check) (memo, bool) {
	if vr.memos == "" || c.key == "" {
		return memo{}, false
	}
	return loadMemo(vr.memos, c.key)
}

// remember keeps what c's program printed as its memo.
func (vr *validationRun) remember(c *check) error {
	if vr.memos == "" || c.key == "" || c.err != nil {
		return nil
	}
	return saveMemo(vr.memos, c.key, memo{Stdout: c.stdout, Stderr: c.stderr})
}

// record marks c's record as reused when its output is a memo's.
func (c *check) record() {
	switch {
	case c.binary != nil:
		c.binary.Reused = c.reused
	case c.envoy != nil:
		c.envoy.Reused = c.reused
	}
}

// envoyInLayer checks that the Envoy in a's layer is the verified binary
// the validation ran, filling its record's SHA256.
func envoyInLayer(image string, a assembled, v *attest.Validation) []string {
	if v == nil || v.Envoy == nil {
		return nil
	}
	sum, err := layerFileSHA256(a.layer, v.Envoy.Path)
	if err != nil {
		return []string{fmt.Sprintf("%s %s: reading %s from the image's layer: %v", image, a.platform.name, v.Envoy.Path, err)}
	}
	v.Envoy.SHA256 = sum
	if sum != v.Envoy.Verified {
		return []string{fmt.Sprintf("%s %s: %s in the image has sha256 %s, the binary of the verified Envoy tarball (sha256 %s) has %s", image, a.platform.name, v.Envoy.Path, sum, v.Envoy.TarballSHA256, v.Envoy.Verified)}
	}
	return nil
}

// expected is what the binaries must report.
func (run *buildRun) expected() attest.ExpectedVersion {
	e := attest.ExpectedVersion{Version: run.recipe.Metadata.Version, Revision: run.inputs.Commit, Status: statusClean}
	if n := len(run.recipe.Patches()); n > 0 {
		e.Patched, e.Patches = true, n
		e.Revision += dirtySuffix
		e.Status = statusModified
	}
	return e
}

// nativeArch is the architecture buildkitd runs programs on without
// emulation (asked once, when the build connects: asked during the read
// of the make results, it waited behind it).
func (run *buildRun) nativeArch(ctx context.Context) string {
	ws, err := run.bk.ListWorkers(ctx)
	if err == nil && len(ws) > 0 && len(ws[0].Platforms) > 0 {
		return ws[0].Platforms[0].Architecture
	}
	return runtime.GOARCH
}

// check is one program run on an image's base with the image's files.
type check struct {
	image    string
	platform platform
	spec     recipes.Image // ${TARGET_ARCH} expanded
	base     string        // the base image, by digest
	cf       *v1.ConfigFile
	mounts   []fileMount
	args     []string
	// binary is filled with what a Go binary reported, envoy with Envoy's.
	binary *attest.BinaryCheck
	envoy  *attest.EnvoyCheck
	stdout []byte
	stderr []byte
	err    error
	// key is the check's memo key ("" for none); reused is set when the
	// output is its memo's, the program not run again.
	key    string
	reused bool
}

func (c *check) name() string {
	return fmt.Sprintf("validate %s %s: %s", c.image, c.platform.name, strings.Join(c.args, " "))
}

// validationRun is one build's validation of its images: the programs to
// run, planned once the make results are read, what planning found wrong
// without running anything, and what the programs printed.
type validationRun struct {
	want     attest.ExpectedVersion
	checks   []*check
	problems []string
	// ran is set once the programs have run; took is how long that took.
	ran  bool
	took time.Duration
	// memos is where memos are kept, "" to run every program.
	memos string

	mu     sync.Mutex
	byName map[string]*check
	vertex map[string]*check
}

// newValidation is an empty validation of run's images; it also resets
// run's validation records.
func (run *buildRun) newValidation() *validationRun {
	run.validation = map[string]*attest.Validation{}
	vr := &validationRun{want: run.expected(), byName: map[string]*check{}, vertex: map[string]*check{}}
	if !run.req.NoCache {
		vr.memos = memoDir(run.cfg.CacheDir())
	}
	return vr
}

// plan lists every image's programs to run, for every platform, and what
// is wrong without running anything, from the make results as BuildKit
// holds them (ref: only headers are read, so planning need not wait for
// the results to be read out) and the verified Envoy.
func (vr *validationRun) plan(ctx context.Context, run *buildRun, ref gateway.Reference, tree *resultTree) error {
	native := run.native
	for _, img := range run.recipe.Spec.Images {
		for _, pl := range run.platforms {
			pimg := imageFor(img, pl.arch)
			bi := run.bases[baseKey(img.Base, pl)]
			bref, err := run.reg.ParseRef(bi.Ref)
			if err != nil {
				return fmt.Errorf("image %s: base: %w", img.Name, err)
			}
			cf, err := runtimeConfig(pimg, bi.Image)
			if err != nil {
				return fmt.Errorf("image %s %s: reading the base's config: %w", img.Name, pl.name, err)
			}
			files, err := probeFiles(ctx, run, pimg, pl, ref, tree)
			if err != nil {
				return err
			}
			v := &attest.Validation{Platform: pl.name, Emulated: pl.arch != native, Expected: vr.want, Binaries: []attest.BinaryCheck{}}
			run.validation[validationKey(img.Name, pl)] = v
			at := &check{image: img.Name, platform: pl, spec: pimg, base: bref.Context().Digest(bi.Digest.String()).String(), cf: cf, mounts: imageMounts(pimg, pl, files)}
			cs, errs := run.hostChecks(at, files, v)
			for _, c := range cs {
				c.key = c.memoKey(files)
			}
			vr.checks = append(vr.checks, cs...)
			vr.problems = append(vr.problems, errs...)
		}
	}
	vr.index(vr.checks)
	return nil
}

// index makes checks known to collect by their steps' names. collect
// runs on the solve's status, which streams while the plan is made.
func (vr *validationRun) index(checks []*check) {
	vr.mu.Lock()
	defer vr.mu.Unlock()
	for _, c := range checks {
		vr.byName[c.name()] = c
	}
}

// probed is what validation knows of one of an image's files: its mode
// and, for an ELF executable, its machine and whether Go built it (elfErr
// says why it is not one).
type probed struct {
	mode     os.FileMode
	machine  elf.Machine
	elfErr   error
	goBinary bool
	// size and content identify the file for validation's memos: content
	// is "go:<build ID>", "sha256:<hex>", or "" when not known.
	size    int64
	content string
}

// probeFiles probes img's files on platform pl: the make results' in ref
// (listed in tree; one the work folder already holds is read there, see
// keep), Envoy in its verified folder. It runs while the results are read
// out of BuildKit, so it asks BuildKit for whole blocks (blockReaderAt):
// a few requests per binary rather than one per header debug/elf reads,
// each waiting its turn behind the read.
func probeFiles(ctx context.Context, run *buildRun, img recipes.Image, pl platform, ref gateway.Reference, tree *resultTree) (map[string]probed, error) {
	out := map[string]probed{}
	for _, f := range img.Files {
		kind, rel := f.Source()
		name := pl.resultPath(kind, rel)
		var ra io.ReaderAt
		var p probed
		switch kind {
		case recipes.FromBuild, recipes.FromSource:
			st := tree.stat(name)
			if st == nil {
				s, err := ref.StatFile(ctx, gateway.StatRequest{Path: name})
				if err != nil {
					return nil, fmt.Errorf("image %s: %s: %w (did the make targets produce it?)", img.Name, f.From, err)
				}
				st = s
			}
			p.mode, p.size = os.FileMode(st.Mode), st.Size
			if local := tree.kept(name); local != "" {
				fh, err := os.Open(local)
				if err != nil {
					return nil, err
				}
				defer fh.Close()
				ra = fh
			} else {
				ra = newBlockReaderAt(&refReaderAt{ctx: ctx, ref: ref, name: name, size: st.Size}, st.Size, probeBlock)
			}
		case recipes.FromInput:
			e := run.inputs.Envoy[pl.arch]
			if e == nil {
				return nil, fmt.Errorf("image %s: %s: no verified Envoy for %s", img.Name, f.To, pl.arch)
			}
			src, err := fileSource(img, f, "", e.Dir)
			if err != nil {
				return nil, err
			}
			fh, err := os.Open(src)
			if err != nil {
				return nil, err
			}
			defer fh.Close()
			fi, err := fh.Stat()
			if err != nil {
				return nil, err
			}
			p.mode, p.size, ra = fi.Mode(), fi.Size(), fh
			p.content = "sha256:" + e.BinarySHA256
		default:
			return nil, fmt.Errorf("image %s: unknown file source %q", img.Name, f.From)
		}
		if kind != recipes.FromSource {
			ef, err := elf.NewFile(ra)
			if err != nil {
				p.elfErr = err
			} else {
				p.machine = ef.Machine
				_, err := buildinfo.Read(ra)
				p.goBinary = err == nil
				if id := goBuildID(ef); p.goBinary && id != "" {
					p.content = "go:" + id
				}
			}
		}
		if p.content == "" && kind != recipes.FromInput && p.size <= memoMaxHashed {
			b, err := ref.ReadFile(ctx, gateway.ReadRequest{Filename: name})
			if err != nil {
				return nil, fmt.Errorf("image %s: reading %s: %w", img.Name, f.From, err)
			}
			if int64(len(b)) == p.size {
				p.content = "sha256:" + sha256Hex(b)
			}
		}
		out[f.To] = p
	}
	return out, nil
}

// probeBlock is how much of a result probeFiles asks BuildKit for at a
// time: the ELF header and program headers, the section headers, the Go
// build ID note and build info each fit in one block.
const probeBlock = 64 << 10

// blockReaderAt reads through r in aligned blocks of size block, each
// asked for once. It is for one goroutine.
type blockReaderAt struct {
	r      io.ReaderAt
	size   int64
	block  int64
	blocks map[int64][]byte
}

func newBlockReaderAt(r io.ReaderAt, size, block int64) *blockReaderAt {
	return &blockReaderAt{r: r, size: size, block: block, blocks: map[int64][]byte{}}
}

func (b *blockReaderAt) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, fmt.Errorf("negative offset %d", off)
	}
	n := 0
	for n < len(p) {
		at := off + int64(n)
		if at >= b.size {
			return n, io.EOF
		}
		start := at - at%b.block
		data, ok := b.blocks[start]
		if !ok {
			data = make([]byte, min(b.block, b.size-start))
			if m, err := b.r.ReadAt(data, start); m < len(data) {
				if err == nil {
					err = io.ErrUnexpectedEOF
				}
				return n, err
			}
			b.blocks[start] = data
		}
		n += copy(p[n:], data[at-start:])
	}
	return n, nil
}

// refReaderAt reads a file of a solved reference, range by range.
type refReaderAt struct {
	ctx  context.Context
	ref  gateway.Reference
	name string
	size int64
}

func (r *refReaderAt) ReadAt(p []byte, off int64) (int, error) {
	if off >= r.size {
		return 0, io.EOF
	}
	n := min(int64(len(p)), r.size-off)
	b, err := r.ref.ReadFile(r.ctx, gateway.ReadRequest{Filename: r.name, Range: &gateway.FileRange{Offset: int(off), Length: int(n)}})
	if err != nil {
		return 0, err
	}
	copy(p, b)
	if len(b) < len(p) {
		return len(b), io.EOF
	}
	return len(b), nil
}

// hostChecks checks what can be known without running anything: every
// build: and input: file is an executable for the platform, Envoy is the
// verified binary. It returns the programs to run, each a copy of at with
// its arguments.
func (run *buildRun) hostChecks(at *check, files map[string]probed, v *attest.Validation) ([]*check, []string) {
	var out []*check
	var problems []string
	image, pl := at.image, at.platform
	want, _ := base.ELFMachine(pl.oci)
	for _, f := range at.spec.Files {
		kind, _ := f.Source()
		if kind == recipes.FromSource {
			continue
		}
		p := files[f.To]
		machine := p.machine
		switch {
		case p.elfErr != nil && kind == recipes.FromInput:
			problems = append(problems, fmt.Sprintf("%s %s: %s (%s) is not an ELF executable: %v", image, pl.name, f.To, f.From, p.elfErr))
			continue
		case p.elfErr != nil:
			continue // a script or data file a make target produced
		case machine != want:
			problems = append(problems, fmt.Sprintf("%s %s: %s (%s) is an ELF executable for %s, the platform's binaries are %s", image, pl.name, f.To, f.From, machineName(machine), machineName(want)))
			continue
		}
		c := *at
		switch {
		case kind == recipes.FromInput:
			e := run.inputs.Envoy[pl.arch]
			// The layer's copy is checked once the image is assembled
			// (envoyInLayer).
			ec := &attest.EnvoyCheck{Path: f.To, Verified: e.BinarySHA256, TarballSHA256: e.SHA256, Machine: machineName(machine)}
			v.Envoy = ec
			c.args, c.envoy = []string{f.To, "--version"}, ec
			out = append(out, &c)
		case p.goBinary:
			bc := attest.BinaryCheck{Path: f.To, Command: []string{f.To, "version", "-o", "json"}, Machine: machineName(machine)}
			v.Binaries = append(v.Binaries, bc)
			c.args, c.binary = bc.Command, &v.Binaries[len(v.Binaries)-1]
			out = append(out, &c)
		}
	}
	// v.Binaries may have grown after a check took a pointer into it.
	for _, c := range out {
		if c.binary != nil {
			for i := range v.Binaries {
				if v.Binaries[i].Path == c.binary.Path {
					c.binary = &v.Binaries[i]
				}
			}
		}
	}
	return out, problems
}

// versionJSON is what istio's binaries print for `version -o json`.
type versionJSON struct {
	ClientVersion *struct {
		Version       string `json:"version"`
		Revision      string `json:"revision"`
		GolangVersion string `json:"golang_version"`
		Status        string `json:"status"`
		Tag           string `json:"tag"`
	} `json:"clientVersion"`
}

// verdict reads what the program printed into its record and says what
// is wrong with it, or "".
func (c *check) verdict(want attest.ExpectedVersion, proxySHA string) string {
	where := fmt.Sprintf("%s %s: `%s`", c.image, c.platform.name, strings.Join(c.args, " "))
	if c.err != nil {
		msg := fmt.Sprintf("%s failed in the image: %v", where, c.err)
		if e := strings.TrimSpace(string(c.stderr)); e != "" {
			msg += ": " + lastLines(e, 5)
		}
		return msg
	}
	if c.envoy != nil {
		c.envoy.Version = strings.TrimSpace(string(c.stdout))
		if !strings.Contains(c.envoy.Version, proxySHA) {
			return fmt.Sprintf("%s printed %q, which does not name the PROXY_REPO_SHA %s the recipe pins", where, lastLines(c.envoy.Version, 2), proxySHA)
		}
		return ""
	}
	var v versionJSON
	if err := json.Unmarshal(bytes.TrimSpace(c.stdout), &v); err != nil || v.ClientVersion == nil {
		return fmt.Sprintf("%s did not print istio's version JSON ({\"clientVersion\": {...}}): %q", where, lastLines(string(c.stdout), 3))
	}
	b := c.binary
	b.Version, b.Revision, b.GolangVersion, b.Status, b.Tag = v.ClientVersion.Version, v.ClientVersion.Revision, v.ClientVersion.GolangVersion, v.ClientVersion.Status, v.ClientVersion.Tag
	var wrong []string
	if b.Version != want.Version {
		wrong = append(wrong, fmt.Sprintf("version %q, the recipe's version is %q", b.Version, want.Version))
	}
	revisions, statuses := []string{want.Revision}, []string{want.Status}
	if want.Patched {
		// A patch that only adds files leaves git's diff clean.
		revisions = append(revisions, strings.TrimSuffix(want.Revision, dirtySuffix))
		statuses = append(statuses, statusClean)
	}
	if !slices.Contains(revisions, b.Revision) {
		msg := fmt.Sprintf("revision %q, the recipe pins commit %s", b.Revision, strings.TrimSuffix(want.Revision, dirtySuffix))
		if !want.Patched && strings.HasSuffix(b.Revision, dirtySuffix) {
			msg += " and applies no patch: the tree it was built from was modified"
		}
		wrong = append(wrong, msg)
	}
	if !slices.Contains(statuses, b.Status) {
		why := "the recipe applies no patch"
		if want.Patched {
			why = fmt.Sprintf("the recipe applies %d patch(es)", want.Patches)
		}
		wrong = append(wrong, fmt.Sprintf("status %q, expected %q (%s)", b.Status, want.Status, why))
	}
	if len(wrong) > 0 {
		return where + " reports " + strings.Join(wrong, "; ")
	}
	return ""
}

// run runs every planned program in BuildKit, in the gateway build that
// compiled them, two at a time (more at once measured no faster); out is
// the make results. Each runs on its image's base (by digest) with the
// image's files mounted read-only where the image has them: the very
// files its layer is made of (the make results sailmaker read, and the
// verified Envoy), so validation needs no image loaded into BuildKit. A
// program that fails is recorded, not an error. Nothing runs when
// planning found a problem.
func (vr *validationRun) run(ctx context.Context, run *buildRun, gc gateway.Client, out llb.State) error {
	if len(vr.problems) > 0 || len(vr.checks) == 0 {
		return nil
	}
	start := time.Now()
	ctx, cancel := context.WithTimeout(ctx, validationTimeout)
	defer cancel()
	run.log.WithField("checks", len(vr.checks)).Info("validating: running the images' programs in BuildKit (no network) while the images are assembled, but for those that ran on the same bytes before")
	g, ctx := errgroup.WithContext(ctx)
	g.SetLimit(2)
	for _, c := range vr.checks {
		if m, ok := vr.memo(c); ok {
			c.stdout, c.stderr, c.reused = m.Stdout, m.Stderr, true
			continue
		}
		g.Go(func() error {
			def, err := checkState(c, out, run.inputs).Marshal(ctx)
			if err != nil {
				return err
			}
			_, err = gc.Solve(ctx, gateway.SolveRequest{Definition: def.ToPB(), Evaluate: true})
			if err != nil && ctx.Err() == nil {
				c.err = err
				return nil
			}
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return fmt.Errorf("validating: running the images' programs in BuildKit: %w", err)
	}
	vr.ran, vr.took = true, time.Since(start)
	return nil
}

// collect reads each program's output from its step's log.
func (vr *validationRun) collect(s *client.SolveStatus) {
	vr.mu.Lock()
	defer vr.mu.Unlock()
	for _, v := range s.Vertexes {
		if c, ok := vr.byName[v.Name]; ok {
			vr.vertex[v.Digest.String()] = c
		}
	}
	for _, l := range s.Logs {
		c, ok := vr.vertex[l.Vertex.String()]
		if !ok {
			continue
		}
		if l.Stream == 2 {
			c.stderr = append(c.stderr, l.Data...)
		} else {
			c.stdout = append(c.stdout, l.Data...)
		}
	}
}

// ValidationBaseVertex starts the name of the step that gives validation
// an image's base (pulled from the registry if BuildKit lacks it).
const ValidationBaseVertex = "base of "

// fileMount is one of an image's files as its programs see it when
// validated: mounted at to from the make results (kind build or source)
// or the verified Envoy (input), at path in them; copied first to give it
// the image's mode when its own differs.
type fileMount struct {
	to, kind, path string
	mode           os.FileMode
	copy           bool
}

// imageMounts are img's files as its programs see them when validated,
// on platform pl, from the make results and Envoy, probed as files.
func imageMounts(img recipes.Image, pl platform, files map[string]probed) []fileMount {
	var out []fileMount
	for _, f := range img.Files {
		kind, rel := f.Source()
		m := fileMount{to: f.To, kind: kind, mode: os.FileMode(f.FileMode())}
		m.copy = files[f.To].mode.Perm() != m.mode.Perm()
		if kind == recipes.FromInput {
			m.path = "/envoy"
		} else {
			m.path = pl.resultPath(kind, rel)
		}
		out = append(out, m)
	}
	return out
}

// checkState runs c's program as `docker run` would in its image: on the
// image's base, with the image's environment, user and working directory,
// and the image's files mounted read-only at their places with their
// modes (from out, the make results, and Envoy from its verified input),
// on the image's platform (under emulation when that is not the host's),
// with no network and nothing cached.
func checkState(c *check, out llb.State, in *Inputs) llb.State {
	plat := ocispecs.Platform{OS: c.platform.oci.OS, Architecture: c.platform.oci.Architecture, Variant: c.platform.oci.Variant}
	st := WithImageConfig(llb.Image(c.base, llb.Platform(plat), llb.WithCustomName(ValidationBaseVertex+c.image+" "+c.platform.name)), c.cf)
	opts := []llb.RunOption{llb.Args(c.args), llb.Network(llb.NetModeNone), llb.IgnoreCache, llb.WithCustomName(c.name())}
	for _, m := range c.mounts {
		src, p := out, m.path
		if m.kind == recipes.FromInput {
			e := in.Envoy[c.platform.arch]
			if e == nil {
				continue // hostChecks found it missing
			}
			src = envoyState(c.platform.arch, e)
		}
		if m.copy {
			src = llb.Scratch().File(llb.Copy(src, p, "/file", &llb.CopyInfo{Mode: &llb.ChmodOpt{Mode: m.mode.Perm()}}),
				llb.WithCustomName(fmt.Sprintf("%s with the mode %s has in %s (%#o)", m.to, c.image, c.platform.name, m.mode.Perm())))
			p = "/file"
		}
		// Nothing is cached (IgnoreCache): BuildKit need not hash the
		// file's content for a cache key (Envoy and pilot-discovery are
		// 100 MB and more).
		opts = append(opts, llb.AddMount(m.to, src, llb.SourcePath(p), llb.Readonly, llb.ContentCache(llb.MountContentCacheOff)))
	}
	return st.Run(opts...).Root()
}

// machineName names an ELF machine as the architectures do.
func machineName(m elf.Machine) string {
	switch m {
	case elf.EM_X86_64:
		return "x86-64 (amd64)"
	case elf.EM_AARCH64:
		return "aarch64 (arm64)"
	}
	return m.String()
}

// layerFileSHA256 reads the file at p (an absolute path in the image)
// from a gzip-compressed layer tarball and returns its sha256.
func layerFileSHA256(layerFile, p string) (string, error) {
	f, err := os.Open(layerFile)
	if err != nil {
		return "", err
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		return "", err
	}
	tr := tar.NewReader(zr)
	want := strings.TrimPrefix(path.Clean(p), "/")
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return "", fmt.Errorf("%s is not in the layer", p)
		}
		if err != nil {
			return "", err
		}
		if strings.TrimPrefix(path.Clean(strings.TrimPrefix(h.Name, "./")), "/") != want {
			continue
		}
		if h.Typeflag != tar.TypeReg {
			return "", fmt.Errorf("%s is not a regular file in the layer", p)
		}
		sum := sha256.New()
		if _, err := io.Copy(sum, tr); err != nil {
			return "", err
		}
		return hex.EncodeToString(sum.Sum(nil)), nil
	}
}

// lastLines is the last n lines of s.
func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
