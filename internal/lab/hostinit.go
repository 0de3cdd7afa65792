package lab

import (
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
)

// quote quotes s for a POSIX shell.
func quote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// freshDir reports whether a host's dir d starts from the lab's base (as on
// a freshly installed machine) rather than from the machine's own dir: the
// machine's /root and /home hold its users' files, keys and shell setup.
func freshDir(d string) bool { return d == "root" || d == "home" }

// makeBase makes the lower dirs of the fresh dirs: /root with Debian's
// dot files for root, an empty /home.
func makeBase(dir string) error {
	for _, d := range overlayDirs() {
		if !freshDir(d) {
			continue
		}
		mode := os.FileMode(0o755)
		if d == "root" {
			mode = 0o700
		}
		p := filepath.Join(dir, "base", d)
		if err := os.MkdirAll(p, mode); err != nil {
			return fmt.Errorf("make base %s: %w", d, err)
		}
		if err := os.Chmod(p, mode); err != nil {
			return fmt.Errorf("make base %s: %w", d, err)
		}
	}
	for src, dst := range map[string]string{
		"/usr/share/base-files/dot.bashrc":  ".bashrc",
		"/usr/share/base-files/dot.profile": ".profile",
	} {
		b, err := os.ReadFile(src)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return fmt.Errorf("make base /root: %w", err)
		}
		if err := os.WriteFile(filepath.Join(dir, "base", "root", dst), b, 0o644); err != nil {
			return fmt.Errorf("make base /root: %w", err)
		}
	}
	return nil
}

// sshdPath is the OpenSSH server the hosts run.
const sshdPath = "/usr/sbin/sshd"

// sshdConfig is the host's sshd configuration.
func (l *Lab) sshdConfig(h hostState) string {
	hd := hostDir(l.Dir, h.Name)
	root := "prohibit-password"
	pass := "no"
	if l.st.Password {
		root, pass = "yes", "yes"
	}
	return strings.Join([]string{
		"# sealflow lab " + l.Name + ", host " + h.Name,
		"ListenAddress " + h.Address + ":22",
		"HostKey " + filepath.Join(hd, "ssh_host_ed25519_key"),
		"PidFile /run/sshd.pid",
		"PermitRootLogin " + root,
		"PubkeyAuthentication yes",
		"AuthorizedKeysFile .ssh/authorized_keys " + labAuthorizedKeys,
		"PasswordAuthentication " + pass,
		"KbdInteractiveAuthentication no",
		"UsePAM no",
		"UseDNS no",
		"PrintMotd no",
		"X11Forwarding no",
		"Subsystem sftp internal-sftp",
		"",
	}, "\n")
}

// labAuthorizedKeys is where, inside a host, the lab's client key is
// authorized for every user.
const labAuthorizedKeys = "/etc/ssh/sealflow-lab/authorized_keys"

// initScript is run by bash as PID 1 of the host's namespaces (already in
// its network namespace, with a private mount namespace and /proc). It
// makes the host's file system, hostname and users, starts sshd, then
// stays to reap orphans until it is killed.
func (l *Lab) initScript(h hostState, prefix netip.Prefix) string {
	hd := hostDir(l.Dir, h.Name)
	var b strings.Builder
	w := func(format string, args ...any) { fmt.Fprintf(&b, format+"\n", args...) }
	w("# sealflow lab %s, host %s: init (PID 1 of the host)", l.Name, h.Name)
	w("set -eu") // never -x: the script handles the password
	w("exec </dev/null")
	w("cd /")
	w("ip -batch - <<'EOF'")
	w("link set lo up")
	w("addr add %s/%d dev eth0", h.Address, prefix.Bits())
	w("link set eth0 up")
	w("EOF")
	// Copies of the machine's netns mounts would pin other labs' network
	// namespaces for as long as this host lives.
	w("umount -l /run/netns 2>/dev/null || :")
	for _, d := range overlayDirs() {
		if l.st.NodeStack && d == "var/log" {
			continue // a real-disk dir, below
		}
		lower := "/" + d
		if freshDir(d) {
			lower = filepath.Join(l.Dir, "base", d)
		}
		upper, work := filepath.Join(hd, "upper", d), filepath.Join(hd, "work", d)
		w("mkdir -p %s %s", quote(upper), quote(work))
		w("mount -t overlay overlay -o %s %s", quote("lowerdir="+lower+",upperdir="+upper+",workdir="+work), quote("/"+d))
	}
	w("mount -t tmpfs -o mode=1777 tmpfs /tmp")
	w("mount -t tmpfs -o mode=0755 tmpfs /run")
	w("mkdir -p /run/sshd /run/lock")
	if l.st.NodeStack {
		nodeScript(w, hd, l.st.Hierarchies)
	}
	w("echo %s > /proc/sys/kernel/hostname", quote(h.Name))
	w("echo %s > /etc/hostname", quote(h.Name))
	w(`printf '127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n%%s\t%%s\n' %s %s > /etc/hosts`, quote(h.Address), quote(h.Name))
	w("rm -f /etc/resolv.conf")
	if l.st.KubeNode {
		kubeNodeScript(w, h.Address)
	} else {
		w("echo 'nameserver 127.0.0.1' > /etc/resolv.conf")
	}
	w("mkdir -p %s", quote(filepath.Dir(labAuthorizedKeys)))
	w("printf '%%s\\n' \"$(<%s)\" > %s", quote(filepath.Join(l.Dir, "id_ed25519.pub")), quote(labAuthorizedKeys))
	// sshd without PAM refuses a locked account ("!" in shadow) even with
	// a key; "*" means no password but not locked.
	w(`if grep -q '^root:!' /etc/shadow; then usermod -p '*' root; fi`)
	if u := l.st.User; u != "" {
		w("useradd -m -s /bin/bash -U %s", quote(u))
		w("echo %s > /etc/sudoers.d/sealflow-lab", quote(u+" ALL=(ALL:ALL) ALL"))
		w("chmod 0440 /etc/sudoers.d/sealflow-lab")
	}
	if l.st.HasPass {
		// printf is a builtin: the password is on no command line.
		w("pw=$(<%s)", quote(filepath.Join(l.Dir, "password")))
		var users []string
		if l.st.Password {
			users = append(users, "root")
		}
		if l.st.User != "" {
			users = append(users, l.st.User)
		}
		for _, u := range users {
			w(`printf '%%s:%%s\n' %s "$pw" | chpasswd`, quote(u))
		}
		w("unset pw")
	}
	if l.st.NodeStack {
		nodeLockdown(w, hd)
	}
	if l.st.Systemd {
		systemdScript(w, hd, initArgs(l.Dir, l.Name, h.Name)[1:])
		return b.String()
	}
	w("%s -D -f %s -E %s &", sshdPath, quote(filepath.Join(hd, "sshd_config")), quote(filepath.Join(hd, "sshd.log")))
	w("set +e")
	w("while :; do sleep infinity & wait; done")
	return b.String()
}
