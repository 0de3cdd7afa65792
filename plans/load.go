package plans

import (
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/goccy/go-yaml"
	"github.com/goccy/go-yaml/ast"
	"github.com/goccy/go-yaml/parser"

	"github.com/sealflow/sealflow/internal/transport"
	"github.com/sealflow/sealflow/steps"
)

// LoadOptions are the inputs of Load besides the plan itself.
type LoadOptions struct {
	// Kinds are the step kinds a plan may use. Required.
	Kinds *steps.Registry
	// Set overrides vars (from --set key=value). A var that is an integer,
	// number or boolean in the plan gets the value parsed as that type.
	Set map[string]string
	// Inventory replaces the plan's hosts when not nil (the contents of
	// -i FILE: the same shape as hosts:, optionally under a hosts: key).
	Inventory []byte
	// InventoryFile names Inventory in error positions.
	InventoryFile string
	// LookupEnv reads the environment for secret vars declared with
	// `env:` (os.LookupEnv in the CLI). Nil: such vars are empty unless
	// Set gives them.
	LookupEnv func(name string) (string, bool)
}

var topKeys = []string{"name", "vars", "hosts", "steps"}

// LoadFile reads and loads the plan at path.
func LoadFile(path string, opts LoadOptions) (*Plan, error) {
	data, err := ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read plan: %w", err)
	}
	return Load(path, data, opts)
}

// Load decodes and validates a plan. Every problem found comes back as an
// ErrorList (the first 20, and a last entry saying how many more); an
// invalid plan yields no Plan. A file larger than MaxFileSize, nested
// deeper than 64 levels or holding more than 200,000 values is refused
// before it is parsed.
func Load(file string, data []byte, opts LoadOptions) (*Plan, error) {
	if opts.Kinds == nil {
		return nil, errors.New("load plan: LoadOptions.Kinds is required")
	}
	errs := &collector{}
	root := parseYAML(file, data, errs)
	if errs.failed() {
		return nil, errs.err()
	}
	d := newDecoder(file, errs, root)
	p := &Plan{File: file, Vars: map[string]any{}}
	top, ok := d.mapping(root, "plan")
	if !ok {
		return nil, errs.err()
	}
	fields := map[string]entry{}
	for _, e := range top {
		if !containsString(topKeys, e.key) {
			d.errs.add(d.pos(e.keyNode), didYouMean(e.key, topKeys, "keys"), "unknown key %q in plan", e.key)
			continue
		}
		fields[e.key] = e
	}
	start := Position{File: file, Line: 1, Col: 1}
	if e, ok := fields["name"]; ok {
		if name, ok := d.str(e.val, "name"); ok {
			if strings.TrimSpace(name) == "" {
				d.errs.add(d.pos(e.val), "", "name is empty")
			}
			p.Name = name
		}
	} else {
		d.errs.add(start, "add name: NAME at the top of the plan", "the plan has no name")
	}
	var varPos map[string]Position
	if e, ok := fields["vars"]; ok {
		varPos = d.vars(p, e, opts.LookupEnv)
	}
	invErrs := len(errs.list)
	if opts.Inventory != nil {
		invFile := opts.InventoryFile
		if invFile == "" {
			invFile = "inventory"
		}
		invRoot := parseYAML(invFile, opts.Inventory, errs)
		if invRoot != nil {
			id := newDecoder(invFile, errs, invRoot)
			id.budget = d.budget
			var vars *entry
			if es, ok := id.mapping(invRoot, "inventory"); ok && len(es) >= 1 && es[0].key == "hosts" {
				// The wrapped form: hosts: {...} and maybe vars: {...}.
				invRoot = es[0].val
				for _, e := range es[1:] {
					if e.key == "vars" && vars == nil {
						vars = &e
						continue
					}
					id.errs.add(id.pos(e.keyNode), "", "unknown key %q in the inventory: it holds hosts: and vars:", e.key)
				}
			}
			var inner *entry
			p.Hosts, p.Groups, inner = id.inventory(invRoot, true)
			if vars == nil {
				vars = inner
			}
			id.inventoryVars(p, vars)
		}
	} else if e, ok := fields["hosts"]; ok {
		p.Hosts, p.Groups, _ = d.inventory(e.val, false)
	}
	invOK := len(errs.list) == invErrs
	d.applySet(p, fields["vars"], varPos, opts.Set)
	p.groupViews = p.buildGroupViews()

	srcs := d.steps(p, fields, start, opts.Kinds)
	for _, src := range srcs {
		if src.onNode != nil {
			d.selectTargets(p, src, invOK)
		} else {
			src.s.Targets = append([]*Host(nil), p.Hosts...)
		}
	}
	d.checkGraph(srcs)
	if errs.failed() {
		return nil, errs.err()
	}
	p.index()
	d.checkValues(p)
	if errs.failed() {
		return nil, errs.err()
	}
	return p, nil
}

// checkValues builds, for kinds that check values only (Kind.LoadCheck),
// the step of each task whose parameters render from vars, groups and
// the host (not from other steps' outputs): a bad value is then a load
// error, before any host is touched. One error per step.
func (d *decoder) checkValues(p *Plan) {
	for _, s := range p.Steps {
		if s.KindDef == nil || !s.KindDef.LoadCheck {
			continue
		}
		for _, h := range s.Targets {
			params, err := s.Render(p.NewEnv(h))
			if err != nil {
				continue // known at run time only
			}
			if _, err := s.KindDef.New(params); err != nil {
				d.errs.add(s.Pos, "", "step %q on host %s: %v", s.ID, h.Name, err)
				break
			}
		}
	}
}

// parseYAML parses one YAML document and returns its body, or nil with
// the problem recorded.
func parseYAML(file string, data []byte, errs *collector) (body ast.Node) {
	if !checkShape(file, data, errs) {
		return nil
	}
	defer func() {
		if r := recover(); r != nil {
			errs.add(Position{File: file}, "check the YAML syntax", "the YAML parser failed on this file: %v", r)
			body = nil
		}
	}()
	f, err := parser.ParseBytes(data, 0, parser.AllowDuplicateMapKey())
	if err != nil {
		pos := Position{File: file}
		msg := err.Error()
		var ye yaml.Error
		if errors.As(err, &ye) {
			msg = ye.GetMessage()
			if tk := ye.GetToken(); tk != nil && tk.Position != nil {
				pos.Line, pos.Col = tk.Position.Line, max(tk.Position.Column, 1)
			}
		}
		errs.add(pos, "", "YAML: %s", msg)
		return nil
	}
	var docs []*ast.DocumentNode
	for _, doc := range f.Docs {
		if doc != nil && doc.Body != nil {
			docs = append(docs, doc)
		}
	}
	if len(docs) == 0 {
		errs.add(Position{File: file, Line: 1, Col: 1}, "", "the file is empty")
		return nil
	}
	if len(docs) > 1 {
		d := &decoder{file: file}
		errs.add(d.pos(docs[1].Body), "put everything in one document (remove the ---)", "a plan is one YAML document; found %d", len(docs))
		return nil
	}
	return docs[0].Body
}

// steps decodes the steps list.
func (d *decoder) steps(p *Plan, fields map[string]entry, start Position, kinds *steps.Registry) []*stepSrc {
	e, ok := fields["steps"]
	if !ok {
		d.errs.add(start, "add steps: with at least one step", "the plan has no steps")
		return nil
	}
	items, ok := d.sequence(e.val, "steps")
	if !ok {
		return nil
	}
	if len(items) == 0 {
		d.errs.add(d.pos(e.keyNode), "add at least one step", "steps is empty")
		return nil
	}
	var srcs []*stepSrc
	firstLine := map[string]int{}
	for i, item := range items {
		src := d.step(item, i, kinds)
		if src == nil {
			continue
		}
		if id := src.s.ID; id != "" {
			if line, dup := firstLine[id]; dup {
				d.errs.add(src.s.fieldPos["id"], "give each step its own id", "duplicate step id %q (first at line %d)", id, line)
			} else {
				firstLine[id] = src.s.Pos.Line
			}
		}
		srcs = append(srcs, src)
		p.Steps = append(p.Steps, src.s)
	}
	return srcs
}

// vars decodes the plan's vars and returns where each is declared.
//
// A var written {secret: true} or {secret: true, env: NAME} is a secret:
// its value comes from --set or from the environment variable NAME (--set
// wins), it is a string, and the run never writes it in clear (see
// Plan.SecretVars).
func (d *decoder) vars(p *Plan, e entry, lookupEnv func(string) (string, bool)) map[string]Position {
	es, _ := d.mapping(e.val, "vars")
	pos := make(map[string]Position, len(es))
	for _, ve := range es {
		pos[ve.key] = d.pos(ve.keyNode)
		v, ok := d.value(ve.val, "vars."+ve.key, 0)
		if !ok {
			continue
		}
		if m, isMap := v.(map[string]any); isMap && secretDecl(m) {
			if b, _ := m["secret"].(bool); !b {
				d.errs.add(d.pos(ve.val), "write secret: true, or give the var a plain value", "vars.%s: secret: want true", ve.key)
				continue
			}
			env, _ := m["env"].(string)
			if _, given := m["env"]; given && !transport.ValidEnvName(env) {
				d.errs.add(d.pos(ve.val), "", "vars.%s: env: want the name of an environment variable (letters, digits and '_')", ve.key)
				continue
			}
			if p.SecretVars == nil {
				p.SecretVars = map[string]string{}
			}
			p.SecretVars[ve.key] = env
			val := ""
			if env != "" && lookupEnv != nil {
				val, _ = lookupEnv(env)
			}
			p.Vars[ve.key] = val
			continue
		}
		p.Vars[ve.key] = v
	}
	return pos
}

// secretDecl reports whether a map var is a secret var's declaration:
// it has the key secret and no key but secret and env.
func secretDecl(m map[string]any) bool {
	if _, ok := m["secret"]; !ok {
		return false
	}
	for k := range m {
		if k != "secret" && k != "env" {
			return false
		}
	}
	return true
}

// applySet applies --set overrides: a var keeps the type it has in the plan.
func (d *decoder) applySet(p *Plan, varsEntry entry, keyPos map[string]Position, set map[string]string) {
	keys := make([]string, 0, len(set))
	for k := range set {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	declared := make([]string, 0, len(p.Vars))
	for k := range p.Vars {
		declared = append(declared, k)
	}
	sort.Strings(declared)
	varPos := Position{File: d.file}
	if varsEntry.keyNode != nil {
		varPos = d.pos(varsEntry.keyNode)
	}
	for _, k := range keys {
		val := set[k]
		old, ok := p.Vars[k]
		if !ok {
			d.errs.add(varPos, didYouMean(k, declared, "vars"), "--set %s: the plan has no var %q; declare it under vars:", k, k)
			continue
		}
		pos := keyPos[k]
		switch old.(type) {
		case nil, string:
			p.Vars[k] = val
		case int:
			n, err := strconv.Atoi(strings.TrimSpace(val))
			if err != nil {
				d.errs.add(pos, "", "--set %s: var %s is an integer in the plan; the value given is not", k, k)
				continue
			}
			p.Vars[k] = n
		case float64:
			f, err := strconv.ParseFloat(strings.TrimSpace(val), 64)
			if err != nil {
				d.errs.add(pos, "", "--set %s: var %s is a number in the plan; the value given is not", k, k)
				continue
			}
			p.Vars[k] = f
		case bool:
			b, err := strconv.ParseBool(strings.TrimSpace(val))
			if err != nil {
				d.errs.add(pos, "write true or false", "--set %s: var %s is a boolean in the plan; the value given is not", k, k)
				continue
			}
			p.Vars[k] = b
		case []any:
			// A list var takes a comma-separated value: --set k=a,b (k= is empty).
			list := []any{}
			for _, item := range strings.Split(val, ",") {
				if item = strings.TrimSpace(item); item != "" {
					list = append(list, item)
				}
			}
			p.Vars[k] = list
		default:
			d.errs.add(pos, "", "--set %s: var %s is a %s in the plan; --set only sets strings, numbers, booleans and lists (a,b,c)", k, k, goTypeName(old))
		}
	}
}
