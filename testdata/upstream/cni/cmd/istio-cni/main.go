// Command istio-cni is a stand-in for Istio's CNI plugin. It answers the
// CNI VERSION command, and otherwise says which release it is and that it
// sets up nothing.
package main

import (
	"fmt"
	"os"

	"istio.io/istio/pkg/version"
)

func main() {
	if os.Getenv("CNI_COMMAND") == "VERSION" {
		fmt.Println(`{"cniVersion":"1.0.0","supportedVersions":["0.3.1","1.0.0"]}`)
		return
	}
	fmt.Printf("istio-cni %s (revision %s): fixture binary, it sets up nothing\n", version.Info.Version, version.Info.GitRevision)
}
