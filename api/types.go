// Package api holds the values sailmaker's parts exchange and show: who
// started a build (Trigger), what became of each image (Image), how long
// the phases took (Timings). The CLI prints them, the service stores and
// serves them (api/openapi.yaml describes their JSON), the provenance
// records the trigger. One type each, so the shapes cannot drift apart.
package api

import (
	"encoding/json"
	"time"
)

// Trigger is who or what started a build, and when.
type Trigger struct {
	// Actor is a user or token name, "webhook" for the webhook, or the
	// local user for the CLI.
	Actor string `json:"actor"`
	// Kind is how: cli, api or webhook.
	Kind string `json:"kind"`
	// DeliveryID is the webhook delivery that queued the build.
	DeliveryID string `json:"deliveryId,omitempty"`
	// BuildID is the service's build id.
	BuildID string `json:"buildId,omitempty"`
	// Time is when the build was asked for.
	Time time.Time `json:"time,omitzero"`
}

// The kinds of trigger.
const (
	TriggerCLI     = "cli"
	TriggerAPI     = "api"
	TriggerWebhook = "webhook"
)

// Phase is a step of a build.
type Phase string

// The phases of a build, in order.
const (
	PhaseFetching Phase = "fetching"
	PhaseBuilding Phase = "building"
	PhasePushing  Phase = "pushing"
)

// Image is what became of one image (or package) of a build at one output.
type Image struct {
	// Name is the image's name in the recipe (pilot, proxyv2).
	Name string `json:"name"`
	// Output is where it went: registry, oci-layout:DIR or tar:FILE.
	Output string `json:"output"`
	// Repository is the full repository (registry host and path).
	Repository string `json:"repository"`
	Tag        string `json:"tag"`
	// Reference is repository@digest.
	Reference string `json:"reference"`
	Digest    string `json:"digest"`
	MediaType string `json:"mediaType,omitempty"`
	// Platforms are the image's platforms (os/arch), one per manifest.
	Platforms []string `json:"platforms,omitempty"`
	// Size is the bytes of the manifest, config and layers.
	Size int64 `json:"size"`
	// Status is pushed, unchanged, moved (the tag named another digest
	// and was moved by force) or written (to a layout or tarball).
	Status string `json:"status"`
	// PreviousDigest is what the tag named before it was moved.
	PreviousDigest string `json:"previousDigest,omitempty"`
	// BytesUploaded counts blob bytes sent over the wire.
	BytesUploaded int64 `json:"bytesUploaded"`
	// Provenance and SBOM are the digests of the attachment manifests,
	// Signature of the cosign signature manifest and Attestations of the
	// cosign attestation manifest (.att), when the image is signed.
	Provenance   string `json:"provenance,omitempty"`
	SBOM         string `json:"sbom,omitempty"`
	Signature    string `json:"signature,omitempty"`
	Attestations string `json:"attestations,omitempty"`
	// Manifests are the images of an image index (a multi-platform
	// image), one per platform, each with its own attachments; the
	// index's own signature and attestations (.att: its images' signed
	// attestations) are Signature and Attestations above.
	Manifests []Manifest `json:"manifests,omitempty"`
	// Kind is image (also when empty), package (a Debian package as an
	// OCI artifact) or binary (a program as an OCI artifact).
	Kind string `json:"kind,omitempty"`
	// Package describes a package or binary.
	Package *Package `json:"package,omitempty"`
}

// Manifest is one platform's image of an image index at one output.
type Manifest struct {
	Platform     string `json:"platform"`
	Digest       string `json:"digest"`
	Reference    string `json:"reference"`
	Size         int64  `json:"size"`
	Provenance   string `json:"provenance,omitempty"`
	SBOM         string `json:"sbom,omitempty"`
	Signature    string `json:"signature,omitempty"`
	Attestations string `json:"attestations,omitempty"`
}

// Package is what a package (or binary) artifact holds.
type Package struct {
	// Name, Version and Architecture are the Debian package's (for a
	// binary: the program's name and release).
	Name         string `json:"name"`
	Version      string `json:"version"`
	Architecture string `json:"architecture,omitempty"`
	// File is the .deb's file name, or the program's.
	File string `json:"file,omitempty"`
	// Holds are the releases a multi-version package holds.
	Holds []string `json:"holds,omitempty"`
}

// The kinds of an Image.
const (
	KindImage   = "image"
	KindPackage = "package"
	KindBinary  = "binary"
)

// The statuses of an Image.
const (
	StatusPushed    = "pushed"
	StatusUnchanged = "unchanged"
	StatusMoved     = "moved"
	StatusWritten   = "written"
)

// StatusText is a status for people: moved says how.
func StatusText(status string) string {
	if status == StatusMoved {
		return "pushed (tag moved by --force)"
	}
	return status
}

// Timings split a build's wall time into phases. In JSON each is a number
// of seconds.
type Timings struct {
	// Fetch is fetching and verifying the inputs (source, modules, Envoy).
	Fetch time.Duration
	// Solve is BuildKit running upstream's make targets.
	Solve time.Duration
	// Assemble is laying out the images and their attestations.
	Assemble time.Duration
	// Push is publishing: registry, layout, tarball.
	Push time.Duration
	// Check is --check-reproducible's second build (with its comparison
	// and the removal of its throw-away cache); zero without it.
	Check time.Duration
	Total time.Duration
}

type timingsJSON struct {
	Fetch    float64 `json:"fetch"`
	Solve    float64 `json:"solve"`
	Assemble float64 `json:"assemble"`
	Push     float64 `json:"push"`
	Check    float64 `json:"check,omitempty"`
	Total    float64 `json:"total"`
}

// MarshalJSON writes the durations as seconds.
func (t Timings) MarshalJSON() ([]byte, error) {
	return json.Marshal(timingsJSON{t.Fetch.Seconds(), t.Solve.Seconds(), t.Assemble.Seconds(), t.Push.Seconds(), t.Check.Seconds(), t.Total.Seconds()})
}

// UnmarshalJSON reads what MarshalJSON writes.
func (t *Timings) UnmarshalJSON(b []byte) error {
	var j timingsJSON
	if err := json.Unmarshal(b, &j); err != nil {
		return err
	}
	sec := func(f float64) time.Duration { return time.Duration(f * float64(time.Second)) }
	*t = Timings{Fetch: sec(j.Fetch), Solve: sec(j.Solve), Assemble: sec(j.Assemble), Push: sec(j.Push), Check: sec(j.Check), Total: sec(j.Total)}
	return nil
}

// Result is what a build made and where it went: the CLI prints it, the
// service keeps it in each build's record.
type Result struct {
	// Recipe is the recipe's id (name@version); RecipeDigest its digest.
	Recipe       string `json:"recipe"`
	RecipeDigest string `json:"recipeDigest"`
	// Commit is the upstream commit built; InputsKey identifies every
	// input that decides the images' content.
	Commit    string  `json:"commit,omitempty"`
	InputsKey string  `json:"inputsKey,omitempty"`
	Trigger   Trigger `json:"trigger"`
	// UpToDate: the registry already had the images from the same inputs;
	// nothing was built.
	UpToDate bool `json:"upToDate,omitempty"`
	// Reproducible is set when the build was checked for reproducibility.
	Reproducible *bool    `json:"reproducible,omitempty"`
	Images       []Image  `json:"images,omitempty"`
	Timings      *Timings `json:"timings,omitempty"`
}
