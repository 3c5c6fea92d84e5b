package recipes

import (
	"fmt"
	"net/mail"
	"path"
	"regexp"
	"slices"
	"strings"

	"github.com/sailmaker/sailmaker/packaging/deb"
	"github.com/sailmaker/sailmaker/packaging/istio"
)

// The types of spec.packages entries: what packaging/istio makes of them.
const (
	// PackageIstioCNI is the istio-cni Debian package: the CNI plugin at
	// /opt/cni/bin/istio-cni, with README.Debian, an example CNI
	// configuration entry, the copyright file and the changelog.
	PackageIstioCNI = "istio-cni"
	// PackageIstioctl is one release's istioctl: the build pushes the
	// binary by itself to the entry's repository (tag ${VERSION}), and the
	// package Name (istioctl-versions) is made after the push from every
	// istioctl that repository holds, side by side as
	// /usr/bin/istioctl-<version without dots>.
	PackageIstioctl = "istioctl"
)

// PackageTypes are the types a package entry may have.
var PackageTypes = []string{PackageIstioCNI, PackageIstioctl}

// Package is one Debian package a recipe makes from the binaries of its
// build.
type Package struct {
	// Name is the Debian package name (Package:), e.g. istio-cni; for an
	// istioctl entry, the multi-version package's (istioctl-versions).
	Name string `yaml:"name" json:"name"`
	// Type is istio-cni or istioctl (PackageTypes).
	Type string `yaml:"type" json:"type"`
	// Repository is where the artifact goes in the internal registry: the
	// .deb (istio-cni), or this release's istioctl binary (istioctl; the
	// package itself goes to CollectionRepository).
	Repository string `yaml:"repository" json:"repository"`
	// Version is the Debian version, [epoch:]upstream[-revision]
	// (istio-cni). An istioctl package's version is derived from the
	// releases it holds, so it has none here.
	Version string `yaml:"version,omitempty" json:"version,omitempty"`
	// Architecture is the Debian architecture; default: TARGET_ARCH of
	// spec.make.variables, else amd64.
	Architecture string `yaml:"architecture,omitempty" json:"architecture,omitempty"`
	// Maintainer is "Full Name <email>" (Maintainer:).
	Maintainer string `yaml:"maintainer" json:"maintainer"`
	// Files are the files of the package, from the build (build:PATH, a
	// make target) or the source (source:PATH), each to an absolute path
	// inside the package. An istio-cni package has its plugin at
	// /opt/cni/bin/istio-cni; an istioctl entry has exactly one file, the
	// istioctl binary, whose path (if given) must be
	// /usr/bin/istioctl-<version without dots>.
	Files []File `yaml:"files" json:"files"`
}

// PackageArchitecture is the Debian architecture of p in r: p.Architecture,
// or the Debian name of TARGET_ARCH, or of the platform whose build the
// package's files come from (PackagePlatform: amd64 when the recipe
// builds linux/amd64).
func (r *Recipe) PackageArchitecture(p Package) string {
	if p.Architecture != "" {
		return p.Architecture
	}
	a := r.Spec.Make.Variables[VarTargetArch]
	if a == "" {
		a = ArchOf(r.defaultPackagePlatform())
	}
	switch a {
	case "386":
		return "i386"
	case "arm":
		return "armhf"
	case "ppc64le":
		return "ppc64el"
	default:
		return a
	}
}

// defaultPackagePlatform is where a package without an architecture of
// its own comes from: linux/amd64 if the recipe builds it, else its first
// platform.
func (r *Recipe) defaultPackagePlatform() string {
	all := r.Spec.PlatformList()
	if slices.Contains(all, DefaultPlatform) {
		return DefaultPlatform
	}
	return all[0]
}

// PackagePlatform is the platform whose build p's files come from: the
// one platform of a single-platform recipe (whatever the package's
// architecture says), and in a multi-platform recipe linux/<the package's
// architecture> (amd64 unless it says otherwise). Packages are not made
// for every platform: one build, one .deb.
func (r *Recipe) PackagePlatform(p Package) string {
	if !r.Spec.MultiPlatform() {
		return r.Spec.PlatformList()[0]
	}
	if p.Architecture == "" {
		return r.defaultPackagePlatform()
	}
	return "linux/" + p.Architecture
}

// PackageFiles are p's files with ${TARGET_ARCH} expanded for the
// platform they come from (PackagePlatform).
func (r *Recipe) PackageFiles(p Package) []File {
	arch := ArchOf(r.PackagePlatform(p))
	out := make([]File, len(p.Files))
	for i, f := range p.Files {
		out[i] = f.For(arch)
	}
	return out
}

// BuildVersion is the release the build stamps into its binaries: the
// VERSION make variable, else metadata.version.
func (r *Recipe) BuildVersion() string {
	if v := r.Spec.Make.Variables["VERSION"]; v != "" {
		return v
	}
	return r.Metadata.Version
}

// IstioctlPath is where the istioctl-versions package installs istioctl of
// version: /usr/bin/istioctl-<version without dots>.
func IstioctlPath(version string) string { return "/usr/bin/" + istio.CommandName(version) }

// CollectionRepository is where the multi-version package of an istioctl
// entry goes: the repository named like the package, next to the
// entry's (istio/istioctl → istio/istioctl-versions).
func (p Package) CollectionRepository() string {
	dir := path.Dir(p.Repository)
	if dir == "." {
		return p.Name
	}
	return dir + "/" + p.Name
}

var tagUnsafeRE = regexp.MustCompile(`[^A-Za-z0-9_.-]`)

// PackageTag is the registry tag of a Debian package of version v: the
// version with each character a tag cannot hold (: + ~) replaced by "_"
// (1.24.2-1 stays, 1.24.2+2.2047006 is 1.24.2_2.2047006).
func PackageTag(v string) string { return tagUnsafeRE.ReplaceAllString(v, "_") }

var debArchRE = regexp.MustCompile(`^[a-z0-9][a-z0-9-]*$`)

func validatePackages(c *collector, r *Recipe) {
	s := &r.Spec
	repos := map[string]string{}
	for i, img := range s.Images {
		repos[img.Repository] = fmt.Sprintf("spec.images[%d]", i)
	}
	if len(s.Packages) > 0 {
		// packaging/istio stamps the release into the packages: it must be
		// one (1.24.2, 1.25.0-beta.1).
		if _, err := istio.ParseVersion(r.BuildVersion()); err != nil {
			field := "metadata.version"
			if _, ok := s.Make.Variables["VERSION"]; ok {
				field = "spec.make.variables.VERSION"
			}
			c.errorf(field, "%q: the packages need the Istio release the build stamps: %v", r.BuildVersion(), err)
		}
	}
	names := map[string]bool{}
	for i := range s.Packages {
		f := fmt.Sprintf("spec.packages[%d]", i)
		p := &s.Packages[i]
		switch err := deb.CheckPackageName(p.Name); {
		case p.Name == "":
			c.errorf(f+".name", "required: the Debian package name, such as istio-cni")
		case err != nil:
			c.errorf(f+".name", "%q: %v", p.Name, err)
		case names[p.Name]:
			c.errorf(f+".name", "another package is already named %q", p.Name)
		}
		names[p.Name] = true

		known := false
		for _, t := range PackageTypes {
			known = known || p.Type == t
		}
		if !known {
			if p.Type == "" {
				c.errorf(f+".type", "required: %s", strings.Join(PackageTypes, " or "))
			} else {
				c.errorf(f+".type", "unknown type %q: use %s", p.Type, strings.Join(PackageTypes, " or "))
			}
		}

		checkRepo := func(field, repo string) {
			switch first, _, _ := strings.Cut(repo, "/"); {
			case repo == "":
				c.errorf(field, "required: the repository of the artifact in the internal registry, such as istio/istio-cni")
			case strings.ContainsAny(first, ".:") || first == "localhost":
				c.errorf(field, "%q names a registry; give only the repository path, packages are pushed to the configured registry", repo)
			case !repoPathRE.MatchString(repo) || len(repo) > 255:
				c.errorf(field, "%q is not a valid repository path (lowercase letters, digits, separators, and /)", repo)
			case repos[repo] != "":
				c.errorf(field, "%s is also the repository of %s; give each its own", repo, repos[repo])
			default:
				repos[repo] = f
			}
		}
		checkRepo(f+".repository", p.Repository)
		if p.Type == PackageIstioctl && p.Repository != "" && p.Name != "" {
			if coll := p.CollectionRepository(); coll == p.Repository {
				c.errorf(f+".repository", "%s would hold both the istioctl binaries and the %s package (which goes to the repository named like the package, next to this one): name the repository after the binary, such as istio/istioctl", p.Repository, p.Name)
			} else {
				checkRepo(f+".repository", coll)
			}
		}

		switch {
		case p.Type == PackageIstioctl && p.Version != "":
			c.errorf(f+".version", "an istioctl package's version is derived from the releases it holds; leave version out")
		case p.Type == PackageIstioctl:
		case p.Version == "":
			c.errorf(f+".version", "required: the Debian version, such as ${VERSION}-1")
		default:
			if err := deb.CheckVersion(p.Version); err != nil {
				c.errorf(f+".version", "%q is not a version dpkg accepts: %v", p.Version, err)
			} else if tag := PackageTag(p.Version); !dockerTagRE.MatchString(tag) {
				c.errorf(f+".version", "%q gives the registry tag %q, which is not a valid tag (at most 128 characters)", p.Version, tag)
			}
		}
		if p.Architecture != "" && (!debArchRE.MatchString(p.Architecture) || p.Architecture == "all") {
			c.errorf(f+".architecture", "%q is not a Debian architecture such as amd64 or arm64", p.Architecture)
		} else if pp := r.PackagePlatform(*p); !slices.Contains(s.PlatformList(), pp) {
			c.errorf(f+".architecture", "%q: a package's files come from the build of its platform, and %s is not one of spec.platforms (%s)", p.Architecture, pp, strings.Join(s.PlatformList(), ", "))
		}
		if addr, err := mail.ParseAddress(p.Maintainer); p.Maintainer == "" {
			c.errorf(f+".maintainer", `required: "Full Name <email@address>" (Debian policy 5.6.2)`)
		} else if err != nil || addr.Name == "" || strings.ContainsAny(p.Maintainer, "\n\r") {
			c.errorf(f+".maintainer", `%q: give "Full Name <email@address>" (Debian policy 5.6.2)`, p.Maintainer)
		}

		targets := map[string]bool{}
		for _, t := range s.Make.TargetsFor(ArchOf(r.PackagePlatform(*p))) {
			targets[path.Clean(t)] = true
		}
		validatePackageFiles(c, r, f, p, targets)
	}
}

// packageTargetDirs are the make targets the packages take from one
// platform's output directory (out/linux_amd64/istioctl): a
// multi-platform recipe may name them (validatePlatforms), and only that
// platform's build makes them.
func packageTargetDirs(r *Recipe) map[string]bool {
	out := map[string]bool{}
	for _, p := range r.Spec.Packages {
		for _, f := range r.PackageFiles(p) {
			if kind, src := f.Source(); kind == FromBuild {
				out[path.Clean(src)] = true
			}
		}
	}
	return out
}

func validatePackageFiles(c *collector, r *Recipe, f string, p *Package, targets map[string]bool) {
	switch {
	case len(p.Files) == 0 && p.Type == PackageIstioctl:
		c.errorf(f+".files", "required: the istioctl binary, such as {from: build:out/linux_amd64/istioctl}")
		return
	case len(p.Files) == 0:
		c.errorf(f+".files", "at least one file is required")
		return
	case len(p.Files) > 1 && p.Type == PackageIstioctl:
		c.errorf(f+".files", "an istioctl entry has exactly one file, the istioctl binary; it has %d", len(p.Files))
	}
	dests := map[string]int{}
	plugin := false
	arch := ArchOf(r.PackagePlatform(*p))
	for i, file := range p.Files {
		ff := fmt.Sprintf("%s.files[%d]", f, i)
		switch kind, src := file.For(arch).Source(); kind {
		case FromBuild:
			if msg := checkRelPath(src); msg != "" {
				c.errorf(ff+".from", "build:%s: %s", src, msg)
			} else if !targets[path.Clean(src)] {
				c.errorf(ff+".from", "build:%s is not one of spec.make.targets (for %s), so the build may not produce it: add it to the targets", src, r.PackagePlatform(*p))
			}
		case FromSource:
			if p.Type == PackageIstioctl {
				c.errorf(ff+".from", "the istioctl binary comes from the build: build:out/linux_<arch>/istioctl")
			} else if msg := checkRelPath(src); msg != "" {
				c.errorf(ff+".from", "source:%s: %s", src, msg)
			}
		case FromInput:
			c.errorf(ff+".from", "%q: a package takes files from the build (build:PATH) or the source (source:PATH)", file.From)
		default:
			if file.From == "" {
				c.errorf(ff+".from", "required: build:PATH (a make target) or source:PATH")
			} else {
				c.errorf(ff+".from", "%q must start with build: or source:", file.From)
			}
		}
		to := file.To
		if p.Type == PackageIstioctl {
			want := IstioctlPath(r.BuildVersion())
			if to != "" && to != want {
				c.errorf(ff+".to", "%q: the istioctl-versions package installs istioctl %s as %s; give that, or leave to out", to, r.BuildVersion(), want)
			}
			to = want
		}
		if err := deb.CheckDest(to); err != nil {
			if to == "" {
				c.errorf(ff+".to", "required: the file's absolute path in the package, such as /opt/cni/bin/istio-cni")
			} else {
				c.errorf(ff+".to", "%q: %v", to, err)
			}
		} else if j, dup := dests[to]; dup {
			c.errorf(ff+".to", "%s is already the path of files[%d]; each path in a package holds one file", to, j)
		} else {
			dests[to] = i
		}
		if to == istio.CNIPluginPath {
			plugin = true
		}
		if file.Mode != "" {
			if m, err := parseMode(file.Mode); err != nil {
				c.errorf(ff+".mode", "%v", err)
			} else if m > 0o777 {
				c.errorf(ff+".mode", "%q: only permission bits (0000-0777) in a package: no setuid, setgid or sticky bit", file.Mode)
			}
		}
	}
	// A file's path may not be another file's directory.
	for to, i := range dests {
		for dir := path.Dir(to); dir != "/"; dir = path.Dir(dir) {
			if j, ok := dests[dir]; ok {
				c.errorf(fmt.Sprintf("%s.files[%d].to", f, i), "%s lies below files[%d] (%s), which is a file, not a directory", to, j, dir)
			}
		}
	}
	if p.Type == PackageIstioCNI && !plugin {
		c.errorf(f+".files", "an istio-cni package has the plugin at %s: add {from: build:out/linux_<arch>/istio-cni, to: %s}", istio.CNIPluginPath, istio.CNIPluginPath)
	}
}
