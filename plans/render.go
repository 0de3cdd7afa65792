package plans

import (
	"fmt"

	"github.com/expr-lang/expr"

	"github.com/sealflow/sealflow/steps"
)

// EvalWhen evaluates the step's `when` for env; true when there is none.
func (s *Step) EvalWhen(env *Env) (bool, error) {
	if s.when == nil {
		return true, nil
	}
	if env == nil {
		env = &Env{}
	}
	v, err := expr.Run(s.when, env)
	if err != nil {
		return false, &Error{Pos: s.whenPos, Msg: fmt.Sprintf("step %q%s: when: %s", s.ID, onHost(env), exprErrMsg(err))}
	}
	b, ok := v.(bool)
	if !ok {
		return false, &Error{Pos: s.whenPos, Msg: fmt.Sprintf("step %q%s: when: want true or false, got %s", s.ID, onHost(env), goTypeName(v))}
	}
	return b, nil
}

// Render evaluates the ${{ }} of every string of `with` for env and
// converts each parameter to the type its kind declares. Errors name the
// step, the host, the parameter and where it is written.
func (s *Step) Render(env *Env) (steps.Params, error) {
	if env == nil {
		env = &Env{}
	}
	out := make(steps.Params, len(s.params))
	for _, p := range s.params {
		v, err := p.val.render(env, wantsText(p.def.Type))
		if err != nil {
			return nil, &Error{Pos: p.pos, Msg: fmt.Sprintf("step %q%s: with.%s: %s", s.ID, onHost(env), p.name, exprErrMsg(err))}
		}
		c, err := coerce(v, p.def.Type)
		if err != nil {
			return nil, &Error{Pos: p.pos, Msg: fmt.Sprintf("step %q%s: with.%s: %v", s.ID, onHost(env), p.name, err)}
		}
		out[p.name] = c
	}
	return out, nil
}

// Secrets lists the outputs of the step whose values are secrets: those
// its kind declares and those named by the secret_outputs parameter.
func (s *Step) Secrets(params steps.Params) []string {
	var out []string
	if s.KindDef != nil {
		out = append(out, s.KindDef.Secret...)
	}
	if extra, ok := params["secret_outputs"].([]string); ok {
		for _, name := range extra {
			if !containsString(out, name) {
				out = append(out, name)
			}
		}
	}
	return out
}

func onHost(env *Env) string {
	if env == nil || env.Host.Name == "" {
		return ""
	}
	return " on host " + env.Host.Name
}
