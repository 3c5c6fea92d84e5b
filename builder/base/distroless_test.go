package base

import (
	"archive/tar"
	"bytes"
	"debug/elf"
	"os"
	"path/filepath"
	"sort"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// fakeRoot lays out, like extracted Debian packages, this machine's
// /usr/bin/true with its libc and dynamic loader (real ELF files), a
// directory with a link to what no package ships, and returns the
// selection over it.
func fakeRoot(t *testing.T, withLibc bool) *selection {
	t.Helper()
	info, err := readELF("/usr/bin/true")
	require.NoError(t, err)
	require.NotNil(t, info)
	var triplet string
	for _, a := range arches {
		if a.machine == info.machine {
			triplet = a.triplet
		}
	}
	require.NotEmpty(t, triplet, "this machine's CPU is amd64 or arm64")
	root := t.TempDir()
	copyIn := func(from, to string) {
		data, err := os.ReadFile(from)
		require.NoError(t, err)
		require.NoError(t, os.MkdirAll(filepath.Join(root, filepath.Dir(to)), 0o755))
		require.NoError(t, os.WriteFile(filepath.Join(root, to), data, 0o755))
	}
	owners := map[string]string{}
	copyIn("/usr/bin/true", "/usr/bin/true")
	owners["/usr/bin/true"] = "coreutils=9.1-1"
	ld := filepath.Base(info.interp)
	realLd, err := filepath.EvalSymlinks(info.interp)
	require.NoError(t, err)
	copyIn(realLd, "/lib/"+triplet+"/"+ld)
	owners["/lib/"+triplet+"/"+ld] = "libc6=2.36"
	// The interpreter's path as the program names it, a link to the real one.
	require.NoError(t, os.MkdirAll(filepath.Join(root, filepath.Dir(info.interp)), 0o755))
	if filepath.Dir(info.interp) != "/lib/"+triplet {
		require.NoError(t, os.Symlink("/lib/"+triplet+"/"+ld, filepath.Join(root, info.interp)))
		owners[info.interp] = "libc6=2.36"
	}
	if withLibc {
		for _, n := range info.needed {
			host, err := filepath.EvalSymlinks(filepath.Join("/lib", triplet, n))
			require.NoError(t, err)
			copyIn(host, "/lib/"+triplet+"/"+n)
			owners["/lib/"+triplet+"/"+n] = "libc6=2.36"
		}
	}
	require.NoError(t, os.MkdirAll(filepath.Join(root, "usr/share/zoneinfo"), 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(root, "usr/share/zoneinfo/UTC"), []byte("TZif"), 0o644))
	require.NoError(t, os.Symlink("/etc/localtime", filepath.Join(root, "usr/share/zoneinfo/localtime")))
	owners["/usr/share/zoneinfo"] = "tzdata=1"
	owners["/usr/share/zoneinfo/UTC"] = "tzdata=1"
	owners["/usr/share/zoneinfo/localtime"] = "tzdata=1"
	return &selection{root: root, triplet: triplet, machine: info.machine, owners: owners, entries: map[string]*entry{}, packages: map[string]bool{}}
}

func TestSelectionFollowsELFAndLinks(t *testing.T) {
	s := fakeRoot(t, true)
	require.NoError(t, s.selectFiles([]string{"/usr/bin/tru?", "/usr/share/zoneinfo"}))
	var paths []string
	for p := range s.entries {
		paths = append(paths, p)
	}
	info, _ := readELF("/usr/bin/true")
	assert.Contains(t, paths, "/usr/bin/true")
	assert.Contains(t, paths, info.interp, "the interpreter, as the program names it")
	for _, n := range info.needed {
		assert.Contains(t, paths, "/lib/"+s.triplet+"/"+n, "DT_NEEDED %s", n)
	}
	assert.Contains(t, paths, "/usr/share/zoneinfo/localtime", "a dangling link inside a selected directory is kept")
	assert.NotContains(t, paths, "/etc/localtime")
	assert.Equal(t, []string{"coreutils=9.1-1", "libc6=2.36", "tzdata=1"}, s.packageList())

	// The layer is the same bytes every time, sorted by path.
	write := func() []byte {
		var b bytes.Buffer
		tw := tar.NewWriter(&b)
		require.NoError(t, s.write(tw, time.Unix(1734146883, 0)))
		require.NoError(t, tw.Close())
		return b.Bytes()
	}
	first := write()
	assert.Equal(t, first, write())
	tr := tar.NewReader(bytes.NewReader(first))
	var names []string
	for {
		h, err := tr.Next()
		if err != nil {
			break
		}
		names = append(names, h.Name)
		assert.Equal(t, int64(1734146883), h.ModTime.Unix(), h.Name)
	}
	assert.True(t, sort.StringsAreSorted(names), "%v", names)
}

func TestSelectionRefuses(t *testing.T) {
	s := fakeRoot(t, false)
	err := s.selectFiles([]string{"/usr/bin/true"})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "/usr/bin/true needs libc.so.6, which none of the packages has")

	s = fakeRoot(t, true)
	assert.ErrorContains(t, s.selectFiles([]string{"/usr/sbin/iptables*"}), "/usr/sbin/iptables* matches no file of the packages")

	s = fakeRoot(t, true)
	s.machine = elf.EM_RISCV
	assert.ErrorContains(t, s.selectFiles([]string{"/usr/bin/true"}), "is an ELF file for")

	s = fakeRoot(t, true)
	assert.ErrorContains(t, s.selectFiles([]string{"/usr/share/zoneinfo/localtime"}), "not in the extracted packages", "a link named on its own must lead somewhere")
}

func TestGeneratedFiles(t *testing.T) {
	s := fakeRoot(t, true)
	spec := Spec{
		Users:      []User{{Name: "istio-proxy", UID: 1337, Home: "/nonexistent"}, {Name: "nonroot", UID: 65532}},
		Distroless: &Distroless{Links: map[string]string{"/usr/bin/yes": "true"}, Dirs: map[string]uint32{"/tmp": 0o1777}},
	}
	require.NoError(t, s.addGenerated(spec))
	assert.Equal(t, "root:x:0:0:root:/root:/sbin/nologin\nistio-proxy:x:1337:1337:istio-proxy:/nonexistent:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\nnobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin\n", string(s.entries["/etc/passwd"].data))
	assert.Equal(t, "root:x:0:\nistio-proxy:x:1337:\nnonroot:x:65532:\nnogroup:x:65534:\n", string(s.entries["/etc/group"].data))
	assert.Equal(t, 65532, s.entries["/home/nonroot"].uid)
	assert.NotContains(t, s.entries, "/nonexistent")
	assert.Equal(t, int64(0o1777), s.entries["/tmp"].mode)
	assert.Equal(t, "true", s.entries["/usr/bin/yes"].link)
	assert.Contains(t, s.entries, "/usr/bin/true", "a link's target is brought in")
}
