package report

import (
	"bytes"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/sealflow/sealflow/internal/journal"
)

// A task's log and error are untrusted text: the page shows them, never
// runs or loads them.
func TestPageEscapesLogsAndLoadsNothing(t *testing.T) {
	t.Parallel()
	j := &fakeJournal{}
	j.startRun(0)
	j.task("a@h1", 0, time.Second, journal.Done)
	j.task("a@h2", 0, 2*time.Second, journal.Failed, withErr(`exit 1: "><script>alert(1)</script>`))
	evil := "</pre><script>alert(2)</script><img src=https://evil.example/x.png><a href=\"http://evil.example\">x</a>\n"
	rep := Build(Input{Records: j.records, Plan: chainPlan(), Now: t0.Add(time.Minute), StateDir: "/s",
		Log: func(step, host string) ([]byte, error) { return []byte(evil), nil }})
	var buf bytes.Buffer
	if err := Write(&buf, rep); err != nil {
		t.Fatal(err)
	}
	page := buf.String()
	for _, bad := range []string{"<script>alert", "<img", "<a href", "\"><script"} {
		if strings.Contains(page, bad) {
			t.Errorf("page holds %q unescaped", bad)
		}
	}
	if !strings.Contains(page, "&lt;script&gt;alert(2)&lt;/script&gt;") {
		t.Errorf("page does not show the log's text escaped")
	}
	if n := strings.Count(page, "<script>"); n != 1 {
		t.Errorf("page has %d <script> elements, want only its own", n)
	}
	if m := regexp.MustCompile(`(?i)<[^>]*\s(src|href)\s*=`).FindAllString(page, -1); len(m) > 0 {
		t.Errorf("page has attributes that load something: %q", m)
	}
	if !strings.Contains(page, `content="default-src 'none';`) {
		t.Errorf("page has no Content-Security-Policy forbidding requests")
	}
	for _, want := range []string{`data-task="a@h1" data-state="done"`, `data-task="a@h2" data-state="failed"`} {
		if !strings.Contains(page, want) {
			t.Errorf("page has no bar %s", want)
		}
	}
}
