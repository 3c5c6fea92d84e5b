// Package apttest runs the real apt-get against a throwaway root: its own
// sources, lists, cache and dpkg database (dpkg --root), nothing of the
// host's apt or dpkg state touched. It imports testing: never import it
// from code linked into sailmaker.
package apttest

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// Root is a directory apt-get and dpkg treat as the system root.
type Root struct {
	// Dir is the root; installed files land under it.
	Dir  string
	conf string
}

// NewRoot makes an empty root for apt-get and dpkg (architecture amd64).
// apt-get and dpkg must be installed (they are on Debian); a missing one
// fails the test. Running as root is needed for dpkg's chown of installed
// files.
func NewRoot(t testing.TB) *Root {
	t.Helper()
	for _, tool := range []string{"apt-get", "dpkg"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s is needed (Debian's apt and dpkg): %v", tool, err)
		}
	}
	dir := t.TempDir()
	for _, d := range []string{
		"etc/apt/sources.list.d", "etc/apt/preferences.d", "etc/apt/apt.conf.d", "etc/apt/trusted.gpg.d", "etc/apt/keyrings",
		"var/lib/apt/lists/partial", "var/cache/apt/archives/partial", "var/lib/dpkg/info", "var/lib/dpkg/updates",
		"var/lib/dpkg/triggers", "var/log/apt",
	} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "var/lib/dpkg/status"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	conf := filepath.Join(dir, "apt.conf")
	text := fmt.Sprintf(`Dir "%[1]s/";
Dir::State::status "%[1]s/var/lib/dpkg/status";
Dir::Etc::Parts "%[1]s/etc/apt/apt.conf.d";
Dir::Etc::TrustedParts "%[1]s/etc/apt/trusted.gpg.d";
APT::Architecture "amd64";
APT::Architectures { "amd64"; };
APT::Sandbox::User "root";
Acquire::Languages "none";
Acquire::Retries "0";
DPkg::Options { "--root=%[1]s"; "--log=%[1]s/var/log/dpkg.log"; };
`, dir)
	if err := os.WriteFile(conf, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return &Root{Dir: dir, conf: conf}
}

// SetSources replaces the root's sources.list with one deb line per entry,
// e.g. "[signed-by=/path/key.asc] http://127.0.0.1:8080/ stable main".
func (r *Root) SetSources(t testing.TB, lines ...string) {
	t.Helper()
	var b strings.Builder
	for _, l := range lines {
		b.WriteString("deb " + l + "\n")
	}
	if err := os.WriteFile(filepath.Join(r.Dir, "etc/apt/sources.list"), []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
}

// AptGet runs apt-get with the root's configuration and returns its
// combined output and error.
func (r *Root) AptGet(args ...string) (string, error) {
	cmd := exec.Command("apt-get", args...)
	cmd.Env = append(os.Environ(), "APT_CONFIG="+r.conf, "DEBIAN_FRONTEND=noninteractive", "LC_ALL=C")
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// ForgetLists removes the downloaded indices, so that the next update
// fetches everything again.
func (r *Root) ForgetLists(t testing.TB) {
	t.Helper()
	lists := filepath.Join(r.Dir, "var/lib/apt/lists")
	if err := os.RemoveAll(lists); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(lists, "partial"), 0o755); err != nil {
		t.Fatal(err)
	}
}

// Path is p (absolute, as on the system) inside the root.
func (r *Root) Path(p string) string { return filepath.Join(r.Dir, p) }

// PretendInstalled records packages as installed in the root's dpkg
// database without installing anything, for dependencies the machine would
// have from Debian (iptables, say) but the test repository does not carry.
func (r *Root) PretendInstalled(t testing.TB, name, version string) {
	t.Helper()
	f, err := os.OpenFile(r.Path("/var/lib/dpkg/status"), os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	stanza := fmt.Sprintf("Package: %s\nStatus: install ok installed\nPriority: optional\nSection: misc\nMaintainer: test <test@example.org>\nArchitecture: amd64\nVersion: %s\nDescription: stand-in for a package of the host\n\n", name, version)
	if _, err := f.WriteString(stanza); err != nil {
		t.Fatal(err)
	}
}
