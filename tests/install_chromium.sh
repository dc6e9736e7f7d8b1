#!/bin/sh
# Chromium from the system's packages, for the HTML report's browser test (tests/test_html_report.py).
# Part of the README's test command: does nothing where `chromium` is on the PATH, else installs Debian's package
# (as root, or through sudo). Never fails the command: without Chromium only the browser test fails, naming the fix.
command -v chromium >/dev/null 2>&1 && exit 0
SUDO=""
[ "$(id -u)" = 0 ] || SUDO=sudo
$SUDO apt-get update -qq >/dev/null 2>&1 || true
$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null 2>&1 \
  || echo "warning: could not install Debian's chromium (apt-get install chromium); the browser test will fail" >&2
exit 0
