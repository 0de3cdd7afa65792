package plans

import (
	"fmt"
	"regexp"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/goccy/go-yaml/ast"

	"github.com/sealflow/sealflow/steps"
)

var stepIDRE = regexp.MustCompile(`^[a-z][a-z0-9-]*$`)

var stepKeys = []string{"id", "kind", "on", "needs", "when", "with", "retries", "timeout", "serial", "become"}

// stepSrc is a decoded step with what the later checks need.
type stepSrc struct {
	s      *Step
	onNode ast.Node
	exprs  []expression // every expression of `when` and `with`
	needs  []needRef
}

type needRef struct {
	id  string
	pos Position
}

// step decodes the i-th item of `steps`.
func (d *decoder) step(raw ast.Node, i int, kinds *steps.Registry) *stepSrc {
	es, ok := d.mapping(raw, fmt.Sprintf("steps[%d]", i))
	if !ok {
		return nil
	}
	s := &Step{On: "all", Pos: d.pos(raw), fieldPos: map[string]Position{}, needsPos: map[string]Position{}}
	src := &stepSrc{s: s}
	what := fmt.Sprintf("step #%d", i+1)
	byKey := map[string]entry{}
	var unknown []entry
	for _, e := range es {
		if !containsString(stepKeys, e.key) {
			unknown = append(unknown, e)
			continue
		}
		byKey[e.key] = e
		s.fieldPos[e.key] = d.pos(e.keyNode)
	}
	if e, ok := byKey["id"]; ok {
		if id, ok := d.str(e.val, what+": id"); ok {
			if stepIDRE.MatchString(id) {
				s.ID = id
				what = fmt.Sprintf("step %q", id)
			} else {
				d.errs.add(d.pos(e.val), "start with a lowercase letter; then use lowercase letters, digits and '-'", "bad step id %q", id)
			}
		}
	} else {
		d.errs.add(s.Pos, "add id: NAME (lowercase letters, digits and '-')", "%s has no id", what)
	}
	for _, e := range unknown {
		d.errs.add(d.pos(e.keyNode), didYouMean(e.key, stepKeys, "keys"), "unknown key %q in %s", e.key, what)
	}
	if e, ok := byKey["kind"]; ok {
		if kind, ok := d.str(e.val, what+": kind"); ok {
			s.Kind = kind
			if k, found := kinds.Lookup(kind); found {
				s.KindDef = k
			} else {
				d.errs.add(d.pos(e.val), didYouMean(kind, kinds.Names(), "kinds"), "%s: unknown kind %q", what, kind)
			}
		}
	} else {
		d.errs.add(s.Pos, "add kind: KIND; kinds: "+strings.Join(kinds.Names(), ", "), "%s has no kind", what)
	}
	if e, ok := byKey["on"]; ok {
		if on, ok := d.str(e.val, what+": on"); ok {
			on = strings.TrimSpace(on)
			if on == "" {
				d.errs.add(d.pos(e.val), "write all, a group, a host or an expression", "%s: on is empty", what)
			} else {
				s.On = on
				src.onNode = e.val
				s.onPos = d.pos(e.val)
			}
		}
	}
	if e, ok := byKey["needs"]; ok {
		src.needs = d.needs(e.val, what)
		for _, n := range src.needs {
			s.Needs = append(s.Needs, n.id)
			s.needsPos[n.id] = n.pos
		}
	}
	if e, ok := byKey["when"]; ok {
		d.when(src, e.val, what)
	}
	if e, ok := byKey["retries"]; ok {
		if n, ok := d.integer(e.val, what+": retries"); ok {
			if n < 0 {
				d.errs.add(d.pos(e.val), "0 means no retry", "%s: retries must not be negative, got %d", what, n)
			} else {
				s.Retries = n
			}
		}
	}
	if e, ok := byKey["serial"]; ok {
		if n, ok := d.integer(e.val, what+": serial"); ok {
			if n < 1 {
				d.errs.add(d.pos(e.val), "leave serial out for no limit", "%s: serial must be at least 1, got %d", what, n)
			} else {
				s.Serial = n
			}
		}
	}
	if e, ok := byKey["timeout"]; ok {
		d.timeout(s, e.val, what)
	}
	if e, ok := byKey["become"]; ok {
		if b, ok := d.boolean(e.val, what+": become"); ok {
			s.Become = &b
		}
	}
	if e, ok := byKey["with"]; ok {
		d.with(src, e, what)
	} else if s.KindDef != nil {
		d.requiredParams(s, nil, s.Pos, what)
	}
	return src
}

func (d *decoder) needs(raw ast.Node, what string) []needRef {
	n := d.resolve(raw)
	if _, ok := n.(*ast.StringNode); ok {
		id, _ := d.str(n, what+": needs")
		return []needRef{{id: id, pos: d.pos(n)}}
	}
	items, ok := d.sequence(raw, what+": needs")
	if !ok {
		return nil
	}
	var out []needRef
	seen := map[string]bool{}
	for _, item := range items {
		id, ok := d.str(item, what+": needs")
		if !ok {
			continue
		}
		if seen[id] {
			d.errs.add(d.pos(item), "", "%s: needs %q twice", what, id)
			continue
		}
		seen[id] = true
		out = append(out, needRef{id: id, pos: d.pos(d.resolve(item))})
	}
	return out
}

// when compiles the step's condition. A condition written as a single
// ${{ expr }} is read as expr.
func (d *decoder) when(src *stepSrc, raw ast.Node, what string) {
	n := d.resolve(raw)
	var text string
	switch m := n.(type) {
	case *ast.BoolNode:
		text = m.GetToken().Value
	case *ast.StringNode, *ast.LiteralNode:
		text, _ = scalarText(m)
	default:
		d.errs.add(d.pos(orNode(n, raw)), "", "%s: when: want an expression, got %s", what, typeName(n))
		return
	}
	off := 0
	trimmed := strings.TrimSpace(text)
	if strings.HasPrefix(trimmed, "${{") && strings.HasSuffix(trimmed, "}}") && strings.Count(trimmed, "${{") == 1 {
		i := strings.Index(text, "${{") + 3
		inner := strings.TrimSuffix(trimmed, "}}")[len("${{"):]
		lead := len(inner) - len(strings.TrimLeft(inner, " \t\r\n"))
		off = utf8.RuneCountInString(text[:i+lead])
		text = strings.TrimSpace(inner)
	} else {
		lead := len(text) - len(strings.TrimLeft(text, " \t\r\n"))
		off = utf8.RuneCountInString(text[:lead])
		text = strings.TrimSpace(text)
	}
	if text == "" {
		d.errs.add(d.pos(orNode(n, raw)), "leave when out to always run", "%s: when is empty", what)
		return
	}
	prog, ok := d.compileExpr(text, n, off, what+": when", true)
	if !ok {
		return
	}
	src.s.When = text
	src.s.when = prog
	src.s.whenPos = d.offsetPos(n, off)
	src.exprs = append(src.exprs, expression{prog: prog, src: text, node: n, off: off})
}

func (d *decoder) timeout(s *Step, raw ast.Node, what string) {
	n := d.resolve(raw)
	str, ok := n.(*ast.StringNode)
	if !ok {
		d.errs.add(d.pos(orNode(n, raw)), "write a Go duration such as 90s, 5m or 1h30m", "%s: timeout: want a duration, got %s", what, typeName(n))
		return
	}
	t, err := time.ParseDuration(str.Value)
	if err != nil {
		d.errs.add(d.pos(n), "write a Go duration such as 90s, 5m or 1h30m", "%s: bad timeout %q", what, str.Value)
		return
	}
	if t <= 0 {
		d.errs.add(d.pos(n), "leave timeout out for no limit", "%s: timeout must be positive, got %s", what, str.Value)
		return
	}
	s.Timeout = t
}

// with decodes, compiles and checks the step's parameters.
func (d *decoder) with(src *stepSrc, e entry, what string) {
	s := src.s
	es, ok := d.mapping(e.val, what+": with")
	if !ok {
		return
	}
	raw, _ := d.value(e.val, what+": with", 0)
	s.With, _ = raw.(map[string]any)
	if s.With == nil {
		s.With = map[string]any{}
	}
	present := map[string]bool{}
	for _, pe := range es {
		pwhat := fmt.Sprintf("%s: with.%s", what, pe.key)
		if n := d.resolve(pe.val); n == nil || n.Type() == ast.NullType {
			delete(s.With, pe.key)
			continue
		}
		v, ok := d.compileValue(pe.val, pwhat, 0, &src.exprs)
		if !ok || s.KindDef == nil {
			present[pe.key] = true
			continue
		}
		def, known := s.KindDef.Param(pe.key)
		if !known {
			names := paramNames(s.KindDef)
			d.errs.add(d.pos(pe.keyNode), didYouMean(pe.key, names, "parameters"), "%s: unknown parameter %q for kind %s", what, pe.key, s.KindDef.Name)
			continue
		}
		present[pe.key] = true
		if err := checkLiteral(v, def.Type); err != nil {
			d.errs.add(v.pos, "", "%s: %v", pwhat, err)
			continue
		}
		s.params = append(s.params, &param{name: pe.key, def: def, pos: v.pos, val: v})
	}
	if s.KindDef != nil {
		d.requiredParams(s, present, d.pos(e.keyNode), what)
	}
}

func (d *decoder) requiredParams(s *Step, present map[string]bool, pos Position, what string) {
	for _, p := range s.KindDef.Params {
		if p.Required && !present[p.Name] {
			d.errs.add(pos, fmt.Sprintf("add with: {%s: ...} (%s)", p.Name, p.Type), "%s: missing parameter %q for kind %s", what, p.Name, s.KindDef.Name)
		}
	}
}

func paramNames(k *steps.Kind) []string {
	names := make([]string, len(k.Params))
	for i, p := range k.Params {
		names[i] = p.Name
	}
	return names
}
