#!/usr/bin/env bash
# make demo: an HA Kubernetes cluster from the offline package on a lab of
# 3 masters and 2 workers (network namespaces with systemd, real sshd,
# containerd, runc, the kubelet; flannel, kube-proxy, CoreDNS), workers
# reaching the masters through the VIP kept by lvscare; the plan's verify
# table; one master's apiserver stopped while the cluster keeps answering;
# the lab removed.
set -euo pipefail
cd "$(dirname "$0")/../.."

if [ "$(id -u)" != 0 ]; then
	echo "make demo needs root (it creates network namespaces)" >&2
	exit 2
fi
bash testdata/ci/deps.sh

start=$(date +%s)
bin=$PWD/bin/sealflow
name=demo$$
work=$(mktemp -d /var/tmp/sealflow-demo.XXXXXX)
cleanup() {
	"$bin" lab down --name "$name" >/dev/null 2>&1 || true
	rm -rf "$work"
}
trap cleanup EXIT
step() { printf '\n\033[1m== %s\033[0m (%ss)\n' "$*" "$(($(date +%s) - start))"; }
on() { "$bin" lab exec "$name" "$@"; }
kc() { on m1 -- kubectl --kubeconfig /etc/kubernetes/admin.conf "$@"; }

step "the offline package: sealflow package build (cold: about 30 minutes to build upstream's artifacts here; then cached)"
pkg=$(bash testdata/kube/package.sh | tail -n 1)
"$bin" package inspect "$pkg" | head -n 12
lvscare_image=$("$bin" package inspect --json "$pkg" | tr ',{}' '\n\n\n' | sed -n 's/^ *"ref": *"\(docker.io\/sealflow\/sealflow:[^"]*\)".*/\1/p' | head -n 1)

step "lab up: 3 masters, 2 workers, each a fresh machine with systemd"
"$bin" lab up --name "$name" --masters 3 --nodes 2 --kube-node --dir "$work/lab"
echo "the lab's own settings, in its inventory (this kernel has no IPVS, cgroups v1):"
sed -n '/^vars:/,$p' "$work/lab/inventory.yaml"
vip=10.255.255.253

step "sealflow run ha (every kubeadm preflight check on)"
"$bin" run --output plain --state "$work/state" \
	-i "$work/lab/inventory.yaml" --known-hosts "$work/lab/known_hosts" \
	--set pkg="$pkg" --set version=v1.34.4 --set lvscare_image="$lvscare_image" ha

step "the verify step's table"
cat "$work/state/logs/verify/m1.log"

step "kubectl get nodes -o wide; kubectl get pods -A -o wide (on m1)"
kc get nodes -o wide
kc get pods -A -o wide

step "the VIP on worker n1: lvscare's rules"
on n1 -- sealflow lvscare status --vs $vip:6443

on m1 -- cat /etc/kubernetes/admin.conf | on n1 -- sh -c 'cat > /root/admin.conf'
via_vip() { on n1 -- kubectl --kubeconfig /root/admin.conf --server https://$vip:6443 --request-timeout 5s "$@"; }

step "stop m1's apiserver (its static pod manifest moved away)"
m1=$(sed -n 's/.*name: m1, address: \([0-9.]*\).*/\1/p' "$work/lab/inventory.yaml")
on m1 -- mv /etc/kubernetes/manifests/kube-apiserver.yaml /root/
for _ in $(seq 1 60); do
	on n1 -- sealflow lvscare status --vs $vip:6443 | grep -q "$m1:6443" || break
	sleep 1
done
on n1 -- sealflow lvscare status --vs $vip:6443

step "the cluster still answers through the VIP (from n1)"
via_vip get nodes
on m1 -- mv /root/kube-apiserver.yaml /etc/kubernetes/manifests/
for _ in $(seq 1 90); do
	[ "$(kc get --raw /readyz 2>/dev/null)" = ok ] && break
	sleep 1
done

step "a second run changes nothing"
"$bin" run --output plain --state "$work/state" \
	-i "$work/lab/inventory.yaml" --known-hosts "$work/lab/known_hosts" \
	--set pkg="$pkg" --set version=v1.34.4 --set lvscare_image="$lvscare_image" ha | tail -n 2

step "lab down"
"$bin" lab down --name "$name"
"$bin" report --state "$work/state" -o bin/demo-report.html >/dev/null # $work goes at exit; bin/ stays
printf '\nthe run as a page (open it in a browser): %s\n' "$PWD/bin/demo-report.html"
printf '\ndemo took %ss\n' "$(($(date +%s) - start))"
