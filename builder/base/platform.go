package base

import (
	"context"
	"debug/elf"
	"fmt"
	"os"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/sailmaker/sailmaker/registry"
)

// arches are the architectures base images are built for: Debian's name
// (the same as the OCI one), the multiarch triplet of library paths, the
// ELF machine of the binaries, and the OCI variant.
var arches = map[string]struct {
	triplet string
	machine elf.Machine
	variant string
	qemu    string // binfmt_misc entry that runs its programs here
}{
	"amd64": {"x86_64-linux-gnu", elf.EM_X86_64, "", "qemu-x86_64"},
	"arm64": {"aarch64-linux-gnu", elf.EM_AARCH64, "v8", "qemu-aarch64"},
}

// ParsePlatform reads "linux/amd64" or "linux/arm64".
func ParsePlatform(s string) (v1.Platform, error) {
	os, arch, ok := strings.Cut(s, "/")
	a, known := arches[arch]
	if !ok || os != "linux" || !known {
		return v1.Platform{}, fmt.Errorf("platform %q: base images are built for linux/amd64 and linux/arm64", s)
	}
	return v1.Platform{OS: os, Architecture: arch, Variant: a.variant}, nil
}

// ELFMachine is the ELF machine of a platform's binaries.
func ELFMachine(p v1.Platform) (elf.Machine, bool) {
	a, ok := arches[p.Architecture]
	return a.machine, ok
}

// checkEmulation says what is missing to run arch's programs here.
func checkEmulation(arch string) error {
	a := arches[arch]
	const dir = "/proc/sys/fs/binfmt_misc"
	if _, err := os.Stat(dir + "/status"); err != nil {
		return fmt.Errorf("binfmt_misc is not mounted, so %s programs (maintainer scripts) cannot run: `mount -t binfmt_misc binfmt_misc %s` and install qemu-user-static and binfmt-support (`make deps` does both)", arch, dir)
	}
	b, err := os.ReadFile(dir + "/" + a.qemu)
	if err != nil {
		return fmt.Errorf("no binfmt_misc handler %s for %s programs (maintainer scripts): install qemu-user-static and binfmt-support and run `update-binfmts --enable %s` (`make deps` does)", a.qemu, arch, a.qemu)
	}
	if !strings.HasPrefix(string(b), "enabled") {
		return fmt.Errorf("the binfmt_misc handler %s is disabled: run `update-binfmts --enable %s`", a.qemu, a.qemu)
	}
	return nil
}

// PlatformImage reads the image of platform p that ref names: from an
// image index, the manifest for p; a single image must be for p. It
// returns the image and its digest (the index's digest is what ref
// resolves to, the image's digest is what a build on p runs on).
func PlatformImage(ctx context.Context, rc *registry.Client, ref name.Reference, p v1.Platform) (v1.Image, v1.Hash, error) {
	desc, err := remote.Get(ref, rc.Remote(ctx)...)
	if err != nil {
		return nil, v1.Hash{}, fmt.Errorf("reading %s: %w", ref, err)
	}
	if desc.MediaType.IsIndex() {
		idx, err := desc.ImageIndex()
		if err != nil {
			return nil, v1.Hash{}, fmt.Errorf("reading the index %s: %w", ref, err)
		}
		m, err := idx.IndexManifest()
		if err != nil {
			return nil, v1.Hash{}, fmt.Errorf("reading the index %s: %w", ref, err)
		}
		var have []string
		for _, d := range m.Manifests {
			if d.Platform == nil {
				continue
			}
			have = append(have, platformString(*d.Platform))
			if platformMatches(*d.Platform, p) {
				img, err := idx.Image(d.Digest)
				if err != nil {
					return nil, v1.Hash{}, fmt.Errorf("reading the %s image of %s: %w", platformString(p), ref, err)
				}
				return img, d.Digest, nil
			}
		}
		return nil, v1.Hash{}, fmt.Errorf("%s has no image for %s (it has %s): build the base for that platform (spec.platforms)", ref, platformString(p), strings.Join(have, ", "))
	}
	img, err := desc.Image()
	if err != nil {
		return nil, v1.Hash{}, fmt.Errorf("reading %s: %w", ref, err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, v1.Hash{}, fmt.Errorf("reading the config of %s: %w", ref, err)
	}
	if got := cf.Platform(); got == nil || !platformMatches(*got, p) {
		g := "no platform"
		if got != nil {
			g = platformString(*got)
		}
		return nil, v1.Hash{}, fmt.Errorf("%s is a single image for %s, not %s: build the base for that platform (spec.platforms)", ref, g, platformString(p))
	}
	return img, desc.Digest, nil
}

// platformMatches: the same OS and architecture, and the same variant
// when want names one.
func platformMatches(have, want v1.Platform) bool {
	return have.OS == want.OS && have.Architecture == want.Architecture && (want.Variant == "" || have.Variant == want.Variant)
}

func platformString(p v1.Platform) string {
	s := p.OS + "/" + p.Architecture
	if p.Variant != "" {
		s += "/" + p.Variant
	}
	return s
}
