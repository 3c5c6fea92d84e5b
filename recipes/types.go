package recipes

import "strings"

// APIVersion is the apiVersion every recipe document carries.
const APIVersion = "sailmaker.dev/v1alpha1"

// The kinds of document this package reads.
const (
	KindRecipe    = "Recipe"
	KindBaseImage = "BaseImage"
)

// Metadata names a document.
type Metadata struct {
	// Name is the recipe's name (Recipe) or the repository in the internal
	// registry (BaseImage).
	Name string `yaml:"name" json:"name"`
	// Version is the upstream release (Recipe) or the image tag (BaseImage).
	Version string `yaml:"version" json:"version"`
}

// Recipe (kind Recipe) describes how to build one upstream release.
type Recipe struct {
	APIVersion string     `yaml:"apiVersion" json:"apiVersion"`
	Kind       string     `yaml:"kind" json:"kind"`
	Metadata   Metadata   `yaml:"metadata" json:"metadata"`
	Spec       RecipeSpec `yaml:"spec" json:"spec"`

	file     string            // where the recipe was read from, for messages
	patches  []Patch           // the contents of Spec.Source.Patches, in order
	warnings []ValidationError // see Warnings
	raw      *Recipe           // the recipe before variable expansion
	lines    lineIndex         // field path -> line, for messages after parsing
}

// RecipeSpec is the body of a Recipe.
type RecipeSpec struct {
	Source    Source    `yaml:"source" json:"source"`
	Toolchain Toolchain `yaml:"toolchain" json:"toolchain"`
	// Platforms are the platforms every image is built for (default
	// linux/amd64). With more than one, each tag names an OCI image index
	// with one image per platform; ${TARGET_ARCH} in make targets, build:
	// paths and the Envoy URL is each platform's architecture.
	Platforms []string `yaml:"platforms,omitempty" json:"platforms,omitempty"`
	Make      Make     `yaml:"make" json:"make"`
	Inputs    Inputs   `yaml:"inputs,omitempty" json:"inputs,omitzero"`
	Images    []Image  `yaml:"images" json:"images"`
	// Packages are Debian packages made from the same build (see
	// packages.go); optional.
	Packages []Package `yaml:"packages,omitempty" json:"packages,omitempty"`
}

// Source pins the upstream source tree.
type Source struct {
	// Git is an http(s), file or ssh URL (or git@host:path).
	Git string `yaml:"git" json:"git"`
	// Tag is the release tag; it must resolve to Commit.
	Tag string `yaml:"tag" json:"tag"`
	// Commit is the 40-hex commit the tag names.
	Commit string `yaml:"commit" json:"commit"`
	// Patches are applied in order with `git apply`; paths are relative to
	// the recipe file's directory.
	Patches []string `yaml:"patches,omitempty" json:"patches,omitempty"`
}

// Toolchain names the image the build runs in.
type Toolchain struct {
	// Builder is a fully qualified image reference.
	Builder string `yaml:"builder" json:"builder"`
	// Go is the Go version in that image.
	Go string `yaml:"go" json:"go"`
}

// Make says how make is run.
type Make struct {
	// Variables are passed as VAR=value, sorted by name.
	Variables map[string]string `yaml:"variables,omitempty" json:"variables,omitempty"`
	// Targets are relative to the source root.
	Targets []string `yaml:"targets" json:"targets"`
}

// Inputs are artifacts fetched outside the build and verified by checksum.
type Inputs struct {
	Envoy *Envoy `yaml:"envoy,omitempty" json:"envoy,omitempty"`
}

// Envoy is the prebuilt Envoy tarball proxyv2 needs.
type Envoy struct {
	// URL may use ${PROXY_REPO_SHA}.
	URL string `yaml:"url" json:"url"`
	// ProxySHA is istio.deps' PROXY_REPO_SHA (40 hex).
	ProxySHA string `yaml:"proxySHA" json:"proxySHA"`
	// SHA256 is the tarball's sha256 (64 lowercase hex). It may be empty
	// only when Unconfirmed is set.
	SHA256 string `yaml:"sha256,omitempty" json:"sha256,omitempty"`
	// Binary is the path of the envoy binary inside the tarball.
	Binary string `yaml:"binary" json:"binary"`
	// Unconfirmed says SHA256 has not been confirmed against the internal
	// mirror. Such a recipe validates, with a warning; building it needs an
	// explicit override.
	Unconfirmed bool `yaml:"unconfirmed,omitempty" json:"unconfirmed,omitempty"`
	// Arch are the tarballs of other architectures than amd64 (URL, SHA256
	// and Unconfirmed above are amd64's), by TARGET_ARCH: arm64.
	Arch map[string]EnvoyArch `yaml:"arch,omitempty" json:"arch,omitempty"`
}

// EnvoyArch is the Envoy tarball of one architecture.
type EnvoyArch struct {
	// URL is where it is (default: the Envoy URL, with ${TARGET_ARCH}
	// expanded).
	URL string `yaml:"url,omitempty" json:"url,omitempty"`
	// SHA256 is its sha256, required unless Unconfirmed.
	SHA256      string `yaml:"sha256,omitempty" json:"sha256,omitempty"`
	Unconfirmed bool   `yaml:"unconfirmed,omitempty" json:"unconfirmed,omitempty"`
}

// EnvoyArtifact is the Envoy tarball one architecture's build uses.
type EnvoyArtifact struct {
	Arch        string
	URL         string // ${TARGET_ARCH} expanded
	SHA256      string
	Unconfirmed bool
}

// For is the tarball of arch (amd64, arm64): the top-level url and sha256
// for amd64, arch.<arch> for the others (with the top-level url unless it
// names its own). ok is false when the recipe has none for arch.
func (e *Envoy) For(arch string) (a EnvoyArtifact, ok bool) {
	if e == nil {
		return EnvoyArtifact{}, false
	}
	if arch == DefaultArch {
		return EnvoyArtifact{Arch: arch, URL: ExpandTargetArch(e.URL, arch), SHA256: e.SHA256, Unconfirmed: e.Unconfirmed}, true
	}
	x, ok := e.Arch[arch]
	if !ok {
		return EnvoyArtifact{}, false
	}
	u := x.URL
	if u == "" {
		u = e.URL
	}
	return EnvoyArtifact{Arch: arch, URL: ExpandTargetArch(u, arch), SHA256: x.SHA256, Unconfirmed: x.Unconfirmed}, true
}

// Image is one image the recipe produces.
type Image struct {
	Name       string            `yaml:"name" json:"name"`
	Repository string            `yaml:"repository" json:"repository"`
	Tag        string            `yaml:"tag" json:"tag"`
	Base       string            `yaml:"base" json:"base"`
	Files      []File            `yaml:"files" json:"files"`
	User       string            `yaml:"user,omitempty" json:"user,omitempty"`
	Entrypoint []string          `yaml:"entrypoint,omitempty" json:"entrypoint,omitempty"`
	Cmd        []string          `yaml:"cmd,omitempty" json:"cmd,omitempty"`
	Env        map[string]string `yaml:"env,omitempty" json:"env,omitempty"`
	Labels     map[string]string `yaml:"labels,omitempty" json:"labels,omitempty"`
	Workdir    string            `yaml:"workdir,omitempty" json:"workdir,omitempty"`
}

// File is one file copied into an image.
type File struct {
	// From is build:PATH, source:PATH or input:envoy.
	From string `yaml:"from" json:"from"`
	// To is the absolute path in the image (or package).
	To string `yaml:"to,omitempty" json:"to"`
	// Mode is an octal string; empty means 0755 for build: and input:,
	// 0644 for source:.
	Mode string `yaml:"mode,omitempty" json:"mode,omitempty"`
}

// The kinds of File source.
const (
	FromBuild  = "build"
	FromSource = "source"
	FromInput  = "input"
)

// Source splits From into its kind (build, source or input) and path. A
// From without a known prefix gives an empty kind.
func (f File) Source() (kind, path string) {
	for _, k := range []string{FromBuild, FromSource, FromInput} {
		if p, ok := strings.CutPrefix(f.From, k+":"); ok {
			return k, p
		}
	}
	return "", f.From
}

// FileMode is the mode the file gets in the image: Mode, or the default for
// its kind. It returns 0 for a Mode that does not parse (which validation
// refuses).
func (f File) FileMode() uint32 {
	if f.Mode == "" {
		if kind, _ := f.Source(); kind == FromSource {
			return 0o644
		}
		return 0o755
	}
	m, err := parseMode(f.Mode)
	if err != nil {
		return 0
	}
	return m
}

// Patch is one patch file of a recipe, read when the recipe was loaded.
type Patch struct {
	// Path is as written in the recipe.
	Path string
	// SHA256 is the lowercase hex sha256 of Data.
	SHA256 string
	Data   []byte
}

// BaseImage (kind BaseImage) describes an internal base image built from
// Debian packages.
type BaseImage struct {
	APIVersion string        `yaml:"apiVersion" json:"apiVersion"`
	Kind       string        `yaml:"kind" json:"kind"`
	Metadata   Metadata      `yaml:"metadata" json:"metadata"`
	Spec       BaseImageSpec `yaml:"spec" json:"spec"`

	file string // where it was read from, for messages
}

// BaseImageSpec is the body of a BaseImage.
type BaseImageSpec struct {
	Suite string `yaml:"suite" json:"suite"`
	// Variant is mmdebstrap's variant; a distroless image only extracts
	// its packages (variant extract, the default there).
	Variant  string   `yaml:"variant,omitempty" json:"variant,omitempty"`
	Packages []string `yaml:"packages" json:"packages"`
	// Platforms are the platforms built (default linux/amd64). With more
	// than one, the tag names an OCI image index with one image each.
	Platforms []string `yaml:"platforms,omitempty" json:"platforms,omitempty"`
	// SourceDateEpoch is the fixed timestamp for reproducible output.
	SourceDateEpoch int64  `yaml:"sourceDateEpoch" json:"sourceDateEpoch"`
	Users           []User `yaml:"users,omitempty" json:"users,omitempty"`
	// Sudoers are lines for /etc/sudoers.d/sailmaker.
	Sudoers []string `yaml:"sudoers,omitempty" json:"sudoers,omitempty"`
	// Alternatives are set with update-alternatives --set after the
	// packages are installed.
	Alternatives []Alternative `yaml:"alternatives,omitempty" json:"alternatives,omitempty"`
	// Distroless, if set, makes an image of selected files of the
	// packages only: no shell, no package manager.
	Distroless *Distroless       `yaml:"distroless,omitempty" json:"distroless,omitempty"`
	Go         *GoToolchain      `yaml:"go,omitempty" json:"go,omitempty"`
	Env        map[string]string `yaml:"env,omitempty" json:"env,omitempty"`
	Labels     map[string]string `yaml:"labels,omitempty" json:"labels,omitempty"`
	// User and Workdir go into the image config (USER, WORKDIR).
	User    string `yaml:"user,omitempty" json:"user,omitempty"`
	Workdir string `yaml:"workdir,omitempty" json:"workdir,omitempty"`
}

// User is a user created in a base image (with a group of the same name and
// id).
type User struct {
	Name string `yaml:"name" json:"name"`
	UID  int    `yaml:"uid" json:"uid"`
	// Home is the home directory (default /home/NAME), created unless it
	// is /nonexistent.
	Home string `yaml:"home,omitempty" json:"home,omitempty"`
}

// DefaultPlatform is what a recipe without spec.platforms builds, and
// DefaultArch its architecture: the one whose Envoy is inputs.envoy's own.
const (
	DefaultPlatform = "linux/amd64"
	DefaultArch     = "amd64"
)

// PlatformList is the platforms the recipe builds: spec.platforms, or
// linux/amd64.
func (s *RecipeSpec) PlatformList() []string {
	if len(s.Platforms) == 0 {
		return []string{DefaultPlatform}
	}
	return s.Platforms
}

// MultiPlatform says whether the recipe's tags name image indexes (more
// than one platform) rather than images.
func (s *RecipeSpec) MultiPlatform() bool { return len(s.Platforms) > 1 }

// ArchOf is the architecture of a platform os/arch ("linux/arm64" gives
// "arm64"): what TARGET_ARCH is for it.
func ArchOf(platform string) string {
	_, arch, _ := strings.Cut(platform, "/")
	arch, _, _ = strings.Cut(arch, "/")
	return arch
}

// ExpandTargetArch replaces ${TARGET_ARCH} in s with arch: the builder
// does so per platform in make targets, build: paths and the Envoy URL.
func ExpandTargetArch(s, arch string) string {
	return strings.ReplaceAll(s, "${"+VarTargetArch+"}", arch)
}

// TargetsFor are the make targets for arch, ${TARGET_ARCH} expanded. A
// target that names another platform's output directory
// (out/linux_amd64/istioctl when arch is arm64) is made by that
// platform's build only, and left out.
func (m Make) TargetsFor(arch string) []string {
	out := make([]string, 0, len(m.Targets))
	for _, t := range m.Targets {
		if a, ok := PlatformDirArch(t); ok && a != arch {
			continue
		}
		out = append(out, ExpandTargetArch(t, arch))
	}
	return out
}

// PlatformDirArch is the architecture of the platform output directory p
// names (upstream's out/linux_amd64/...), if it names one.
func PlatformDirArch(p string) (string, bool) {
	m := platformDirRE.FindStringSubmatch(p)
	if m == nil {
		return "", false
	}
	return m[2], true
}

// For is f with ${TARGET_ARCH} in its source expanded for arch.
func (f File) For(arch string) File {
	f.From = ExpandTargetArch(f.From, arch)
	return f
}

// PlatformList is the platforms a base is built for: linux/amd64 when
// spec.platforms is empty.
func (s *BaseImageSpec) PlatformList() []string {
	if len(s.Platforms) == 0 {
		return []string{"linux/amd64"}
	}
	return s.Platforms
}

// HomeDir is u's home directory.
func (u User) HomeDir() string {
	if u.Home != "" {
		return u.Home
	}
	return "/home/" + u.Name
}

// Alternative is one `update-alternatives --set NAME PATH`.
type Alternative struct {
	Name string `yaml:"name" json:"name"`
	Path string `yaml:"path" json:"path"`
}

// Distroless says which files of the extracted packages make the image.
type Distroless struct {
	// Files are absolute paths or path.Match patterns (matched one path
	// element at a time) of files in the packages. A directory brings
	// everything under it, a symbolic link its target, and an ELF
	// executable or library its interpreter and the shared libraries it
	// needs (DT_NEEDED), recursively.
	Files []string `yaml:"files" json:"files"`
	// Links are symbolic links to add: path -> target.
	Links map[string]string `yaml:"links,omitempty" json:"links,omitempty"`
	// Dirs are empty directories to add: path -> octal mode.
	Dirs map[string]string `yaml:"dirs,omitempty" json:"dirs,omitempty"`
	// CACertificates writes /etc/ssl/certs/ca-certificates.crt from the
	// ca-certificates package, as its update-ca-certificates would.
	CACertificates bool `yaml:"caCertificates,omitempty" json:"caCertificates,omitempty"`
}

// GoToolchain adds a Go toolchain to a base image.
type GoToolchain struct {
	Version string `yaml:"version" json:"version"`
}
