package lab

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// A NodeStack host (Config.NodeStack) can run containerd, runc and the
// kubelet without touching the machine:
//
//   - its own cgroup subtree in every hierarchy (cgroups.go), made before
//     its init starts; the init joins it and unshares a cgroup namespace,
//     so inside the host every hierarchy's root is the host's subtree, and
//     the kubelet's cgroupRoot is "/", as on a real machine;
//   - the hierarchies mounted again in the host's mount namespace (`ip netns
//     exec` remounts /sys without them);
//   - real-disk directories at /var/lib/containerd (overlayfs refuses an
//     upper dir on overlayfs), /var/lib/kubelet and /var/log;
//   - its own /dev (tmpfs with the usual device nodes, /dev/kmsg for the
//     kubelet's OOM watcher, read-only through the host's devices cgroup,
//     its own devpts and /dev/shm);
//   - its own /etc/machine-id and /sys/class/dmi/id/product_uuid;
//   - /proc/sys read-only but for net, and read-only files over the
//     machine-wide sysctls the kubelet sets at start (nodeSysctls),
//     holding the values it wants, so that it writes none;
//   - a root with shared propagation (pod volume mounts need it), private
//     to the host's mount namespace.

// nodeSysctls are the sysctls, not namespaced, that the kubelet sets at
// start (pkg/kubelet/cm setupKernelTunables) with the values it wants. It
// fails when a write fails, and writes nothing when it reads its value.
func nodeSysctls() [][2]string {
	return [][2]string{
		{"vm/overcommit_memory", "1"},
		{"vm/panic_on_oom", "0"},
		{"kernel/panic", "10"},
		{"kernel/panic_on_oops", "1"},
		{"kernel/keys/root_maxkeys", "1000000"},
		{"kernel/keys/root_maxbytes", "25000000"},
	}
}

// nodeDisks are the dirs of a NodeStack host bound from real-disk dirs
// (HOSTDIR/disk/NAME), relative to /.
func nodeDisks() []string {
	return []string{"var/lib/containerd", "var/lib/kubelet", "var/log"}
}

// devNodes are the device nodes of a NodeStack host's /dev.
func devNodes() []struct {
	name         string
	mode         string
	major, minor int
} {
	return []struct {
		name         string
		mode         string
		major, minor int
	}{
		{"null", "666", 1, 3}, {"zero", "666", 1, 5}, {"full", "666", 1, 7},
		{"random", "666", 1, 8}, {"urandom", "666", 1, 9}, {"kmsg", "644", 1, 11},
		{"tty", "666", 5, 0},
	}
}

// CgroupRootLabel is the inventory label of a NodeStack host that holds
// the kubelet's cgroupRoot there.
const CgroupRootLabel = "lab_cgroup_root"

// writeNodeFiles writes the files a NodeStack host's init binds: its
// machine id, product uuid, sysctl values, and makes its real-disk dirs.
func writeNodeFiles(hd string) error {
	for _, d := range nodeDisks() {
		if err := os.MkdirAll(filepath.Join(hd, "disk", filepath.Base(d)), 0o755); err != nil {
			return err
		}
	}
	var id [16]byte
	rand.Read(id[:])
	if err := os.WriteFile(filepath.Join(hd, "machine-id"), []byte(hex.EncodeToString(id[:])+"\n"), 0o444); err != nil {
		return err
	}
	rand.Read(id[:])
	id[6] = id[6]&0x0f | 0x40 // a version 4 UUID
	id[8] = id[8]&0x3f | 0x80
	h := hex.EncodeToString(id[:])
	uuid := h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
	if err := os.WriteFile(filepath.Join(hd, "product_uuid"), []byte(uuid+"\n"), 0o400); err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Join(hd, "sysctl"), 0o755); err != nil {
		return err
	}
	for _, s := range nodeSysctls() {
		if err := os.WriteFile(filepath.Join(hd, "sysctl", strings.ReplaceAll(s[0], "/", ".")), []byte(s[1]+"\n"), 0o444); err != nil {
			return err
		}
	}
	return nil
}

// nodeScript is the part of a NodeStack host's init that makes its node
// stack mounts (after its overlays, /tmp and /run).
func nodeScript(w func(format string, args ...any), hd string, hs []hierarchy) {
	// cgroups: the init is in its own subtree and cgroup namespace.
	w("mount -t tmpfs -o mode=755,nosuid,nodev,noexec cgroup /sys/fs/cgroup")
	for _, h := range hs {
		mp := filepath.Join("/sys/fs/cgroup", filepath.Base(h.Mount))
		w("mkdir -p %s", quote(mp))
		if h.V2 {
			w("mount -t cgroup2 -o nosuid,nodev,noexec cgroup2 %s", quote(mp))
		} else {
			w("mount -t cgroup -o %s cgroup %s", quote("nosuid,nodev,noexec,"+h.Opts), quote(mp))
		}
	}
	for _, d := range nodeDisks() {
		w("mkdir -p %s", quote("/"+d))
		w("mount --bind %s %s", quote(filepath.Join(hd, "disk", filepath.Base(d))), quote("/"+d))
	}
	w("mount -t tmpfs -o mode=755,nosuid,size=64m dev /dev")
	for _, n := range devNodes() {
		w("mknod -m %s /dev/%s c %d %d", n.mode, n.name, n.major, n.minor)
	}
	w("mkdir -p /dev/pts /dev/shm")
	w("mount -t devpts -o newinstance,ptmxmode=0666,mode=0620,gid=5 devpts /dev/pts")
	w("ln -s pts/ptmx /dev/ptmx")
	w("mount -t tmpfs -o mode=1777,nosuid,nodev shm /dev/shm")
	w("ln -s /proc/self/fd /dev/fd")
	w("ln -s /proc/self/fd/0 /dev/stdin; ln -s /proc/self/fd/1 /dev/stdout; ln -s /proc/self/fd/2 /dev/stderr")
	w("cp %s /etc/machine-id", quote(filepath.Join(hd, "machine-id")))
	// Without /sys/class/dmi (a VM without DMI), a tmpfs over /sys/class
	// holds the machine's classes (bound) and a dmi of the host's own.
	uuid := quote(filepath.Join(hd, "product_uuid"))
	w("if [ -e /sys/class/dmi/id/product_uuid ]; then")
	w("  mount --bind %s /sys/class/dmi/id/product_uuid", uuid)
	w("else")
	w("  mkdir -p /run/lab-sysclass && mount --bind /sys/class /run/lab-sysclass")
	w("  mount -t tmpfs -o mode=755,nosuid,nodev,noexec sysclass /sys/class")
	w(`  for d in /run/lab-sysclass/*; do mkdir "/sys/class/${d##*/}" && mount --bind -o ro "$d" "/sys/class/${d##*/}"; done`)
	w("  umount /run/lab-sysclass && rmdir /run/lab-sysclass")
	w("  mkdir -p /sys/class/dmi/id && : > /sys/class/dmi/id/product_uuid")
	w("  mount --bind %s /sys/class/dmi/id/product_uuid", uuid)
	w("  mount -o remount,ro /sys/class")
	w("fi")
	w("mount --make-rshared /")
}

// nodeLockdown is the part of a NodeStack host's init that makes /sys and
// /proc/sys read-only (most of them is the machine's: kernel, vm, fs), but
// for /proc/sys/net (the host's own network namespace), with nodeSysctls
// on top. It comes last: the init still writes kernel/hostname before.
func nodeLockdown(w func(format string, args ...any), hd string) {
	// /sys too (its own mounts, cgroups and /sys/class, stay writable):
	// a kube-proxy would set nf_conntrack's hashsize there, machine-wide.
	w("mount -o remount,bind,ro /sys")
	w("mount --bind /proc/sys /proc/sys")
	w("mount -o remount,bind,ro /proc/sys")
	w("mount --bind /proc/sys/net /proc/sys/net")
	w("mount -o remount,bind,rw /proc/sys/net")
	for _, s := range nodeSysctls() {
		p := "/proc/sys/" + s[0]
		w("mount --bind %s %s", quote(filepath.Join(hd, "sysctl", strings.ReplaceAll(s[0], "/", "."))), p)
		w("mount -o remount,bind,ro %s", p)
	}
}

// cgroupJoinScript is a shell script that moves itself into the cgroups
// dirs, then runs its arguments ("$@").
func cgroupJoinScript(dirs []string) string {
	var q []string
	for _, d := range dirs {
		q = append(q, quote(filepath.Join(d, "cgroup.procs")))
	}
	return fmt.Sprintf(`for f in %s; do echo $$ > "$f" || exit 125; done; exec "$@"`, strings.Join(q, " "))
}

// systemdPath is the systemd that a Systemd host runs as its PID 1.
const systemdPath = "/lib/systemd/systemd"

// systemdTarget is what a Systemd host boots: sysinit.target and the lab's
// sshd, not the machine's default target (its enabled services: a
// database, containerd with its default config, apt timers ...).
const systemdTarget = "sealflow-lab.target"

// systemdMasked are units that would change the machine (sysctls from
// /etc/sysctl.d, binfmt_misc, kernel modules, a remount of the shared
// root, udev, audit) or clash with the lab (the machine's own sshd on port
// 22, gettys on a console the host does not have).
func systemdMasked() []string {
	return []string{
		"systemd-sysctl.service", "systemd-binfmt.service", "proc-sys-fs-binfmt_misc.automount",
		"proc-sys-fs-binfmt_misc.mount", "systemd-modules-load.service", "kmod-static-nodes.service",
		"systemd-remount-fs.service", "systemd-udevd.service", "systemd-udevd-control.socket",
		"systemd-udevd-kernel.socket", "systemd-udev-trigger.service", "systemd-udev-settle.service",
		"systemd-hwdb-update.service", "systemd-journald-audit.socket", "systemd-firstboot.service",
		"systemd-machine-id-commit.service", "sys-kernel-debug.mount", "sys-kernel-tracing.mount",
		"sys-kernel-config.mount", "sys-fs-fuse-connections.mount", "ssh.service", "ssh.socket",
		"getty@tty1.service", "console-getty.service", "serial-getty@ttyS0.service",
	}
}

// systemdScript ends the init of a Systemd host: units for the lab's sshd
// and target, masks, then systemd in place of the script (same PID 1),
// with the init's marks (args) on its command line.
func systemdScript(w func(format string, args ...any), hd string, args []string) {
	w("mkdir -p /etc/systemd/system/%s.wants", systemdTarget)
	w("cat > /etc/systemd/system/sealflow-lab-sshd.service <<'EOF'")
	w("[Unit]")
	w("Description=OpenSSH server of the sealflow lab host")
	w("[Service]")
	w("ExecStartPre=/bin/mkdir -p /run/sshd")
	w("ExecStart=%s -D -f %s -E %s", sshdPath, filepath.Join(hd, "sshd_config"), filepath.Join(hd, "sshd.log"))
	w("KillMode=process")
	w("EOF")
	w("cat > /etc/systemd/system/%s <<'EOF'", systemdTarget)
	w("[Unit]")
	w("Description=sealflow lab host")
	w("Requires=sysinit.target")
	w("After=sysinit.target")
	w("Wants=sealflow-lab-sshd.service")
	w("AllowIsolate=yes")
	w("EOF")
	for _, u := range systemdMasked() {
		w("ln -sf /dev/null %s", quote("/etc/systemd/system/"+u))
	}
	var q []string
	for _, a := range args {
		q = append(q, quote(a))
	}
	w("export container=sealflow-lab") // systemd's sign that it runs in a container
	w("exec %s --unit=%s %s", systemdPath, systemdTarget, strings.Join(q, " "))
}
