package steps

import (
	"context"
	"fmt"
	"path"
	"sort"
	"strings"
)

// kubeApplyKind applies a manifest that is on the host (e.g. the CNI's,
// from the offline package) with kubectl, after literal replacements (a
// manifest's default pod network → the cluster's). kubectl apply is
// idempotent, so running it again is safe.
func kubeApplyKind() *Kind {
	return &Kind{
		Name: "kube-apply",
		Doc:  "kubectl apply a manifest file on the host, with literal text replacements (e.g. the CNI's default pod network → the cluster's)",
		Params: []Param{
			{Name: "manifest", Type: String, Required: true, Doc: "the manifest file on the host, e.g. /root/kube/manifests/kube-flannel.yml"},
			{Name: "replace", Type: StringMap, Doc: "literal text → its replacement, each applied to the whole file (longest text first); a text that is not in the file is an error"},
			{Name: "kubeconfig", Type: String, Doc: "the kubeconfig kubectl uses (default /etc/kubernetes/admin.conf)"},
		},
		Rerunnable: true,
		New:        func(p Params) (Step, error) { return newKubeApply(p, defaultPaths()) },
	}
}

type kubeApply struct {
	manifest, kubeconfig string
	replace              [][2]string // in the order they are applied
}

func newKubeApply(p Params, paths sysPaths) (*kubeApply, error) {
	s := &kubeApply{}
	s.manifest, _ = p["manifest"].(string)
	if err := checkRemotePath("manifest", s.manifest); err != nil {
		return nil, err
	}
	s.kubeconfig, _ = p["kubeconfig"].(string)
	if s.kubeconfig == "" {
		s.kubeconfig = path.Join(paths.Kube, "admin.conf")
	}
	if err := checkRemotePath("kubeconfig", s.kubeconfig); err != nil {
		return nil, err
	}
	m, _ := p["replace"].(map[string]string)
	for old, repl := range m {
		if old == "" {
			return nil, fmt.Errorf("replace: an empty text cannot be replaced")
		}
		s.replace = append(s.replace, [2]string{old, repl})
	}
	// Longest first, so that a text holding another is replaced whole;
	// then by text, for a stable order.
	sort.Slice(s.replace, func(i, j int) bool {
		a, b := s.replace[i][0], s.replace[j][0]
		if len(a) != len(b) {
			return len(a) > len(b)
		}
		return a < b
	})
	return s, nil
}

// render makes the replacements at once (a replacement's text is not
// replaced again), longest text first where two start at one place.
func (s *kubeApply) render(text string) (string, error) {
	var pairs []string
	for _, r := range s.replace {
		if !strings.Contains(text, r[0]) {
			return "", fmt.Errorf("replace: %s has no %q (is it the manifest you meant?)", s.manifest, r[0])
		}
		pairs = append(pairs, r[0], r[1])
	}
	return strings.NewReplacer(pairs...).Replace(text), nil
}

const kubeApplyScript = `kubectl --kubeconfig "$SF_KUBECONFIG" --request-timeout=60s apply -f -
`

func (s *kubeApply) Run(ctx context.Context, t *Target) (Outputs, error) {
	env := map[string]string{"SF_MANIFEST": s.manifest, "SF_KUBECONFIG": s.kubeconfig}
	text, err := output(ctx, t, "read "+s.manifest, `cat -- "$SF_MANIFEST"`, env)
	if err != nil {
		return nil, err
	}
	body, err := s.render(text)
	if err != nil {
		return nil, err
	}
	logf(t, "kubectl apply -f %s%s\n", s.manifest, s.replacing())
	if err := runInput(ctx, t, "kubectl apply -f "+s.manifest, kubeApplyScript, env, strings.NewReader(body)); err != nil {
		return nil, err
	}
	return nil, nil
}

func (s *kubeApply) replacing() string {
	if len(s.replace) == 0 {
		return ""
	}
	var parts []string
	for _, r := range s.replace {
		parts = append(parts, fmt.Sprintf("%q → %q", r[0], r[1]))
	}
	return " (replacing " + strings.Join(parts, ", ") + ")"
}

func (s *kubeApply) Describe(t *Target) []string {
	return []string{"kubectl apply -f " + s.manifest + s.replacing()}
}
