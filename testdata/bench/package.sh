#!/usr/bin/env bash
# make bench: the offline package. Build time through the lab's loopback
# mirrors of upstream, cold (no download cache) and warm (files cached), the
# package's size, and verify's time; sealos's published kube1.17.0 package
# was 603 MB.
set -euo pipefail
cd "$(dirname "$0")/../.."
CACHE=${SEALFLOW_CACHE:-/var/cache/sealflow}
pkg=$(bash testdata/kube/package.sh | tail -n 1)   # builds upstream artifacts, sealflow and the mirror
dir=$(dirname "$pkg")
work=$(mktemp -d)
trap 'kill $mirror 2>/dev/null || :; wait 2>/dev/null || :; rm -rf "$work"' EXIT
"$dir/mirror" serve --www "$CACHE/upstream/www" --images "$CACHE/upstream/images" --addr-file "$work/addr" --no-stdin &
mirror=$!
for _ in $(seq 1 600); do [ -s "$work/addr" ] && break; sleep 0.1; done
http=$(sed -n 's/.*"http": *"\([^"]*\)".*/\1/p' "$work/addr")
reg=$(sed -n 's/.*"registry": *"\([^"]*\)".*/\1/p' "$work/addr")
build() {
	"$dir/sealflow" package build --version v1.34.4 -o "$work/kube.tar.gz" "$@" \
		--mirror "https://dl.k8s.io=http://$http/dl.k8s.io" --mirror "https://github.com=http://$http/github.com" \
		--mirror "registry.k8s.io=$reg" --mirror "ghcr.io=$reg" --mirror "docker.io=$reg" >/dev/null 2>&1
}
t() { local s; s=$(date +%s.%N); "$@" >/dev/null; echo "$(date +%s.%N) - $s" | bc; }
cold=$(t build --no-cache)
warm1=$(t build --cache "$work/cache")
warm=$(t build --cache "$work/cache")
ver=$(t "$dir/sealflow" package verify "$work/kube.tar.gz")
size=$(stat -c %s "$work/kube.tar.gz")
unpacked=$("$dir/sealflow" package inspect --json "$work/kube.tar.gz" | grep -o '"size": [0-9]*' | awk '{s+=$2} END {print s}')
printf 'package build, cold (no cache): %.1f s\n' "$cold"
printf 'package build, warm (files cached): %.1f s (first cached run %.1f s)\n' "$warm" "$warm1"
printf 'package verify: %.1f s\n' "$ver"
printf 'package size: %d MB (%d MB unpacked), sealos kube1.17.0: 603 MB\n' $((size / 1000000)) $((unpacked / 1000000))
