#!/usr/bin/env bash
# Fan-out benchmark, in one run on the same lab hosts (each a network
# namespace with a real sshd), for each size STEPSxHOSTS of SIZES
# (default "10x10 20x20"):
#   - STEPS chained no-op steps on HOSTS hosts: sealflow vs ansible-playbook
#     (Debian's ansible-core; strategy free, forks = hosts, pipelining on);
#   - one `true` on HOSTS hosts: sealflow vs parallel-ssh (Debian's pssh).
# The commands take turns run by run (sealflow, peer, sealflow, ...) and
# each ratio is the median of the per-run ratios; times are min/median/max
# of RUNS runs (default 3). BASE=path/to/another/sealflow also times that
# binary in the same turns (e.g. the main branch's, for before/after).
set -euo pipefail
cd "$(dirname "$0")/../.."
[ "$(id -u)" = 0 ] || { echo "the benchmark needs root (lab hosts)" >&2; exit 2; }
RUNS=${RUNS:-3}
SIZES=${SIZES:-10x10 20x20}
BASE=${BASE:-}

need=()
command -v ansible-playbook >/dev/null || need+=(ansible-core)
command -v parallel-ssh >/dev/null || need+=(pssh)
[ -x /usr/sbin/sshd ] || need+=(openssh-server)
command -v bc >/dev/null || need+=(bc)
if [ ${#need[@]} -gt 0 ]; then
	echo "installing ${need[*]} ..."
	apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi

bin=${SEALFLOW:-$PWD/bin/sealflow}
work=$(mktemp -d /var/tmp/sealflow-bench.XXXXXX)
name=
trap '[ -z "$name" ] || "$bin" lab down --name "$name" >/dev/null 2>&1 || true; rm -rf "$work"' EXIT

now() { date +%s.%N; }
# one timing of a command (seconds)
once() {
	local t0 t1
	rm -rf "$work/state"
	t0=$(now)
	"$@" >"$work/last.log" 2>&1 || { echo "FAILED: $*" >&2; tail -20 "$work/last.log" >&2; exit 1; }
	t1=$(now)
	echo "$t1 - $t0" | bc -l
}
# min/median/max of the numbers on stdin
mmm() { sort -n | awk '{a[NR]=$1} END {printf "%.2f/%.2f/%.2f", a[1], a[int((NR+1)/2)], a[NR]}'; }
med() { sort -n | awk '{a[NR]=$1} END {printf "%.1f", a[int((NR+1)/2)]}'; }
ratio() { echo "scale=3; $1 / $2" | bc -l; }

printf 'fan-out, %d cores, %d runs each (times min/median/max; ratio: median of per-run ratios)\n' "$(nproc)" "$RUNS"
for size in $SIZES; do
STEPS=${size%x*} HOSTS=${size#*x}
name=bfan$$h$HOSTS
"$bin" lab up -q --name "$name" --masters 0 --nodes "$HOSTS" --dir "$work/lab" >/dev/null
inv=$work/lab/inventory.yaml kh=$work/lab/known_hosts key=$work/lab/id_ed25519

# The plans and the playbook.
{
	echo "name: noop"
	echo "steps:"
	for i in $(seq 1 "$STEPS"); do
		echo "  - {id: s$i, kind: shell, with: {run: 'true'}$([ "$i" -gt 1 ] && echo ", needs: [s$((i - 1))]")}"
	done
} >"$work/noop.yaml"
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
forks = $HOSTS
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
	for i in $(seq 1 "$STEPS"); do echo "    - ansible.builtin.command: 'true'"; done
} >"$work/noop.playbook.yaml"
printf '%s\n' $addrs >"$work/pssh-hosts"

sf() { "$1" run --output plain --state "$work/state" -i "$inv" --known-hosts "$kh" "$2"; }
: >"$work/t_sf" >"$work/t_base" >"$work/t_an" >"$work/r_an" >"$work/r_base" >"$work/t_sf1" >"$work/t_base1" >"$work/t_ps" >"$work/r_ps"
for _ in $(seq 1 "$RUNS"); do
	a=$(once sf "$bin" "$work/noop.yaml"); echo "$a" >>"$work/t_sf"
	if [ -n "$BASE" ]; then b=$(once sf "$BASE" "$work/noop.yaml"); echo "$b" >>"$work/t_base"; ratio "$b" "$a" >>"$work/r_base"; fi
	p=$(once env ANSIBLE_CONFIG="$work/ansible.cfg" ansible-playbook -i "$work/hosts.ini" "$work/noop.playbook.yaml"); echo "$p" >>"$work/t_an"
	ratio "$p" "$a" >>"$work/r_an"
	a=$(once sf "$bin" "$work/true1.yaml"); echo "$a" >>"$work/t_sf1"
	if [ -n "$BASE" ]; then b=$(once sf "$BASE" "$work/true1.yaml"); echo "$b" >>"$work/t_base1"; fi
	p=$(once parallel-ssh -h "$work/pssh-hosts" -l root -p "$HOSTS" -x "-i $key -o UserKnownHostsFile=$kh -o StrictHostKeyChecking=yes" true); echo "$p" >>"$work/t_ps"
	ratio "$p" "$a" >>"$work/r_ps"
done
an=$(ansible-playbook --version 2>/dev/null | awk 'NR==1{gsub(/.*core |]/,""); print}')
printf '%-30s sealflow %-17s ansible-playbook %s %-17s -> %sx\n' "$STEPS no-op steps x $HOSTS hosts" "$(mmm <"$work/t_sf")s" "$an" "$(mmm <"$work/t_an")s" "$(med <"$work/r_an")"
[ -z "$BASE" ] || printf '%-30s BASE     %-17s (BASE/sealflow %sx)\n' "" "$(mmm <"$work/t_base")s" "$(med <"$work/r_base")"
printf '%-30s sealflow %-17s parallel-ssh %-17s -> %sx\n' "one true on $HOSTS hosts" "$(mmm <"$work/t_sf1")s" "$(mmm <"$work/t_ps")s" "$(med <"$work/r_ps")"
[ -z "$BASE" ] || printf '%-30s BASE     %-17s\n' "" "$(mmm <"$work/t_base1")s"
"$bin" lab down --name "$name" >/dev/null 2>&1 || true
name=
rm -rf "$work/lab"
done
