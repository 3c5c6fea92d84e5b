// Package aptrepo makes and serves an apt repository of Debian packages:
//
//	pool/<component>/<p>/<source>/<name>_<version>_<arch>.deb
//	dists/<suite>/<component>/binary-<arch>/Packages, Packages.gz
//	dists/<suite>/Release, InRelease (clearsigned), Release.gpg (detached)
//
// Build adds .deb files to a repository directory and writes the indices
// and signatures again. The output is a function of the packages, the
// options and the key: the Release's Date is the newest package's time
// (its members' mtime, the source's commit time), never the clock, and
// Ed25519 signatures are deterministic, so the same packages give the same
// bytes. A published name_version_arch never changes content: Build refuses
// a package that would replace one with other bytes.
//
// Handler serves a repository directory read-only over HTTP.
package aptrepo

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/md5"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/sailmaker/sailmaker/internal/atomicfile"
	"github.com/sailmaker/sailmaker/packaging/deb"
)

// Options say how the repository is named.
type Options struct {
	// Suite is the distribution clients name in sources.list (default
	// stable); Codename defaults to Suite.
	Suite    string
	Codename string
	// Component is the one component (default main).
	Component string
	// Origin, Label and Description go into the Release file (defaults:
	// sailmaker, sailmaker, "Packages built by sailmaker").
	Origin, Label, Description string
	// Architectures are indexed even without packages of their own (a
	// repository of arch-independent packages still needs one); default:
	// the architectures of the packages, or amd64 when all are "all".
	Architectures []string
	// Signer signs Release (required).
	Signer *Signer
}

var (
	nameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9.+-]*$`)
	archRE = regexp.MustCompile(`^[a-z0-9][a-z0-9-]*$`)
)

func (o *Options) withDefaults() (Options, error) {
	out := *o
	if out.Suite == "" {
		out.Suite = "stable"
	}
	if out.Codename == "" {
		out.Codename = out.Suite
	}
	if out.Component == "" {
		out.Component = "main"
	}
	if out.Origin == "" {
		out.Origin = "sailmaker"
	}
	if out.Label == "" {
		out.Label = "sailmaker"
	}
	if out.Description == "" {
		out.Description = "Packages built by sailmaker"
	}
	// In a fixed order, so that the first bad field is always the one named.
	for _, f := range [][2]string{{"suite", out.Suite}, {"codename", out.Codename}, {"component", out.Component}} {
		if !nameRE.MatchString(f[1]) {
			return out, fmt.Errorf("%s %q: use lower case letters, digits and . + - (e.g. stable, main)", f[0], f[1])
		}
	}
	for _, f := range [][2]string{{"origin", out.Origin}, {"label", out.Label}, {"description", out.Description}} {
		if strings.ContainsAny(f[1], "\n\r") {
			return out, fmt.Errorf("%s %q: must be one line", f[0], f[1])
		}
	}
	for _, a := range out.Architectures {
		if !archRE.MatchString(a) || a == "all" {
			return out, fmt.Errorf("architecture %q: give a Debian architecture such as amd64 or arm64", a)
		}
	}
	if out.Signer == nil {
		return out, errors.New("no signing key: apt refuses unsigned repositories (sailmaker signing keygen --openpgp makes one)")
	}
	return out, nil
}

// Package is one package of the repository.
type Package struct {
	Name         string `json:"name"`
	Version      string `json:"version"`
	Architecture string `json:"architecture"`
	// Filename is its path in the repository, pool/...
	Filename string    `json:"filename"`
	Size     int64     `json:"size"`
	SHA256   string    `json:"sha256"`
	MD5      string    `json:"md5"`
	Time     time.Time `json:"time"`
	// Status says what Build did with it: added, unchanged (given again,
	// the same bytes) or kept (in the pool before, not given).
	Status string `json:"status"`

	control *deb.Control
	source  string // a file to copy into the pool ("" when in place)
}

// Result is what Build made.
type Result struct {
	// Packages are all packages of the repository, sorted by name, version
	// and architecture.
	Packages []Package `json:"packages"`
	// Date is the Release file's Date: the newest package's time.
	Date time.Time `json:"date"`
	// Suite and Component as written.
	Suite     string `json:"suite"`
	Component string `json:"component"`
	// Architectures indexed.
	Architectures []string `json:"architectures"`
	// Fingerprint of the key that signed Release.
	Fingerprint string `json:"fingerprint"`
}

// Build adds the .deb files debs to the repository in dir (made if
// missing) and writes its indices and signatures again. Everything is
// checked before anything is written: each file must be a Debian package
// with a valid name, version and architecture; a package already in the
// pool, or given twice, with the same name, version and architecture must
// have the same bytes.
func Build(ctx context.Context, dir string, debs []string, opts Options) (*Result, error) {
	o, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	existing, err := scanPool(ctx, dir)
	if err != nil {
		return nil, err
	}
	byKey := map[string]*Package{}
	var all []*Package
	for _, p := range existing {
		p.Status = "kept"
		key := p.key()
		if other, dup := byKey[key]; dup {
			return nil, fmt.Errorf("the pool holds %s twice (%s and %s): remove one", key, other.Filename, p.Filename)
		}
		byKey[key] = p
		all = append(all, p)
	}
	for _, file := range debs {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		p, err := readPackage(file)
		if err != nil {
			return nil, err
		}
		p.Filename = poolPath(o.Component, p)
		p.source = file
		key := p.key()
		if other, dup := byKey[key]; dup {
			if other.SHA256 != p.SHA256 {
				where := other.Filename
				if other.source != "" {
					where = other.source
				}
				return nil, fmt.Errorf("%s: %s is already in the repository (%s) with other content (sha256 %s, this one %s): a published version must not change; raise the version",
					file, key, where, other.SHA256, p.SHA256)
			}
			if other.Status == "kept" {
				other.Status = "unchanged"
			}
			continue
		}
		p.Status = "added"
		byKey[key] = p
		all = append(all, p)
	}
	if len(all) == 0 {
		return nil, errors.New("no packages: give .deb files to add")
	}
	sort.Slice(all, func(i, j int) bool { return less(all[i], all[j]) })

	archs := map[string]bool{}
	for _, a := range o.Architectures {
		archs[a] = true
	}
	var date time.Time
	for _, p := range all {
		if p.Architecture != "all" {
			archs[p.Architecture] = true
		}
		if p.Time.After(date) {
			date = p.Time
		}
	}
	if len(archs) == 0 {
		archs["amd64"] = true
	}
	archList := make([]string, 0, len(archs))
	for a := range archs {
		archList = append(archList, a)
	}
	sort.Strings(archList)

	// Everything checked: write the pool, then the indices, Release last.
	for _, p := range all {
		if p.Status != "added" {
			continue
		}
		if err := copyFile(p.source, filepath.Join(dir, filepath.FromSlash(p.Filename))); err != nil {
			return nil, err
		}
	}
	distDir := filepath.Join(dir, "dists", o.Suite)
	var indexFiles []indexFile
	for _, arch := range archList {
		var stanzas bytes.Buffer
		for _, p := range all {
			if p.Architecture != arch && p.Architecture != "all" {
				continue
			}
			if stanzas.Len() > 0 {
				stanzas.WriteByte('\n')
			}
			stanzas.WriteString(p.stanza())
		}
		rel := path.Join(o.Component, "binary-"+arch, "Packages")
		gz, err := gzipBytes(stanzas.Bytes())
		if err != nil {
			return nil, err
		}
		indexFiles = append(indexFiles, indexFile{rel, stanzas.Bytes()}, indexFile{rel + ".gz", gz})
	}
	for _, f := range indexFiles {
		if err := writeFileAtomic(filepath.Join(distDir, filepath.FromSlash(f.path)), f.data); err != nil {
			return nil, err
		}
	}
	release := releaseFile(o, date, archList, indexFiles)
	inRelease, err := o.Signer.ClearSign(release, date)
	if err != nil {
		return nil, err
	}
	detached, err := o.Signer.DetachSign(release, date)
	if err != nil {
		return nil, err
	}
	for _, f := range []indexFile{{"Release", release}, {"Release.gpg", detached}, {"InRelease", inRelease}} {
		if err := writeFileAtomic(filepath.Join(distDir, f.path), f.data); err != nil {
			return nil, err
		}
	}
	res := &Result{Date: date, Suite: o.Suite, Component: o.Component, Architectures: archList, Fingerprint: o.Signer.Fingerprint()}
	for _, p := range all {
		res.Packages = append(res.Packages, *p)
	}
	return res, nil
}

type indexFile struct {
	path string // relative to dists/<suite>
	data []byte
}

func (p *Package) key() string { return p.Name + "_" + p.Version + "_" + p.Architecture }

func less(a, b *Package) bool {
	if a.Name != b.Name {
		return a.Name < b.Name
	}
	if c, err := deb.CompareVersions(a.Version, b.Version); err == nil && c != 0 {
		return c < 0
	}
	return a.Architecture < b.Architecture
}

// stanza is the package's paragraph in Packages: its control fields as the
// package has them, then where it is and its sums.
func (p *Package) stanza() string {
	var b strings.Builder
	for _, f := range p.control.Fields {
		switch strings.ToLower(f.Name) {
		case "filename", "size", "md5sum", "sha1", "sha256", "sha512":
			continue // ours, below
		}
		b.WriteString(f.Name)
		b.WriteString(": ")
		b.WriteString(strings.ReplaceAll(f.Value, "\n", "\n "))
		b.WriteByte('\n')
	}
	fmt.Fprintf(&b, "Filename: %s\nSize: %d\nMD5sum: %s\nSHA256: %s\n", p.Filename, p.Size, p.MD5, p.SHA256)
	return b.String()
}

func releaseFile(o Options, date time.Time, archs []string, files []indexFile) []byte {
	var b strings.Builder
	fmt.Fprintf(&b, "Origin: %s\nLabel: %s\nSuite: %s\nCodename: %s\n", o.Origin, o.Label, o.Suite, o.Codename)
	fmt.Fprintf(&b, "Date: %s\n", date.UTC().Format("Mon, 02 Jan 2006 15:04:05 UTC"))
	fmt.Fprintf(&b, "Architectures: %s\nComponents: %s\nDescription: %s\n", strings.Join(archs, " "), o.Component, o.Description)
	b.WriteString("MD5Sum:\n")
	for _, f := range files {
		sum := md5.Sum(f.data)
		fmt.Fprintf(&b, " %s %d %s\n", hex.EncodeToString(sum[:]), len(f.data), f.path)
	}
	b.WriteString("SHA256:\n")
	for _, f := range files {
		sum := sha256.Sum256(f.data)
		fmt.Fprintf(&b, " %s %d %s\n", hex.EncodeToString(sum[:]), len(f.data), f.path)
	}
	return []byte(b.String())
}

// poolPath is pool/<component>/<prefix>/<source>/<name>_<version>_<arch>.deb
// with Debian's prefix: the source's first letter, or lib and the next one.
func poolPath(component string, p *Package) string {
	source := p.Name
	if s := strings.Fields(p.control.Get("Source")); len(s) > 0 && nameRE.MatchString(s[0]) {
		source = s[0]
	}
	prefix := source[:1]
	if strings.HasPrefix(source, "lib") && len(source) > 3 {
		prefix = source[:4]
	}
	v := p.Version
	if i := strings.IndexByte(v, ':'); i >= 0 {
		v = v[i+1:]
	}
	return path.Join("pool", component, prefix, source, fmt.Sprintf("%s_%s_%s.deb", p.Name, v, p.Architecture))
}

// readPackage reads a .deb's control fields and sums.
func readPackage(file string) (*Package, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", file, err)
	}
	defer f.Close()
	sha, md := sha256.New(), md5.New()
	n, err := io.Copy(io.MultiWriter(sha, md), f)
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", file, err)
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return nil, err
	}
	info, err := deb.ReadInfo(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	p := &Package{
		Name:         info.Control.Get("Package"),
		Version:      info.Control.Get("Version"),
		Architecture: info.Control.Get("Architecture"),
		Size:         n,
		SHA256:       hex.EncodeToString(sha.Sum(nil)),
		MD5:          hex.EncodeToString(md.Sum(nil)),
		Time:         info.MTime.UTC(),
		control:      info.Control,
	}
	if err := deb.CheckPackageName(p.Name); err != nil {
		return nil, fmt.Errorf("%s: Package %q: %v", file, p.Name, err)
	}
	if err := deb.CheckVersion(p.Version); err != nil {
		return nil, fmt.Errorf("%s: Version %q: %v", file, p.Version, err)
	}
	if !archRE.MatchString(p.Architecture) {
		return nil, fmt.Errorf("%s: Architecture %q is not a Debian architecture", file, p.Architecture)
	}
	return p, nil
}

// scanPool reads every .deb under dir/pool.
func scanPool(ctx context.Context, dir string) ([]*Package, error) {
	root := filepath.Join(dir, "pool")
	var out []*Package
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if errors.Is(err, fs.ErrNotExist) && p == root {
			return fs.SkipDir
		}
		if err != nil {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if d.IsDir() || !strings.HasSuffix(d.Name(), ".deb") || strings.HasPrefix(d.Name(), ".") {
			return nil
		}
		pkg, err := readPackage(p)
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		pkg.Filename = filepath.ToSlash(rel)
		out = append(out, pkg)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("reading the pool of %s: %w", dir, err)
	}
	return out, nil
}

func gzipBytes(data []byte) ([]byte, error) {
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

// writeFileAtomic writes data to p (0644) through a temporary file in the
// same directory, so that a reader sees the old file or the new one.
func writeFileAtomic(p string, data []byte) error {
	if err := atomicfile.Write(p, data); err != nil {
		return fmt.Errorf("writing %s: %w", p, err)
	}
	return nil
}

// copyFile copies src to dst (0644) the way writeFileAtomic writes.
func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return fmt.Errorf("copying %s into the pool: %w", src, err)
	}
	defer in.Close()
	if err := atomicfile.WriteFunc(dst, func(w io.Writer) error {
		_, err := io.Copy(w, in)
		return err
	}); err != nil {
		return fmt.Errorf("copying %s into the pool: %w", src, err)
	}
	return nil
}
