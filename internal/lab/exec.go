package lab

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// execTimeout bounds Exec when ctx has no deadline.
const execTimeout = 5 * time.Minute

// Command returns a command that runs argv inside host's namespaces
// (network, mount, UTS, PID; root and working directory of its init) as
// root, with a small fixed environment. The command is in a process group
// of its own; cancelling ctx kills the group.
func (l *Lab) Command(ctx context.Context, host string, argv ...string) (*exec.Cmd, error) {
	if len(argv) == 0 {
		return nil, fmt.Errorf("lab %s host %s: no command given", l.Name, host)
	}
	h, ok := l.Host(host)
	if !ok {
		return nil, fmt.Errorf("lab %s has no host %q (hosts: %s)", l.Name, host, strings.Join(l.hostNames(), ", "))
	}
	if !isInit(h.PID, l.Name, h.Name) {
		return nil, fmt.Errorf("lab %s host %s is not running (its init %d is gone): run `sealflow lab down --name %s` and up again", l.Name, h.Name, h.PID, l.Name)
	}
	nsenter, err := lookTool("nsenter")
	if err != nil {
		return nil, err
	}
	args := []string{nsenter, "-t", strconv.Itoa(h.PID), "-n", "-m", "-u", "-p"}
	cg := l.hostCgroups(host)
	if len(cg) > 0 {
		args = append(args, "-C")
	}
	args = append(append(args, "-r", "-w", "--"), argv...)
	if len(cg) > 0 {
		// A NodeStack host: into its cgroups, then (nsenter -C) its cgroup
		// namespace.
		bash, err := lookTool("bash")
		if err != nil {
			return nil, err
		}
		args = append([]string{bash, "-c", cgroupJoinScript(cg), "bash"}, args...)
	}
	cmd := exec.CommandContext(ctx, args[0], args[1:]...)
	cmd.Env = append(toolEnv(), "USER=root", "LOGNAME=root")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error {
		return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	}
	cmd.WaitDelay = 5 * time.Second
	return cmd, nil
}

// Exec runs argv inside host and returns its combined output; a failure's
// error includes the output. Without a deadline in ctx it gives up after
// five minutes.
func (l *Lab) Exec(ctx context.Context, host string, argv ...string) (string, error) {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, execTimeout)
		defer cancel()
	}
	cmd, err := l.Command(ctx, host, argv...)
	if err != nil {
		return "", err
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		if ctx.Err() != nil {
			err = fmt.Errorf("%w (%v)", ctx.Err(), err)
		}
		return string(out), fmt.Errorf("lab %s host %s: %s: %w\n%s", l.Name, host, strings.Join(argv, " "), err, strings.TrimRight(string(out), "\n"))
	}
	return string(out), nil
}

// hostCgroups returns the cgroup subtrees of host (nil unless NodeStack).
func (l *Lab) hostCgroups(host string) []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, h := range l.st.Hosts {
		if h.Name == host {
			return slices.Clone(h.Cgroups)
		}
	}
	return nil
}

func (l *Lab) hostNames() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var names []string
	for _, h := range l.Hosts {
		names = append(names, h.Name)
	}
	return names
}

// StopSSHD stops the listening sshd of host (open sessions stay) and waits
// until nothing listens on its port 22.
func (l *Lab) StopSSHD(ctx context.Context, host string) error {
	h, ok := l.Host(host)
	if !ok {
		return fmt.Errorf("lab %s has no host %q", l.Name, host)
	}
	ctx, cancel := context.WithTimeout(ctx, hostStartTimeout)
	defer cancel()
	if _, err := l.Exec(ctx, host, "sh", "-c", `[ ! -s /run/sshd.pid ] || kill "$(cat /run/sshd.pid)" 2>/dev/null || :`); err != nil {
		return fmt.Errorf("stop sshd: %w", err)
	}
	for listening(h.PID, 22) {
		select {
		case <-ctx.Done():
			return fmt.Errorf("lab %s host %s: sshd still listens: %w", l.Name, host, ctx.Err())
		case <-time.After(5 * time.Millisecond):
		}
	}
	return nil
}

// StartSSHD starts host's sshd again (a child of the host's init) and waits
// until it accepts connections. It is a no-op when sshd listens.
func (l *Lab) StartSSHD(ctx context.Context, host string) error {
	h, ok := l.Host(host)
	if !ok {
		return fmt.Errorf("lab %s has no host %q", l.Name, host)
	}
	ctx, cancel := context.WithTimeout(ctx, hostStartTimeout)
	defer cancel()
	hd := hostDir(l.Dir, host)
	script := fmt.Sprintf(`if [ -s /run/sshd.pid ] && kill -0 "$(cat /run/sshd.pid)" 2>/dev/null; then exit 0; fi
exec setsid -f %s -D -f %s -E %s </dev/null >/dev/null 2>&1`,
		sshdPath, quote(filepath.Join(hd, "sshd_config")), quote(filepath.Join(hd, "sshd.log")))
	if _, err := l.Exec(ctx, host, "sh", "-c", script); err != nil {
		return fmt.Errorf("start sshd: %w", err)
	}
	if err := waitSSH(ctx, h.Address, h.PID); err != nil {
		if errors.Is(err, context.DeadlineExceeded) {
			err = fmt.Errorf("%w%s", err, logTail(filepath.Join(hd, "sshd.log")))
		}
		return fmt.Errorf("lab %s host %s: start sshd: %w", l.Name, host, err)
	}
	return nil
}

// Running reports whether host exists and its init is alive.
func (l *Lab) Running(host string) bool {
	h, ok := l.Host(host)
	return ok && isInit(h.PID, l.Name, h.Name)
}
