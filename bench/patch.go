package bench

import (
	"bytes"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"sort"
	"strings"
)

// Patch is a one-line change to a Go file of the upstream source, as a
// unified diff that `git apply` reads (recipes take patches in that form).
type Patch struct {
	// File is the changed file, slash-separated, relative to the source root.
	File string `json:"file"`
	// Line is the 1-based line changed; Old and New are its text.
	Line int    `json:"line"`
	Old  string `json:"old"`
	New  string `json:"new"`
	// ChangesBinary says the change reaches the compiled program (a string
	// the program holds); when the file has no such string, the patch
	// changes a comment: the package is compiled again, the binary may be
	// the same.
	ChangesBinary bool   `json:"changesBinary"`
	Diff          []byte `json:"-"`
	// Content is the whole file after the patch.
	Content []byte `json:"-"`
}

// patchContext is the number of unchanged lines around the change, as in
// `diff -u`.
const patchContext = 3

// Marker is the text run n of benchmark run id puts into the file: unique
// to the benchmark run, so that no registry or BuildKit holds its layers
// from an earlier run.
func Marker(id string, n int) string { return fmt.Sprintf("sailmaker-bench-%s-%d", id, n) }

// MakePatch changes one line of src, the Go file at file in the source, for
// run n (n >= 1). It puts marker at the start of a string literal, so
// the compiled program changes; it takes the lines holding such literals in
// turn, line (n-1) modulo their number, so successive runs change different
// lines. Import paths, struct tags and case labels are left alone (changing
// those would change what the program does). A file with no other string
// gets a comment on its package clause instead.
func MakePatch(file string, src []byte, n int, marker string) (*Patch, error) {
	if n < 1 {
		return nil, fmt.Errorf("patch for run %d: runs count from 1", n)
	}
	if marker == "" || strings.ContainsAny(marker, "\"`\\\n") {
		return nil, fmt.Errorf("patch marker %q: must be plain text", marker)
	}
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, file, src, parser.ParseComments|parser.SkipObjectResolution)
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", file, err)
	}
	offsets := literalOffsets(fset, f)
	p := &Patch{File: file, ChangesBinary: len(offsets) > 0}
	var insertAt int
	var insert string
	if len(offsets) > 0 {
		insertAt = offsets[(n-1)%len(offsets)] + 1 // after the opening quote
		insert = marker + " "
	} else {
		// The end of the package clause's line.
		pos := fset.Position(f.Name.End()).Offset
		end := bytes.IndexByte(src[pos:], '\n')
		if end < 0 {
			end = len(src) - pos
		}
		insertAt = pos + end
		insert = " // " + marker
	}
	p.Content = make([]byte, 0, len(src)+len(insert))
	p.Content = append(p.Content, src[:insertAt]...)
	p.Content = append(p.Content, insert...)
	p.Content = append(p.Content, src[insertAt:]...)
	p.Line = 1 + bytes.Count(src[:insertAt], []byte("\n"))
	p.Diff, p.Old, p.New = unifiedDiff(file, src, p.Content, p.Line)
	return p, nil
}

// literalOffsets are the byte offsets of the first string literal on each
// line that may change, in file order: not an import path, a struct tag or
// a case label.
func literalOffsets(fset *token.FileSet, f *ast.File) []int {
	skip := map[*ast.BasicLit]bool{}
	for _, imp := range f.Imports {
		skip[imp.Path] = true
	}
	ast.Inspect(f, func(n ast.Node) bool {
		switch n := n.(type) {
		case *ast.Field:
			if n.Tag != nil {
				skip[n.Tag] = true
			}
		case *ast.CaseClause:
			for _, e := range n.List {
				ast.Inspect(e, func(m ast.Node) bool {
					if l, ok := m.(*ast.BasicLit); ok {
						skip[l] = true
					}
					return true
				})
			}
		}
		return true
	})
	byLine := map[int]int{}
	ast.Inspect(f, func(n ast.Node) bool {
		l, ok := n.(*ast.BasicLit)
		if !ok || l.Kind != token.STRING || skip[l] {
			return true
		}
		pos := fset.Position(l.Pos())
		if old, ok := byLine[pos.Line]; !ok || pos.Offset < old {
			byLine[pos.Line] = pos.Offset
		}
		return true
	})
	out := make([]int, 0, len(byLine))
	for _, off := range byLine {
		out = append(out, off)
	}
	sort.Ints(out)
	return out
}

// unifiedDiff is the diff of a one-line change at line (1-based) of a file
// whose other lines are the same in old and new.
func unifiedDiff(file string, old, new []byte, line int) (diff []byte, oldLine, newLine string) {
	a, b := splitLines(old), splitLines(new)
	i := line - 1
	first := max(0, i-patchContext)
	last := min(len(a)-1, i+patchContext)
	var d bytes.Buffer
	fmt.Fprintf(&d, "diff --git a/%s b/%s\n--- a/%s\n+++ b/%s\n", file, file, file, file)
	n := last - first + 1
	fmt.Fprintf(&d, "@@ -%d,%d +%d,%d @@\n", first+1, n, first+1, n)
	writeLine := func(prefix, l string) {
		d.WriteString(prefix)
		d.WriteString(l)
		if !strings.HasSuffix(l, "\n") {
			d.WriteString("\n\\ No newline at end of file\n")
		}
	}
	for j := first; j <= last; j++ {
		if j == i {
			writeLine("-", a[j])
			writeLine("+", b[j])
			continue
		}
		writeLine(" ", a[j])
	}
	return d.Bytes(), strings.TrimSuffix(a[i], "\n"), strings.TrimSuffix(b[i], "\n")
}

func splitLines(b []byte) []string {
	lines := strings.SplitAfter(string(b), "\n")
	if len(lines) > 0 && lines[len(lines)-1] == "" {
		lines = lines[:len(lines)-1]
	}
	return lines
}
