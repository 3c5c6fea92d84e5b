package version

import (
	"flag"
	"fmt"
	"io"
)

// Run implements the "version" subcommand: args are the arguments after
// "version". With --short it prints only the version.
func Run(prog string, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet(prog+" version", flag.ContinueOnError)
	fs.SetOutput(stderr)
	short := fs.Bool("short", false, "print just the version number")
	fs.BoolVar(short, "s", false, "shorthand for --short")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() != 0 {
		fmt.Fprintf(stderr, "%s version: unexpected arguments %q\n", prog, fs.Args())
		return 2
	}
	if *short {
		fmt.Fprintln(stdout, Info.Version)
		return 0
	}
	fmt.Fprintln(stdout, Info.String())
	return 0
}
