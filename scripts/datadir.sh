#!/usr/bin/env bash
# Prints the data directory `make run` and `make clean` use when DATA_DIR is
# not given: .bulwark in the checkout, unless we run as root in a checkout
# the unprivileged postgres user cannot reach (a clone under /root, mode
# 0700). The embedded PostgreSQL runs as that user (initdb refuses root),
# and Bulwark never changes the permissions of directories it did not
# create, so the data then goes to /var/lib/bulwark/<checkout>-<hash>
# instead, and this says so on stderr.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" -eq 0 ] && id postgres >/dev/null 2>&1 &&
  ! su -s /bin/sh postgres -c "test -x '$PWD'" 2>/dev/null; then
  dir="/var/lib/bulwark/$(basename "$PWD")-$(printf %s "$PWD" | sha256sum | cut -c1-8)"
  echo "make: the postgres user cannot reach $PWD; data directory: $dir (set DATA_DIR to choose)" >&2
  echo "$dir"
else
  echo .bulwark
fi
