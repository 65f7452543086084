#!/bin/sh
# Installs the system tools the test suite drives, where they are missing: node and npm (the official RivetKit
# client, installed by the tests into .cache/node) and Debian's Chromium (the inspector page test). Needs root
# (or sudo) and apt-get, as on this project's machines; does nothing when the tools are already there.
set -eu
missing=""
command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1 || missing="$missing nodejs npm"
[ -x /usr/bin/chromium ] || missing="$missing chromium"
[ -z "$missing" ] && exit 0
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
echo "installing:$missing"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq $missing
