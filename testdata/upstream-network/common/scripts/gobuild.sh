#!/usr/bin/env bash
# usage: gobuild.sh OUTPUT TAGS PACKAGE
# Builds one static, stripped binary with the build info of the tree stamped in.
# GOFLAGS, GOPROXY, GOMODCACHE, GOCACHE... come from the environment untouched.
set -euo pipefail

if [[ $# -ne 3 ]]; then
  echo "usage: $0 OUTPUT TAGS PACKAGE" >&2
  exit 2
fi
out=$1 tags=$2 pkg=$3

cd "$(dirname "${BASH_SOURCE[0]}")/../.."

info=$(common/scripts/report_build_info.sh)
ldflags="-s -w"
while IFS= read -r kv; do
  [[ -n "${kv}" ]] && ldflags+=" -X ${kv}"
done <<<"${info}"

export CGO_ENABLED=0
export GOOS=${GOOS:-linux}
export GOARCH=${GOARCH:-amd64}
set -x
go build -trimpath -tags "${tags}" -ldflags "${ldflags}" -o "${out}" "${pkg}"
