#!/usr/bin/env bash
# lvscare benchmark (as root; real nftables rules in network namespaces):
#  - failover: kill a master's HTTPS server, time until every request
#    through the VIP succeeds again (default settings, then the original
#    LVScare's defaults: interval 5s, fall 2);
#  - the idle daemon's RSS and CPU with 3 real servers over 30 s.
# Runs alone: bash testdata/bench/lvscare.sh [helper flags, see -h]
set -euo pipefail
cd "$(dirname "$0")/../.."
GO="${GO:-go}"
command -v "$GO" >/dev/null || GO=/usr/local/go/bin/go
if [ "$(id -u)" != 0 ]; then
	echo "lvscare.sh: needs root (network namespaces, nftables)" >&2
	exit 1
fi
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
"$GO" build -o "$work/lvscare-bench" ./testdata/bench/lvscare
daemon=""
sealflow="${SEALFLOW:-}"
if [ -z "$sealflow" ] && "$GO" build -o "$work/sealflow" ./cmd/sealflow 2>/dev/null; then
	sealflow="$work/sealflow"
fi
if [ -n "$sealflow" ] && "$sealflow" lvscare care --help 2>&1 | grep -q -- --health-schem; then
	daemon="$sealflow lvscare"
	echo "lvscare.sh: daemon: $daemon" >&2
else
	echo "lvscare.sh: sealflow has no lvscare command here; the daemon runs through the library (same code, no CLI)" >&2
fi
"$work/lvscare-bench" -daemon "$daemon" "$@"
