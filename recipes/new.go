package recipes

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// DefaultEnvoyURL is where the Envoy tarball is expected on the internal
// artifact mirror.
const DefaultEnvoyURL = "https://artifacts.sailmaker.internal/istio/envoy/envoy-alpha-${PROXY_REPO_SHA}.tar.gz"

// templateID is the embedded recipe New copies the build and the images
// from.
const templateID = "istio@1.24.2"

// NewOptions says what New derives a recipe from.
type NewOptions struct {
	// GitURL is the source URL as written into the recipe.
	GitURL string
	// FetchURL is where the source is fetched from (GitURL after mirror
	// rewrites); empty means GitURL.
	FetchURL string
	// Tag is the upstream release tag; it also becomes the version.
	Tag string
	// Registry is what ${REGISTRY} expands to; empty means DefaultRegistry.
	Registry string
	// EnvoyURL is the Envoy tarball's URL template; empty means
	// DefaultEnvoyURL.
	EnvoyURL string
	// EnvoySHA256 is the tarball's sha256, if known; without it the recipe
	// marks the sha256 unconfirmed.
	EnvoySHA256 string
	// EnvoyArch are the other architectures' tarballs (arm64), when known:
	// a URL (else the template's with the default EnvoyURL, or EnvoyURL
	// when it has ${TARGET_ARCH}) and a sha256 (else unconfirmed). A
	// platform of the template whose tarball has no URL is left out, with
	// a warning.
	EnvoyArch map[string]EnvoyArch
}

// New derives a recipe for an Istio release from its source: it fetches only
// the tag (with the git CLI, into a temporary directory) and reads the commit,
// Envoy's PROXY_REPO_SHA from istio.deps and the Go version from go.mod (the
// toolchain line if there is one, else the go line). Everything else is as in
// the embedded istio recipe. The result's Warnings say what remains to be
// confirmed by hand.
func New(ctx context.Context, opts NewOptions) (*Recipe, error) {
	if opts.FetchURL == "" {
		opts.FetchURL = opts.GitURL
	}
	if opts.Registry == "" {
		opts.Registry = DefaultRegistry
	}
	defaultURL := opts.EnvoyURL == ""
	if defaultURL {
		opts.EnvoyURL = DefaultEnvoyURL
	}
	if msg := checkGitURL(opts.GitURL); msg != "" {
		return nil, fmt.Errorf("git URL: %s", msg)
	}
	if msg := checkGitURL(opts.FetchURL); msg != "" {
		return nil, fmt.Errorf("fetch URL: %s", msg)
	}
	if msg := checkTag(opts.Tag); msg != "" {
		return nil, fmt.Errorf("tag: %s", msg)
	}
	if opts.EnvoySHA256 != "" {
		if msg := checkHex(opts.EnvoySHA256, 64); msg != "" {
			return nil, fmt.Errorf("Envoy sha256: %s", msg)
		}
	}

	src, err := fetchTag(ctx, opts.FetchURL, opts.Tag)
	if err != nil {
		return nil, err
	}

	tmpl, err := Get(templateID, WithRegistry(opts.Registry))
	if err != nil {
		return nil, fmt.Errorf("reading the template recipe: %w", err)
	}
	r := tmpl.raw.clone()
	r.Metadata.Version = opts.Tag
	r.Spec.Source = Source{Git: opts.GitURL, Tag: opts.Tag, Commit: src.commit}
	r.Spec.Toolchain = Toolchain{Builder: "${REGISTRY}/builder/go" + src.goVersion + ":1", Go: src.goVersion}
	r.Spec.Make.Variables = maps.Clone(r.Spec.Make.Variables)
	r.Spec.Make.Variables["VERSION"] = opts.Tag
	binary := "usr/local/bin/envoy"
	tmplEnvoy := r.Spec.Inputs.Envoy
	if tmplEnvoy != nil {
		binary = tmplEnvoy.Binary
	}
	env := &Envoy{
		URL:         opts.EnvoyURL,
		ProxySHA:    src.proxySHA,
		SHA256:      opts.EnvoySHA256,
		Binary:      binary,
		Unconfirmed: opts.EnvoySHA256 == "",
	}
	// Each other platform needs its own tarball: from the options, or the
	// template's mirror, or the URL's ${TARGET_ARCH}.
	var dropped []string
	var platforms []string
	for _, p := range r.Spec.PlatformList() {
		a := ArchOf(p)
		if a == DefaultArch {
			platforms = append(platforms, p)
			continue
		}
		x := opts.EnvoyArch[a]
		if x.URL == "" && defaultURL && tmplEnvoy != nil {
			x.URL = tmplEnvoy.Arch[a].URL
		}
		if x.URL == "" && !strings.Contains(opts.EnvoyURL, "${"+VarTargetArch+"}") {
			dropped = append(dropped, p)
			continue
		}
		if x.SHA256 != "" {
			if msg := checkHex(x.SHA256, 64); msg != "" {
				return nil, fmt.Errorf("%s Envoy sha256: %s", a, msg)
			}
		}
		x.Unconfirmed = x.SHA256 == ""
		if env.Arch == nil {
			env.Arch = map[string]EnvoyArch{}
		}
		env.Arch[a] = x
		platforms = append(platforms, p)
	}
	if len(platforms) == 1 && platforms[0] == DefaultPlatform {
		platforms = nil
	}
	r.Spec.Platforms = platforms
	r.Spec.Inputs.Envoy = env

	data, err := yaml.Marshal(r)
	if err != nil {
		return nil, fmt.Errorf("encoding the new recipe: %w", err)
	}
	out, err := Parse("new recipe", data, WithRegistry(opts.Registry))
	if err != nil {
		return nil, fmt.Errorf("the recipe derived from %s at %s does not validate: %w", opts.GitURL, opts.Tag, err)
	}
	// The warnings' lines are those of an intermediate document.
	out.file, out.lines = "", nil
	for i := range out.warnings {
		out.warnings[i].File, out.warnings[i].Line = "", 0
	}
	out.warnings = append(out.warnings,
		ValidationError{Field: "spec.toolchain.go", Msg: fmt.Sprintf(
			"%s was taken from go.mod's %s line; upstream may build with a newer Go than go.mod asks for (1.24.2 says 1.22.0 and was built with 1.23.x): check the release's build container, and that the builder image %s exists",
			src.goVersion, src.goLine, out.Spec.Toolchain.Builder)},
		ValidationError{Field: "spec.inputs.envoy.url", Msg: fmt.Sprintf(
			"%s must be on the internal mirror", out.Spec.Inputs.Envoy.URL)},
	)
	if len(dropped) > 0 {
		out.warnings = append(out.warnings, ValidationError{Field: "spec.platforms", Msg: fmt.Sprintf(
			"%s left out: the Envoy URL %s has no ${%s} and no tarball URL was given for it; add the platform and spec.inputs.envoy.arch.<arch> to build it",
			strings.Join(dropped, ", "), opts.EnvoyURL, VarTargetArch)})
	}
	return out, nil
}

// fetched is what New reads from the source.
type fetched struct {
	commit    string
	proxySHA  string
	goVersion string
	goLine    string // "toolchain" or "go"
}

// fetchTag fetches just the tag, shallowly, into a temporary repository and
// reads what a recipe pins.
func fetchTag(ctx context.Context, url, tag string) (*fetched, error) {
	dir, err := os.MkdirTemp("", "sailmaker-recipe-")
	if err != nil {
		return nil, fmt.Errorf("creating a temporary repository: %w", err)
	}
	defer os.RemoveAll(dir)

	if _, err := git(ctx, dir, "init", "--quiet", "--bare"); err != nil {
		return nil, fmt.Errorf("creating a temporary repository: %w", err)
	}
	ref := "refs/tags/" + tag
	if _, err := git(ctx, dir, "fetch", "--quiet", "--depth=1", "--no-tags", url, ref+":"+ref); err != nil {
		return nil, fmt.Errorf("fetching tag %s from %s: %w", tag, url, err)
	}
	out, err := git(ctx, dir, "rev-parse", "--verify", "--end-of-options", ref+"^{commit}")
	if err != nil {
		return nil, fmt.Errorf("resolving tag %s: %w", tag, err)
	}
	f := &fetched{commit: strings.TrimSpace(string(out))}

	deps, err := git(ctx, dir, "show", f.commit+":istio.deps")
	if err != nil {
		return nil, fmt.Errorf("reading istio.deps at %s: %w", tag, err)
	}
	if f.proxySHA, err = proxyRepoSHA(deps); err != nil {
		return nil, fmt.Errorf("istio.deps at %s: %w", tag, err)
	}
	gomod, err := git(ctx, dir, "show", f.commit+":go.mod")
	if err != nil {
		return nil, fmt.Errorf("reading go.mod at %s: %w", tag, err)
	}
	if f.goVersion, f.goLine, err = goVersion(gomod); err != nil {
		return nil, fmt.Errorf("go.mod at %s: %w", tag, err)
	}
	return f, nil
}

func git(ctx context.Context, dir string, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, "git", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GIT_TERMINAL_PROMPT=0", "LC_ALL=C")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		if msg := strings.TrimSpace(stderr.String()); msg != "" {
			return nil, fmt.Errorf("git %s: %w: %s", args[0], err, msg)
		}
		return nil, fmt.Errorf("git %s: %w", args[0], err)
	}
	return out, nil
}

// proxyRepoSHA reads PROXY_REPO_SHA's lastStableSHA from istio.deps.
func proxyRepoSHA(deps []byte) (string, error) {
	var entries []struct {
		Name          string `json:"name"`
		RepoName      string `json:"repoName"`
		LastStableSHA string `json:"lastStableSHA"`
	}
	if err := json.Unmarshal(deps, &entries); err != nil {
		return "", fmt.Errorf("decoding: %w", err)
	}
	for _, e := range entries {
		if e.Name != "PROXY_REPO_SHA" {
			continue
		}
		if !hex40RE.MatchString(e.LastStableSHA) {
			return "", fmt.Errorf("PROXY_REPO_SHA's lastStableSHA %q is not 40 lowercase hex digits", e.LastStableSHA)
		}
		return e.LastStableSHA, nil
	}
	return "", errors.New("no PROXY_REPO_SHA entry")
}

// goVersion picks the Go version from go.mod: the toolchain line's if there
// is one, else the go line's. A go line of 1.21 or later without a patch
// version means its .0 release.
func goVersion(gomod []byte) (version, line string, err error) {
	var goV, toolchainV string
	for _, l := range strings.Split(string(gomod), "\n") {
		l, _, _ = strings.Cut(l, "//")
		f := strings.Fields(l)
		if len(f) != 2 {
			continue
		}
		switch f[0] {
		case "go":
			goV = f[1]
		case "toolchain":
			toolchainV = strings.TrimPrefix(f[1], "go")
		}
	}
	if toolchainV != "" && goVersionRE.MatchString(toolchainV) {
		return toolchainV, "toolchain", nil
	}
	if goV == "" {
		return "", "", errors.New("no go line")
	}
	if !goVersionRE.MatchString(goV) {
		return "", "", fmt.Errorf("go line %q is not a Go version", goV)
	}
	if parts := strings.Split(goV, "."); len(parts) == 2 {
		if minor, err := strconv.Atoi(parts[1]); err == nil && minor >= 21 {
			goV += ".0"
		}
	}
	return goV, "go", nil
}

// Marshal encodes a recipe as YAML, as it was written: with its variables
// unexpanded when it was parsed from a document. Its warnings become comments
// at the top.
func Marshal(r *Recipe) ([]byte, error) {
	src := r
	if r.raw != nil {
		src = r.raw
	}
	var buf bytes.Buffer
	fmt.Fprintf(&buf, "# sailmaker recipe %s\n", r.ID())
	for _, w := range r.warnings {
		w.File, w.Line = "", 0
		fmt.Fprintf(&buf, "# TO CONFIRM: %s\n", strings.ReplaceAll(w.Error(), "\n", " "))
	}
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(src); err != nil {
		return nil, fmt.Errorf("encoding recipe %s: %w", r.ID(), err)
	}
	if err := enc.Close(); err != nil {
		return nil, fmt.Errorf("encoding recipe %s: %w", r.ID(), err)
	}
	return buf.Bytes(), nil
}
