package audit

import (
	"archive/tar"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"sort"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/sailmaker/sailmaker/builder"
)

// Statuses of an UpstreamItem.
const (
	UpstreamSame    = "same"
	UpstreamDiffers = "differs"
	UpstreamAllowed = "allowed"
)

// Deliberate is a difference from upstream's Dockerfiles that sailmaker
// makes on purpose (the README lists them with their reasons).
type Deliberate struct {
	// Item is an item name (base, user, env:NAME, file:/path) or a
	// path.Match pattern of them.
	Item   string `json:"item"`
	Reason string `json:"reason"`
}

// DeliberateDifferences are sailmaker's differences from upstream's
// pilot/docker/Dockerfile.pilot and Dockerfile.proxyv2, by design.
var DeliberateDifferences = []Deliberate{
	{Item: "base", Reason: "upstream's base images (Ubuntu-based base, distroless, the iptables image) are replaced by sailmaker's own, built in the internal registry from Debian bookworm packages"},
}

// UpstreamOptions say what to compare an image with.
type UpstreamOptions struct {
	// Dockerfile is the Dockerfile's content; DockerfileName names it.
	Dockerfile     []byte
	DockerfileName string
	// SourcePath, instead of Dockerfile, reads the Dockerfile at that
	// path of the image's source at its revision, from the git mirror a
	// build on this machine keeps.
	SourcePath string
	// BuildArgs are the build arguments (--build-arg). Unset, as istio's
	// docker-builder passes them: BASE_DISTRIBUTION from the tag
	// (-distroless: distroless, else debug), proxy_version and
	// istio_version from the image's labels.
	BuildArgs map[string]string
	// Platform picks the image of an index (default linux/amd64).
	Platform string
	// Allow are items whose difference is deliberate (names or patterns),
	// with the reason shown.
	Allow []Deliberate
}

// UpstreamDiff is an image compared, item by item, with a Dockerfile.
type UpstreamDiff struct {
	// Image is registry/repository:tag@digest of the image compared (of
	// an index: its image for Platform).
	Image      string            `json:"image"`
	Platform   string            `json:"platform"`
	Dockerfile string            `json:"dockerfile"`
	BuildArgs  map[string]string `json:"buildArgs"`
	// Stages are the Dockerfile's stages the image is built through.
	Stages []string       `json:"stages"`
	Items  []UpstreamItem `json:"items"`
	// Differences counts the items that differ and are not allowed.
	Differences int      `json:"differences"`
	Allowed     int      `json:"allowed"`
	Notes       []string `json:"notes,omitempty"`
}

// UpstreamItem is one thing a Dockerfile sets and what the image has.
type UpstreamItem struct {
	// Item is base, user, workdir, entrypoint, cmd, env:NAME or
	// file:/path.
	Item     string `json:"item"`
	Upstream string `json:"upstream"`
	Image    string `json:"image"`
	// Status is same, differs or allowed (a deliberate difference).
	Status string `json:"status"`
	Reason string `json:"reason,omitempty"`
}

// Header implements Tabular.
func (d *UpstreamDiff) Header() []string {
	return []string{"ITEM", "STATUS", "UPSTREAM", "IMAGE"}
}

// Rows implements Tabular. The reasons of allowed items are in
// Reasons, for a note under the table.
func (d *UpstreamDiff) Rows() [][]string {
	var rows [][]string
	for _, it := range d.Items {
		rows = append(rows, []string{it.Item, it.Status, it.Upstream, it.Image})
	}
	return rows
}

// Reasons are the allowed items with why they are allowed, one line each.
func (d *UpstreamDiff) Reasons() []string {
	var out []string
	for _, it := range d.Items {
		if it.Status == UpstreamAllowed {
			out = append(out, it.Item+" is allowed to differ: "+it.Reason)
		}
	}
	return out
}

// Partial implements Tabular.
func (d *UpstreamDiff) Partial() Warnings { return nil }

// DiffUpstream compares an image sailmaker built with a Dockerfile of its
// upstream source, item by item: the base, USER, WORKDIR, ENV,
// ENTRYPOINT, CMD and the files COPY and ADD write against the files the
// image adds over its base. What a Dockerfile leaves alone is its base's;
// so is the image's. Differences in o.Allow are allowed, with their
// reason.
func (a *Auditor) DiffUpstream(ctx context.Context, image string, o UpstreamOptions) (*UpstreamDiff, error) {
	ref, err := a.ParseImage(image)
	if err != nil {
		return nil, err
	}
	if (len(o.Dockerfile) == 0) == (o.SourcePath == "") {
		return nil, fmt.Errorf("%w: give the Dockerfile, or its path in the image's source", ErrBadInput)
	}
	if o.Platform == "" {
		o.Platform = "linux/amd64"
	}
	s, err := a.session(ctx)
	if err != nil {
		return nil, err
	}
	top, err := s.readImage(ctx, ref)
	if err != nil {
		return nil, err
	}
	r := top
	if len(top.platforms) > 0 {
		r = nil
		for _, c := range top.platforms {
			if samePlatformName(strings.Join(c.Platforms, ""), o.Platform) {
				r = c
			}
		}
		if r == nil {
			return nil, fmt.Errorf("%w: %s has no %s image (it has %s)", ErrBadInput, top.Name(), o.Platform, strings.Join(top.Platforms, ", "))
		}
	} else if r.config != nil && r.config.OS != "" {
		o.Platform = r.config.OS + "/" + r.config.Architecture
		if r.config.Variant != "" {
			o.Platform += "/" + r.config.Variant
		}
	}
	if r.manifest == nil || r.config == nil {
		return nil, fmt.Errorf("%w: %s is not an image", ErrBadInput, top.Name())
	}
	if o.SourcePath != "" {
		if o.Dockerfile, err = a.sourceFile(ctx, r, o.SourcePath); err != nil {
			return nil, err
		}
		o.DockerfileName = o.SourcePath + " at " + r.Commit
	}
	args := map[string]string{}
	for k, v := range o.BuildArgs {
		args[k] = v
	}
	defaults := map[string]string{"BASE_DISTRIBUTION": "debug", "proxy_version": r.label(builder.LabelProxySHA), "istio_version": r.label(builder.AnnotationVersion)}
	if strings.HasSuffix(r.Tag, "-distroless") {
		defaults["BASE_DISTRIBUTION"] = "distroless"
	}
	for k, v := range defaults {
		if _, ok := args[k]; !ok && v != "" {
			args[k] = v
		}
	}
	df, err := ParseDockerfile(o.Dockerfile, args, o.Platform)
	if err != nil {
		return nil, err
	}

	// The image's base: its config and layers.
	baseCfg, baseLayers, err := s.baseOf(ctx, r)
	if err != nil {
		return nil, err
	}
	added, err := s.addedFiles(ctx, r, baseLayers)
	if err != nil {
		return nil, err
	}

	d := &UpstreamDiff{Image: r.Reference, Platform: o.Platform, Dockerfile: o.DockerfileName, BuildArgs: args, Stages: df.Stages, Items: []UpstreamItem{}, Notes: df.Notes}
	add := func(item, up, im string) {
		it := UpstreamItem{Item: item, Upstream: up, Image: im, Status: UpstreamSame}
		if up != im {
			it.Status = UpstreamDiffers
			if why, ok := allowed(item, o.Allow); ok {
				it.Status, it.Reason = UpstreamAllowed, why
			}
		}
		switch it.Status {
		case UpstreamDiffers:
			d.Differences++
		case UpstreamAllowed:
			d.Allowed++
		}
		d.Items = append(d.Items, it)
	}
	imgBase := r.BaseName
	if r.BaseDigest != "" {
		imgBase += "@" + r.BaseDigest
	}
	add("base", df.Base, imgBase)
	inherited := func(v string) string { return "(the base's) " + quoteEmpty(v) }
	user, workdir := inherited(baseCfg.Config.User), inherited(baseCfg.Config.WorkingDir)
	if df.User != nil {
		user = *df.User
	}
	if df.Workdir != nil {
		workdir = *df.Workdir
	}
	imUser, imWorkdir := r.config.Config.User, r.config.Config.WorkingDir
	if df.User == nil && imUser == baseCfg.Config.User {
		imUser = inherited(imUser)
	}
	if df.Workdir == nil && imWorkdir == baseCfg.Config.WorkingDir {
		imWorkdir = inherited(imWorkdir)
	}
	add("user", user, imUser)
	add("workdir", workdir, imWorkdir)
	entrypoint, cmd := baseCfg.Config.Entrypoint, baseCfg.Config.Cmd
	if df.EntrypointSet {
		entrypoint, cmd = df.Entrypoint, nil
	}
	if df.CmdSet {
		cmd = df.Cmd
	}
	add("entrypoint", jsonList(entrypoint), jsonList(r.config.Config.Entrypoint))
	add("cmd", jsonList(cmd), jsonList(r.config.Config.Cmd))

	baseEnv, imgEnv := envMap(baseCfg.Config.Env), envMap(r.config.Config.Env)
	want := map[string]string{}
	for k, v := range baseEnv {
		want[k] = v
	}
	for k, v := range df.Env {
		want[k] = v
	}
	for _, k := range unionKeys(want, imgEnv) {
		w, wok := want[k]
		g, gok := imgEnv[k]
		if _, set := df.Env[k]; !set && wok && gok && w == g {
			continue // the base's, unchanged on both sides
		}
		add("env:"+k, valueOr(w, wok), valueOr(g, gok))
	}

	files := map[string]bool{}
	for p := range df.Files {
		files[p] = true
	}
	for p := range added {
		files[p] = true
	}
	for _, p := range sortedSet(files) {
		up, im := "(not copied)", "(not in the image)"
		if f, ok := df.Files[p]; ok {
			up = "COPY " + f.Source
			if f.Dir {
				d.Notes = append(d.Notes, fmt.Sprintf("line %d: %s may be a directory or pattern: the files it copies under %s are not known without the build context", f.Line, f.Source, p))
			}
		}
		if kind, ok := added[p]; ok {
			im = kind
			if _, inDF := df.Files[p]; inDF {
				im = up // present on both sides: the file is what the Dockerfile copies
			}
		}
		add("file:"+p, up, im)
	}
	return d, nil
}

// allowed says whether item's difference is allowed, and why.
func allowed(item string, allow []Deliberate) (string, bool) {
	for _, a := range allow {
		if a.Item == item {
			return a.Reason, true
		}
		if ok, _ := path.Match(a.Item, item); ok {
			return a.Reason, true
		}
	}
	return "", false
}

// baseOf reads the config and layers of the image r names as its base
// (for a multi-platform base, its image for r's platform).
func (s *session) baseOf(ctx context.Context, r *record) (*v1.ConfigFile, []v1.Descriptor, error) {
	if r.BaseName == "" || r.BaseDigest == "" {
		return nil, nil, fmt.Errorf("%s names no base image (%s, %s): it was not built by sailmaker", r.Name(), builder.AnnotationBaseName, builder.AnnotationBaseDigest)
	}
	baseRef, err := s.a.rc.ParseRef(r.BaseName)
	if err != nil {
		return nil, nil, fmt.Errorf("the base %s: %w", r.BaseName, err)
	}
	bd, err := v1.NewHash(r.BaseDigest)
	if err != nil {
		return nil, nil, fmt.Errorf("the base digest %q: %w", r.BaseDigest, err)
	}
	repo := baseRef.Context()
	raw, err := s.manifest(ctx, repo, bd)
	if err != nil {
		return nil, nil, fmt.Errorf("reading the base %s: %w", repo.Digest(r.BaseDigest), err)
	}
	pm, err := parseManifest(raw)
	if err == nil && pm.index != nil {
		pm, err = s.platformChild(ctx, repo, pm.index, r.config.OS, r.config.Architecture)
	}
	if err != nil || pm == nil || pm.image == nil {
		return nil, nil, fmt.Errorf("the base %s is not an image for %s/%s", repo.Digest(r.BaseDigest), r.config.OS, r.config.Architecture)
	}
	cfgRaw, err := s.blob(ctx, repo, pm.image.Config.Digest)
	if err != nil {
		return nil, nil, err
	}
	var cf v1.ConfigFile
	if err := json.Unmarshal(cfgRaw, &cf); err != nil {
		return nil, nil, fmt.Errorf("the base's config: %w", err)
	}
	return &cf, pm.image.Layers, nil
}

// addedFiles lists the regular files and links of the layers r adds over
// its base, by absolute path.
func (s *session) addedFiles(ctx context.Context, r *record, base []v1.Descriptor) (map[string]string, error) {
	layers := r.manifest.Layers
	if len(layers) < len(base) {
		return nil, fmt.Errorf("%s has fewer layers than its base", r.Name())
	}
	out := map[string]string{}
	for _, l := range layers[len(base):] {
		rl, err := remote.Layer(r.repo.Digest(l.Digest.String()), s.remote(ctx)...)
		if err != nil {
			return nil, err
		}
		rc, err := rl.Uncompressed()
		if err != nil {
			return nil, fmt.Errorf("reading layer %s: %w", l.Digest, err)
		}
		tr := tar.NewReader(rc)
		for {
			h, err := tr.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				rc.Close()
				return nil, fmt.Errorf("reading layer %s: %w", l.Digest, err)
			}
			p := "/" + strings.TrimPrefix(path.Clean("/"+strings.TrimPrefix(h.Name, "./")), "/")
			switch h.Typeflag {
			case tar.TypeReg:
				out[p] = fmt.Sprintf("(a file, mode %04o)", h.Mode&0o7777)
			case tar.TypeSymlink, tar.TypeLink:
				out[p] = "(a link to " + h.Linkname + ")"
			}
		}
		rc.Close()
	}
	return out, nil
}

// sourceFile reads a file of r's source at its revision from the git
// mirror builds on this machine keep (<cache>/git).
func (a *Auditor) sourceFile(ctx context.Context, r *record, p string) ([]byte, error) {
	src, commit := r.Source, r.Commit
	if src == "" || commit == "" {
		return nil, fmt.Errorf("%w: %s names no source and revision (%s, %s)", ErrBadInput, r.Name(), builder.AnnotationSource, builder.AnnotationRevision)
	}
	if strings.HasPrefix(p, "/") || strings.Contains(p, "..") || strings.HasPrefix(p, "-") {
		return nil, fmt.Errorf("%w: %q must be a path relative to the source's root", ErrBadInput, p)
	}
	mirror := builder.SourceMirror(a.cfg, src)
	if _, err := os.Stat(filepath.Join(mirror, "HEAD")); err != nil {
		return nil, fmt.Errorf("%w: no copy of %s on this machine (%s): give the Dockerfile as a file", ErrNotFound, src, mirror)
	}
	cmd := exec.CommandContext(ctx, "git", "--git-dir", mirror, "show", commit+":"+p)
	cmd.Env = append(os.Environ(), "GIT_TERMINAL_PROMPT=0", "LC_ALL=C")
	out, err := cmd.Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return nil, fmt.Errorf("%w: %s at %s: %s", ErrNotFound, p, commit, strings.TrimSpace(string(ee.Stderr)))
		}
		return nil, err
	}
	return out, nil
}

func samePlatformName(have, want string) bool {
	h, w := strings.Split(have, "/"), strings.Split(want, "/")
	if len(h) < 2 || len(w) < 2 {
		return have == want
	}
	return h[0] == w[0] && h[1] == w[1] && (len(w) < 3 || len(h) < 3 || h[2] == w[2])
}

func quoteEmpty(v string) string {
	if v == "" {
		return `""`
	}
	return v
}

func jsonList(l []string) string {
	if len(l) == 0 {
		return "[]"
	}
	b, _ := json.Marshal(l)
	return string(b)
}

func envMap(env []string) map[string]string {
	m := map[string]string{}
	for _, e := range env {
		k, v, _ := strings.Cut(e, "=")
		m[k] = v
	}
	return m
}

func unionKeys(a, b map[string]string) []string {
	set := map[string]bool{}
	for k := range a {
		set[k] = true
	}
	for k := range b {
		set[k] = true
	}
	return sortedSet(set)
}

func sortedSet(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func valueOr(v string, ok bool) string {
	if !ok {
		return "(not set)"
	}
	return v
}
