#!/usr/bin/env bash
# Runs govulncheck offline: the vulnerability database is built from the
# pinned golang.org/x/vulndb module, which the Go module proxy serves (the
# machines here reach no other host), then scripts/vulngate decides.
# Raise VULNDB_VERSION to take newer reports.
set -euo pipefail
cd "$(dirname "$0")/.."
VULNDB_VERSION=v0.0.0-20261105234957-e22db6528018
src=$(go mod download -json "golang.org/x/vulndb@${VULNDB_VERSION}" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
db="${XDG_CACHE_HOME:-$HOME/.cache}/bulwark/vulndb-${VULNDB_VERSION}"
if [ ! -f "$db/index/db.json" ]; then
  echo "vulncheck: building the vulnerability database from golang.org/x/vulndb@${VULNDB_VERSION}"
  rm -rf "$db.tmp" && mkdir -p "$(dirname "$db")"
  (cd "$src" && GOFLAGS=-mod=mod go run ./cmd/indexdb -vulns data/osv -out "$db.tmp")
  mv "$db.tmp" "$db"
fi
go tool govulncheck -db "file://$db" -format json ./... | go run ./scripts/vulngate
