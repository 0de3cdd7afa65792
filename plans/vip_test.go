package plans

import (
	"strings"
	"testing"

	"github.com/sealflow/sealflow/steps"
)

// A VIP inside the service or pod network is refused when the plan loads
// (before any host is touched), naming the network and the default; the
// default lies outside both; a cluster built so already can say so.
func TestVIPInsideClusterNetworksRefused(t *testing.T) {
	inv := []byte("groups:\n  masters: [{name: m1, address: 10.0.0.2}]\n  nodes: [{name: n1, address: 10.0.0.5}]\n  new: [{name: n2, address: 10.0.0.6}]\n")
	for _, name := range []string{"ha", "add-node"} {
		data, ok := Shipped(name)
		if !ok {
			t.Fatalf("no shipped plan %s", name)
		}
		for _, tc := range []struct {
			set  map[string]string
			want string // "" loads
		}{
			{set: map[string]string{}},
			{set: map[string]string{"vip": "10.103.97.2"}, want: "vip 10.103.97.2 lies inside svc_cidr 10.96.0.0/12"},
			{set: map[string]string{"vip": "100.64.3.4"}, want: "vip 100.64.3.4 lies inside pod_cidr 100.64.0.0/10"},
			{set: map[string]string{"vip": "10.244.0.9", "pod_cidr": "10.244.0.0/16"}, want: "inside pod_cidr 10.244.0.0/16"},
			{set: map[string]string{"vip": "10.103.97.2", "allow_vip_in_cidr": "true"}},
			{set: map[string]string{"vip": "10.103.97.2", "svc_cidr": "10.96.0.0/16"}},
		} {
			_, err := Load(name+".yaml", data, LoadOptions{Kinds: steps.Builtin(), Set: tc.set, Inventory: inv})
			switch {
			case tc.want == "" && err != nil:
				t.Errorf("%s %v: %v, want it to load", name, tc.set, err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), name+".yaml:") ||
				!strings.Contains(err.Error(), "the default is "+steps.DefaultVIP)):
				t.Errorf("%s %v: %v, want a load error at a position saying %q and the default", name, tc.set, err, tc.want)
			}
		}
	}
}
