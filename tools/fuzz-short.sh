#!/usr/bin/env bash
# Runs every Fuzz target in the module briefly (FUZZTIME, default 30000
# inputs each), so CI exercises the parsers beyond their committed corpus.
# The budget is a count, not a duration: Go 1.26's fuzz coordinator can end a
# duration run with a spurious "context deadline exceeded" failure under CPU
# load (golang/go#75804, fixed in Go 1.27); a count has no deadline to race.
set -euo pipefail
fuzztime=${FUZZTIME:-30000x}
grep -rl --include='*_test.go' -E '^func Fuzz[A-Za-z0-9_]+\(' . | while read -r file; do
  pkg=./$(dirname "${file#./}")
  grep -oE '^func Fuzz[A-Za-z0-9_]+' "$file" | sed 's/^func //' | while read -r target; do
    echo "fuzz $pkg $target ($fuzztime)"
    go test -run='^$' -fuzz="^${target}\$" -fuzztime="$fuzztime" "$pkg" >/tmp/fuzz-$target.log 2>&1 || { cat /tmp/fuzz-$target.log; exit 1; }
  done
done
