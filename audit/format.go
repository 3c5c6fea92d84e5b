package audit

import (
	"fmt"
	"io"

	"github.com/sailmaker/sailmaker/internal/output"
)

// Tabular is a result that prints as a table or CSV (the shared output
// layer's rows) and says what it left out; every result of the Auditor is
// one. JSON and YAML encode the result itself.
type Tabular interface {
	output.Tabular
	// Partial lists what could not be read, if anything.
	Partial() Warnings
}

// Formats are the output formats Write knows.
var Formats = output.Formats

// CheckFormat rejects an unknown output format.
func CheckFormat(format string) error {
	if _, err := output.Parse(format); err != nil {
		return fmt.Errorf("%w: output %w", ErrBadInput, err)
	}
	return nil
}

// Write prints v as a table for people, JSON or YAML for machines or CSV
// for spreadsheets.
func Write(w io.Writer, format string, v Tabular) error {
	if err := CheckFormat(format); err != nil {
		return err
	}
	return output.Write(w, output.Format(format), v)
}
