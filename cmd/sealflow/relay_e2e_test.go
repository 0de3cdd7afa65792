package main

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sealflow/sealflow/internal/lab"
)

// relayLab is a lab of six hosts with shaped links and a file to relay.
type relayLab struct {
	l    *lab.Lab
	bin  string
	src  string
	sum  string
	size int64
	args []string // for run and resume: known hosts, plain output
}

const relayPlan = `name: relay
vars:
  src: ""
  dest: /var/lib/relaytest/blob
steps:
  - id: put
    kind: distribute
    with: {src: "${{ vars.src }}", dest: "${{ vars.dest }}", mode: relay}
`

// TestRelayOnLab distributes a file by relay to six lab hosts whose links
// are shaped: content intact on each, the control machine's egress about
// once the file, nothing left running or listening; a host cut off
// mid-transfer is named and the others complete, resume completes it;
// sealflow killed mid-transfer, then resume, does not send again what
// the hosts had verified; a host that cannot reach the others gets the
// file by push.
func TestRelayOnLab(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("relay on a 6-host lab: not with -short")
	}
	l := lab.ForTest(t, lab.Config{Name: "relay", Masters: 0, Nodes: 6, Rate: "100mbit"})
	r := &relayLab{l: l, bin: sealflowBin(t), size: 48 << 20}
	r.src = filepath.Join(t.TempDir(), "pkg.tar")
	data := make([]byte, r.size)
	rand.Read(data)
	write(t, r.src, string(data))
	r.sum = sumHex(data)
	r.args = []string{"--known-hosts", l.KnownHosts, "--output", "plain"}
	listening := r.listeners(t)

	t.Run("chain", func(t *testing.T) {
		dir := t.TempDir()
		write(t, filepath.Join(dir, "plan.yaml"), relayPlan)
		before := r.egress(t)
		r.mustRun(t, dir, "run", "-i", l.Inventory, "plan.yaml", "--set", "src="+r.src)
		sent := r.egress(t) - before
		r.checkFiles(t, "/var/lib/relaytest/blob", r.hosts())
		// Once the file, plus the agents (about 1.1 MB each, sent once per
		// host) and what SSH and TCP add.
		if max := r.size + 6*1200<<10 + r.size/20; sent < uint64(r.size) || sent > uint64(max) {
			t.Errorf("the control machine sent %d bytes for a file of %d to 6 hosts, want about once the file (at most %d)", sent, r.size, max)
		}
		t.Logf("control machine egress: %d bytes (%.2f × the file)", sent, float64(sent)/float64(r.size))
		logs := r.logs(t, dir)
		if n := strings.Count(logs, "fed by the control machine"); n != 1 {
			t.Errorf("%d hosts fed by the control machine, want 1\n%s", n, logs)
		}
		if n := strings.Count(logs, "relay: pulls from "); n != 5 {
			t.Errorf("%d hosts pulled from another host, want 5\n%s", n, logs)
		}
		r.nothingLeft(t, listening)
		// Again: nothing to do, nothing sent.
		before = r.egress(t)
		out := r.mustRun(t, dir, "run", "-i", l.Inventory, "plan.yaml", "--set", "src="+r.src)
		if sent := r.egress(t) - before; sent > 1<<20 {
			t.Errorf("a run with nothing to do sent %d bytes", sent)
		}
		if !strings.Contains(out, "unchanged put@n1") {
			t.Errorf("second run:\n%s", out)
		}
	})

	t.Run("host cut off", func(t *testing.T) {
		dir := t.TempDir()
		write(t, filepath.Join(dir, "plan.yaml"), relayPlan)
		dest := "/var/lib/relaytest/cut"
		cmd := r.start(t, dir, "run", "-i", l.Inventory, "plan.yaml", "--keep-going", "--set", "src="+r.src, "--set", "dest="+dest)
		r.waitPartial(t, dest, r.size/4)
		// A host in the middle of the chain: it pulls from a host, and
		// a host pulls from it.
		cut, next := r.middle(t, dir)
		h, _ := l.Host(cut)
		if err := exec.Command("ip", "link", "set", h.Link, "down").Run(); err != nil {
			t.Fatal(err)
		}
		out, code := r.wait(t, cmd)
		if code != 1 || !strings.Contains(out, "put@"+cut) || !strings.Contains(out, "FAILED") {
			t.Fatalf("with %s cut off: exit %d, want 1 naming put@%s\n%s", cut, code, cut, out)
		}
		var others []string
		for _, n := range r.hosts() {
			if n != cut {
				others = append(others, n)
			}
		}
		r.checkFiles(t, dest, others)
		if log := readFile(t, filepath.Join(dir, ".sealflow", "logs", "put", next+".log")); !strings.Contains(log, "relay: lost "+cut) {
			t.Errorf("%s, fed by %s, does not say it lost it:\n%s", next, cut, log)
		}
		if err := exec.Command("ip", "link", "set", h.Link, "up").Run(); err != nil {
			t.Fatal(err)
		}
		r.mustRun(t, dir, "resume")
		r.checkFiles(t, dest, []string{cut})
		r.nothingLeft(t, listening)
	})

	t.Run("SIGKILL and resume", func(t *testing.T) {
		dir := t.TempDir()
		write(t, filepath.Join(dir, "plan.yaml"), relayPlan)
		dest := "/var/lib/relaytest/killed"
		cmd := r.start(t, dir, "run", "-i", l.Inventory, "plan.yaml", "--set", "src="+r.src, "--set", "dest="+dest)
		r.waitPartial(t, dest, r.size/3)
		cmd.Process.Signal(syscall.SIGKILL)
		cmd.Wait()
		// The agents end with their SSH sessions.
		r.nothingLeft(t, listening)
		var most int64
		for _, n := range r.hosts() {
			most = max(most, r.partialSize(t, n, dest))
		}
		before := r.egress(t)
		r.mustRun(t, dir, "resume")
		sent := r.egress(t) - before
		r.checkFiles(t, dest, r.hosts())
		t.Logf("resume sent %d bytes; the hosts had up to %d of %d verified", sent, most, r.size)
		// What the most advanced host had verified is not sent again.
		if left := r.size - most; sent > uint64(left+left/10+2<<20) {
			t.Errorf("resume sent %d bytes; the hosts had up to %d of %d verified, so about %d were left", sent, most, r.size, left)
		}
		if logs := r.logs(t, dir); !strings.Contains(logs, "verified here from an earlier run: kept") {
			t.Errorf("no host kept what it had verified:\n%s", logs)
		}
		r.nothingLeft(t, listening)
	})

	t.Run("unreachable neighbour", func(t *testing.T) {
		dir := t.TempDir()
		write(t, filepath.Join(dir, "plan.yaml"), relayPlan)
		dest := "/var/lib/relaytest/walled"
		// n5 and n6 may not open connections to the other hosts: only
		// SSH answers go out. One of them may head the chain (fed by
		// the control machine, it reaches nobody); the other cannot.
		walled := []string{"n5", "n6"}
		for _, n := range walled {
			for _, rule := range [][]string{
				{"add", "table", "inet", "relaytest"},
				{"add", "chain", "inet", "relaytest", "out", "{ type filter hook output priority 0; }"},
				{"add", "rule", "inet", "relaytest", "out", "ct", "state", "new", "tcp", "dport", "!=", "22", "reject"},
			} {
				labExec(t, l, n, append([]string{"nft"}, rule...)...)
			}
			defer l.Exec(context.Background(), n, "nft", "delete", "table", "inet", "relaytest")
		}
		r.mustRun(t, dir, "run", "-i", l.Inventory, "plan.yaml", "--set", "src="+r.src, "--set", "dest="+dest)
		r.checkFiles(t, dest, r.hosts())
		// A walled host that does not head the chain names the host it
		// could not reach, then gets the file from the control machine:
		// by push after two refusals, or fed by it when no host before
		// it in the chain is left to try.
		fellBack := 0
		for _, n := range walled {
			log := readFile(t, filepath.Join(dir, ".sealflow", "logs", "put", n+".log"))
			t.Logf("%s:\n%s", n, log)
			lost := strings.Index(log, "relay: lost ")
			if lost < 0 {
				// The head: fed by the control machine from the start.
				if !strings.Contains(log, "relay: fed by the control machine") {
					t.Errorf("%s neither lost a source nor was fed by the control machine:\n%s", n, log)
				}
				continue
			}
			fellBack++
			if !strings.Contains(log[lost:], "connection refused") {
				t.Errorf("%s's log does not say why it could not reach its source:\n%s", n, log)
			}
			if after := log[lost:]; !strings.Contains(after, "push instead") && !strings.Contains(after, "relay: fed by the control machine") {
				t.Errorf("%s's log does not say it got the file from the control machine:\n%s", n, log)
			}
		}
		if fellBack == 0 {
			t.Errorf("no walled host tried to reach a neighbour; both cannot have headed the chain")
		}
		r.nothingLeft(t, listening)
	})
}

func sumHex(b []byte) string { return fmt.Sprintf("%x", sha256.Sum256(b)) }

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func (r *relayLab) hosts() []string {
	var names []string
	for _, h := range r.l.Hosts {
		names = append(names, h.Name)
	}
	return names
}

func (r *relayLab) egress(t *testing.T) uint64 {
	t.Helper()
	n, err := r.l.ControlEgress()
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func (r *relayLab) mustRun(t *testing.T, dir string, args ...string) string {
	t.Helper()
	out, _ := runSF(t, r.bin, dir, 0, append(args, r.args...)...)
	return out
}

func (r *relayLab) start(t *testing.T, dir string, args ...string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(r.bin, append(args, r.args...)...)
	cmd.Dir = dir
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill() })
	return cmd
}

func (r *relayLab) wait(t *testing.T, cmd *exec.Cmd) (string, int) {
	t.Helper()
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Minute):
		cmd.Process.Kill()
		<-done
		t.Fatalf("sealflow did not end within 5 minutes:\n%s", cmd.Stdout)
	}
	return fmt.Sprint(cmd.Stdout), cmd.ProcessState.ExitCode()
}

// partialSize is the size of dest's partial file on host (0 when none).
func (r *relayLab) partialSize(t *testing.T, host, dest string) int64 {
	partial := filepath.Join(filepath.Dir(dest), "."+filepath.Base(dest)+".sealflow-partial")
	out, err := r.l.Exec(context.Background(), host, "sh", "-c", `stat -c %s "$1" 2>/dev/null || echo 0`, "sh", partial)
	if err != nil {
		t.Fatalf("%s: %v", host, err)
	}
	n, _ := strconv.ParseInt(strings.TrimSpace(out), 10, 64)
	return n
}

// waitPartial waits until some host's partial file of dest holds n bytes.
func (r *relayLab) waitPartial(t *testing.T, dest string, n int64) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for time.Now().Before(deadline) {
		for _, h := range r.hosts() {
			if r.partialSize(t, h, dest) >= n {
				return
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("no host got %d bytes of %s within 2 minutes", n, dest)
}

func (r *relayLab) checkFiles(t *testing.T, dest string, hosts []string) {
	t.Helper()
	for _, h := range hosts {
		out, err := r.l.Exec(context.Background(), h, "sh", "-c", `sha256sum <"$1"; ls -a "$(dirname "$1")"`, "sh", dest)
		if err != nil || !strings.HasPrefix(out, r.sum) {
			t.Errorf("%s: %s has sha256 %q, want %s (%v)", h, dest, out, r.sum, err)
		}
		if strings.Contains(out, "sealflow-partial") {
			t.Errorf("%s: a partial file is left beside %s:\n%s", h, dest, out)
		}
	}
}

// listeners returns, per host, the TCP ports it listens on.
func (r *relayLab) listeners(t *testing.T) map[string]string {
	t.Helper()
	m := map[string]string{}
	for _, h := range r.hosts() {
		out := labExec(t, r.l, h, "sh", "-c", "ss -Htln | awk '{print $4}' | sort")
		m[h] = out
	}
	return m
}

// nothingLeft checks that no agent runs and nothing more listens on any
// host (agents end within seconds of their session).
func (r *relayLab) nothingLeft(t *testing.T, listening map[string]string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		var left []string
		now := r.listeners(t)
		for _, h := range r.hosts() {
			if ps, _ := r.l.Exec(context.Background(), h, "pgrep", "-a", "-f", "sealflow-relay-"); strings.TrimSpace(ps) != "" {
				left = append(left, h+": running: "+strings.TrimSpace(ps))
			}
			if now[h] != listening[h] {
				left = append(left, h+": listening: "+now[h])
			}
		}
		if len(left) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("left on the hosts after the run:\n%s", strings.Join(left, "\n"))
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// middle returns a host of the running chain that pulls from a host and
// feeds one (next).
func (r *relayLab) middle(t *testing.T, dir string) (host, next string) {
	t.Helper()
	re := regexp.MustCompile(`relay: pulls from (\S+) `)
	from := map[string]string{}
	for _, h := range r.hosts() {
		b, _ := os.ReadFile(filepath.Join(dir, ".sealflow", "logs", "put", h+".log"))
		if m := re.FindSubmatch(b); m != nil {
			from[h] = string(m[1])
		}
	}
	for h, src := range from {
		if _, ok := from[src]; ok {
			return src, h
		}
	}
	t.Fatalf("no host in the middle of the chain: %v", from)
	return "", ""
}

// logs returns the distribute task logs of the run in dir.
func (r *relayLab) logs(t *testing.T, dir string) string {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(dir, ".sealflow", "logs", "put", "*.log"))
	var b strings.Builder
	for _, f := range files {
		fmt.Fprintf(&b, "--- %s\n%s", filepath.Base(f), readFile(t, f))
	}
	return regexp.MustCompile(`(?m)^relay: served .*\n`).ReplaceAllString(b.String(), "")
}
