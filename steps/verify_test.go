package steps

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

func TestVerifyParams(t *testing.T) {
	t.Parallel()
	s, err := verifyKind().New(Params{})
	if err != nil {
		t.Fatal(err)
	}
	env := s.(*verify).env()
	if env["SF_IMAGE"] != DefaultToolbox || env["SF_NS"] != "sealflow-verify" || env["SF_TIMEOUT"] != "300" || env["SF_VIP"] != DefaultVIP {
		t.Errorf("defaults: %v", env)
	}
	for _, c := range []struct {
		p    Params
		want string
	}{
		{Params{"vip": "nope"}, "vip"},
		{Params{"namespace": "kube-system"}, "namespace of its own"},
		{Params{"namespace": "Bad_NS"}, "namespace"},
		{Params{"image": "a b"}, "image"},
		{Params{"timeout": "forever"}, "timeout"},
		{Params{"timeout": "3h"}, "timeout"},
		{Params{"kubeconfig": "relative.conf"}, "kubeconfig"},
		{Params{"daemonsets": []string{"kube-proxy"}}, "NAMESPACE/NAME"},
		{Params{"daemonsets": []string{"kube-system/a;b"}}, "NAMESPACE/NAME"},
	} {
		if _, err := verifyKind().New(c.p); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v: error %v, want one about %s", c.p, err, c.want)
		}
	}
}

// TestVerifyScriptParses checks the script with the shells a host may have
// as sh; the checks themselves run against a real cluster in the HA tests.
func TestVerifyScriptParses(t *testing.T) {
	t.Parallel()
	f := filepath.Join(t.TempDir(), "verify.sh")
	if err := os.WriteFile(f, []byte(verifyScript), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, sh := range []string{"sh", "dash", "bash"} {
		p, err := exec.LookPath(sh)
		if err != nil {
			continue
		}
		if out, err := exec.Command(p, "-n", f).CombinedOutput(); err != nil {
			t.Errorf("%s -n: %v\n%s", sh, err, out)
		}
	}
	if got := failures("CHECK NODE RESULT\nnode-ready  w1  FAIL: NotReady\ndns  m1  ok\n"); got != "1 check failed: node-ready w1: NotReady" {
		t.Errorf("failures = %q", got)
	}
	table := "CHECK NODE RESULT\n"
	for i := range 7 {
		table += fmt.Sprintf("daemonset      n%d     FAIL: no ready pod of kube-flannel/kube-flannel-ds\n", i)
	}
	if got, want := failures(table), "7 checks failed: daemonset n0: no ready pod of kube-flannel/kube-flannel-ds; "; !strings.HasPrefix(got, want) || !strings.HasSuffix(got, "; and 2 more (see the log)") {
		t.Errorf("failures = %q", got)
	}
	if got := failures("CHECK NODE RESULT\ndns  m1  ok\n"); got != "" {
		t.Errorf("failures of a table without one = %q", got)
	}
}
