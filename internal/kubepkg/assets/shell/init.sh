#!/usr/bin/env bash
# init.sh: makes this host a node kubeadm can init or join, from the unpacked offline
# package (run as root; it finds the package from its own path, kube/shell/init.sh).
# Running it again changes nothing (and says so). clean.sh undoes it.
#
# What it does (assets/README.md has the full list of paths):
#  1. checks the package (manifest.json: architecture, file checksums) and the host's
#     container runtime: docker or a containerd it did not install stop it, unless
#     SEALFLOW_RUNTIME=existing (then that containerd is used and none is installed);
#  2. installs containerd, ctr, the shim, crictl (/usr/local/bin) and runc (/usr/local/sbin)
#     as containerd's and runc's upstream docs do, kubeadm, kubelet, kubectl (/usr/bin, as
#     kubeadm's packages do), the CNI plugins (/opt/cni/bin);
#  3. writes /etc/containerd/config.toml (sandbox image = the package's pause, cgroup
#     driver = systemd where systemd is PID 1, else cgroupfs), containerd.service,
#     kubelet.service + kubeadm's drop-in, /etc/crictl.yaml;
#  4. kernel: /etc/modules-load.d/k8s.conf (loaded now where possible), /etc/sysctl.d/k8s.conf
#     (applied), swap off now and in /etc/fstab;
#  5. starts containerd and enables the kubelet (systemd, else a working `systemctl`, else
#     it says who has to start them), then imports the package's images and pins them.
#
# Environment:
#   SEALFLOW_RUNTIME=existing      use the host's containerd (the plan's `runtime: existing`)
#   SEALFLOW_CONTAINERD_EXTRA=TOML written as /etc/containerd/conf.d/90-sealflow-extra.toml
#                                  (imported by config.toml; e.g. a lab's
#                                  [plugins.'io.containerd.cri.v1.runtime'] restrict_oom_score_adj = true)
#   SEALFLOW_CONTAINERD_SOCKET     the existing containerd's socket (default /run/containerd/containerd.sock)
#
# Bookkeeping in /var/lib/sealflow-kube: `created` lists every file and directory it made
# or replaced, `backup/` keeps what it replaced, `fstab-swap` the swap lines it commented,
# `sysctl` the values it changed, `images` the images it imported, `runtime` own|existing,
# `preexisting` the Kubernetes state directories that were there before it.
set -Eeuo pipefail
umask 022
trap 'echo "init.sh: error: line $LINENO: \"$BASH_COMMAND\" failed" >&2' ERR

pkg=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
state=/var/lib/sealflow-kube
record=$state/created
changed=0

say() { echo "init.sh: $*"; }
warn() { echo "init.sh: warning: $*" >&2; }
die() {
	echo "init.sh: error: $*" >&2
	exit 1
}

[ "$(id -u)" = 0 ] || die "run as root"
manifest=$pkg/manifest.json
[ -f "$manifest" ] || die "$manifest is missing: is this the unpacked package (run kube/shell/init.sh)?"

# --- manifest.json, read without jq: the objects of "files" and "images" are flat. ---
json=$(tr -d '\n\r' <"$manifest")
# jstr KEY TEXT: the string value of KEY in TEXT (the first one).
jstr() { printf '%s' "$2" | grep -o "\"$1\"[[:space:]]*:[[:space:]]*\"[^\"]*\"" | head -n1 | sed 's/.*:[[:space:]]*"//; s/"$//'; }
# jobjects KEY: every flat {...} object of the manifest that has KEY.
jobjects() { printf '%s' "$json" | grep -o "{[^{}]*\"$1\"[^{}]*}" || :; }

kube_version=$(jstr kubernetes "$json")
pkg_arch=$(jstr arch "$json")
case $(uname -m) in
x86_64) host_arch=amd64 ;;
aarch64 | arm64) host_arch=arm64 ;;
ppc64le) host_arch=ppc64le ;;
s390x) host_arch=s390x ;;
*) host_arch=$(uname -m) ;;
esac
[ -z "$pkg_arch" ] || [ "$pkg_arch" = "$host_arch" ] ||
	die "the package is for $pkg_arch, this host is $host_arch"

# fullref REF: the name containerd knows an image by (Docker's rules: docker.io/library/x:tag).
fullref() {
	local r=$1 first=${1%%/*}
	case $r in
	*/*) case $first in *.* | *:* | localhost) ;; *) r=docker.io/$r ;; esac ;;
	*) r=docker.io/library/$r ;;
	esac
	case $r in index.docker.io/*) r=docker.io/${r#index.docker.io/} ;; esac
	local last=${r##*/}
	case $last in *:* | *@*) ;; *) r=$r:latest ;; esac
	printf '%s' "$r"
}

# The images: "REF DIGEST" lines. The pause image is the one whose repository ends in /pause.
images_list=$(jobjects ref | while IFS= read -r o; do
	printf '%s %s\n' "$(fullref "$(jstr ref "$o")")" "$(jstr digest "$o")"
done)
pause=
while read -r ref _; do
	[ -n "$ref" ] || continue
	repo=${ref%%@*}
	case ${repo##*/} in *:*) repo=${repo%:*} ;; esac
	case $repo in */pause) pause=$ref ;; esac
done <<<"$images_list"
[ -n "$pause" ] || die "manifest.json names no pause image (an image whose repository ends in /pause)"

# The package's files against their checksums.
sums=$(jobjects path | while IFS= read -r o; do
	sum=$(jstr sha256 "$o") path=$(jstr path "$o")
	[ -z "$sum" ] || [ -z "$path" ] || printf '%s  %s\n' "$sum" "$path"
done)
if [ -n "$sums" ]; then
	(cd "$pkg" && sha256sum --quiet -c - <<<"$sums" >/dev/null 2>&1) ||
		die "files of the package do not match manifest.json's checksums: $(cd "$pkg" && sha256sum --quiet -c - <<<"$sums" 2>&1 | head -n3 | tr '\n' ' ')"
fi

# --- bookkeeping helpers ---
recorded() { grep -qxF -- "$1" "$record" 2>/dev/null; }

# mkd DIR: mkdir -p, recording each directory it creates (parents first).
mkd() {
	local d=$1 missing=()
	while [ ! -d "$d" ]; do
		missing=("$d" ${missing[@]+"${missing[@]}"})
		d=$(dirname "$d")
	done
	for d in ${missing[@]+"${missing[@]}"}; do
		mkdir -m 0755 "$d"
		echo "$d" >>"$record"
		changed=$((changed + 1))
	done
}

# put SRC DST MODE: installs SRC as DST when they differ; the first time, a DST that was
# there is kept in $state/backup for clean.sh.
put() {
	local src=$1 dst=$2 mode=$3
	mkd "$(dirname "$dst")"
	if ! recorded "$dst"; then
		if [ -e "$dst" ] || [ -L "$dst" ]; then
			mkdir -p "$state/backup$(dirname "$dst")"
			cp -a "$dst" "$state/backup$dst"
		fi
		echo "$dst" >>"$record"
	fi
	if [ -f "$dst" ] && [ ! -L "$dst" ] && cmp -s "$src" "$dst" &&
		[ "$(stat -c %a "$dst")" = "${mode#0}" ]; then
		return 0
	fi
	install -m "$mode" "$src" "$dst.sealflow-new"
	mv -f "$dst.sealflow-new" "$dst"
	changed=$((changed + 1))
}

# putstr TEXT DST MODE: put with the content given as text.
putstr() {
	local tmp
	tmp=$(mktemp)
	printf '%s' "$1" >"$tmp"
	put "$tmp" "$2" "$3"
	rm -f "$tmp"
}

# unput DST: removes a file put() made when it is no longer wanted (puts back a backup).
unput() {
	local dst=$1
	recorded "$dst" || return 0
	if [ -e "$state/backup$dst" ] || [ -L "$state/backup$dst" ]; then
		mv -f "$state/backup$dst" "$dst"
	else
		rm -f "$dst"
	fi
	grep -vxF -- "$dst" "$record" >"$record.new" || :
	mv -f "$record.new" "$record"
	changed=$((changed + 1))
}

# setstate NAME VALUE: a one-line state file, written only when it differs.
setstate() {
	[ "$(cat "$state/$1" 2>/dev/null)" = "$2" ] || { echo "$2" >"$state/$1"; }
}

# pids_named COMM: processes whose command name is COMM.
pids_named() {
	local f
	for f in /proc/[0-9]*/comm; do
		[ "$(cat "$f" 2>/dev/null)" = "$1" ] && { f=${f#/proc/}; echo "${f%/comm}"; }
	done
	return 0
}

# systemd's unit directories, each once (/lib is /usr/lib on merged-/usr hosts).
unitdirs=()
for d in /etc/systemd/system /run/systemd/system /usr/local/lib/systemd/system /lib/systemd/system /usr/lib/systemd/system; do
	[ -d "$d" ] || continue
	real=$(readlink -f "$d")
	case " ${unitdirs[*]-} " in *" $real "*) continue ;; esac
	unitdirs+=("$real")
done

# --- 1. the host's container runtime ---
runtime=own
[ "${SEALFLOW_RUNTIME:-}" = existing ] && runtime=existing
[ -z "${SEALFLOW_RUNTIME:-}" ] || [ "$runtime" = existing ] || [ "$SEALFLOW_RUNTIME" = own ] ||
	die "SEALFLOW_RUNTIME=$SEALFLOW_RUNTIME: expected existing (or own, the default)"
if [ -f "$state/runtime" ] && [ "$(cat "$state/runtime")" != "$runtime" ]; then
	die "init.sh ran here before with runtime $(cat "$state/runtime"); run clean.sh before switching to $runtime"
fi

found=()
if [ "$runtime" = own ]; then
	for b in docker dockerd; do
		p=$(command -v "$b" 2>/dev/null) && found+=("docker ($p)")
	done
	for d in ${unitdirs[@]+"${unitdirs[@]}"}; do
		for u in docker.service docker.socket; do
			[ -e "$d/$u" ] && found+=("docker ($d/$u)")
		done
		if [ -e "$d/containerd.service" ] && ! recorded "$d/containerd.service"; then
			found+=("containerd ($d/containerd.service, not installed by this package)")
		fi
	done
	[ -z "$(pids_named dockerd)" ] || found+=("docker (a running dockerd)")
	seen=" "
	for d in $(printf '%s' "$PATH" | tr ':' ' ') /usr/bin /usr/sbin /usr/local/bin /usr/local/sbin /bin /sbin /opt/bin; do
		[ -x "$d/containerd" ] || continue
		real=$(readlink -f "$d/containerd")
		case $seen in *" $real "*) continue ;; esac
		seen="$seen$real "
		[ "$real" = /usr/local/bin/containerd ] && recorded /usr/local/bin/containerd && continue
		found+=("containerd ($d/containerd, not installed by this package)")
	done
	for p in $(pids_named containerd); do
		exe=$(readlink "/proc/$p/exe" 2>/dev/null) || exe=unknown
		[ "${exe% (deleted)}" = /usr/local/bin/containerd ] && recorded /usr/local/bin/containerd && continue
		found+=("containerd (running as pid $p: $exe)")
	done
	if [ ${#found[@]} -gt 0 ]; then
		{
			echo "init.sh: error: this host already has a container runtime:"
			printf '  %s\n' "${found[@]}"
			echo "init.sh: either remove it (e.g. stop it and uninstall its package) and run init.sh again,"
			echo "init.sh: or use it: set \`runtime: existing\` in the plan (SEALFLOW_RUNTIME=existing);"
			echo "init.sh: its containerd must then serve CRI on ${SEALFLOW_CONTAINERD_SOCKET:-/run/containerd/containerd.sock}."
		} >&2
		exit 1
	fi
fi

mkd "$state"
chmod 0700 "$state"
touch "$record"
setstate runtime "$runtime"

# The Kubernetes state directories that were already there (clean.sh keeps those).
if [ ! -f "$state/preexisting" ]; then
	for d in /etc/kubernetes /var/lib/kubelet /var/lib/etcd /etc/cni /var/lib/cni /var/log/pods \
		/var/log/containers /run/flannel /run/netns /usr/libexec/kubernetes /var/lib/containerd /run/containerd /run/nri /opt/containerd; do
		if [ -e "$d" ]; then echo "$d"; fi
	done >"$state/preexisting"
	# Of those, the empty directories (a disk of its own mounted there): clean.sh empties them again.
	while IFS= read -r d; do
		if [ -d "$d" ] && [ -z "$(ls -A -- "$d")" ]; then echo "$d"; fi
	done <"$state/preexisting" >"$state/preexisting-empty"
	# The nftables tables there were (iptables-nft makes its tables on first use).
	if command -v nft >/dev/null; then nft list tables >"$state/nft-tables" 2>/dev/null || :; fi
fi

# --- 2. binaries ---
for b in kubeadm kubelet kubectl crictl; do
	[ -x "$pkg/bin/$b" ] || die "$pkg/bin/$b is missing"
done
c0=$changed
put "$pkg/bin/kubeadm" /usr/bin/kubeadm 0755
put "$pkg/bin/kubelet" /usr/bin/kubelet 0755
put "$pkg/bin/kubectl" /usr/bin/kubectl 0755
bin_changed=$((changed - c0))

if [ "$runtime" = own ]; then
	for b in containerd containerd-shim-runc-v2 ctr runc; do
		[ -x "$pkg/bin/$b" ] || die "$pkg/bin/$b is missing"
	done
	c0=$changed
	put "$pkg/bin/containerd" /usr/local/bin/containerd 0755
	put "$pkg/bin/containerd-shim-runc-v2" /usr/local/bin/containerd-shim-runc-v2 0755
	put "$pkg/bin/runc" /usr/local/sbin/runc 0755
	containerd_changed=$((changed - c0))
	put "$pkg/bin/ctr" /usr/local/bin/ctr 0755
	put "$pkg/bin/crictl" /usr/local/bin/crictl 0755
	ctr=/usr/local/bin/ctr
	crictl=/usr/local/bin/crictl
	sock=/run/containerd/containerd.sock
else
	containerd_changed=0
	crictl=/usr/local/bin/crictl
	sock=${SEALFLOW_CONTAINERD_SOCKET:-/run/containerd/containerd.sock}
	# The host's own ctr matches its containerd; the package's is the fallback client.
	ctr=$(command -v ctr 2>/dev/null) || ctr=$pkg/bin/ctr
	if command -v crictl >/dev/null && ! recorded /usr/local/bin/crictl; then
		crictl=$(command -v crictl)
		say "using the host's crictl ($crictl)"
	else
		put "$pkg/bin/crictl" /usr/local/bin/crictl 0755
	fi
fi

if [ -d "$pkg/cni/bin" ]; then
	mkd /opt/cni/bin
	for f in "$pkg"/cni/bin/*; do
		[ -f "$f" ] || continue
		put "$f" "/opt/cni/bin/${f##*/}" 0755
	done
else
	warn "$pkg/cni/bin is missing: no CNI plugins installed"
fi

# --- 3. configuration ---
if [ -d /run/systemd/system ]; then
	manager=systemd
elif command -v systemctl >/dev/null && systemctl daemon-reload >/dev/null 2>&1; then
	manager=systemctl # no systemd as PID 1, but a systemctl that works (a host's own service manager)
else
	manager=none
fi

config_changed=0
if [ "$runtime" = own ]; then
	if [ "$manager" = systemd ]; then cgroup=true; else cgroup=false; fi
	toml=$(sed -e "s|@SANDBOX_IMAGE@|$pause|" -e "s|@RUNC@|/usr/local/sbin/runc|" \
		-e "s|@SYSTEMD_CGROUP@|$cgroup|" "$pkg/conf/containerd-config.toml")
	c0=$changed
	putstr "$toml"$'\n' /etc/containerd/config.toml 0644
	mkd /etc/containerd/conf.d
	extra=/etc/containerd/conf.d/90-sealflow-extra.toml
	if [ -n "${SEALFLOW_CONTAINERD_EXTRA:-}" ]; then
		text=$SEALFLOW_CONTAINERD_EXTRA
		grep -q '^[[:space:]]*version[[:space:]]*=' <<<"$text" || text="version = 3"$'\n'"$text"
		putstr "# From SEALFLOW_CONTAINERD_EXTRA (sealflow's init.sh)."$'\n'"$text"$'\n' "$extra" 0644
	else
		unput "$extra"
	fi
	put "$pkg/conf/containerd.service" /etc/systemd/system/containerd.service 0644
	config_changed=$((changed - c0))
fi
putstr "$(sed "s|unix:///run/containerd/containerd.sock|unix://$sock|" "$pkg/conf/crictl.yaml")"$'\n' /etc/crictl.yaml 0644
c0=$changed
put "$pkg/conf/kubelet.service" /etc/systemd/system/kubelet.service 0644
put "$pkg/conf/10-kubeadm.conf" /etc/systemd/system/kubelet.service.d/10-kubeadm.conf 0644
kubelet_changed=$((changed - c0 + bin_changed))

# --- 4. kernel ---
c0=$changed
put "$pkg/conf/modules-load.conf" /etc/modules-load.d/k8s.conf 0644
modules=$(sed -e 's/#.*//' -e '/^[[:space:]]*$/d' "$pkg/conf/modules-load.conf")
missing=()
for m in $modules; do
	# Loaded, or built in (a built-in module without parameters has no /sys/module entry).
	[ -d "/sys/module/$m" ] && continue
	[ "$m" = br_netfilter ] && [ -d /proc/sys/net/bridge ] && continue
	grep -qs "/$m\.ko" "/lib/modules/$(uname -r)/modules.builtin" && continue
	if ! command -v modprobe >/dev/null; then
		missing+=("$m (no modprobe)")
	elif [ ! -d "/lib/modules/$(uname -r)" ]; then
		missing+=("$m (no /lib/modules/$(uname -r))")
	elif modprobe "$m" 2>/dev/null; then
		changed=$((changed + 1))
	else
		missing+=("$m")
	fi
done
if [ ${#missing[@]} -gt 0 ]; then
	warn "kernel modules not loaded: ${missing[*]}: IPVS mode of kube-proxy and bridged traffic may need them"
fi

put "$pkg/conf/sysctl.conf" /etc/sysctl.d/k8s.conf 0644
while IFS='=' read -r key value; do
	key=$(echo "$key" | tr -d '[:space:]') value=$(echo "$value" | tr -d '[:space:]')
	case $key in '' | '#'*) continue ;; esac
	f=/proc/sys/$(echo "$key" | tr . /)
	if [ ! -e "$f" ]; then
		warn "sysctl $key does not exist on this kernel (is br_netfilter loaded?)"
		continue
	fi
	old=$(cat "$f")
	[ "$old" = "$value" ] && continue
	if sysctl -q -w "$key=$value" >/dev/null 2>&1; then
		grep -q "^$key " "$state/sysctl" 2>/dev/null || echo "$key $old" >>"$state/sysctl"
		changed=$((changed + 1))
	else
		warn "could not set $key=$value"
	fi
done <"$pkg/conf/sysctl.conf"

# Swap: off now, and its /etc/fstab lines commented out with a marker clean.sh removes.
if [ -s /proc/swaps ] && [ "$(wc -l </proc/swaps)" -gt 1 ]; then
	if [ ! -f "$state/swaps" ]; then
		awk 'NR > 1 { print $1 }' /proc/swaps >"$state/swaps"
	fi
	swapoff -a
	say "turned swap off"
	changed=$((changed + 1))
fi
if [ -f "$state/swaps" ]; then
	while IFS= read -r dev; do
		[ -n "$dev" ] || continue
		case $dev in
		/dev/zram*) warn "swap $dev is zram (zram-generator, not /etc/fstab): it comes back at boot unless disabled there" ;;
		esac
	done <"$state/swaps"
fi
marker='#sealflow-kube# '
if [ -f /etc/fstab ] && awk '$0 !~ /^[[:space:]]*#/ && $3 == "swap" { found = 1 } END { exit !found }' /etc/fstab; then
	awk '$0 !~ /^[[:space:]]*#/ && $3 == "swap" { print }' /etc/fstab >>"$state/fstab-swap"
	tmp=$(mktemp)
	awk -v m="$marker" '$0 !~ /^[[:space:]]*#/ && $3 == "swap" { print m $0; next } { print }' /etc/fstab >"$tmp"
	cat "$tmp" >/etc/fstab # in place: keeps the file's owner, mode and links
	rm -f "$tmp"
	say "commented out the swap lines of /etc/fstab"
	changed=$((changed + 1))
fi

# --- 5. services, images ---
mkd /etc/systemd/system/multi-user.target.wants
svc() { systemctl "$@"; }
if [ "$manager" != none ]; then
	[ $((config_changed + kubelet_changed)) -eq 0 ] || svc daemon-reload
	if [ "$runtime" = own ]; then
		if ! svc is-enabled containerd >/dev/null 2>&1; then
			svc enable containerd >/dev/null 2>&1 || die "systemctl enable containerd failed"
			changed=$((changed + 1))
		fi
		if ! svc is-active containerd >/dev/null 2>&1; then
			svc start containerd || die "systemctl start containerd failed"
			say "started containerd"
			changed=$((changed + 1))
		elif [ $((containerd_changed + config_changed)) -gt 0 ]; then
			svc restart containerd
			say "restarted containerd (its binaries or configuration changed)"
		fi
	fi
	if ! svc is-enabled kubelet >/dev/null 2>&1; then
		svc enable kubelet >/dev/null 2>&1 || die "systemctl enable kubelet failed"
		changed=$((changed + 1))
	fi
	if [ "$kubelet_changed" -gt 0 ]; then
		svc try-restart kubelet >/dev/null 2>&1 || :
	fi
	[ "$manager" = systemd ] || say "no systemd as PID 1: services run under the host's systemctl"
else
	say "no systemd and no working systemctl: containerd and the kubelet are installed but not started;"
	say "start /usr/local/bin/containerd (and later the kubelet: ExecStart of the units in /etc/systemd/system) with this host's service manager"
fi

# Wait for containerd to answer.
up=0
for _ in $(seq 60); do
	if "$ctr" --address "$sock" version >/dev/null 2>&1; then
		up=1
		break
	fi
	if [ "$manager" = none ] || [ "$runtime" = existing ]; then break; fi
	sleep 0.5
done
if [ "$up" = 0 ]; then
	if [ "$runtime" = existing ]; then
		die "SEALFLOW_RUNTIME=existing, but no containerd answers on $sock"
	elif [ "$manager" != none ]; then
		die "containerd did not start (no answer on $sock): see \`journalctl -u containerd\`"
	fi
	warn "containerd is not running: the package's images are not imported; run init.sh again once it runs"
else
	if [ "$runtime" = existing ] && ! "$crictl" --runtime-endpoint "unix://$sock" info >/dev/null 2>&1; then
		die "the existing containerd on $sock does not serve CRI (docker's containerd disables it: remove \"cri\" from disabled_plugins in its config.toml and restart it)"
	fi
	if [ "$runtime" = existing ]; then
		sandbox=$("$crictl" --runtime-endpoint "unix://$sock" info 2>/dev/null | grep -o '"sandboxImage"[[:space:]]*:[[:space:]]*"[^"]*"' | head -n1 | sed 's/.*"\([^"]*\)"$/\1/' || :)
		if [ -n "$sandbox" ] && [ "$sandbox" != "$pause" ]; then
			warn "the existing containerd's sandbox image is $sandbox, the package ships $pause: set it to $pause in its configuration (an offline host cannot pull $sandbox)"
		fi
	fi
	k8s() { "$ctr" --address "$sock" -n k8s.io "$@"; }
	have=$(k8s images ls 2>/dev/null | awk 'NR > 1 { print $1, $3, $NF }')
	need=0
	while read -r ref digest; do
		[ -n "$ref" ] || continue
		grep -qxF "$ref $digest" <<<"$(awk '{ print $1, $2 }' <<<"$have")" || need=1
	done <<<"$images_list"
	if [ "$need" = 1 ]; then
		images=$pkg/images/images.tar
		[ -s "$images" ] || die "$images is missing"
		before=$(awk '{ print $1 }' <<<"$have")
		k8s images import "$images" >/dev/null
		while read -r ref _; do
			[ -n "$ref" ] || continue
			if ! grep -qxF -- "$ref" <<<"$before" && ! grep -qxF -- "$ref" "$state/images" 2>/dev/null; then
				echo "$ref" >>"$state/images"
			fi
		done <<<"$images_list"
		have=$(k8s images ls 2>/dev/null | awk 'NR > 1 { print $1, $3, $NF }')
		say "imported $(grep -c . <<<"$images_list") images from $images"
		changed=$((changed + 1))
	fi
	while read -r ref digest; do
		[ -n "$ref" ] || continue
		line=$(awk -v r="$ref" '$1 == r' <<<"$have")
		[ -n "$line" ] || die "image $ref is not in containerd after the import"
		[ -z "$digest" ] || [ "$(awk '{ print $2 }' <<<"$line")" = "$digest" ] ||
			die "image $ref in containerd has digest $(awk '{ print $2 }' <<<"$line"), manifest.json says $digest"
		case $line in *io.cri-containerd.pinned=pinned*) continue ;; esac
		k8s images label "$ref" io.cri-containerd.pinned=pinned >/dev/null
		changed=$((changed + 1))
	done <<<"$images_list"
fi

# Host tools kubeadm's preflight (v1.32 and later) requires, which the package does not ship.
absent=()
for t in losetup mount cp; do
	command -v "$t" >/dev/null || absent+=("$t")
done
[ ${#absent[@]} -eq 0 ] || warn "not found on this host, and kubeadm's preflight requires them: ${absent[*]} (util-linux, coreutils)"

if [ "$changed" -eq 0 ]; then
	say "nothing changed: the host was already prepared (Kubernetes $kube_version, runtime $runtime)"
else
	say "done: Kubernetes $kube_version node prerequisites in place (runtime $runtime, $changed changes)"
fi
