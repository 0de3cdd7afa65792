#!/usr/bin/env bash
# init.sh: prepares a host for kubeadm from the offline package (sealos style).
# Run as root from kube/shell on every host; running it again changes nothing.
#
#  1. installs kube/bin/* to /usr/bin (kubeadm, kube-apiserver, kube-controller-manager,
#     kube-scheduler, kubectl, etcd, etcdctl, kubelet, sealflow-svc);
#  2. loads kube/images/images.tar into the container runtime when one exists
#     (ctr, else docker), else says it skips them (the lab has no runtime: its
#     kubelet runs static pods as host processes);
#  3. writes /etc/sysctl.d/k8s.conf and applies it where the kernel allows;
#  4. installs the kubelet service as kubeadm expects it: /etc/systemd/system/kubelet.service,
#     kubelet.service.d/10-kubeadm.conf, /etc/default/kubelet (when absent), and enables it.
#     Without systemd (no /run/systemd/system) the service manager is sealflow-svc,
#     and a systemctl shim for it is installed as /usr/local/bin/systemctl (ahead of
#     /usr/bin on PATH) so that kubeadm's `systemctl restart kubelet` works.
#
# What it creates is listed in /var/lib/sealflow-kube/created (files it replaced are
# kept in /var/lib/sealflow-kube/backup), which clean.sh undoes.
set -euo pipefail

pkg=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
state=/var/lib/sealflow-kube
record=$state/created

say() { echo "init.sh: $*"; }
die() { echo "init.sh: error: $*" >&2; exit 1; }

[ "$(id -u)" = 0 ] || die "run as root"
for b in kubeadm kube-apiserver kube-controller-manager kube-scheduler kubectl etcd etcdctl kubelet sealflow-svc systemctl; do
	[ -x "$pkg/bin/$b" ] || die "$pkg/bin/$b is missing: is this the unpacked package (run from kube/shell)?"
done

# mkd DIR: mkdir -p, recording the directories it creates (parents first).
mkd() {
	local d=$1 missing=()
	while [ ! -d "$d" ]; do
		missing=("$d" "${missing[@]}")
		d=$(dirname "$d")
	done
	for d in "${missing[@]}"; do
		mkdir -m 0755 "$d"
		[ "$d" = "$state" ] || echo "$d" >>"$record"
	done
}

# put SRC DST MODE: install a file (only when it differs), recording DST. A file
# that was there before the package (e.g. another kubectl) is kept in
# $state/backup for clean.sh to put back.
put() {
	local src=$1 dst=$2 mode=$3
	mkd "$(dirname "$dst")"
	if ! grep -qxF "$dst" "$record" 2>/dev/null; then
		if [ -e "$dst" ] || [ -L "$dst" ]; then
			mkdir -p "$state/backup$(dirname "$dst")"
			cp -a "$dst" "$state/backup$dst"
		fi
		echo "$dst" >>"$record"
	fi
	if ! cmp -s "$src" "$dst"; then
		install -m "$mode" "$src" "$dst.sealflow-new"
		mv -f "$dst.sealflow-new" "$dst"
	fi
}

mkd "$state"
touch "$record"

# 1. Binaries.
for b in kubeadm kube-apiserver kube-controller-manager kube-scheduler kubectl etcd etcdctl kubelet sealflow-svc; do
	put "$pkg/bin/$b" "/usr/bin/$b" 0755
done
say "installed $(/usr/bin/kubeadm version -o short) binaries to /usr/bin"

# 2. Images.
images=$pkg/images/images.tar
if [ ! -s "$images" ] || [ -z "$(tar -tf "$images" 2>/dev/null | head -n1)" ]; then
	say "no images in the package ($images is empty): nothing to load"
elif command -v ctr >/dev/null; then
	ctr -n k8s.io images import "$images" >/dev/null
	say "loaded images with ctr"
elif command -v docker >/dev/null; then
	docker load -i "$images" >/dev/null
	say "loaded images with docker"
else
	say "no container runtime (ctr, docker): skipped loading images"
fi

# 3. Kernel settings.
put "$pkg/conf/sysctl.conf" /etc/sysctl.d/k8s.conf 0644
if sysctl -e -q -p /etc/sysctl.d/k8s.conf 2>/dev/null; then
	say "applied /etc/sysctl.d/k8s.conf"
else
	say "applied what the kernel allows of /etc/sysctl.d/k8s.conf"
fi

# 4. The kubelet service.
put "$pkg/conf/kubelet.service" /etc/systemd/system/kubelet.service 0644
put "$pkg/conf/10-kubeadm.conf" /etc/systemd/system/kubelet.service.d/10-kubeadm.conf 0644
if [ ! -e /etc/default/kubelet ] || grep -qxF /etc/default/kubelet "$record"; then
	put "$pkg/conf/kubelet.env" /etc/default/kubelet 0644
fi
if [ -d /run/systemd/system ]; then
	systemctl daemon-reload
	systemctl enable kubelet >/dev/null 2>&1
	say "kubelet service installed and enabled (systemd)"
else
	shim=/usr/local/bin/systemctl
	if [ -e "$shim" ] && ! grep -q '^# sealflow-kube systemctl shim' "$shim"; then
		die "$shim exists and is not the package's shim: not replacing it"
	fi
	put "$pkg/bin/systemctl" "$shim" 0755
	mkd /etc/systemd/system/multi-user.target.wants
	sealflow-svc enable kubelet >/dev/null
	grep -qxF /etc/systemd/system/multi-user.target.wants/kubelet.service "$record" ||
		echo /etc/systemd/system/multi-user.target.wants/kubelet.service >>"$record"
	say "kubelet service installed and enabled (no systemd: sealflow-svc, systemctl shim $shim)"
fi
say "done"
