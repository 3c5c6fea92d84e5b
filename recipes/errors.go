package recipes

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
)

// ValidationError is one problem found in a recipe document.
type ValidationError struct {
	// File is the name the document was parsed under.
	File string
	// Line is 1-based; 0 when no line applies.
	Line int
	// Field is the dotted path of the field (spec.images[0].tag); empty when
	// the problem is with the document as a whole.
	Field string
	Msg   string
}

func (e ValidationError) Error() string {
	var b strings.Builder
	if e.File != "" {
		b.WriteString(e.File)
		if e.Line > 0 {
			b.WriteString(":" + strconv.Itoa(e.Line))
		}
		b.WriteString(": ")
	} else if e.Line > 0 {
		b.WriteString("line " + strconv.Itoa(e.Line) + ": ")
	}
	if e.Field != "" {
		b.WriteString(e.Field + ": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// ValidationErrors are all the problems found in a document, in line order.
type ValidationErrors []ValidationError

func (es ValidationErrors) Error() string {
	lines := make([]string, len(es))
	for i, e := range es {
		lines[i] = e.Error()
	}
	return strings.Join(lines, "\n")
}

// maxErrors is how many errors one document reports at most.
const maxErrors = 100

// collector gathers validation errors for one document.
type collector struct {
	file  string
	lines lineIndex
	errs  ValidationErrors
}

// errorf records a problem with the field at path, unless an earlier problem
// already concerns that field or one that contains it (a field that did not
// decode would otherwise also be reported as missing).
func (c *collector) errorf(path, format string, args ...any) {
	if len(c.errs) >= maxErrors {
		if len(c.errs) == maxErrors {
			c.errs = append(c.errs, ValidationError{File: c.file, Line: c.lines.lineOf(path), Msg: "too many errors; stopping here"})
		}
		return
	}
	for _, e := range c.errs {
		if e.Field == path || isAncestor(e.Field, path) {
			return
		}
	}
	c.errs = append(c.errs, ValidationError{
		File:  c.file,
		Line:  c.lines.lineOf(path),
		Field: path,
		Msg:   fmt.Sprintf(format, args...),
	})
}

// warnf makes a warning, which has the form of an error.
func (c *collector) warnf(path, format string, args ...any) ValidationError {
	return ValidationError{File: c.file, Line: c.lines.lineOf(path), Field: path, Msg: fmt.Sprintf(format, args...)}
}

func (c *collector) err() error {
	if len(c.errs) == 0 {
		return nil
	}
	sort.SliceStable(c.errs, func(i, j int) bool { return c.errs[i].Line < c.errs[j].Line })
	return c.errs
}

// isAncestor reports whether the field path a contains the field path b.
func isAncestor(a, b string) bool {
	if a == "" || len(b) <= len(a) || !strings.HasPrefix(b, a) {
		return false
	}
	return b[len(a)] == '.' || b[len(a)] == '['
}

// lineIndex maps field paths to the line their value starts on.
type lineIndex map[string]int

// lineOf is the line of path, or of the nearest enclosing field that has
// one (a missing field is reported at its parent).
func (l lineIndex) lineOf(path string) int {
	for {
		if n, ok := l[path]; ok {
			return n
		}
		i := strings.LastIndexAny(path, ".[")
		if i < 0 {
			return l[""]
		}
		path = path[:i]
	}
}
