#!/usr/bin/env bash
# Installs the system packages Baton's tests need, with apt-get, when they
# are missing. Runs as root on Debian 12 (CI and a new developer machine).
# Each entry: "command-that-must-exist:debian-package".
set -euo pipefail

needs=(
  "gcc:gcc"                  # the race detector (go test -race) needs cgo
  "ip:iproute2"              # e2e tests make their own network namespace (mobility)
  "sipp:sip-tester"          # SIP scenarios as phone and trunk (sipbridge, gateway)
  "baresip:baresip-core"     # a real SIP user agent in the gateway e2e tests
  "linphonec:linphone-cli"   # a real SIP user agent that records what it hears
  "kamailio:kamailio"        # benchmark anchor: stateful SIP proxy
  "rtpengine:rtpengine-daemon" # benchmark anchor: userspace RTP relay
  "redis-server:redis-server"  # the Redis presence backend plugin's tests
  "svwar:sipvicious"         # extension enumeration must find nothing
  "pkg-config:pkg-config"    # cgo finds libopus
  "protoc:protobuf-compiler" # make generate checks the gRPC code against .proto
  "sox:sox"                  # audio checks of recordings made by real peers
)
# C libraries (checked with pkg-config, not a command).
libs=(
  "opus:libopus-dev"         # the Opus codec plugin (cgo)
)

missing=()
for n in "${needs[@]}"; do
  cmd=${n%%:*}
  pkg=${n#*:}
  command -v "$cmd" >/dev/null 2>&1 || missing+=("$pkg")
done
for n in "${libs[@]}"; do
  lib=${n%%:*}
  pkg=${n#*:}
  { command -v pkg-config >/dev/null 2>&1 && pkg-config --exists "$lib"; } || missing+=("$pkg")
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
