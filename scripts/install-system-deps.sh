#!/usr/bin/env bash
# System packages the tests need, from Debian's archive: Chromium (the perf HTML report is
# rendered in headless Chromium by its test). Does nothing when they are already there.
set -euo pipefail
if command -v chromium >/dev/null || command -v chromium-browser >/dev/null; then
  exit 0
fi
SUDO=""
if [ "$(id -u)" != "0" ]; then SUDO="sudo"; fi
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium >/dev/null
