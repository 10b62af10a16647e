#!/usr/bin/env bash
# Runs every fuzz target of the module for the given time each (default 30s).
set -euo pipefail
cd "$(dirname "$0")/.."
t="${1:-30s}"
grep -rl --include='*_test.go' '^func Fuzz' internal client | while read -r f; do
  dir="./$(dirname "$f")"
  for name in $(grep -o '^func Fuzz[A-Za-z0-9_]*' "$f" | sed 's/^func //'); do
    echo "== $dir $name ($t)"
    # Minimising a new input may take the default 60 s, which a short run
    # would spend minimising rather than fuzzing.
    go test -run '^$' -fuzz "^${name}\$" -fuzztime "$t" -fuzzminimizetime 5s "$dir"
  done
done
