// Package output prints results in the formats every sailmaker command and
// the audit API share: table (for people), json and yaml (for machines: the
// same document in two syntaxes) and csv (for spreadsheets, only where the
// result is rows).
package output

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strings"
	"text/tabwriter"

	"gopkg.in/yaml.v3"
)

// Format is an output format.
type Format string

// The formats.
const (
	Table Format = "table"
	JSON  Format = "json"
	YAML  Format = "yaml"
	CSV   Format = "csv"
)

// Formats are all the formats, in the order help texts list them.
var Formats = []Format{Table, JSON, YAML, CSV}

// Documents are the formats of a result that is not rows.
var Documents = []Format{Table, JSON, YAML}

// Tabular is a result that is rows: it prints as an aligned table or as
// CSV. JSON and YAML encode the result itself.
type Tabular interface {
	Header() []string
	Rows() [][]string
}

// Texter is a result with a view of its own for people (a document, a
// list of facts) that -o table prints instead of rows.
type Texter interface {
	WriteText(w io.Writer) error
}

// ErrUnknownFormat is a format that is not one of Formats, or not one the
// result can be printed in; errors.Is finds it in Parse's and Write's.
var ErrUnknownFormat = errors.New("unknown output format")

// formatError is a message of its own that is an ErrUnknownFormat.
type formatError string

func (e formatError) Error() string        { return string(e) }
func (e formatError) Is(target error) bool { return target == ErrUnknownFormat }

func formatErrorf(format string, args ...any) error {
	return formatError(fmt.Sprintf(format, args...))
}

// Parse checks s against the formats allowed (all of Formats when none are
// given): the message of a wrong one lists the right ones.
func Parse(s string, allowed ...Format) (Format, error) {
	if len(allowed) == 0 {
		allowed = Formats
	}
	for _, f := range allowed {
		if string(f) == s {
			return f, nil
		}
	}
	for _, f := range Formats {
		if string(f) == s {
			return "", formatErrorf("output format %q does not apply here: use %s", s, List(allowed))
		}
	}
	return "", formatErrorf("unknown output format %q: use %s", s, List(allowed))
}

// List is "table, json, yaml or csv".
func List(fs []Format) string {
	s := make([]string, len(fs))
	for i, f := range fs {
		s[i] = string(f)
	}
	if len(s) < 2 {
		return strings.Join(s, "")
	}
	return strings.Join(s[:len(s)-1], ", ") + " or " + s[len(s)-1]
}

// Write prints v in format f. Table prints a Texter's own view, else a
// Tabular's rows; CSV needs a Tabular; JSON and YAML encode v (YAML has the
// keys and values of the JSON, in the same order).
func Write(w io.Writer, f Format, v any) error {
	switch f {
	case JSON:
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		if err := enc.Encode(v); err != nil {
			return fmt.Errorf("writing JSON: %w", err)
		}
		return nil
	case YAML:
		return writeYAML(w, v)
	case CSV:
		t, ok := v.(Tabular)
		if !ok {
			return formatErrorf("output format %q does not apply here (the result is not rows): use %s", f, List(Documents))
		}
		cw := csv.NewWriter(w)
		if err := cw.Write(t.Header()); err != nil {
			return err
		}
		if err := cw.WriteAll(t.Rows()); err != nil {
			return err
		}
		cw.Flush()
		return cw.Error()
	case Table, "":
		if t, ok := v.(Texter); ok {
			return t.WriteText(w)
		}
		if t, ok := v.(Tabular); ok {
			return WriteTable(w, t)
		}
		return formatErrorf("output format %q does not apply here: use json or yaml", f)
	}
	_, err := Parse(string(f))
	return err
}

var longDigest = regexp.MustCompile(`sha256:[0-9a-f]{64}`)

// WriteTable aligns columns; empty cells print as "-", and digests are
// shortened to 12 hex digits except in a DIGEST column, which people copy
// from.
func WriteTable(w io.Writer, v Tabular) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	header := v.Header()
	fmt.Fprintln(tw, strings.Join(header, "\t"))
	for _, row := range v.Rows() {
		cells := make([]string, len(row))
		for i, c := range row {
			c = strings.ReplaceAll(strings.ReplaceAll(c, "\t", " "), "\n", " ")
			if i >= len(header) || header[i] != "DIGEST" {
				c = longDigest.ReplaceAllStringFunc(c, func(d string) string { return d[:7+12] })
			}
			if c == "" {
				c = "-"
			}
			cells[i] = c
		}
		fmt.Fprintln(tw, strings.Join(cells, "\t"))
	}
	return tw.Flush()
}

// writeYAML encodes v's JSON as YAML, so that both formats have the same
// keys (the json tags), values and order.
func writeYAML(w io.Writer, v any) error {
	data, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("writing YAML: %w", err)
	}
	var doc yaml.Node
	if err := yaml.NewDecoder(bytes.NewReader(data)).Decode(&doc); err != nil {
		return fmt.Errorf("writing YAML: %w", err)
	}
	blockStyle(&doc)
	enc := yaml.NewEncoder(w)
	enc.SetIndent(2)
	if err := enc.Encode(&doc); err != nil {
		return fmt.Errorf("writing YAML: %w", err)
	}
	if err := enc.Close(); err != nil {
		return fmt.Errorf("writing YAML: %w", err)
	}
	return nil
}

// blockStyle drops the JSON syntax (flow mappings, quoted strings) the
// decoder remembered, so the encoder writes plain YAML and quotes only what
// needs it; empty lists and mappings stay [] and {}.
func blockStyle(n *yaml.Node) {
	if len(n.Content) > 0 || n.Kind == yaml.ScalarNode {
		n.Style = 0
	}
	for _, c := range n.Content {
		blockStyle(c)
	}
}

// Bytes is a size as people read it, in binary units: "512 B", "1.5 KiB",
// "149.7 MiB".
func Bytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
