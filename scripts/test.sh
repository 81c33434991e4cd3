#!/usr/bin/env bash
# Runs the whole test suite: formatting, vet, unit and integration tests with
# the race detector, on the embedded SQLite store and on a throwaway
# PostgreSQL that this script starts (and installs from Debian if missing).
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }

step "gofmt"
unformatted=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go' -not -path './dist/*'))
if [ -n "$unformatted" ]; then
	echo "gofmt needed on:"; echo "$unformatted"; exit 1
fi

step "go vet"
go vet ./...

step "go test -race"
go test -race -count=1 -timeout 20m ./...
