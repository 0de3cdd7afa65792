#!/usr/bin/env bash
# The HA cluster on the real node stack: time from `sealflow run ha` to every
# node Ready and to the verify step passed, memory per master and per worker,
# CPU of idle nodes. A lab of 3 masters + 2 workers (--kube-node), the cached
# package; the lab is removed at the end.
set -euo pipefail
cd "$(dirname "$0")/../.."

bin=$PWD/bin/sealflow
name=bench$$
work=$(mktemp -d /var/tmp/sealflow-bench.XXXXXX)
cleanup() {
	[ -z "${poller:-}" ] || kill "$poller" 2>/dev/null || true
	"$bin" lab down --name "$name" >/dev/null 2>&1 || true
	rm -rf "$work"
}
trap cleanup EXIT
on() { "$bin" lab exec "$name" "$@"; }

pkg=$(bash testdata/kube/package.sh 2>/dev/null | tail -n 1)
lvscare_image=$("$bin" package inspect --json "$pkg" | tr ',{}' '\n\n\n' | sed -n 's/^ *"ref": *"\(docker.io\/sealflow\/sealflow:[^"]*\)".*/\1/p' | head -n 1)
"$bin" lab up --quiet --name "$name" --masters 3 --nodes 2 --kube-node --dir "$work/lab" >/dev/null

now() { date +%s.%N; }
# The first moment every node is Ready, polled from m1 once it has a cluster.
(
	set +e +o pipefail # kubectl fails until kubeadm init is done
	while :; do
		n=$(on m1 -- kubectl --kubeconfig /etc/kubernetes/admin.conf --request-timeout 5s get nodes --no-headers 2>/dev/null | awk '$2 == "Ready"' | wc -l)
		if [ "$n" = 5 ]; then now >"$work/ready"; exit 0; fi
		sleep 1
	done
) &
poller=$!
start=$(now)
"$bin" run --output plain --state "$work/state" -i "$work/lab/inventory.yaml" --known-hosts "$work/lab/known_hosts" \
	--set pkg="$pkg" --set version=v1.34.4 --set lvscare_image="$lvscare_image" ha >"$work/run.log"
end=$(now)
wait "$poller" || true
poller=
ready=$(cat "$work/ready" 2>/dev/null || echo "$end")
verify=$(grep -c ' ok' "$work/state/logs/verify/m1.log" || true)
printf 'run ha, 3 masters + 2 workers: all nodes Ready after %.0f s, verify passed (%s checks) after %.0f s\n' \
	"$(echo "$ready - $start" | bc)" "$verify" "$(echo "$end - $start" | bc)"

# Memory: each host's memory cgroup (the root of its cgroup namespace): rss + page cache.
mem() { on "$1" -- sh -c "awk '/^total_rss /{r=\$2} /^total_cache /{c=\$2} END{printf \"%d MiB (rss %d, cache %d)\", (r+c)/1048576, r/1048576, c/1048576}' /sys/fs/cgroup/memory/memory.stat"; }
for h in m1 m2 m3 n1 n2; do printf 'memory of %s: %s\n' "$h" "$(mem "$h")"; done

# CPU of idle nodes: cpuacct of the host's tree over 30 s, after a minute's rest.
sleep 60
usage() { on "$1" -- cat /sys/fs/cgroup/cpuacct/cpuacct.usage; }
declare -A u0
for h in m1 n1; do u0[$h]=$(usage "$h"); done
t0=$(now)
sleep 30
t1=$(now)
for h in m1 n1; do
	u1=$(usage "$h")
	printf 'idle CPU of %s: %.1f %% of one core\n' "$h" "$(echo "($u1 - ${u0[$h]}) / ($t1 - $t0) / 10000000" | bc -l)"
done
