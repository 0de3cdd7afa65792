package steps

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sealflow/sealflow/internal/relaybin"
	"github.com/sealflow/sealflow/internal/transport/local"
)

// builtAgent is the relay agent built from cmd/sealflow-relay for this
// machine, as relaybin would embed it.
type builtAgent struct {
	once sync.Once
	ag   *relaybin.Agent
	err  error
}

var testAgent builtAgent

func (b *builtAgent) For(arch string) (*relaybin.Agent, error) {
	b.once.Do(func() {
		dir, err := os.MkdirTemp("", "relay-agent")
		if err != nil {
			b.err = err
			return
		}
		defer os.RemoveAll(dir)
		bin := filepath.Join(dir, "agent")
		cmd := exec.Command("go", "build", "-o", bin, "../cmd/sealflow-relay")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			b.err = fmt.Errorf("build the agent: %v\n%s", err, out)
			return
		}
		raw, err := os.ReadFile(bin)
		if err != nil {
			b.err = err
			return
		}
		var gz bytes.Buffer
		zw := gzip.NewWriter(&gz)
		zw.Write(raw)
		zw.Close()
		s, gs := sha256.Sum256(raw), sha256.Sum256(gz.Bytes())
		b.ag = &relaybin.Agent{Arch: arch, Gz: gz.Bytes(), GzSum: hex.EncodeToString(gs[:]),
			Sum: hex.EncodeToString(s[:]), Size: int64(len(raw))}
	})
	return b.ag, b.err
}

// relayHosts is n "hosts" on this machine (the local transport, agents
// on 127.0.0.1), each with its own destination directory.
type relayHosts struct {
	kind  *Kind
	src   string
	data  []byte
	dests []string
	logs  []*syncBuffer
}

func newRelayHosts(t *testing.T, n int, size int) *relayHosts {
	t.Helper()
	dir := t.TempDir()
	k := newDistributeKind(&testAgent)
	k.New(Params{"src": "x", "dest": "/x"}) // the hub is the kind's
	h := &relayHosts{kind: k, src: filepath.Join(dir, "pkg.tar"), data: make([]byte, size)}
	rand.Read(h.data)
	if err := os.WriteFile(h.src, h.data, 0o600); err != nil {
		t.Fatal(err)
	}
	for i := range n {
		h.dests = append(h.dests, filepath.Join(dir, fmt.Sprintf("h%d", i+1), "pkg.tar"))
		h.logs = append(h.logs, &syncBuffer{})
	}
	return h
}

// run runs the step on every host at once and returns each one's error.
func (h *relayHosts) run(t *testing.T, ctx context.Context, agentDir string, extra Params) []error {
	t.Helper()
	errs := make([]error, len(h.dests))
	var wg sync.WaitGroup
	for i, dest := range h.dests {
		p := Params{"src": h.src, "dest": dest, "mode": "relay"}
		for k, v := range extra {
			p[k] = v
		}
		st, err := h.kind.New(p)
		if err != nil {
			t.Fatal(err)
		}
		st.(*distribute).hub.agentDir = agentDir
		tg := &Target{Host: Host{Name: fmt.Sprintf("h%d", i+1), Address: "127.0.0.1"}, Conn: &local.Conn{},
			Log: h.logs[i], StepHosts: len(h.dests)}
		wg.Add(1)
		go func() {
			defer wg.Done()
			out, err := st.Run(ctx, tg)
			if err == nil && out["sha256"] != sumOf(h.data) {
				err = fmt.Errorf("sha256 output %q", out["sha256"])
			}
			errs[i] = err
		}()
	}
	wg.Wait()
	return errs
}

// sentByControl is what the logs say the control machine sent in all.
func (h *relayHosts) sentByControl() int64 {
	var most int64
	re := regexp.MustCompile(`the control machine has sent (\d+) bytes`)
	for _, l := range h.logs {
		for _, m := range re.FindAllStringSubmatch(l.String(), -1) {
			var n int64
			fmt.Sscan(m[1], &n)
			most = max(most, n)
		}
	}
	return most
}

func (h *relayHosts) checkFiles(t *testing.T) {
	t.Helper()
	for i, d := range h.dests {
		got, err := os.ReadFile(d)
		if err != nil || !bytes.Equal(got, h.data) {
			t.Errorf("host h%d: file differs (%d bytes, %v)\nlog:\n%s", i+1, len(got), err, h.logs[i])
		}
		if st, err := os.Stat(d); err == nil && st.Mode().Perm() != 0o644 {
			t.Errorf("host h%d: mode %v, want 0644", i+1, st.Mode().Perm())
		}
		if _, err := os.Stat(filepath.Join(filepath.Dir(d), ".pkg.tar.sealflow-partial")); err == nil {
			t.Errorf("host h%d: the partial file is left", i+1)
		}
	}
}

// agentsRunning lists the relay agents of this machine started from dir.
func agentsRunning(dir string) []string { return strings.Fields(pgrep(dir + "/sealflow-relay-")) }

func TestRelayChain(t *testing.T) {
	t.Parallel()
	h := newRelayHosts(t, 5, 9<<20+12345)
	agentDir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	for i, err := range h.run(t, ctx, agentDir, nil) {
		if err != nil {
			t.Fatalf("h%d: %v\nlog:\n%s", i+1, err, h.logs[i])
		}
	}
	h.checkFiles(t)
	// The file crossed the control machine's link once: one host was fed
	// by it, each other pulled from a host.
	if sent := h.sentByControl(); sent != int64(len(h.data)) {
		t.Errorf("the control machine sent %d bytes, want %d (once)", sent, len(h.data))
	}
	fed, pulled := 0, 0
	for _, l := range h.logs {
		s := l.String()
		fed += strings.Count(s, "fed by the control machine")
		pulled += strings.Count(s, "pulls from h")
	}
	if fed != 1 || pulled != 4 {
		t.Errorf("%d hosts fed by the control machine and %d by a host, want 1 and 4", fed, pulled)
	}
	if a := agentsRunning(agentDir); len(a) > 0 {
		t.Errorf("agents still running after the run: %v", a)
	}
	// Each host has it now: the step's check says so (and the engine
	// then runs nothing).
	for i, d := range h.dests {
		st, _ := h.kind.New(Params{"src": h.src, "dest": d, "mode": "relay"})
		done, out, err := st.(Checker).Done(ctx, &Target{Conn: &local.Conn{}, StepHosts: 5})
		if err != nil || !done || out["sha256"] != sumOf(h.data) {
			t.Errorf("h%d: Done = %v, %v, %v", i+1, done, out, err)
		}
	}
}

// A host's agent killed mid-transfer: the hosts after it are fed by the
// one before it, and it comes back at the tail.
func TestRelayAgentKilled(t *testing.T) {
	t.Parallel()
	h := newRelayHosts(t, 4, 24<<20)
	agentDir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	// Kill h2's agent once its partial file holds a few chunks.
	killed := make(chan string, 1)
	go func() {
		partial := filepath.Join(filepath.Dir(h.dests[1]), ".pkg.tar.sealflow-partial")
		for ctx.Err() == nil {
			if st, err := os.Stat(partial); err == nil && st.Size() >= 3<<20 {
				killed <- killAgentOf(agentDir, partial)
				return
			}
			time.Sleep(time.Millisecond)
		}
	}()
	errs := h.run(t, ctx, agentDir, nil)
	select {
	case pid := <-killed:
		if pid == "" {
			t.Fatal("found no agent with h2's partial file open")
		}
	default:
		t.Fatal("h2's agent was not killed: the transfer ended first")
	}
	if !strings.Contains(h.logs[1].String(), "back in the chain, at its tail") {
		t.Errorf("h2's log does not say it came back at the tail:\n%s", h.logs[1])
	}
	for i, l := range h.logs {
		t.Logf("h%d:\n%s", i+1, l)
	}
	for i, err := range errs {
		if err != nil {
			t.Errorf("h%d: %v\nlog:\n%s", i+1, err, h.logs[i])
		}
	}
	h.checkFiles(t)
}

// killAgentOf kills the agent started from dir that has file open and
// returns its PID ("" when none has).
func killAgentOf(dir, file string) string {
	for _, pid := range strings.Fields(pgrep(dir + "/sealflow-relay-")) {
		fds, _ := os.ReadDir("/proc/" + pid + "/fd")
		for _, fd := range fds {
			if l, _ := os.Readlink("/proc/" + pid + "/fd/" + fd.Name()); l == file {
				exec.Command("kill", "-KILL", pid).Run()
				return pid
			}
		}
	}
	return ""
}

func pgrep(pattern string) string {
	out, _ := exec.Command("pgrep", "-f", pattern).Output()
	return string(out)
}
