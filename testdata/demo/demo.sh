#!/usr/bin/env bash
# make demo: an HA Kubernetes cluster from the offline package on a lab of
# 3 masters and 2 workers (namespaces with real sshd; real kubeadm,
# apiserver, controller-manager, scheduler and etcd; a stand-in kubelet),
# workers reaching the masters through the VIP kept by lvscare; one master's
# apiserver stopped while the cluster keeps answering; the lab removed.
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
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
on() { "$bin" lab exec "$name" "$@"; }

step "the offline package (built once from the Go module proxy, then cached)"
pkg=$(bash testdata/kube/build.sh | tail -n 1)
ls -lh "$pkg"

step "lab up: 3 masters, 2 workers"
"$bin" lab up --name "$name" --masters 3 --nodes 2 --dir "$work/lab"
vip=10.255.255.253

step "sealflow run ha (kubeadm preflight skipped: it pulls images through a container runtime, which the lab has not)"
"$bin" run --output plain --state "$work/state" \
	-i "$work/lab/inventory.yaml" --known-hosts "$work/lab/known_hosts" \
	--set pkg="$pkg" --set version=v1.34.4 --set skip_phases=preflight --set verify=false --set cni_manifest= ha

step "kubectl get nodes (on m1)"
for _ in $(seq 1 60); do
	[ "$(on m1 -- kubectl --kubeconfig /etc/kubernetes/admin.conf get nodes --no-headers 2>/dev/null | grep -cw Ready)" = 5 ] && break
	sleep 2
done
on m1 -- kubectl --kubeconfig /etc/kubernetes/admin.conf get nodes -o wide

step "the VIP on worker n1: lvscare's rules"
on n1 -- sealflow lvscare status --vs $vip:6443
on n1 -- nft list table ip lvscare | head -n 30

on m1 -- cat /etc/kubernetes/admin.conf | on n1 -- sh -c 'cat > /root/admin.conf'
via_vip() { on n1 -- kubectl --kubeconfig /root/admin.conf --server https://$vip:6443 --request-timeout 3s "$@"; }

step "stop m1's apiserver (its static pod manifest moved away)"
on m1 -- mv /etc/kubernetes/manifests/kube-apiserver.yaml /root/
for _ in $(seq 1 30); do
	on n1 -- sealflow lvscare status --vs $vip:6443 | grep -q "$(sed -n 's/.*name: m1, address: \([0-9.]*\).*/\1/p' "$work/lab/inventory.yaml"):6443" || break
	sleep 1
done
on n1 -- sealflow lvscare status --vs $vip:6443

step "the cluster still answers through the VIP (from n1)"
via_vip get nodes

step "a second run changes nothing"
"$bin" run --output plain --state "$work/state" \
	-i "$work/lab/inventory.yaml" --known-hosts "$work/lab/known_hosts" \
	--set pkg="$pkg" --set version=v1.34.4 --set skip_phases=preflight --set verify=false --set cni_manifest= ha | tail -n 2

step "lab down"
"$bin" lab down --name "$name"
printf '\ndemo took %ss\n' "$(($(date +%s) - start))"
