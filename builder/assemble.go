package builder

import (
	"archive/tar"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"hash"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/sailmaker/sailmaker/builder/layer"
	"github.com/sailmaker/sailmaker/internal/atomicfile"
	"github.com/sailmaker/sailmaker/recipes"
)

// Labels and annotations sailmaker puts on every image it builds. The OCI
// ones are standard; BuildKit does not set base.name/base.digest, so we do.
const (
	AnnotationSource     = "org.opencontainers.image.source"
	AnnotationRevision   = "org.opencontainers.image.revision"
	AnnotationVersion    = "org.opencontainers.image.version"
	AnnotationCreated    = "org.opencontainers.image.created"
	AnnotationTitle      = "org.opencontainers.image.title"
	AnnotationBaseName   = "org.opencontainers.image.base.name"
	AnnotationBaseDigest = "org.opencontainers.image.base.digest"
	LabelRecipe          = "dev.sailmaker.recipe"
	LabelRecipeDigest    = "dev.sailmaker.recipe.digest"
	LabelTag             = "dev.sailmaker.source.tag"
	LabelBuilder         = "dev.sailmaker.builder"
	LabelBuilderDigest   = "dev.sailmaker.builder.digest"
	LabelGoVersion       = "dev.sailmaker.go.version"
	LabelEnvoySHA256     = "dev.sailmaker.envoy.sha256"
	LabelEnvoyURL        = "dev.sailmaker.envoy.url"
	LabelProxySHA        = "dev.sailmaker.envoy.proxy-sha"
	LabelInputs          = "dev.sailmaker.inputs"
	LabelMakeTargets     = "dev.sailmaker.make.targets"
	LabelEnvoyOverride   = "dev.sailmaker.envoy.sha256.override"
	LabelBuiltBy         = "dev.sailmaker.built-by"
	builtByValue         = "sailmaker"
	// assemblyFormatRevision is part of every build's inputs key: bump it
	// when the same inputs give other bytes, so that no-op detection builds
	// again. 2: layers compressed in parallel at gzip's fastest level.
	assemblyFormatRevision = "2"
)

// Provenance is what went into an image, recorded as labels and annotations.
type Provenance struct {
	RecipeID      string
	RecipeDigest  string
	SourceURL     string
	Tag           string
	Commit        string
	Version       string
	Created       time.Time
	Builder       string
	BuilderDigest string
	GoVersion     string
	EnvoySHA256   string
	EnvoyURL      string
	ProxySHA      string
	EnvoyOverride bool
	MakeTargets   []string
	InputsKey     string
	// Platform is the image's os/arch, Arch its TARGET_ARCH.
	Platform string
	Arch     string
}

// BaseImage is a base image resolved to its digest: Image is its image for
// Platform (what an image for that platform is built on), Digest what the
// image names as its base (base.digest): that image's digest for a
// multi-platform recipe, what Ref resolves to (an index, for a base of
// several platforms) for a single-platform one.
type BaseImage struct {
	Ref      string // as the recipe names it
	Digest   v1.Hash
	Image    v1.Image
	Platform string // os/arch
}

// Assemble lays the recipe's files for one image on its base, the way
// upstream's Dockerfile does, in one reproducible layer. outDir is the
// exported compile result; envoyDir holds the verified Envoy; open opens
// the files found there.
//
// With known, the layer is kept for the next build (a memo beside it
// records what it holds), and the last build's is taken again when its
// files are the same bytes (see reuseLayer).
func Assemble(img recipes.Image, base BaseImage, p Provenance, outDir, envoyDir, workDir string, open Opener, known Known) (v1.Image, error) {
	var names []string
	for _, f := range img.Files {
		names = append(names, f.To)
	}
	out, cf, err := layerFrom(img, base.Image, func(f recipes.File) (string, error) {
		return fileSource(img, f, outDir, envoyDir)
	}, open, known, filepath.Join(workDir, img.Name+".tar.gz"), v1.History{
		Created:   v1.Time{Time: p.Created},
		CreatedBy: "sailmaker: COPY " + strings.Join(names, " "),
		Comment:   p.RecipeID,
	})
	if err != nil {
		return nil, err
	}
	labels := map[string]string{}
	for k, v := range cf.Config.Labels {
		labels[k] = v
	}
	ann := annotations(img, base, p)
	for k, v := range ann {
		labels[k] = v
	}
	for k, v := range img.Labels {
		labels[k] = v
	}
	cf.Config.Labels = labels
	out, err = mutate.ConfigFile(out, cf)
	if err != nil {
		return nil, err
	}
	return mutate.Annotations(out, ann).(v1.Image), nil
}

// Layer lays img's files, found on this machine by source, in one
// reproducible layer (written to layerPath, times from history.Created) on
// base, and sets img's user, entrypoint, cmd, working directory and env over
// the base's. It returns the image and a copy of its config for the caller
// to add to (labels) before mutate.ConfigFile.
func Layer(img recipes.Image, base v1.Image, source func(recipes.File) (string, error), layerPath string, history v1.History) (v1.Image, *v1.ConfigFile, error) {
	return layerFrom(img, base, source, OpenFile, nil, layerPath, history)
}

// Opener opens a file an image takes, by its path on this machine, and
// says its size.
type Opener func(path string) (io.ReadCloser, int64, error)

// OpenFile opens a file that is whole on disk.
func OpenFile(p string) (io.ReadCloser, int64, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, 0, err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, 0, err
	}
	return f, fi.Size(), nil
}

// layerFrom is Layer with the files opened by open and, with known, the
// layer kept for the next build and the last build's taken again.
func layerFrom(img recipes.Image, base v1.Image, source func(recipes.File) (string, error), open Opener, known Known, layerPath string, history v1.History) (v1.Image, *v1.ConfigFile, error) {
	srcs := make([]string, len(img.Files))
	for i, f := range img.Files {
		src, err := source(f)
		if err != nil {
			return nil, nil, err
		}
		srcs[i] = src
	}
	created := history.Created.Time
	var l v1.Layer
	if known != nil {
		var err error
		if l, err = reuseLayer(img, srcs, known, created, layerPath); err != nil {
			return nil, nil, err
		}
	}
	if l == nil {
		var err error
		if l, err = writeLayer(img, srcs, open, known != nil, created, layerPath); err != nil {
			return nil, nil, err
		}
	}
	out, err := mutate.Append(base, mutate.Addendum{Layer: l, MediaType: types.OCILayer, History: history})
	if err != nil {
		return nil, nil, err
	}
	cf, err := out.ConfigFile()
	if err != nil {
		return nil, nil, err
	}
	cf = cf.DeepCopy()
	cf.Created = v1.Time{Time: created}
	setRuntime(cf, img)
	return out, cf, nil
}

// writeLayer writes img's layer from its files (at srcs, opened by open)
// to layerPath; with memo, it records what the layer holds beside it for
// the next build (layerMemo), from the bytes it wrote.
func writeLayer(img recipes.Image, srcs []string, open Opener, memo bool, created time.Time, layerPath string) (v1.Layer, error) {
	memoPath := layerPath + layerMemoSuffix
	// The memo goes first: a layer written halfway has none.
	if err := os.Remove(memoPath); err != nil && !os.IsNotExist(err) {
		return nil, err
	}
	var files []layer.File
	var sums []hash.Hash
	defer func() {
		for _, f := range files {
			f.Data.(io.Closer).Close()
		}
	}()
	for i, f := range img.Files {
		r, size, err := open(srcs[i])
		if err != nil {
			return nil, fmt.Errorf("image %s: %s: %w (did the make targets produce it?)", img.Name, f.From, err)
		}
		var data io.Reader = r
		if memo {
			h := sha256.New()
			sums = append(sums, h)
			data = io.TeeReader(r, h)
		}
		files = append(files, layer.File{Path: f.To, Mode: int64(f.FileMode()), Data: readCloser{data, r}, Size: size})
	}
	l, err := layer.Write(layerPath, func(tw *tar.Writer) error {
		return layer.WriteFiles(tw, files, created)
	}, layer.Parallel())
	if err != nil || !memo {
		return l, err
	}
	lf := make([]layerMemoFile, len(files))
	for i, f := range files {
		lf[i] = layerMemoFile{Path: f.Path, Mode: f.Mode, UID: f.UID, GID: f.GID, Size: f.Size, SHA256: hex.EncodeToString(sums[i].Sum(nil))}
	}
	key := layerKey(created, lf)
	if key == "" {
		return l, nil
	}
	m := layerMemo{Key: key}
	if m.Digest, err = l.Digest(); err == nil {
		if m.DiffID, err = l.DiffID(); err == nil {
			m.Size, err = l.Size()
		}
	}
	if err != nil {
		return nil, err
	}
	b, err := json.Marshal(m)
	if err != nil {
		return nil, err
	}
	return l, atomicfile.Write(memoPath, b)
}

type readCloser struct {
	io.Reader
	io.Closer
}

// setRuntime sets img's user, entrypoint, cmd, working directory and env
// over the base's in cf.
func setRuntime(cf *v1.ConfigFile, img recipes.Image) {
	// As a Dockerfile without USER, an image without a user keeps its
	// base's (proxyv2's on the distroless iptables base).
	if img.User != "" {
		cf.Config.User = img.User
	}
	cf.Config.Entrypoint = img.Entrypoint
	cf.Config.Cmd = img.Cmd
	if img.Workdir != "" {
		cf.Config.WorkingDir = img.Workdir
	}
	cf.Config.Env = MergeEnv(cf.Config.Env, img.Env)
}

// runtimeConfig is the config img has on base, as far as running its
// programs goes (what setRuntime sets over the base's), without laying
// out its files.
func runtimeConfig(img recipes.Image, base v1.Image) (*v1.ConfigFile, error) {
	cf, err := base.ConfigFile()
	if err != nil {
		return nil, err
	}
	cf = cf.DeepCopy()
	setRuntime(cf, img)
	return cf, nil
}

// fileSource is where on this machine the file f of img comes from.
func fileSource(img recipes.Image, f recipes.File, outDir, envoyDir string) (string, error) {
	kind, rel := f.Source()
	switch kind {
	case recipes.FromBuild, recipes.FromSource:
		return filepath.Join(outDir, kind, rel), nil
	case recipes.FromInput:
		if rel != "envoy" || envoyDir == "" {
			return "", fmt.Errorf("image %s: unknown input %q", img.Name, f.From)
		}
		return filepath.Join(envoyDir, "envoy"), nil
	default:
		return "", fmt.Errorf("image %s: unknown file source %q", img.Name, f.From)
	}
}

func annotations(img recipes.Image, base BaseImage, p Provenance) map[string]string {
	a := map[string]string{
		AnnotationSource:     p.SourceURL,
		AnnotationRevision:   p.Commit,
		AnnotationVersion:    p.Version,
		AnnotationCreated:    p.Created.UTC().Format(time.RFC3339),
		AnnotationTitle:      img.Name,
		AnnotationBaseName:   base.Ref,
		AnnotationBaseDigest: base.Digest.String(),
		LabelRecipe:          p.RecipeID,
		LabelRecipeDigest:    p.RecipeDigest,
		LabelTag:             p.Tag,
		LabelBuilder:         p.Builder,
		LabelBuilderDigest:   p.BuilderDigest,
		LabelGoVersion:       p.GoVersion,
		LabelInputs:          p.InputsKey,
		LabelMakeTargets:     strings.Join(p.MakeTargets, " "),
		LabelBuiltBy:         builtByValue,
	}
	if p.EnvoySHA256 != "" {
		a[LabelEnvoySHA256] = p.EnvoySHA256
		a[LabelEnvoyURL] = p.EnvoyURL
		a[LabelProxySHA] = p.ProxySHA
		if p.EnvoyOverride {
			a[LabelEnvoyOverride] = "true"
		}
	}
	return a
}

// MergeEnv sets vars over base (NAME=value entries), keeping base's order
// and appending new names sorted: how an image's env is laid over its base's.
func MergeEnv(base []string, vars map[string]string) []string {
	out := make([]string, 0, len(base)+len(vars))
	seen := map[string]bool{}
	for _, e := range base {
		k, _, _ := strings.Cut(e, "=")
		if v, ok := vars[k]; ok {
			e = k + "=" + v
		}
		seen[k] = true
		out = append(out, e)
	}
	var extra []string
	for k, v := range vars {
		if !seen[k] {
			extra = append(extra, k+"="+v)
		}
	}
	sort.Strings(extra)
	return append(out, extra...)
}
