#!/usr/bin/env bash
# Prints the build information of the tree as lines "<go symbol>=<value>",
# one -X flag each (see common/scripts/gobuild.sh). Reads git, so the source
# tree must keep its .git directory; fails loudly if it cannot. As
# upstream's: a tree with changes gets its revision suffixed "-dirty" and
# the status Modified.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/../.."

if ! revision=$(git rev-parse HEAD 2>&1); then
  echo "report_build_info.sh: 'git rev-parse HEAD' failed in $(pwd): ${revision}" >&2
  echo "report_build_info.sh: the source tree needs its .git (and git must trust it: safe.directory)" >&2
  exit 1
fi

if [[ -n "$(git status --porcelain 2>/dev/null)" ]]; then
  revision="${revision}-dirty"
fi

if git diff-index --quiet HEAD -- 2>/dev/null; then
  status=Clean
else
  status=Modified
fi

tag=$(git describe --tags --always 2>/dev/null || echo unknown)

pkg=istio.io/istio/pkg/version
echo "${pkg}.buildVersion=${VERSION:?VERSION must be set}"
echo "${pkg}.buildGitRevision=${revision}"
echo "${pkg}.buildStatus=${status}"
echo "${pkg}.buildTag=${tag}"
