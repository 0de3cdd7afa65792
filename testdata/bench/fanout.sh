#!/usr/bin/env bash
# Fan-out benchmark, in one run on the same 20 lab hosts (each a network
# namespace with a real sshd):
#   - 20 no-op steps on 20 hosts: sealflow vs ansible-playbook (Debian's
#     ansible-core; strategy free, forks 20, pipelining on);
#   - one `true` on 20 hosts: sealflow vs parallel-ssh (Debian's pssh).
# Each measurement is the median of RUNS runs (default 3).
set -euo pipefail
cd "$(dirname "$0")/../.."
[ "$(id -u)" = 0 ] || { echo "the benchmark needs root (lab hosts)" >&2; exit 2; }
RUNS=${RUNS:-3}
HOSTS=${HOSTS:-20}

need=()
command -v ansible-playbook >/dev/null || need+=(ansible-core)
command -v parallel-ssh >/dev/null || need+=(pssh)
[ -x /usr/sbin/sshd ] || need+=(openssh-server)
command -v bc >/dev/null || need+=(bc)
if [ ${#need[@]} -gt 0 ]; then
	echo "installing ${need[*]} ..."
	apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi

bin=$PWD/bin/sealflow
name=bfan$$
work=$(mktemp -d /var/tmp/sealflow-bench.XXXXXX)
trap '"$bin" lab down --name "$name" >/dev/null 2>&1 || true; rm -rf "$work"' EXIT
"$bin" lab up -q --name "$name" --masters 0 --nodes "$HOSTS" --dir "$work/lab" >/dev/null
inv=$work/lab/inventory.yaml kh=$work/lab/known_hosts key=$work/lab/id_ed25519

# The plans and the playbook.
{
	echo "name: noop20"
	echo "steps:"
	for i in $(seq 1 20); do
		echo "  - {id: s$i, kind: shell, with: {run: 'true'}$([ "$i" -gt 1 ] && echo ", needs: [s$((i - 1))]")}"
	done
} >"$work/noop20.yaml"
printf 'name: true1\nsteps:\n  - {id: t, kind: shell, with: {run: "true"}}\n' >"$work/true1.yaml"

addrs=$(sed -n 's/.*address: \([0-9.]*\).*/\1/p' "$inv")
{
	echo "[lab]"
	for a in $addrs; do echo "$a"; done
	echo "[lab:vars]"
	echo "ansible_user=root"
	echo "ansible_ssh_private_key_file=$key"
	echo "ansible_ssh_common_args=-o UserKnownHostsFile=$kh -o StrictHostKeyChecking=yes"
	echo "ansible_python_interpreter=/usr/bin/python3"
} >"$work/hosts.ini"
cat >"$work/ansible.cfg" <<CFG
[defaults]
forks = 20
strategy = free
gathering = explicit
host_key_checking = True
stdout_callback = default
[ssh_connection]
pipelining = True
CFG
{
	echo "- hosts: lab"
	echo "  gather_facts: false"
	echo "  tasks:"
	for i in $(seq 1 20); do echo "    - ansible.builtin.command: 'true'"; done
} >"$work/noop20.playbook.yaml"
printf '%s\n' $addrs >"$work/pssh-hosts"

now() { date +%s.%N; }
# median of RUNS timings of a command (seconds)
measure() {
	local ts=() t0 t1
	for _ in $(seq 1 "$RUNS"); do
		rm -rf "$work/state"
		t0=$(now)
		"$@" >"$work/last.log" 2>&1 || { echo "FAILED: $*" >&2; tail -20 "$work/last.log" >&2; exit 1; }
		t1=$(now)
		ts+=("$(echo "$t1 - $t0" | bc -l)")
	done
	printf '%s\n' "${ts[@]}" | sort -n | sed -n "$(((RUNS + 1) / 2))p"
}

sf() { "$bin" run --output plain --state "$work/state" -i "$inv" --known-hosts "$kh" "$@"; }
t_sf20=$(measure sf "$work/noop20.yaml")
t_an20=$(measure env ANSIBLE_CONFIG="$work/ansible.cfg" ansible-playbook -i "$work/hosts.ini" "$work/noop20.playbook.yaml")
t_sf1=$(measure sf "$work/true1.yaml")
t_ps1=$(measure parallel-ssh -h "$work/pssh-hosts" -l root -p "$HOSTS" -x "-i $key -o UserKnownHostsFile=$kh -o StrictHostKeyChecking=yes" true)

ratio() { echo "scale=1; $1 / $2" | bc -l; }
printf '\nfan-out on %d lab hosts, %d cores, median of %d runs\n' "$HOSTS" "$(nproc)" "$RUNS"
printf '%-34s %10s %10s %8s\n' "workload" "sealflow" "peer" "peer/sf"
printf '%-34s %9.2fs %9.2fs %7sx  (ansible-playbook %s)\n' "20 no-op steps x $HOSTS hosts" "$t_sf20" "$t_an20" "$(ratio "$t_an20" "$t_sf20")" "$(ansible-playbook --version 2>/dev/null | awk 'NR==1{gsub(/.*core |]/,""); print}')"
printf '%-34s %9.2fs %9.2fs %7sx  (parallel-ssh)\n' "one true on $HOSTS hosts" "$t_sf1" "$t_ps1" "$(ratio "$t_ps1" "$t_sf1")"
