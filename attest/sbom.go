package attest

import (
	"debug/buildinfo"
	"encoding/json"
	"fmt"
	"os"
	"runtime/debug"
	"sort"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/uuid"
)

// SPDX document constants.
const (
	SPDXVersion     = "SPDX-2.3"
	SPDXDataLicense = "CC0-1.0"
	SPDXDocumentID  = "SPDXRef-DOCUMENT"
	SPDXCreator     = "Tool: sailmaker"
	// StdlibPackage is the SBOM package name of the Go standard library.
	StdlibPackage = "stdlib"
)

// SPDXDocument is the subset of an SPDX 2.3 JSON document sailmaker writes.
type SPDXDocument struct {
	SPDXVersion       string             `json:"spdxVersion"`
	DataLicense       string             `json:"dataLicense"`
	SPDXID            string             `json:"SPDXID"`
	Name              string             `json:"name"`
	DocumentNamespace string             `json:"documentNamespace"`
	CreationInfo      SPDXCreationInfo   `json:"creationInfo"`
	Packages          []SPDXPackage      `json:"packages"`
	Relationships     []SPDXRelationship `json:"relationships"`
}

// SPDXCreationInfo says who made the document, when.
type SPDXCreationInfo struct {
	Created  string   `json:"created"`
	Creators []string `json:"creators"`
}

// SPDXPackage is one Go module or Debian package.
type SPDXPackage struct {
	SPDXID           string            `json:"SPDXID"`
	Name             string            `json:"name"`
	VersionInfo      string            `json:"versionInfo,omitempty"`
	DownloadLocation string            `json:"downloadLocation"`
	FilesAnalyzed    bool              `json:"filesAnalyzed"`
	ExternalRefs     []SPDXExternalRef `json:"externalRefs,omitempty"`
	Comment          string            `json:"comment,omitempty"`
}

// SPDXExternalRef is a package's purl.
type SPDXExternalRef struct {
	ReferenceCategory string `json:"referenceCategory"`
	ReferenceType     string `json:"referenceType"`
	ReferenceLocator  string `json:"referenceLocator"`
}

// SPDXRelationship relates two SPDX elements.
type SPDXRelationship struct {
	SPDXElementID      string `json:"spdxElementId"`
	RelationshipType   string `json:"relationshipType"`
	RelatedSPDXElement string `json:"relatedSpdxElement"`
}

// Purl is the package URL of p, if it has one.
func (p SPDXPackage) Purl() string {
	for _, r := range p.ExternalRefs {
		if r.ReferenceType == "purl" {
			return r.ReferenceLocator
		}
	}
	return ""
}

// GoBinary is a Go executable placed in an image, with its build info.
type GoBinary struct {
	// Path is where the binary is in the image.
	Path string
	Info *debug.BuildInfo
	// MainVersion, if set, is recorded as the main module's version instead
	// of what the build info says (a build from a checkout says "(devel)").
	MainVersion string
}

// ReadGoBinary reads the Go build info of the executable at file (on this
// machine); inImage is its path in the image. ok is false for a file that
// is not a Go executable (Envoy, a config file).
func ReadGoBinary(file, inImage string) (b GoBinary, ok bool, err error) {
	f, err := os.Open(file)
	if err != nil {
		return GoBinary{}, false, fmt.Errorf("reading Go build info of %s: %w", inImage, err)
	}
	defer f.Close()
	info, err := buildinfo.Read(f)
	if err != nil {
		// Not an executable, or not one Go built.
		return GoBinary{}, false, nil
	}
	return GoBinary{Path: inImage, Info: info}, true, nil
}

// DebianPackage is a package installed in a base image.
type DebianPackage struct {
	Name, Version string
}

// ParseDebianPackages reads a base image's dev.sailmaker.packages label:
// comma-separated name=version.
func ParseDebianPackages(label string) ([]DebianPackage, error) {
	var out []DebianPackage
	for _, item := range strings.Split(label, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		n, v, ok := strings.Cut(item, "=")
		if !ok || n == "" || v == "" {
			return nil, fmt.Errorf("package list entry %q is not name=version", item)
		}
		out = append(out, DebianPackage{Name: n, Version: v})
	}
	return out, nil
}

// SBOMParams is what an image's SBOM lists.
type SBOMParams struct {
	Image    name.Digest
	Created  time.Time
	Binaries []GoBinary
	Debian   []DebianPackage
	// Arch is the Debian architecture of the base's packages (default amd64).
	Arch string
	// Depends are the relations of a Debian package's Depends: field
	// ("iptables", "libc6 (>= 2.36)"): what it needs installed.
	Depends []string
}

// NewSBOM lists every Go module linked into the binaries (the main module
// included, and the standard library as "stdlib") and every Debian package
// of the base.
func NewSBOM(p SBOMParams) (*SPDXDocument, error) {
	if p.Image.DigestStr() == "" {
		return nil, fmt.Errorf("sbom: the image digest is required")
	}
	arch := p.Arch
	if arch == "" {
		arch = "amd64"
	}
	type goMod struct {
		path, version string
		in            []string
	}
	mods := map[string]*goMod{}
	add := func(path, version, bin string) {
		k := path + "@" + version
		m := mods[k]
		if m == nil {
			m = &goMod{path: path, version: version}
			mods[k] = m
		}
		if len(m.in) == 0 || m.in[len(m.in)-1] != bin {
			m.in = append(m.in, bin)
		}
	}
	bins := append([]GoBinary(nil), p.Binaries...)
	sort.Slice(bins, func(i, j int) bool { return bins[i].Path < bins[j].Path })
	for _, b := range bins {
		if b.Info == nil {
			return nil, fmt.Errorf("sbom: %s has no build info", b.Path)
		}
		mv := b.Info.Main.Version
		if b.MainVersion != "" {
			mv = b.MainVersion
		}
		if b.Info.Main.Path != "" {
			add(b.Info.Main.Path, mv, b.Path)
		}
		if b.Info.GoVersion != "" {
			add(StdlibPackage, b.Info.GoVersion, b.Path)
		}
		for _, d := range b.Info.Deps {
			m := d
			if d.Replace != nil {
				// What is linked is the replacement; keep the name the
				// code imports.
				m = &debug.Module{Path: d.Path, Version: d.Replace.Version}
				if m.Version == "" {
					m.Version = d.Version
				}
			}
			add(m.Path, m.Version, b.Path)
		}
	}
	doc := &SPDXDocument{
		SPDXVersion:       SPDXVersion,
		DataLicense:       SPDXDataLicense,
		SPDXID:            SPDXDocumentID,
		Name:              p.Image.String(),
		DocumentNamespace: "https://sailmaker.dev/spdx/" + p.Image.Context().Name() + "/" + p.Image.DigestStr() + "/" + uuid.NewString(),
		CreationInfo:      SPDXCreationInfo{Created: p.Created.UTC().Format(time.RFC3339), Creators: []string{SPDXCreator}},
		Packages:          []SPDXPackage{},
		Relationships:     []SPDXRelationship{},
	}
	ids := map[string]bool{}
	keys := make([]string, 0, len(mods))
	for k := range mods {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		m := mods[k]
		kind := "go module"
		if m.path == StdlibPackage {
			kind = "go standard library"
		}
		doc.Packages = append(doc.Packages, SPDXPackage{
			SPDXID:           spdxID(ids, "go-"+m.path+"-"+m.version),
			Name:             m.path,
			VersionInfo:      m.version,
			DownloadLocation: "NOASSERTION",
			ExternalRefs:     []SPDXExternalRef{purlRef(goPurl(m.path, m.version))},
			Comment:          kind + "; in: " + strings.Join(m.in, " "),
		})
	}
	debs := append([]DebianPackage(nil), p.Debian...)
	sort.Slice(debs, func(i, j int) bool { return debs[i].Name < debs[j].Name })
	for _, d := range debs {
		doc.Packages = append(doc.Packages, SPDXPackage{
			SPDXID:           spdxID(ids, "deb-"+d.Name+"-"+d.Version),
			Name:             d.Name,
			VersionInfo:      d.Version,
			DownloadLocation: "NOASSERTION",
			ExternalRefs:     []SPDXExternalRef{purlRef("pkg:deb/debian/" + d.Name + "@" + purlEscape(d.Version) + "?arch=" + arch)},
			Comment:          "debian package of the base image",
		})
	}
	for _, rel := range p.Depends {
		// The first alternative names the package; the whole relation is
		// in the comment.
		first, _, _ := strings.Cut(rel, "|")
		name, constraint, _ := strings.Cut(strings.TrimSpace(first), " ")
		doc.Packages = append(doc.Packages, SPDXPackage{
			SPDXID:           spdxID(ids, "deb-depends-"+name),
			Name:             name,
			VersionInfo:      strings.Trim(strings.TrimSpace(constraint), "()"),
			DownloadLocation: "NOASSERTION",
			ExternalRefs:     []SPDXExternalRef{purlRef("pkg:deb/debian/" + name + "?arch=" + arch)},
			Comment:          "Depends: of the Debian package: " + strings.TrimSpace(rel),
		})
	}
	for _, pkg := range doc.Packages {
		doc.Relationships = append(doc.Relationships, SPDXRelationship{SPDXElementID: SPDXDocumentID, RelationshipType: "DESCRIBES", RelatedSPDXElement: pkg.SPDXID})
	}
	return doc, nil
}

// ParseSBOM reads an SBOM document and checks that it is SPDX 2.3.
func ParseSBOM(b []byte) (*SPDXDocument, error) {
	var d SPDXDocument
	if err := json.Unmarshal(b, &d); err != nil {
		return nil, fmt.Errorf("sbom: %w", err)
	}
	if d.SPDXVersion != SPDXVersion {
		return nil, fmt.Errorf("sbom: spdxVersion is %q, want %q", d.SPDXVersion, SPDXVersion)
	}
	return &d, nil
}

// goPurl is pkg:golang/<path>@<version>; a module built from a checkout,
// "(devel)", has no version to name.
func goPurl(path, version string) string {
	if version == "" || version == "(devel)" {
		return "pkg:golang/" + path
	}
	return "pkg:golang/" + path + "@" + purlEscape(version)
}

func purlRef(locator string) SPDXExternalRef {
	return SPDXExternalRef{ReferenceCategory: "PACKAGE-MANAGER", ReferenceType: "purl", ReferenceLocator: locator}
}

// purlEscape percent-encodes a purl version: everything but letters,
// digits and ".-_~" (so Debian's "1:2.3+dfsg" becomes "1%3A2.3%2Bdfsg").
func purlEscape(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte(".-_~", c) >= 0 {
			b.WriteByte(c)
			continue
		}
		fmt.Fprintf(&b, "%%%02X", c)
	}
	return b.String()
}

// spdxID makes a unique SPDXRef-Package-<s> of letters, digits, "." and "-".
func spdxID(seen map[string]bool, s string) string {
	var b strings.Builder
	for _, r := range s {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '-' {
			b.WriteRune(r)
		} else {
			b.WriteByte('-')
		}
	}
	id := "SPDXRef-Package-" + b.String()
	for i := 2; seen[id]; i++ {
		id = fmt.Sprintf("SPDXRef-Package-%s-%d", b.String(), i)
	}
	seen[id] = true
	return id
}
