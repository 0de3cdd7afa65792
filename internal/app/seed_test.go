package app

import (
	"context"
	"os"
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

// A bad input of init or join is found before any host is touched: exit 2
// with every problem, no state written, no host dialed (port 1 would be
// refused, a failed task, exit 1).
func TestSeedChecksInputsFirst(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	state := dir + "/state"
	var stderr strings.Builder
	streams := IO{Stdin: strings.NewReader(""), Stdout: &strings.Builder{}, Stderr: &stderr}
	o := SeedOptions{
		ExecOptions: ExecOptions{StateDir: state, Parallel: 4, Output: "plain"},
		Masters:     []string{"127.0.0.1"}, Port: 1,
		Pkg: dir + "/missing.tar.gz", KubeadmConfig: dir, KubeadmJoinConfig: dir + "/join.yaml", VIP: "10.103.97", PodCIDR: "10.244.0.0",
		Version: "v1.34.4",
	}
	err := Init(context.Background(), o, streams)
	if Code(err) != ExitInvalid {
		t.Fatalf("init: %v (exit %d), want exit 2", err, Code(err))
	}
	for _, want := range []string{
		"init: nothing was done on any host",
		"--pkg " + dir + "/missing.tar.gz: no such file or directory",
		"--kubeadm-config " + dir + ": not a regular file",
		"--kubeadm-join-config " + dir + "/join.yaml: no such file or directory",
		`--vip "10.103.97": want an IPv4 address`,
		`--podcidr "10.244.0.0": want a CIDR`,
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error:\n%v\nwant it to say %q", err, want)
		}
	}
	if _, err := os.Stat(state); !os.IsNotExist(err) {
		t.Errorf("the state directory was written (%v)", err)
	}
}

// --kubeadm-join-config becomes the plans' kubeadm_join_config, as an
// absolute path; a later join without the flag keeps the one init got.
func TestKubeadmJoinConfigVar(t *testing.T) {
	t.Parallel()
	init := seedVars(SeedOptions{KubeadmJoinConfig: "/etc/sealflow/join.yaml"}, nil)
	if got := init["kubeadm_join_config"]; got != "/etc/sealflow/join.yaml" {
		t.Errorf("init: kubeadm_join_config = %q", got)
	}
	if got := seedVars(SeedOptions{}, init)["kubeadm_join_config"]; got != "/etc/sealflow/join.yaml" {
		t.Errorf("join without the flag: kubeadm_join_config = %q, want init's", got)
	}
	if got := seedVars(SeedOptions{KubeadmJoinConfig: "/other.yaml"}, init)["kubeadm_join_config"]; got != "/other.yaml" {
		t.Errorf("join with the flag: kubeadm_join_config = %q, want its own", got)
	}
}
