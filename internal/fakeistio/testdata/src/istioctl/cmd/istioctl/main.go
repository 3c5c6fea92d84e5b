// Command istioctl is a stand-in for Istio's istioctl: it knows only
// "version", like `istioctl version --remote=false` of a real release.
package main

import (
	"flag"
	"fmt"
	"os"

	"istio.io/istio/pkg/version"
)

func main() {
	if len(os.Args) < 2 || os.Args[1] != "version" {
		fmt.Fprintln(os.Stderr, "usage: istioctl version [--remote=false] [--short]")
		os.Exit(2)
	}
	fs := flag.NewFlagSet("istioctl version", flag.ExitOnError)
	remote := fs.Bool("remote", true, "also ask the control plane of the cluster for its version")
	short := fs.Bool("short", false, "print just the version")
	fs.Parse(os.Args[2:])
	if *short {
		fmt.Println(version.Version())
	} else {
		fmt.Printf("client version: %s\n", version.Version())
	}
	if *remote {
		fmt.Fprintln(os.Stderr, "error: no Kubernetes cluster in reach (this is a test stand-in); use --remote=false")
		os.Exit(1)
	}
}
