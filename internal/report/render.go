package report

import (
	_ "embed"
	"fmt"
	"html/template"
	"io"
	"strings"
	"sync"
	"time"
)

//go:embed report.html.tmpl
var pageText string

// page is parsed once, when a report is first written (not at every start
// of the program); html/template escapes every value by its context, so
// task names, errors and log text (all untrusted) stay text.
var page = sync.OnceValue(func() *template.Template {
	return template.Must(template.New("report").Funcs(template.FuncMap{
		"dur":   fmtDur,
		"clock": func(t time.Time) string { return t.Format("15:04:05") },
		"stamp": func(t time.Time) string { return t.Format("2006-01-02 15:04:05 MST") },
		"left": func(r *Run, t time.Time) string {
			return pct(t.Sub(r.Start), r.Duration())
		},
		"width": func(r *Run, a, b time.Time) string {
			return pct(b.Sub(a), r.Duration())
		},
		"attLeft":  func(b *Bar, a Attempt) string { return pct(a.Start.Sub(b.Start), b.Duration()) },
		"attWidth": func(b *Bar, a Attempt) string { return pct(a.End.Sub(a.Start), b.Duration()) },
		"ticks":    ticks,
		"counts":   countsText,
		"graphW":   func(g *Graph) int { return g.Cols*graphColW + graphPad },
		"graphH":   func(g *Graph) int { return g.Rows*graphRowH + graphPad },
		"nodeX":    func(n *Node) int { return n.Col*graphColW + graphPad },
		"nodeY":    func(n *Node) int { return n.Row*graphRowH + graphPad },
		"edgeD":    edgePath,
		"hosts":    func(s Step) int { return len(s.Hosts) },
		"pair":     func(run *Run, row *Row) rowView { return rowView{run, row} },
		"states":   func() []State { return legend },
	}).Parse(pageText))
})

var legend = []State{StateDone, StateFailed, StateInterrupted, StateRunning, StateSkipped, StatePending}

const (
	graphColW = 200
	graphRowH = 64
	graphPad  = 10
	nodeW     = 170
	nodeH     = 46
)

// Write renders the report as one HTML page. The page fetches nothing:
// its Content-Security-Policy forbids any request, and it has no URL.
func Write(w io.Writer, r *Report) error {
	if err := page().Execute(w, r); err != nil {
		return fmt.Errorf("render report: %w", err)
	}
	return nil
}

// pct is d as a percentage of total, for CSS.
func pct(d, total time.Duration) string {
	if total <= 0 {
		return "0"
	}
	p := float64(d) / float64(total) * 100
	if p < 0 {
		p = 0
	}
	if p > 100 {
		p = 100
	}
	return fmt.Sprintf("%.3f", p)
}

// fmtDur rounds a duration for people: 850ms, 12.3s, 4m05s, 1h02m.
func fmtDur(d time.Duration) string {
	switch {
	case d <= 0:
		return "0s"
	case d < time.Second:
		return d.Round(time.Millisecond).String()
	case d < time.Minute:
		return d.Round(100 * time.Millisecond).String()
	case d < time.Hour:
		d = d.Round(time.Second)
		return fmt.Sprintf("%dm%02ds", int(d.Minutes()), int(d.Seconds())%60)
	default:
		d = d.Round(time.Minute)
		return fmt.Sprintf("%dh%02dm", int(d.Hours()), int(d.Minutes())%60)
	}
}

// rowView is what the row template needs: the row and its run's scale.
type rowView struct {
	Run *Run
	Row *Row
}

// Tick is a mark on a run's time axis.
type Tick struct {
	Left  string
	Label string
}

func ticks(r *Run) []Tick {
	var out []Tick
	for i := 0; i < 4; i++ {
		d := r.Duration() * time.Duration(i) / 4
		out = append(out, Tick{Left: pct(d, r.Duration()), Label: "+" + fmtDur(d)})
	}
	return out
}

func countsText(c map[State]int) string {
	var parts []string
	for _, s := range legend {
		if c[s] > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", c[s], s))
		}
	}
	return strings.Join(parts, ", ")
}

// edgePath is an SVG path from a need's right side to its step's left.
func edgePath(e Edge) string {
	x1 := e.From.Col*graphColW + graphPad + nodeW
	y1 := e.From.Row*graphRowH + graphPad + nodeH/2
	x2 := e.To.Col*graphColW + graphPad
	y2 := e.To.Row*graphRowH + graphPad + nodeH/2
	mid := (x1 + x2) / 2
	return fmt.Sprintf("M%d %d C%d %d %d %d %d %d", x1, y1, mid, y1, mid, y2, x2, y2)
}
