#!/usr/bin/env bash
# Regenerates the console's screenshots in docs/console/ (shown in the README): the
# browser test (api/tests/console_browser.rs) takes one PNG of each page at 1280x800
# while it checks them. Needs chromium and chromedriver (scripts/browser.sh).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
scripts/browser.sh >/dev/null
STV3_CONSOLE_SCREENSHOTS="$PWD/docs/console" \
  cargo test -p stv3-api --test console_browser -- --nocapture
ls -1 docs/console/*.png
