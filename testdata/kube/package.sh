#!/usr/bin/env bash
# Builds the lab's offline Kubernetes package the way an operator builds one:
# `sealflow package build --version v1.34.4` with the built-in manifest. The lab
# cannot reach dl.k8s.io, GitHub or the registries, so upstream.sh builds those
# same release files and images from the Go module proxy, and testdata/kube/mirror
# serves them on loopback; --mirror points the builder there. The package records
# the upstream URLs and references, as a user's would.
#
# The package is cached: rebuilt only when sealflow, the upstream artifacts or the
# manifest changed. Safe to run concurrently (flock). The last line printed is the
# package's path ($CACHE/packages/kube1.34.4.tar.gz).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
KUBE_VERSION=${KUBE_VERSION:-v1.34.4}
CACHE=${SEALFLOW_CACHE:-/var/cache/sealflow}
out_dir=$CACHE/packages
out=$out_dir/kube${KUBE_VERSION#v}.tar.gz

export PATH=/usr/local/go/bin:$PATH
export GOFLAGS=-buildvcs=false

log() { printf 'package.sh: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

mkdir -p "$out_dir"
exec 8>"$out_dir/.lock"
flock 8

# The control plane, kubeadm and kubectl (build.sh), then the rest of upstream.
bash "$here/build.sh" >/dev/null
up=$(bash "$here/upstream.sh" | tail -n 1)
[ -d "$up/www" ] && [ -f "$up/images/index.json" ] || die "upstream.sh left no $up/www or $up/images"

# sealflow itself (its image goes into the package), with the relay agents it
# embeds (built as `make build` does), and the mirror.
(cd "$repo" && make -s agents) || die "building the relay agents failed"
version=$(cd "$repo" && git describe --tags --always --dirty 2>/dev/null || echo dev)
(cd "$repo" && CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X github.com/sealflow/sealflow/internal/version.Version=$version" -o "$out_dir/sealflow.new" ./cmd/sealflow) ||
	die "building sealflow failed"
(cd "$repo" && go build -trimpath -o "$out_dir/mirror.new" ./testdata/kube/mirror) || die "building the mirror failed"
mv -f "$out_dir/sealflow.new" "$out_dir/sealflow"
mv -f "$out_dir/mirror.new" "$out_dir/mirror"

inputs=$( {
	sha256sum "$out_dir/sealflow"
	find "$up/www" "$up/images" -type f | LC_ALL=C sort | xargs stat -c '%n %s %Y'
} | sha256sum | cut -c1-16)
if [ "$(cat "$out_dir/package.stamp" 2>/dev/null)" = "$inputs" ] && [ -s "$out" ]; then
	log "package cached: $out"
	echo "$out"
	exit 0
fi

work=$(mktemp -d "$out_dir/.serve.XXXXXX")
mirror_pid=
cleanup() {
	[ -z "$mirror_pid" ] || kill "$mirror_pid" 2>/dev/null || :
	[ -z "$mirror_pid" ] || wait "$mirror_pid" 2>/dev/null || :
	rm -rf "$work"
}
trap cleanup EXIT
"$out_dir/mirror" serve --www "$up/www" --images "$up/images" --addr-file "$work/addr" --no-stdin &
mirror_pid=$!
for _ in $(seq 1 600); do
	[ -s "$work/addr" ] && break
	kill -0 "$mirror_pid" 2>/dev/null || die "the mirror exited before it was ready"
	sleep 0.1
done
[ -s "$work/addr" ] || die "the mirror did not start in 60 s"
http=$(sed -n 's/.*"http": *"\([^"]*\)".*/\1/p' "$work/addr")
reg=$(sed -n 's/.*"registry": *"\([^"]*\)".*/\1/p' "$work/addr")
[ -n "$http" ] && [ -n "$reg" ] || die "cannot read the mirror's addresses from $(cat "$work/addr")"

log "building $out through the mirror (files http://$http, images $reg)"
start=$(date +%s)
"$out_dir/sealflow" package build --version "$KUBE_VERSION" --no-cache -o "$out" \
	--mirror "https://dl.k8s.io=http://$http/dl.k8s.io" \
	--mirror "https://github.com=http://$http/github.com" \
	--mirror "registry.k8s.io=$reg" --mirror "ghcr.io=$reg" --mirror "docker.io=$reg" >&2 ||
	die "sealflow package build failed"
log "package built in $(($(date +%s) - start)) s"
echo "$inputs" >"$out_dir/package.stamp"
echo "$out"
