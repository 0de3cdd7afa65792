package sshconn

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/sealflow/sealflow/internal/lab"
	"github.com/sealflow/sealflow/internal/transport"
)

// finishingScript prints "started", then after a sleep would touch a file:
// the proof that the command went on to finish. Its processes carry tag
// in their environment.
const finishingScript = `echo started
sleep 12
touch "$DONEFILE"`

func randomTag(t *testing.T) string {
	t.Helper()
	b := make([]byte, 8)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return "sealflow-test-" + hex.EncodeToString(b)
}

// tagged lists the processes of this machine (every lab host's PID
// namespace included) whose environment holds SEALFLOW_TEST_TAG=tag.
func tagged(tag string) []string {
	var out []string
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/environ")
		if err != nil {
			continue
		}
		for _, kv := range strings.Split(string(b), "\x00") {
			if kv == "SEALFLOW_TEST_TAG="+tag {
				cmd, _ := os.ReadFile("/proc/" + e.Name() + "/cmdline")
				out = append(out, e.Name()+" "+strings.ReplaceAll(string(cmd), "\x00", " "))
			}
		}
	}
	return out
}

// startFinishing runs finishingScript on c in the background and returns
// once it has printed "started"; the channel gets Exec's error.
func startFinishing(t *testing.T, c *Conn, env map[string]string) <-chan error {
	t.Helper()
	var out syncBuffer
	errc := make(chan error, 1)
	go func() {
		_, err := c.Exec(context.Background(), transport.Command{Script: finishingScript, Env: env, Stdout: &out})
		errc <- err
	}()
	waitFor(t, "the command to start", func() bool { return strings.Contains(out.String(), "started") })
	return errc
}

// When the server side of the connection dies while a command runs
// (sshd's processes for the connection killed), the command dies with its
// session: it does not go on to finish, and Exec says the outcome is
// unknown.
func TestSSHDKilledKillsRemoteCommand(t *testing.T) {
	s := startSSHD(t, "")
	c := s.dial(s.config())
	done := filepath.Join(t.TempDir(), "finished")
	tag := randomTag(t)
	errc := startFinishing(t, c, map[string]string{"DONEFILE": done, "SEALFLOW_TEST_TAG": tag})
	for _, pid := range childPIDs(s.cmd.Process.Pid) {
		syscall.Kill(pid, syscall.SIGKILL)
	}
	var err error
	select {
	case err = <-errc:
	case <-time.After(30 * time.Second):
		t.Fatal("Exec did not return after sshd was killed")
	}
	if !errors.Is(err, transport.ErrOutcomeUnknown) {
		t.Errorf("Exec returned %v, want an error wrapping ErrOutcomeUnknown", err)
	}
	waitFor(t, "the command's processes to be gone", func() bool { return len(tagged(tag)) == 0 })
	time.Sleep(13 * time.Second) // past the script's sleep
	if _, err := os.Stat(done); err == nil {
		t.Error("the command went on to finish after its session died")
	}
}

// A link cut by a firewall rule (no packet either way, no FIN, no RST)
// while a command runs: the client sees the connection drop (keepalive) and
// reports an unknown outcome; on the host the watchdog misses the
// heartbeats and kills the command before it finishes.
func TestLinkDropKillsRemoteCommand(t *testing.T) {
	l := lab.ForTest(t, lab.Config{Name: "linkdrop", Masters: 1})
	h := l.Hosts[0]
	ctx := context.Background()
	user := l.User
	if user == "" {
		user = "root"
	}
	cfg := Config{Address: h.Address, User: user, KnownHosts: l.KnownHosts, HostName: h.Name, KeyFiles: []string{l.Key}, KeepAlive: 500 * time.Millisecond}
	c, err := Dial(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	done := "/tmp/sealflow-linkdrop-finished"
	tag := randomTag(t)
	errc := startFinishing(t, c, map[string]string{"DONEFILE": done, "SEALFLOW_TEST_TAG": tag})
	// The heartbeat starts the watchdog's timer after a second.
	time.Sleep(2 * heartbeatEvery)
	cut := `nft add table inet sealflow_linkdrop &&
nft add chain inet sealflow_linkdrop in '{ type filter hook input priority -10; }' &&
nft add chain inet sealflow_linkdrop out '{ type filter hook output priority -10; }' &&
nft add rule inet sealflow_linkdrop in tcp dport 22 drop &&
nft add rule inet sealflow_linkdrop out tcp sport 22 drop`
	if out, err := l.Exec(ctx, h.Name, "sh", "-c", cut); err != nil {
		t.Fatalf("cut the link: %v %s", err, out)
	}
	t.Cleanup(func() { l.Exec(context.Background(), h.Name, "nft", "delete table inet sealflow_linkdrop") })
	select {
	case err = <-errc:
	case <-time.After(30 * time.Second):
		t.Fatal("Exec did not return after the link was cut")
	}
	if !errors.Is(err, transport.ErrOutcomeUnknown) {
		t.Errorf("Exec returned %v, want an error wrapping ErrOutcomeUnknown", err)
	}
	waitFor(t, "the command's processes on the host to be gone", func() bool { return len(tagged(tag)) == 0 })
	time.Sleep(13 * time.Second) // past the script's sleep
	if out, _ := l.Exec(ctx, h.Name, "sh", "-c", "test -e "+done+" && echo finished || :"); strings.Contains(out, "finished") {
		t.Error("the command went on to finish after the link was cut")
	}
}

// A script that ignores TERM, and children that do too: after a timeout
// Exec sends TERM, then KILL to the process group after the grace period;
// nothing of the command is left on the host.
func TestTimeoutKillsScriptIgnoringTerm(t *testing.T) {
	s := startSSHD(t, "")
	c := s.dial(s.config())
	for _, stdin := range []bool{false, true} { // with and without the watchdog
		tag := randomTag(t)
		var out syncBuffer
		cmd := transport.Command{
			// The sleeps inherit the ignored TERM; they are long-lived, so
			// that no moment between two of them looks like the end.
			Script: `trap "" TERM
(trap "" TERM; sleep 1000) &
echo started
sleep 1000`,
			Env:    map[string]string{"SEALFLOW_TEST_TAG": tag},
			Stdout: &out,
		}
		if stdin {
			cmd.Stdin = strings.NewReader("")
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		start := time.Now()
		_, err := c.Exec(ctx, cmd)
		cancel()
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("stdin %v: Exec returned %v, want the deadline", stdin, err)
		}
		if !strings.Contains(out.String(), "started") {
			t.Fatalf("stdin %v: the script did not start", stdin)
		}
		if d := time.Since(start); d > 2*time.Second+killGrace+5*time.Second {
			t.Errorf("stdin %v: Exec returned after %s", stdin, d)
		}
		waitFor(t, "nothing of the command left", func() bool { return len(tagged(tag)) == 0 })
	}
}

// A hung host (its sshd stopped with SIGSTOP) does not hold a command past
// its deadline: neither the running command nor a new one nor a dial.
func TestHungHostHonoursDeadline(t *testing.T) {
	s := startSSHD(t, "")
	cfg := s.config()
	cfg.KeepAlive = -1 // the deadline alone must do it
	c := s.dial(cfg)
	errc := make(chan error, 1)
	var out syncBuffer
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	go func() {
		_, err := c.Exec(ctx, transport.Command{Script: "echo started; sleep 60", Stdout: &out})
		errc <- err
	}()
	waitFor(t, "the command to start", func() bool { return strings.Contains(out.String(), "started") })
	stopped := append([]int{s.cmd.Process.Pid}, childPIDs(s.cmd.Process.Pid)...)
	for _, pid := range stopped {
		syscall.Kill(pid, syscall.SIGSTOP)
	}
	defer func() {
		for _, pid := range stopped {
			syscall.Kill(pid, syscall.SIGCONT)
		}
	}()
	start := time.Now()
	select {
	case err := <-errc:
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("Exec returned %v, want the deadline", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Exec on a hung host did not return")
	}
	// 3 s deadline from before the stop, plus at most killOpenTimeout to
	// find the host hung.
	if d := time.Since(start); d > 3*time.Second+killOpenTimeout+2*time.Second {
		t.Errorf("Exec returned %s after the host hung", d)
	}

	// A new command on a (fresh) connection to the hung host, and a dial.
	c2start := time.Now()
	dctx, dcancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer dcancel()
	dcfg := cfg
	dcfg.DialTimeout = time.Minute
	if _, err := Dial(dctx, dcfg); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Dial of a hung host: %v, want the deadline", err)
	}
	if d := time.Since(c2start); d > 4*time.Second {
		t.Errorf("Dial of a hung host returned after %s, want about 2s", d)
	}
}

// slowSource yields 32 KiB every 20 ms, without end, and counts.
type slowSource struct {
	mu sync.Mutex
	n  int
}

func (s *slowSource) Read(p []byte) (int, error) {
	time.Sleep(20 * time.Millisecond)
	n := min(len(p), 32<<10)
	for i := range p[:n] {
		p[i] = 'x'
	}
	s.mu.Lock()
	s.n += n
	s.mu.Unlock()
	return n, nil
}

func (s *slowSource) sent() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.n
}

// A host that hangs in the middle of an upload: Upload returns at its
// deadline, not when a keepalive gives up on the connection.
func TestHungHostUploadHonoursDeadline(t *testing.T) {
	s := startSSHD(t, "")
	cfg := s.config()
	cfg.KeepAlive = -1
	c := s.dial(cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Second)
	defer cancel()
	src := &slowSource{}
	errc := make(chan error, 1)
	go func() { errc <- c.Upload(ctx, src, filepath.Join(t.TempDir(), "big"), 0o600, "") }()
	waitFor(t, "the upload to send data", func() bool { return src.sent() > 256<<10 })
	stopped := append([]int{s.cmd.Process.Pid}, childPIDs(s.cmd.Process.Pid)...)
	for _, pid := range stopped {
		for _, p := range append([]int{pid}, childPIDs(pid)...) {
			syscall.Kill(p, syscall.SIGSTOP)
		}
	}
	defer func() {
		for _, pid := range stopped {
			for _, p := range append([]int{pid}, childPIDs(pid)...) {
				syscall.Kill(p, syscall.SIGCONT)
			}
		}
	}()
	select {
	case err := <-errc:
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("Upload: %v, want the deadline", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("Upload to a hung host did not return at its deadline")
	}
}

// A command long enough to start the watchdog's timer leaves nothing of
// it on the host once Exec returns: the timer's sleep goes with the
// watcher (a `sleep 5` left behind for up to 5 s showed in a host that
// was to be as it was after clean). The runner, which keeps its timer
// while the connection lives, leaves nothing once it is closed.
func TestWatchdogLeavesNothing(t *testing.T) {
	l := lab.ForTest(t, lab.Config{Name: "watchdog", Masters: 1})
	h := l.Hosts[0]
	ctx := context.Background()
	c, err := Dial(ctx, Config{Address: h.Address, User: "root", KnownHosts: l.KnownHosts, HostName: h.Name, KeyFiles: []string{l.Key}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	left := func(when string) {
		t.Helper()
		// The watcher stops when the command ends; give it a moment,
		// well under the timer's 5 s.
		time.Sleep(300 * time.Millisecond)
		out, err := l.Exec(ctx, h.Name, "ps", "-eo", "args=")
		if err != nil {
			t.Fatal(err)
		}
		for _, line := range strings.Split(out, "\n") {
			line = strings.TrimSpace(line)
			if line == "sleep "+watchdogTick || strings.HasPrefix(line, "sh -c umask 077") {
				t.Errorf("%s, the host still runs %.40q:\n%s", when, line, out)
			}
		}
	}
	// $$ keeps the command off the runner: a session of its own, with
	// the watchdog.
	if _, err := c.Exec(ctx, transport.Command{Script: "sleep 2.5 # $$"}); err != nil {
		t.Fatal(err)
	}
	if c.res != nil {
		t.Fatal("a command naming $$ ran on the runner")
	}
	left("after a command in a session of its own")
	if _, err := c.Exec(ctx, transport.Command{Script: "sleep 2.5"}); err != nil {
		t.Fatal(err)
	}
	if c.res == nil {
		t.Fatal("the command did not run on the runner")
	}
	c.Close()
	left("after a command on the runner and the connection's close")
}
