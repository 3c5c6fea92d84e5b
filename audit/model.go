package audit

import (
	"fmt"
	"strings"
)

// Kind says what made an image.
type Kind string

// Kinds of images.
const (
	// KindSailmaker is an image sailmaker built from a recipe (it carries
	// the dev.sailmaker.inputs and dev.sailmaker.recipe labels).
	KindSailmaker Kind = "sailmaker"
	// KindBase is a base image sailmaker built from Debian packages
	// (label dev.sailmaker.packages).
	KindBase Kind = "base"
	// KindBuilder is a base image with a Go toolchain, that builds run in.
	KindBuilder Kind = "builder"
	// KindForeign is anything else: pushed by another client.
	KindForeign Kind = "foreign"
	// KindBuildCache is not an image: BuildKit's registry cache (the build
	// service's workers share their layers through it). Nothing to verify.
	KindBuildCache Kind = "buildcache"
	// KindPackage is a Debian package as an OCI artifact (artifactType
	// application/vnd.debian.binary-package, the .deb its one layer).
	KindPackage Kind = "package"
	// KindBinary is one program as an OCI artifact (a release's istioctl,
	// from which the multi-version package is made).
	KindBinary Kind = "binary"
)

// buildCacheConfigType is the config media type of a BuildKit registry
// cache manifest.
const buildCacheConfigType = "application/vnd.buildkit.cacheconfig.v0"

// Signature states.
const (
	SignatureValid   = "valid"
	SignatureInvalid = "invalid"
	SignatureMissing = "missing"
	// SignaturePresent: there is a signature, but no key was given to
	// verify it with.
	SignaturePresent = "present"
)

// Image is one tag of the registry and what it says about itself.
type Image struct {
	Repository string `json:"repository"`
	Tag        string `json:"tag,omitempty"`
	Digest     string `json:"digest"`
	// Reference is registry/repository:tag@digest.
	Reference string `json:"reference"`
	Kind      Kind   `json:"kind"`
	MediaType string `json:"mediaType"`
	Size      int64  `json:"size"`
	Created   string `json:"created,omitempty"`
	Version   string `json:"version,omitempty"`
	Commit    string `json:"commit,omitempty"`
	Source    string `json:"source,omitempty"`
	Recipe    string `json:"recipe,omitempty"`
	// RecipeDigest identifies the recipe file the image (or base image)
	// was built from.
	RecipeDigest string `json:"recipeDigest,omitempty"`
	BaseName     string `json:"baseName,omitempty"`
	BaseDigest   string `json:"baseDigest,omitempty"`
	GoVersion    string `json:"goVersion,omitempty"`
	Provenance   bool   `json:"provenance"`
	SBOM         bool   `json:"sbom"`
	// Signature is valid, invalid or missing when a key is configured;
	// present or missing without one.
	Signature string `json:"signature"`
	// Platforms are the platforms of a multi-platform image (an image
	// index of sailmaker images), or of one of its images; Provenance and
	// SBOM of an index say whether every one of its images has them.
	Platforms []string `json:"platforms,omitempty"`
	// Package is what a package or binary artifact holds.
	Package *PackageInfo `json:"package,omitempty"`
}

// PackageInfo describes a package (or binary) artifact, from its
// annotations.
type PackageInfo struct {
	// Name, Version and Architecture are the Debian package's control
	// fields (a binary's: its program and release).
	Name         string `json:"name"`
	Version      string `json:"version"`
	Architecture string `json:"architecture,omitempty"`
	// Type is the recipe's package type (istio-cni, istioctl) or
	// istioctl-versions.
	Type string `json:"type,omitempty"`
	// File is the .deb's (or program's) file name.
	File string `json:"file,omitempty"`
	// Holds are the releases a multi-version package holds.
	Holds []string `json:"holds,omitempty"`
	// Collection is, for a release's istioctl, the repository of the
	// multi-version package made from it.
	Collection string `json:"collection,omitempty"`
}

// isArtifact is true for a package or binary.
func (k Kind) isArtifact() bool { return k == KindPackage || k == KindBinary }

// Name is repository:tag, or repository@digest for an untagged image.
func (i Image) Name() string {
	if i.Tag != "" {
		return i.Repository + ":" + i.Tag
	}
	return i.Repository + "@" + i.Digest
}

// Unreadable is an image or repository that could not be read, so a result
// that leaves it out is partial.
type Unreadable struct {
	// Reference is what could not be read: registry/repo:tag, or a
	// repository.
	Reference string `json:"reference"`
	Error     string `json:"error"`
}

// Warnings are what a partial result left out.
type Warnings []Unreadable

// Partial says whether something could not be read.
func (w Warnings) Partial() bool { return len(w) > 0 }

// String is one line per unreadable reference, for stderr.
func (w Warnings) String() string {
	if len(w) == 0 {
		return ""
	}
	var b strings.Builder
	fmt.Fprintf(&b, "partial result: %d could not be read after retries:\n", len(w))
	for _, u := range w {
		fmt.Fprintf(&b, "  %s: %s\n", u.Reference, u.Error)
	}
	return b.String()
}
