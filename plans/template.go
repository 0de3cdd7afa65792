package plans

import (
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"unicode/utf8"

	"github.com/expr-lang/expr"
	"github.com/expr-lang/expr/file"
	"github.com/expr-lang/expr/vm"
	"github.com/goccy/go-yaml/ast"
)

// template is a string of `with` holding ${{ expr }} parts.
type template struct {
	parts  []tpart
	single bool // the string is exactly one ${{ expr }}: it takes its value
}

type tpart struct {
	text string
	prog *vm.Program
	src  string
	off  int // rune offset of src in the YAML string
}

// expression is a compiled expression with where it came from, for the
// checks that read its syntax tree.
type expression struct {
	prog *vm.Program
	src  string
	node ast.Node // the YAML string holding it
	off  int      // rune offset of src inside that string
}

// compileExpr compiles src (found at rune offset off of the YAML string n)
// against Env; a compile error is reported at its place in the file.
func (d *decoder) compileExpr(src string, n ast.Node, off int, what string, asBool bool) (*vm.Program, bool) {
	opts := []expr.Option{expr.Env(Env{})}
	if asBool {
		// when: a missing output reads as "" (steps.a.outputs.x == "1" is
		// false), the way a condition tests for it.
		opts = append(opts, expr.AsBool())
	} else {
		opts = append(opts, outputOptions()...)
	}
	prog, err := expr.Compile(src, opts...)
	if err != nil {
		at := off
		msg := err.Error()
		var fe *file.Error
		if errors.As(err, &fe) {
			msg = fe.Message
			if fe.From >= 0 && fe.From <= utf8.RuneCountInString(src) {
				at = off + fe.From
			}
		}
		d.errs.add(d.offsetPos(n, at), "", "%s: bad expression %q: %s", what, src, msg)
		return nil, false
	}
	return prog, true
}

// exprErrMsg returns the message of an expression error without the
// source snippet the library adds.
func exprErrMsg(err error) string {
	var fe *file.Error
	if errors.As(err, &fe) && fe.Message != "" {
		return fe.Message
	}
	return err.Error()
}

// parseTemplate splits s (the value of the YAML string n) into literal
// text and ${{ expr }} parts. It returns nil when s holds no expression.
func (d *decoder) parseTemplate(s string, n ast.Node, what string) (*template, bool) {
	if !strings.Contains(s, "${{") {
		return nil, true
	}
	t := &template{}
	var text strings.Builder
	ok := true
	for i := 0; i < len(s); {
		if strings.HasPrefix(s[i:], "$${{") {
			text.WriteString("${{")
			i += 4
			continue
		}
		if !strings.HasPrefix(s[i:], "${{") {
			text.WriteByte(s[i])
			i++
			continue
		}
		startRunes := utf8.RuneCountInString(s[:i])
		end := strings.Index(s[i+3:], "}}")
		if end < 0 {
			d.errs.add(d.offsetPos(n, startRunes), "close it with }}, or write $${{ for a literal ${{", "%s: ${{ without a closing }}", what)
			return nil, false
		}
		inner := s[i+3 : i+3+end]
		src := strings.TrimSpace(inner)
		lead := len(inner) - len(strings.TrimLeft(inner, " \t\r\n"))
		exprOff := utf8.RuneCountInString(s[:i+3+lead])
		if text.Len() > 0 {
			t.parts = append(t.parts, tpart{text: text.String()})
			text.Reset()
		}
		if src == "" {
			d.errs.add(d.offsetPos(n, startRunes), "", "%s: empty ${{ }}", what)
			ok = false
		} else if prog, pok := d.compileExpr(src, n, exprOff, what, false); pok {
			t.parts = append(t.parts, tpart{prog: prog, src: src, off: exprOff})
		} else {
			ok = false
		}
		i += 3 + end + 2
	}
	if text.Len() > 0 {
		t.parts = append(t.parts, tpart{text: text.String()})
	}
	if !ok {
		return nil, false
	}
	t.single = len(t.parts) == 1 && t.parts[0].prog != nil
	if !t.single {
		for _, p := range t.parts {
			if p.prog != nil && !interpolable(p.prog.Node().Type()) {
				d.errs.add(d.offsetPos(n, p.off), "pick one field, or write toJSON(...) or join(LIST, \",\") for text",
					"%s: ${{ %s }} is a %s; it cannot be pasted into text", what, p.src, describeType(p.prog.Node().Type()))
				ok = false
			}
		}
		if !ok {
			return nil, false
		}
	}
	return t, true
}

// interpolable reports whether a value of type t reads well pasted into
// text: scalars do; a map, list or object (known at load time) does not.
// A value whose type is known only at run time is pasted as JSON when it
// turns out to be one of those (writeValue).
func interpolable(t reflect.Type) bool {
	if t == nil {
		return true
	}
	switch t.Kind() {
	case reflect.Map, reflect.Struct, reflect.Slice, reflect.Array:
		return false
	}
	return true
}

func describeType(t reflect.Type) string {
	switch t.Kind() {
	case reflect.Map:
		return "map"
	case reflect.Slice, reflect.Array:
		return "list"
	}
	if t == reflect.TypeOf(HostView{}) {
		return "host object"
	}
	return "object"
}

// writeValue pastes v into text: scalars as %v, maps, lists and objects
// as JSON (never Go's map[...] notation).
func writeValue(b *strings.Builder, v any) error {
	switch rv := reflect.ValueOf(v); rv.Kind() {
	case reflect.Invalid:
		return nil
	case reflect.Map, reflect.Struct, reflect.Slice, reflect.Array:
		j, err := json.Marshal(v)
		if err != nil {
			return fmt.Errorf("paste a %s into text: %w", rv.Kind(), err)
		}
		b.Write(j)
		return nil
	}
	fmt.Fprintf(b, "%v", v)
	return nil
}

// exec evaluates the template: the expression's value when single,
// otherwise the parts formatted into a string.
func (t *template) exec(env *Env) (any, error) {
	if t.single {
		return expr.Run(t.parts[0].prog, env)
	}
	var b strings.Builder
	for _, p := range t.parts {
		if p.prog == nil {
			b.WriteString(p.text)
			continue
		}
		v, err := expr.Run(p.prog, env)
		if err != nil {
			return nil, err
		}
		if err := writeValue(&b, v); err != nil {
			return nil, err
		}
	}
	return b.String(), nil
}

// tval is a `with` value with its templates compiled.
type tval struct {
	pos  Position
	lit  any       // a value without templates (after $${{ unescaping)
	text string    // a scalar's text as written (for string params)
	tmpl *template // a string holding ${{ }}
	list []*tval
	keys []string
	m    map[string]*tval
	kind tkind
}

type tkind int

const (
	tLit tkind = iota
	tTmpl
	tList
	tMap
)

// hasTemplate reports whether v or anything inside holds ${{ }}.
func (v *tval) hasTemplate() bool {
	switch v.kind {
	case tTmpl:
		return true
	case tList:
		for _, item := range v.list {
			if item.hasTemplate() {
				return true
			}
		}
	case tMap:
		for _, item := range v.m {
			if item.hasTemplate() {
				return true
			}
		}
	}
	return false
}

// compileValue builds the tval of a `with` value.
func (d *decoder) compileValue(raw ast.Node, what string, depth int, exprs *[]expression) (*tval, bool) {
	if !d.spend(raw, what, depth) {
		return nil, false
	}
	n := d.resolve(raw)
	v := &tval{pos: d.pos(orNode(n, raw))}
	switch m := n.(type) {
	case *ast.StringNode, *ast.LiteralNode:
		s, _ := scalarText(m)
		t, ok := d.parseTemplate(s, n, what)
		if !ok {
			return nil, false
		}
		if t == nil {
			v.lit = s
			return v, true
		}
		for _, p := range t.parts {
			if p.prog != nil {
				*exprs = append(*exprs, expression{prog: p.prog, src: p.src, node: n, off: p.off})
			}
		}
		if len(t.parts) == 1 && t.parts[0].prog == nil {
			v.lit = t.parts[0].text
			return v, true
		}
		v.kind, v.tmpl = tTmpl, t
		return v, true
	case *ast.SequenceNode:
		v.kind = tList
		ok := true
		for i, item := range m.Values {
			iv, iok := d.compileValue(item, fmt.Sprintf("%s[%d]", what, i), depth+1, exprs)
			ok = ok && iok
			v.list = append(v.list, iv)
		}
		return v, ok
	case *ast.MappingNode, *ast.MappingValueNode:
		es, ok := d.mappingDepth(m, what, depth)
		v.kind, v.m = tMap, make(map[string]*tval, len(es))
		for _, e := range es {
			iv, iok := d.compileValue(e.val, what+"."+e.key, depth+1, exprs)
			ok = ok && iok
			v.keys = append(v.keys, e.key)
			v.m[e.key] = iv
		}
		return v, ok
	}
	lit, ok := d.value(n, what, depth)
	v.lit = lit
	if lit != nil {
		v.text, _ = scalarText(n)
	}
	return v, ok
}

// eval renders v for env into plain values; with asText, scalars written
// in the file keep their text (1.20 stays "1.20").
func (v *tval) eval(env *Env, asText bool) any {
	x, _ := v.render(env, asText)
	return x
}

// render is eval for values that may hold templates.
func (v *tval) render(env *Env, asText bool) (any, error) {
	switch v.kind {
	case tTmpl:
		return v.tmpl.exec(env)
	case tList:
		out := make([]any, len(v.list))
		for i, item := range v.list {
			x, err := item.render(env, asText)
			if err != nil {
				return nil, err
			}
			out[i] = x
		}
		return out, nil
	case tMap:
		out := make(map[string]any, len(v.m))
		for _, k := range v.keys {
			x, err := v.m[k].render(env, asText)
			if err != nil {
				return nil, err
			}
			out[k] = x
		}
		return out, nil
	}
	if asText && v.text != "" {
		return v.text, nil
	}
	return v.lit, nil
}
