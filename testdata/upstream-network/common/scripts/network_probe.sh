#!/usr/bin/env bash
# Downloads a Go module that no prepared module cache can hold: a fresh, empty
# GOMODCACHE and a GOPROXY forced to NETWORK_PROBE_GOPROXY (default
# https://goproxy.example.com), whatever GOPROXY/GOFLAGS the caller set. Without
# network access this fails, and so does the build that runs it.
set -euo pipefail

proxy=${NETWORK_PROBE_GOPROXY:-https://goproxy.example.com}
module=${NETWORK_PROBE_MODULE:-rsc.io/quote@v1.5.2}

tmp=$(mktemp -d)
trap 'chmod -R u+w "${tmp}" 2>/dev/null; rm -rf "${tmp}"' EXIT

echo "network_probe.sh: downloading ${module} from ${proxy} (this needs the network)"
cd "${tmp}"
if ! env GOMODCACHE="${tmp}/modcache" GOPROXY="${proxy}" GOSUMDB=off \
    GOPRIVATE= GONOPROXY= GONOSUMDB= GOFLAGS=-modcacherw GOWORK=off GO111MODULE=on \
    go mod download -json "${module}" >"${tmp}/out.json" 2>&1; then
  cat "${tmp}/out.json" >&2
  echo "network_probe.sh: FAILED to download ${module} from ${proxy}: this build needs the network" >&2
  exit 1
fi
echo "network_probe.sh: downloaded ${module} from ${proxy}"
