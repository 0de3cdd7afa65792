#!/usr/bin/env bash
# Runs lvscare's IPVS scenario (TestIPVSScenario) on a real kernel with
# IPVS: Debian's kernel under qemu (TCG), with an initramfs of busybox, the
# IPVS modules and a static test binary. Exits 0 only when the VM prints
# the PASS line.
#
# Needs (Debian packages): qemu-system-x86 busybox-static kmod cpio, and apt
# sources to download linux-image-amd64's kernel once (cached in
# $LVSCARE_KERNEL_CACHE, default /var/cache/sealflow/kernel).
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
cache="${LVSCARE_KERNEL_CACHE:-/var/cache/sealflow/kernel}"
timeout_s="${LVSCARE_VM_TIMEOUT:-300}"
GO="${GO:-go}"
command -v "$GO" >/dev/null || GO=/usr/local/go/bin/go

for tool in qemu-system-x86_64 busybox depmod cpio dpkg-deb apt-get; do
	if ! command -v "$tool" >/dev/null; then
		echo "run.sh: $tool is missing (apt-get install qemu-system-x86 busybox-static kmod cpio)" >&2
		exit 1
	fi
done

# 1. The kernel: linux-image-amd64 depends on the versioned image package.
mkdir -p "$cache"
if ! ls "$cache"/root/boot/vmlinuz-* >/dev/null 2>&1; then
	echo "run.sh: downloading Debian's kernel into $cache" >&2
	(
		cd "$cache"
		rm -rf root ./*.deb
		apt-get download -q linux-image-amd64 2>/dev/null
		dep="$(dpkg-deb -f linux-image-amd64_*.deb Depends | tr ',' '\n' | grep -o 'linux-image-[0-9][^ ]*' | head -n1)"
		[ -n "$dep" ] || { echo "run.sh: no versioned kernel in linux-image-amd64's Depends" >&2; exit 1; }
		apt-get download -q "$dep" 2>/dev/null
		mkdir -p root.tmp
		dpkg -x "$dep"_*.deb root.tmp
		mv root.tmp root
	)
fi
vmlinuz="$(ls "$cache"/root/boot/vmlinuz-* | head -n1)"
kver="${vmlinuz##*/vmlinuz-}"
moddir="$cache/root/lib/modules/$kver"
[ -f "$moddir/modules.dep" ] || depmod -b "$cache/root" "$kver"

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

# 2. The static test binary.
(cd "$repo" && CGO_ENABLED=0 "$GO" test -c -o "$work/ipvs.test" ./lvscare/ipvstest)

# 3. The initramfs.
init="$work/initramfs"
mkdir -p "$init"/{bin,sbin,proc,sys,dev,tmp,modules}
cp "$(command -v busybox)" "$init/bin/busybox"
for applet in sh mount insmod ip poweroff echo cat sleep; do
	ln -s busybox "$init/bin/$applet"
done
# Load order: crc32c_generic before libcrc32c (no modprobe for the soft dependency).
mods="crc32c_generic libcrc32c nf_defrag_ipv4 nf_defrag_ipv6 nf_conntrack ip_vs ip_vs_rr dummy"
for m in $mods; do
	f="$(find "$moddir" -name "$m.ko*" | head -n1)"
	[ -n "$f" ] || { echo "run.sh: module $m not found in $moddir" >&2; exit 1; }
	case "$f" in
	*.ko) cp "$f" "$init/modules/$m.ko" ;;
	*.ko.xz) xz -dc "$f" >"$init/modules/$m.ko" ;;
	*.ko.zst) zstd -dqc "$f" >"$init/modules/$m.ko" ;;
	*) echo "run.sh: cannot unpack $f" >&2; exit 1 ;;
	esac
done
cp "$work/ipvs.test" "$init/ipvs.test"
cat >"$init/init" <<INIT
#!/bin/sh
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev 2>/dev/null
ip link set lo up
for m in $mods; do insmod /modules/\$m.ko || echo "insmod \$m failed"; done
cd /tmp
if LVSCARE_IPVS_VM=1 /ipvs.test -test.run='^TestIPVSScenario\$' -test.v -test.timeout=240s; then
	echo "LVSCARE-IPVS-RESULT: PASS"
else
	echo "LVSCARE-IPVS-RESULT: FAIL"
fi
poweroff -f
INIT
chmod +x "$init/init"
(cd "$init" && find . | cpio -o -H newc --quiet | gzip -1 >"$work/initrd.gz")

# 4. Boot.
log="$work/console.log"
echo "run.sh: booting $kver under qemu (TCG)" >&2
set +e
timeout "$timeout_s" qemu-system-x86_64 -accel tcg -m 1024 -smp 1 -nographic -no-reboot \
	-kernel "$vmlinuz" -initrd "$work/initrd.gz" \
	-append "console=ttyS0 panic=-1 quiet" </dev/null 2>&1 | tee "$log"
set -e
if grep -q "LVSCARE-IPVS-RESULT: PASS" "$log"; then
	echo "run.sh: IPVS scenario PASS" >&2
	exit 0
fi
echo "run.sh: IPVS scenario FAIL (no PASS line on the console)" >&2
exit 1
