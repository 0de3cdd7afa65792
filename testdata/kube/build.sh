#!/usr/bin/env bash
# Builds the Kubernetes binaries the lab's upstream artifacts start from (upstream.sh and
# package.sh use them): kubeadm, kube-apiserver, kube-controller-manager, kube-scheduler,
# kubectl, etcd, etcdctl, from the Go module proxy.
#
# Nothing is built in the repository: a throwaway module under $CACHE/kube/$KUBE_VERSION/mod
# requires k8s.io/kubernetes with every staging module replaced by its published version.
# Binaries are cached; a run with nothing changed takes a second. Safe to run concurrently
# (flock). The last line printed is the binaries' directory.
set -euo pipefail

KUBE_VERSION=${KUBE_VERSION:-v1.34.4}
STAGING_VERSION=v0${KUBE_VERSION#v1}   # v1.34.4 -> v0.34.4
ETCD_VERSION=${ETCD_VERSION:-v3.6.4}
CACHE=${SEALFLOW_CACHE:-/var/cache/sealflow}

export PATH=/usr/local/go/bin:$PATH
export CGO_ENABLED=0 GOFLAGS=-buildvcs=false

dir=$CACHE/kube/$KUBE_VERSION
mod=$dir/mod
bin=$dir/bin

log() { printf 'build.sh: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

command -v go >/dev/null || die "go not found (expected /usr/local/go/bin/go)"
command -v flock >/dev/null || die "flock not found (Debian package util-linux)"
mkdir -p "$bin" || die "cannot create $bin (run as root or set SEALFLOW_CACHE)"

exec 9>"$dir/.lock"
flock 9

sum() { sha256sum | cut -c1-16; }

kube_cmds=(kubeadm kube-apiserver kube-controller-manager kube-scheduler kubectl)
# What the real binaries depend on: versions and this recipe.
recipe="kube=$KUBE_VERSION staging=$STAGING_VERSION etcd=$ETCD_VERSION go=$(go env GOVERSION) strip=1 cgo=0"
recipe_sum=$(printf '%s' "$recipe" | sum)

build_real() {
	log "building Kubernetes $KUBE_VERSION and etcd $ETCD_VERSION in $mod (cold: several minutes)"
	rm -rf "$mod"
	mkdir -p "$mod/etcd"
	local gomod
	gomod=$(cd "$mod" && go mod download -json "k8s.io/kubernetes@$KUBE_VERSION" |
		sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",*$/\1/p')
	[ -f "$gomod" ] || die "cannot download k8s.io/kubernetes@$KUBE_VERSION's go.mod from the module proxy"
	local staging
	staging=$(sed -n 's#^[[:space:]]*\(k8s\.io/[a-z0-9-]*\) => \./staging/src/.*#\1#p' "$gomod" | sort -u)
	[ -n "$staging" ] || die "no staging replaces in $gomod"
	{
		echo "module sealflow.build/kube"
		echo
		echo "go $(go env GOVERSION | sed 's/^go\([0-9]*\.[0-9]*\).*/\1/').0"
		echo
		echo "require ("
		echo "	k8s.io/kubernetes $KUBE_VERSION"
		echo "	go.etcd.io/etcd/server/v3 $ETCD_VERSION"
		echo "	go.etcd.io/etcd/etcdctl/v3 $ETCD_VERSION"
		echo ")"
		echo
		echo "replace ("
		for m in $staging; do echo "	$m => $m $STAGING_VERSION"; done
		echo ")"
		echo
		echo "tool ("
		for c in "${kube_cmds[@]}"; do echo "	k8s.io/kubernetes/cmd/$c"; done
		echo "	go.etcd.io/etcd/etcdctl/v3"
		echo ")"
	} >"$mod/go.mod"
	cat >"$mod/etcd/main.go" <<'GO'
// Command etcd is etcd's server, as the etcd release binary.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }
GO
	(cd "$mod" && go mod tidy) || die "go mod tidy in $mod failed"
	local ld="-s -w -X k8s.io/component-base/version.gitVersion=$KUBE_VERSION"
	ld+=" -X k8s.io/component-base/version.gitMajor=1"
	ld+=" -X k8s.io/component-base/version.gitMinor=$(echo "$KUBE_VERSION" | cut -d. -f2)"
	ld+=" -X k8s.io/component-base/version.gitTreeState=clean"
	local out=$dir/bin.new
	rm -rf "$out"
	mkdir -p "$out"
	local pkgs=()
	for c in "${kube_cmds[@]}"; do pkgs+=("k8s.io/kubernetes/cmd/$c"); done
	(cd "$mod" && go build -trimpath -ldflags "$ld" -o "$out/" "${pkgs[@]}") || die "building Kubernetes failed"
	(cd "$mod" && go build -trimpath -ldflags "-s -w" -o "$out/etcd" ./etcd) || die "building etcd failed"
	(cd "$mod" && go build -trimpath -ldflags "-s -w" -o "$out/etcdctl" go.etcd.io/etcd/etcdctl/v3) || die "building etcdctl failed"
	"$out/kubeadm" version -o short | grep -qx "$KUBE_VERSION" || die "kubeadm does not say $KUBE_VERSION"
	for f in "$out"/*; do mv -f "$f" "$bin/"; done
	rmdir "$out"
	echo "$recipe_sum" >"$dir/real.stamp"
}

have_real() {
	[ "$(cat "$dir/real.stamp" 2>/dev/null)" = "$recipe_sum" ] || return 1
	local c
	for c in "${kube_cmds[@]}" etcd etcdctl; do [ -x "$bin/$c" ] || return 1; done
}

if have_real; then
	log "Kubernetes $KUBE_VERSION binaries cached in $bin"
else
	start=$(date +%s)
	build_real
	log "Kubernetes binaries built in $(($(date +%s) - start)) s"
fi

echo "$bin"
