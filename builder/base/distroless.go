package base

import (
	"archive/tar"
	"bytes"
	"context"
	"debug/elf"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/sirupsen/logrus"

	"github.com/sailmaker/sailmaker/builder/layer"
)

// A distroless base is built in three steps:
//
//  1. mmdebstrap --variant=extract downloads the packages and their
//     dependencies for the platform and unpacks them; no maintainer script
//     runs, so no emulation is needed for another architecture.
//  2. Every .deb is read again (dpkg-deb --fsys-tarfile) to know which
//     package each path comes from.
//  3. The recipe's files are selected, with what they need: a symbolic
//     link its target, an ELF file its interpreter and DT_NEEDED libraries
//     (read with debug/elf, searched like the dynamic loader does), a
//     directory its contents. Those, the users, links and directories the
//     recipe adds and, if asked, the CA bundle make one layer, sorted by
//     path, every time stamp the recipe's epoch.
//
// The image's package label names the packages whose files it holds.

// HistoryDistroless starts the history entry of a distroless base's layer.
const HistoryDistroless = "sailmaker distroless: "

func buildDistroless(ctx context.Context, s Spec, o Options, plat v1.Platform, work string, log logrus.FieldLogger) (*PlatformResult, error) {
	root := filepath.Join(work, "root")
	log.WithFields(logrus.Fields{"suite": s.Suite, "packages": strings.Join(s.Packages, ",")}).Info("extracting packages with mmdebstrap (distroless)")
	args := []string{
		"--mode=root",
		"--variant=extract",
		"--format=directory",
		"--skip=cleanup/apt/cache",
		"--architectures=" + plat.Architecture,
		"--include=" + strings.Join(s.Packages, ","),
		s.Suite, root,
	}
	if err := runMmdebstrap(ctx, s, o, args, work); err != nil {
		return nil, err
	}
	defer os.RemoveAll(root)

	debs, err := filepath.Glob(filepath.Join(root, "var/cache/apt/archives/*.deb"))
	if err != nil || len(debs) == 0 {
		return nil, fmt.Errorf("mmdebstrap left no packages in %s", filepath.Join(root, "var/cache/apt/archives"))
	}
	owners := map[string]string{}
	for _, d := range debs {
		if err := readDeb(ctx, d, owners); err != nil {
			return nil, err
		}
	}
	sel := &selection{root: root, triplet: arches[plat.Architecture].triplet, machine: arches[plat.Architecture].machine, owners: owners, entries: map[string]*entry{}, packages: map[string]bool{}}
	if err := sel.selectFiles(s.Distroless.Files); err != nil {
		return nil, fmt.Errorf("selecting files for %s: %w", plat.Architecture, err)
	}
	if err := sel.addGenerated(s); err != nil {
		return nil, err
	}
	epoch := time.Unix(s.SourceDateEpoch, 0).UTC()
	l, err := layer.Write(filepath.Join(work, "rootfs.tar.gz"), func(tw *tar.Writer) error { return sel.write(tw, epoch) })
	if err != nil {
		return nil, fmt.Errorf("packing the distroless root: %w", err)
	}
	pkgs := sel.packageList()
	log.WithFields(logrus.Fields{"files": len(sel.entries), "packages": len(pkgs)}).Info("distroless root ready")
	img, err := assemble(s, plat, []mutate.Addendum{{
		Layer:     l,
		MediaType: types.OCILayer,
		History:   v1.History{Created: v1.Time{Time: epoch}, CreatedBy: HistoryDistroless + "files of " + strings.Join(s.Packages, ",") + " (debian " + s.Suite + ")", Comment: "sailmaker base " + s.Name},
	}}, pkgs, "", nil)
	if err != nil {
		return nil, err
	}
	return &PlatformResult{Platform: plat, Image: img, Packages: pkgs}, nil
}

// readDeb records in owners, for each path the package deb ships, its
// "name=version".
func readDeb(ctx context.Context, deb string, owners map[string]string) error {
	out, err := exec.CommandContext(ctx, "dpkg-deb", "--show", "--showformat=${Package}=${Version}", deb).Output()
	if err != nil {
		return fmt.Errorf("reading %s with dpkg-deb: %w", filepath.Base(deb), err)
	}
	pkg := strings.TrimSpace(string(out))
	cmd := exec.CommandContext(ctx, "dpkg-deb", "--fsys-tarfile", deb)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	r, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("reading %s with dpkg-deb: %w", filepath.Base(deb), err)
	}
	tr := tar.NewReader(r)
	var terr error
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			terr = err
			break
		}
		p := path.Clean("/" + h.Name)
		if p != "/" {
			owners[p] = pkg
		}
	}
	_, _ = io.Copy(io.Discard, r)
	if err := cmd.Wait(); err != nil || terr != nil {
		return fmt.Errorf("reading the files of %s: %v %v %s", filepath.Base(deb), err, terr, strings.TrimSpace(stderr.String()))
	}
	return nil
}

// entry is one path of the image.
type entry struct {
	path     string // absolute, in the image
	typ      byte   // tar.TypeReg, TypeDir, TypeSymlink
	mode     int64
	uid, gid int
	link     string // symlink target
	file     string // where the content is on this machine ("" for data)
	data     []byte // generated content
	walked   bool   // a directory whose contents are selected too
}

// selection collects the image's entries from the extracted root.
type selection struct {
	root     string
	triplet  string
	machine  elf.Machine
	owners   map[string]string // path -> name=version
	entries  map[string]*entry
	packages map[string]bool // name=version of packages with a selected file
}

// selectFiles adds what the patterns name. Each must match something the
// packages ship.
func (s *selection) selectFiles(patterns []string) error {
	all := make([]string, 0, len(s.owners))
	for p := range s.owners {
		all = append(all, p)
	}
	sort.Strings(all)
	for _, pat := range patterns {
		n := 0
		for _, p := range all {
			if ok, _ := path.Match(pat, p); ok {
				n++
				if err := s.add(p, 0); err != nil {
					return err
				}
			}
		}
		if n == 0 {
			return fmt.Errorf("%s matches no file of the packages (spec.distroless.files)", pat)
		}
	}
	return nil
}

// host is where the image path p is on this machine.
func (s *selection) host(p string) string { return filepath.Join(s.root, filepath.FromSlash(p)) }

// resolveDir follows symbolic links in the directories of p, inside the
// root, and returns the path p really has (its last element is kept).
func (s *selection) resolveDir(p string, depth int) (string, error) {
	dir, base := path.Split(p)
	dir = path.Clean(dir)
	if dir == "/" {
		return p, nil
	}
	rdir, err := s.resolve(dir, depth)
	if err != nil {
		return "", err
	}
	return path.Join(rdir, base), nil
}

// resolve follows every symbolic link of p inside the root.
func (s *selection) resolve(p string, depth int) (string, error) {
	if depth > 40 {
		return "", fmt.Errorf("%s: too many levels of symbolic links", p)
	}
	rp, err := s.resolveDir(p, depth+1)
	if err != nil {
		return "", err
	}
	fi, err := os.Lstat(s.host(rp))
	if err != nil {
		return "", err
	}
	if fi.Mode()&fs.ModeSymlink == 0 {
		return rp, nil
	}
	t, err := os.Readlink(s.host(rp))
	if err != nil {
		return "", err
	}
	return s.resolve(linkTarget(rp, t), depth+1)
}

// linkTarget is the absolute path a link at p with target t names.
func linkTarget(p, t string) string {
	if path.IsAbs(t) {
		return path.Clean(t)
	}
	return path.Join(path.Dir(p), t)
}

// add selects the image path p with what it needs.
func (s *selection) add(p string, depth int) error { return s.addEntry(p, depth, false) }

// addEntry is add; inDir says p was found in a selected directory, where a
// symbolic link to what no package ships (tzdata's zoneinfo/localtime,
// made by a maintainer script) is kept as it is rather than refused.
func (s *selection) addEntry(p string, depth int, inDir bool) error {
	if depth > 40 {
		return fmt.Errorf("%s: too many levels of symbolic links", p)
	}
	rp, err := s.resolveDir(p, depth)
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("%s is not in the extracted packages", p)
	}
	if err != nil {
		return fmt.Errorf("%s: %w", p, err)
	}
	if e, ok := s.entries[rp]; ok && (e.typ != tar.TypeDir || e.walked) {
		return nil
	}
	fi, err := os.Lstat(s.host(rp))
	if err != nil {
		return fmt.Errorf("%s is not in the extracted packages: %w", p, err)
	}
	if err := s.addParents(rp); err != nil {
		return err
	}
	e := &entry{path: rp, mode: int64(fi.Mode().Perm())}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		e.uid, e.gid = int(st.Uid), int(st.Gid)
		e.mode = int64(st.Mode & 0o7777)
	}
	s.entries[rp] = e
	if o, ok := s.owners[rp]; ok && !fi.IsDir() {
		// Directories are shared by many packages: a package counts when
		// one of its files or links is in the image.
		s.packages[o] = true
	}
	switch {
	case fi.Mode()&fs.ModeSymlink != 0:
		e.typ = tar.TypeSymlink
		if e.link, err = os.Readlink(s.host(rp)); err != nil {
			return err
		}
		target := linkTarget(rp, e.link)
		if _, err := s.resolve(target, depth+1); inDir && errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err := s.add(target, depth+1); err != nil {
			return fmt.Errorf("%s links to %s: %w", rp, e.link, err)
		}
		return nil
	case fi.IsDir():
		e.typ = tar.TypeDir
		e.walked = true
		names, err := os.ReadDir(s.host(rp))
		if err != nil {
			return err
		}
		for _, n := range names {
			if err := s.addEntry(path.Join(rp, n.Name()), depth, true); err != nil {
				return err
			}
		}
		return nil
	case fi.Mode().IsRegular():
		e.typ = tar.TypeReg
		e.file = s.host(rp)
		return s.addELFDeps(rp, depth)
	default:
		return fmt.Errorf("%s is neither a file, a directory nor a symbolic link", p)
	}
}

// addParents adds the directories above p as the packages have them.
func (s *selection) addParents(p string) error {
	for dir := path.Dir(p); dir != "/"; dir = path.Dir(dir) {
		if _, ok := s.entries[dir]; ok {
			continue
		}
		fi, err := os.Lstat(s.host(dir))
		if err != nil {
			return err
		}
		e := &entry{path: dir, typ: tar.TypeDir, mode: int64(fi.Mode().Perm())}
		if st, ok := fi.Sys().(*syscall.Stat_t); ok {
			e.uid, e.gid = int(st.Uid), int(st.Gid)
			e.mode = int64(st.Mode & 0o7777)
		}
		s.entries[dir] = e
	}
	return nil
}

// addELFDeps adds the interpreter and the shared libraries an ELF file
// needs, searched as the dynamic loader does: DT_RUNPATH (or DT_RPATH),
// then the multiarch and plain library directories.
func (s *selection) addELFDeps(p string, depth int) error {
	info, err := readELF(s.host(p))
	if err != nil || info == nil {
		return err
	}
	if info.machine != s.machine {
		return fmt.Errorf("%s is an ELF file for %s, not %s", p, info.machine, s.machine)
	}
	if info.interp != "" {
		if err := s.add(info.interp, depth); err != nil {
			return fmt.Errorf("the interpreter of %s: %w", p, err)
		}
	}
	var dirs []string
	for _, rp := range info.runpath {
		dirs = append(dirs, strings.ReplaceAll(strings.ReplaceAll(rp, "${ORIGIN}", path.Dir(p)), "$ORIGIN", path.Dir(p)))
	}
	dirs = append(dirs, "/lib/"+s.triplet, "/usr/lib/"+s.triplet, "/lib", "/usr/lib")
	for _, lib := range info.needed {
		found := ""
		for _, d := range dirs {
			c := path.Join(d, lib)
			if strings.Contains(lib, "/") {
				c = linkTarget(p, lib)
			}
			if r, err := s.resolve(c, 0); err == nil {
				if fi, err := os.Stat(s.host(r)); err == nil && fi.Mode().IsRegular() {
					found = c
					break
				}
			}
		}
		if found == "" {
			return fmt.Errorf("%s needs %s, which none of the packages has (in %s): add the package that ships it to spec.packages", p, lib, strings.Join(dirs, ", "))
		}
		if err := s.add(found, depth); err != nil {
			return err
		}
	}
	return nil
}

// addGenerated adds the recipe's users (/etc/passwd, /etc/group and their
// homes), links, directories and the CA bundle.
func (s *selection) addGenerated(spec Spec) error {
	d := spec.Distroless
	put := func(e *entry) error {
		if err := s.addGeneratedParents(e.path); err != nil {
			return err
		}
		s.entries[e.path] = e
		return nil
	}
	passwd := "root:x:0:0:root:/root:/sbin/nologin\n"
	group := "root:x:0:\n"
	for _, u := range spec.Users {
		passwd += fmt.Sprintf("%s:x:%d:%d:%s:%s:/sbin/nologin\n", u.Name, u.UID, u.UID, u.Name, u.HomeDir())
		group += fmt.Sprintf("%s:x:%d:\n", u.Name, u.UID)
	}
	passwd += "nobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin\n"
	group += "nogroup:x:65534:\n"
	for _, f := range []*entry{
		{path: "/etc/passwd", typ: tar.TypeReg, mode: 0o644, data: []byte(passwd)},
		{path: "/etc/group", typ: tar.TypeReg, mode: 0o644, data: []byte(group)},
	} {
		if err := put(f); err != nil {
			return err
		}
	}
	if err := put(&entry{path: "/root", typ: tar.TypeDir, mode: 0o700}); err != nil {
		return err
	}
	for _, u := range spec.Users {
		if h := u.HomeDir(); h != "/nonexistent" {
			if err := put(&entry{path: h, typ: tar.TypeDir, mode: 0o755, uid: u.UID, gid: u.UID}); err != nil {
				return err
			}
		}
	}
	for p, mode := range d.Dirs {
		if err := put(&entry{path: p, typ: tar.TypeDir, mode: int64(mode)}); err != nil {
			return err
		}
	}
	for p, t := range d.Links {
		if err := put(&entry{path: p, typ: tar.TypeSymlink, mode: 0o777, link: t}); err != nil {
			return err
		}
		target := linkTarget(p, t)
		if _, ok := s.entries[target]; !ok {
			if err := s.add(target, 0); err != nil {
				return fmt.Errorf("spec.distroless.links[%s]: %w", p, err)
			}
		}
	}
	if d.CACertificates {
		bundle, pkg, err := s.caBundle()
		if err != nil {
			return err
		}
		s.packages[pkg] = true
		if err := put(&entry{path: "/etc/ssl/certs/ca-certificates.crt", typ: tar.TypeReg, mode: 0o644, data: bundle}); err != nil {
			return err
		}
	}
	return nil
}

// addGeneratedParents adds the directories above p: as the packages have
// them where they do, else root's 0755.
func (s *selection) addGeneratedParents(p string) error {
	for dir := path.Dir(p); dir != "/"; dir = path.Dir(dir) {
		if _, ok := s.entries[dir]; ok {
			continue
		}
		if _, err := os.Lstat(s.host(dir)); err == nil {
			if err := s.addParents(dir + "/x"); err != nil {
				return err
			}
			continue
		}
		s.entries[dir] = &entry{path: dir, typ: tar.TypeDir, mode: 0o755}
	}
	return nil
}

// caBundle concatenates the certificates of the ca-certificates package
// in the order update-ca-certificates does (sorted by name, each ending
// with a newline), which is what its postinst writes to
// /etc/ssl/certs/ca-certificates.crt with every certificate enabled.
func (s *selection) caBundle() ([]byte, string, error) {
	const dir = "/usr/share/ca-certificates"
	var certs []string
	pkg := ""
	for p, o := range s.owners {
		if strings.HasPrefix(p, dir+"/") && strings.HasSuffix(p, ".crt") {
			certs = append(certs, strings.TrimPrefix(p, dir+"/"))
			pkg = o
		}
	}
	if len(certs) == 0 {
		return nil, "", fmt.Errorf("the ca-certificates package has no certificates under %s", dir)
	}
	sort.Strings(certs)
	var b bytes.Buffer
	for _, c := range certs {
		data, err := os.ReadFile(s.host(path.Join(dir, c)))
		if err != nil {
			return nil, "", err
		}
		b.Write(data)
		if len(data) > 0 && data[len(data)-1] != '\n' {
			b.WriteByte('\n')
		}
	}
	return b.Bytes(), pkg, nil
}

// packageList is the sorted name=version of the packages with a file in
// the image.
func (s *selection) packageList() []string {
	out := make([]string, 0, len(s.packages))
	for p := range s.packages {
		out = append(out, p)
	}
	sort.Strings(out)
	return out
}

// write writes the entries sorted by path.
func (s *selection) write(tw *tar.Writer, epoch time.Time) error {
	paths := make([]string, 0, len(s.entries))
	for p := range s.entries {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	for _, p := range paths {
		e := s.entries[p]
		h := &tar.Header{Typeflag: e.typ, Name: strings.TrimPrefix(p, "/"), Mode: e.mode, Uid: e.uid, Gid: e.gid, Linkname: e.link}
		if e.typ == tar.TypeDir {
			h.Name += "/"
		}
		var data []byte
		if e.typ == tar.TypeReg {
			data = e.data
			if e.file != "" {
				var err error
				if data, err = os.ReadFile(e.file); err != nil {
					return err
				}
			}
			h.Size = int64(len(data))
		}
		layer.Normalize(h, epoch)
		if err := tw.WriteHeader(h); err != nil {
			return err
		}
		if len(data) > 0 {
			if _, err := tw.Write(data); err != nil {
				return err
			}
		}
	}
	return nil
}
