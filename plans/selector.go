package plans

import (
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/expr-lang/expr"
)

var (
	indexedRE = regexp.MustCompile(`^([a-z0-9_-]+)\s*\[(.*)\]$`)
	bareRE    = regexp.MustCompile(`^[A-Za-z0-9_.:-]+$`)
)

// envNames are the names expressions start from; `on` values starting
// with them are expressions, not group or host names.
var envNames = map[string]bool{"vars": true, "host": true, "groups": true, "steps": true, "true": true, "false": true}

// selectTargets computes s.Targets from s.On. checkNames is false when the
// inventory had errors (an unknown name would only repeat them).
func (d *decoder) selectTargets(p *Plan, src *stepSrc, checkNames bool) {
	s := src.s
	on := s.On
	if on == "all" {
		s.Targets = append([]*Host(nil), p.Hosts...)
		return
	}
	if g := p.Group(on); g != nil {
		s.Targets = p.inOrder(g.Hosts)
		return
	}
	if h := p.Host(on); h != nil {
		s.Targets = []*Host{h}
		return
	}
	if m := indexedRE.FindStringSubmatch(on); m != nil && !envNames[m[1]] {
		g := p.Group(m[1])
		if m[1] == "all" {
			g = &Group{Name: "all", Hosts: p.Hosts}
		}
		if g == nil {
			if checkNames {
				d.unknownName(p, s, m[1])
			}
			return
		}
		lo, hi, ok := sliceBounds(m[2], len(g.Hosts))
		if !ok {
			d.errs.add(s.onPos, "write GROUP[i], GROUP[-1] or GROUP[i:j] with integers (j excluded, either may be left out)", "step %q: bad index or slice %q in on", s.ID, "["+m[2]+"]")
			return
		}
		s.Targets = p.inOrder(g.Hosts[lo:hi])
		return
	}
	if bareRE.MatchString(on) && !envNames[on] && !strings.HasPrefix(on, "vars.") && !strings.HasPrefix(on, "host.") {
		if checkNames {
			d.unknownName(p, s, on)
		}
		return
	}
	n := d.resolve(src.onNode)
	text, _ := scalarText(n)
	off := utf8.RuneCountInString(text[:len(text)-len(strings.TrimLeft(text, " \t\r\n"))])
	prog, ok := d.compileExpr(on, n, off, fmt.Sprintf("step %q: on", s.ID), true)
	if !ok {
		return
	}
	for _, h := range p.Hosts {
		v, err := expr.Run(prog, p.NewEnv(h))
		if err != nil {
			d.errs.add(s.onPos, "", "step %q: on: evaluating %q for host %s: %s", s.ID, on, h.Name, exprErrMsg(err))
			return
		}
		if b, _ := v.(bool); b {
			s.Targets = append(s.Targets, h)
		}
	}
}

func (d *decoder) unknownName(p *Plan, s *Step, name string) {
	groups := make([]string, len(p.Groups))
	for i, g := range p.Groups {
		groups[i] = g.Name
	}
	candidates := append([]string{"all"}, groups...)
	for _, h := range p.Hosts {
		candidates = append(candidates, h.Name)
	}
	list := strings.Join(groups, ", ")
	if list == "" {
		list = "(none)"
	}
	d.errs.add(s.onPos, didYouMean(name, candidates, ""), "step %q: unknown group or host %q in on; groups: %s", s.ID, name, list)
}

// sliceBounds reads "i" or "i:j" (Python-like: negative counts from the
// end, either side of ':' may be empty, out-of-range bounds are clamped)
// for a list of n items. A single index past the end selects nothing.
func sliceBounds(spec string, n int) (lo, hi int, ok bool) {
	atoi := func(s string, def int) (int, bool) {
		s = strings.TrimSpace(s)
		if s == "" {
			return def, true
		}
		v, err := strconv.Atoi(s)
		if err != nil || v > 1<<30 || v < -(1<<30) {
			return 0, false
		}
		return v, true
	}
	norm := func(i int) int {
		if i < 0 {
			i += n
		}
		return max(0, min(i, n))
	}
	a, b, isSlice := strings.Cut(spec, ":")
	if !isSlice {
		if strings.TrimSpace(a) == "" {
			return 0, 0, false
		}
		i, ok := atoi(a, 0)
		if !ok {
			return 0, 0, false
		}
		if i < 0 {
			i += n
		}
		if i < 0 || i >= n {
			return 0, 0, true
		}
		return i, i + 1, true
	}
	i, ok1 := atoi(a, 0)
	j, ok2 := atoi(b, n)
	if !ok1 || !ok2 {
		return 0, 0, false
	}
	lo, hi = norm(i), norm(j)
	if hi < lo {
		hi = lo
	}
	return lo, hi, true
}

// inOrder returns hosts sorted in inventory order.
func (p *Plan) inOrder(hosts []*Host) []*Host {
	rank := make(map[*Host]int, len(p.Hosts))
	for i, h := range p.Hosts {
		rank[h] = i
	}
	out := append([]*Host(nil), hosts...)
	sort.SliceStable(out, func(i, j int) bool { return rank[out[i]] < rank[out[j]] })
	return out
}
