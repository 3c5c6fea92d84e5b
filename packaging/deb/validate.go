package deb

import (
	"errors"
	"fmt"
	"io/fs"
	"net/mail"
	"os"
	"path"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"

	"pault.ag/go/debian/dependency"
	debversion "pault.ag/go/debian/version"
)

// FieldError is one problem with a Package, naming the field it is in
// ("version", "files[2].dest") so that a caller can point at the recipe
// line the field came from.
type FieldError struct {
	// Field is the field's name as in the Package's documentation, with an
	// index for list entries: "name", "depends[1]", "files[0].source".
	Field string
	// Value is the offending value as given.
	Value string
	// Msg says what is wrong and what to do about it.
	Msg string
}

func (e *FieldError) Error() string {
	return fmt.Sprintf("%s %q: %s", e.Field, e.Value, e.Msg)
}

// ValidationError is every problem Validate found, one FieldError each.
type ValidationError []*FieldError

func (v ValidationError) Error() string {
	lines := make([]string, len(v))
	for i, e := range v {
		lines[i] = e.Error()
	}
	return strings.Join(lines, "\n")
}

// Fields lists the fields of the problems, in order.
func (v ValidationError) Fields() []string {
	out := make([]string, len(v))
	for i, e := range v {
		out[i] = e.Field
	}
	return out
}

var (
	// Debian policy 5.6.1: lower case letters, digits, + - . ; at least two
	// characters; starting with an alphanumeric.
	packageNameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9+.-]+$`)
	archRE        = regexp.MustCompile(`^[a-z0-9][a-z0-9-]*$`)
	sectionRE     = regexp.MustCompile(`^([a-z0-9-]+/)?[a-z0-9][a-z0-9+.-]*$`)
	lintianTagRE  = regexp.MustCompile(`^[a-z0-9][a-z0-9-]*$`)
	fieldNameRE   = regexp.MustCompile(`^[A-Za-z0-9][!-9;-~]*$`) // deb822: printable, no colon, not starting with # or -
)

var priorities = []string{"required", "important", "standard", "optional", "extra"}

// reservedFields are written by Build itself (or by nfpm) and may not be set
// through Package.Extra.
var reservedFields = map[string]bool{
	"package": true, "version": true, "architecture": true, "maintainer": true,
	"description": true, "section": true, "priority": true, "homepage": true,
	"depends": true, "pre-depends": true, "recommends": true, "suggests": true,
	"conflicts": true, "breaks": true, "replaces": true, "provides": true,
	"installed-size": true, "essential": true,
}

// CheckVersion reports whether v is a Debian version that dpkg accepts and
// Debian policy (5.6.12) allows: [epoch:]upstream_version[-debian_revision],
// where the epoch is an unsigned integer, the upstream version starts with a
// digit and holds only alphanumerics and . + ~ (and - when a revision
// follows), and the revision holds only alphanumerics and . + ~. The error
// says which part is wrong and why.
func CheckVersion(v string) error {
	if v == "" {
		return errors.New("empty; a Debian version is [epoch:]upstream_version[-debian_revision], e.g. 1.24.2-1")
	}
	if strings.IndexFunc(v, func(r rune) bool { return r <= ' ' || r >= 0x7f }) >= 0 {
		return errors.New("contains a space, control or non-ASCII character; use only 0-9 A-Z a-z . + ~ - :")
	}
	rest := v
	if i := strings.IndexByte(v, ':'); i >= 0 {
		epoch := v[:i]
		if epoch == "" || strings.Trim(epoch, "0123456789") != "" {
			return fmt.Errorf("the epoch %q (before ':') must be an unsigned integer", epoch)
		}
		if _, err := strconv.ParseUint(epoch, 10, 31); err != nil {
			return fmt.Errorf("the epoch %q is too large", epoch)
		}
		rest = v[i+1:]
		if strings.Contains(rest, ":") {
			return errors.New("has more than one ':'; only the epoch is followed by a colon")
		}
	}
	upstream, revision := rest, ""
	if i := strings.LastIndexByte(rest, '-'); i >= 0 {
		upstream, revision = rest[:i], rest[i+1:]
		if revision == "" {
			return errors.New("ends with '-': the Debian revision after the last '-' is empty (drop the '-' or add a revision, e.g. -1)")
		}
	}
	if upstream == "" {
		return errors.New("the upstream version is empty")
	}
	if upstream[0] < '0' || upstream[0] > '9' {
		return fmt.Errorf("the upstream version %q must start with a digit", upstream)
	}
	if i := strings.IndexFunc(upstream, func(r rune) bool { return !isAlnum(r) && !strings.ContainsRune(".+~-", r) }); i >= 0 {
		return fmt.Errorf("%q is not allowed in the upstream version %q (allowed: 0-9 A-Z a-z . + ~, and - when a revision follows)", upstream[i], upstream)
	}
	if i := strings.IndexFunc(revision, func(r rune) bool { return !isAlnum(r) && !strings.ContainsRune(".+~", r) }); i >= 0 {
		return fmt.Errorf("%q is not allowed in the Debian revision %q (allowed: 0-9 A-Z a-z . + ~)", revision[i], revision)
	}
	// And what dpkg itself says, in case policy and dpkg ever part.
	if _, err := debversion.Parse(v); err != nil {
		return fmt.Errorf("dpkg would refuse it: %w", err)
	}
	return nil
}

func isAlnum(r rune) bool {
	return (r >= '0' && r <= '9') || (r >= 'a' && r <= 'z') || (r >= 'A' && r <= 'Z')
}

// CompareVersions compares two valid Debian versions the way dpkg does:
// negative when a < b, 0 when equal, positive when a > b.
func CompareVersions(a, b string) (int, error) {
	va, err := debversion.Parse(a)
	if err != nil {
		return 0, fmt.Errorf("version %q: %w", a, err)
	}
	vb, err := debversion.Parse(b)
	if err != nil {
		return 0, fmt.Errorf("version %q: %w", b, err)
	}
	return debversion.Compare(va, vb), nil
}

// checkRelation checks one relation ("a (>= 1) | b") with pault.ag's
// parser, then what it lets through: names, operators and versions.
func checkRelation(r string) error {
	dep, err := dependency.Parse(r)
	if err != nil {
		return err
	}
	if len(dep.Relations) != 1 {
		return errors.New("one relation per entry")
	}
	for _, p := range dep.Relations[0].Possibilities {
		if p.Substvar || CheckPackageName(p.Name) != nil {
			return fmt.Errorf("%q is not a package name", p.Name)
		}
		if p.Version == nil {
			continue
		}
		switch p.Version.Operator {
		case "<<", "<=", "=", ">=", ">>":
		default:
			return fmt.Errorf("%q is not a relation operator (<<, <=, =, >=, >>)", p.Version.Operator)
		}
		if err := CheckVersion(p.Version.Number); err != nil {
			return fmt.Errorf("version %q: %v", p.Version.Number, err)
		}
	}
	if strings.HasSuffix(strings.TrimSpace(r), "|") {
		return errors.New("ends with '|'")
	}
	return nil
}

// CheckPackageName reports whether name is a valid Debian package name.
func CheckPackageName(name string) error {
	if !packageNameRE.MatchString(name) {
		return errors.New("a package name has at least two characters from a-z 0-9 + - . and starts with a letter or digit (Debian policy 5.6.1)")
	}
	return nil
}

// CheckDest reports whether dest can be a file's path inside a package:
// absolute, clean, below the root.
func CheckDest(dest string) error {
	switch {
	case dest == "":
		return errors.New("empty; give the file's absolute path in the package, e.g. /usr/bin/tool")
	case !strings.HasPrefix(dest, "/"):
		return errors.New("not absolute; paths in a package start with / (e.g. /usr/bin/tool)")
	case strings.IndexFunc(dest, func(r rune) bool { return r < ' ' || r == 0x7f || r == '\\' }) >= 0:
		return errors.New("contains a control character or a backslash")
	case hasDotDot(dest):
		return errors.New("contains '..': a path must stay inside the package root")
	case dest == "/":
		return errors.New("is the package root; name a file below it")
	case strings.HasSuffix(dest, "/"):
		return errors.New("ends with '/'; name the file, not a directory")
	case path.Clean(dest) != dest:
		return fmt.Errorf("not clean; write it as %q", path.Clean(dest))
	}
	return nil
}

func hasDotDot(p string) bool {
	for _, seg := range strings.Split(p, "/") {
		if seg == ".." {
			return true
		}
	}
	return false
}

// Validate checks everything Build needs before any work starts: the
// control fields, every file's destination (absolute, inside the package,
// no duplicates, not the generated copyright or changelog), source (an
// existing regular file, or Data) and mode. It returns a ValidationError
// listing every problem, or nil.
func (p *Package) Validate() error {
	var errs ValidationError
	add := func(field, value, format string, args ...any) {
		errs = append(errs, &FieldError{Field: field, Value: value, Msg: fmt.Sprintf(format, args...)})
	}
	if err := CheckPackageName(p.Name); err != nil {
		add("name", p.Name, "%v", err)
	}
	if err := CheckVersion(p.Version); err != nil {
		add("version", p.Version, "%v", err)
	}
	if !archRE.MatchString(p.Architecture) {
		add("architecture", p.Architecture, "give a Debian architecture such as amd64, arm64 or all")
	}
	if addr, err := mail.ParseAddress(p.Maintainer); err != nil || addr.Name == "" || strings.ContainsAny(p.Maintainer, "\n\r") {
		add("maintainer", p.Maintainer, `give "Full Name <email@address>" (Debian policy 5.6.2)`)
	}
	switch {
	case strings.TrimSpace(p.Synopsis) == "":
		add("synopsis", p.Synopsis, "empty; give a one-line summary of what the package is")
	case strings.ContainsAny(p.Synopsis, "\n\r"):
		add("synopsis", p.Synopsis, "must be one line; put the rest in description")
	case len(p.Synopsis) > 80:
		add("synopsis", p.Synopsis, "longer than 80 characters; shorten it and put details in description")
	}
	if strings.TrimSpace(p.Description) == "" {
		add("description", p.Description, "empty; say in a sentence or two what the package holds and how to use it")
	}
	if !sectionRE.MatchString(p.Section) {
		add("section", p.Section, "give a Debian section such as admin, net, utils or misc")
	}
	if p.Priority != "" && !slices.Contains(priorities, p.Priority) {
		add("priority", p.Priority, "must be one of %s (empty: optional)", strings.Join(priorities, ", "))
	}
	if strings.ContainsAny(p.Homepage, " \n\r") || (p.Homepage != "" && !strings.HasPrefix(p.Homepage, "https://") && !strings.HasPrefix(p.Homepage, "http://")) {
		add("homepage", p.Homepage, "give an http(s) URL")
	}
	for _, rel := range []struct {
		name string
		list []string
	}{{"depends", p.Depends}, {"recommends", p.Recommends}, {"suggests", p.Suggests}, {"conflicts", p.Conflicts}, {"breaks", p.Breaks}, {"replaces", p.Replaces}, {"provides", p.Provides}} {
		for i, r := range rel.list {
			field := fmt.Sprintf("%s[%d]", rel.name, i)
			if strings.TrimSpace(r) == "" || strings.ContainsAny(r, ",\n\r") {
				add(field, r, "one relation per entry, e.g. \"iptables\" or \"libc6 (>= 2.36)\" (no commas)")
				continue
			}
			if err := checkRelation(r); err != nil {
				add(field, r, "not a Debian package relation (e.g. \"iptables\", \"libc6 (>= 2.36)\", \"a | b\"): %v", err)
			}
		}
	}
	keys := make([]string, 0, len(p.Extra))
	for k := range p.Extra {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		v := p.Extra[k]
		field := "extra." + k
		switch {
		case !fieldNameRE.MatchString(k):
			add(field, k, "not a control field name (printable ASCII, no colon or space)")
		case reservedFields[strings.ToLower(k)]:
			add(field, k, "set by its own field of the package, not through extra")
		case strings.TrimSpace(v) == "" || strings.ContainsAny(v, "\n\r"):
			add(field, v, "must be a non-empty single line")
		}
	}
	if strings.TrimSpace(string(p.Copyright)) == "" {
		add("copyright", "", "empty; every package carries /usr/share/doc/<package>/copyright (Debian policy 12.5)")
	}
	for i, c := range p.Changes {
		if strings.TrimSpace(c) == "" {
			add(fmt.Sprintf("changes[%d]", i), c, "empty changelog entry")
		}
	}
	if p.Distribution != "" && !regexp.MustCompile(`^[a-z0-9][a-z0-9.+-]*$`).MatchString(p.Distribution) {
		add("distribution", p.Distribution, "give a suite name such as unstable")
	}
	for i, o := range p.LintianOverrides {
		field := fmt.Sprintf("lintianOverrides[%d]", i)
		if !lintianTagRE.MatchString(o.Tag) {
			add(field+".tag", o.Tag, "not a lintian tag (lower case letters, digits and -)")
		}
		if strings.ContainsAny(o.Context, "[]\n\r") {
			add(field+".context", o.Context, "one line without brackets, e.g. opt/cni/*")
		}
		if strings.TrimSpace(o.Reason) == "" || strings.ContainsAny(o.Reason, "\n\r") {
			add(field+".reason", o.Reason, "say in one line why the package accepts this hint")
		}
	}
	if p.MTime.IsZero() {
		add("mtime", "", "not set; give the source's commit time (SOURCE_DATE_EPOCH) so the same input gives the same bytes")
	} else if p.MTime.Unix() < 0 {
		add("mtime", p.MTime.String(), "before 1970; give the source's commit time")
	}
	if len(p.Files) == 0 {
		add("files", "", "no files; a package needs something to install")
	}

	docDir := "/usr/share/doc/" + p.Name
	generated := map[string]bool{docDir + "/copyright": true, docDir + "/changelog.gz": true, docDir + "/changelog.Debian.gz": true, p.LintianOverridesPath(): true}
	seen := map[string]int{}
	for i, f := range p.Files {
		field := fmt.Sprintf("files[%d]", i)
		if err := CheckDest(f.Dest); err != nil {
			add(field+".dest", f.Dest, "%v", err)
		} else if generated[f.Dest] {
			add(field+".dest", f.Dest, "written by the package builder itself (from copyright, changes and lintianOverrides); leave it out")
		} else if j, dup := seen[f.Dest]; dup {
			add(field+".dest", f.Dest, "the same path as files[%d]; each path in a package holds one file", j)
		} else {
			seen[f.Dest] = i
		}
		switch {
		case f.Mode == 0:
			add(field+".mode", "0", "not set; give the permission bits, e.g. 0755 for a program, 0644 for data")
		case f.Mode&^fs.ModePerm != 0:
			add(field+".mode", fmt.Sprintf("%#o", uint32(f.Mode)), "only permission bits (0000-0777) are allowed: no setuid, setgid, sticky or file type bits")
		}
		switch {
		case f.Source != "" && f.Data != nil:
			add(field+".source", f.Source, "give source or data, not both")
		case f.Source == "" && f.Data == nil:
			add(field+".source", "", "give the file on disk to package (or data)")
		case f.Source != "":
			st, err := os.Stat(f.Source)
			switch {
			case errors.Is(err, fs.ErrNotExist):
				add(field+".source", f.Source, "no such file; was the build output produced?")
			case err != nil:
				add(field+".source", f.Source, "cannot read it: %v", err)
			case !st.Mode().IsRegular():
				add(field+".source", f.Source, "not a regular file (a %s); package files one by one", st.Mode().Type())
			}
		}
	}
	// A file's path may not be another file's directory.
	for dest, i := range seen {
		for dir := path.Dir(dest); dir != "/"; dir = path.Dir(dir) {
			if j, ok := seen[dir]; ok {
				add(fmt.Sprintf("files[%d].dest", i), dest, "lies below files[%d] (%s), which is a file, not a directory", j, dir)
			}
		}
	}
	if len(errs) == 0 {
		return nil
	}
	sort.SliceStable(errs, func(a, b int) bool { return fieldOrder(errs[a].Field) < fieldOrder(errs[b].Field) })
	return errs
}

// fieldOrder keeps problems in the order of the Package's fields, then the
// files by index.
func fieldOrder(field string) string {
	order := []string{"name", "version", "architecture", "maintainer", "synopsis", "description", "section", "priority", "homepage",
		"depends", "recommends", "suggests", "conflicts", "breaks", "replaces", "provides", "extra", "copyright", "changes", "distribution", "lintianOverrides", "mtime", "files"}
	head := field
	if i := strings.IndexAny(field, "[."); i >= 0 {
		head = field[:i]
	}
	for i, o := range order {
		if o == head {
			idx := 0
			if j := strings.IndexByte(field, '['); j >= 0 {
				if k := strings.IndexByte(field[j:], ']'); k > 0 {
					idx, _ = strconv.Atoi(field[j+1 : j+k])
				}
			}
			return fmt.Sprintf("%03d.%08d", i, idx)
		}
	}
	return "999"
}
