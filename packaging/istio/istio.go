// Package istio makes the two Debian packages sailmaker builds from an Istio
// release, over binaries already built:
//
//   - istio-cni_<version>-<revision>_<arch>.deb (CNIPackage): upstream's CNI
//     plugin at /opt/cni/bin/istio-cni, for nodes that take the plugin from
//     a package instead of upstream's install-cni DaemonSet;
//   - istioctl-versions (IstioctlPackage): istioctl of several releases side
//     by side, /usr/bin/istioctl-<version without dots>, with a version of
//     its own derived from what it holds.
//
// The functions check their input before anything is built and return
// errors that name the field at fault, as packaging/deb does.
package istio

import (
	"crypto/sha256"
	"debug/buildinfo"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"strings"
	"time"

	"github.com/sailmaker/sailmaker/packaging/deb"
)

// Homepage is upstream's home page, the Homepage: of both packages.
const Homepage = "https://istio.io"

// Source says where binaries came from; it goes into the copyright file and
// the changelog.
type Source struct {
	// URL is the upstream git URL, e.g. https://github.com/istio/istio.git.
	URL string
	// Tag and Commit are the release tag and the commit it names.
	Tag    string
	Commit string
	// Time is the commit time (SOURCE_DATE_EPOCH): the time of every member
	// of the package.
	Time time.Time
}

func (s Source) String() string {
	var parts []string
	if s.URL != "" {
		parts = append(parts, s.URL)
	}
	if s.Tag != "" {
		parts = append(parts, "tag "+s.Tag)
	}
	if s.Commit != "" {
		parts = append(parts, "commit "+s.Commit)
	}
	return strings.Join(parts, ", ")
}

// fieldErr builds a deb.FieldError (the same type packaging/deb returns, so
// callers handle one kind of error).
func fieldErr(field, value, format string, args ...any) *deb.FieldError {
	return &deb.FieldError{Field: field, Value: value, Msg: fmt.Sprintf(format, args...)}
}

// DebianVersion turns an Istio release version into a Debian upstream
// version: a semver pre-release ("1.25.0-beta.1") becomes "1.25.0~beta.1",
// so that it sorts before the release as dpkg compares. Build metadata
// ("+...") is kept.
func DebianVersion(istioVersion string) (string, error) {
	v, err := ParseVersion(istioVersion)
	if err != nil {
		return "", err
	}
	out := fmt.Sprintf("%d.%d.%d", v.Major, v.Minor, v.Patch)
	if v.Pre != "" {
		out += "~" + v.Pre
	}
	if v.Meta != "" {
		out += "+" + v.Meta
	}
	return out, nil
}

// goArchToDebian maps GOARCH (and GOARM) to the Debian architecture.
func goArchToDebian(goarch, goarm string) string {
	switch goarch {
	case "386":
		return "i386"
	case "arm":
		if strings.HasPrefix(goarm, "5") {
			return "armel"
		}
		return "armhf"
	case "ppc64le":
		return "ppc64el"
	case "mips64le":
		return "mips64el"
	case "mipsle":
		return "mipsel"
	}
	return goarch
}

// checkBinary checks that file is a Go program for linux/<arch> whose main
// package is named cmdName (istioctl, istio-cni): what upstream's build
// makes. It does not run the program. It returns the file's sha256 (hex),
// or a *deb.FieldError for field.
func checkBinary(field, file, cmdName, arch string) (string, *deb.FieldError) {
	f, err := os.Open(file)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return "", fieldErr(field, file, "no such file; was %s built?", cmdName)
		}
		return "", fieldErr(field, file, "cannot read it: %v", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil || !st.Mode().IsRegular() {
		return "", fieldErr(field, file, "not a regular file")
	}
	bi, err := buildinfo.Read(f)
	if err != nil {
		return "", fieldErr(field, file, "not a Go program with build info (%v); is this the %s that upstream's make built?", err, cmdName)
	}
	if path.Base(bi.Path) != cmdName {
		return "", fieldErr(field, file, "is the Go program %s, not %s", bi.Path, cmdName)
	}
	var goos, goarch, goarm string
	for _, s := range bi.Settings {
		switch s.Key {
		case "GOOS":
			goos = s.Value
		case "GOARCH":
			goarch = s.Value
		case "GOARM":
			goarm = s.Value
		}
	}
	if goos != "" && goos != "linux" {
		return "", fieldErr(field, file, "built for GOOS=%s; a Debian package needs linux", goos)
	}
	if goarch != "" && goArchToDebian(goarch, goarm) != arch {
		return "", fieldErr(field, file, "built for GOARCH=%s (Debian %s), but the package is for %s", goarch, goArchToDebian(goarch, goarm), arch)
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return "", fieldErr(field, file, "cannot read it: %v", err)
	}
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", fieldErr(field, file, "cannot read it: %v", err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// apacheCopyright is the DEP-5 copyright file of a package of Istio
// binaries.
// goStaticReason is why the packages accept lintian's statically-linked-binary.
const goStaticReason = "a Go program, statically linked like every upstream build (CGO_ENABLED=0); lintian exempts Go programs only when it sees a source package that build-depends on golang-go"

func apacheCopyright(src Source, what string, year int) []byte {
	source := "https://github.com/istio/istio"
	if s := src.String(); s != "" {
		source = s
	}
	return []byte(`Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: istio
Upstream-Contact: https://istio.io
Source: ` + source + `
Comment: ` + what + ` built from the source above by sailmaker, offline,
 at the pinned commit. The programs are statically linked Go binaries: they
 also contain the Go modules listed in the source's go.mod, each under its
 own license; the SPDX SBOM that sailmaker attaches to the package lists
 them with their versions.

Files: *
Copyright: 2016-` + fmt.Sprint(year) + ` Istio Authors
License: Apache-2.0

License: Apache-2.0
 Licensed under the Apache License, Version 2.0 (the "License");
 you may not use this file except in compliance with the License.
 You may obtain a copy of the License at
 .
     http://www.apache.org/licenses/LICENSE-2.0
 .
 Unless required by applicable law or agreed to in writing, software
 distributed under the License is distributed on an "AS IS" BASIS,
 WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
 See the License for the specific language governing permissions and
 limitations under the License.
 .
 On Debian systems, the complete text of the Apache License, Version 2.0
 can be found in "/usr/share/common-licenses/Apache-2.0".
`)
}
