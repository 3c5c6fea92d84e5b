// Command istioctl is a stand-in for Istio's istioctl. It knows only
// "version": with --remote=false it prints the client's version, as a real
// istioctl does; without it, it says there is no cluster to ask.
package main

import (
	"flag"
	"fmt"
	"os"

	"istio.io/istio/pkg/version"
)

const usage = `usage: istioctl <command>

commands:
  version     print the version (--remote=false: this client only; --short: just the version)
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
		fs := flag.NewFlagSet("istioctl version", flag.ContinueOnError)
		remote := fs.Bool("remote", true, "also ask the cluster's control plane for its version")
		short := fs.Bool("short", false, "print just the version")
		if err := fs.Parse(args[1:]); err != nil {
			return 2
		}
		if *short {
			fmt.Println(version.Info.Version)
		} else {
			fmt.Printf("client version: %s\n", version.Info.Version)
		}
		if *remote {
			fmt.Fprintln(os.Stderr, "istioctl: no Kubernetes cluster in reach (a fixture binary); use --remote=false")
			return 1
		}
		return 0
	case "help", "-h", "--help":
		fmt.Print(usage)
		return 0
	default:
		fmt.Fprintf(os.Stderr, "istioctl: unknown command %q\n%s", args[0], usage)
		return 2
	}
}
