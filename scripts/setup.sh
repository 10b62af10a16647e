#!/usr/bin/env bash
# Installs what Bulwark needs on a fresh Debian machine: the PostgreSQL server
# binaries (the embedded default and the test harness start private clusters
# from them) and the Go modules. Idempotent; does nothing when all is present.
set -euo pipefail

have_pg() {
  ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || command -v initdb >/dev/null 2>&1 || [ -n "${BULWARK_PG_BINDIR:-}" ]
}

if ! have_pg; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "setup: PostgreSQL server binaries missing; run as root or: sudo apt-get install -y postgresql" >&2
    exit 1
  fi
  echo "setup: installing PostgreSQL server packages with apt-get"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends postgresql postgresql-contrib >/dev/null
  # The Debian package starts a system cluster; Bulwark runs its own.
  service postgresql stop >/dev/null 2>&1 || true
fi

# initdb refuses root: private clusters run as this unprivileged user.
if [ "$(id -u)" -eq 0 ] && ! id postgres >/dev/null 2>&1; then
  useradd --system --home-dir /var/lib/postgresql --shell /bin/bash postgres
fi

go mod download
