// Package debtest runs Debian's own tools on packages in tests. It imports
// testing: never import it from code linked into sailmaker.
package debtest

import (
	"bufio"
	"os/exec"
	"sort"
	"strings"
	"testing"
)

// Tags are lintian's findings by severity, each a sorted list of distinct
// tag names.
type Tags struct {
	Errors, Warnings, Info, Pedantic, Overridden []string
	// Output is lintian's whole output, for failure messages.
	Output string
}

// Lintian runs lintian (pedantic, with info and overridden tags shown) on
// the packages and returns its tags. A missing lintian, or lintian failing
// to run, fails the test: install it with `make deps`.
func Lintian(t testing.TB, debs ...string) Tags {
	t.Helper()
	if _, err := exec.LookPath("lintian"); err != nil {
		t.Fatalf("lintian is not installed (make deps installs it): %v", err)
	}
	// --fail-on none: the exit status says whether lintian ran, the tags
	// are read from its output.
	args := append([]string{"--no-cfg", "--fail-on", "none", "--pedantic", "--display-info", "--show-overrides"}, debs...)
	out, err := exec.Command("lintian", args...).CombinedOutput()
	if err != nil {
		t.Fatalf("lintian %s: %v\n%s", strings.Join(debs, " "), err, out)
	}
	sets := map[string]map[string]bool{}
	sc := bufio.NewScanner(strings.NewReader(string(out)))
	for sc.Scan() {
		sev, rest, ok := strings.Cut(sc.Text(), ": ")
		if !ok || len(sev) != 1 {
			continue
		}
		// "<package>[ <type>]: <tag> [<context>]"
		_, hint, ok := strings.Cut(rest, ": ")
		if !ok {
			continue
		}
		tag := strings.Fields(hint)[0]
		if sets[sev] == nil {
			sets[sev] = map[string]bool{}
		}
		sets[sev][tag] = true
	}
	list := func(sev string) []string {
		var l []string
		for tag := range sets[sev] {
			l = append(l, tag)
		}
		sort.Strings(l)
		return l
	}
	return Tags{Errors: list("E"), Warnings: list("W"), Info: list("I"), Pedantic: list("P"), Overridden: list("O"), Output: string(out)}
}
