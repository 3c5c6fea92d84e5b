package version

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
)

// Run implements the "version" subcommand: args are the arguments after
// "version". With --short it prints only the version; with -o json (or
// --output json) the build information as istio's binaries print it:
// {"clientVersion": {"version": ..., "revision": ..., ...}}.
func Run(prog string, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet(prog+" version", flag.ContinueOnError)
	fs.SetOutput(stderr)
	short := fs.Bool("short", false, "print just the version number")
	fs.BoolVar(short, "s", false, "shorthand for --short")
	output := fs.String("output", "", "one of 'yaml' or 'json'")
	fs.StringVar(output, "o", "", "shorthand for --output")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() != 0 {
		fmt.Fprintf(stderr, "%s version: unexpected arguments %q\n", prog, fs.Args())
		return 2
	}
	switch {
	case *short:
		fmt.Fprintln(stdout, Info.Version)
	case *output == "json":
		b, err := json.MarshalIndent(Version{ClientVersion: &Info}, "", "  ")
		if err != nil {
			fmt.Fprintf(stderr, "%s version: %v\n", prog, err)
			return 1
		}
		fmt.Fprintln(stdout, string(b))
	case *output == "yaml":
		i := Info
		fmt.Fprintf(stdout, "clientVersion:\n  golang_version: %s\n  revision: %s\n  status: %s\n  tag: %s\n  version: %s\n",
			i.GolangVersion, i.GitRevision, i.BuildStatus, i.GitTag, i.Version)
	case *output != "":
		fmt.Fprintf(stderr, "%s version: --output must be 'yaml' or 'json'\n", prog)
		return 2
	default:
		fmt.Fprintln(stdout, Info.String())
	}
	return 0
}

// Version is what `version -o json` prints, as istio's pkg/version does.
type Version struct {
	ClientVersion *BuildInfo `json:"clientVersion,omitempty"`
}
