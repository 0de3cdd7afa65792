package lab

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// cgroupBase is the name of the directory, in each cgroup hierarchy, under
// which the labs' hosts get their subtrees: BASE/LAB/HOST.
const cgroupBase = "sealflow-lab"

// hierarchy is a cgroup hierarchy mounted on the machine.
type hierarchy struct {
	// Mount is where the machine mounts it, e.g. /sys/fs/cgroup/memory.
	Mount string `json:"mount"`
	// V2 is true for a cgroup2 (unified) hierarchy.
	V2 bool `json:"v2,omitempty"`
	// Opts are the mount options that name a v1 hierarchy: its
	// controllers and name=..., e.g. "cpu,cpuacct" or "name=systemd".
	Opts string `json:"opts,omitempty"`
	// Self is this process's cgroup in it, e.g. "/" or "/a/b".
	Self string `json:"self"`
}

// hierarchies lists the cgroup hierarchies mounted under /sys/fs/cgroup,
// with this process's cgroup in each, in mount order.
func hierarchies() ([]hierarchy, error) {
	self, err := selfCgroups()
	if err != nil {
		return nil, err
	}
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil, fmt.Errorf("list cgroup hierarchies: %w", err)
	}
	defer f.Close()
	var out []hierarchy
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTS [OPTIONAL...] - TYPE SOURCE SUPEROPTS
		pre, post, ok := strings.Cut(sc.Text(), " - ")
		if !ok {
			continue
		}
		a, b := strings.Fields(pre), strings.Fields(post)
		if len(a) < 5 || len(b) < 3 || a[3] != "/" || !strings.HasPrefix(a[4], "/sys/fs/cgroup/") {
			continue
		}
		h := hierarchy{Mount: unescapeMount(a[4])}
		switch b[0] {
		case "cgroup2":
			h.V2 = true
			h.Self = self[""]
		case "cgroup":
			h.Opts = v1Opts(b[2])
			h.Self = self[h.Opts]
		default:
			continue
		}
		if h.Self == "" {
			return nil, fmt.Errorf("cgroup hierarchy %s (%s) is not in /proc/self/cgroup", h.Mount, h.Opts)
		}
		if slices.ContainsFunc(out, func(o hierarchy) bool { return o.Mount == h.Mount }) {
			continue
		}
		out = append(out, h)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("list cgroup hierarchies: %w", err)
	}
	return out, nil
}

// v1Opts keeps the options of a v1 cgroup mount that name its hierarchy
// (controllers and name=), sorted.
func v1Opts(super string) string {
	var keep []string
	for o := range strings.SplitSeq(super, ",") {
		switch {
		case o == "rw" || o == "ro" || o == "noprefix" || o == "xattr" || o == "clone_children" || o == "cpuset_v2_mode" || o == "favordynmods":
		case strings.HasPrefix(o, "release_agent="):
		default:
			keep = append(keep, o)
		}
	}
	sort.Strings(keep)
	return strings.Join(keep, ",")
}

// selfCgroups maps the hierarchies of /proc/self/cgroup (by their sorted
// controllers, "" for cgroup2) to this process's cgroup in them.
func selfCgroups() (map[string]string, error) {
	b, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		return nil, fmt.Errorf("read own cgroups: %w", err)
	}
	out := map[string]string{}
	for line := range strings.SplitSeq(strings.TrimSpace(string(b)), "\n") {
		f := strings.SplitN(line, ":", 3)
		if len(f) != 3 {
			continue
		}
		ctrl := strings.Split(f[1], ",")
		sort.Strings(ctrl)
		out[strings.Join(ctrl, ",")] = f[2]
	}
	return out, nil
}

// unescapeMount undoes the octal escapes of a mountinfo path.
func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// hostCgroups returns the host's subtree in each hierarchy, as paths on
// the machine: MOUNT/SELF/sealflow-lab/LAB/HOST.
func hostCgroups(hs []hierarchy, lab, host string) []string {
	var out []string
	for _, h := range hs {
		out = append(out, filepath.Join(h.Mount, h.Self, cgroupBase, lab, host))
	}
	return out
}

// makeCgroups creates the host's subtrees (dirs from hostCgroups) with
// their parents. A new cpuset cgroup starts with no CPUs and no memory
// nodes, which no process may join: each level gets its parent's.
func makeCgroups(dirs []string) error {
	for _, d := range dirs {
		if _, err := os.Stat(d); err == nil {
			return fmt.Errorf("cgroup %s exists: left from an earlier lab of that name? run `sealflow lab down` for it", d)
		}
		if err := makeCgroup(d); err != nil {
			return err
		}
		// The kubelet reads /dev/kmsg; nothing in a host writes the
		// machine's kernel log (a read-only mount would not stop writes
		// to a device node; the devices cgroup does).
		if _, err := os.Stat(filepath.Join(d, "devices.deny")); err == nil {
			if err := os.WriteFile(filepath.Join(d, "devices.deny"), []byte("c 1:11 w"), 0o644); err != nil {
				return fmt.Errorf("cgroup %s: deny writes to /dev/kmsg: %w", d, err)
			}
		}
	}
	return nil
}

// makeCgroup makes dir and its parents. Hosts start in parallel: a parent
// made by another host's start may not have its cpuset yet.
func makeCgroup(dir string) error {
	parent := filepath.Dir(dir)
	if _, err := os.Stat(filepath.Join(parent, "cgroup.procs")); errors.Is(err, fs.ErrNotExist) {
		if err := makeCgroup(parent); err != nil {
			return err
		}
	}
	if err := os.Mkdir(dir, 0o755); err != nil && !errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("create cgroup: %w", err)
	}
	return fillCpuset(dir)
}

// fillCpuset gives an empty cpuset cgroup its parent's CPUs and memory
// nodes (filling the parent first when it is empty too).
func fillCpuset(dir string) error {
	parent := filepath.Dir(dir)
	for _, f := range []string{"cpuset.cpus", "cpuset.mems"} {
		cur, err := os.ReadFile(filepath.Join(dir, f))
		if errors.Is(err, fs.ErrNotExist) {
			return nil // not a cpuset hierarchy
		}
		if err != nil {
			return fmt.Errorf("cgroup %s: %w", dir, err)
		}
		if strings.TrimSpace(string(cur)) != "" {
			continue
		}
		b, err := os.ReadFile(filepath.Join(parent, f))
		if err != nil {
			return fmt.Errorf("cgroup %s: %w", parent, err)
		}
		if strings.TrimSpace(string(b)) == "" {
			if err := fillCpuset(parent); err != nil {
				return err
			}
			if b, err = os.ReadFile(filepath.Join(parent, f)); err != nil {
				return fmt.Errorf("cgroup %s: %w", parent, err)
			}
		}
		if err := os.WriteFile(filepath.Join(dir, f), b, 0o644); err != nil {
			return fmt.Errorf("cgroup %s: set %s: %w", dir, f, err)
		}
	}
	return nil
}

// labCgroups returns the subtrees of lab name in every hierarchy mounted
// under /sys/fs/cgroup (DIR/sealflow-lab/NAME at any depth up to four, so
// that they are found whatever cgroup the process that made them was in).
func labCgroups(name string) []string {
	var out []string
	mounts, _ := filepath.Glob("/sys/fs/cgroup/*")
	for _, m := range mounts {
		for depth := range 5 {
			pat := filepath.Join(append(append([]string{m}, slices.Repeat([]string{"*"}, depth)...), cgroupBase, name)...)
			found, _ := filepath.Glob(pat)
			out = append(out, found...)
		}
	}
	return out
}

// cgroupTree returns dir and every cgroup below it, deepest first.
func cgroupTree(dir string) []string {
	var dirs []string
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.IsDir() {
			dirs = append(dirs, p)
		}
		return nil
	})
	sort.Slice(dirs, func(i, j int) bool { return strings.Count(dirs[i], "/") > strings.Count(dirs[j], "/") })
	return dirs
}

// cgroupPIDs returns the processes in the cgroups dirs.
func cgroupPIDs(dirs []string) []int {
	var out []int
	for _, d := range dirs {
		b, err := os.ReadFile(filepath.Join(d, "cgroup.procs"))
		if err != nil {
			continue
		}
		for f := range strings.FieldsSeq(string(b)) {
			if pid, err := strconv.Atoi(f); err == nil && !slices.Contains(out, pid) {
				out = append(out, pid)
			}
		}
	}
	return out
}

// removeCgroups kills every process in the subtrees roots, waits until they
// are empty and removes them, then removes their parents up to the
// hierarchy's sealflow-lab dir when they are empty.
func removeCgroups(ctx context.Context, roots []string) error {
	var dirs []string
	for _, r := range roots {
		dirs = append(dirs, cgroupTree(r)...)
	}
	if len(dirs) == 0 {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	for {
		left := cgroupPIDs(dirs)
		if len(left) == 0 {
			break
		}
		for _, pid := range left {
			syscall.Kill(pid, syscall.SIGKILL)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("processes %v still in the lab's cgroups after SIGKILL: %w", left, ctx.Err())
		case <-time.After(10 * time.Millisecond):
		}
	}
	var errs []error
	for _, d := range dirs {
		// An emptied cgroup may still be busy for a moment (exiting
		// tasks, memory being uncharged).
		for {
			err := syscall.Rmdir(d)
			if err == nil || errors.Is(err, syscall.ENOENT) {
				break
			}
			if !errors.Is(err, syscall.EBUSY) || ctx.Err() != nil {
				errs = append(errs, fmt.Errorf("remove cgroup %s: %w", d, err))
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	for _, r := range roots {
		if !strings.Contains(r, "/"+cgroupBase+"/") {
			continue
		}
		for p := filepath.Dir(r); filepath.Base(p) != "" && p != "/"; p = filepath.Dir(p) {
			if err := syscall.Rmdir(p); err != nil { // not empty: another lab or host
				break
			}
			if filepath.Base(p) == cgroupBase {
				break
			}
		}
	}
	return errors.Join(errs...)
}
