package builder

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"debug/elf"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/containerd/containerd/v2/core/content"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/moby/buildkit/client"
	"github.com/moby/buildkit/client/llb"
	gateway "github.com/moby/buildkit/frontend/gateway/client"
	ocispecs "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/sirupsen/logrus"
	"golang.org/x/sync/errgroup"

	"github.com/sailmaker/sailmaker/attest"
	"github.com/sailmaker/sailmaker/builder/base"
	"github.com/sailmaker/sailmaker/internal/output"
	"github.com/sailmaker/sailmaker/recipes"
	"github.com/sailmaker/sailmaker/registry"
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

// validate runs every image's programs, in the built image, in BuildKit,
// with no network, before anything is published, as istio's
// release-builder validates a release: each Go binary must report the
// recipe's version and the pinned commit (with -dirty and Modified only
// when the recipe has patches), and Envoy must be the verified input
// (its sha256 read from the image's layer, and `envoy --version` naming
// the PROXY_REPO_SHA). Every image of every platform is checked; a
// mismatch fails the build naming both values.
func (run *buildRun) validate(ctx context.Context) error {
	t := time.Now()
	defer func() { run.res.Timings.Assemble += time.Since(t) }()
	want := run.expected()
	var checks []*check
	run.validation = map[string]*attest.Validation{}
	var problems []string
	native := run.nativeArch(ctx)
	for i, img := range run.recipe.Spec.Images {
		for _, a := range run.assembled[i].platforms {
			v := &attest.Validation{Platform: a.platform.name, Emulated: a.platform.arch != native, Expected: want, Binaries: []attest.BinaryCheck{}}
			run.validation[validationKey(img.Name, a.platform)] = v
			cs, errs := run.hostChecks(img.Name, a, v)
			checks = append(checks, cs...)
			problems = append(problems, errs...)
		}
	}
	var fetched int64
	if len(problems) == 0 && len(checks) > 0 {
		run.log.WithField("checks", len(checks)).Info("validating: running the images' programs in BuildKit (no network)")
		n, err := run.runChecks(ctx, checks)
		if err != nil {
			return err
		}
		fetched = n
		for _, c := range checks {
			if msg := c.verdict(want, run.inputs.ProxySHA); msg != "" {
				problems = append(problems, msg)
			}
		}
	}
	for _, v := range run.validation {
		v.Passed = len(problems) == 0
	}
	if len(problems) > 0 {
		sort.Strings(problems)
		return fmt.Errorf("%w; nothing was tagged:\n  %s", ErrValidation, strings.Join(problems, "\n  "))
	}
	// fetched is what BuildKit did not hold of the base layers.
	run.log.WithFields(logrus.Fields{"took": time.Since(t).Round(time.Millisecond), "fetched": output.Bytes(fetched)}).Info("validated: every binary reports the recipe's version and commit, Envoy is the verified input")
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
// emulation.
func (run *buildRun) nativeArch(ctx context.Context) string {
	ws, err := run.bk.ListWorkers(ctx)
	if err == nil && len(ws) > 0 && len(ws[0].Platforms) > 0 {
		return ws[0].Platforms[0].Architecture
	}
	return runtime.GOARCH
}

// check is one program run in an image.
type check struct {
	image    string
	platform platform
	img      v1.Image
	cf       *v1.ConfigFile
	args     []string
	// binary is filled with what a Go binary reported, envoy with Envoy's.
	binary *attest.BinaryCheck
	envoy  *attest.EnvoyCheck
	stdout []byte
	stderr []byte
	err    error
}

func (c *check) name() string {
	return fmt.Sprintf("validate %s %s: %s", c.image, c.platform.name, strings.Join(c.args, " "))
}

// hostChecks checks what can be read without running anything: every
// build: and input: file is an executable for the platform, Envoy in the
// layer is the verified binary. It returns the programs to run.
func (run *buildRun) hostChecks(image string, a assembled, v *attest.Validation) ([]*check, []string) {
	var out []*check
	var problems []string
	cf, err := a.image.ConfigFile()
	if err != nil {
		return nil, []string{fmt.Sprintf("%s %s: reading the config: %v", image, a.platform.name, err)}
	}
	want, _ := base.ELFMachine(a.platform.oci)
	goBins := map[string]bool{}
	for _, b := range a.binaries {
		goBins[b.Path] = true
	}
	for _, f := range a.spec.Files {
		kind, _ := f.Source()
		if kind == recipes.FromSource {
			continue
		}
		src, err := fileSource(a.spec, f, a.outDir, a.envoyDir)
		if err != nil {
			problems = append(problems, err.Error())
			continue
		}
		machine, err := elfMachine(src)
		switch {
		case err != nil && kind == recipes.FromInput:
			problems = append(problems, fmt.Sprintf("%s %s: %s (%s) is not an ELF executable: %v", image, a.platform.name, f.To, f.From, err))
			continue
		case err != nil:
			continue // a script or data file a make target produced
		case machine != want:
			problems = append(problems, fmt.Sprintf("%s %s: %s (%s) is an ELF executable for %s, the platform's binaries are %s", image, a.platform.name, f.To, f.From, machineName(machine), machineName(want)))
			continue
		}
		switch {
		case kind == recipes.FromInput:
			e := run.inputs.Envoy[a.platform.arch]
			if e == nil {
				problems = append(problems, fmt.Sprintf("%s %s: %s: no verified Envoy for %s", image, a.platform.name, f.To, a.platform.arch))
				continue
			}
			sum, err := layerFileSHA256(a.layer, f.To)
			if err != nil {
				problems = append(problems, fmt.Sprintf("%s %s: reading %s from the image's layer: %v", image, a.platform.name, f.To, err))
				continue
			}
			ec := &attest.EnvoyCheck{Path: f.To, SHA256: sum, Verified: e.BinarySHA256, TarballSHA256: e.SHA256, Machine: machineName(machine)}
			v.Envoy = ec
			if sum != e.BinarySHA256 {
				problems = append(problems, fmt.Sprintf("%s %s: %s in the image has sha256 %s, the binary of the verified Envoy tarball (sha256 %s) has %s", image, a.platform.name, f.To, sum, e.SHA256, e.BinarySHA256))
				continue
			}
			out = append(out, &check{image: image, platform: a.platform, img: a.image, cf: cf, args: []string{f.To, "--version"}, envoy: ec})
		case goBins[f.To]:
			bc := attest.BinaryCheck{Path: f.To, Command: []string{f.To, "version", "-o", "json"}, Machine: machineName(machine)}
			v.Binaries = append(v.Binaries, bc)
			out = append(out, &check{image: image, platform: a.platform, img: a.image, cf: cf, args: bc.Command, binary: &v.Binaries[len(v.Binaries)-1]})
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

// runChecks runs every check in BuildKit, two at a time (more at once
// measured no faster), and reads each check's output from its step's log.
// BuildKit reads the images through the session from a validationStore,
// which fetches a base layer from the registry only if BuildKit asks for
// it. It returns how many bytes of layers were fetched: those of the base
// layers BuildKit did not hold.
func (run *buildRun) runChecks(ctx context.Context, checks []*check) (int64, error) {
	ctx, cancel := context.WithTimeout(ctx, validationTimeout)
	defer cancel()
	dir := filepath.Join(run.work, "validate")
	defer os.RemoveAll(dir)
	store, err := newValidationStore(ctx, dir)
	if err != nil {
		return 0, fmt.Errorf("validating: making the content store: %w", err)
	}
	for _, c := range checks {
		if err := store.add(c.img); err != nil {
			return 0, fmt.Errorf("validating %s %s: %w", c.image, c.platform.name, err)
		}
	}
	const storeID = "sailmaker-validate"

	byName := map[string]*check{}
	for _, c := range checks {
		byName[c.name()] = c
	}
	var mu sync.Mutex
	vertex := map[string]*check{}
	collect := func(s *client.SolveStatus) {
		mu.Lock()
		defer mu.Unlock()
		for _, v := range s.Vertexes {
			if c, ok := byName[v.Name]; ok {
				vertex[v.Digest.String()] = c
			}
		}
		for _, l := range s.Logs {
			c, ok := vertex[l.Vertex.String()]
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
	buildFn := func(ctx context.Context, gc gateway.Client) (*gateway.Result, error) {
		g, ctx := errgroup.WithContext(ctx)
		g.SetLimit(2)
		for _, c := range checks {
			g.Go(func() error {
				def, err := checkState(c, storeID).Marshal(ctx)
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
		return gateway.NewResult(), g.Wait()
	}
	if err := buildWithStatus(ctx, run.bk, client.SolveOpt{OCIStores: map[string]content.Store{storeID: store}}, buildFn, run.progress, collect); err != nil {
		if ctx.Err() != nil {
			return 0, fmt.Errorf("validating: %w", ctx.Err())
		}
		return 0, fmt.Errorf("validating: running the images' programs in BuildKit: %w", err)
	}
	run.log.WithFields(logrus.Fields{"layers": store.layersRead(), "fetched": store.fetched.Load()}).Debug("validation: the layers BuildKit did not hold, read through the session")
	return store.fetched.Load(), nil
}

// checkState runs c's program in its image, as `docker run` would with
// the image's environment, user and working directory, on the image's
// platform (under emulation when that is not the host's), with no
// network and nothing cached.
func checkState(c *check, storeID string) llb.State {
	d, _ := c.img.Digest()
	plat := ocispecs.Platform{OS: c.platform.oci.OS, Architecture: c.platform.oci.Architecture, Variant: c.platform.oci.Variant}
	st := llb.OCILayout("sailmaker.invalid/validate@"+d.String(), llb.OCIStore("", storeID), llb.Platform(plat),
		llb.WithCustomName(fmt.Sprintf("load %s %s (built, not yet published)", c.image, c.platform.name)))
	st = WithImageConfig(st, c.cf)
	return st.Run(llb.Args(c.args), llb.Network(llb.NetModeNone), llb.IgnoreCache, llb.WithCustomName(c.name())).Root()
}

// buildWithStatus runs a gateway build, drains its status into the
// progress display and hands every status to collect.
func buildWithStatus(ctx context.Context, c *client.Client, opt client.SolveOpt, fn gateway.BuildFunc, p Progress, collect func(*client.SolveStatus)) error {
	opt, err := withRegistryAuth(opt)
	if err != nil {
		return err
	}
	p = p.withDefaults()
	ch := make(chan *client.SolveStatus)
	display := make(chan *client.SolveStatus)
	eg, ctx := errgroup.WithContext(ctx)
	eg.Go(func() error {
		defer close(display)
		for s := range ch {
			collect(s)
			if p.Log != nil {
				for _, l := range s.Logs {
					_, _ = p.Log.Write(l.Data)
				}
			}
			display <- s
		}
		return nil
	})
	eg.Go(func() error {
		_, err := c.Build(ctx, opt, "", fn, ch)
		return registry.ExplainBuildKitAuth(err)
	})
	eg.Go(func() error { return showProgress(ctx, p, display) })
	return eg.Wait()
}

// elfMachine is the ELF machine of the executable at p.
func elfMachine(p string) (elf.Machine, error) {
	f, err := elf.Open(p)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	return f.Machine, nil
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
