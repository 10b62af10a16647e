#!/usr/bin/env bash
# Installs what Bulwark needs on a fresh Debian machine that has Go (and
# make, which runs this script):
#   - the PostgreSQL server binaries: the embedded default and the test
#     harness start private clusters from them;
#   - a C compiler and the C library headers (gcc, libc6-dev): `make test`
#     runs the race detector, which needs cgo; without them `go test -race`
#     fails with "cgo: C compiler "gcc" not found" or missing headers;
#   - ca-certificates: `go mod download` fetches modules over HTTPS from the
#     Go module proxy and fails with an x509 error without them;
#   - chromium: the console's browser test drives it headless (without it
#     that test prints why and skips; nothing else needs it);
#   - promtool (Debian's prometheus package): the tests check the rules
#     under deploy/prometheus and run their unit tests with it; without it
#     that test is skipped with a printed reason (a warning here, not an
#     error). The package's server daemon is stopped after the install.
#   - the Go modules.
# As root it installs what is missing with apt-get; otherwise it prints the
# command to run and fails. Idempotent: it does nothing when all is present.
#
# BULWARK_NEED_CC=1 (set by `make test` when TEST_FLAGS has -race) makes a
# missing C compiler an error; otherwise it is a warning (`make run` builds
# without cgo).
set -euo pipefail

have_pg() {
  ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || command -v initdb >/dev/null 2>&1 || [ -n "${BULWARK_PG_BINDIR:-}" ]
}

# cgo uses $CC, else gcc; it also needs libc headers (libc6-dev is only a
# recommendation of gcc, so a --no-install-recommends gcc lacks them).
have_cc() {
  local cc
  cc="$(go env CC 2>/dev/null || true)"
  command -v "${cc:-gcc}" >/dev/null 2>&1 && [ -e /usr/include/stdlib.h ]
}

have_certs() {
  [ -s /etc/ssl/certs/ca-certificates.crt ]
}

have_chromium() {
  command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || [ -n "${BULWARK_CHROMIUM:-}" ]
}

have_promtool() {
  command -v promtool >/dev/null 2>&1
}

missing=()
have_pg || missing+=(postgresql postgresql-contrib)
have_cc || missing+=(gcc libc6-dev)
have_certs || missing+=(ca-certificates)
if [ "$(id -u)" -eq 0 ]; then
  have_promtool || missing+=(prometheus)
fi

if [ "${#missing[@]}" -gt 0 ]; then
  if [ "$(id -u)" -eq 0 ]; then
    echo "setup: installing with apt-get: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    if [[ " ${missing[*]} " == *" postgresql "* ]]; then
      # The Debian package starts a system cluster; Bulwark runs its own.
      service postgresql stop >/dev/null 2>&1 || true
    fi
    if [[ " ${missing[*]} " == *" prometheus "* ]]; then
      # Only promtool is wanted; a Prometheus server started by the
      # package would scrape and hold :9090 for nothing.
      service prometheus stop >/dev/null 2>&1 || true
    fi
  else
    fail=0
    if ! have_pg; then
      echo "setup: PostgreSQL server binaries missing; run as root or: sudo apt-get install -y postgresql" >&2
      fail=1
    fi
    if ! have_cc; then
      if [ "${BULWARK_NEED_CC:-0}" = 1 ]; then
        echo "setup: the race detector needs cgo and a C compiler with libc headers; run as root or: sudo apt-get install -y gcc libc6-dev (or: make test TEST_FLAGS=)" >&2
        fail=1
      else
        echo "setup: warning: no C compiler; \`make test\` (race detector) will need: sudo apt-get install -y gcc libc6-dev" >&2
      fi
    fi
    if ! have_certs; then
      echo "setup: CA certificates missing (go mod download uses HTTPS); run as root or: sudo apt-get install -y ca-certificates" >&2
      fail=1
    fi
    [ "$fail" -eq 0 ] || exit 1
  fi
fi
if ! have_promtool && [ "$(id -u)" -ne 0 ]; then
  echo "setup: warning: promtool missing; the rule checks of deploy/ are skipped (sudo apt-get install -y prometheus)" >&2
fi

# Optional: only the console's browser test needs chromium, so a failed
# install (no mirror reachable) or a non-root setup warns and goes on.
if ! have_chromium; then
  if [ "$(id -u)" -eq 0 ]; then
    echo "setup: installing with apt-get: chromium (the console's browser test)"
    if ! (export DEBIAN_FRONTEND=noninteractive; apt-get update -qq && apt-get install -y -qq --no-install-recommends chromium >/dev/null); then
      echo "setup: warning: chromium could not be installed; the console's browser test will skip" >&2
    fi
  else
    echo "setup: warning: no chromium; the console's browser test will skip (sudo apt-get install -y chromium)" >&2
  fi
fi

# initdb refuses root: private clusters run as this unprivileged user.
if [ "$(id -u)" -eq 0 ] && ! id postgres >/dev/null 2>&1; then
  useradd --system --home-dir /var/lib/postgresql --shell /bin/bash postgres
fi

go mod download
