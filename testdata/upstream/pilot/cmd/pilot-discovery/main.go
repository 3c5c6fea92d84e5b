// Command pilot-discovery is a stand-in for Istio's control plane binary.
// It only knows "version" and "discovery" (which prints what it would serve).
package main

import (
	"fmt"
	"os"

	"istio.io/istio/pkg/version"
)

const usage = `usage: pilot-discovery <command>

commands:
  discovery   start the (pretend) discovery service
  version     print build information (--short: just the version)
`

func main() {
	os.Exit(run(os.Args[1:]))
}

func run(args []string) int {
	if len(args) == 0 {
		fmt.Fprint(os.Stderr, usage)
		return 2
	}
	switch args[0] {
	case "version":
		return version.Run("pilot-discovery", args[1:], os.Stdout, os.Stderr)
	case "discovery":
		fmt.Printf("pilot-discovery %s (build %s): fixture binary, serving nothing\n", version.Info.Version, version.Info.BuildID)
		return 0
	case "help", "-h", "--help":
		fmt.Print(usage)
		return 0
	default:
		fmt.Fprintf(os.Stderr, "pilot-discovery: unknown command %q\n%s", args[0], usage)
		return 2
	}
}
