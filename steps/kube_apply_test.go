package steps

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The manifest reaches kubectl apply with every replacement made, the
// admin kubeconfig by default; a text missing from the manifest fails.
func TestKubeApply(t *testing.T) {
	t.Parallel()
	l := newLab(t)
	ctx := context.Background()
	// kubectl records its arguments and the manifest it is given.
	l.fake(t, "kubectl", `printf '%s\n' "$@" >"$FAKE_DIR/kubectl.args"
cat >"$FAKE_DIR/kubectl.stdin"
`)
	manifest := filepath.Join(l.dir, "kube-flannel.yml")
	orig := "net-conf.json: |\n  {\"Network\": \"10.244.0.0/16\", \"Backend\": {\"Type\": \"vxlan\"}}\n# 10.244.0.0/16 again\nimage: flannel:v1\n"
	if err := os.WriteFile(manifest, []byte(orig), 0o644); err != nil {
		t.Fatal(err)
	}
	k := kubeApplyKind()
	s, err := newKubeApply(Params{"manifest": manifest, "replace": map[string]string{
		"10.244.0.0/16": "100.64.0.0/10", "10.244.0.0": "never used alone", "flannel:v1": "flannel:" + hostile,
	}}, l.paths)
	if err != nil {
		t.Fatal(err)
	}
	if !k.Rerunnable {
		t.Error("kube-apply is not rerunnable")
	}
	for run := 0; run < 2; run++ { // again: the same apply
		if _, err := s.Run(ctx, l.target()); err != nil {
			t.Fatalf("run %d: %v\nlog:\n%s", run, err, l.log.String())
		}
		got, _ := os.ReadFile(filepath.Join(l.dir, "kubectl.stdin"))
		want := "net-conf.json: |\n  {\"Network\": \"100.64.0.0/10\", \"Backend\": {\"Type\": \"vxlan\"}}\n# 100.64.0.0/10 again\nimage: flannel:" + hostile + "\n"
		if string(got) != want {
			t.Errorf("run %d: kubectl applied\n%s\nwant\n%s", run, got, want)
		}
		args, _ := os.ReadFile(filepath.Join(l.dir, "kubectl.args"))
		if w := "--kubeconfig\n" + filepath.Join(l.paths.Kube, "admin.conf") + "\n--request-timeout=60s\napply\n-f\n-\n"; string(args) != w {
			t.Errorf("kubectl arguments:\n%s\nwant\n%s", args, w)
		}
	}
	if b, _ := os.ReadFile(manifest); string(b) != orig {
		t.Errorf("the manifest on the host changed:\n%s", b)
	}

	s, err = newKubeApply(Params{"manifest": manifest, "replace": map[string]string{"10.1.0.0/16": "x"}}, l.paths)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Run(ctx, l.target()); err == nil || !strings.Contains(err.Error(), `has no "10.1.0.0/16"`) {
		t.Errorf("a replacement missing from the manifest: %v", err)
	}
	for _, p := range []Params{{"manifest": "relative.yml"}, {"manifest": manifest, "replace": map[string]string{"": "x"}}} {
		if _, err := newKubeApply(p, l.paths); err == nil {
			t.Errorf("%v accepted", p)
		}
	}
	l.fake(t, "kubectl", "echo refused >&2; exit 1\n")
	s, _ = newKubeApply(Params{"manifest": manifest}, l.paths)
	if _, err := s.Run(ctx, l.target()); err == nil || !strings.Contains(err.Error(), "kubectl apply -f "+manifest) {
		t.Errorf("a failing kubectl: %v", err)
	}
}
