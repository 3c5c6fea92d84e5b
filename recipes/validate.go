package recipes

import (
	"fmt"
	"net/url"
	"path"
	"regexp"
	"strconv"
	"strings"
)

var (
	hex40RE      = regexp.MustCompile(`^[0-9a-f]{40}$`)
	hex64RE      = regexp.MustCompile(`^[0-9a-f]{64}$`)
	goVersionRE  = regexp.MustCompile(`^1\.[0-9]+(\.[0-9]+)?((rc|beta)[0-9]+)?$`)
	dockerTagRE  = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$`)
	repoPathRE   = regexp.MustCompile(`^[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*(/[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*)*$`)
	nameRE       = regexp.MustCompile(`^[a-z0-9]([a-z0-9._-]*[a-z0-9])?$`)
	varNameRE    = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
	userSpecRE   = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_.-]*(:[A-Za-z0-9_][A-Za-z0-9_.-]*)?$`)
	scpLikeRE    = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9._-]*@[A-Za-z0-9][A-Za-z0-9.-]*:[^:]`)
	suiteRE      = regexp.MustCompile(`^[a-z][a-z0-9-]*$`)
	debPackageRE = regexp.MustCompile(`^[a-z0-9][a-z0-9+.-]+(=[A-Za-z0-9.+~:-]+)?$`)
	unixUserRE   = regexp.MustCompile(`^[a-z_][a-z0-9_-]{0,31}$`)
	modeRE       = regexp.MustCompile(`^[0-7]{3,5}$`)
)

// Bounds on the make command line: the compile step runs it as part of one
// argument to /bin/sh, and Linux refuses an argument over 128 KiB.
const (
	maxMakeVariables = 200
	maxMakeValue     = 4096
	maxMakeTargets   = 100
	maxMakeCommand   = 64 << 10
)

// variants are the mmdebstrap (and debootstrap) variants a base image may use.
var variants = map[string]bool{
	"extract": true, "custom": true, "essential": true, "apt": true, "required": true,
	"minbase": true, "buildd": true, "important": true, "debootstrap": true, "standard": true,
}

func validateRecipe(c *collector, r *Recipe, o *options) {
	validateMetadata(c, r.Metadata, false)
	s := &r.Spec

	if msg := checkGitURL(s.Source.Git); msg != "" {
		c.errorf("spec.source.git", "%s", msg)
	}
	if msg := checkTag(s.Source.Tag); msg != "" {
		c.errorf("spec.source.tag", "%s", msg)
	}
	if msg := checkHex(s.Source.Commit, 40); msg != "" {
		c.errorf("spec.source.commit", "%s", msg)
	}
	seen := map[string]bool{}
	for i, p := range s.Source.Patches {
		f := fmt.Sprintf("spec.source.patches[%d]", i)
		if msg := checkRelPath(p); msg != "" {
			c.errorf(f, "%s", msg)
		} else if seen[path.Clean(p)] {
			c.errorf(f, "%s is listed twice", p)
		}
		seen[path.Clean(p)] = true
	}

	if s.Toolchain.Builder == "" {
		c.errorf("spec.toolchain.builder", "required: the image the build runs in, such as ${REGISTRY}/builder/go1.23.4:1")
	} else if err := CheckImageRef(s.Toolchain.Builder, o.allowed); err != nil {
		c.errorf("spec.toolchain.builder", "%v", err)
	}
	if msg := checkGoVersion(s.Toolchain.Go); msg != "" {
		c.errorf("spec.toolchain.go", "%s", msg)
	}

	validatePlatforms(c, r)

	if n := len(s.Make.Variables); n > maxMakeVariables {
		c.errorf("spec.make.variables", "%d variables: at most %d (the make command line is one argument of the build's shell, at most 128 KiB)", n, maxMakeVariables)
	}
	makeArgs := 0
	for _, k := range sortedKeys(s.Make.Variables) {
		f := joinKey("spec.make.variables", k)
		v := s.Make.Variables[k]
		makeArgs += len(k) + len(v) + 4
		switch {
		case !varNameRE.MatchString(k):
			c.errorf(f, "%q is not a make variable name", k)
		case strings.ContainsAny(v, "\n\r\x00"):
			c.errorf(f, "must be a single line")
		case len(v) > maxMakeValue:
			c.errorf(f, "%d bytes: at most %d", len(v), maxMakeValue)
		}
	}
	if len(s.Make.Targets) == 0 {
		c.errorf("spec.make.targets", "at least one target is required")
	}
	if n := len(s.Make.Targets); n > maxMakeTargets {
		c.errorf("spec.make.targets", "%d targets: at most %d", n, maxMakeTargets)
	}
	for _, t := range s.Make.Targets {
		makeArgs += len(t) + 16
	}
	if makeArgs > maxMakeCommand {
		c.errorf("spec.make", "the make command line would be about %d bytes: at most %d (it is one argument of the build's shell)", makeArgs, maxMakeCommand)
	}
	for i, t := range s.Make.Targets {
		if msg := checkRelPath(t); msg != "" {
			c.errorf(fmt.Sprintf("spec.make.targets[%d]", i), "%s", msg)
		}
	}

	if e := s.Inputs.Envoy; e != nil {
		validateEnvoy(c, e, s.PlatformList())
	}

	if len(s.Images) == 0 {
		c.errorf("spec.images", "at least one image is required")
	}
	names := map[string]bool{}
	for i := range s.Images {
		f := fmt.Sprintf("spec.images[%d]", i)
		img := &s.Images[i]
		if img.Name != "" && names[img.Name] {
			c.errorf(f+".name", "another image is already named %q", img.Name)
		}
		names[img.Name] = true
		validateImage(c, f, img, s.Inputs.Envoy != nil, o)
	}
	validatePackages(c, r)
}

func validateMetadata(c *collector, m Metadata, base bool) {
	switch {
	case m.Name == "":
		c.errorf("metadata.name", "required")
	case base && !repoPathRE.MatchString(m.Name):
		c.errorf("metadata.name", "%q is not a repository path (lowercase letters, digits, separators, and /)", m.Name)
	case !base && !nameRE.MatchString(m.Name):
		c.errorf("metadata.name", "%q is not a valid name (lowercase letters, digits, '.', '_' and '-')", m.Name)
	}
	switch {
	case m.Version == "":
		c.errorf("metadata.version", "required")
	case !dockerTagRE.MatchString(m.Version):
		c.errorf("metadata.version", "%q is not usable as an image tag (letters, digits, '_', '.', '-'; at most 128)", m.Version)
	}
}

func validateEnvoy(c *collector, e *Envoy, platforms []string) {
	const f = "spec.inputs.envoy"
	if e.URL == "" {
		c.errorf(f+".url", "required")
	} else {
		checkArtifactURL(c, f+".url", e.URL)
	}
	if msg := checkHex(e.ProxySHA, 40); msg != "" {
		c.errorf(f+".proxySHA", "%s", msg)
	}
	arches := map[string]bool{}
	for _, p := range platforms {
		arches[ArchOf(p)] = true
	}
	// The top-level sha256 is amd64's: a recipe that does not build
	// linux/amd64 needs none.
	if (arches[DefaultArch] && !e.Unconfirmed) || e.SHA256 != "" {
		if msg := checkHex(e.SHA256, 64); msg != "" {
			if e.SHA256 == "" {
				msg += " (or set unconfirmed: true until it is known)"
			}
			c.errorf(f+".sha256", "%s", msg)
		}
	}
	if msg := checkRelPath(e.Binary); msg != "" {
		c.errorf(f+".binary", "%s", msg)
	}
	for _, a := range sortedKeys(e.Arch) {
		af := joinKey(f+".arch", a)
		x := e.Arch[a]
		switch {
		case a == DefaultArch:
			c.errorf(af, "amd64's tarball is %s.url and %s.sha256: give the other architectures here", f, f)
			continue
		case !knownArches[a]:
			c.errorf(af, "unknown architecture %q (known: %s)", a, strings.Join(sortedKeys(knownArches), ", "))
			continue
		}
		if x.URL != "" {
			checkArtifactURL(c, af+".url", x.URL)
		}
		if !x.Unconfirmed || x.SHA256 != "" {
			if msg := checkHex(x.SHA256, 64); msg != "" {
				if x.SHA256 == "" {
					msg += " (or set unconfirmed: true until it is known)"
				}
				c.errorf(af+".sha256", "%s", msg)
			}
		}
	}
	// Every platform needs its own tarball, and they must differ.
	urls := map[string]string{}
	for _, p := range platforms {
		a := ArchOf(p)
		art, ok := e.For(a)
		if !ok {
			c.errorf(f+".arch", "%s has no Envoy tarball: add arch.%s with its sha256 (and url, unless %s.url has ${%s})", p, a, f, VarTargetArch)
			continue
		}
		if other, dup := urls[art.URL]; dup && e.URL != "" {
			c.errorf(f+".url", "%s and %s would download the same tarball %s: put ${%s} in the URL or give arch.%s.url", other, p, art.URL, VarTargetArch, a)
		}
		urls[art.URL] = p
	}
}

// checkArtifactURL checks an artifact's URL: http(s) or file.
func checkArtifactURL(c *collector, field, s string) {
	u, err := url.Parse(s)
	if err != nil {
		c.errorf(field, "not a URL: %v", err)
		return
	}
	switch {
	case u.Scheme == "file" && u.Path != "":
	case (u.Scheme == "http" || u.Scheme == "https") && u.Host != "":
	default:
		c.errorf(field, "must be an http://, https:// or file:// URL, not %q", s)
	}
}

// knownArches are the architectures of RecipePlatforms.
var knownArches = map[string]bool{"amd64": true, "arm64": true}

// RecipePlatforms are the platforms a recipe may build: those of the base
// images.
var RecipePlatforms = BasePlatforms

// platformDirRE finds a path that names one platform's output directory
// (upstream's out/linux_amd64/...).
var platformDirRE = regexp.MustCompile(`(^|/)linux_(amd64|arm64)(/|$)`)

// validatePlatforms checks spec.platforms and what depends on them:
// TARGET_ARCH is the builder's to set, and with several platforms every
// per-platform path must say ${TARGET_ARCH}.
func validatePlatforms(c *collector, r *Recipe) {
	s := &r.Spec
	checkPlatformList(c, s.Platforms, RecipePlatforms)
	if v, ok := s.Make.Variables[VarTargetArch]; ok {
		f := joinKey("spec.make.variables", VarTargetArch)
		switch {
		case s.MultiPlatform():
			c.errorf(f, "the builder sets TARGET_ARCH for each of spec.platforms: remove it")
		case v != ArchOf(s.PlatformList()[0]):
			c.errorf(f, "%q is not the architecture of %s, the platform built (spec.platforms): remove it, the builder sets it", v, s.PlatformList()[0])
		}
	}
	// A target that names one platform's output directory is made by that
	// platform's build only (Make.TargetsFor): the platform must be built,
	// and with several platforms only a package may take such a target
	// (packages come from one platform's build).
	built := map[string]bool{}
	for _, p := range s.PlatformList() {
		built[ArchOf(p)] = true
	}
	for i, t := range s.Make.Targets {
		if a, ok := PlatformDirArch(t); ok && !built[a] {
			c.errorf(fmt.Sprintf("spec.make.targets[%d]", i), "%s names the output of linux/%s, which this recipe does not build (spec.platforms: %s)", t, a, strings.Join(s.PlatformList(), ", "))
		}
	}
	if !s.MultiPlatform() {
		return
	}
	hint := "it names one platform's output: write linux_${" + VarTargetArch + "} so each platform builds its own"
	pkgTargets := packageTargetDirs(r)
	for i, t := range s.Make.Targets {
		if a, ok := PlatformDirArch(t); ok && built[a] && !pkgTargets[path.Clean(t)] {
			c.errorf(fmt.Sprintf("spec.make.targets[%d]", i), "%s: %s (only a package's file may come from one platform's build)", t, hint)
		}
	}
	for i, img := range s.Images {
		for j, file := range img.Files {
			if kind, p := file.Source(); kind == FromBuild && platformDirRE.MatchString(p) {
				c.errorf(fmt.Sprintf("spec.images[%d].files[%d].from", i, j), "%s: %s", file.From, hint)
			}
		}
	}
}

func validateImage(c *collector, f string, img *Image, haveEnvoy bool, o *options) {
	switch {
	case img.Name == "":
		c.errorf(f+".name", "required")
	case !nameRE.MatchString(img.Name):
		c.errorf(f+".name", "%q is not a valid name (lowercase letters, digits, '.', '_' and '-')", img.Name)
	}
	switch first, _, _ := strings.Cut(img.Repository, "/"); {
	case img.Repository == "":
		c.errorf(f+".repository", "required")
	case strings.ContainsAny(first, ".:") || first == "localhost":
		c.errorf(f+".repository", "%q names a registry; give only the repository path, images are pushed to the configured registry", img.Repository)
	case !repoPathRE.MatchString(img.Repository) || len(img.Repository) > 255:
		c.errorf(f+".repository", "%q is not a valid repository path (lowercase letters, digits, separators, and /)", img.Repository)
	}
	switch {
	case img.Tag == "":
		c.errorf(f+".tag", "required")
	case !dockerTagRE.MatchString(img.Tag):
		c.errorf(f+".tag", "%q is not a valid image tag (letters, digits, '_', '.', '-'; at most 128)", img.Tag)
	}
	if img.Base == "" {
		c.errorf(f+".base", "required: the base image, such as ${REGISTRY}/base/bookworm:2")
	} else if err := CheckImageRef(img.Base, o.allowed); err != nil {
		c.errorf(f+".base", "%v", err)
	}

	if len(img.Files) == 0 {
		c.errorf(f+".files", "at least one file is required")
	}
	dests := map[string]bool{}
	for i, file := range img.Files {
		ff := fmt.Sprintf("%s.files[%d]", f, i)
		switch kind, p := file.Source(); kind {
		case FromBuild, FromSource:
			if msg := checkRelPath(p); msg != "" {
				c.errorf(ff+".from", "%s:%s: %s", kind, p, msg)
			}
		case FromInput:
			if p != "envoy" {
				c.errorf(ff+".from", "unknown input %q; the only input is input:envoy", p)
			} else if !haveEnvoy {
				c.errorf(ff+".from", "input:envoy needs spec.inputs.envoy")
			}
		default:
			if file.From == "" {
				c.errorf(ff+".from", "required")
			} else {
				c.errorf(ff+".from", "%q must start with build:, source: or input:", file.From)
			}
		}
		switch {
		case file.To == "":
			c.errorf(ff+".to", "required")
		case hasControl(file.To):
			c.errorf(ff+".to", "%q must not contain control characters", file.To)
		case !path.IsAbs(file.To) || path.Clean(file.To) != file.To || file.To == "/":
			c.errorf(ff+".to", "%q must be a clean absolute path to a file", file.To)
		case dests[file.To]:
			c.errorf(ff+".to", "another file already goes to %s", file.To)
		}
		dests[file.To] = true
		if file.Mode != "" {
			if _, err := parseMode(file.Mode); err != nil {
				c.errorf(ff+".mode", "%v", err)
			}
		}
	}

	if img.User != "" && !userSpecRE.MatchString(img.User) {
		c.errorf(f+".user", "%q must be user or user:group (names or numeric ids)", img.User)
	}
	if len(img.Entrypoint) > 0 && !path.IsAbs(img.Entrypoint[0]) {
		c.errorf(f+".entrypoint[0]", "%q must be an absolute path", img.Entrypoint[0])
	}
	validateEnv(c, f+".env", img.Env)
	validateLabels(c, f+".labels", img.Labels)
	if img.Workdir != "" && (!path.IsAbs(img.Workdir) || hasControl(img.Workdir)) {
		c.errorf(f+".workdir", "%q must be an absolute path", img.Workdir)
	}
	for i, a := range append(append([]string(nil), img.Entrypoint...), img.Cmd...) {
		if strings.ContainsRune(a, 0) {
			c.errorf(f+".entrypoint", "argument %d must not contain NUL", i)
		}
	}
}

func validateEnv(c *collector, f string, env map[string]string) {
	for _, k := range sortedKeys(env) {
		if !varNameRE.MatchString(k) {
			c.errorf(joinKey(f, k), "%q is not an environment variable name", k)
		} else if strings.ContainsRune(env[k], 0) {
			c.errorf(joinKey(f, k), "must not contain NUL")
		}
	}
}

func validateLabels(c *collector, f string, labels map[string]string) {
	for _, k := range sortedKeys(labels) {
		if strings.TrimSpace(k) == "" || hasControl(k) {
			c.errorf(joinKey(f, k), "%q is not a label name", k)
		}
	}
}

func validateBase(c *collector, b *BaseImage) {
	validateMetadata(c, b.Metadata, true)
	s := &b.Spec
	switch {
	case s.Suite == "":
		c.errorf("spec.suite", "required: the Debian suite, such as bookworm")
	case !suiteRE.MatchString(s.Suite):
		c.errorf("spec.suite", "%q is not a Debian suite name", s.Suite)
	}
	switch {
	case s.Distroless != nil:
		if s.Variant != "" && s.Variant != "extract" {
			c.errorf("spec.variant", "a distroless image only extracts its packages: leave out spec.variant (or say extract), not %q", s.Variant)
		}
	case s.Variant == "":
		c.errorf("spec.variant", "required, such as minbase")
	case s.Variant == "extract":
		c.errorf("spec.variant", "extract only unpacks packages, nothing is installed: use it with spec.distroless, which selects the files, or use minbase")
	case !variants[s.Variant]:
		c.errorf("spec.variant", "unknown variant %q (known: %s)", s.Variant, strings.Join(sortedKeys(variants), ", "))
	}
	checkPlatformList(c, s.Platforms, BasePlatforms)
	if s.Go != nil && len(s.Platforms) > 0 && (len(s.Platforms) != 1 || s.Platforms[0] != "linux/amd64") {
		c.errorf("spec.platforms", "an image with spec.go is built for linux/amd64 only (builds cross-compile for other platforms)")
	}
	if len(s.Packages) == 0 {
		c.errorf("spec.packages", "at least one package is required")
	}
	pkgs := map[string]bool{}
	for i, p := range s.Packages {
		f := fmt.Sprintf("spec.packages[%d]", i)
		name, _, _ := strings.Cut(p, "=")
		switch {
		case !debPackageRE.MatchString(p):
			c.errorf(f, "%q is not a Debian package name (optionally name=version)", p)
		case pkgs[name]:
			c.errorf(f, "%s is listed twice", name)
		}
		pkgs[name] = true
	}
	if s.SourceDateEpoch <= 0 {
		c.errorf("spec.sourceDateEpoch", "required: a positive Unix time, for reproducible output")
	}
	users, uids := map[string]bool{}, map[int]bool{}
	for i, u := range s.Users {
		f := fmt.Sprintf("spec.users[%d]", i)
		switch {
		case u.Name == "":
			c.errorf(f+".name", "required")
		case !unixUserRE.MatchString(u.Name):
			c.errorf(f+".name", "%q is not a user name", u.Name)
		case users[u.Name]:
			c.errorf(f+".name", "user %s is listed twice", u.Name)
		}
		users[u.Name] = true
		switch {
		case u.UID < 1 || u.UID > 65533:
			c.errorf(f+".uid", "must be between 1 and 65533, not %d", u.UID)
		case uids[u.UID]:
			c.errorf(f+".uid", "uid %d is used twice", u.UID)
		}
		uids[u.UID] = true
		if u.Home != "" {
			if msg := checkAbsPath(u.Home); msg != "" {
				c.errorf(f+".home", "%s", msg)
			}
		}
	}
	for i, l := range s.Sudoers {
		if strings.TrimSpace(l) == "" || hasControl(l) {
			c.errorf(fmt.Sprintf("spec.sudoers[%d]", i), "must be one non-empty line")
		}
	}
	alts := map[string]bool{}
	for i, a := range s.Alternatives {
		f := fmt.Sprintf("spec.alternatives[%d]", i)
		switch {
		case a.Name == "":
			c.errorf(f+".name", "required: the alternative's name, such as iptables")
		case !alternativeRE.MatchString(a.Name):
			c.errorf(f+".name", "%q is not an alternative name (as update-alternatives --list NAME takes)", a.Name)
		case alts[a.Name]:
			c.errorf(f+".name", "alternative %s is set twice", a.Name)
		}
		alts[a.Name] = true
		if msg := checkAbsPath(a.Path); msg != "" {
			c.errorf(f+".path", "%s", msg)
		}
	}
	if s.Go != nil {
		if msg := checkGoVersion(s.Go.Version); msg != "" {
			c.errorf("spec.go.version", "%s", msg)
		}
	}
	if s.Distroless != nil {
		validateDistroless(c, s)
	}
	validateEnv(c, "spec.env", s.Env)
	validateLabels(c, "spec.labels", s.Labels)
	if s.User != "" && !userSpecRE.MatchString(s.User) {
		c.errorf("spec.user", "%q must be user or user:group (names or numeric ids)", s.User)
	}
	if s.Workdir != "" {
		if msg := checkAbsPath(s.Workdir); msg != "" {
			c.errorf("spec.workdir", "%s", msg)
		}
	}
}

// BasePlatforms are the platforms a base image may be built for.
var BasePlatforms = map[string]bool{"linux/amd64": true, "linux/arm64": true}

var alternativeRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.+-]*$`)

func validateDistroless(c *collector, s *BaseImageSpec) {
	d := s.Distroless
	// What needs a package manager or a shell has no place here.
	if len(s.Sudoers) > 0 {
		c.errorf("spec.sudoers", "a distroless image has no sudo: leave out spec.sudoers")
	}
	if len(s.Alternatives) > 0 {
		c.errorf("spec.alternatives", "a distroless image has no update-alternatives: give the links in spec.distroless.links")
	}
	if s.Go != nil {
		c.errorf("spec.go", "the Go toolchain goes on a Debian image, not a distroless one")
	}
	if len(d.Files) == 0 {
		c.errorf("spec.distroless.files", "at least one file or pattern is required")
	}
	seen := map[string]bool{}
	for i, p := range d.Files {
		f := fmt.Sprintf("spec.distroless.files[%d]", i)
		switch msg := checkAbsPath(p); {
		case msg != "":
			c.errorf(f, "%s", msg)
		case p == "/":
			c.errorf(f, "the whole file system is not a selection: name files or directories")
		case seen[p]:
			c.errorf(f, "%s is listed twice", p)
		default:
			if _, err := path.Match(p, ""); err != nil {
				c.errorf(f, "%q is not a valid pattern (path.Match syntax: *, ?, [...]): %v", p, err)
			}
		}
		seen[p] = true
	}
	for _, k := range sortedKeys(d.Links) {
		f := joinKey("spec.distroless.links", k)
		if msg := checkAbsPath(k); msg != "" {
			c.errorf(f, "%s", msg)
		} else if strings.ContainsAny(k, "*?[") {
			c.errorf(f, "%q must be a path, not a pattern", k)
		}
		if t := d.Links[k]; t == "" || hasControl(t) {
			c.errorf(f, "the link's target is required, on one line")
		}
	}
	for _, k := range sortedKeys(d.Dirs) {
		f := joinKey("spec.distroless.dirs", k)
		if msg := checkAbsPath(k); msg != "" || k == "/" {
			c.errorf(f, "%q must be a clean absolute path to a directory", k)
		}
		if _, err := parseMode(d.Dirs[k]); err != nil {
			c.errorf(f, "%v", err)
		}
	}
	if d.CACertificates {
		found := false
		for _, p := range s.Packages {
			if name, _, _ := strings.Cut(p, "="); name == "ca-certificates" {
				found = true
			}
		}
		if !found {
			c.errorf("spec.distroless.caCertificates", "needs ca-certificates in spec.packages")
		}
	}
}

// checkAbsPath returns what is wrong with a clean absolute path, or "".
func checkAbsPath(p string) string {
	switch {
	case p == "":
		return "required: an absolute path"
	case hasControl(p) || strings.ContainsAny(p, "\\"):
		return fmt.Sprintf("%q must not contain control characters or backslashes", p)
	case !path.IsAbs(p) || path.Clean(p) != p:
		return fmt.Sprintf("%q must be a clean absolute path (no .., no trailing /)", p)
	}
	return ""
}

// checkGitURL returns what is wrong with a source URL, or "".
func checkGitURL(s string) string {
	if s == "" {
		return "required"
	}
	if strings.ContainsAny(s, " \t") || hasControl(s) {
		return "must not contain whitespace"
	}
	if !strings.Contains(s, "://") && scpLikeRE.MatchString(s) {
		return ""
	}
	u, err := url.Parse(s)
	if err != nil {
		return fmt.Sprintf("not a URL: %v", err)
	}
	switch u.Scheme {
	case "http", "https", "ssh":
		if u.Host == "" || strings.HasPrefix(u.Host, "-") {
			return fmt.Sprintf("%q has no valid host", s)
		}
		return ""
	case "file":
		if u.Path == "" {
			return fmt.Sprintf("%q has no path", s)
		}
		return ""
	}
	return fmt.Sprintf("%q must be an http://, https://, file:// or ssh:// URL, or git@host:path", s)
}

// checkTag returns what is wrong with a tag name, or "". A tag is one valid
// git ref component (see git check-ref-format).
func checkTag(t string) string {
	switch {
	case t == "":
		return "required"
	case strings.HasPrefix(t, "-"):
		return fmt.Sprintf("%q must not start with \"-\"", t)
	case strings.Contains(t, ".."):
		return fmt.Sprintf("%q must not contain \"..\"", t)
	case strings.Contains(t, "/"):
		return fmt.Sprintf("%q must not contain \"/\"", t)
	case strings.ContainsAny(t, " \t\n\r\f\v") || hasControl(t):
		return fmt.Sprintf("%q must not contain whitespace or control characters", t)
	case strings.ContainsAny(t, "~^:?*[\\"):
		return fmt.Sprintf("%q must not contain any of ~ ^ : ? * [ \\", t)
	case strings.HasPrefix(t, "."), strings.HasSuffix(t, "."), strings.HasSuffix(t, ".lock"):
		return fmt.Sprintf("%q must not start or end with \".\", nor end with \".lock\"", t)
	case strings.Contains(t, "@{"), t == "@":
		return fmt.Sprintf("%q must not be \"@\" or contain \"@{\"", t)
	}
	return ""
}

func checkHex(s string, n int) string {
	re := hex40RE
	if n == 64 {
		re = hex64RE
	}
	switch {
	case s == "":
		return fmt.Sprintf("required: %d lowercase hex digits", n)
	case !re.MatchString(s):
		return fmt.Sprintf("must be %d lowercase hex digits", n)
	}
	return ""
}

func checkGoVersion(v string) string {
	switch {
	case v == "":
		return "required: a Go version such as 1.23.4"
	case !goVersionRE.MatchString(v):
		return fmt.Sprintf("%q is not a Go version such as 1.23.4", v)
	}
	return ""
}

// checkRelPath returns what is wrong with a path that must stay inside a
// directory, or "".
func checkRelPath(p string) string {
	switch {
	case p == "":
		return "required"
	case hasControl(p):
		return "must not contain control characters"
	case path.IsAbs(p) || strings.HasPrefix(p, "\\"):
		return fmt.Sprintf("%q must be a relative path", p)
	case strings.Contains(p, "\\"):
		return fmt.Sprintf("%q must use / as separator", p)
	}
	for _, e := range strings.Split(p, "/") {
		if e == ".." {
			return fmt.Sprintf("%q must not contain \"..\"", p)
		}
	}
	if path.Clean(p) == "." {
		return fmt.Sprintf("%q must name a file", p)
	}
	return ""
}

func parseMode(s string) (uint32, error) {
	if !modeRE.MatchString(s) {
		return 0, fmt.Errorf("%q is not an octal mode such as \"0755\"", s)
	}
	m, err := strconv.ParseUint(s, 8, 32)
	if err != nil || m > 0o7777 {
		return 0, fmt.Errorf("%q is not an octal mode such as \"0755\"", s)
	}
	return uint32(m), nil
}

func hasControl(s string) bool {
	for _, r := range s {
		if r < 0x20 || r == 0x7f {
			return true
		}
	}
	return false
}

// checkPlatformList checks spec.platforms against the known ones: each
// known, none twice.
func checkPlatformList(c *collector, platforms []string, known map[string]bool) {
	seen := map[string]bool{}
	for i, p := range platforms {
		f := fmt.Sprintf("spec.platforms[%d]", i)
		switch {
		case !known[p]:
			c.errorf(f, "unknown platform %q (known: %s)", p, strings.Join(sortedKeys(known), ", "))
		case seen[p]:
			c.errorf(f, "%s is listed twice", p)
		}
		seen[p] = true
	}
}
