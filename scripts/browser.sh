#!/usr/bin/env bash
# Installs what the console's browser tests (api/tests/console_browser.rs) drive:
# headless Chromium and its WebDriver server, chromedriver, from Debian's packages
# (idempotent: nothing is done when both are there). Prints the chromedriver's path.
#
#   scripts/browser.sh
set -euo pipefail
log() { printf '[browser] %s\n' "$*" >&2; }
missing=()
for p in chromium chromium-driver; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if ((${#missing[@]})); then
  [[ $(id -u) == 0 ]] || { log "need root to apt-get install ${missing[*]}"; exit 1; }
  log "apt-get install ${missing[*]}"
  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"; } >&2
fi
command -v chromedriver
