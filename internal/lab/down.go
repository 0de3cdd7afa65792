package lab

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"
)

// Down removes the lab called name: its hosts' processes (killing a host's
// init ends its PID namespace), network namespaces, links, files and state.
// It works from the state file and, when that is gone, from the names the
// lab's objects have; removing a lab that does not exist is not an error.
func Down(ctx context.Context, name string) error {
	if err := checkName("lab", name, maxLabName); err != nil {
		return InputError{fmt.Errorf("lab: %w", err)}
	}
	st, err := readState(name)
	haveState := err == nil
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		// A broken state file: clean up by names, then drop it.
		haveState = false
	}
	var errs []error

	// Processes: the hosts' inits, found by command line (a pid in the
	// state may have been reused), and anything else in the lab's netns.
	nsDir := "/run/netns"
	var nsNames []string
	if ents, err := os.ReadDir(nsDir); err == nil {
		for _, e := range ents {
			if strings.HasPrefix(e.Name(), netnsPrefix(name)) {
				nsNames = append(nsNames, e.Name())
			}
		}
	}
	links := map[string]bool{}
	for _, n := range nsNames {
		var s syscall.Stat_t
		if err := syscall.Stat(filepath.Join(nsDir, n), &s); err == nil {
			links[fmt.Sprintf("net:[%d]", s.Ino)] = true
		}
	}
	victims := append(labInits(name), inNetns(links)...)
	for _, pid := range victims {
		if err := syscall.Kill(pid, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
			errs = append(errs, fmt.Errorf("kill process %d: %w", pid, err))
		}
	}
	if err := waitGone(ctx, victims); err != nil {
		errs = append(errs, err)
	}

	// Cgroups (NodeStack): whatever is left in them is killed first.
	roots := labCgroups(name)
	if haveState {
		for _, h := range st.Hosts {
			for _, c := range h.Cgroups {
				if strings.HasPrefix(c, "/sys/fs/cgroup/") && strings.Contains(c, "/"+cgroupBase+"/"+name+"/") && !slices.Contains(roots, c) {
					roots = append(roots, c)
				}
			}
		}
	}
	if err := removeCgroups(ctx, roots); err != nil {
		errs = append(errs, err)
	}

	for _, n := range nsNames {
		if err := run(ctx, "ip", "netns", "delete", n); err != nil {
			errs = append(errs, err)
		}
	}
	ifs, err := net.Interfaces()
	if err != nil {
		errs = append(errs, fmt.Errorf("list links: %w", err))
	}
	for _, i := range ifs {
		if isVeth(name, i.Name) {
			if err := run(ctx, "ip", "link", "delete", i.Name); err != nil && linkExists(i.Name) {
				errs = append(errs, err)
			}
		}
	}
	if _, err := net.InterfaceByName(bridgeName(name)); err == nil {
		if err := run(ctx, "ip", "link", "delete", bridgeName(name)); err != nil {
			errs = append(errs, err)
		}
	}

	// Files: the dir of the state, or the default dir when it holds a lab.
	dir := ""
	if haveState {
		dir = st.Dir
	} else if d := defaultDir(name); isLabDir(d) {
		dir = d
	}
	if dir != "" && len(errs) == 0 {
		if err := os.RemoveAll(dir); err != nil {
			errs = append(errs, fmt.Errorf("remove %s: %w", dir, err))
		}
	}
	if len(errs) == 0 {
		if err := os.Remove(statePath(name)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, fmt.Errorf("remove state: %w", err))
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("lab %s down: %w (run down again; the state is kept)", name, errors.Join(errs...))
	}
	return nil
}

// waitGone waits until the processes have exited.
func waitGone(ctx context.Context, pids []int) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for {
		var left []int
		for _, p := range pids {
			if alive(p) {
				left = append(left, p)
			}
		}
		if len(left) == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("processes %v still alive after SIGKILL: %w", left, ctx.Err())
		case <-tick.C:
		}
	}
}

func linkExists(name string) bool {
	_, err := net.InterfaceByName(name)
	return err == nil
}

// isLabDir reports whether dir looks like a lab's dir (so that Down without
// a state file does not remove an unrelated directory).
func isLabDir(dir string) bool {
	_, err1 := os.Stat(filepath.Join(dir, "hosts"))
	_, err2 := os.Stat(filepath.Join(dir, "id_ed25519"))
	return err1 == nil || err2 == nil
}

// killWait kills pid and waits until it is gone.
func killWait(ctx context.Context, pid int) error {
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("kill process %d: %w", pid, err)
	}
	return waitGone(ctx, []int{pid})
}
