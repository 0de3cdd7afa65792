#!/usr/bin/env bash
# Installs the Debian packages the tests and the demo use, when one is
# missing (a no-op otherwise). Needs root for apt-get.
set -euo pipefail
pkgs=(
	openssh-server openssh-client # real sshd in every lab host, ssh for checks
	iproute2 nftables kmod        # namespaces, links, kernel rules
	sudo procps psmisc            # become tests, process checks
	ca-certificates curl          # distribute by url
	busybox-static qemu-system-x86 cpio # IPVS tests in a VM
	iptables gcc libc6-dev        # upstream.sh: iptables/nft in the kube-proxy and flannel images; static runc and pause
	libseccomp-dev pkgconf        # upstream.sh: runc with seccomp (kubeadm's pods ask for RuntimeDefault)
	shellcheck                    # internal/kubepkg: lints the package's init.sh and clean.sh
	containerd runc               # the node stack in lab hosts (internal/lab TestNodeStack)
	strace                        # sshconn: counts the programs a task starts on the host
	make bc                       # package.sh: make agents; make bench: figures of the package benchmark
	chromium                      # sealflow report: the page is opened in headless Chromium
	tmux                          # cmd/sealflow: the live view's screen in a real terminal
	zsh                           # cmd/sealflow: the zsh completion script
)
missing=()
for p in "${pkgs[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" != 0 ]; then
	echo "missing Debian packages: ${missing[*]}; install them as root (apt-get install ${missing[*]})" >&2
	exit 2
fi
echo "installing ${missing[*]} ..."
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
