#!/usr/bin/env bash
# Installs the system packages Baton's tests need, with apt-get, when they
# are missing. Runs as root on Debian 12 (CI and a new developer machine).
# Each entry: "command-that-must-exist:debian-package".
set -euo pipefail

needs=(
  "gcc:gcc"       # the race detector (go test -race) needs cgo
  "ip:iproute2"   # e2e tests make their own network namespace (mobility)
)

missing=()
for n in "${needs[@]}"; do
  cmd=${n%%:*}
  pkg=${n#*:}
  command -v "$cmd" >/dev/null 2>&1 || missing+=("$pkg")
done

if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi

echo "deps: installing ${missing[*]} with apt-get" >&2
if ! command -v apt-get >/dev/null 2>&1; then
  echo "deps: apt-get not found; install these packages by hand: ${missing[*]}" >&2
  exit 1
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "deps: need root to apt-get install ${missing[*]} (run as root, or install them first)" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
if ! { apt-get update -qq && apt-get install -y -qq --no-install-recommends "${missing[@]}"; }; then
  echo "deps: apt-get install ${missing[*]} failed; the tests cannot run without them" >&2
  exit 1
fi
