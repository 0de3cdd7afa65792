#!/usr/bin/env bash
# make demo: a lab of 3 masters and 2 nodes (network, mount, PID and UTS
# namespaces, each with a real sshd), a plan run across it over SSH, the
# run's status, then the lab removed.
set -euo pipefail
cd "$(dirname "$0")/../.."

if [ "$(id -u)" != 0 ]; then
	echo "make demo needs root (it creates network namespaces)" >&2
	exit 2
fi
if ! command -v sshd >/dev/null && [ ! -x /usr/sbin/sshd ]; then
	echo "installing openssh-server, iproute2, sudo ..."
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openssh-server openssh-client iproute2 sudo >/dev/null
fi

bin=$PWD/bin/sealflow
name=demo$$
work=$(mktemp -d /var/tmp/sealflow-demo.XXXXXX)
cleanup() {
	"$bin" lab down --name "$name" >/dev/null 2>&1 || true
	rm -rf "$work"
}
trap cleanup EXIT

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

step "lab up: 3 masters, 2 nodes"
"$bin" lab up --name "$name" --masters 3 --nodes 2 --dir "$work/lab"

step "sealflow run plans/demo.yaml over SSH (host keys checked against the lab's known_hosts)"
"$bin" run --output plain --state "$work/state" \
	-i "$work/lab/inventory.yaml" --known-hosts "$work/lab/known_hosts" \
	plans/demo.yaml

step "sealflow status"
"$bin" status --state "$work/state"

step "the report task's log"
cat "$work/state/logs/report/m1.log"

step "a second run: every task is unchanged"
"$bin" run --output plain --state "$work/state" \
	-i "$work/lab/inventory.yaml" --known-hosts "$work/lab/known_hosts" \
	plans/demo.yaml | tail -n 2

step "lab down"
"$bin" lab down --name "$name"
