package base_test

import (
	"archive/tar"
	"bufio"
	"bytes"
	"context"
	"crypto/x509"
	"debug/elf"
	"io"
	"path"
	"sort"
	"strconv"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sailmaker/sailmaker/builder/base"
	"github.com/sailmaker/sailmaker/internal/testenv"
	"github.com/sailmaker/sailmaker/recipes"
)

// imgFile is one entry of an image's flattened filesystem.
type imgFile struct {
	hdr  *tar.Header
	data []byte // kept only where the caller asked
}

// imageFiles reads an image's flattened filesystem; keep says which regular
// files' contents to hold in memory.
func imageFiles(t *testing.T, img v1.Image, keep func(p string) bool) map[string]imgFile {
	t.Helper()
	rc := mutate.Extract(img)
	defer rc.Close()
	out := map[string]imgFile{}
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return out
		}
		require.NoError(t, err)
		p := path.Clean("/" + h.Name)
		f := imgFile{hdr: h}
		if h.Typeflag == tar.TypeReg && keep(p) {
			f.data, err = io.ReadAll(tr)
			require.NoError(t, err)
		}
		out[p] = f
	}
}

// platformImages are the images of a pushed base, one per platform of its
// recipe, read with base.PlatformImage as the builder will.
func platformImages(t *testing.T, e *testenv.Env, s base.Spec) map[string]v1.Image {
	t.Helper()
	tag, err := e.Registry.Tag(s.Name, s.Version)
	require.NoError(t, err)
	out := map[string]v1.Image{}
	for _, p := range s.PlatformList() {
		plat, err := base.ParsePlatform(p)
		require.NoError(t, err)
		img, d, err := base.PlatformImage(context.Background(), e.Registry, tag, plat)
		require.NoError(t, err, p)
		got, err := img.Digest()
		require.NoError(t, err)
		assert.Equal(t, d, got)
		cf, err := img.ConfigFile()
		require.NoError(t, err)
		assert.Equal(t, plat.Architecture, cf.Architecture, "%s's %s image", s.Name, p)
		out[p] = img
	}
	return out
}

func spec(t *testing.T, e *testenv.Env, name string) base.Spec {
	for _, s := range e.BaseSpecs(t) {
		if s.Name == name {
			return s
		}
	}
	t.Fatalf("no embedded base %s", name)
	return base.Spec{}
}

// elfMachine reads the ELF header of data with debug/elf.
func elfMachine(t *testing.T, p string, data []byte) elf.Machine {
	f, err := elf.NewFile(bytes.NewReader(data))
	require.NoError(t, err, "%s is not an ELF file", p)
	defer f.Close()
	return f.Machine
}

// The debug base, per platform: iptables and ip6tables are the legacy
// backend through /etc/alternatives; the packages installed are exactly
// the recipe's, minbase's (Essential, Priority required, apt), and what
// those depend on; the
// package label is that set; istio-proxy, its home, sudoers and
// DEBIAN_FRONTEND are as upstream's Dockerfile.base makes them; the
// binaries are for the platform's CPU.
func TestDebugBaseMatchesRecipe(t *testing.T) {
	testenv.Integration(t)
	e := testenv.Registry(t)
	e.Bases(t)
	s := spec(t, e, "base/bookworm")
	require.Contains(t, s.PlatformList(), "linux/arm64")
	for p, img := range platformImages(t, e, s) {
		t.Run(p, func(t *testing.T) {
			plat, err := base.ParsePlatform(p)
			require.NoError(t, err)
			want, _ := base.ELFMachine(plat)
			elfs := []string{"/usr/bin/curl", "/usr/sbin/xtables-legacy-multi", "/usr/bin/sudo", "/usr/bin/tcpdump"}
			files := imageFiles(t, img, func(f string) bool {
				switch f {
				case "/var/lib/dpkg/status", "/etc/passwd", "/etc/sudoers.d/sailmaker":
					return true
				}
				for _, e := range elfs {
					if f == e {
						return true
					}
				}
				return false
			})

			for _, a := range s.Alternatives {
				f, ok := files["/etc/alternatives/"+a.Name]
				require.True(t, ok, "/etc/alternatives/%s", a.Name)
				assert.Equal(t, byte(tar.TypeSymlink), f.hdr.Typeflag)
				assert.Equal(t, a.Path, f.hdr.Linkname, "/etc/alternatives/%s", a.Name)
			}
			assert.Equal(t, "/usr/sbin/iptables-legacy", files["/etc/alternatives/iptables"].hdr.Linkname, "upstream's choice, checked against the literal too")

			for _, f := range elfs {
				assert.Equal(t, want, elfMachine(t, f, files[f].data), "%s in the %s image", f, p)
			}

			cf, err := img.ConfigFile()
			require.NoError(t, err)
			assert.Contains(t, cf.Config.Env, "DEBIAN_FRONTEND=noninteractive")
			assert.Regexp(t, `(?m)^istio-proxy:x:1337:1337::/home/istio-proxy:/bin/sh$`, string(files["/etc/passwd"].data))
			assert.Equal(t, byte(tar.TypeDir), files["/home/istio-proxy"].hdr.Typeflag, "useradd -m made the home")
			assert.Equal(t, 1337, files["/home/istio-proxy"].hdr.Uid)
			assert.Equal(t, strings.Join(s.Sudoers, "\n")+"\n", string(files["/etc/sudoers.d/sailmaker"].data))

			// The package set. Installed: dpkg's status in the image. Expected:
			// the closure, over Depends and Pre-Depends (the first alternative
			// of a group that is installed, by name or Provides), of the
			// recipe's packages and minbase's (the Essential ones, those of
			// Priority required, and apt). Recommends are not installed, so nothing
			// else may be there; and the label must say the same.
			st := parseStatus(t, files["/var/lib/dpkg/status"].data)
			installed := map[string]bool{}
			var label []string
			for name, p := range st {
				if p["Status"] == "install ok installed" {
					installed[name] = true
					label = append(label, name+"="+p["Version"])
				}
			}
			sort.Strings(label)
			assert.Equal(t, strings.Join(label, ","), cf.Config.Labels[base.LabelPackages], "the label is dpkg's installed set")
			for _, p := range s.Packages {
				assert.True(t, installed[p], "recipe package %s is installed", p)
			}
			// mmdebstrap's minbase: Essential, Priority required, and apt.
			require.Equal(t, "minbase", s.Variant)
			closure := dependencyClosure(t, st, installed, append([]string{"apt"}, s.Packages...))
			var extra, missing []string
			for p := range installed {
				if !closure[p] {
					extra = append(extra, p)
				}
			}
			for p := range closure {
				if !installed[p] {
					missing = append(missing, p)
				}
			}
			sort.Strings(extra)
			sort.Strings(missing)
			assert.Empty(t, extra, "installed but neither in the recipe, minbase, nor a dependency")
			assert.Empty(t, missing, "needed but not installed")
		})
	}
}

// parseStatus reads dpkg's status file: package name -> field -> value.
func parseStatus(t *testing.T, data []byte) map[string]map[string]string {
	require.NotEmpty(t, data, "/var/lib/dpkg/status")
	out := map[string]map[string]string{}
	cur := map[string]string{}
	last := ""
	flush := func() {
		if cur["Package"] != "" {
			out[cur["Package"]] = cur
		}
		cur, last = map[string]string{}, ""
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		l := sc.Text()
		switch {
		case l == "":
			flush()
		case l[0] == ' ' || l[0] == '\t':
			if last != "" {
				cur[last] += "\n" + l
			}
		default:
			k, v, _ := strings.Cut(l, ":")
			last = k
			cur[k] = strings.TrimSpace(v)
		}
	}
	require.NoError(t, sc.Err())
	flush()
	return out
}

// dependencyClosure is what roots, the Essential packages and those of
// Priority required bring in through Depends and Pre-Depends.
func dependencyClosure(t *testing.T, st map[string]map[string]string, installed map[string]bool, roots []string) map[string]bool {
	provides := map[string][]string{}
	for name, p := range st {
		if !installed[name] {
			continue
		}
		for _, v := range splitRel(p["Provides"]) {
			provides[v] = append(provides[v], name)
		}
	}
	queue := append([]string(nil), roots...)
	for name, p := range st {
		if installed[name] && (p["Essential"] == "yes" || p["Priority"] == "required") {
			queue = append(queue, name)
		}
	}
	seen := map[string]bool{}
	for len(queue) > 0 {
		n := queue[0]
		queue = queue[1:]
		if seen[n] {
			continue
		}
		seen[n] = true
		p := st[n]
		for _, field := range []string{"Depends", "Pre-Depends"} {
			for _, group := range strings.Split(p[field], ",") {
				if strings.TrimSpace(group) == "" {
					continue
				}
				found := ""
				for _, alt := range strings.Split(group, "|") {
					name := relName(alt)
					if installed[name] {
						found = name
						break
					}
					if ps := provides[name]; len(ps) > 0 {
						found = ps[0]
						break
					}
				}
				if found == "" {
					t.Errorf("%s %s %q: nothing installed satisfies it", n, field, strings.TrimSpace(group))
					continue
				}
				queue = append(queue, found)
			}
		}
	}
	return seen
}

// relName is the package name of a relation like "libc6:any (>= 2.34)".
func relName(rel string) string {
	rel = strings.TrimSpace(rel)
	if i := strings.IndexAny(rel, " ("); i >= 0 {
		rel = rel[:i]
	}
	name, _, _ := strings.Cut(rel, ":")
	return name
}

func splitRel(s string) []string {
	var out []string
	for _, r := range strings.Split(s, ",") {
		if n := relName(r); n != "" {
			out = append(out, n)
		}
	}
	return out
}

// The distroless bases, per platform: no shell, no package manager, no
// dpkg database; every ELF file is for the platform's CPU and finds every
// library it needs in the image; the CA bundle holds the Mozilla
// certificates; passwd and group have the recipe's users; the label names
// the Debian packages the files came from.
func TestDistrolessBases(t *testing.T) {
	testenv.Integration(t)
	e := testenv.Registry(t)
	e.Bases(t)
	for _, name := range []string{"base/distroless", "base/iptables"} {
		s := spec(t, e, name)
		require.NotNil(t, s.Distroless, name)
		b, err := recipes.GetBase(name)
		require.NoError(t, err)
		for p, img := range platformImages(t, e, s) {
			t.Run(name+"/"+p, func(t *testing.T) {
				plat, err := base.ParsePlatform(p)
				require.NoError(t, err)
				want, _ := base.ELFMachine(plat)
				files := imageFiles(t, img, func(string) bool { return true })
				for _, f := range []string{"/bin/sh", "/usr/bin/sh", "/bin/bash", "/bin/dash", "/usr/bin/dpkg", "/usr/bin/apt", "/usr/bin/apt-get", "/var/lib/dpkg", "/usr/bin/busybox"} {
					_, ok := files[f]
					assert.False(t, ok, "%s must not be in a distroless image", f)
				}
				for f := range files {
					switch path.Base(f) {
					case "sh", "bash", "dash", "ash", "busybox", "dpkg", "apt", "apt-get":
						t.Errorf("%s: a shell or package manager in a distroless image", f)
					}
				}

				// Every ELF file is for this CPU, and what it needs is here.
				libs := map[string]bool{}
				for f, x := range files {
					if x.hdr.Typeflag != tar.TypeDir && (strings.HasPrefix(f, "/lib/") || strings.HasPrefix(f, "/usr/lib/")) {
						libs[path.Base(f)] = true
					}
				}
				nELF := 0
				for f, x := range files {
					if !bytes.HasPrefix(x.data, []byte(elf.ELFMAG)) {
						continue
					}
					nELF++
					ef, err := elf.NewFile(bytes.NewReader(x.data))
					require.NoError(t, err, f)
					assert.Equal(t, want, ef.Machine, f)
					needed, _ := ef.ImportedLibraries()
					for _, n := range needed {
						assert.True(t, libs[n], "%s needs %s, which is not in the image", f, n)
					}
					ef.Close()
				}

				certs := files["/etc/ssl/certs/ca-certificates.crt"].data
				pool := x509.NewCertPool()
				require.True(t, pool.AppendCertsFromPEM(certs), "the CA bundle parses")
				assert.Greater(t, bytes.Count(certs, []byte("BEGIN CERTIFICATE")), 100, "the Mozilla set")

				passwd := string(files["/etc/passwd"].data)
				assert.Regexp(t, `(?m)^root:x:0:0:`, passwd)
				for _, u := range b.Spec.Users {
					assert.Regexp(t, `(?m)^`+u.Name+`:x:`+strconv.Itoa(u.UID)+`:`+strconv.Itoa(u.UID)+`:`, passwd)
					assert.Regexp(t, `(?m)^`+u.Name+`:x:`+strconv.Itoa(u.UID)+`:`, string(files["/etc/group"].data))
				}
				assert.Equal(t, int64(0o1777), files["/tmp"].hdr.Mode&0o7777, "/tmp")
				assert.Equal(t, 65532, files["/home/nonroot"].hdr.Uid)

				cf, err := img.ConfigFile()
				require.NoError(t, err)
				assert.Equal(t, "distroless", cf.Config.Labels[base.LabelFlavour])
				assert.Equal(t, "65532", cf.Config.User, "upstream's distroless images run as nonroot")
				assert.Empty(t, cf.Config.Cmd, "no shell to run")
				pkgs := cf.Config.Labels[base.LabelPackages]
				assert.Regexp(t, `(^|,)ca-certificates=`, pkgs)
				assert.Regexp(t, `(^|,)base-files=`, pkgs)

				if name == "base/iptables" {
					assert.Greater(t, nELF, 50, "xtables-*-multi, the libraries, the extensions")
					for _, link := range []string{"iptables", "iptables-save", "iptables-restore", "ip6tables", "ip6tables-save", "ip6tables-restore"} {
						f := files["/usr/sbin/"+link]
						require.NotNil(t, f.hdr, link)
						assert.Equal(t, strings.Replace(link, "tables", "tables-legacy", 1), f.hdr.Linkname, "/usr/sbin/%s", link)
					}
					for _, b := range []string{"iptables-legacy", "iptables-nft", "ip6tables-legacy-restore", "ip6tables-nft-save"} {
						_, ok := files["/usr/sbin/"+b]
						assert.True(t, ok, b)
					}
					triplet := map[string]string{"amd64": "x86_64-linux-gnu", "arm64": "aarch64-linux-gnu"}[plat.Architecture]
					for _, ext := range []string{"libxt_REDIRECT.so", "libxt_TPROXY.so", "libxt_mark.so", "libxt_conntrack.so", "libip6t_REJECT.so"} {
						_, ok := files["/usr/lib/"+triplet+"/xtables/"+ext]
						assert.True(t, ok, "extension %s", ext)
					}
					_, ok := files["/lib/"+triplet+"/libgcc_s.so.1"]
					assert.True(t, ok, "libgcc_s, which glibc loads to cancel threads")
					assert.Contains(t, string(files["/etc/protocols"].data), "tcp")
					for _, p := range []string{"iptables", "libc6", "libxtables12", "libnftnl11", "netbase", "libgcc-s1"} {
						assert.Regexp(t, `(^|,)`+p+`=`, pkgs)
					}
					assert.Equal(t, "/home/nonroot", cf.Config.WorkingDir)
				} else {
					assert.Equal(t, 0, nELF, "the pilot base has no programs")
					_, ok := files["/usr/share/zoneinfo/Europe/Paris"]
					assert.True(t, ok, "tzdata")
					assert.Regexp(t, `(^|,)tzdata=`, pkgs)
					assert.NotRegexp(t, `(^|,)(openssl|debconf|libc6)=`, pkgs, "dependencies with no file in the image are not listed")
				}
			})
		}
	}
}
