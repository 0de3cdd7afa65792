package main

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sealflow/sealflow/internal/testutil"
)

// waitFor polls cond for up to 20 s (a bound, not a timing assertion).
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	testutil.Eventually(t, what, 20*time.Second, 20*time.Millisecond, testutil.True(cond))
}

type supFixture struct {
	t                      *testing.T
	state, logs, manifests string
	env                    podEnv
}

func newSupFixture(t *testing.T) *supFixture {
	dir := t.TempDir()
	f := &supFixture{t: t, state: filepath.Join(dir, "standin"), logs: filepath.Join(dir, "pods"), manifests: filepath.Join(dir, "manifests")}
	if err := os.MkdirAll(f.manifests, 0o755); err != nil {
		t.Fatal(err)
	}
	f.env = podEnv{NodeName: "m1", NodeIP: "127.0.0.1", Path: os.Getenv("PATH"), Marker: "SUPTEST_" + fmt.Sprint(time.Now().UnixNano())}
	return f
}

func (f *supFixture) supervisor() *supervisor {
	s, err := newSupervisor(slog.New(slog.NewTextHandler(io.Discard, nil)), f.state, f.logs, f.env.Path,
		backoff{Initial: 50 * time.Millisecond, Max: 200 * time.Millisecond, Reset: time.Minute}, nil)
	if err != nil {
		f.t.Fatal(err)
	}
	return s
}

// write writes a static pod whose one container runs script in sh.
func (f *supFixture) write(name, script string) {
	m := fmt.Sprintf(`apiVersion: v1
kind: Pod
metadata: {name: %s, namespace: kube-system}
spec:
  terminationGracePeriodSeconds: 5
  containers:
  - name: main
    image: none
    command: [sh, -c, %q]
    env: [{name: GREETING, value: hello}]
`, name, script)
	if err := os.WriteFile(filepath.Join(f.manifests, name+".yaml"), []byte(m), 0o644); err != nil {
		f.t.Fatal(err)
	}
}

func (f *supFixture) sync(s *supervisor) []staticPod {
	pods, errs := loadStaticPods(f.manifests, f.env)
	if len(errs) > 0 {
		f.t.Fatal(errs)
	}
	s.Sync(pods)
	return pods
}

// runningPID waits until the only container of the only pod runs and
// returns its PID.
func runningPID(t *testing.T, s *supervisor, notPID int) int {
	t.Helper()
	var pid int
	waitFor(t, "a running container", func() bool {
		ps := s.Pods()
		if len(ps) != 1 || !ps[0].Containers[0].Running || ps[0].Containers[0].PID == notPID {
			return false
		}
		pid = ps[0].Containers[0].PID
		_, ok := startTick(pid)
		return ok
	})
	return pid
}

func gone(pid int) func() bool {
	return func() bool { _, ok := startTick(pid); return !ok }
}

func TestSupervisorRunsRestartsAndStops(t *testing.T) {
	t.Parallel()
	f := newSupFixture(t)
	s := f.supervisor()
	f.write("app", `echo "$GREETING from $HOSTNAME"; exec sleep 1000`)
	pods := f.sync(s)
	pid := runningPID(t, s, 0)

	// Output goes to the pod's log; the pid file names the process.
	logFile := filepath.Join(f.logs, "kube-system_app-m1_"+pods[0].UID, "main", "0.log")
	waitFor(t, "the container's output in "+logFile, func() bool {
		b, _ := os.ReadFile(logFile)
		return strings.Contains(string(b), "hello from m1")
	})
	recs, err := readRecords(f.state)
	if err != nil || len(recs) != 1 || recs[pods[0].UID+"_main"].PID != pid {
		t.Fatalf("pid files = %v, %v; want one for pid %d", recs, err, pid)
	}
	// The process is a session leader and carries the marker clean.sh uses.
	if sid, _ := syscall.Getpgid(pid); sid != pid {
		t.Errorf("process group of %d is %d, want its own", pid, sid)
	}
	env, _ := os.ReadFile(fmt.Sprintf("/proc/%d/environ", pid))
	if !strings.Contains(string(env), f.env.Marker+"=kube-system/app-m1/main") {
		t.Errorf("environment of %d lacks the marker: %q", pid, env)
	}

	// A process that dies is started again.
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	pid2 := runningPID(t, s, pid)
	if st := s.Pods()[0].Containers[0]; st.Restarts != 1 {
		t.Errorf("restarts = %d, want 1", st.Restarts)
	}

	// A changed manifest replaces the process.
	f.write("app", `echo changed; exec sleep 1001`)
	f.sync(s)
	waitFor(t, "the old process to stop", gone(pid2))
	pid3 := runningPID(t, s, pid2)
	cmdline, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid3))
	if !strings.Contains(string(cmdline), "1001") {
		t.Errorf("new process runs %q, want the changed command", cmdline)
	}

	// A removed manifest stops it and removes its pid file.
	if err := os.Remove(filepath.Join(f.manifests, "app.yaml")); err != nil {
		t.Fatal(err)
	}
	f.sync(s)
	waitFor(t, "the process to stop", gone(pid3))
	if recs, _ := readRecords(f.state); len(recs) != 0 {
		t.Errorf("pid files left: %v", recs)
	}
	s.Detach()
}

func TestSupervisorFindsItsProcessesAfterARestart(t *testing.T) {
	t.Parallel()
	f := newSupFixture(t)
	f.write("keep", `exec sleep 1000`)
	f.write("drop", `exec sleep 1002`)
	s := f.supervisor()
	f.sync(s)
	pids := map[string]int{}
	waitFor(t, "both pods running", func() bool {
		for _, p := range s.Pods() {
			if p.Containers[0].Running {
				pids[p.Pod.Name] = p.Containers[0].PID
			}
		}
		return len(pids) == 2
	})
	s.Detach() // the kubelet stops: its processes stay
	for name, pid := range pids {
		if gone(pid)() {
			t.Fatalf("%s (pid %d) stopped with the kubelet", name, pid)
		}
	}

	// While the kubelet is down, one manifest goes away.
	if err := os.Remove(filepath.Join(f.manifests, "drop.yaml")); err != nil {
		t.Fatal(err)
	}
	s2 := f.supervisor()
	f.sync(s2)
	t.Cleanup(func() {
		if err := os.Remove(filepath.Join(f.manifests, "keep.yaml")); err == nil {
			f.sync(s2)
		}
		s2.Detach()
	})
	if got := runningPID(t, s2, 0); got != pids["keep-m1"] {
		t.Errorf("after the restart keep runs as %d, want the same process %d", got, pids["keep-m1"])
	}
	waitFor(t, "the process of the removed manifest to stop", gone(pids["drop-m1"]))

	// A taken-over process that dies is restarted too.
	if err := syscall.Kill(pids["keep-m1"], syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	runningPID(t, s2, pids["keep-m1"])
}

func TestSupervisorReportsAMissingCommand(t *testing.T) {
	t.Parallel()
	f := newSupFixture(t)
	m := "apiVersion: v1\nkind: Pod\nmetadata: {name: x}\nspec: {containers: [{name: c, command: [no-such-command-here]}]}\n"
	if err := os.WriteFile(filepath.Join(f.manifests, "x.yaml"), []byte(m), 0o644); err != nil {
		t.Fatal(err)
	}
	s := f.supervisor()
	f.sync(s)
	defer s.Detach()
	waitFor(t, "an error status", func() bool {
		st := s.Pods()[0].Containers[0]
		return st.Waiting == "CreateContainerError" && strings.Contains(st.Message, `command "no-such-command-here" not found on PATH`)
	})
	if err := os.Remove(filepath.Join(f.manifests, "x.yaml")); err != nil {
		t.Fatal(err)
	}
	f.sync(s)
}
