#!/usr/bin/env bash
# Installs the Debian packages given as arguments that are missing (idempotent, fast when done).
# Two runs at once (two `make test` on a fresh machine) take turns on one lock, and the second
# finds the packages the first installed; apt's own dpkg lock is waited for, not failed on.
set -euo pipefail
SUDO=$([ "$(id -u)" = 0 ] || echo sudo)
missing_packages() {
  local p
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || echo "$p"
  done
}
[ -z "$(missing_packages "$@")" ] && exit 0
exec 9>/tmp/multisite-apt.lock
flock 9
missing=$(missing_packages "$@")
[ -z "$missing" ] && exit 0
echo "installing: $missing"
# The package lists' lock is not covered by DPkg::Lock::Timeout: retry while another apt holds it.
for try in 1 2 3 4 5 6; do
  $SUDO apt-get -o DPkg::Lock::Timeout=600 update && break
  [ "$try" = 6 ] && exit 1
  echo "apt-get update failed (another apt running?); trying again in 10 s" >&2
  sleep 10
done
# shellcheck disable=SC2086
DEBIAN_FRONTEND=noninteractive $SUDO apt-get -o DPkg::Lock::Timeout=600 install -y $missing
