// Command istio-cni is a stand-in for Istio's CNI plugin: it answers the
// CNI VERSION command and says which Istio release it is.
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
	fmt.Printf("istio-cni %s (revision %s): a test stand-in, it sets up nothing\n", version.Version(), version.Revision())
}
