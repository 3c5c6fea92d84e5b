#!/usr/bin/env bash
# Fetches the Envoy build pinned by istio.deps (PROXY_REPO_SHA) into
# $TARGET_OUT_LINUX/release, unless release/envoy-<SHA> is already there.
# Like upstream, nothing checks the tarball against a checksum.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TARGET_ARCH=${TARGET_ARCH:-amd64}
TARGET_OUT_LINUX=${TARGET_OUT_LINUX:-${ROOT}/out/linux_${TARGET_ARCH}}
ISTIO_ENVOY_BASE_URL=${ISTIO_ENVOY_BASE_URL:-https://storage.invalid/istio-fixture/proxy}

# lastStableSHA of the istio.deps entry whose name is PROXY_REPO_SHA.
PROXY_REPO_SHA=$(awk -F'"' '
  /\{/ { name = ""; sha = "" }
  $2 == "name" { name = $4 }
  $2 == "lastStableSHA" { sha = $4 }
  /\}/ { if (name == "PROXY_REPO_SHA") { print sha; exit } }
' "${ROOT}/istio.deps")
if [[ ! "${PROXY_REPO_SHA}" =~ ^[0-9a-f]{40}$ ]]; then
  echo "init.sh: no PROXY_REPO_SHA lastStableSHA in ${ROOT}/istio.deps (got '${PROXY_REPO_SHA}')" >&2
  exit 1
fi

release=${TARGET_OUT_LINUX}/release
envoy=${release}/envoy-${PROXY_REPO_SHA}
mkdir -p "${release}"

if [[ -f "${envoy}" ]]; then
  echo "init.sh: ${envoy} exists; skipping the Envoy download"
else
  url=${ISTIO_ENVOY_BASE_URL}/envoy-alpha-${PROXY_REPO_SHA}.tar.gz
  tmp=$(mktemp -d)
  trap 'rm -rf "${tmp}"' EXIT
  echo "init.sh: downloading Envoy from ${url}"
  if command -v curl >/dev/null 2>&1; then
    curl -fsSL --retry 2 -o "${tmp}/envoy.tar.gz" "${url}"
  elif command -v wget >/dev/null 2>&1; then
    wget -q -O "${tmp}/envoy.tar.gz" "${url}"
  else
    echo "init.sh: neither curl nor wget is installed; cannot download ${url}" >&2
    exit 1
  fi
  mkdir "${tmp}/x"
  tar -xzf "${tmp}/envoy.tar.gz" -C "${tmp}/x"
  if [[ ! -f "${tmp}/x/usr/local/bin/envoy" ]]; then
    echo "init.sh: ${url} has no usr/local/bin/envoy" >&2
    exit 1
  fi
  chmod 0755 "${tmp}/x/usr/local/bin/envoy"
  mv "${tmp}/x/usr/local/bin/envoy" "${envoy}"
fi

cp -f "${envoy}" "${release}/envoy"
echo "init.sh: ${release}/envoy is Envoy ${PROXY_REPO_SHA}"
