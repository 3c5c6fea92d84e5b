package recipes

import (
	"fmt"
	"reflect"
	"regexp"
	"sort"
	"strings"
)

// The variables a Recipe's string fields may use.
const (
	VarRegistry     = "REGISTRY"
	VarVersion      = "VERSION"
	VarTag          = "TAG"
	VarCommit       = "COMMIT"
	VarProxyRepoSHA = "PROXY_REPO_SHA"
	// VarTargetArch is each platform's architecture (amd64, arm64). The
	// builder expands it per platform; at load time it is only checked to
	// be used where it may be (see perPlatformField).
	VarTargetArch = "TARGET_ARCH"
)

// perPlatformRE matches the fields where ${TARGET_ARCH} may appear: make
// targets, the sources of image and package files and the Envoy URLs (a
// package's files come from the build of its architecture).
var perPlatformRE = regexp.MustCompile(`^(spec\.make\.targets\[\d+\]|spec\.(images|packages)\[\d+\]\.files\[\d+\]\.from|spec\.inputs\.envoy\.url|spec\.inputs\.envoy\.arch(\.[A-Za-z0-9_-]+|\[".*"\])\.url)$`)

// perPlatformFields names them for messages.
const perPlatformFields = "spec.make.targets, spec.images[].files[].from, spec.packages[].files[].from and the Envoy URLs (spec.inputs.envoy.url, spec.inputs.envoy.arch.<arch>.url)"

// expander replaces ${NAME} in every string field of a value.
type expander struct {
	*collector
	vars map[string]string
	// unset explains variables that exist but have no value in this
	// document.
	unset map[string]string
	// literal are the fields that define variables; they are not expanded.
	literal map[string]bool
	// perPlatform, when set, keeps ${TARGET_ARCH} in the fields it
	// matches for the builder to expand per platform (Recipe only).
	perPlatform bool
}

// walk expands the strings in v, whose field path is path.
func (x *expander) walk(path string, v reflect.Value) {
	switch v.Kind() {
	case reflect.Pointer:
		if !v.IsNil() {
			x.walk(path, v.Elem())
		}
	case reflect.Struct:
		t := v.Type()
		for _, name := range fieldsOf(t).names {
			x.walk(join(path, name), v.Field(fieldsOf(t).index[name]))
		}
	case reflect.Slice:
		for i := 0; i < v.Len(); i++ {
			x.walk(fmt.Sprintf("%s[%d]", path, i), v.Index(i))
		}
	case reflect.Map:
		keys := v.MapKeys()
		sort.Slice(keys, func(i, j int) bool { return keys[i].String() < keys[j].String() })
		for _, k := range keys {
			e := reflect.New(v.Type().Elem()).Elem()
			e.Set(v.MapIndex(k))
			x.walk(joinKey(path, k.String()), e)
			v.SetMapIndex(k, e)
		}
	case reflect.String:
		s := v.String()
		if !strings.Contains(s, "${") {
			return
		}
		if x.literal[path] {
			x.errorf(path, "variables are not expanded in this field")
			return
		}
		out, err := x.expand(path, s)
		if err != nil {
			x.errorf(path, "%v", err)
			return
		}
		v.SetString(out)
	}
}

// expand replaces every ${NAME} in s, the value of the field at path. A "$"
// not followed by "{" is kept.
func (x *expander) expand(path, s string) (string, error) {
	var b strings.Builder
	for {
		i := strings.Index(s, "${")
		if i < 0 {
			b.WriteString(s)
			return b.String(), nil
		}
		b.WriteString(s[:i])
		end := strings.IndexByte(s[i:], '}')
		if end < 0 {
			return "", fmt.Errorf("unterminated variable reference %q", s[i:])
		}
		name := s[i+2 : i+end]
		if name == VarTargetArch && x.perPlatform {
			if !perPlatformRE.MatchString(path) {
				return "", fmt.Errorf("${%s} is each platform's architecture, set by the builder: it may be used only in %s", VarTargetArch, perPlatformFields)
			}
			b.WriteString("${" + VarTargetArch + "}")
			s = s[i+end+1:]
			continue
		}
		val, ok := x.vars[name]
		if !ok {
			if why, known := x.unset[name]; known {
				return "", fmt.Errorf("${%s} has no value: %s", name, why)
			}
			return "", fmt.Errorf("unknown variable ${%s} (known: %s)", name, x.known())
		}
		b.WriteString(val)
		s = s[i+end+1:]
	}
}

func (x *expander) known() string {
	var names []string
	for n := range x.vars {
		names = append(names, "${"+n+"}")
	}
	for n := range x.unset {
		names = append(names, "${"+n+"}")
	}
	if x.perPlatform {
		names = append(names, "${"+VarTargetArch+"}")
	}
	sort.Strings(names)
	return strings.Join(names, ", ")
}
