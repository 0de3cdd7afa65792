package main

import (
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

	"github.com/sealflow/sealflow/internal/journal"
)

// These tests run the real binary in a terminal (tmux, a private server
// per test) and read the screen a person would see with capture-pane.

// tmuxSession is one tmux server with one window running a command.
type tmuxSession struct {
	t    *testing.T
	sock string
}

// startTmux runs script with bash in a width × height terminal. The pane
// stays after the script ends, so its last screen can be read.
func startTmux(t *testing.T, width, height int, dir, script string) *tmuxSession {
	t.Helper()
	if _, err := exec.LookPath("tmux"); err != nil {
		t.Fatal("tmux is not installed: the screen tests need it (testdata/ci/deps.sh installs it: apt-get install tmux)")
	}
	s := &tmuxSession{t: t, sock: filepath.Join(t.TempDir(), "tmux.sock")}
	t.Cleanup(func() { exec.Command("tmux", "-S", s.sock, "kill-server").Run() })
	full := fmt.Sprintf("cd %s && %s; echo \"EXIT=$?\"; exec sleep 600", shellQuote(dir), script)
	s.tmux("-f", "/dev/null", "new-session", "-d", "-x", strconv.Itoa(width), "-y", strconv.Itoa(height), "-s", "t",
		"bash", "--norc", "--noprofile", "-c", full, ";", "set-option", "-g", "status", "off")
	return s
}

func (s *tmuxSession) tmux(args ...string) string {
	s.t.Helper()
	out, err := exec.Command("tmux", append([]string{"-S", s.sock}, args...)...).CombinedOutput()
	if err != nil {
		s.t.Fatalf("tmux %s: %v: %s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// screen returns the pane's lines with its history, wrapped lines joined
// (so a line that did not fit the width shows as one longer line),
// trailing blanks cut.
func (s *tmuxSession) screen() []string {
	return s.capture("-S", "-")
}

// visible is screen without the history: what is on the screen now. Its
// first line may be the end of a line that began above.
func (s *tmuxSession) visible() []string {
	return s.capture()
}

func (s *tmuxSession) capture(args ...string) []string {
	s.t.Helper()
	var lines []string
	for _, l := range strings.Split(s.tmux(append([]string{"capture-pane", "-p", "-J", "-t", "t"}, args...)...), "\n") {
		lines = append(lines, strings.TrimRight(l, " "))
	}
	for len(lines) > 0 && lines[len(lines)-1] == "" {
		lines = lines[:len(lines)-1]
	}
	return lines
}

// escapes returns the pane with its colours and attributes as escape
// sequences.
func (s *tmuxSession) escapes() string {
	return s.tmux("capture-pane", "-p", "-e", "-t", "t")
}

// waitExit polls the screen until the script printed its exit code, calling
// each on every screen seen, and returns the code and the last screen.
func (s *tmuxSession) waitExit(timeout time.Duration, each func([]string)) (int, []string) {
	s.t.Helper()
	exitRE := regexp.MustCompile(`^EXIT=(\d+)$`)
	deadline := time.Now().Add(timeout)
	for {
		lines := s.screen()
		for _, l := range lines {
			if m := exitRE.FindStringSubmatch(l); m != nil {
				code, _ := strconv.Atoi(m[1])
				return code, lines
			}
		}
		if each != nil {
			each(lines)
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("the command did not end within %s; screen:\n%s", timeout, strings.Join(lines, "\n"))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

var (
	headerRE   = regexp.MustCompile(`^(cancelling \(Ctrl-C\): )?(\d+)/(\d+) done, (\d+) failed, (\d+) running  \d+[smh]`)
	taskRowRE  = regexp.MustCompile(`^ +(\d+s|\d+m\d\ds|\d+h\d\dm\d\ds)  \S+( +upload \d+% .*)?$`)
	moreRowRE  = regexp.MustCompile(`^  \+(\d+) more$`)
	finishedRE = regexp.MustCompile(`^(run \S+: \d+ tasks|done      \S+ \(\S+\)|uploaded  \S+: .*|interrupted: .*|` +
		`\d+ (done|unchanged|skipped|failed|interrupted|not run)(, \d+ [a-z ]+)*|sealflow: interrupted|EXIT=\d+|)$`)
	fragmentRE = regexp.MustCompile(`\d+/\d+ done, `)
	doneTailRE = regexp.MustCompile(`^\S+ \(\S+\)$`)
)

// liveView is what a screen shows of the live view.
type liveView struct {
	header                       string
	done, total, failed, running int
	rows                         []string
	more                         int
}

// checkScreen fails the test for anything on the screen a person should
// not see: a live row wider than the terminal, status fragments run
// together, a line that is none of the view's, two headers. It returns the
// live block, nil when none is on the screen.
func checkScreen(t *testing.T, width int, lines []string) *liveView {
	t.Helper()
	var lv *liveView
	for i, l := range lines {
		if n := len(fragmentRE.FindAllString(l, -1)); n > 1 || (n == 1 && !headerRE.MatchString(l)) {
			t.Fatalf("line %d holds status fragments run together: %q\nscreen:\n%s", i, l, strings.Join(lines, "\n"))
		}
		if m := headerRE.FindStringSubmatch(l); m != nil {
			if lv != nil {
				t.Fatalf("two live headers on the screen:\n%s", strings.Join(lines, "\n"))
			}
			lv = &liveView{header: l}
			lv.done, _ = strconv.Atoi(m[2])
			lv.total, _ = strconv.Atoi(m[3])
			lv.failed, _ = strconv.Atoi(m[4])
			lv.running, _ = strconv.Atoi(m[5])
			if n := len([]rune(l)); n >= width {
				t.Fatalf("the header takes %d columns of %d: %q", n, width, l)
			}
			continue
		}
		if lv != nil {
			if n := len([]rune(l)); n >= width {
				t.Fatalf("a live row takes %d columns of %d (it wrapped): %q\nscreen:\n%s", n, width, l, strings.Join(lines, "\n"))
			}
			if m := moreRowRE.FindStringSubmatch(l); m != nil {
				lv.more, _ = strconv.Atoi(m[1])
				continue
			}
			if !taskRowRE.MatchString(l) {
				t.Fatalf("a line below the header that is no task row: %q\nscreen:\n%s", l, strings.Join(lines, "\n"))
			}
			lv.rows = append(lv.rows, l)
			continue
		}
		if !finishedRE.MatchString(l) {
			t.Fatalf("line %d is none of the live view's: %q\nscreen:\n%s", i, l, strings.Join(lines, "\n"))
		}
	}
	return lv
}

// manyPlan is a plan of 30 local hosts: a step on all of them at once,
// then one on the first host after all of them, then the second step on
// all again. Names are long, so that the rows do not fit 60 columns.
func manyPlan(sleep string) string {
	var b strings.Builder
	b.WriteString("name: many\nhosts:\n  groups:\n    g:\n")
	for i := 1; i <= 30; i++ {
		fmt.Fprintf(&b, "      - {name: host-with-a-long-name-%02d, address: local}\n", i)
	}
	fmt.Fprintf(&b, `steps:
  - id: first-step-with-a-long-name
    kind: shell
    on: g
    with: {run: 'sleep %s'}
  - id: barrier
    kind: shell
    on: g[0]
    needs: [first-step-with-a-long-name]
    with: {run: 'true'}
  - id: second
    kind: shell
    on: g
    needs: [barrier]
    with: {run: 'sleep 0.$(( $(od -An -N1 -tu1 /dev/urandom) %% 9 + 1 ))'}
`, sleep)
	return b.String()
}

func TestScreenManyTasks(t *testing.T) {
	t.Parallel()
	for _, width := range []int{120, 60} {
		t.Run(strconv.Itoa(width), func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			write(t, filepath.Join(dir, "plan.yaml"), manyPlan("4"))
			bin := sealflowBin(t)
			s := startTmux(t, width, 40, dir, shellQuote(bin)+" run --state st plan.yaml")
			var seen []*liveView
			code, last := s.waitExit(60*time.Second, func(lines []string) {
				if lv := checkScreen(t, width, lines); lv != nil {
					seen = append(seen, lv)
				}
			})
			checkScreen(t, width, last)
			if code != 0 {
				t.Fatalf("exit %d; screen:\n%s", code, strings.Join(last, "\n"))
			}
			// While 30 tasks ran: the header counts them, 5 rows name the
			// longest-running, the rest are "+N more".
			crowded := false
			for _, lv := range seen {
				if lv.total != 61 {
					t.Errorf("header %q: total %d, want 61", lv.header, lv.total)
				}
				want := min(lv.running, 5)
				if len(lv.rows) != want || lv.more != lv.running-want {
					t.Errorf("header says %d running; %d rows and +%d more on the screen:\n%s", lv.running, len(lv.rows), lv.more, strings.Join(lv.rows, "\n"))
				}
				// The first step's rows (its name is long); the second
				// step can have 30 running too, with rows that fit.
				if lv.running == 30 && strings.Contains(lv.rows[0], "first") {
					crowded = true
					if cut := strings.Contains(lv.rows[0], "…"); cut != (width == 60) {
						t.Errorf("at %d columns a row is cut: %v: %q", width, cut, lv.rows[0])
					}
				}
			}
			if !crowded {
				t.Errorf("no screen showed the 30 tasks of the first step running (%d screens seen)", len(seen))
			}
			joined := strings.Join(last, "\n")
			if !strings.Contains(joined, "\n61 done\n") {
				t.Errorf("no summary of 61 done at the end:\n%s", joined)
			}
			if strings.Contains(joined, "running") {
				t.Errorf("the live block is still on the screen after the run:\n%s", joined)
			}
			if !regexp.MustCompile(`\x1b\[32m`).MatchString(s.escapes()) {
				t.Errorf("no colour on a terminal without NO_COLOR:\n%q", s.escapes())
			}
		})
	}
}

// TestScreenResize narrows the terminal while the live view is on it: the
// view redraws at the new width, and the rows drawn at the old width do not
// stay on the screen. (Those tmux pushed into its history when it re-wrapped
// them stay there: no program can reach lines above the screen.)
func TestScreenResize(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	write(t, filepath.Join(dir, "plan.yaml"), manyPlan("4"))
	s := startTmux(t, 120, 40, dir, shellQuote(sealflowBin(t))+" run --state st plan.yaml")
	resized, after := false, 0
	code, last := s.waitExit(60*time.Second, func(lines []string) {
		if resized {
			vis := s.visible()
			// The first line may be the end of a finished line wrapped
			// above the screen; never the end of a row of the old block.
			if len(vis) > 0 && doneTailRE.MatchString(vis[0]) {
				vis = vis[1:]
			}
			if lv := checkScreen(t, 50, vis); lv != nil {
				after++
			}
			return
		}
		// Once the 30 tasks have run a second (no events in flight: bytes
		// written before the resize and read after it are drawn at the old
		// width, a race no program can win).
		lv := checkScreen(t, 120, lines)
		if lv != nil && lv.running == 30 && len(lv.rows) > 0 && !strings.HasPrefix(strings.TrimSpace(lv.rows[0]), "0s") {
			s.tmux("resize-window", "-t", "t", "-x", "50")
			resized = true
			time.Sleep(300 * time.Millisecond)
		}
	})
	if !resized || after == 0 || code != 0 {
		t.Fatalf("resized %v, %d screens after, exit %d; screen:\n%s", resized, after, code, strings.Join(last, "\n"))
	}
}

func TestScreenUploadNoColor(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	big := filepath.Join(dir, "big.bin")
	f, err := os.Create(big)
	if err != nil {
		t.Fatal(err)
	}
	// 48 MiB of varied bytes (a sparse file would hash as fast as nothing).
	chunk := make([]byte, 1<<20)
	for i := range chunk {
		chunk[i] = byte(i * 7 % 251)
	}
	for i := range 48 {
		chunk[0] = byte(i)
		f.Write(chunk)
	}
	f.Close()
	write(t, filepath.Join(dir, "plan.yaml"), `name: up
hosts: {groups: {g: [{name: h1, address: local}, {name: h2, address: local}, {name: h3, address: local}]}}
steps:
  - id: copy
    kind: copy
    with: {src: big.bin, dest: '`+dir+`/out/${{ host.name }}/big.bin'}
`)
	s := startTmux(t, 60, 30, dir, "NO_COLOR=1 "+shellQuote(sealflowBin(t))+" run --state st plan.yaml")
	code, last := s.waitExit(120*time.Second, func(lines []string) { checkScreen(t, 60, lines) })
	checkScreen(t, 60, last)
	joined := strings.Join(last, "\n")
	if code != 0 {
		t.Fatalf("exit %d:\n%s", code, joined)
	}
	for _, h := range []string{"h1", "h2", "h3"} {
		if !regexp.MustCompile(`(?m)^uploaded  copy@` + h + `: big\.bin, 48\.0 MiB in \S+( \(\S+ \S+/s\))?$`).MatchString(joined) {
			t.Errorf("no line for the upload to %s:\n%s", h, joined)
		}
	}
	if !strings.Contains(joined, "\n3 done\n") {
		t.Errorf("no summary:\n%s", joined)
	}
	if e := s.escapes(); regexp.MustCompile(`\x1b\[[0-9;]*m`).MatchString(e) {
		t.Errorf("colour codes on the screen with NO_COLOR=1:\n%q", e)
	}
}

// TestScreenCtrlC presses Ctrl-C while tasks run: the view says what it
// cancels, and the run ends with exit code 130.
func TestScreenCtrlC(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	write(t, filepath.Join(dir, "plan.yaml"), manyPlan("30"))
	s := startTmux(t, 100, 40, dir, shellQuote(sealflowBin(t))+" run --state st plan.yaml")
	pressed := false
	code, last := s.waitExit(60*time.Second, func(lines []string) {
		if lv := checkScreen(t, 100, lines); lv != nil && lv.running == 30 && !pressed {
			s.tmux("send-keys", "-t", "t", "C-c")
			pressed = true
		}
	})
	joined := strings.Join(last, "\n")
	if code != 130 {
		t.Fatalf("exit %d after Ctrl-C, want 130:\n%s", code, joined)
	}
	if !regexp.MustCompile(`\ninterrupted: cancelling 30 running task\(s\): (first-step-with-a-long-name@host-with-a-long-name-\d\d, ){5}\+25 more\n`).MatchString(joined) {
		t.Errorf("Ctrl-C does not say what it cancels:\n%s", joined)
	}
	if !strings.Contains(joined, "interrupted: `sealflow resume` continues where this run stopped") {
		t.Errorf("no summary of the interrupted run:\n%s", joined)
	}
}

// smallPlan is a chain of three steps on four local hosts, long enough
// (about 1.5 s) to be cut into.
const smallPlan = `name: small
hosts: {groups: {g: [{name: h1, address: local}, {name: h2, address: local}, {name: h3, address: local}, {name: h4, address: local}]}}
steps:
  - {id: a, kind: shell, with: {run: 'sleep 0.5'}}
  - {id: b, kind: shell, needs: [a], with: {run: 'sleep 0.5'}}
  - {id: c, kind: shell, needs: [b], with: {run: 'sleep 0.5; echo "$SEALFLOW_STEP@$SEALFLOW_HOST" >> ran'}}
`

// checkAllDone fails unless the journal in state has every task of
// smallPlan done, each started once.
func checkAllDone(t *testing.T, state string) {
	t.Helper()
	rd, err := journal.ReadOnly(state)
	if err != nil {
		t.Fatal(err)
	}
	records, err := rd.Replay()
	if err != nil {
		t.Fatal(err)
	}
	done, started := map[string]int{}, map[string]int{}
	for _, r := range records {
		switch r.Event {
		case journal.Done:
			done[r.Step+"@"+r.Host]++
		case journal.Started:
			started[r.Step+"@"+r.Host]++
		}
	}
	for _, s := range []string{"a", "b", "c"} {
		for _, h := range []string{"h1", "h2", "h3", "h4"} {
			id := s + "@" + h
			if done[id] != 1 || started[id] != 1 {
				t.Errorf("%s: started %d times, done %d times in the journal, want once each", id, started[id], done[id])
			}
		}
	}
}

// TestPipeClosedEarly is `sealflow run ... | head -1`: the reader goes
// away after the first line, and the run goes on to its end.
func TestPipeClosedEarly(t *testing.T) {
	t.Parallel()
	for _, output := range []string{"plain", "json"} {
		t.Run(output, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			write(t, filepath.Join(dir, "plan.yaml"), smallPlan)
			cmd := exec.Command("bash", "-c", shellQuote(sealflowBin(t))+" run --output "+output+" --state st plan.yaml | head -1; echo \"${PIPESTATUS[0]}\" >code")
			cmd.Dir = filepath.Join(dir)
			out, err := cmd.CombinedOutput()
			if err != nil {
				t.Fatalf("%v: %s", err, out)
			}
			if lines := strings.Split(strings.TrimSpace(string(out)), "\n"); len(lines) != 1 {
				t.Errorf("head printed %q", out)
			}
			code, _ := os.ReadFile(filepath.Join(dir, "code"))
			if strings.TrimSpace(string(code)) != "0" {
				t.Errorf("sealflow exited %s once its reader went away, want 0 (a signal kill is 141)", code)
			}
			checkAllDone(t, filepath.Join(dir, "st"))
		})
	}
}

// TestSIGHUP sends a hang-up to a running sealflow: it goes on to its end.
func TestSIGHUP(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	write(t, filepath.Join(dir, "plan.yaml"), smallPlan)
	cmd := exec.Command(sealflowBin(t), "run", "--output", "plain", "--state", "st", "plan.yaml")
	cmd.Dir = dir
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(400 * time.Millisecond)
	cmd.Process.Signal(syscall.SIGHUP)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("after SIGHUP: %v\n%s", err, out.String())
	}
	checkAllDone(t, filepath.Join(dir, "st"))
}

// TestTerminalHangUp closes the terminal a run shows on (the tmux server
// goes away with its pane): the run goes on to its end.
func TestTerminalHangUp(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	write(t, filepath.Join(dir, "plan.yaml"), smallPlan)
	s := startTmux(t, 80, 24, dir, "echo $$ >pid; exec "+shellQuote(sealflowBin(t))+" run --state st plan.yaml")
	var pid int
	deadline := time.Now().Add(10 * time.Second)
	for pid == 0 && time.Now().Before(deadline) {
		b, _ := os.ReadFile(filepath.Join(dir, "pid"))
		pid, _ = strconv.Atoi(strings.TrimSpace(string(b)))
		time.Sleep(50 * time.Millisecond)
	}
	if pid == 0 {
		t.Fatal("the pane did not start")
	}
	time.Sleep(400 * time.Millisecond)
	s.tmux("kill-server")
	for alive(pid) {
		if time.Now().After(deadline.Add(20 * time.Second)) {
			t.Fatal("sealflow did not end after the hang-up")
		}
		time.Sleep(50 * time.Millisecond)
	}
	checkAllDone(t, filepath.Join(dir, "st"))
	ran, _ := os.ReadFile(filepath.Join(dir, "ran"))
	if n := strings.Count(string(ran), "\n"); n != 4 {
		t.Errorf("the last step ran %d times after the hang-up, want 4:\n%s", n, ran)
	}
}

// alive says whether pid runs (a zombie no longer does).
func alive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	_, rest, _ := strings.Cut(string(b), ") ")
	return !strings.HasPrefix(rest, "Z")
}

// shellQuote quotes s for a POSIX shell.
func shellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }
