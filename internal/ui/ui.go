// Package ui shows a run's progress: a live view on a terminal, plain
// timestamped lines otherwise, or one JSON object per event. Everything
// it shows comes from engine events.
//
// The live view keeps a block of a few rows at the bottom of the screen (a
// header with the counts, the tasks running longest with their elapsed time
// and transfers) and prints each finished task as a line above it. Every row
// of the block is cut to the terminal's width, so none wraps, and a redraw
// moves the cursor up exactly the rows drawn before and clears them.
package ui

import (
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/sealflow/sealflow/internal/engine"
)

// Mode selects the output format.
type Mode string

const (
	Auto  Mode = "auto" // live on a terminal, plain otherwise
	Plain Mode = "plain"
	JSON  Mode = "json"
	Live  Mode = "live"
)

// SchemaVersion is the "version" of every --output json event. It changes
// when a field changes meaning or goes away (new fields do not change it).
const SchemaVersion = 1

// MaxRows is how many running tasks the live view lists; the others are
// counted in a "+N more" row.
const MaxRows = 5

// Options configure a Sink.
type Options struct {
	Mode Mode
	// TTY says whether the writer is a terminal (what Auto means).
	TTY bool
	// Size returns the terminal's columns and rows (80×24 when nil or
	// when it returns 0).
	Size func() (cols, rows int)
	// Resized receives a value when the terminal's size changed: the live
	// view redraws at the new width.
	Resized <-chan struct{}
	// Color allows ANSI colours in the live view (false under NO_COLOR).
	// Cursor movement is used on a terminal either way.
	Color bool
	// Now is the clock (time.Now when nil).
	Now func() time.Time
	// Refresh is how often the live view redraws its elapsed times
	// (default 1s; negative: only on events).
	Refresh time.Duration
}

// Sink consumes engine events.
type Sink struct {
	mu    sync.Mutex
	w     io.Writer
	mode  Mode
	color bool
	size  func() (int, int)
	now   func() time.Time

	name    string
	start   time.Time
	running map[string]*running
	total   int
	ok      int // done, unchanged or skipped
	failed  int
	// cancelling is set once the run is interrupted (Ctrl-C).
	cancelling bool
	ended      bool

	// drawn holds the cells of each row of the block on screen.
	drawn []int
	// width is the terminal width the block was drawn at.
	width int
	// drawnAt is the time of the event that drew the block last.
	drawnAt time.Time

	stop     chan struct{}
	stopOnce sync.Once
	loop     sync.WaitGroup
}

// running is a task being run, as the view knows it.
type running struct {
	task    string
	started time.Time
	xfer    *transfer
}

// transfer is an upload's progress as seen so far.
type transfer struct {
	name         string
	first        time.Time // the first event of this transfer
	firstBytes   int64
	bytes, total int64
	at           time.Time // the last event
	decile       int       // the last 10 % step printed (plain mode)
}

// New returns a sink writing to w.
func New(w io.Writer, o Options) *Sink {
	mode := o.Mode
	if mode == "" || mode == Auto {
		mode = Plain
		if o.TTY {
			mode = Live
		}
	}
	s := &Sink{w: w, mode: mode, color: o.Color && mode == Live, size: o.Size, now: o.Now,
		running: map[string]*running{}, stop: make(chan struct{})}
	if s.now == nil {
		s.now = time.Now
	}
	if mode == Live {
		refresh := o.Refresh
		if refresh == 0 {
			refresh = time.Second
		}
		s.loop.Add(1)
		go s.redrawLoop(refresh, o.Resized)
	}
	return s
}

// redrawLoop redraws the live block every refresh (elapsed times move on)
// and when the terminal is resized.
func (s *Sink) redrawLoop(refresh time.Duration, resized <-chan struct{}) {
	defer s.loop.Done()
	var tick <-chan time.Time
	if refresh > 0 {
		t := time.NewTicker(refresh)
		defer t.Stop()
		tick = t.C
	}
	for {
		select {
		case <-s.stop:
			return
		case <-tick:
			s.Redraw()
		case <-resized:
			s.Redraw()
		}
	}
}

// Close stops the live view's refreshes and clears its block. It is safe
// to call more than once.
func (s *Sink) Close() {
	s.stopOnce.Do(func() { close(s.stop) })
	s.loop.Wait()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.mode == Live {
		s.write(s.clear())
	}
	s.ended = true
}

// Redraw draws the live block again (at the terminal's current width).
func (s *Sink) Redraw() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.mode != Live || s.ended {
		return
	}
	s.write(s.clear() + s.block())
}

// Above returns a writer whose text shows above the live block (cleared
// before, drawn again after a complete line), so that what else the run
// prints on the terminal, such as warnings on stderr, does not garble the
// view. Outside the live view it is w.
func (s *Sink) Above(w io.Writer) io.Writer {
	if s.mode != Live {
		return w
	}
	return &aboveWriter{s: s, w: w}
}

type aboveWriter struct {
	s *Sink
	w io.Writer
}

func (a *aboveWriter) Write(p []byte) (int, error) {
	s := a.s
	s.mu.Lock()
	defer s.mu.Unlock()
	s.write(s.clear())
	n, err := a.w.Write(p)
	if len(p) > 0 && p[len(p)-1] == '\n' {
		s.write(s.block())
	}
	return n, err
}

// Interrupt says that the run is being cancelled (Ctrl-C), naming the
// tasks that were running.
func (s *Sink) Interrupt() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cancelling || s.ended {
		return
	}
	s.cancelling = true
	names := s.longest()
	if s.mode == JSON {
		s.json(jsonEvent{Event: engine.Event{Time: s.now(), Type: "interrupt"}, Running: names})
		return
	}
	msg := "interrupted: nothing was running"
	if len(names) > 0 {
		shown := names[:min(len(names), MaxRows)]
		msg = fmt.Sprintf("interrupted: cancelling %d running task(s): %s", len(names), strings.Join(shown, ", "))
		if more := len(names) - len(shown); more > 0 {
			msg += fmt.Sprintf(", +%d more", more)
		}
	}
	s.line(s.now(), s.paint(yellow, msg))
	if s.mode == Live {
		s.write(s.block())
	}
}

// Event shows one event.
func (s *Sink) Event(ev engine.Event) {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch ev.Type {
	case engine.EventRunStart:
		s.name, s.total, s.start = ev.Note, ev.Total, ev.Time
	case engine.EventTaskStart:
		s.running[ev.Task] = &running{task: ev.Task, started: ev.Time}
	case engine.EventTaskRetry:
		delete(s.running, ev.Task)
	case engine.EventTaskDone, engine.EventTaskCached, engine.EventTaskSkipped:
		delete(s.running, ev.Task)
		s.ok++
	case engine.EventTaskFailed:
		delete(s.running, ev.Task)
		s.failed++
	case engine.EventRunEnd:
		s.ended = true
	}
	if s.mode == JSON {
		s.json(jsonEvent{Event: ev})
		return
	}
	switch ev.Type {
	case engine.EventRunStart:
		s.line(ev.Time, fmt.Sprintf("run %s: %d tasks", ev.Note, ev.Total))
	case engine.EventTaskStart:
		if s.mode == Plain {
			s.line(ev.Time, fmt.Sprintf("start     %s%s", ev.Task, attempt(ev.Attempt)))
		}
	case engine.EventTaskRetry:
		s.line(ev.Time, s.paint(yellow, fmt.Sprintf("retry     %s%s: %s (%s)", ev.Task, attempt(ev.Attempt), oneLine(ev.Error), ev.Note)))
	case engine.EventTaskDone:
		s.line(ev.Time, s.paint(green, "done")+fmt.Sprintf("      %s (%s)", ev.Task, round(ev.Duration)))
	case engine.EventTaskCached:
		s.line(ev.Time, fmt.Sprintf("unchanged %s (%s)", ev.Task, ev.Note))
	case engine.EventTaskSkipped:
		s.line(ev.Time, fmt.Sprintf("skipped   %s (%s)", ev.Task, ev.Note))
	case engine.EventTaskWarning:
		s.line(ev.Time, s.paint(yellow, "WARNING")+"   "+ev.Note)
	case engine.EventTaskFailed:
		msg := s.paint(red, "FAILED") + fmt.Sprintf("    %s%s: %s", ev.Task, attempt(ev.Attempt), oneLine(ev.Error))
		if ev.LogPath != "" {
			msg += "\n          log: " + ev.LogPath
		}
		s.line(ev.Time, msg)
	case engine.EventTransfer:
		s.transfer(ev)
	case engine.EventRunEnd:
		s.write(s.clear())
		if ev.Result != nil {
			Summary(s.w, ev.Result)
		}
		return
	}
	if s.mode == Live {
		// Many uploads at once report often: their rows are redrawn at most
		// every transferRedraw (and by the refresh).
		if ev.Type == engine.EventTransfer && (ev.Transfer == nil || !ev.Transfer.End) && ev.Time.Sub(s.drawnAt) < transferRedraw {
			return
		}
		s.drawnAt = ev.Time
		s.write(s.clear() + s.block())
	}
}

// transferRedraw is how often upload progress alone redraws the live view.
const transferRedraw = 250 * time.Millisecond

// transfer follows an upload: the live view shows it in the task's row;
// plain mode prints a line per 10 %; both print a line when it ends.
func (s *Sink) transfer(ev engine.Event) {
	tr := ev.Transfer
	if tr == nil {
		return
	}
	r := s.running[ev.Task]
	if r == nil {
		return
	}
	x := r.xfer
	if x == nil || x.name != tr.Name {
		x = &transfer{name: tr.Name, first: ev.Time, firstBytes: tr.Bytes}
		r.xfer = x
	}
	x.bytes, x.total, x.at = tr.Bytes, tr.Total, ev.Time
	if tr.End {
		r.xfer = nil
		msg := fmt.Sprintf("uploaded  %s: %s, %s in %s", ev.Task, tr.Name, bytesText(tr.Total), round(ev.Time.Sub(x.first)))
		if rate := x.rate(); rate > 0 {
			msg += fmt.Sprintf(" (%s/s)", bytesText(int64(rate)))
		}
		if tr.Sent == 0 && tr.Total > 0 {
			msg = fmt.Sprintf("uploaded  %s: %s, already on the host", ev.Task, tr.Name)
		}
		s.line(ev.Time, msg)
		return
	}
	if s.mode == Plain && x.total > 0 {
		if d := int(x.bytes * 10 / x.total); d > x.decile && d < 10 {
			x.decile = d
			s.line(ev.Time, fmt.Sprintf("upload    %s: %s %s", ev.Task, x.name, x.text(false)))
		}
	}
}

// rate is the transfer's mean rate in bytes per second (0 while unknown).
func (x *transfer) rate() float64 {
	d := x.at.Sub(x.first).Seconds()
	if d < 0.05 {
		return 0
	}
	return float64(x.bytes-x.firstBytes) / d
}

// text is "18% 12.0/64.0 MiB 5.2 MiB/s ETA 10s": what matters first, as
// the live view cuts its rows at the end.
// Short, it leaves the amounts out ("18% 5.2 MiB/s ETA 10s").
func (x *transfer) text(short bool) string {
	var b strings.Builder
	switch {
	case x.total > 0 && short:
		fmt.Fprintf(&b, "%d%%", x.bytes*100/x.total)
	case x.total > 0:
		fmt.Fprintf(&b, "%d%% %s", x.bytes*100/x.total, amountText(x.bytes, x.total))
	default:
		b.WriteString(bytesText(x.bytes))
	}
	if rate := x.rate(); rate > 0 {
		fmt.Fprintf(&b, " %s/s", bytesText(int64(rate)))
		if x.total > 0 {
			eta := time.Duration(float64(x.total-x.bytes) / rate * float64(time.Second))
			fmt.Fprintf(&b, " ETA %s", clock(eta))
		}
	}
	return b.String()
}

// amountText is "12.0/64.0 MiB", or "512.0 KiB/64.0 MiB" across units.
func amountText(n, total int64) string {
	a, t := bytesText(n), bytesText(total)
	au, tu := a[strings.LastIndexByte(a, ' '):], t[strings.LastIndexByte(t, ' '):]
	if au == tu {
		return strings.TrimSuffix(a, au) + "/" + t
	}
	return a + "/" + t
}

// line prints msg above the live block.
func (s *Sink) line(t time.Time, msg string) {
	if s.mode == Live {
		s.write(s.clear() + msg + "\n")
		return
	}
	s.write(fmt.Sprintf("%s %s\n", t.Format("15:04:05.000"), msg))
}

// write sends text to the writer in one call. Errors are not the run's:
// a closed pipe or a hung-up terminal only means nobody reads (the
// journal has the run).
func (s *Sink) write(text string) {
	if text != "" {
		io.WriteString(s.w, text)
	}
}

// cols returns the terminal's size.
func (s *Sink) cols() (int, int) {
	w, h := 0, 0
	if s.size != nil {
		w, h = s.size()
	}
	if w <= 0 {
		w = 80
	}
	if h <= 0 {
		h = 24
	}
	return w, h
}

// clear returns what erases the block drawn last: the cursor is at the
// start of the line below it, so it goes up as many lines as the block
// takes now (a terminal that got narrower re-wraps each row over more
// lines) and clears to the end of the screen.
func (s *Sink) clear() string {
	if len(s.drawn) == 0 {
		return ""
	}
	w, _ := s.cols()
	lines := 0
	for _, cells := range s.drawn {
		n := 1
		if w < s.width && cells > w {
			n = (cells + w - 1) / w
		}
		lines += n
	}
	s.drawn = s.drawn[:0]
	return fmt.Sprintf("\r\x1b[%dA\x1b[J", lines)
}

// block renders the live rows, each cut to the width less one column (a
// row that fills the last column would leave the cursor waiting to wrap).
func (s *Sink) block() string {
	if s.ended || (len(s.running) == 0 && s.total == 0) {
		return ""
	}
	w, h := s.cols()
	s.width = w
	now := s.now()
	var rows []string
	head := fmt.Sprintf("%d/%d done, %d failed, %d running", s.ok, s.total, s.failed, len(s.running))
	if !s.start.IsZero() {
		head += fmt.Sprintf("  %s", clock(now.Sub(s.start)))
	}
	if s.cancelling {
		head = "cancelling (Ctrl-C): " + head
	}
	rows = append(rows, head)
	names := s.longest()
	show := len(names)
	limit := min(MaxRows, h-3) // header, "+N more", the cursor's line
	if show > limit {
		show = max(limit, 0)
	}
	// Each row: the elapsed time, the task (cut in the middle when the row
	// is too wide: hosts often differ only at the end of their names), and
	// its upload's progress.
	pad := 0
	for _, n := range names[:show] {
		pad = max(pad, cells(n))
	}
	for _, n := range names[:show] {
		r := s.running[n]
		prefix := fmt.Sprintf("  %6s  ", clock(now.Sub(r.started)))
		suffix := ""
		if r.xfer != nil {
			suffix = "  upload " + r.xfer.text(false)
			if cells(prefix)+min(cells(n), 12)+cells(suffix) >= w {
				suffix = "  upload " + r.xfer.text(true)
			}
		}
		room := max(w-1-cells(prefix)-cells(suffix), 8)
		name := middle(n, room)
		if suffix != "" {
			name += strings.Repeat(" ", max(min(pad, room)-cells(name), 0))
		}
		rows = append(rows, prefix+name+suffix)
	}
	if more := len(names) - show; more > 0 {
		rows = append(rows, fmt.Sprintf("  +%d more", more))
	}
	var b strings.Builder
	for i, row := range rows {
		row = truncate(row, w-1)
		s.drawn = append(s.drawn, cells(row))
		if i == 0 {
			row = s.paint(bold, row)
		}
		b.WriteString(row)
		b.WriteString("\n")
	}
	return b.String()
}

// longest returns the running tasks, the longest-running first.
func (s *Sink) longest() []string {
	names := make([]string, 0, len(s.running))
	for n := range s.running {
		names = append(names, n)
	}
	sort.Slice(names, func(i, j int) bool {
		a, b := s.running[names[i]], s.running[names[j]]
		if !a.started.Equal(b.started) {
			return a.started.Before(b.started)
		}
		return names[i] < names[j]
	})
	return names
}

const (
	bold   = "1"
	red    = "31"
	green  = "32"
	yellow = "33"
)

// paint colours text when colours are allowed.
func (s *Sink) paint(code, text string) string {
	if !s.color {
		return text
	}
	return "\x1b[" + code + "m" + text + "\x1b[0m"
}

// cells is how many terminal columns text takes (one per rune: task and
// host names are what the plan format allows).
func cells(text string) int { return len([]rune(text)) }

// truncate cuts text to at most n columns, ending in "…" when cut.
func truncate(text string, n int) string {
	r := []rune(text)
	if n < 1 {
		return ""
	}
	if len(r) <= n {
		return text
	}
	return string(r[:n-1]) + "…"
}

// middle cuts text to at most n columns by putting "…" in its middle.
func middle(text string, n int) string {
	r := []rune(text)
	if len(r) <= n || n < 3 {
		return text
	}
	head := (n - 1) / 2
	tail := n - 1 - head
	return string(r[:head]) + "…" + string(r[len(r)-tail:])
}

// clock is a duration as 5s, 1m05s or 1h02m03s.
func clock(d time.Duration) string {
	d = d.Truncate(time.Second)
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm%02ds", int(d.Minutes()), int(d.Seconds())%60)
	}
	return fmt.Sprintf("%dh%02dm%02ds", int(d.Hours()), int(d.Minutes())%60, int(d.Seconds())%60)
}

// bytesText is n in B, KiB, MiB or GiB with one decimal.
func bytesText(n int64) string {
	const k = 1024
	switch {
	case n < k:
		return fmt.Sprintf("%d B", n)
	case n < k*k:
		return fmt.Sprintf("%.1f KiB", float64(n)/k)
	case n < k*k*k:
		return fmt.Sprintf("%.1f MiB", float64(n)/(k*k))
	}
	return fmt.Sprintf("%.1f GiB", float64(n)/(k*k*k))
}

// jsonEvent is one line of --output json.
type jsonEvent struct {
	Version int `json:"version"`
	engine.Event
	// Running names the tasks being cancelled (interrupt only).
	Running []string `json:"running,omitempty"`
	Summary *summary `json:"summary,omitempty"`
}

func (s *Sink) json(ev jsonEvent) {
	ev.Version = SchemaVersion
	if ev.Result != nil {
		ev.Summary = summarize(ev.Result)
	}
	b, err := json.Marshal(ev)
	if err != nil {
		return
	}
	s.write(string(append(b, '\n')))
}

type summary struct {
	OK          bool           `json:"ok"`
	Counts      map[string]int `json:"counts"`
	Failures    []failure      `json:"failures,omitempty"`
	Warnings    []string       `json:"warnings,omitempty"`
	Interrupted bool           `json:"interrupted,omitempty"`
}

type failure struct {
	Task  string `json:"task"`
	Error string `json:"error"`
	Hint  string `json:"hint,omitempty"`
	Log   string `json:"log"`
}

func summarize(r *engine.Result) *summary {
	s := &summary{OK: r.OK(), Counts: map[string]int{}, Interrupted: r.Interrupted}
	for _, t := range r.Tasks {
		s.Counts[string(t.Status)]++
	}
	for _, t := range r.Failures() {
		s.Failures = append(s.Failures, failure{Task: t.ID.String(), Error: errString(t.Err), Hint: engine.Hint(t.Err), Log: t.LogPath})
	}
	s.Warnings = r.Warnings()
	return s
}

// Summary prints the end of a run: counts, then each failure (root causes
// only: tasks that did not run because of a failure are only counted).
func Summary(w io.Writer, r *engine.Result) {
	order := []engine.Status{engine.StatusDone, engine.StatusCached, engine.StatusSkipped, engine.StatusFailed, engine.StatusCancelled, engine.StatusNotRun}
	var parts []string
	for _, st := range order {
		if n := r.Count(st); n > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", n, st))
		}
	}
	fmt.Fprintf(w, "\n%s\n", strings.Join(parts, ", "))
	if ws := r.Warnings(); len(ws) > 0 {
		fmt.Fprintln(w, "warnings:")
		for _, m := range ws {
			fmt.Fprintf(w, "  %s\n", m)
		}
	}
	if f := r.Failures(); len(f) > 0 {
		fmt.Fprintln(w, "failed:")
		for _, t := range f {
			fmt.Fprintf(w, "  %s: %s\n", t.ID, oneLine(errString(t.Err)))
			if h := engine.Hint(t.Err); h != "" {
				fmt.Fprintf(w, "    hint: %s\n", h)
			}
			fmt.Fprintf(w, "    log: %s\n", t.LogPath)
		}
		if n := r.Count(engine.StatusNotRun); n > 0 {
			fmt.Fprintf(w, "%d tasks did not run because of these failures (or fail-fast); fix the cause, then `sealflow resume`\n", n)
		}
	}
	if r.Interrupted {
		fmt.Fprintln(w, "interrupted: `sealflow resume` continues where this run stopped")
	}
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

func attempt(n int) string {
	if n <= 1 {
		return ""
	}
	return fmt.Sprintf(" (attempt %d)", n)
}

func round(d time.Duration) time.Duration {
	switch {
	case d > time.Minute:
		return d.Round(time.Second)
	case d > time.Second:
		return d.Round(10 * time.Millisecond)
	}
	return d.Round(time.Millisecond)
}

func oneLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i] + " ..."
	}
	return s
}
