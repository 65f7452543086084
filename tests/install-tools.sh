#!/bin/sh
# Installs what the test suite drives, where it is missing: node and npm and Debian's Chromium (the inspector page
# test) with apt-get (root or sudo, as on this project's machines), then the npm packages below.
set -eu
missing=""
command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1 || missing="$missing nodejs npm"
[ -x /usr/bin/chromium ] || missing="$missing chromium"
if [ -n "$missing" ]; then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "installing:$missing"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq $missing
fi

# The npm packages the tests use, into the git-ignored .cache (the tests install any that is missing themselves,
# through tests/helpers.py's npm_install; installing them here, with the shell's own network settings and a few
# retries, keeps a slow or flaky registry out of the tests' time limits). Versions as in the tests' constants.
cd "$(dirname "$0")/.."
npm_install() {  # prefix package@version
  for attempt in 1 2 3; do
    npm install --prefer-offline --no-audit --no-fund --prefix "$1" "$2" >/dev/null 2>&1 && return 0
    echo "npm install $2: attempt $attempt failed" >&2
  done
  return 1
}
npm_install .cache/node rivetkit@2.3.19 || echo "the tests will try again" >&2
npm_install .cache/node playwright-core@1.65.1 || echo "the tests will try again" >&2
npm_install .cache/envoy-protocol @rivetkit/engine-envoy-protocol@2.3.19 || echo "the tests will try again" >&2
npm_install .cache/engine @rivetkit/engine-cli-linux-x64-musl@2.3.19 || echo "the tests will try again" >&2
