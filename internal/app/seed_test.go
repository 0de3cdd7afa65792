package app

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestExpandAddresses(t *testing.T) {
	t.Parallel()
	got, err := expandAddresses("--node", []string{"192.168.0.2-192.168.0.4", "10.0.0.1,10.0.0.9-10", "10.0.0.255-10.0.1.1"})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"192.168.0.2", "192.168.0.3", "192.168.0.4", "10.0.0.1", "10.0.0.9", "10.0.0.10", "10.0.0.255", "10.0.1.0", "10.0.1.1"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	for _, bad := range []string{"10.0.0.5-10.0.0.2", "host1", "10.0.0.1-x", "10.0.0.0-10.1.0.0", "10.0.0.1,10.0.0.1"} {
		if _, err := expandAddresses("--node", []string{bad}); err == nil || Code(err) != ExitInvalid || !strings.Contains(err.Error(), "--node") {
			t.Errorf("%q: err = %v, want an exit-2 error naming --node", bad, err)
		}
	}
}

func TestInventoryYAML(t *testing.T) {
	t.Parallel()
	got := string(inventoryYAML(cluster{Masters: []string{"10.0.0.1"}, User: "ops", Port: 2222, KeyFile: "/k/id"}, []string{"10.0.0.1"}))
	want := `defaults: {user: "ops", port: 2222, key: "/k/id"}
groups:
  masters:
    - {address: "10.0.0.1"}
  nodes:
    []
  new:
    - {address: "10.0.0.1"}
`
	if got != want {
		t.Errorf("got:\n%s\nwant:\n%s", got, want)
	}
}
