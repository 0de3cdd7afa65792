package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"image"
	"image/png"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/sealflow/sealflow/internal/journal"
)

// reportPlan runs on three local hosts: fetch everywhere, flaky fails its
// first attempt on each worker and is retried, check fails on w2 with
// HTML in its log, after needs check.
func reportPlan(dir string) string {
	return fmt.Sprintf(`name: report-demo
hosts:
  groups:
    masters: [{name: m1, address: local}]
    workers: [{name: w1, address: local}, {name: w2, address: local}]
steps:
  - id: fetch
    kind: shell
    with: {run: 'sleep 0.2; echo fetched'}
  - id: flaky
    kind: shell
    on: workers
    needs: [fetch]
    retries: 2
    with:
      run: |
        if [ ! -e %[1]s/flaky-$SEALFLOW_HOST ]; then touch %[1]s/flaky-$SEALFLOW_HOST; echo "first try fails" >&2; exit 3; fi
  - id: check
    kind: shell
    on: workers
    needs: [flaky]
    with:
      run: |
        if [ "$SEALFLOW_HOST" = w2 ]; then echo '</pre><img src="http://example.invalid/x.png"><script>document.title="pwned"</script> w2 is broken' >&2; exit 1; fi
  - id: after
    kind: shell
    needs: [check]
    with: {run: 'true'}
`, dir)
}

// TestReportInABrowser runs a small plan with a failing and a retried
// task, writes its report, and opens it in headless Chromium: the page
// renders (a screenshot with red and green bars), has one bar per task
// with the task's state, shows the log as text, and asks the network for
// nothing.
func TestReportInABrowser(t *testing.T) {
	t.Parallel()
	chromium, err := exec.LookPath("chromium")
	if err != nil {
		t.Skip("needs Debian's chromium package (testdata/ci/deps.sh installs it)")
	}
	bin := sealflowBin(t)
	dir := t.TempDir()
	write(t, filepath.Join(dir, "plan.yaml"), reportPlan(dir))
	if _, stderr, code := sf(t, bin, dir, "", "run", "--output", "plain", "--state", "st", "plan.yaml"); code != 1 {
		t.Fatalf("run: exit %d, want 1 (check@w2 fails)\n%s", code, stderr)
	}
	out := mustSF(t, bin, dir, "report", "--state", "st", "-o", "run.html")
	if !strings.Contains(out, "run.html") {
		t.Errorf("report does not say where it wrote the page: %q", out)
	}
	page := filepath.Join(dir, "run.html")

	// What the journal says each task ended as: the page must agree.
	want := map[string]string{}
	for _, r := range journalRecords(t, filepath.Join(dir, "st")) {
		switch r.Event {
		case journal.Done:
			want[r.Step+"@"+r.Host] = "done"
		case journal.Failed:
			want[r.Step+"@"+r.Host] = "failed"
		}
	}
	if want["check@w2"] != "failed" || want["flaky@w1"] != "done" || want["flaky@w2"] != "done" {
		t.Fatalf("the run did not go as planned: %v", want)
	}

	b := newBrowser(t, chromium)
	shot := filepath.Join(dir, "shot.png")
	b.run(t, "", "--screenshot="+shot, "--window-size=1400,1000", "file://"+page)
	checkScreenshot(t, shot, 1400, 1000)

	netLog := filepath.Join(dir, "net.json")
	dom := b.run(t, netLog, "--dump-dom", "file://"+page)
	got := map[string]string{}
	attempts := map[string]string{}
	critical := map[string]bool{}
	bar := regexp.MustCompile(`<div class="bar [^"]*" data-task="([^"]+)" data-state="([^"]+)" data-attempts="(\d+)"( data-critical="true")?`)
	for _, m := range bar.FindAllStringSubmatch(dom, -1) {
		if _, dup := got[m[1]]; dup {
			t.Errorf("two bars for %s", m[1])
		}
		got[m[1]], attempts[m[1]], critical[m[1]] = m[2], m[3], m[4] != ""
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("bars in the page, want one per task as journaled (-want +got):\n%s", diff)
	}
	for _, task := range []string{"flaky@w1", "flaky@w2"} {
		if attempts[task] != "2" {
			t.Errorf("bar of %s shows %s attempts, want 2 (it was retried)", task, attempts[task])
		}
	}
	if !critical["flaky@w1"] && !critical["flaky@w2"] {
		t.Errorf("no flaky bar on the critical path (it holds the 1s retry wait): %v", critical)
	}
	if !strings.Contains(dom, "&lt;img src=\"http://example.invalid/x.png\"&gt;&lt;script&gt;") || strings.Contains(dom, "pwned</title>") {
		t.Errorf("the failure's log is not shown as text")
	}
	if !regexp.MustCompile(`<section class="failure failed" data-task="check@w2">`).MatchString(dom) {
		t.Errorf("no failure section for check@w2")
	}
	if reqs := pageRequests(t, netLog); len(reqs) > 0 {
		t.Errorf("the page made requests: %v", reqs)
	}

	// The same net log check sees a page that does load something: it can
	// fail.
	ctl := filepath.Join(dir, "control.html")
	write(t, ctl, `<!DOCTYPE html><img src="http://example.invalid/x.png">`)
	ctlLog := filepath.Join(dir, "control.json")
	b.run(t, ctlLog, "--dump-dom", "file://"+ctl)
	if reqs := pageRequests(t, ctlLog); len(reqs) != 1 || !strings.HasPrefix(reqs[0], "http://example.invalid/") {
		t.Errorf("net log of a page with a remote image shows requests %v, want that image", reqs)
	}
}

// browser runs headless Chromium with a private profile; each run's
// processes are marked in their environment so the test can tell that
// none is left behind.
type browser struct {
	bin, profile, mark string
}

func newBrowser(t *testing.T, bin string) *browser {
	t.Helper()
	var r [8]byte
	rand.Read(r[:])
	b := &browser{bin: bin, profile: t.TempDir(), mark: "SEALFLOW_TEST_CHROMIUM=" + hex.EncodeToString(r[:])}
	t.Cleanup(func() {
		if left := b.processes(); len(left) > 0 {
			t.Errorf("chromium processes left behind: %v", left)
		}
	})
	return b
}

// run runs Chromium on args and returns its standard output. With netLog
// set, Chromium writes its network log there.
func (b *browser) run(t *testing.T, netLog string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	base := []string{"--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
		"--user-data-dir=" + b.profile,
		// A request that tried to leave would fail at once, not hang.
		"--host-resolver-rules=MAP * ~NOTFOUND"}
	if netLog != "" {
		base = append(base, "--log-net-log="+netLog, "--net-log-capture-mode=Default")
	}
	cmd := exec.CommandContext(ctx, b.bin, append(base, args...)...)
	cmd.Env = append(os.Environ(), b.mark)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	// Helpers Chromium started in its process group go with it.
	syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	if err != nil {
		t.Fatalf("chromium %v: %v\n%s", args, err, stderr.String())
	}
	b.waitGone(t)
	return stdout.String()
}

// waitGone waits until no process of this browser is alive.
func (b *browser) waitGone(t *testing.T) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if len(b.processes()) == 0 {
			return
		}
	}
}

// processes lists the live processes whose environment has b's mark.
func (b *browser) processes() []string {
	var out []string
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid := e.Name()
		if pid[0] < '0' || pid[0] > '9' {
			continue
		}
		env, err := os.ReadFile(filepath.Join("/proc", pid, "environ"))
		if err != nil || !strings.Contains("\x00"+string(env)+"\x00", "\x00"+b.mark+"\x00") {
			continue
		}
		stat, _ := os.ReadFile(filepath.Join("/proc", pid, "stat"))
		if f := strings.Fields(string(stat)); len(f) > 2 && f[2] == "Z" {
			continue // a zombie holds no resources
		}
		cmdline, _ := os.ReadFile(filepath.Join("/proc", pid, "cmdline"))
		out = append(out, pid+" "+strings.ReplaceAll(string(cmdline), "\x00", " "))
	}
	return out
}

// pageRequests returns the URLs the page asked the network for, from a
// Chromium net log. Chromium's own background requests (updates, time,
// sign-in) are not the page's: they have no origin ("not an origin"); the
// page's carry its file:// origin ("null").
func pageRequests(t *testing.T, path string) []string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("net log: %v", err)
	}
	var nl struct {
		Constants struct {
			LogEventTypes map[string]int `json:"logEventTypes"`
		} `json:"constants"`
		Events []struct {
			Type   int `json:"type"`
			Params struct {
				URL       string `json:"url"`
				Initiator string `json:"initiator"`
				NIK       string `json:"network_isolation_key"`
			} `json:"params"`
		} `json:"events"`
	}
	if err := json.Unmarshal(data, &nl); err != nil {
		t.Fatalf("net log %s: %v", path, err)
	}
	start, ok := nl.Constants.LogEventTypes["URL_REQUEST_START_JOB"]
	if !ok {
		t.Fatalf("net log %s has no URL_REQUEST_START_JOB event type", path)
	}
	var out []string
	for _, e := range nl.Events {
		p := e.Params
		// The end of a job (phase END) has no parameters.
		if e.Type != start || p.URL == "" || p.Initiator == "not an origin" && !strings.Contains(p.NIK, "file://") {
			continue
		}
		if !strings.HasPrefix(p.URL, "file:") && !strings.HasPrefix(p.URL, "data:") {
			out = append(out, p.URL)
		}
	}
	return out
}

// checkScreenshot checks the page was drawn: the size asked for, and the
// green of done and the red of failed bars on it.
func checkScreenshot(t *testing.T, path string, w, h int) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatalf("screenshot %s: %v", path, err)
	}
	if got := img.Bounds().Size(); got != (image.Point{w, h}) {
		t.Errorf("screenshot is %v, want %dx%d", got, w, h)
	}
	colours := map[string][3]uint32{"done green": {0x2e, 0x9d, 0x4e}, "failed red": {0xdd, 0x33, 0x33}}
	for name, c := range colours {
		n := 0
		for y := img.Bounds().Min.Y; y < img.Bounds().Max.Y; y++ {
			for x := img.Bounds().Min.X; x < img.Bounds().Max.X; x++ {
				r, g, b, _ := img.At(x, y).RGBA()
				if r>>8 == c[0] && g>>8 == c[1] && b>>8 == c[2] {
					n++
				}
			}
		}
		if n < 100 {
			t.Errorf("screenshot has %d pixels of %s, want a bar's worth", n, name)
		}
	}
}
