package audit

import (
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"regexp"
	"strings"
	"text/tabwriter"
)

// Tabular is a result that prints as a table or CSV; every result of the
// Auditor is one. JSON output encodes the result itself.
type Tabular interface {
	Header() []string
	Rows() [][]string
	// Partial lists what could not be read, if anything.
	Partial() Warnings
}

// Formats are the output formats Write knows.
var Formats = []string{"table", "json", "csv"}

// CheckFormat rejects an unknown output format.
func CheckFormat(format string) error {
	for _, f := range Formats {
		if f == format {
			return nil
		}
	}
	return fmt.Errorf("%w: output format %q: use %s", ErrBadInput, format, strings.Join(Formats, ", "))
}

// Write prints v as a table for people, JSON for machines or CSV for
// spreadsheets.
func Write(w io.Writer, format string, v Tabular) error {
	switch format {
	case "json":
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(v)
	case "csv":
		cw := csv.NewWriter(w)
		if err := cw.Write(v.Header()); err != nil {
			return err
		}
		if err := cw.WriteAll(v.Rows()); err != nil {
			return err
		}
		cw.Flush()
		return cw.Error()
	case "table", "":
		return writeTable(w, v)
	}
	return CheckFormat(format)
}

var longDigest = regexp.MustCompile(`sha256:[0-9a-f]{64}`)

// writeTable aligns columns; digests are shortened to 12 hex digits except
// in the DIGEST column, which people copy from.
func writeTable(w io.Writer, v Tabular) error {
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
