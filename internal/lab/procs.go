package lab

import (
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// initMark marks a host's init on its command line:
// bash DIR/hosts/HOST/init.sh sealflow-lab LAB HOST, or, once the script
// has made the host and execs systemd (Config.Systemd),
// /lib/systemd/systemd --unit=... DIR/hosts/HOST/init.sh sealflow-lab LAB HOST.
const initMark = "sealflow-lab"

func initArgs(dir, name, host string) []string {
	return []string{"bash", filepath.Join(hostDir(dir, host), "init.sh"), initMark, name, host}
}

// initOf returns the lab and host named by the command line of a host's
// init.
func initOf(args []string) (lab, host string, ok bool) {
	n := len(args)
	if n < 5 || (args[0] != "bash" && args[0] != systemdPath) || args[n-3] != initMark {
		return "", "", false
	}
	if args[0] == "bash" && n != 5 {
		return "", "", false
	}
	return args[n-2], args[n-1], true
}

// cmdline returns the arguments of process pid (nil if it is gone).
func cmdline(pid int) []string {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline")
	if err != nil || len(b) == 0 {
		return nil
	}
	return strings.Split(string(bytes.TrimSuffix(b, []byte{0})), "\x00")
}

// procStatus returns the value of field key in /proc/pid/status.
func procStatus(pid int, key string) (string, bool) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return "", false
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, key+":"); ok {
			return strings.TrimSpace(v), true
		}
	}
	return "", false
}

// alive reports whether pid exists and is not a zombie.
func alive(pid int) bool {
	st, ok := procStatus(pid, "State")
	return ok && !strings.HasPrefix(st, "Z")
}

// isInit reports whether pid is the init of host of lab name: PID 1 of its
// own PID namespace, with the init command line.
func isInit(pid int, name, host string) bool {
	if l, h, ok := initOf(cmdline(pid)); !ok || l != name || h != host {
		return false
	}
	nspid, ok := procStatus(pid, "NSpid")
	if !ok {
		return false
	}
	f := strings.Fields(nspid)
	return len(f) >= 2 && f[len(f)-1] == "1" && alive(pid)
}

// pids lists the processes of the machine.
func pids() []int {
	ents, _ := os.ReadDir("/proc")
	var out []int
	for _, e := range ents {
		if pid, err := strconv.Atoi(e.Name()); err == nil {
			out = append(out, pid)
		}
	}
	return out
}

// labInits finds the live init processes of lab name by their command line.
func labInits(name string) []int {
	var out []int
	for _, pid := range pids() {
		if l, h, ok := initOf(cmdline(pid)); ok && l == name && isInit(pid, name, h) {
			out = append(out, pid)
		}
	}
	return out
}

// children returns the children of pid.
func children(pid int) []int {
	p := strconv.Itoa(pid)
	b, err := os.ReadFile("/proc/" + p + "/task/" + p + "/children")
	if err != nil {
		return nil
	}
	var out []int
	for _, f := range strings.Fields(string(b)) {
		if c, err := strconv.Atoi(f); err == nil {
			out = append(out, c)
		}
	}
	return out
}

// inNetns returns the processes whose network namespace is one of links
// (values of readlink /proc/PID/ns/net, "net:[INODE]").
func inNetns(links map[string]bool) []int {
	var out []int
	if len(links) == 0 {
		return nil
	}
	for _, pid := range pids() {
		l, err := os.Readlink("/proc/" + strconv.Itoa(pid) + "/ns/net")
		if err == nil && links[l] {
			out = append(out, pid)
		}
	}
	return out
}
