package builder

import (
	"fmt"
	"path"
	"slices"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/sailmaker/sailmaker/builder/base"
	"github.com/sailmaker/sailmaker/recipes"
)

// platformOf is os/arch[/variant] of an image config.
func platformOf(cf *v1.ConfigFile) string {
	p := cf.OS + "/" + cf.Architecture
	if cf.Variant != "" {
		p += "/" + cf.Variant
	}
	return p
}

// ParsePlatforms reads --platform values: each one os/arch, or several
// separated by commas. Duplicates are dropped; the order is kept.
func ParsePlatforms(values []string) ([]string, error) {
	var out []string
	for _, v := range values {
		for _, p := range strings.Split(v, ",") {
			p = strings.TrimSpace(p)
			if p == "" {
				continue
			}
			if !recipes.RecipePlatforms[p] {
				return nil, fmt.Errorf("--platform %q: unknown platform (known: linux/amd64, linux/arm64)", p)
			}
			if !slices.Contains(out, p) {
				out = append(out, p)
			}
		}
	}
	return out, nil
}

// CheckRequest refuses a request that does not fit the recipe, before any
// work: platforms the recipe does not build, Envoy overrides for
// architectures not built or a recipe without Envoy.
func CheckRequest(r *recipes.Recipe, req Request) error {
	_, err := buildPlatforms(r, req)
	return err
}

// buildPlatforms are the platforms a request builds, in the recipe's
// order.
func buildPlatforms(r *recipes.Recipe, req Request) ([]platform, error) {
	all := r.Spec.PlatformList()
	want := all
	if len(req.Platforms) > 0 {
		want = nil
		for _, p := range req.Platforms {
			if !slices.Contains(all, p) {
				return nil, fmt.Errorf("--platform %s: recipe %s builds %s only (spec.platforms)", p, r.ID(), strings.Join(all, ", "))
			}
		}
		for _, p := range all {
			if slices.Contains(req.Platforms, p) {
				want = append(want, p)
			}
		}
	}
	arches := map[string]bool{}
	var out []platform
	for _, p := range want {
		v, err := base.ParsePlatform(p)
		if err != nil {
			return nil, err
		}
		a := recipes.ArchOf(p)
		arches[a] = true
		out = append(out, platform{name: p, arch: a, oci: v})
	}
	for a := range req.EnvoyByArch {
		switch {
		case r.Spec.Inputs.Envoy == nil:
			return nil, fmt.Errorf("--envoy-sha256/--envoy-file %s=...: recipe %s has no Envoy input", a, r.ID())
		case !arches[a]:
			return nil, fmt.Errorf("--envoy-sha256/--envoy-file %s=...: this build is for %s only", a, strings.Join(want, ", "))
		}
	}
	if req.EnvoySHA256 != "" || req.EnvoyFile != "" {
		switch {
		case r.Spec.Inputs.Envoy == nil:
			return nil, fmt.Errorf("--envoy-sha256/--envoy-file: recipe %s has no Envoy input", r.ID())
		case !arches[recipes.DefaultArch]:
			return nil, fmt.Errorf("--envoy-sha256/--envoy-file without an architecture are amd64's, and this build is for %s only: give ARCH=<value>", strings.Join(want, ", "))
		}
		if _, both := req.EnvoyByArch[recipes.DefaultArch]; both {
			return nil, fmt.Errorf("--envoy-sha256/--envoy-file: amd64's is given twice (with and without amd64=)")
		}
	}
	return out, nil
}

// platform is one platform a build makes images for.
type platform struct {
	name string // os/arch, as the recipe names it
	arch string // TARGET_ARCH
	oci  v1.Platform
}

// outDir is the platform's directory in the compile output.
func (p platform) outDir() string { return strings.ReplaceAll(p.name, "/", "_") }

// resultPath is where the compile result holds the platform's file rel of
// kind (build or source), as BuildKit names it.
func (p platform) resultPath(kind, rel string) string { return path.Join("/", p.outDir(), kind, rel) }
