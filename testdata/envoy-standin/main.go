// Command envoy is a stand-in for the Envoy binary that proxyv2 images carry.
// fixture.EnvoyTarball builds it with -X main.proxySHA=<PROXY_REPO_SHA>; it
// answers --version like Istio's Envoy build and refuses everything else.
package main

import (
	"fmt"
	"os"
)

var proxySHA = "0000000000000000000000000000000000000000"

func main() {
	for _, a := range os.Args[1:] {
		if a == "--version" || a == "-version" {
			fmt.Printf("envoy  version: %s/1.32.0-dev/Clean/RELEASE/BoringSSL\n", proxySHA)
			return
		}
	}
	fmt.Fprintln(os.Stderr, "envoy (sailmaker fixture stand-in): only --version is supported")
	os.Exit(1)
}
