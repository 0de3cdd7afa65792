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
			"kubeadm-init": {"m1"}, "cni": {"m1"}, "join-masters": {"m2", "m3"}, "vip-rules": {"n1", "n2", "n3"},
			"join-nodes": {"n1", "n2", "n3"}, "lvscare": {"n1", "n2", "n3"},
		},
		"add-node": {
			"upload": {"m3", "n3"}, "kubeadm-init": {"m1"}, "join-masters": {"m3"}, "join-nodes": {"n3"},
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
