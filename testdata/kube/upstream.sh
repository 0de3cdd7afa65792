#!/usr/bin/env bash
# Builds, for the lab, the upstream release files and image contents that
# `sealflow package build` downloads (the lab cannot reach dl.k8s.io, GitHub or
# the registries): everything comes from the Go module proxy (plus gcc and a few
# Debian packages for pause, runc and the images' iptables/nft), and is laid out
# as the upstream URLs are, under $CACHE/upstream:
#
#   bin/     every binary (kubeadm ... kube-scheduler stay in build.sh's cache)
#   www/     dl.k8s.io/... and github.com/.../releases/download/... files + checksums
#   images/  an OCI layout with every image (built by testdata/kube/mirror)
#
# Each artifact has a stamp in stamp/ recording its recipe (versions, Go version,
# flags and the shell function that builds it); it is rebuilt when that changes.
# A warm run takes seconds. Safe to run concurrently (flock). CGO_ENABLED=0
# except runc (cgo for nsenter and libseccomp, static, as upstream's release), flanneld (cgo for its UDP backend,
# static) and pause (C).
# Needs build.sh's binaries (kubeadm, kubectl, control plane): run it first.
# The last line printed is $CACHE/upstream.
set -euo pipefail

# Versions: change them here (kubeadm v1.34.4 names etcd 3.6.5-0, coredns v1.12.1, pause 3.10.1).
KUBE_VERSION=v1.34.4
ETCD_VERSION=v3.6.5
ETCD_TAG=3.6.5-0
COREDNS_VERSION=v1.12.1
PAUSE_VERSION=3.10.1
CONTAINERD_VERSION=v2.2.9
RUNC_VERSION=v1.3.3
RUNC_SELINUX=v1.13.0 # runc's patched go-selinux is not in its module zip
CRICTL_VERSION=v1.34.0
CNI_PLUGINS_VERSION=v1.7.1
FLANNEL_VERSION=v0.27.4
FLANNEL_CNI_TAG=v1.7.1-flannel1 # the image tag; github.com/flannel-io/cni-plugin is not on the proxy:
FLANNEL_CNI_SOURCE=v0.9.1       # the flannel plugin is built from containernetworking/plugins/plugins/meta/flannel
BUSYBOX_TAG=1.36.1              # docker.io/library/busybox; contents: Debian's busybox-static

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
CACHE=${SEALFLOW_CACHE:-/var/cache/sealflow}
KUBE_BIN=$CACHE/kube/$KUBE_VERSION/bin # build.sh's binaries, read only
up=$CACHE/upstream
bin=$up/bin
src=$up/src
stamps=$up/stamp
www=$up/www

export PATH=/usr/local/go/bin:$PATH
export CGO_ENABLED=0 GOTOOLCHAIN=local GOFLAGS="-buildvcs=false -mod=mod"
export LC_ALL=C

log() { printf 'upstream.sh: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

command -v go >/dev/null || die "go not found (expected /usr/local/go/bin/go)"
command -v flock >/dev/null || die "flock not found (Debian package util-linux)"
mkdir -p "$bin" "$src" "$stamps" "$www" || die "cannot create $up (run as root or set SEALFLOW_CACHE)"
exec 9>"$up/.lock"
flock 9

# says TEXT CMD...: CMD's output (stdout and stderr) contains TEXT.
says() {
	local want=$1 out
	shift
	out=$("$@" 2>&1) || true
	[[ $out == *"$want"* ]]
}

GOVERSION=$(go env GOVERSION)
timings=()

# artifact NAME FUNC VERSIONS OUTPUT...: runs FUNC unless NAME's stamp records the same
# recipe (VERSIONS, Go version and FUNC's text) and every OUTPUT exists.
artifact() {
	local name=$1 fn=$2 vers=$3
	shift 3
	local recipe
	recipe="$vers $GOVERSION"$'\n'"$(declare -f "$fn")"
	local ok=1 f
	[ "$(cat "$stamps/$name" 2>/dev/null)" = "$recipe" ] || ok=0
	for f; do [ -e "$f" ] || ok=0; done
	if [ $ok = 1 ]; then
		return 0
	fi
	log "building $name ($vers)"
	local t0=$SECONDS
	"$fn" || die "building $name failed"
	printf '%s\n' "$recipe" >"$stamps/$name"
	timings+=("$name $((SECONDS - t0))s")
	log "$name done in $((SECONDS - t0)) s"
}

# source NAME MODULE VERSION: a writable copy of MODULE@VERSION's source in $src/NAME
# (the module cache is read only; building it as the main module keeps its go.mod's
# versions and replaces, as an upstream build does).
source_of() {
	local name=$1 m=$2 v=$3
	local want="$m@$v"
	if [ "$(cat "$src/$name.from" 2>/dev/null)" != "$want" ]; then
		local dir
		dir=$(cd "$src" && GOFLAGS= go mod download -json "$want" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",*$/\1/p')
		[ -d "$dir" ] || die "cannot download $want from the module proxy"
		rm -rf "$src/$name"
		cp -r "$dir" "$src/$name"
		chmod -R u+w "$src/$name"
		echo "$want" >"$src/$name.from"
	fi
	echo "$src/$name"
}

# release_time MODULE VERSION: the version's time on the proxy (tarballs' fixed mtime).
release_time() {
	local info t
	info=$(cd "$src" && GOFLAGS= go mod download -json "$1@$2" | sed -n 's/^[[:space:]]*"Info": "\(.*\)",*$/\1/p')
	t=$(sed -n 's/.*"Time":"\([^"]*\)".*/\1/p' "$info" 2>/dev/null)
	[ -n "$t" ] || die "no release time for $1@$2"
	echo "$t"
}

# --- Kubernetes: kubelet and kube-proxy (the others come from build.sh) -----------------

kube_mod=$up/kube-mod
build_kube() {
	local staging_version=v0${KUBE_VERSION#v1}
	rm -rf "$kube_mod"
	mkdir -p "$kube_mod"
	local gomod
	gomod=$(cd "$kube_mod" && GOFLAGS= go mod download -json "k8s.io/kubernetes@$KUBE_VERSION" |
		sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",*$/\1/p')
	[ -f "$gomod" ] || return 1
	local staging
	staging=$(sed -n 's#^[[:space:]]*\(k8s\.io/[a-z0-9-]*\) => \./staging/src/.*#\1#p' "$gomod" | sort -u)
	{
		printf 'module sealflow.build/upstream-kube\n\ngo %s.0\n\n' "$(echo "$GOVERSION" | sed 's/^go\([0-9]*\.[0-9]*\).*/\1/')"
		printf 'require k8s.io/kubernetes %s\n\nreplace (\n' "$KUBE_VERSION"
		for m in $staging; do printf '\t%s => %s %s\n' "$m" "$m" "$staging_version"; done
		printf ')\n\ntool (\n\tk8s.io/kubernetes/cmd/kubelet\n\tk8s.io/kubernetes/cmd/kube-proxy\n)\n'
	} >"$kube_mod/go.mod"
	(cd "$kube_mod" && go mod tidy) || return 1
	local ld="-s -w -X k8s.io/component-base/version.gitVersion=$KUBE_VERSION"
	ld+=" -X k8s.io/component-base/version.gitMajor=1"
	ld+=" -X k8s.io/component-base/version.gitMinor=$(echo "$KUBE_VERSION" | cut -d. -f2)"
	ld+=" -X k8s.io/component-base/version.gitTreeState=clean"
	(cd "$kube_mod" && go build -trimpath -ldflags "$ld" -o "$bin/" k8s.io/kubernetes/cmd/kubelet k8s.io/kubernetes/cmd/kube-proxy) || return 1
	says "Kubernetes $KUBE_VERSION" "$bin/kubelet" --version
}

# --- etcd: etcd, etcdctl, etcdutl (each module's own main package) ----------------------

etcd_mod=$up/etcd-mod
build_etcd() {
	rm -rf "$etcd_mod"
	mkdir -p "$etcd_mod"
	{
		printf 'module sealflow.build/upstream-etcd\n\ngo 1.24.0\n\nrequire (\n'
		for m in server etcdctl etcdutl; do printf '\tgo.etcd.io/etcd/%s/v3 %s\n' "$m" "$ETCD_VERSION"; done
		printf ')\n\ntool (\n'
		for m in server etcdctl etcdutl; do printf '\tgo.etcd.io/etcd/%s/v3\n' "$m"; done
		printf ')\n'
	} >"$etcd_mod/go.mod"
	(cd "$etcd_mod" && go mod tidy) || return 1
	(cd "$etcd_mod" && go build -trimpath -ldflags "-s -w" -o "$bin/etcd" go.etcd.io/etcd/server/v3 &&
		go build -trimpath -ldflags "-s -w" -o "$bin/etcdctl" go.etcd.io/etcd/etcdctl/v3 &&
		go build -trimpath -ldflags "-s -w" -o "$bin/etcdutl" go.etcd.io/etcd/etcdutl/v3) || return 1
	says "etcd Version: ${ETCD_VERSION#v}" "$bin/etcd" --version
}

# --- containerd ------------------------------------------------------------------------

build_containerd() {
	local s p=github.com/containerd/containerd/v2
	s=$(source_of containerd $p "$CONTAINERD_VERSION") || return 1
	local ld="-s -w -X $p/version.Version=$CONTAINERD_VERSION -X $p/version.Package=$p"
	(cd "$s" && go build -trimpath -tags "no_btrfs no_devmapper no_zfs no_aufs urfave_cli_no_docs" -ldflags "$ld" \
		-o "$bin/" ./cmd/containerd ./cmd/containerd-shim-runc-v2 ./cmd/ctr) || return 1
	says " $CONTAINERD_VERSION" "$bin/containerd" --version
}

# --- runc: cgo (libcontainer/nsenter, libseccomp), static, as runc's release -------------
# With seccomp: kubeadm's control-plane pods ask for the RuntimeDefault profile, which a runc
# without it refuses ("config provided but seccomp not supported"). Static libseccomp from
# Debian's libseccomp-dev.

build_runc() {
	local s
	s=$(source_of runc github.com/opencontainers/runc "$RUNC_VERSION") || return 1
	# runc's go.mod replaces go-selinux by ./internal/third_party/selinux (its CVE-2025-52881
	# patch), a nested module the module zip leaves out: use the release with that fix.
	(cd "$s" && go mod edit -replace "github.com/opencontainers/selinux=github.com/opencontainers/selinux@$RUNC_SELINUX") || return 1
	[ -f /usr/lib/x86_64-linux-gnu/libseccomp.a ] || [ -f /usr/lib/aarch64-linux-gnu/libseccomp.a ] ||
		{ log "runc needs libseccomp.a: apt-get install libseccomp-dev"; return 1; }
	(cd "$s" && CGO_ENABLED=1 go build -trimpath -tags "seccomp urfave_cli_no_docs netgo osusergo" \
		-ldflags "-s -w -X main.version=$(cat VERSION) -extldflags -static" -o "$bin/runc" .) || return 1
	! ldd "$bin/runc" >/dev/null 2>&1 && says "runc version ${RUNC_VERSION#v}" "$bin/runc" --version &&
		says "libseccomp: " "$bin/runc" --version
}

# --- crictl ----------------------------------------------------------------------------

build_crictl() {
	local s
	s=$(source_of cri-tools sigs.k8s.io/cri-tools "$CRICTL_VERSION") || return 1
	(cd "$s" && go build -trimpath -ldflags "-s -w -X sigs.k8s.io/cri-tools/pkg/version.Version=${CRICTL_VERSION#v}" \
		-o "$bin/crictl" ./cmd/crictl) || return 1
	says "${CRICTL_VERSION#v}" "$bin/crictl" --version
}

# --- CNI plugins: every plugin of the release tarball (meta, main, ipam; not windows) ---

build_cni() {
	local s
	s=$(source_of cni-plugins github.com/containernetworking/plugins "$CNI_PLUGINS_VERSION") || return 1
	local pkgs=() d
	for d in "$s"/plugins/meta/* "$s"/plugins/main/* "$s"/plugins/ipam/*; do
		[ -d "$d" ] && [ "$(basename "$d")" != windows ] && pkgs+=("./${d#"$s"/}")
	done
	rm -rf "$bin/cni"
	mkdir -p "$bin/cni"
	(cd "$s" && go build -trimpath \
		-ldflags "-s -w -X github.com/containernetworking/plugins/pkg/utils/buildversion.BuildVersion=$CNI_PLUGINS_VERSION" \
		-o "$bin/cni/" "${pkgs[@]}") || return 1
	[ -x "$bin/cni/bridge" ] && [ -x "$bin/cni/host-local" ] && [ -x "$bin/cni/portmap" ]
}

# --- flannel's CNI plugin: github.com/flannel-io/cni-plugin is not served by the Go proxy
# (403 for v1.7.1-flannel1 and @latest); the same plugin lived in containernetworking/plugins
# as plugins/meta/flannel until v0.9.1 (removed in v1.0.0). Its binary goes in the
# flannel-cni-plugin image as /flannel, as upstream's does.

build_flannel_cni() {
	local s
	s=$(source_of cni-plugins-flannel github.com/containernetworking/plugins "$FLANNEL_CNI_SOURCE") || return 1
	(cd "$s" && go build -trimpath \
		-ldflags "-s -w -X github.com/containernetworking/plugins/pkg/utils/buildversion.BuildVersion=$FLANNEL_CNI_TAG" \
		-o "$bin/flannel" ./plugins/meta/flannel) || return 1
	[ -x "$bin/flannel" ]
}

# --- coredns ---------------------------------------------------------------------------

build_coredns() {
	local s
	s=$(source_of coredns github.com/coredns/coredns "$COREDNS_VERSION") || return 1
	(cd "$s" && go build -trimpath -ldflags "-s -w -X github.com/coredns/coredns/coremain.GitCommit=$COREDNS_VERSION" \
		-o "$bin/coredns" .) || return 1
	says "CoreDNS-${COREDNS_VERSION#v}" "$bin/coredns" -version
}

# --- flanneld: cgo on amd64 (its UDP backend is C), static, as upstream builds it ----------

build_flanneld() {
	local s
	s=$(source_of flannel github.com/flannel-io/flannel "$FLANNEL_VERSION") || return 1
	(cd "$s" && CGO_ENABLED=1 go build -trimpath -tags "netgo osusergo" \
		-ldflags "-s -w -X github.com/flannel-io/flannel/pkg/version.Version=$FLANNEL_VERSION -extldflags -static" \
		-o "$bin/flanneld" .) || return 1
	! ldd "$bin/flanneld" >/dev/null 2>&1 && says "$FLANNEL_VERSION" "$bin/flanneld" --version
}

# --- pause: C, from k8s.io/kubernetes' build/pause/linux/pause.c, static ------------------

build_pause() {
	local dir
	dir=$(cd "$src" && GOFLAGS= go mod download -json "k8s.io/kubernetes@$KUBE_VERSION" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",*$/\1/p')
	[ -f "$dir/build/pause/linux/pause.c" ] || return 1
	gcc -Os -Wall -Werror -static -DVERSION="v$PAUSE_VERSION" -o "$bin/pause" "$dir/build/pause/linux/pause.c" || return 1
	strip "$bin/pause"
	says "v$PAUSE_VERSION" "$bin/pause" -v
}

artifact etcd build_etcd "etcd=$ETCD_VERSION" "$bin/etcd" "$bin/etcdctl" "$bin/etcdutl"
artifact containerd build_containerd "containerd=$CONTAINERD_VERSION" "$bin/containerd" "$bin/containerd-shim-runc-v2" "$bin/ctr"
artifact runc build_runc "runc=$RUNC_VERSION selinux=$RUNC_SELINUX" "$bin/runc"
artifact crictl build_crictl "crictl=$CRICTL_VERSION" "$bin/crictl"
artifact cni build_cni "cni=$CNI_PLUGINS_VERSION" "$bin/cni/bridge"
artifact flannel-cni build_flannel_cni "flannel-cni=$FLANNEL_CNI_SOURCE tag=$FLANNEL_CNI_TAG" "$bin/flannel"
artifact coredns build_coredns "coredns=$COREDNS_VERSION" "$bin/coredns"
artifact flanneld build_flanneld "flannel=$FLANNEL_VERSION" "$bin/flanneld"
artifact pause build_pause "pause=$PAUSE_VERSION kube=$KUBE_VERSION" "$bin/pause"
artifact kube build_kube "kube=$KUBE_VERSION" "$bin/kubelet" "$bin/kube-proxy"

# --- the upstream file layout in $www -------------------------------------------------

for c in kubeadm kubectl kube-apiserver kube-controller-manager kube-scheduler; do
	[ -x "$KUBE_BIN/$c" ] || die "$KUBE_BIN/$c missing: run testdata/kube/build.sh first"
done
says "$KUBE_VERSION" "$KUBE_BIN/kubeadm" version -o short || die "$KUBE_BIN/kubeadm is not $KUBE_VERSION"

# inputs_id FILE...: identifies the files' current versions (name, size, mtime).
inputs_id() { stat -L -c '%n %s %Y' "$@" | sha256sum | cut -c1-16; }
hex() { sha256sum "$1" | cut -d' ' -f1; }

# tgz OUT DIR MTIME MEMBER...: a reproducible tar.gz (sorted, fixed mtime, owner 0) of DIR's MEMBERs.
tgz() {
	local out=$1 dir=$2 mtime=$3
	shift 3
	[ -n "$mtime" ] || return 1
	tar -C "$dir" --sort=name --mtime="@$(date -d "$mtime" +%s)" --owner=0 --group=0 --numeric-owner \
		--mode='u+rwX,go+rX,go-w' --format=gnu -cf - "$@" | gzip -n >"$out.new" && mv -f "$out.new" "$out"
}

# place SRC DEST: DEST has SRC's content (a hard link when possible).
place() { mkdir -p "$(dirname "$2")" && { ln -f "$1" "$2" 2>/dev/null || cp -f "$1" "$2"; }; }

gh=$www/github.com
stage=$up/stage

layout_kube() {
	local d=$www/dl.k8s.io/release/$KUBE_VERSION/bin/linux/amd64 c
	for c in kubeadm kubelet kubectl; do
		if [ "$c" = kubelet ]; then place "$bin/$c" "$d/$c"; else place "$KUBE_BIN/$c" "$d/$c"; fi
		printf '%s' "$(hex "$d/$c")" >"$d/$c.sha256" # dl.k8s.io: the hex digest only
	done
}

layout_containerd() {
	local t
	t=$(release_time github.com/containerd/containerd/v2 "$CONTAINERD_VERSION") || return 1
	local v=${CONTAINERD_VERSION#v} d=$gh/containerd/containerd/releases/download/$CONTAINERD_VERSION c
	local f=containerd-$v-linux-amd64.tar.gz
	rm -rf "$stage" && mkdir -p "$stage/bin" "$d"
	for c in containerd containerd-shim-runc-v2 ctr; do cp "$bin/$c" "$stage/bin/"; done
	tgz "$d/$f" "$stage" "$t" bin
	echo "$(hex "$d/$f")  $f" >"$d/$f.sha256sum"
	rm -rf "$stage"
}

layout_runc() {
	local d=$gh/opencontainers/runc/releases/download/$RUNC_VERSION
	place "$bin/runc" "$d/runc.amd64"
	echo "$(hex "$d/runc.amd64")  runc.amd64" >"$d/runc.sha256sum"
}

layout_cni() {
	local t
	t=$(release_time github.com/containernetworking/plugins "$CNI_PLUGINS_VERSION") || return 1
	local d=$gh/containernetworking/plugins/releases/download/$CNI_PLUGINS_VERSION
	local f=cni-plugins-linux-amd64-$CNI_PLUGINS_VERSION.tgz
	rm -rf "$stage" && mkdir -p "$stage" "$d"
	cp "$bin"/cni/* "$src/cni-plugins/LICENSE" "$src/cni-plugins/README.md" "$stage/"
	tgz "$d/$f" "$stage" "$t" .
	echo "$(hex "$d/$f")  $f" >"$d/$f.sha256"
	rm -rf "$stage"
}

layout_crictl() {
	local t
	t=$(release_time sigs.k8s.io/cri-tools "$CRICTL_VERSION") || return 1
	local d=$gh/kubernetes-sigs/cri-tools/releases/download/$CRICTL_VERSION
	local f=crictl-$CRICTL_VERSION-linux-amd64.tar.gz
	rm -rf "$stage" && mkdir -p "$stage" "$d"
	cp "$bin/crictl" "$stage/"
	tgz "$d/$f" "$stage" "$t" crictl
	printf '%s' "$(hex "$d/$f")" >"$d/$f.sha256"
	rm -rf "$stage"
}

layout_flannel() {
	local d=$gh/flannel-io/flannel/releases/download/$FLANNEL_VERSION
	mkdir -p "$d"
	flannel_manifest >"$d/kube-flannel.yml"
}

# The lab's kube-flannel.yml: the same objects, names and images as flannel's release
# manifest (namespace kube-flannel, RBAC, the kube-flannel-cfg ConfigMap, the
# kube-flannel-ds DaemonSet). The Network is the placeholder 10.244.0.0/16.
flannel_manifest() {
	cat <<YAML
# flannel $FLANNEL_VERSION for the sealflow lab (written for the lab, same objects and images as upstream's)
apiVersion: v1
kind: Namespace
metadata:
  name: kube-flannel
  labels:
    k8s-app: flannel
    pod-security.kubernetes.io/enforce: privileged
---
apiVersion: v1
kind: ServiceAccount
metadata:
  name: flannel
  namespace: kube-flannel
  labels:
    k8s-app: flannel
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata:
  name: flannel
  labels:
    k8s-app: flannel
rules:
  - apiGroups: [""]
    resources: [pods]
    verbs: [get]
  - apiGroups: [""]
    resources: [nodes]
    verbs: [get, list, watch]
  - apiGroups: [""]
    resources: [nodes/status]
    verbs: [patch]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata:
  name: flannel
  labels:
    k8s-app: flannel
roleRef:
  apiGroup: rbac.authorization.k8s.io
  kind: ClusterRole
  name: flannel
subjects:
  - kind: ServiceAccount
    name: flannel
    namespace: kube-flannel
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: kube-flannel-cfg
  namespace: kube-flannel
  labels:
    app: flannel
    k8s-app: flannel
    tier: node
data:
  cni-conf.json: |
    {
      "name": "cbr0",
      "cniVersion": "0.3.1",
      "plugins": [
        {"type": "flannel", "delegate": {"hairpinMode": true, "isDefaultGateway": true}},
        {"type": "portmap", "capabilities": {"portMappings": true}}
      ]
    }
  net-conf.json: |
    {
      "Network": "10.244.0.0/16",
      "EnableNFTables": false,
      "Backend": {"Type": "vxlan"}
    }
---
apiVersion: apps/v1
kind: DaemonSet
metadata:
  name: kube-flannel-ds
  namespace: kube-flannel
  labels:
    app: flannel
    k8s-app: flannel
    tier: node
spec:
  selector:
    matchLabels:
      app: flannel
  template:
    metadata:
      labels:
        app: flannel
        tier: node
    spec:
      serviceAccountName: flannel
      hostNetwork: true
      priorityClassName: system-node-critical
      tolerations:
        - operator: Exists
          effect: NoSchedule
      affinity:
        nodeAffinity:
          requiredDuringSchedulingIgnoredDuringExecution:
            nodeSelectorTerms:
              - matchExpressions:
                  - {key: kubernetes.io/os, operator: In, values: [linux]}
      initContainers:
        - name: install-cni-plugin
          image: ghcr.io/flannel-io/flannel-cni-plugin:$FLANNEL_CNI_TAG
          command: [cp]
          args: [-f, /flannel, /opt/cni/bin/flannel]
          volumeMounts:
            - {name: cni-plugin, mountPath: /opt/cni/bin}
        - name: install-cni
          image: ghcr.io/flannel-io/flannel:$FLANNEL_VERSION
          command: [cp]
          args: [-f, /etc/kube-flannel/cni-conf.json, /etc/cni/net.d/10-flannel.conflist]
          volumeMounts:
            - {name: cni, mountPath: /etc/cni/net.d}
            - {name: flannel-cfg, mountPath: /etc/kube-flannel/}
      containers:
        - name: kube-flannel
          image: ghcr.io/flannel-io/flannel:$FLANNEL_VERSION
          command: [/opt/bin/flanneld]
          args: [--ip-masq, --kube-subnet-mgr]
          env:
            - name: POD_NAME
              valueFrom: {fieldRef: {fieldPath: metadata.name}}
            - name: POD_NAMESPACE
              valueFrom: {fieldRef: {fieldPath: metadata.namespace}}
            - {name: EVENT_QUEUE_DEPTH, value: "5000"}
            - {name: CONT_WHEN_CACHE_NOT_READY, value: "false"}
          resources:
            requests: {cpu: 100m, memory: 50Mi}
          securityContext:
            privileged: false
            capabilities:
              add: [NET_ADMIN, NET_RAW]
          volumeMounts:
            - {name: run, mountPath: /run/flannel}
            - {name: flannel-cfg, mountPath: /etc/kube-flannel/}
            - {name: xtables-lock, mountPath: /run/xtables.lock}
      volumes:
        - name: run
          hostPath: {path: /run/flannel}
        - name: cni-plugin
          hostPath: {path: /opt/cni/bin}
        - name: cni
          hostPath: {path: /etc/cni/net.d}
        - name: flannel-cfg
          configMap: {name: kube-flannel-cfg}
        - name: xtables-lock
          hostPath: {path: /run/xtables.lock, type: FileOrCreate}
YAML
}

artifact www-kube layout_kube "$(inputs_id "$KUBE_BIN/kubeadm" "$KUBE_BIN/kubectl" "$bin/kubelet")" \
	"$www/dl.k8s.io/release/$KUBE_VERSION/bin/linux/amd64/kubelet.sha256"
artifact www-containerd layout_containerd "$(inputs_id "$bin/containerd" "$bin/containerd-shim-runc-v2" "$bin/ctr")" \
	"$gh/containerd/containerd/releases/download/$CONTAINERD_VERSION/containerd-${CONTAINERD_VERSION#v}-linux-amd64.tar.gz.sha256sum"
artifact www-runc layout_runc "$(inputs_id "$bin/runc")" "$gh/opencontainers/runc/releases/download/$RUNC_VERSION/runc.sha256sum"
artifact www-cni layout_cni "$(inputs_id "$bin"/cni/*)" \
	"$gh/containernetworking/plugins/releases/download/$CNI_PLUGINS_VERSION/cni-plugins-linux-amd64-$CNI_PLUGINS_VERSION.tgz.sha256"
artifact www-crictl layout_crictl "$(inputs_id "$bin/crictl")" \
	"$gh/kubernetes-sigs/cri-tools/releases/download/$CRICTL_VERSION/crictl-$CRICTL_VERSION-linux-amd64.tar.gz.sha256"
artifact www-flannel layout_flannel "flannel=$FLANNEL_VERSION cni=$FLANNEL_CNI_TAG $(declare -f flannel_manifest | sha256sum | cut -c1-16)" \
	"$gh/flannel-io/flannel/releases/download/$FLANNEL_VERSION/kube-flannel.yml"

# --- the images: an OCI layout in $up/images, assembled by testdata/kube/mirror ----------

mirror_src_id=$(cd "$repo" && cat go.mod go.sum testdata/kube/mirror/*.go | sha256sum | cut -c1-16)
build_mirror() {
	(cd "$repo" && go build -trimpath -ldflags "-s -w" -o "$up/mirror" ./testdata/kube/mirror)
}
artifact mirror build_mirror "src=$mirror_src_id" "$up/mirror"

make_images() {
	"$up/mirror" images --bin "$bin" --bin "$KUBE_BIN" --out "$up/images" >"$up/images.txt"
}
host_inputs=(/bin/busybox /usr/sbin/xtables-nft-multi /usr/sbin/xtables-legacy-multi /usr/sbin/nft)
artifact images make_images "$(inputs_id "$up/mirror" "$bin"/* "$KUBE_BIN"/kube-* "${host_inputs[@]}")" "$up/images/index.json"

if [ ${#timings[@]} -gt 0 ]; then log "built: ${timings[*]}"; fi
echo "$up"
