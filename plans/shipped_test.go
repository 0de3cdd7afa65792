package plans

import (
	"os"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/sealflow/sealflow/steps"
)

// The shipped plans load with a cluster inventory, select what they
// should, and the embedded copies are the files.
func TestShippedPlans(t *testing.T) {
	t.Parallel()
	inv := []byte(`groups:
  masters: [{name: m1, address: 10.1.0.11}, {name: m2, address: 10.1.0.12}, {name: m3, address: 10.1.0.13}]
  nodes: [{name: n1, address: 10.1.0.21}, {name: n2, address: 10.1.0.22}, {name: n3, address: 10.1.0.23}]
  new: [{name: m3, address: 10.1.0.13}, {name: n3, address: 10.1.0.23}]
`)
	want := map[string]map[string][]string{
		"ha": {
			"kubeadm-init": {"m1"}, "join-credentials": {"m1"}, "cni": {"m1"}, "join-masters": {"m2", "m3"}, "vip-rules": {"n1", "n2", "n3"},
			"join-nodes": {"n1", "n2", "n3"}, "lvscare": {"n1", "n2", "n3"},
		},
		"add-node": {
			"upload": {"m3", "n3"}, "kubeadm-init": {"m1"}, "join-credentials": {"m1"}, "join-masters": {"m3"}, "join-nodes": {"n3"},
			"lvscare": {"n3"}, "lvscare-refresh": {"n1", "n2"},
		},
		"clean": {"reset-nodes": {"n1", "n2", "n3"}, "reset-masters": {"m1", "m2", "m3"}},
	}
	for _, name := range ShippedNames() {
		b, ok := Shipped(name)
		if !ok {
			t.Fatalf("%s is not embedded", name)
		}
		file, err := os.ReadFile(name + ".yaml")
		if err != nil || string(file) != string(b) {
			t.Errorf("embedded %s differs from %s.yaml", name, name)
		}
		var invData []byte
		if name != "demo" {
			invData = inv
		}
		p, err := Load(name+".yaml", b, LoadOptions{Kinds: steps.Builtin(), Inventory: invData, Set: map[string]string{}})
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		for id, hosts := range want[name] {
			s := p.Step(id)
			if s == nil {
				t.Errorf("%s has no step %s", name, id)
				continue
			}
			var got []string
			for _, h := range s.Targets {
				got = append(got, h.Name)
			}
			if diff := cmp.Diff(hosts, got); diff != "" {
				t.Errorf("%s: %s runs on (-want +got):\n%s", name, id, diff)
			}
		}
	}
	if _, ok := Shipped("../go.mod"); ok {
		t.Error("Shipped reads outside the plans")
	}
}

// The verify step of ha and add-node wants kube-proxy and the pod
// network's agent on every node, and only kube-proxy without a CNI agent.
func TestShippedVerifyDaemonSets(t *testing.T) {
	t.Parallel()
	inv := []byte("groups:\n  masters: [{name: m1, address: 10.1.0.11}]\n  nodes: [{name: n1, address: 10.1.0.21}]\n  new: []\n")
	for _, name := range []string{"ha", "add-node"} {
		b, _ := Shipped(name)
		for set, want := range map[string][]string{
			"":                          {"kube-system/kube-proxy", "kube-flannel/kube-flannel-ds"},
			"cni_daemonset=":            {"kube-system/kube-proxy"},
			"cni_daemonset=calico/node": {"kube-system/kube-proxy", "calico/node"},
		} {
			sets := map[string]string{}
			if k, v, ok := strings.Cut(set, "="); ok {
				sets[k] = v
			}
			p, err := Load(name+".yaml", b, LoadOptions{Kinds: steps.Builtin(), Inventory: inv, Set: sets})
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			params, err := p.Step("verify").Render(p.NewEnv(p.Host("m1")))
			if err != nil {
				t.Fatalf("%s --set %s: %v", name, set, err)
			}
			if diff := cmp.Diff(want, params["daemonsets"]); diff != "" {
				t.Errorf("%s --set %q: verify's daemonsets (-want +got):\n%s", name, set, diff)
			}
		}
	}
}

// kubeadm_join_config reaches every join of ha and add-node, masters and
// workers, as their kubeadm_config.
func TestShippedKubeadmJoinConfig(t *testing.T) {
	t.Parallel()
	inv := []byte("groups:\n  masters: [{name: m1, address: 10.1.0.11}, {name: m2, address: 10.1.0.12}]\n" +
		"  nodes: [{name: n1, address: 10.1.0.21}]\n  new: [{name: m2, address: 10.1.0.12}, {name: n1, address: 10.1.0.21}]\n")
	for _, name := range []string{"ha", "add-node"} {
		b, _ := Shipped(name)
		p, err := Load(name+".yaml", b, LoadOptions{Kinds: steps.Builtin(), Inventory: inv, Set: map[string]string{"kubeadm_join_config": "/etc/sealflow/join.yaml"}})
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		for step, host := range map[string]string{"join-masters": "m2", "join-nodes": "n1"} {
			s := p.Step(step)
			if s == nil {
				t.Fatalf("%s has no step %s", name, step)
			}
			env := p.NewEnv(p.Host(host))
			env.Steps["kubeadm-init"] = StepView{Outputs: map[string]string{
				"token": "abcdef.0123456789abcdef", "ca_cert_hash": "sha256:00", "certificate_key": "00", "join_endpoint": "apiserver.cluster.local:6443",
			}}
			env.Steps["join-credentials"] = StepView{Outputs: map[string]string{
				"token": "abcdef.0123456789abcdef", "ca_cert_hash": "sha256:00", "certificate_key": "00",
			}}
			params, err := s.Render(env)
			if err != nil {
				t.Fatalf("%s %s: %v", name, step, err)
			}
			if got := params["kubeadm_config"]; got != "/etc/sealflow/join.yaml" {
				t.Errorf("%s %s: kubeadm_config = %v, want the plan's kubeadm_join_config", name, step, got)
			}
		}
	}
}

// The joins of ha and add-node use the credentials join-credentials checked
// (and renewed) on the first master, not kubeadm-init's journaled ones,
// which may have expired by a resume; join-credentials reads kubeadm-init's.
func TestShippedJoinsUseCheckedCredentials(t *testing.T) {
	t.Parallel()
	inv := []byte("groups:\n  masters: [{name: m1, address: 10.1.0.11}, {name: m2, address: 10.1.0.12}]\n" +
		"  nodes: [{name: n1, address: 10.1.0.21}]\n  new: [{name: m2, address: 10.1.0.12}, {name: n1, address: 10.1.0.21}]\n")
	initOut := map[string]string{"token": "aaaaaa.aaaaaaaaaaaaaaaa", "ca_cert_hash": "sha256:aa", "certificate_key": strings.Repeat("a", 64), "join_endpoint": "apiserver.cluster.local:6443"}
	credOut := map[string]string{"token": "bbbbbb.bbbbbbbbbbbbbbbb", "ca_cert_hash": "sha256:bb", "certificate_key": strings.Repeat("b", 64)}
	for _, name := range []string{"ha", "add-node"} {
		b, _ := Shipped(name)
		p, err := Load(name+".yaml", b, LoadOptions{Kinds: steps.Builtin(), Inventory: inv, Set: map[string]string{}})
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		cred := p.Step("join-credentials")
		if cred == nil {
			t.Fatalf("%s has no join-credentials step", name)
		}
		if len(cred.Targets) != 1 || cred.Targets[0].Name != "m1" {
			t.Errorf("%s: join-credentials runs on %v, want the first master", name, cred.Targets)
		}
		env := p.NewEnv(p.Host("m1"))
		env.Steps["kubeadm-init"] = StepView{Outputs: initOut}
		params, err := cred.Render(env)
		if err != nil {
			t.Fatalf("%s join-credentials: %v", name, err)
		}
		if params["token"] != initOut["token"] || params["certificate_key"] != initOut["certificate_key"] {
			t.Errorf("%s: join-credentials checks %v, want kubeadm-init's token and certificate key", name, params)
		}
		for step, host := range map[string]string{"join-masters": "m2", "join-nodes": "n1"} {
			s := p.Step(step)
			if !containsString(s.Needs, "join-credentials") {
				t.Errorf("%s: %s needs %v, not join-credentials", name, step, s.Needs)
			}
			env := p.NewEnv(p.Host(host))
			env.Steps["kubeadm-init"] = StepView{Outputs: initOut}
			env.Steps["join-credentials"] = StepView{Outputs: credOut}
			params, err := s.Render(env)
			if err != nil {
				t.Fatalf("%s %s: %v", name, step, err)
			}
			keys := []string{"token", "ca_cert_hash"}
			if step == "join-masters" {
				keys = append(keys, "certificate_key")
			}
			for _, k := range keys {
				if params[k] != credOut[k] {
					t.Errorf("%s %s: %s = %v, want join-credentials' %s", name, step, k, params[k], credOut[k])
				}
			}
			if params["endpoint"] != initOut["join_endpoint"] {
				t.Errorf("%s %s: endpoint = %v, want kubeadm-init's join_endpoint", name, step, params["endpoint"])
			}
		}
	}
}
