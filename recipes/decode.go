package recipes

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"reflect"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"

	goyaml "github.com/goccy/go-yaml"
	goyamlparser "github.com/goccy/go-yaml/parser"
	"gopkg.in/yaml.v3"
)

// maxDocumentSize bounds the size of a document.
const maxDocumentSize = 1 << 20

// maxNodes bounds the work one document may cause, aliases included.
const maxNodes = 100000

// readDocument parses data as exactly one YAML (or JSON) document and returns
// its top-level node.
func readDocument(c *collector, data []byte) *yaml.Node {
	if len(data) > maxDocumentSize {
		c.errs = append(c.errs, ValidationError{File: c.file, Msg: fmt.Sprintf("larger than %d bytes; a recipe is much smaller", maxDocumentSize)})
		return nil
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			c.errs = append(c.errs, ValidationError{File: c.file, Msg: "empty document"})
			return nil
		}
		c.errs = append(c.errs, yamlError(c.file, data, err))
		return nil
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); err == nil {
		c.errs = append(c.errs, ValidationError{File: c.file, Line: extra.Line, Msg: "only one document is allowed per file"})
		return nil
	} else if !errors.Is(err, io.EOF) {
		c.errs = append(c.errs, yamlError(c.file, data, err))
		return nil
	}
	if doc.Kind != yaml.DocumentNode || len(doc.Content) != 1 {
		c.errs = append(c.errs, ValidationError{File: c.file, Msg: "empty document"})
		return nil
	}
	root := doc.Content[0]
	if root.Kind != yaml.MappingNode {
		c.errs = append(c.errs, ValidationError{File: c.file, Line: root.Line, Msg: "the document must be a mapping"})
		return nil
	}
	c.lines[""] = root.Line
	return root
}

var yamlLineRE = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

// yamlError turns a syntax error from the YAML parser into a ValidationError
// at the line of the fault. yaml.v3 reports the line where the enclosing
// block starts (line 1 for a fault anywhere in the top-level mapping), so
// the line comes from goccy/go-yaml's parser, which reports the token at
// fault; yaml.v3's line serves when that parser finds nothing wrong.
func yamlError(file string, data []byte, err error) ValidationError {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	line := 0
	if m := yamlLineRE.FindStringSubmatch(err.Error()); m != nil {
		line, _ = strconv.Atoi(m[1])
		msg = m[2]
	}
	if l := faultLine(data); l > 0 {
		line = l
	}
	return ValidationError{File: file, Line: line, Msg: "invalid YAML: " + msg}
}

// faultLine is the line of the first syntax error goccy/go-yaml's parser
// finds in data, or 0.
func faultLine(data []byte) (line int) {
	defer func() {
		if recover() != nil {
			line = 0 // a parser bug must not take the error message down with it
		}
	}()
	_, err := goyamlparser.ParseBytes(data, 0)
	var se *goyaml.SyntaxError
	if errors.As(err, &se) && se.Token != nil && se.Token.Position != nil {
		return se.Token.Position.Line
	}
	return 0
}

// checkKind reads apiVersion and kind from the top-level mapping before the
// rest is decoded, so that a document of another kind gives one clear error
// instead of one per unknown field.
func checkKind(c *collector, root *yaml.Node, want string) bool {
	var apiVersion, kind *yaml.Node
	for i := 0; i+1 < len(root.Content); i += 2 {
		switch root.Content[i].Value {
		case "apiVersion":
			apiVersion = root.Content[i+1]
		case "kind":
			kind = root.Content[i+1]
		}
	}
	okVersion := checkScalar(c, "apiVersion", apiVersion, APIVersion)
	okKind := checkScalar(c, "kind", kind, want)
	return okVersion && okKind
}

// checkScalar reports whether the field n is the scalar want.
func checkScalar(c *collector, field string, n *yaml.Node, want string) bool {
	switch {
	case n == nil:
		c.errorf(field, "required; must be %s", want)
		return false
	case n.Kind != yaml.ScalarNode || n.Value != want:
		c.lines[field] = n.Line
		c.errorf(field, "must be %s, not %q", want, n.Value)
		return false
	}
	return true
}

// decoder decodes a node tree into Go values by their yaml tags, recording
// the line of every field and reporting every problem with its path.
type decoder struct {
	*collector
	budget int
}

func (d *decoder) decode(n *yaml.Node, path string, v reflect.Value) {
	if d.budget--; d.budget < 0 {
		if d.budget == -1 {
			d.errorf("", "the document is too large or nests aliases too deeply")
		}
		return
	}
	for n.Kind == yaml.AliasNode {
		if n.Alias == nil {
			return
		}
		n = n.Alias
	}
	if path != "" {
		if _, seen := d.lines[path]; !seen {
			d.lines[path] = n.Line
		}
	}
	if isNull(n) {
		v.Set(reflect.Zero(v.Type()))
		return
	}

	switch v.Kind() {
	case reflect.Pointer:
		if v.IsNil() {
			v.Set(reflect.New(v.Type().Elem()))
		}
		d.decode(n, path, v.Elem())

	case reflect.Struct:
		if !d.expect(n, yaml.MappingNode, path) {
			return
		}
		fields := fieldsOf(v.Type())
		seen := map[string]bool{}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, val := n.Content[i], n.Content[i+1]
			key, ok := d.key(k, path)
			if !ok {
				continue
			}
			p := join(path, key)
			if seen[key] {
				d.lines[p] = k.Line
				d.errorf(p, "duplicate field")
				continue
			}
			seen[key] = true
			d.lines[p] = k.Line
			idx, ok := fields.index[key]
			if !ok {
				d.errorf(p, "unknown field (known fields: %s)", strings.Join(fields.names, ", "))
				continue
			}
			d.decode(val, p, v.Field(idx))
		}

	case reflect.Slice:
		if !d.expect(n, yaml.SequenceNode, path) {
			return
		}
		s := reflect.MakeSlice(v.Type(), len(n.Content), len(n.Content))
		for i, item := range n.Content {
			d.decode(item, fmt.Sprintf("%s[%d]", path, i), s.Index(i))
		}
		v.Set(s)

	case reflect.Map:
		if !d.expect(n, yaml.MappingNode, path) {
			return
		}
		m := reflect.MakeMapWithSize(v.Type(), len(n.Content)/2)
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, val := n.Content[i], n.Content[i+1]
			key, ok := d.key(k, path)
			if !ok {
				continue
			}
			p := joinKey(path, key)
			if m.MapIndex(reflect.ValueOf(key)).IsValid() {
				d.lines[p] = k.Line
				d.errorf(p, "duplicate key")
				continue
			}
			d.lines[p] = k.Line
			e := reflect.New(v.Type().Elem()).Elem()
			d.decode(val, p, e)
			m.SetMapIndex(reflect.ValueOf(key), e)
		}
		v.Set(m)

	case reflect.String:
		if !d.expect(n, yaml.ScalarNode, path) {
			return
		}
		if strings.HasSuffix(path, ".mode") && n.Tag == "!!int" && !strings.HasPrefix(n.Value, "0") {
			// JSON has no octal: 420 may mean 0644 (decimal) or 0420.
			d.errorf(path, "%s is a number; write the mode as an octal string such as \"0644\"", n.Value)
			return
		}
		v.SetString(n.Value)

	case reflect.Bool:
		if !d.expect(n, yaml.ScalarNode, path) {
			return
		}
		var b bool
		if err := n.Decode(&b); err != nil {
			d.errorf(path, "must be true or false, not %q", n.Value)
			return
		}
		v.SetBool(b)

	case reflect.Int, reflect.Int64:
		if !d.expect(n, yaml.ScalarNode, path) {
			return
		}
		i, err := strconv.ParseInt(n.Value, 10, 64)
		if err != nil || (v.Kind() == reflect.Int && int64(int(i)) != i) {
			d.errorf(path, "must be an integer, not %q", n.Value)
			return
		}
		v.SetInt(i)

	default:
		// Every field type in this package is handled above.
		panic(fmt.Sprintf("recipes: cannot decode into %s", v.Type()))
	}
}

// key returns a mapping key, which must be a plain string.
func (d *decoder) key(k *yaml.Node, path string) (string, bool) {
	for k.Kind == yaml.AliasNode && k.Alias != nil {
		k = k.Alias
	}
	if k.Kind != yaml.ScalarNode {
		d.lines[path+"[?]"] = k.Line
		d.errorf(path+"[?]", "mapping keys must be strings")
		return "", false
	}
	if k.Tag == "!!merge" {
		p := join(path, k.Value)
		d.lines[p] = k.Line
		d.errorf(p, "merge keys (<<) are not supported")
		return "", false
	}
	return k.Value, true
}

func (d *decoder) expect(n *yaml.Node, kind yaml.Kind, path string) bool {
	if n.Kind == kind {
		return true
	}
	d.errorf(path, "must be %s, not %s", kindName(kind), kindName(n.Kind))
	return false
}

func kindName(k yaml.Kind) string {
	switch k {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		return "a single value"
	case yaml.DocumentNode:
		return "a document"
	}
	return "an alias"
}

func isNull(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.Tag == "!!null"
}

// join appends a field name to a path.
func join(path, field string) string {
	if path == "" {
		return field
	}
	return path + "." + field
}

var plainKeyRE = regexp.MustCompile(`^[A-Za-z0-9_-]+$`)

// joinKey appends a map key to a path, quoting keys that are not plain words.
func joinKey(path, key string) string {
	if plainKeyRE.MatchString(key) {
		return join(path, key)
	}
	return path + "[" + strconv.Quote(key) + "]"
}

type structFields struct {
	index map[string]int
	names []string
}

var fieldCache sync.Map // reflect.Type -> *structFields

// fieldsOf lists a struct type's fields by their yaml names.
func fieldsOf(t reflect.Type) *structFields {
	if f, ok := fieldCache.Load(t); ok {
		return f.(*structFields)
	}
	f := &structFields{index: map[string]int{}}
	for i := 0; i < t.NumField(); i++ {
		sf := t.Field(i)
		if !sf.IsExported() {
			continue
		}
		name, _, _ := strings.Cut(sf.Tag.Get("yaml"), ",")
		if name == "" || name == "-" {
			continue
		}
		f.index[name] = i
		f.names = append(f.names, name)
	}
	sort.Strings(f.names)
	fieldCache.Store(t, f)
	return f
}
