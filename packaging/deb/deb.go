// Package deb builds Debian binary packages (.deb) reproducibly, with
// goreleaser's nfpm as the packager: the same Package (the same fields, the
// same file contents, the same MTime) gives the same bytes.
//
// What makes the bytes stable: every member of the ar archive and of both
// tarballs carries MTime (the caller passes the source's commit time, i.e.
// SOURCE_DATE_EPOCH, never the clock); files are sorted by path, with their
// parent directories made explicit (0755); every owner is root:root (uid and
// gid 0); modes are the ones given (no umask, no host file mode); gzip
// streams carry no name and no timestamp. The bytes can still change with
// the Go toolchain's compress/gzip or the nfpm version, so pin both.
//
// Besides the given files, Build writes what Debian policy and lintian expect
// of every package: DEBIAN/md5sums (nfpm), /usr/share/doc/<name>/copyright
// and the Debian changelog, gzipped, as changelog.Debian.gz (changelog.gz for
// a native version, one without a Debian revision).
package deb

import (
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/goreleaser/nfpm/v2"
	nfpmdeb "github.com/goreleaser/nfpm/v2/deb"
	"github.com/goreleaser/nfpm/v2/files"
	debversion "pault.ag/go/debian/version"
)

// Package is one Debian binary package: its control fields, its files and
// the documentation every package carries.
type Package struct {
	// Name is the package name (Package:), e.g. istio-cni.
	Name string
	// Version is the Debian version, [epoch:]upstream[-revision]; see
	// CheckVersion.
	Version string
	// Architecture is a Debian architecture: amd64, arm64, all.
	Architecture string
	// Maintainer is "Full Name <email>".
	Maintainer string
	// Synopsis is the first line of Description: one line, at most 80
	// characters, not a sentence.
	Synopsis string
	// Description is the extended description: plain text, paragraphs
	// separated by an empty line (written as " ." in the control file).
	Description string
	// Section is the archive section, e.g. net, admin, utils.
	Section string
	// Priority is required, important, standard or optional (the default).
	Priority string
	// Homepage is the upstream project's URL (optional).
	Homepage string
	// Package relations, one relation per entry ("iptables",
	// "libc6 (>= 2.36)", "a | b"); each is optional.
	Depends, Recommends, Suggests, Conflicts, Breaks, Replaces, Provides []string
	// Extra are further control fields (e.g. Built-Using), written in
	// sorted order after the standard ones.
	Extra map[string]string

	// Files are the files to install.
	Files []File

	// Copyright is the text of /usr/share/doc/<name>/copyright (required),
	// ideally in the machine-readable format (DEP-5).
	Copyright []byte
	// Changes are the items of the package's one changelog entry, for this
	// version (default: one item saying the package was built by
	// sailmaker).
	Changes []string
	// Distribution is the changelog entry's distribution (default
	// unstable).
	Distribution string
	// LintianOverrides are lintian tags the package accepts, each with its
	// reason; Build writes them to /usr/share/lintian/overrides/<name>.
	LintianOverrides []LintianOverride

	// MTime is the time every member of the package carries: the source's
	// commit time (SOURCE_DATE_EPOCH). Required, so that the clock never
	// gets into the bytes.
	MTime time.Time
}

// File is one file of a package.
type File struct {
	// Dest is the absolute path in the package, e.g. /opt/cni/bin/istio-cni.
	Dest string
	// Source is the file on disk to copy (symlinks are followed; the
	// package holds the content). Give Source or Data.
	Source string
	// Data is the file's content, for files made on the fly.
	Data []byte
	// Mode is the permission bits (0755 for programs, 0644 for data);
	// required.
	Mode fs.FileMode
}

// LintianOverride silences one lintian tag for the package, saying why.
type LintianOverride struct {
	// Tag is the lintian tag, e.g. statically-linked-binary.
	Tag string
	// Context narrows it to some hints, as lintian prints them between
	// brackets, with * as a wildcard: "opt/cni/*". Empty: every hint.
	Context string
	// Reason says why the hint is accepted (one line; required).
	Reason string
}

// LintianOverridesPath is where Build writes the package's lintian
// overrides, /usr/share/lintian/overrides/<name>.
func (p *Package) LintianOverridesPath() string { return "/usr/share/lintian/overrides/" + p.Name }

func (p *Package) lintianOverrides() []byte {
	var b strings.Builder
	for i, o := range p.LintianOverrides {
		if i > 0 {
			b.WriteString("\n")
		}
		fmt.Fprintf(&b, "# %s\n%s: %s", o.Reason, p.Name, o.Tag)
		if o.Context != "" {
			fmt.Fprintf(&b, " [%s]", o.Context)
		}
		b.WriteString("\n")
	}
	return []byte(b.String())
}

// DefaultChange is the changelog item written when Package.Changes is empty.
const DefaultChange = "Package built by sailmaker."

// FileName is the conventional file name of the package,
// <name>_<version without epoch>_<architecture>.deb (as dpkg-name makes it).
func (p *Package) FileName() string {
	v := p.Version
	if i := strings.IndexByte(v, ':'); i >= 0 {
		v = v[i+1:]
	}
	return fmt.Sprintf("%s_%s_%s.deb", p.Name, v, p.Architecture)
}

// DocDir is the package's documentation directory, /usr/share/doc/<name>.
func (p *Package) DocDir() string { return "/usr/share/doc/" + p.Name }

// ChangelogPath is where Build writes the Debian changelog:
// changelog.Debian.gz, or changelog.gz for a native version (no revision).
func (p *Package) ChangelogPath() string {
	if v, err := debversion.Parse(p.Version); err == nil && v.IsNative() {
		return p.DocDir() + "/changelog.gz"
	}
	return p.DocDir() + "/changelog.Debian.gz"
}

// Changelog is the Debian changelog text Build writes (before gzip).
func (p *Package) Changelog() string {
	dist := p.Distribution
	if dist == "" {
		dist = "unstable"
	}
	changes := p.Changes
	if len(changes) == 0 {
		changes = []string{DefaultChange}
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s (%s) %s; urgency=medium\n\n", p.Name, p.Version, dist)
	for _, c := range changes {
		lines := wrap(strings.Join(strings.Fields(c), " "), 80-4)
		fmt.Fprintf(&b, "  * %s\n", lines[0])
		for _, l := range lines[1:] {
			fmt.Fprintf(&b, "    %s\n", l)
		}
	}
	fmt.Fprintf(&b, "\n -- %s  %s\n", p.Maintainer, p.MTime.UTC().Format("Mon, 02 Jan 2006 15:04:05 -0700"))
	return b.String()
}

// wrap breaks text into lines of at most width bytes at spaces (a word
// longer than width gets a line of its own).
func wrap(text string, width int) []string {
	var lines []string
	line := ""
	for _, w := range strings.Fields(text) {
		switch {
		case line == "":
			line = w
		case len(line)+1+len(w) <= width:
			line += " " + w
		default:
			lines = append(lines, line)
			line = w
		}
	}
	return append(lines, line)
}

// wrapDescription breaks the description's lines longer than 79
// characters (as lintian wants them), keeping shorter lines as they are.
func wrapDescription(desc string) string {
	var out []string
	for _, l := range strings.Split(strings.TrimSpace(desc), "\n") {
		if len(l) <= 79 {
			out = append(out, l)
			continue
		}
		out = append(out, wrap(l, 79)...)
	}
	return strings.Join(out, "\n")
}

// Build validates p and returns the .deb's bytes.
func Build(ctx context.Context, p Package) ([]byte, error) {
	var buf bytes.Buffer
	if err := Write(ctx, &buf, p); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// WriteFile builds p into path (0644), written to a temporary file in the
// same directory first, so that path is either the whole package or absent.
func WriteFile(ctx context.Context, path string, p Package) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	defer os.Remove(tmp.Name())
	if err := Write(ctx, tmp, p); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Chmod(0o644); err != nil {
		tmp.Close()
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return nil
}

// Write validates p (see Validate) and writes the .deb to w.
func Write(ctx context.Context, w io.Writer, p Package) error {
	if err := p.Validate(); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	v, err := debversion.Parse(p.Version)
	if err != nil { // Validate checked it
		return fmt.Errorf("package %s: version: %w", p.Name, err)
	}

	// nfpm packages files from disk: generated files go to a scratch
	// directory (only their content, mode and MTime reach the package).
	scratch, err := os.MkdirTemp("", "sailmaker-deb-")
	if err != nil {
		return fmt.Errorf("package %s: %w", p.Name, err)
	}
	defer os.RemoveAll(scratch)

	changelog, err := gzipNoHeader([]byte(p.Changelog()))
	if err != nil {
		return fmt.Errorf("package %s: compressing the changelog: %w", p.Name, err)
	}
	all := append([]File(nil), p.Files...)
	all = append(all,
		File{Dest: p.DocDir() + "/copyright", Data: p.Copyright, Mode: 0o644},
		File{Dest: p.ChangelogPath(), Data: changelog, Mode: 0o644},
	)
	if len(p.LintianOverrides) > 0 {
		all = append(all, File{Dest: p.LintianOverridesPath(), Data: p.lintianOverrides(), Mode: 0o644})
	}
	mtime := p.MTime.UTC().Truncate(time.Second)
	contents := make(files.Contents, 0, len(all))
	for i, f := range all {
		src := f.Source
		if f.Data != nil {
			src = filepath.Join(scratch, fmt.Sprintf("file-%d", i))
			if err := os.WriteFile(src, f.Data, 0o600); err != nil {
				return fmt.Errorf("package %s: %w", p.Name, err)
			}
		} else {
			// nfpm would package a symlink as a symlink; the package must hold
			// the content.
			if src, err = filepath.EvalSymlinks(src); err != nil {
				return fmt.Errorf("package %s: %s: %w", p.Name, f.Source, err)
			}
		}
		contents = append(contents, &files.Content{
			Source:      src,
			Destination: f.Dest,
			Type:        files.TypeFile,
			FileInfo: &files.ContentFileInfo{
				Owner: "root",
				Group: "root",
				Mode:  f.Mode,
				MTime: mtime,
			},
		})
	}

	priority := p.Priority
	if priority == "" {
		priority = "optional"
	}
	info := &nfpm.Info{
		Name:            p.Name,
		Arch:            p.Architecture,
		Platform:        "linux",
		Version:         v.Version,
		Release:         v.Revision,
		VersionSchema:   "none",
		Section:         p.Section,
		Priority:        priority,
		Maintainer:      p.Maintainer,
		Description:     p.Synopsis + "\n" + wrapDescription(p.Description),
		Homepage:        p.Homepage,
		DisableGlobbing: true,
		MTime:           mtime,
		Overridables: nfpm.Overridables{
			Depends:    p.Depends,
			Recommends: p.Recommends,
			Suggests:   p.Suggests,
			Conflicts:  p.Conflicts,
			Replaces:   p.Replaces,
			Provides:   p.Provides,
			Contents:   contents,
			Umask:      0,
			Deb: nfpm.Deb{
				Arch:        p.Architecture,
				Breaks:      p.Breaks,
				Compression: "gzip",
				Fields:      p.Extra,
			},
		},
	}
	if v.Epoch > 0 {
		info.Epoch = fmt.Sprint(v.Epoch)
	}
	if err := nfpmdeb.Default.Package(info, w); err != nil {
		return fmt.Errorf("packaging %s: %w", p.FileName(), err)
	}
	return nil
}

// gzipNoHeader compresses data at the best level with no file name and no
// timestamp in the header (gzip -9n), as lintian expects of documentation.
func gzipNoHeader(data []byte) ([]byte, error) {
	var buf bytes.Buffer
	zw, err := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	if err != nil {
		return nil, err
	}
	if _, err := zw.Write(data); err != nil {
		return nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}
