#!/usr/bin/env bash
# clean.sh: undoes init.sh (run as root, after `kubeadm reset -f` for a host of a
# cluster). It stops the kubelet service and every process of a static pod the
# kubelet ran (found by the SEALFLOW_STANDIN_POD variable in their environment, so
# also after kubeadm reset removed the kubelet's pid files); removes what init.sh
# created (listed in /var/lib/sealflow-kube/created: binaries, unit, drop-in, env,
# sysctl and shim files, the directories it made) and puts back a file it replaced;
# removes the kubelet's state and logs (/var/lib/kubelet, /var/log/pods,
# /var/log/kubelet.log) and what kubeadm reset leaves: empty directories under
# /etc/kubernetes and /usr/libexec/kubernetes, and /var/lib/etcd once no etcd
# manifest is left. A directory that still holds files is kept, with a warning.
# Running it again changes nothing.
set -euo pipefail

state=/var/lib/sealflow-kube
record=$state/created

say() { echo "clean.sh: $*"; }
[ "$(id -u)" = 0 ] || { echo "clean.sh: error: run as root" >&2; exit 1; }

# 1. The kubelet service.
if command -v sealflow-svc >/dev/null && [ ! -d /run/systemd/system ]; then
	sealflow-svc stop kubelet
	sealflow-svc disable kubelet >/dev/null || :
elif [ -d /run/systemd/system ] && command -v systemctl >/dev/null; then
	systemctl stop kubelet 2>/dev/null || :
	systemctl disable kubelet >/dev/null 2>&1 || :
fi
rm -rf /run/sealflow-svc

# 2. Static pod processes.
standin_pids() {
	local e p
	for e in /proc/[0-9]*/environ; do
		p=${e#/proc/} p=${p%/environ}
		[ "$p" != $$ ] || continue
		if { tr '\0' '\n' <"$e"; } 2>/dev/null | grep -q '^SEALFLOW_STANDIN_POD='; then echo "$p"; fi
	done
}
pids=$(standin_pids)
if [ -n "$pids" ]; then
	say "stopping static pod processes: $(echo $pids)"
	kill -TERM $pids 2>/dev/null || :
	for _ in $(seq 300); do
		pids=$(standin_pids)
		[ -n "$pids" ] || break
		sleep 0.1
	done
	if [ -n "$pids" ]; then
		say "killing static pod processes still running: $(echo $pids)"
		kill -KILL $pids 2>/dev/null || :
		sleep 0.2
	fi
fi

# 3. What init.sh created, newest first.
if [ -f "$record" ]; then
	tac "$record" | while IFS= read -r p; do
		[ -n "$p" ] || continue
		if [ -d "$p" ] && [ ! -L "$p" ]; then
			rmdir "$p" 2>/dev/null || say "kept $p: not empty"
		elif [ -e "$state/backup$p" ] || [ -L "$state/backup$p" ]; then
			mv -f "$state/backup$p" "$p"
			say "put back the $p that was there before init.sh"
		else
			rm -f "$p"
		fi
	done
	rm -f "$record"
	rm -rf "$state/backup"
else
	say "no $record: init.sh did not run here (or clean.sh already undid it)"
fi
rmdir "$state" 2>/dev/null || :

# 4. The kubelet's state and logs; what kubeadm reset leaves behind.
rm -rf /var/lib/kubelet /var/log/pods /var/log/kubelet.log
# etcd's data dir: kubeadm reset empties it, but here the static pods' processes
# outlive the reset (there is no runtime for it to remove them) and etcd may have
# written to it since. Without an etcd manifest nothing uses it any more.
if [ -d /var/lib/etcd ] && [ ! -e /etc/kubernetes/manifests/etcd.yaml ]; then
	rm -rf /var/lib/etcd
fi
# /usr/libexec/kubernetes: the controller-manager makes its FlexVolume plugin dir.
for d in /etc/kubernetes /var/lib/etcd /usr/libexec/kubernetes; do
	[ -d "$d" ] || continue
	find "$d" -depth -type d -empty -delete
	if [ -d "$d" ]; then say "kept $d: it holds files (run kubeadm reset -f first)"; fi
done
say "done"
