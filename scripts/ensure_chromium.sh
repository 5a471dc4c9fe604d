#!/usr/bin/env bash
# Installs Debian's Chromium (/usr/bin/chromium) when it is missing: the browser that the
# viewer's browser test (tests/viewer/test_browser.py) and scripts/viewer_screenshots.py
# drive with Playwright. Playwright's own browser downloads are never used.
# Needs root (or sudo) and apt-get; prints why and exits 1 when it cannot install.
set -euo pipefail
if [ -x /usr/bin/chromium ]; then
  exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "ensure_chromium: /usr/bin/chromium is missing and there is no apt-get to install it" >&2
  exit 1
fi
sudo=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then
    sudo="sudo -n"
  else
    echo "ensure_chromium: installing chromium needs root: run 'apt-get install -y chromium'" >&2
    exit 1
  fi
fi
echo "ensure_chromium: installing Debian's chromium with apt-get ..." >&2
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get install -y -q chromium >&2 || {
  $sudo apt-get update -q >&2
  $sudo apt-get install -y -q chromium >&2
}
[ -x /usr/bin/chromium ]
