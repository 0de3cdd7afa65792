#!/usr/bin/env bash
# clean.sh: undoes init.sh (run as root; for a node of a cluster, after `kubeadm reset -f`).
# Running it again changes nothing. It removes only what init.sh or the cluster made:
#  1. stops and disables the kubelet, removes every pod and container of the CRI namespace
#     (crictl rmp -af, then ctr tasks/containers), and the images (all of them in
#     namespace k8s.io with the package's containerd; with SEALFLOW_RUNTIME=existing only
#     those init.sh imported), then stops and disables the package's containerd;
#  2. unmounts what is left under /var/lib/kubelet, /var/lib/containerd, /run/containerd,
#     /run/netns/cni-*;
#  3. network: the CNI's links (cni0's veths, cni0, flannel.1, flannel-v6.1), kube-proxy's
#     nftables tables, the KUBE-/FLANNEL-/CNI- iptables chains and the jumps into them,
#     IPVS rules (ipvsadm -C) and kube-ipvs0;
#  4. the Kubernetes and containerd state directories (/etc/kubernetes, /var/lib/kubelet,
#     /var/lib/etcd, /etc/cni, /var/lib/cni, /var/lib/containerd, /run/containerd, ...)
#     unless they were there before init.sh;
#  5. swap lines of /etc/fstab back (and swapon of the swaps that were on), sysctl values
#     back, every file init.sh installed removed (a file it replaced put back), the
#     directories it made removed, systemd reloaded.
set -uo pipefail

state=/var/lib/sealflow-kube
record=$state/created

say() { echo "clean.sh: $*"; }
warn() { echo "clean.sh: warning: $*" >&2; }
[ "$(id -u)" = 0 ] || {
	echo "clean.sh: error: run as root" >&2
	exit 1
}
if [ ! -f "$record" ]; then
	say "nothing to do: no $record (init.sh did not run here, or clean.sh already undid it)"
	exit 0
fi
runtime=$(cat "$state/runtime" 2>/dev/null || echo own)
own_state=0
grep -qxF -- "$state" "$record" && own_state=1
preexisting() { grep -qxF -- "$1" "$state/preexisting" 2>/dev/null; }

if [ -d /run/systemd/system ]; then
	manager=systemd
elif command -v systemctl >/dev/null && systemctl daemon-reload >/dev/null 2>&1; then
	manager=systemctl
else
	manager=none
fi

# --- 1. kubelet, pods, containers, images, containerd ---
if [ "$manager" != none ]; then
	systemctl stop kubelet >/dev/null 2>&1 || :
	systemctl disable kubelet >/dev/null 2>&1 || :
fi

if [ "$runtime" = own ]; then
	sock=/run/containerd/containerd.sock ctr=/usr/local/bin/ctr
else
	sock=$(sed -n 's|^runtime-endpoint: unix://||p' /etc/crictl.yaml 2>/dev/null)
	sock=${sock:-/run/containerd/containerd.sock}
	# As init.sh: the host's ctr, else the package's (clean.sh is in kube/shell).
	ctr=$(command -v ctr 2>/dev/null) || ctr=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/bin/ctr
fi
crictl=$(command -v crictl 2>/dev/null) || crictl=/usr/local/bin/crictl
k8s() { "$ctr" --address "$sock" -n k8s.io "$@"; }
if [ -x "$ctr" ] && k8s version >/dev/null 2>&1; then
	if [ -x "$crictl" ]; then
		"$crictl" --runtime-endpoint "unix://$sock" rmp -af >/dev/null 2>&1 || :
	fi
	for t in $(k8s tasks ls -q 2>/dev/null); do k8s tasks kill -s SIGKILL "$t" >/dev/null 2>&1 || :; done
	sleep 0.2
	for t in $(k8s tasks ls -q 2>/dev/null); do k8s tasks rm -f "$t" >/dev/null 2>&1 || :; done
	for c in $(k8s containers ls -q 2>/dev/null); do k8s containers rm "$c" >/dev/null 2>&1 || :; done
	if [ "$runtime" = own ]; then
		imgs=$(k8s images ls -q 2>/dev/null)
	else
		imgs=$(cat "$state/images" 2>/dev/null)
	fi
	for i in $imgs; do k8s images rm "$i" >/dev/null 2>&1 || :; done
	[ -z "$imgs" ] || say "removed $(echo "$imgs" | wc -w) images from namespace k8s.io"
fi
# The kubelet's pod slices (systemd cgroup driver) outlive their pods.
if [ "$manager" = systemd ]; then systemctl stop kubepods.slice >/dev/null 2>&1 || :; fi
if [ "$runtime" = own ]; then
	if [ "$manager" != none ]; then
		systemctl stop containerd >/dev/null 2>&1 || :
		systemctl disable containerd >/dev/null 2>&1 || :
	fi
	# The package's containerd and its shims, when no service manager stopped them.
	ours() {
		local p exe
		for p in /proc/[0-9]*; do
			exe=$(readlink "$p/exe" 2>/dev/null) || continue
			case ${exe% (deleted)} in
			/usr/local/bin/containerd | /usr/local/bin/containerd-shim-runc-v2) echo "${p#/proc/}" ;;
			esac
		done
	}
	pids=$(ours)
	if [ -n "$pids" ]; then
		say "stopping the package's containerd processes still running: $(echo "$pids" | tr '\n' ' ')"
		# shellcheck disable=SC2086 # a list of pids
		kill -TERM $pids 2>/dev/null
		for _ in $(seq 50); do
			[ -n "$(ours)" ] || break
			sleep 0.1
		done
		pids=$(ours)
		# shellcheck disable=SC2086
		[ -z "$pids" ] || kill -KILL $pids 2>/dev/null
	fi
fi

# --- 2. mounts ---
# mounts REGEX: mount points (field 5 of mountinfo, octal escapes decoded) matching
# REGEX, deepest first.
mounts() {
	awk '{ print $5 }' /proc/self/mountinfo | while IFS= read -r m; do printf '%b\n' "$m"; done |
		grep -E "$1" | sort -r
}
# Below the state directories only: one of them may be a file system of its own (a disk for
# the kubelet or containerd), which stays mounted.
mounts '^((/var/lib/kubelet|/var/lib/containerd|/run/containerd)/|/run/netns/cni-)' | while IFS= read -r m; do
	umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || warn "could not unmount $m"
done
rm -f /run/netns/cni-* 2>/dev/null || :
if ! preexisting /run/netns; then rmdir /run/netns 2>/dev/null || :; fi

# --- 3. network ---
if command -v ip >/dev/null; then
	for l in $(ip -o link show master cni0 2>/dev/null | awk -F': ' '{ print $2 }' | sed 's/@.*//'); do
		ip link delete "$l" 2>/dev/null || :
	done
	for l in cni0 flannel.1 flannel-v6.1 kube-ipvs0; do
		ip link show "$l" >/dev/null 2>&1 && ip link delete "$l" && say "removed link $l"
	done
fi
if command -v nft >/dev/null; then
	for t in "ip kube-proxy" "ip6 kube-proxy" "ip flannel-ipv4" "ip6 flannel-ipv6"; do
		# shellcheck disable=SC2086 # family and name
		nft list table $t >/dev/null 2>&1 && nft delete table $t && say "removed nftables table $t"
	done
fi
# iptables: the rules of other chains that jump to KUBE-*, FLANNEL-*, CNI-* chains, then
# those chains, through iptables-restore --noflush (no rule is re-parsed by the shell).
for v in iptables ip6tables; do
	if ! command -v "$v-save" >/dev/null || ! command -v "$v-restore" >/dev/null; then continue; fi
	for t in filter nat mangle raw; do
		rules=$("$v-save" -t "$t" 2>/dev/null) || continue
		own='^(KUBE|FLANNEL|CNI)-'
		script=$(awk -v own="$own" -v table="$t" '
			/^:/ { c = substr($1, 2); if (c ~ own) chains[++n] = c; next }
			/^-A / { if ($2 !~ own && $0 ~ "-j (KUBE|FLANNEL|CNI)-") { sub(/^-A /, "-D "); del[++d] = $0 } }
			END {
				if (n + d == 0) exit
				print "*" table
				for (i = 1; i <= d; i++) print del[i]
				for (i = 1; i <= n; i++) print "-F " chains[i]
				for (i = 1; i <= n; i++) print "-X " chains[i]
				print "COMMIT"
			}' <<<"$rules")
		[ -n "$script" ] || continue
		if "$v-restore" --noflush <<<"$script"; then
			say "removed Kubernetes/CNI chains of $v table $t"
		else
			warn "could not remove the Kubernetes/CNI chains of $v table $t"
		fi
	done
done
# The tables iptables-nft made for kube-proxy and the CNI (filter, nat, mangle, raw of ip
# and ip6) once they hold no rule: only those that were not there before init.sh.
if command -v nft >/dev/null && [ -f "$state/nft-tables" ]; then
	nft list tables 2>/dev/null | while read -r _ fam name; do
		case "$fam $name" in "ip "* | "ip6 "*) ;; *) continue ;; esac
		case $name in filter | nat | mangle | raw | security) ;; *) continue ;; esac
		grep -qxF -- "table $fam $name" "$state/nft-tables" && continue
		rules=$(nft list table "$fam" "$name" 2>/dev/null | awk '
			/^[[:space:]]*(table|chain) .*\{$/ || /^[[:space:]]*type .* hook / || /^[[:space:]]*\}$/ || /^[[:space:]]*$/ { next }
			{ n++ } END { print n + 0 }')
		if [ "$rules" = 0 ]; then
			nft delete table "$fam" "$name" && say "removed the empty nftables table $fam $name (iptables-nft's)"
		fi
	done
fi
if command -v ipvsadm >/dev/null && [ -n "$(ipvsadm -Sn 2>/dev/null)" ]; then
	ipvsadm -C && say "cleared the IPVS rules"
fi

# --- 4. state directories ---
dirs=(/etc/kubernetes /var/lib/kubelet /var/lib/etcd /etc/cni /var/lib/cni /var/log/pods
	/var/log/containers /run/flannel /usr/libexec/kubernetes)
# containerd's: its state, its NRI socket (/run/nri), its /opt directory.
[ "$runtime" = own ] && dirs+=(/var/lib/containerd /run/containerd /run/nri /opt/containerd)
for d in "${dirs[@]}"; do
	[ -e "$d" ] || continue
	if preexisting "$d" && grep -qxF -- "$d" "$state/preexisting-empty" 2>/dev/null; then
		if [ -n "$(mounts "^$d/")" ]; then
			warn "kept what is in $d: still mounted under it: $(mounts "^$d/" | tr '\n' ' ')"
		else
			find "$d" -mindepth 1 -maxdepth 1 -exec rm -rf -- {} + && say "emptied $d (it was empty before init.sh)"
		fi
	elif preexisting "$d"; then
		say "kept $d: it was there before init.sh"
	elif [ -n "$(mounts "^$d(/|\$)")" ]; then
		# Never rm -rf through a mount (a pod's volume may be a host directory).
		warn "kept $d: still mounted under it: $(mounts "^$d(/|\$)" | tr '\n' ' ')"
	else
		rm -rf "$d" && say "removed $d"
	fi
done

# The CNI plugin flannel's DaemonSet copies into /opt/cni/bin, when init.sh made that directory.
if grep -qxF /opt/cni/bin "$record"; then rm -f /opt/cni/bin/flannel; fi

# --- 5. fstab, swap, sysctl, files ---
marker='#sealflow-kube# '
if [ -f /etc/fstab ] && grep -qF "$marker" /etc/fstab; then
	tmp=$(mktemp)
	awk -v m="$marker" 'index($0, m) == 1 { print substr($0, length(m) + 1); next } { print }' /etc/fstab >"$tmp"
	cat "$tmp" >/etc/fstab
	rm -f "$tmp"
	say "put back the swap lines of /etc/fstab"
fi
if [ -f "$state/swaps" ]; then
	while IFS= read -r s; do
		[ -n "$s" ] || continue
		if swapon "$s" 2>/dev/null; then say "swap on: $s"; else warn "could not turn swap on: $s"; fi
	done <"$state/swaps"
fi
if [ -f "$state/sysctl" ]; then
	while read -r key old; do
		[ -n "$key" ] || continue
		sysctl -q -w "$key=$old" >/dev/null 2>&1 || warn "could not put back $key=$old"
	done <"$state/sysctl"
fi

tac "$record" | while IFS= read -r p; do
	[ -n "$p" ] || continue
	[ "$p" != "$state" ] || continue
	if [ -e "$state/backup$p" ] || [ -L "$state/backup$p" ]; then
		rm -rf "$p"
		mv -f "$state/backup$p" "$p"
		say "put back $p as it was before init.sh"
	elif [ -d "$p" ] && [ ! -L "$p" ]; then
		rmdir "$p" 2>/dev/null || warn "kept $p: it holds files init.sh did not put there"
	else
		rm -f "$p"
	fi
done
if [ "$manager" != none ]; then systemctl daemon-reload >/dev/null 2>&1 || :; fi

rm -rf "$state/backup"
rm -f "$record" "$state/runtime" "$state/preexisting" "$state/preexisting-empty" "$state/nft-tables" "$state/fstab-swap" "$state/swaps" "$state/sysctl" "$state/images"
if [ "$own_state" = 1 ]; then
	rmdir "$state" 2>/dev/null || warn "kept $state: it holds files clean.sh does not know"
fi
say "done: the host is as it was before init.sh"
