package kubepkg

// Tests of the package's host scripts (assets/shell/init.sh and clean.sh) on a
// throwaway copy of this machine: each scenario runs them chrooted into an overlay
// of the machine's / (upper dir on a tmpfs) inside private mount, network, PID and
// UTS namespaces, with a fresh tmpfs on /run. Every file change lands in the
// overlay's upper dir, which the test copies after each step and compares with the
// state before init.sh; the machine itself is never written (sysctls are the new
// network namespace's, swapon/swapoff/modprobe are stand-ins that only log).
//
// The package's binaries are small shell stand-ins (named as such in their first
// lines): these tests check the scripts' bookkeeping, not the binaries. The stand-in
// ctr keeps an image list in /var/lib/containerd/standin-images, answering only while
// the stand-in service manager says containerd is active.

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"
)

const scriptPause = "registry.k8s.io/pause:3.10.1"

// The package's images: the ref as manifest.json has it, the full name containerd uses.
var scriptImages = []struct{ ref, full string }{
	{"registry.k8s.io/kube-apiserver:v1.34.4", "registry.k8s.io/kube-apiserver:v1.34.4"},
	{scriptPause, scriptPause},
	{"flannel/flannel:v0.27.4", "docker.io/flannel/flannel:v0.27.4"},
}

// scriptLayout writes images.tar: an OCI image layout holding scriptImages, each a
// real image of one uncompressed layer with one file, annotated with its full name
// as the package builder does. It returns the tar and each image's manifest digest.
func scriptLayout(t *testing.T, dir string) ([]byte, map[string]string) {
	t.Helper()
	lay := filepath.Join(dir, "layout")
	blobs := filepath.Join(lay, "blobs", "sha256")
	if err := os.MkdirAll(blobs, 0o755); err != nil {
		t.Fatal(err)
	}
	blob := func(b []byte) (string, int) {
		sum := sha256.Sum256(b)
		if err := os.WriteFile(filepath.Join(blobs, hex.EncodeToString(sum[:])), b, 0o644); err != nil {
			t.Fatal(err)
		}
		return "sha256:" + hex.EncodeToString(sum[:]), len(b)
	}
	digests := map[string]string{}
	var lines []string
	for _, im := range scriptImages {
		var layer bytes.Buffer
		tw := tar.NewWriter(&layer)
		content := []byte("image " + im.full + "\n")
		if err := tw.WriteHeader(&tar.Header{Name: "hello.txt", Mode: 0o644, Size: int64(len(content)), ModTime: time.Unix(0, 0), Typeflag: tar.TypeReg}); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write(content); err != nil {
			t.Fatal(err)
		}
		if err := tw.Close(); err != nil {
			t.Fatal(err)
		}
		ld, ls := blob(layer.Bytes())
		cd, cs := blob([]byte(fmt.Sprintf(`{"architecture":%q,"os":"linux","rootfs":{"type":"layers","diff_ids":[%q]},"config":{"Cmd":["/hello"]}}`, scriptArch(t), ld)))
		md, ms := blob([]byte(fmt.Sprintf(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json",`+
			`"config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":%q,"size":%d},`+
			`"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":%q,"size":%d}]}`, cd, cs, ld, ls)))
		digests[im.full] = md
		tag := im.full[strings.LastIndex(im.full, ":")+1:]
		lines = append(lines, fmt.Sprintf(`{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":%q,"size":%d,`+
			`"annotations":{"io.containerd.image.name":%q,"org.opencontainers.image.ref.name":%q}}`, md, ms, im.full, tag))
	}
	index := "{\"schemaVersion\":2,\"mediaType\":\"application/vnd.oci.image.index.v1+json\",\"manifests\":[\n" + strings.Join(lines, ",\n") + "\n]}\n"
	if err := os.WriteFile(filepath.Join(lay, "index.json"), []byte(index), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(lay, "oci-layout"), []byte("{\"imageLayoutVersion\":\"1.0.0\"}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	tarPath := filepath.Join(dir, "images.tar")
	if out, err := exec.Command("tar", "-C", lay, "-cf", tarPath, "oci-layout", "index.json", "blobs").CombinedOutput(); err != nil {
		t.Fatalf("tar: %v: %s", err, out)
	}
	b, err := os.ReadFile(tarPath)
	if err != nil {
		t.Fatal(err)
	}
	return b, digests
}

// Stand-ins. Each records its calls in /out/calls (outside the overlay).
const standinCtr = `#!/bin/bash
# stand-in for ctr (scripts_test.go): images in /var/lib/containerd/standin-images
# as "REF DIGEST LABELS" lines; answers only while /out/active/containerd exists.
set -eu
echo "ctr $*" >>/out/calls
while [ $# -gt 0 ]; do
	case $1 in --address | -a | -n | --namespace) shift 2 ;; *) break ;; esac
done
[ -e /out/active/containerd ] || { echo "ctr stand-in: containerd is not running" >&2; exit 1; }
db=/var/lib/containerd/standin-images
touch "$db"
case "$1 ${2:-}" in
"version "*) echo "Server: containerd stand-in" ;;
"images import")
	tar -xOf "$3" index.json | sed -n 's/.*"digest":"\([^"]*\)".*"io.containerd.image.name":"\([^"]*\)".*/\2 \1/p' |
		while read -r ref dig; do
			awk -v r="$ref" '$1 != r' "$db" >"$db.new"
			echo "$ref $dig -" >>"$db.new"
			mv "$db.new" "$db"
		done ;;
"images ls")
	if [ "${3:-}" = -q ]; then awk '{ print $1 }' "$db"; else
		echo "REF TYPE DIGEST SIZE PLATFORMS LABELS"
		awk '{ print $1, "application/vnd.oci.image.manifest.v1+json", $2, "1.0 KiB", "linux/amd64", $3 }' "$db"
	fi ;;
"images label")
	awk -v r="$3" -v l="$4" '$1 == r { $3 = ($3 == "-") ? l : $3 "," l } { print }' "$db" >"$db.new"
	mv "$db.new" "$db" ;;
"images rm")
	shift 2
	for r; do awk -v r="$r" '$1 != r' "$db" >"$db.new"; mv "$db.new" "$db"; done ;;
"tasks ls" | "containers ls") ;;
*) echo "ctr stand-in: not supported: $*" >&2; exit 1 ;;
esac
`

const standinCrictl = `#!/bin/bash
# stand-in for crictl (scripts_test.go)
echo "crictl $*" >>/out/calls
case " $* " in *" info "*) [ -e /out/active/containerd ] ;; esac
`

// A systemctl that works without systemd as PID 1 (as a lab host's own service
// manager would): unit state as systemd keeps it, activity in /out/active.
const standinSystemctl = `#!/bin/bash
# stand-in for a working systemctl (scripts_test.go)
echo "systemctl $*" >>/out/calls
args=()
for a; do case $a in -*) ;; *) args+=("$a") ;; esac; done
verb=${args[0]} u=${args[1]:-}
u=${u%.service}
wants=/etc/systemd/system/multi-user.target.wants
case $verb in
daemon-reload | try-restart) ;;
enable) ln -sfn "/etc/systemd/system/$u.service" "$wants/$u.service" ;;
disable) rm -f "$wants/$u.service" ;;
is-enabled) [ -L "$wants/$u.service" ] ;;
start | restart)
	[ -f "/etc/systemd/system/$u.service" ] || { echo "Unit $u.service not found." >&2; exit 5; }
	mkdir -p /out/active && touch "/out/active/$u"
	if [ "$u" = containerd ] && [ -e /sealflow-test/real-containerd ]; then
		# The package's real containerd, as its unit says.
		[ ! -s /out/active/containerd.pid ] || kill "$(cat /out/active/containerd.pid)" 2>/dev/null || :
		setsid /usr/local/bin/containerd </dev/null >>/out/containerd.log 2>&1 &
		echo $! >/out/active/containerd.pid
		for _ in $(seq 100); do [ -S /run/containerd/containerd.sock ] && break; sleep 0.1; done
	elif [ "$u" = containerd ]; then
		mkdir -p /var/lib/containerd /run/containerd
	fi ;;
stop)
	if [ -s "/out/active/$u.pid" ]; then
		pid=$(cat "/out/active/$u.pid")
		kill "$pid" 2>/dev/null
		for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
	fi
	rm -f "/out/active/$u" "/out/active/$u.pid" ;;
is-active) [ -e "/out/active/$u" ] ;;
*) echo "systemctl stand-in: not supported: $*" >&2; exit 1 ;;
esac
`

// systemctl where systemd is not running.
const standinNoSystemd = `#!/bin/bash
# stand-in for systemctl on a host without systemd (scripts_test.go)
echo "systemctl $*" >>/out/calls
echo "System has not been booted with systemd as init system (PID 1). Can't operate." >&2
exit 1
`

const standinLogOnly = `#!/bin/bash
# stand-in (scripts_test.go): logs the call, changes nothing
echo "${0##*/} $*" >>/out/calls
`

const standinModprobe = `#!/bin/bash
# stand-in for modprobe (scripts_test.go): loads nothing
echo "modprobe $*" >>/out/calls
echo "modprobe stand-in: not loading $*" >&2
exit 1
`

type scriptScenario struct {
	name      string
	systemctl string            // stand-in systemctl
	files     map[string]string // extra fixture files (path → content; mode 0755 under */bin/)
	setup     string            // shell run in the host before the first snapshot
	steps     []scriptStep
	real      string            // a directory with real containerd and ctr binaries for the package
	digests   map[string]string // filled in: each image's manifest digest
}

type scriptStep struct {
	name   string
	script string // init or clean
	env    []string
	shell  string // instead of a script: shell commands run in the host
}

type scriptRun struct {
	digests map[string]string
	dir     string // test dir
	fixture string // the fixture layer (over the machine's /)
	steps   map[string]scriptResult
}

type scriptResult struct {
	rc             int
	stdout, stderr string
	upper          string // copy of the overlay's upper dir after the step
	run            string // listing of /run after the step
}

func scriptRequire(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root (mount namespaces, overlayfs)")
	}
	for _, c := range []string{"unshare", "chroot", "tar", "sha256sum"} {
		if _, err := exec.LookPath(c); err != nil {
			t.Skipf("needs %s", c)
		}
	}
}

// scriptFixture writes the fixture layer: the fake unpacked package in /root/kube,
// the stand-ins in /sealflow-test/bin, a whiteout over every container runtime the
// machine has (so the copy is a host without one), an /etc/fstab with a swap line,
// an older /etc/containerd/config.toml and /usr/bin/kubectl (init.sh replaces
// them, clean.sh puts them back).
func scriptFixture(t *testing.T, dir string, sc *scriptScenario) string {
	t.Helper()
	fx := filepath.Join(dir, "fixture")
	write := func(p, content string, mode os.FileMode) {
		t.Helper()
		full := filepath.Join(fx, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(content), mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(full, mode); err != nil {
			t.Fatal(err)
		}
	}
	// The package.
	kube := "root/kube"
	var files []map[string]any
	add := func(rel, content string, mode os.FileMode) {
		write(filepath.Join(kube, rel), content, mode)
		sum := sha256.Sum256([]byte(content))
		files = append(files, map[string]any{"path": rel, "size": len(content), "sha256": hex.EncodeToString(sum[:]), "mode": fmt.Sprintf("%04o", mode)})
	}
	bins := map[string]string{"ctr": standinCtr, "crictl": standinCrictl}
	for _, b := range []string{"kubeadm", "kubelet", "kubectl", "runc", "containerd", "containerd-shim-runc-v2"} {
		bins[b] = fmt.Sprintf("#!/bin/sh\n# stand-in for %s (scripts_test.go)\necho \"%s stand-in\"\n", b, b)
	}
	if sc.real != "" {
		for _, b := range []string{"containerd", "ctr", "crictl"} {
			c, err := os.ReadFile(filepath.Join(sc.real, b))
			if errors.Is(err, fs.ErrNotExist) && b == "crictl" {
				continue // optional: the stand-in then
			}
			if err != nil {
				t.Fatal(err)
			}
			bins[b] = string(c)
		}
		write("sealflow-test/real-containerd", "", 0o644)
	}
	for _, b := range []string{"kubeadm", "kubelet", "kubectl", "crictl", "runc", "containerd", "containerd-shim-runc-v2", "ctr"} {
		add("bin/"+b, bins[b], 0o755)
	}
	for _, b := range []string{"bridge", "host-local", "loopback", "portmap", "flannel"} {
		add("cni/bin/"+b, fmt.Sprintf("#!/bin/sh\n# stand-in for the CNI plugin %s (scripts_test.go)\n", b), 0o755)
	}
	add("manifests/kube-flannel.yml", "# stand-in for flannel's manifest\n", 0o644)
	for _, sub := range []string{"shell", "conf"} {
		ents, err := os.ReadDir(filepath.Join("assets", sub))
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range ents {
			b, err := os.ReadFile(filepath.Join("assets", sub, e.Name()))
			if err != nil {
				t.Fatal(err)
			}
			mode := os.FileMode(0o644)
			if sub == "shell" {
				mode = 0o755
			}
			add(sub+"/"+e.Name(), string(b), mode)
		}
	}
	// images.tar: an OCI layout of small real images (one file each), one index entry a
	// line (the stand-in ctr reads the index with sed).
	tb, digests := scriptLayout(t, dir)
	sc.digests = digests
	add("images/images.tar", string(tb), 0o644)
	var imgs []map[string]string
	for _, im := range scriptImages {
		imgs = append(imgs, map[string]string{"ref": im.ref, "digest": digests[im.full], "from": "kubeadm"})
	}
	m := map[string]any{
		"format": 1, "kubernetes": "v1.34.4", "arch": scriptArch(t),
		"versions": map[string]string{"containerd": "v2.2.9", "runc": "v1.3.0"},
		"sources":  []map[string]string{{"name": "kubeadm", "url": "https://dl.k8s.io/x", "sha256": strings.Repeat("0", 64), "verified": "pinned"}},
		"files":    files, "images": imgs,
		"manifest": "kubernetes: v1.34.4\nimages: {kubeadm: true}\n",
	}
	mj, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	write(filepath.Join(kube, "manifest.json"), string(mj)+"\n", 0o644)

	// Stand-ins on PATH first: the host's service manager and the tools that would
	// change the machine.
	write("sealflow-test/bin/systemctl", sc.systemctl, 0o755)
	write("sealflow-test/bin/swapoff", standinLogOnly, 0o755)
	write("sealflow-test/bin/swapon", standinLogOnly, 0o755)
	write("sealflow-test/bin/modprobe", standinModprobe, 0o755)
	if err := os.MkdirAll(filepath.Join(fx, "out"), 0o755); err != nil {
		t.Fatal(err)
	}

	// What the host had before.
	write("etc/fstab", "# /etc/fstab of a test host\nUUID=1111 / ext4 errors=remount-ro 0 1\n/swap.img none swap sw 0 0\n", 0o644)
	write("etc/containerd/config.toml", "# an older containerd configuration the host had\n", 0o600)
	write("usr/bin/kubectl", "#!/bin/sh\n# stand-in for the host's older kubectl (scripts_test.go)\n", 0o755)
	for p, c := range sc.files {
		mode := os.FileMode(0o644)
		if strings.Contains(p, "/bin/") {
			mode = 0o755
		}
		write(p, c, mode)
	}

	// hide makes p absent in the copy (a whiteout), or, where the fixture has it as a
	// directory, hides what the machine has below it (an opaque directory).
	hide := func(p string) {
		t.Helper()
		if _, err := os.Lstat(p); err != nil {
			if _, err := os.Lstat(filepath.Join(fx, p)); err != nil {
				return // not on this machine, not in the fixture
			}
		}
		parent, err := filepath.EvalSymlinks(filepath.Dir(p))
		if err != nil {
			parent = filepath.Dir(p)
		}
		full := filepath.Join(fx, parent, filepath.Base(p))
		if fi, err := os.Lstat(full); err == nil {
			if fi.IsDir() {
				if err := syscall.Setxattr(full, "trusted.overlay.opaque", []byte("y"), 0); err != nil {
					t.Fatalf("opaque %s: %v", full, err)
				}
			}
			return
		}
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := syscall.Mknod(full, syscall.S_IFCHR|0o000, 0); err != nil {
			t.Fatalf("whiteout %s: %v", full, err)
		}
	}
	for _, d := range []string{"/usr/bin", "/usr/sbin", "/usr/local/bin", "/usr/local/sbin", "/bin", "/sbin", "/opt/bin"} {
		for _, b := range []string{"docker", "dockerd", "containerd", "ctr", "crictl", "runc", "kubeadm", "kubelet", "kubectl"} {
			hide(filepath.Join(d, b))
		}
	}
	for _, d := range []string{"/etc/systemd/system", "/lib/systemd/system", "/usr/lib/systemd/system", "/usr/local/lib/systemd/system",
		"/etc/systemd/system/multi-user.target.wants", "/etc/systemd/system/sockets.target.wants"} {
		for _, u := range []string{"docker.service", "docker.socket", "containerd.service", "kubelet.service"} {
			hide(filepath.Join(d, u))
		}
	}
	for _, p := range []string{"/etc/containerd", "/etc/crictl.yaml", "/etc/kubernetes", "/var/lib/kubelet", "/var/lib/containerd",
		"/etc/cni", "/opt/cni", "/var/lib/cni", "/var/lib/sealflow-kube", "/etc/modules-load.d/k8s.conf", "/etc/sysctl.d/k8s.conf",
		"/etc/systemd/system/kubelet.service.d", "/opt/containerd", "/var/lib/etcd"} {
		hide(p)
	}
	return fx
}

func scriptArch(t *testing.T) string {
	out, err := exec.Command("uname", "-m").Output()
	if err != nil {
		t.Fatal(err)
	}
	switch a := strings.TrimSpace(string(out)); a {
	case "x86_64":
		return "amd64"
	case "aarch64":
		return "arm64"
	default:
		return a
	}
}

// runScripts runs the scenario's steps in one throwaway host and returns each
// step's result.
func runScripts(t *testing.T, sc scriptScenario) *scriptRun {
	t.Helper()
	dir := t.TempDir()
	r := &scriptRun{dir: dir, fixture: scriptFixture(t, dir, &sc), steps: map[string]scriptResult{}}
	r.digests = sc.digests
	for _, d := range []string{"m", "root", "snap", "out"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	const path = "/sealflow-test/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
	var sh strings.Builder
	fmt.Fprintf(&sh, `set -eu
T=%q R=%q/root
mount -t tmpfs -o mode=0755 tmpfs "$T/m"
mkdir "$T/m/upper" "$T/m/work" "$T/m/fix"
cp -a "$T/fixture/." "$T/m/fix/"
mount -t overlay overlay -o "lowerdir=$T/m/fix:/,upperdir=$T/m/upper,workdir=$T/m/work" "$R"
mount -t proc proc "$R/proc"
mount --rbind /dev "$R/dev"
mount -t sysfs -o ro sysfs "$R/sys"
mount -t tmpfs -o mode=0755 tmpfs "$R/run"
mount --bind "$T/out" "$R/out"
ip link set lo up 2>/dev/null || :
hostname sealflow-test 2>/dev/null || :
snap() {
	cp -a "$T/m/upper" "$T/snap/$1"
	(cd "$R/run" && find . -printf '%%p %%y %%m %%U:%%G %%s %%l\n' | sort && find . -type f -exec sha256sum {} + | sort) >"$T/out/$1.run"
	for k in net/ipv4/ip_forward net/bridge/bridge-nf-call-iptables net/bridge/bridge-nf-call-ip6tables; do
		echo "sysctl $k=$(cat /proc/sys/$k 2>/dev/null || echo absent)"
	done >>"$T/out/$1.run"
	{
		echo "links:"; ip -o link show | awk -F': ' '{ print $2 }' | sort
		echo "mounts:"; awk -v r="$R" 'index($5, r) == 1 { print $5 }' /proc/self/mountinfo | sort
		for v in iptables ip6tables; do
			echo "$v:"; if command -v $v-save >/dev/null; then $v-save | grep -v '^#' | sed 's/\[[0-9]*:[0-9]*\]//'; fi
		done
		# nftables: the tables, and the contents of those iptables-nft does not own (its
		# own are compared through iptables-save: it may leave empty built-in chains).
		echo "nft:"
		if command -v nft >/dev/null; then
			nft list tables | while read -r _ fam name; do
				echo "table $fam $name"
				case $name in filter | nat | mangle | raw | security) ;; *) nft list table "$fam" "$name" ;; esac
			done
		fi
	} >>"$T/out/$1.run" 2>&1
}
step() {
	local name=$1
	shift
	set +e
	chroot "$R" /usr/bin/env -i PATH=%s HOME=/root LANG=C.UTF-8 "$@" >"$T/out/$name.stdout" 2>"$T/out/$name.stderr"
	echo $? >"$T/out/$name.rc"
	set -e
	snap "$name"
}
chroot "$R" /usr/bin/env -i PATH=%s /bin/bash -euc %s
snap base
`, dir, dir, path, path, scriptQuote(sc.setup))
	for _, s := range sc.steps {
		args := append([]string{}, s.env...)
		if s.shell != "" {
			args = append(args, "/bin/bash", "-euc", s.shell)
		} else {
			args = append(args, "/bin/bash", "/root/kube/shell/"+s.script+".sh")
		}
		q := make([]string, len(args))
		for i, a := range args {
			q[i] = scriptQuote(a)
		}
		fmt.Fprintf(&sh, "step %s %s\n", s.name, strings.Join(q, " "))
	}
	harness := filepath.Join(dir, "harness.sh")
	if err := os.WriteFile(harness, []byte(sh.String()), 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("unshare", "--mount", "--net", "--pid", "--uts", "--fork", "--mount-proc", "--propagation", "private", "/bin/bash", harness)
	if out, err := cmd.CombinedOutput(); err != nil {
		if strings.Contains(string(out), "overlay") && strings.Contains(string(out), "mount") {
			t.Skipf("no overlayfs over / here: %s", out)
		}
		t.Fatalf("harness: %v\n%s", err, out)
	}
	for _, s := range append([]scriptStep{{name: "base"}}, sc.steps...) {
		res := scriptResult{upper: filepath.Join(dir, "snap", s.name)}
		read := func(ext string) string {
			b, err := os.ReadFile(filepath.Join(dir, "out", s.name+ext))
			if err != nil {
				t.Fatal(err)
			}
			return string(b)
		}
		res.run = read(".run")
		if s.name != "base" {
			res.stdout, res.stderr = read(".stdout"), read(".stderr")
			if _, err := fmt.Sscan(read(".rc"), &res.rc); err != nil {
				t.Fatal(err)
			}
			t.Logf("%s: rc %d\n%s%s", s.name, res.rc, res.stdout, res.stderr)
		}
		r.steps[s.name] = res
	}
	return r
}

// scriptQuote quotes s for the shell.
func scriptQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

// file returns the content of path in the host after step (through the layers).
func (r *scriptRun) file(t *testing.T, step, path string) (string, bool) {
	t.Helper()
	e, ok := scriptLookup([]string{r.steps[step].upper, r.fixture, "/"}, strings.TrimPrefix(path, "/"), true)
	if !ok {
		return "", false
	}
	return e.content, true
}

func (r *scriptRun) mustFile(t *testing.T, step, path string) string {
	t.Helper()
	c, ok := r.file(t, step, path)
	if !ok {
		t.Fatalf("after %s: %s is missing", step, path)
	}
	return c
}

func (r *scriptRun) calls(t *testing.T) string {
	b, err := os.ReadFile(filepath.Join(r.dir, "out", "calls"))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		t.Fatal(err)
	}
	return string(b)
}

// scriptEntry is what a path is in the merged view.
type scriptEntry struct {
	desc    string // type, mode, owner, size, checksum or link target
	content string // regular files, when asked
}

func scriptIsWhiteout(fi fs.FileInfo) bool {
	st, ok := fi.Sys().(*syscall.Stat_t)
	return fi.Mode()&fs.ModeCharDevice != 0 && ok && st.Rdev == 0
}

func scriptIsOpaque(p string) bool {
	buf := make([]byte, 8)
	n, err := syscall.Getxattr(p, "trusted.overlay.opaque", buf)
	return err == nil && n == 1 && buf[0] == 'y'
}

// scriptLookup resolves rel through overlay layers (top first), as overlayfs does:
// a whiteout hides, an opaque directory hides the layers below it.
func scriptLookup(layers []string, rel string, withContent bool) (scriptEntry, bool) {
	parts := strings.Split(rel, "/")
	for _, l := range layers {
		hidden := false
		for i := 1; i < len(parts); i++ {
			fi, err := os.Lstat(filepath.Join(l, filepath.Join(parts[:i]...)))
			if err != nil {
				break
			}
			if scriptIsWhiteout(fi) || !fi.IsDir() {
				return scriptEntry{}, false
			}
			if l != "/" && scriptIsOpaque(filepath.Join(l, filepath.Join(parts[:i]...))) {
				hidden = true
			}
		}
		p := filepath.Join(l, rel)
		fi, err := os.Lstat(p)
		if err != nil {
			if hidden {
				return scriptEntry{}, false
			}
			continue
		}
		if scriptIsWhiteout(fi) {
			return scriptEntry{}, false
		}
		st := fi.Sys().(*syscall.Stat_t)
		e := scriptEntry{}
		switch {
		case fi.IsDir():
			e.desc = fmt.Sprintf("dir %o %d:%d", fi.Mode().Perm()|fi.Mode()&(fs.ModeSetgid|fs.ModeSetuid|fs.ModeSticky), st.Uid, st.Gid)
		case fi.Mode()&fs.ModeSymlink != 0:
			target, _ := os.Readlink(p)
			e.desc = fmt.Sprintf("link %d:%d -> %s", st.Uid, st.Gid, target)
		case fi.Mode().IsRegular():
			b, err := os.ReadFile(p)
			if err != nil {
				e.desc = "unreadable: " + err.Error()
				break
			}
			sum := sha256.Sum256(b)
			e.desc = fmt.Sprintf("file %o %d:%d %d %x", fi.Mode().Perm(), st.Uid, st.Gid, len(b), sum[:8])
			if withContent {
				e.content = string(b)
			}
		default:
			e.desc = fmt.Sprintf("special %v %d:%d", fi.Mode(), st.Uid, st.Gid)
		}
		return e, true
	}
	return scriptEntry{}, false
}

// scriptPaths lists every path in an upper dir copy (relative, no leading slash).
func scriptPaths(t *testing.T, upper string, into map[string]bool) {
	t.Helper()
	err := filepath.WalkDir(upper, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p != upper {
			into[strings.TrimPrefix(p, upper+"/")] = true
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// diffHost compares the host after two steps over every path either changed; it
// returns one line per difference.
func (r *scriptRun) diffHost(t *testing.T, a, b string, ignore ...string) []string {
	t.Helper()
	paths := map[string]bool{}
	scriptPaths(t, r.steps[a].upper, paths)
	scriptPaths(t, r.steps[b].upper, paths)
	ignored := func(p string) bool {
		for _, i := range ignore {
			if p == i || strings.HasPrefix(p, i+"/") {
				return true
			}
		}
		return false
	}
	var diffs []string
	for p := range paths {
		if ignored("/" + p) {
			continue
		}
		ea, oka := scriptLookup([]string{r.steps[a].upper, r.fixture, "/"}, p, false)
		eb, okb := scriptLookup([]string{r.steps[b].upper, r.fixture, "/"}, p, false)
		switch {
		case oka && !okb:
			diffs = append(diffs, fmt.Sprintf("/%s: %s after %s, missing after %s", p, ea.desc, a, b))
		case !oka && okb:
			diffs = append(diffs, fmt.Sprintf("/%s: missing after %s, %s after %s", p, a, eb.desc, b))
		case oka && okb && ea.desc != eb.desc:
			diffs = append(diffs, fmt.Sprintf("/%s: %s after %s, %s after %s", p, ea.desc, a, eb.desc, b))
		}
	}
	runLines := func(s string) string {
		var keep []string
		for _, l := range strings.Split(s, "\n") {
			f := strings.Fields(l)
			if len(f) > 0 && (ignored("/run"+strings.TrimPrefix(f[0], ".")) || len(f) > 1 && ignored("/run"+strings.TrimPrefix(f[1], "."))) {
				continue
			}
			keep = append(keep, l)
		}
		return strings.Join(keep, "\n")
	}
	if ra, rb := runLines(r.steps[a].run), runLines(r.steps[b].run); ra != rb {
		diffs = append(diffs, fmt.Sprintf("/run, sysctls, links, mounts or rules differ (- after %s, + after %s):\n%s", a, b, scriptLineDiff(ra, rb)))
	}
	sort.Strings(diffs)
	return diffs
}

// scriptLineDiff lists the lines only in a (-) and only in b (+), in order.
func scriptLineDiff(a, b string) string {
	count := func(s string) map[string]int {
		m := map[string]int{}
		for _, l := range strings.Split(s, "\n") {
			m[l]++
		}
		return m
	}
	ca, cb := count(a), count(b)
	var out []string
	for _, l := range strings.Split(a, "\n") {
		if cb[l] < ca[l] {
			out = append(out, "- "+l)
		}
	}
	for _, l := range strings.Split(b, "\n") {
		if ca[l] < cb[l] {
			out = append(out, "+ "+l)
		}
	}
	return strings.Join(out, "\n")
}

func (r *scriptRun) sameHost(t *testing.T, a, b string, ignore ...string) {
	t.Helper()
	if d := r.diffHost(t, a, b, ignore...); len(d) > 0 {
		t.Errorf("the host after %s differs from after %s:\n%s", b, a, strings.Join(d, "\n"))
	}
}

func (r *scriptRun) ok(t *testing.T, step string) scriptResult {
	t.Helper()
	s := r.steps[step]
	if s.rc != 0 {
		t.Fatalf("%s: exit status %d\n%s%s", step, s.rc, s.stdout, s.stderr)
	}
	return s
}

func scriptContains(t *testing.T, what, text string, wants ...string) {
	t.Helper()
	for _, w := range wants {
		if !strings.Contains(text, w) {
			t.Errorf("%s does not contain %q:\n%s", what, w, text)
		}
	}
}

// scriptHostRules are the host's own firewall rules (in the test's network namespace),
// which clean.sh must leave alone.
const scriptHostRules = `
mkdir -p /run/mount # util-linux's (its utab), there on any host that mounted something
for v in iptables ip6tables; do
	command -v $v >/dev/null || continue
	$v -N HOST-KEEP && $v -A INPUT -j HOST-KEEP && $v -A HOST-KEEP -p tcp --dport 22 -j ACCEPT
	$v -t nat -N HOST-NAT && $v -t nat -A POSTROUTING -j HOST-NAT
done
`

// scriptCluster leaves on the host what a cluster leaves after kubeadm reset: state
// directories, mounts, CNI links, kube-proxy's and the CNI's iptables chains and
// nftables table.
const scriptCluster = `
mkdir -p /etc/kubernetes/manifests /etc/kubernetes/pki /var/lib/kubelet/pods/p1/volumes /var/lib/etcd/member \
	/etc/cni/net.d /var/lib/cni/networks/cbr0 /var/log/pods/ns_p1 /var/log/containers /run/flannel \
	/usr/libexec/kubernetes/kubelet-plugins/volume/exec /opt/containerd/bin \
	/run/containerd/io.containerd.runtime.v2.task/k8s.io/c1/rootfs /run/netns
echo '{"name":"cbr0"}' >/etc/cni/net.d/10-flannel.conflist
echo 'apiVersion: v1' >/etc/kubernetes/admin.conf
echo 'FLANNEL_NETWORK=10.244.0.0/16' >/run/flannel/subnet.env
echo 10.244.0.2 >/var/lib/cni/networks/cbr0/last_reserved_ip.0
mount -t tmpfs tmpfs /var/lib/kubelet/pods/p1/volumes
mount -t tmpfs tmpfs /run/containerd/io.containerd.runtime.v2.task/k8s.io/c1/rootfs
touch /run/netns/cni-1234 && mount --bind /proc/self/ns/net /run/netns/cni-1234
ip link add cni0 type bridge
ip link add veth1a2b type veth peer name eth0p
ip link set veth1a2b master cni0
ip link add flannel.1 type vxlan id 1 dstport 8472 2>/dev/null || :
if command -v iptables >/dev/null; then
	iptables -t nat -N KUBE-SERVICES
	iptables -t nat -A OUTPUT -m comment --comment "kubernetes service portals" -j KUBE-SERVICES
	iptables -t nat -N KUBE-POSTROUTING
	iptables -t nat -A POSTROUTING -m comment --comment "kubernetes postrouting rules" -j KUBE-POSTROUTING
	iptables -t nat -A KUBE-POSTROUTING -j MASQUERADE
	iptables -t nat -N CNI-HOSTPORT-DNAT
	iptables -t nat -A PREROUTING -m addrtype --dst-type LOCAL -j CNI-HOSTPORT-DNAT
	iptables -N FLANNEL-FWD
	iptables -A FORWARD -m comment --comment "flanneld forward" -j FLANNEL-FWD
	iptables -A FLANNEL-FWD -s 10.244.0.0/16 -j ACCEPT
	iptables -N KUBE-FIREWALL
	iptables -A INPUT -j KUBE-FIREWALL
	ip6tables -t nat -N KUBE-SERVICES
	ip6tables -t nat -A OUTPUT -j KUBE-SERVICES
fi
if command -v nft >/dev/null; then
	nft add table ip kube-proxy
	nft add chain ip kube-proxy services
	nft add table ip6 kube-proxy
fi
`

var scriptOnce = []scriptStep{
	{name: "init1", script: "init", env: []string{"SEALFLOW_CONTAINERD_EXTRA=[plugins.'io.containerd.cri.v1.runtime']\n  restrict_oom_score_adj = true"}},
	{name: "init2", script: "init", env: []string{"SEALFLOW_CONTAINERD_EXTRA=[plugins.'io.containerd.cri.v1.runtime']\n  restrict_oom_score_adj = true"}},
	{name: "cluster", shell: scriptCluster},
	{name: "clean1", script: "clean"},
	{name: "clean2", script: "clean"},
}

// A host whose systemctl works (without systemd as PID 1): containerd started, images
// imported and pinned; init.sh twice changes nothing the second time; clean.sh puts
// the host back byte for byte, twice.
func TestScriptsInitClean(t *testing.T) {
	scriptRequire(t)
	r := runScripts(t, scriptScenario{name: "systemctl", systemctl: standinSystemctl, setup: scriptHostRules, steps: scriptOnce})

	r.ok(t, "init1")
	cfg := r.mustFile(t, "init1", "/etc/containerd/config.toml")
	scriptContains(t, "config.toml", cfg,
		"version = 3\n",
		`sandbox = "`+scriptPause+`"`,
		"SystemdCgroup = false\n", // no systemd as PID 1 here
		`BinaryName = "/usr/local/sbin/runc"`,
		`imports = ["/etc/containerd/conf.d/*.toml"]`,
		`bin_dirs = ["/opt/cni/bin"]`)
	if strings.Contains(cfg, "restrict_oom_score_adj") || strings.Contains(cfg, "@SANDBOX_IMAGE@") ||
		strings.Contains(cfg, "@RUNC@") || strings.Contains(cfg, "@SYSTEMD_CGROUP@") {
		t.Errorf("config.toml has the lab's setting or a placeholder:\n%s", cfg)
	}
	extra := r.mustFile(t, "init1", "/etc/containerd/conf.d/90-sealflow-extra.toml")
	scriptContains(t, "the drop-in", extra, "version = 3\n", "restrict_oom_score_adj = true")
	scriptContains(t, "crictl.yaml", r.mustFile(t, "init1", "/etc/crictl.yaml"), "runtime-endpoint: unix:///run/containerd/containerd.sock\n")
	scriptContains(t, "modules-load.d/k8s.conf", r.mustFile(t, "init1", "/etc/modules-load.d/k8s.conf"),
		"overlay\n", "br_netfilter\n", "ip_vs\n", "ip_vs_rr\n", "ip_vs_wrr\n", "ip_vs_sh\n", "nf_conntrack\n")
	scriptContains(t, "sysctl.d/k8s.conf", r.mustFile(t, "init1", "/etc/sysctl.d/k8s.conf"),
		"net.ipv4.ip_forward = 1\n", "net.bridge.bridge-nf-call-iptables = 1\n", "net.bridge.bridge-nf-call-ip6tables = 1\n")
	fstab := r.mustFile(t, "init1", "/etc/fstab")
	scriptContains(t, "fstab", fstab, "#sealflow-kube# /swap.img none swap sw 0 0\n", "UUID=1111 / ext4 errors=remount-ro 0 1\n")
	scriptContains(t, "kubeadm's drop-in", r.mustFile(t, "init1", "/etc/systemd/system/kubelet.service.d/10-kubeadm.conf"),
		"ExecStart=\n", "--config=/var/lib/kubelet/config.yaml", "EnvironmentFile=-/var/lib/kubelet/kubeadm-flags.env")
	for _, p := range []string{"/usr/local/bin/containerd", "/usr/local/bin/containerd-shim-runc-v2", "/usr/local/bin/ctr",
		"/usr/local/bin/crictl", "/usr/local/sbin/runc", "/usr/bin/kubeadm", "/usr/bin/kubelet",
		"/opt/cni/bin/bridge", "/opt/cni/bin/portmap", "/etc/systemd/system/containerd.service", "/etc/systemd/system/kubelet.service",
		"/var/lib/sealflow-kube/created", "/var/lib/sealflow-kube/backup/etc/containerd/config.toml"} {
		r.mustFile(t, "init1", p)
	}
	scriptContains(t, "/usr/bin/kubectl", r.mustFile(t, "init1", "/usr/bin/kubectl"), "stand-in for kubectl")
	db := r.mustFile(t, "init1", "/var/lib/containerd/standin-images")
	for _, im := range scriptImages {
		scriptContains(t, "the images in containerd", db, im.full+" "+r.digests[im.full]+" io.cri-containerd.pinned=pinned\n")
	}
	scriptContains(t, "the calls", r.calls(t), "systemctl start containerd", "systemctl enable kubelet",
		"images import /root/kube/images/images.tar")
	if c := r.calls(t); strings.Contains(c, "--all-platforms") {
		t.Errorf("import with --all-platforms: %s", c)
	}
	if d := r.diffHost(t, "base", "init1"); len(d) == 0 {
		t.Errorf("init.sh changed nothing")
	}
	// The network namespace's sysctls (put back by clean.sh: compared with /run below).
	scriptContains(t, "the sysctls after init.sh", r.steps["init1"].run, "sysctl net/ipv4/ip_forward=1\n")
	if !strings.Contains(r.steps["base"].run, "sysctl net/ipv4/ip_forward=0\n") {
		t.Logf("ip_forward was already 1 in a new network namespace: its restore is not checked")
	}

	// Again: nothing changes, and it says so.
	s := r.ok(t, "init2")
	scriptContains(t, "the second init.sh's output", s.stdout, "nothing changed")
	r.sameHost(t, "init1", "init2")

	// What a cluster leaves (after kubeadm reset), then clean.sh puts the host back; a
	// second one changes nothing.
	r.ok(t, "cluster")
	scriptContains(t, "the host with a cluster's leftovers", r.steps["cluster"].run, "cni0", "/var/lib/kubelet/pods/p1/volumes")
	r.ok(t, "clean1")
	r.sameHost(t, "base", "clean1")
	s = r.ok(t, "clean2")
	scriptContains(t, "the second clean.sh's output", s.stdout, "nothing to do")
	r.sameHost(t, "base", "clean2")
	scriptContains(t, "the calls", r.calls(t), "systemctl stop kubelet", "systemctl disable containerd", "crictl --runtime-endpoint unix:///run/containerd/containerd.sock rmp -af")

	// With a real containerd 2.x at hand, the written configuration loads and the
	// drop-in merges into it key by key.
	if d := scriptRealContainerd(); d != "" {
		bin := filepath.Join(d, "containerd")
		dir := t.TempDir()
		if err := os.MkdirAll(filepath.Join(dir, "conf.d"), 0o755); err != nil {
			t.Fatal(err)
		}
		cfg = strings.ReplaceAll(cfg, "/etc/containerd/conf.d", filepath.Join(dir, "conf.d"))
		if err := os.WriteFile(filepath.Join(dir, "config.toml"), []byte(cfg), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "conf.d", "90-sealflow-extra.toml"), []byte(extra), 0o644); err != nil {
			t.Fatal(err)
		}
		out, err := exec.Command(bin, "--config", filepath.Join(dir, "config.toml"), "config", "dump").CombinedOutput()
		if err != nil {
			t.Fatalf("containerd config dump: %v\n%s", err, out)
		}
		scriptContains(t, "containerd config dump", string(out), "restrict_oom_score_adj = true", "SystemdCgroup = false",
			"sandbox = '"+scriptPause+"'", "BinaryName = '/usr/local/sbin/runc'")
	}
}

// The package's real containerd 2.x (SEALFLOW_TEST_CONTAINERD_DIR: a directory with
// containerd and ctr, and optionally crictl) started by the stand-in service manager with the configuration
// init.sh wrote (plus the lab's drop-in: the native snapshotter for CRI and for the
// transfer service's unpacking, as overlayfs cannot stack here): the real ctr imports and pins the images, init.sh's reading of `ctr images ls`
// holds, and clean.sh removes them, stops containerd and puts the host back.
func TestScriptsRealContainerd(t *testing.T) {
	scriptRequire(t)
	real := scriptRealContainerd()
	if real == "" {
		t.Skip("no containerd 2.x: set SEALFLOW_TEST_CONTAINERD_DIR (a directory with containerd and ctr), or run testdata/kube/upstream.sh")
	}
	env := []string{
		"SEALFLOW_CONTAINERD_EXTRA=[plugins.'io.containerd.cri.v1.runtime']\n  restrict_oom_score_adj = true\n" +
			"[plugins.'io.containerd.cri.v1.images']\n  snapshotter = \"native\"\n" +
			"[[plugins.'io.containerd.transfer.v1.local'.unpack_config]]\n  platform = \"linux/" + scriptArch(t) + "\"\n  snapshotter = \"native\"",
	}
	r := runScripts(t, scriptScenario{name: "real", systemctl: standinSystemctl, real: real, steps: []scriptStep{
		{name: "init1", script: "init", env: env},
		{name: "init2", script: "init", env: env},
		{name: "images", shell: "/usr/local/bin/ctr -n k8s.io images ls; /usr/local/bin/ctr -n k8s.io snapshots --snapshotter native ls"},
		{name: "cri", shell: "crictl info; crictl images --pinned -o json"},
		{name: "clean1", script: "clean"},
		{name: "clean2", script: "clean"},
	}})
	t.Cleanup(func() {
		if b, err := os.ReadFile(filepath.Join(r.dir, "out", "containerd.log")); err == nil && t.Failed() {
			t.Logf("containerd's log (%d bytes), its end:\n%s", len(b), b[max(0, len(b)-4000):])
		}
	})
	r.ok(t, "init1")
	s := r.ok(t, "init2")
	scriptContains(t, "the second init.sh's output", s.stdout, "nothing changed")
	// containerd's own databases change while it runs (its garbage collection).
	r.sameHost(t, "init1", "init2", "/var/lib/containerd", "/run/containerd")
	ls := r.ok(t, "images").stdout
	for _, im := range scriptImages {
		found := false
		for _, l := range strings.Split(ls, "\n") {
			f := strings.Fields(l)
			if len(f) > 2 && f[0] == im.full && f[2] == r.digests[im.full] && strings.Contains(f[len(f)-1], "io.cri-containerd.pinned=pinned") {
				found = true
			}
		}
		if !found {
			t.Errorf("%s %s is not in containerd, pinned:\n%s", im.full, r.digests[im.full], ls)
		}
	}
	// With a real crictl, CRI's view through /etc/crictl.yaml: the configuration
	// init.sh wrote with the drop-in merged, and every image pinned.
	if _, err := os.Stat(filepath.Join(real, "crictl")); err == nil {
		cri := r.ok(t, "cri").stdout
		scriptContains(t, "crictl info; crictl images", cri, `"BinaryName": "/usr/local/sbin/runc"`, `"SystemdCgroup": false`,
			`"restrictOOMScoreAdj": true`, `"confDir": "/etc/cni/net.d"`, `"type": "RuntimeReady"`)
		if n := strings.Count(cri, `"pinned": true`); n != len(scriptImages) {
			t.Errorf("%d images pinned in CRI, want %d:\n%s", n, len(scriptImages), cri)
		}
	}
	r.ok(t, "clean1")
	r.sameHost(t, "base", "clean1")
	r.ok(t, "clean2")
	r.sameHost(t, "base", "clean2")
}

// scriptRealContainerd is a directory with real containerd and ctr 2.x binaries:
// SEALFLOW_TEST_CONTAINERD_DIR, else testdata/kube/upstream.sh's cache when it built
// them; "" when neither.
func scriptRealContainerd() string {
	if d := os.Getenv("SEALFLOW_TEST_CONTAINERD_DIR"); d != "" {
		return d
	}
	cache := os.Getenv("SEALFLOW_CACHE")
	if cache == "" {
		cache = "/var/cache/sealflow"
	}
	d := filepath.Join(cache, "upstream", "bin")
	for _, b := range []string{"containerd", "ctr"} {
		if _, err := os.Stat(filepath.Join(d, b)); err != nil {
			return ""
		}
	}
	return d
}

// No systemd and no working systemctl: init.sh installs everything, starts nothing,
// says so and succeeds; images wait for a running containerd.
func TestScriptsWithoutServiceManager(t *testing.T) {
	scriptRequire(t)
	r := runScripts(t, scriptScenario{name: "none", systemctl: standinNoSystemd, steps: []scriptStep{
		{name: "init1", script: "init"}, {name: "init2", script: "init"}, {name: "clean1", script: "clean"},
	}})
	s := r.ok(t, "init1")
	scriptContains(t, "init.sh's output", s.stdout+s.stderr, "not started", "images are not imported")
	scriptContains(t, "config.toml", r.mustFile(t, "init1", "/etc/containerd/config.toml"), "SystemdCgroup = false\n")
	if _, ok := r.file(t, "init1", "/etc/containerd/conf.d/90-sealflow-extra.toml"); ok {
		t.Errorf("a drop-in was written without SEALFLOW_CONTAINERD_EXTRA")
	}
	s = r.ok(t, "init2")
	scriptContains(t, "the second init.sh's output", s.stdout, "nothing changed")
	r.sameHost(t, "init1", "init2")
	r.ok(t, "clean1")
	r.sameHost(t, "base", "clean1")
}

// A host with docker: init.sh stops, naming it, and changes nothing; with
// SEALFLOW_RUNTIME=existing it uses the host's containerd (imports and pins the images
// there, installs no containerd) and clean.sh removes only the images it imported.
func TestScriptsExistingRuntime(t *testing.T) {
	scriptRequire(t)
	foreign := "docker.io/library/busybox:1.37 sha256:" + strings.Repeat("9", 64) + " -\n"
	r := runScripts(t, scriptScenario{
		name:      "docker",
		systemctl: standinSystemctl,
		files: map[string]string{
			"usr/local/bin/docker":              "#!/bin/sh\n# stand-in for docker (scripts_test.go)\n",
			"usr/bin/ctr":                       standinCtr, // the host's own ctr
			"var/lib/containerd/standin-images": foreign,    // the host's containerd has an image
		},
		setup: "mkdir -p /run/containerd /out/active && touch /out/active/containerd",
		steps: []scriptStep{
			{name: "refused", script: "init"},
			{name: "init1", script: "init", env: []string{"SEALFLOW_RUNTIME=existing"}},
			{name: "init2", script: "init", env: []string{"SEALFLOW_RUNTIME=existing"}},
			{name: "clean1", script: "clean"},
		},
	})
	s := r.steps["refused"]
	if s.rc == 0 {
		t.Fatalf("init.sh accepted a host with docker:\n%s%s", s.stdout, s.stderr)
	}
	scriptContains(t, "the refusal", s.stderr, "docker (/usr/local/bin/docker)", "SEALFLOW_RUNTIME=existing")
	r.sameHost(t, "base", "refused")

	r.ok(t, "init1")
	for _, p := range []string{"/usr/local/bin/containerd", "/usr/local/sbin/runc", "/etc/systemd/system/containerd.service"} {
		if _, ok := r.file(t, "init1", p); ok {
			t.Errorf("%s installed with SEALFLOW_RUNTIME=existing", p)
		}
	}
	if c := r.mustFile(t, "init1", "/etc/containerd/config.toml"); !strings.Contains(c, "an older containerd configuration") {
		t.Errorf("the existing containerd's config.toml was replaced:\n%s", c)
	}
	scriptContains(t, "crictl.yaml", r.mustFile(t, "init1", "/etc/crictl.yaml"), "runtime-endpoint: unix:///run/containerd/containerd.sock\n")
	db := r.mustFile(t, "init1", "/var/lib/containerd/standin-images")
	scriptContains(t, "the images in containerd", db, foreign)
	for _, im := range scriptImages {
		scriptContains(t, "the images in containerd", db, im.full+" "+r.digests[im.full]+" io.cri-containerd.pinned=pinned\n")
	}
	s = r.ok(t, "init2")
	scriptContains(t, "the second init.sh's output", s.stdout, "nothing changed")
	r.sameHost(t, "init1", "init2")
	r.ok(t, "clean1")
	r.sameHost(t, "base", "clean1")
	if db := r.mustFile(t, "clean1", "/var/lib/containerd/standin-images"); db != foreign {
		t.Errorf("the existing containerd's images after clean.sh:\n%s", db)
	}
}

// A host with a distribution's containerd (a binary in /usr/bin and its unit): init.sh
// stops naming both and changes nothing.
func TestScriptsForeignContainerd(t *testing.T) {
	scriptRequire(t)
	r := runScripts(t, scriptScenario{
		name:      "foreign",
		systemctl: standinSystemctl,
		files: map[string]string{
			"usr/bin/containerd":                        "#!/bin/sh\n# stand-in for a distribution's containerd (scripts_test.go)\n",
			"usr/lib/systemd/system/containerd.service": "[Service]\nExecStart=/usr/bin/containerd\n",
		},
		steps: []scriptStep{{name: "refused", script: "init"}},
	})
	s := r.steps["refused"]
	if s.rc == 0 {
		t.Fatalf("init.sh accepted a host with another containerd:\n%s%s", s.stdout, s.stderr)
	}
	scriptContains(t, "the refusal", s.stderr, "containerd (/usr/bin/containerd, not installed by this package)",
		"containerd (/usr/lib/systemd/system/containerd.service, not installed by this package)")
	if strings.Contains(s.stderr, "docker") {
		t.Errorf("docker named on a host without it:\n%s", s.stderr)
	}
	r.sameHost(t, "base", "refused")
}

// bash -n and, where installed, shellcheck.
func TestScriptsLint(t *testing.T) {
	for _, f := range []string{"assets/shell/init.sh", "assets/shell/clean.sh"} {
		if out, err := exec.Command("bash", "-n", f).CombinedOutput(); err != nil {
			t.Errorf("bash -n %s: %v\n%s", f, err, out)
		}
	}
	sc, err := exec.LookPath("shellcheck")
	if err != nil {
		t.Log("shellcheck not installed (testdata/ci/deps.sh installs it): skipped")
		return
	}
	if out, err := exec.Command(sc, "-s", "bash", "assets/shell/init.sh", "assets/shell/clean.sh").CombinedOutput(); err != nil {
		t.Errorf("shellcheck: %v\n%s", err, out)
	}
}
