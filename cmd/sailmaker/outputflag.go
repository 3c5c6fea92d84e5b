package main

import (
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/sailmaker/sailmaker/internal/output"
)

// outputFlag is -o, --output: the one output grammar of every command that
// prints data (table, json, yaml, and csv where the result is rows). It
// checks the value while flags are parsed, so a wrong -o fails before any
// work starts, naming the formats the command prints.
type outputFlag struct {
	format  output.Format
	allowed []output.Format
}

func (o *outputFlag) String() string { return string(o.format) }
func (o *outputFlag) Type() string   { return "format" }

func (o *outputFlag) Set(s string) error {
	f, err := output.Parse(s, o.allowed...)
	if err != nil {
		return err
	}
	o.format = f
	return nil
}

// write prints v in the chosen format (see output.Write).
func (o *outputFlag) write(w io.Writer, v any) error { return output.Write(w, o.format, v) }

// addOutputFlag gives cmd -o with the formats allowed (all when none are
// given: output.Formats; output.Documents for a result that is not rows),
// table by default, and their shell completion.
func addOutputFlag(cmd *cobra.Command, allowed ...output.Format) *outputFlag {
	return registerOutputFlag(cmd, false, allowed)
}

// addPersistentOutputFlag is addOutputFlag for cmd and all its subcommands.
func addPersistentOutputFlag(cmd *cobra.Command, allowed ...output.Format) *outputFlag {
	return registerOutputFlag(cmd, true, allowed)
}

func registerOutputFlag(cmd *cobra.Command, persistent bool, allowed []output.Format) *outputFlag {
	return registerFormatFlag(cmd, "output", persistent, allowed)
}

// addFormatFlag is addOutputFlag for a command whose --output names
// something else (build: where the images go): -o is --format there.
func addFormatFlag(cmd *cobra.Command, allowed ...output.Format) *outputFlag {
	return registerFormatFlag(cmd, "format", false, allowed)
}

func registerFormatFlag(cmd *cobra.Command, name string, persistent bool, allowed []output.Format) *outputFlag {
	if len(allowed) == 0 {
		allowed = output.Formats
	}
	o := &outputFlag{format: output.Table, allowed: allowed}
	fs := cmd.Flags()
	if persistent {
		fs = cmd.PersistentFlags()
	}
	fs.VarP(o, name, "o", "output format: "+output.List(allowed))
	completeFormat(cmd, name, allowed...)
	return o
}

// completeOutput completes cmd's -o with the formats allowed.
func completeOutput(cmd *cobra.Command, allowed ...output.Format) {
	completeFormat(cmd, "output", allowed...)
}

func completeFormat(cmd *cobra.Command, name string, allowed ...output.Format) {
	_ = cmd.RegisterFlagCompletionFunc(name, func(_ *cobra.Command, _ []string, toComplete string) ([]string, cobra.ShellCompDirective) {
		return withPrefix(formatNames(allowed), toComplete), cobra.ShellCompDirectiveNoFileComp
	})
}

// checkOutput is for a command whose -o is a plain string: it rejects a
// format outside allowed (all formats when none are given) with the same
// message as the -o of the other commands. Call it before any work.
func checkOutput(format string, allowed ...output.Format) error {
	if _, err := output.Parse(format, allowed...); err != nil {
		return fmt.Errorf("-o: %w", err)
	}
	return nil
}

// writeOutput prints v in format: a Texter's own view or a Tabular's rows
// for table, a Tabular's rows for csv, v itself for json and yaml.
func writeOutput(w io.Writer, format string, v any) error {
	if err := checkOutput(format); err != nil {
		return err
	}
	return output.Write(w, output.Format(format), v)
}

func formatNames(fs []output.Format) []string {
	s := make([]string, len(fs))
	for i, f := range fs {
		s[i] = string(f)
	}
	return s
}
