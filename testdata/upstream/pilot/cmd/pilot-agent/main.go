// Command pilot-agent is a stand-in for Istio's sidecar agent binary.
// It only knows "version" and "proxy" (which reports the Envoy it would start).
package main

import (
	"fmt"
	"os"
	"os/exec"

	"istio.io/istio/pkg/version"
)

const usage = `usage: pilot-agent <command>

commands:
  proxy       print the Envoy version the agent would run
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
		return version.Run("pilot-agent", args[1:], os.Stdout, os.Stderr)
	case "proxy":
		envoy := os.Getenv("ENVOY_BINARY")
		if envoy == "" {
			envoy = "/usr/local/bin/envoy"
		}
		fmt.Printf("pilot-agent %s (build %s): fixture binary\n", version.Info.Version, version.Info.BuildID)
		out, err := exec.Command(envoy, "--version").CombinedOutput()
		if err != nil {
			fmt.Fprintf(os.Stderr, "pilot-agent: running %s --version: %v\n%s", envoy, err, out)
			return 1
		}
		os.Stdout.Write(out)
		return 0
	case "help", "-h", "--help":
		fmt.Print(usage)
		return 0
	default:
		fmt.Fprintf(os.Stderr, "pilot-agent: unknown command %q\n%s", args[0], usage)
		return 2
	}
}
