package plans

// Env is what expressions see: `vars`, `host`, `groups` and `steps`.
type Env struct {
	Vars   map[string]any        `expr:"vars"`
	Host   HostView              `expr:"host"`
	Groups map[string][]HostView `expr:"groups"`
	Steps  map[string]StepView   `expr:"steps"`
}

// HostView is a host as expressions see it.
type HostView struct {
	Name    string            `expr:"name"`
	Address string            `expr:"address"`
	Groups  []string          `expr:"groups"`
	Labels  map[string]string `expr:"labels"`
	Index   int               `expr:"index"`
}

// StepView is a finished step as expressions see it: the outputs of the
// step (merged over its hosts) and each host's own.
type StepView struct {
	Outputs map[string]string      `expr:"outputs"`
	Hosts   map[string]HostOutputs `expr:"hosts"`
}

// HostOutputs are the outputs of one task.
type HostOutputs struct {
	Outputs map[string]string `expr:"outputs"`
}

func viewOf(h *Host) HostView {
	return HostView{Name: h.Name, Address: h.Address, Groups: h.Groups, Labels: h.Labels, Index: h.Index}
}

// NewEnv returns the environment of expressions evaluated for h: Vars,
// Host and Groups are filled; Steps is an empty map for the caller to fill.
// The maps are shared with the plan and must not be changed.
func (p *Plan) NewEnv(h *Host) *Env {
	env := &Env{Vars: p.Vars, Groups: p.groupViews, Steps: map[string]StepView{}}
	if env.Groups == nil {
		env.Groups = p.buildGroupViews()
	}
	if h != nil {
		env.Host = viewOf(h)
	}
	return env
}

func (p *Plan) buildGroupViews() map[string][]HostView {
	views := make(map[string][]HostView, len(p.Groups))
	for _, g := range p.Groups {
		vs := make([]HostView, len(g.Hosts))
		for i, h := range g.Hosts {
			vs[i] = viewOf(h)
		}
		views[g.Name] = vs
	}
	return views
}
