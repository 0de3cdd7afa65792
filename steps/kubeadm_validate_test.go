package steps

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sealflow/sealflow/internal/kubelab"
)

// TestKubeadmConfigValidate runs the real `kubeadm config validate` (v1.34,
// from the lab's offline package) on what sealflow renders: the v1beta4
// init and join configurations as they are, and the v1beta3 ones (rendered
// for 1.22–1.30) with their kubernetesVersion raised to what this kubeadm
// deploys, so that the real parser checks their fields. v1beta1/v1beta2 are
// checked against golden files only.
func TestKubeadmConfigValidate(t *testing.T) {
	if testing.Short() {
		t.Skip("needs the offline package's kubeadm")
	}
	pkg := kubelab.ForTest(t)
	dir := t.TempDir()
	if out, err := exec.Command("tar", "-xzf", pkg, "-C", dir, "kube/bin/kubeadm").CombinedOutput(); err != nil {
		t.Fatalf("extract kubeadm: %v %s", err, out)
	}
	kubeadm := filepath.Join(dir, "kube", "bin", "kubeadm")
	validate := func(name string, cfg []byte) {
		t.Helper()
		path := filepath.Join(dir, strings.ReplaceAll(name, "/", "-")+".yaml")
		if err := os.WriteFile(path, cfg, 0o600); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		out, err := exec.CommandContext(ctx, kubeadm, "config", "validate", "--config", path).CombinedOutput()
		if err != nil || !strings.Contains(string(out), "ok") {
			t.Errorf("kubeadm config validate %s: %v\n%s\n%s", name, err, out, cfg)
		}
	}
	for _, tc := range []struct{ version, deploy string }{{"v1.34.4", ""}, {"v1.30.2", "v1.34.4"}} {
		v, err := parseKubeVersion(tc.version)
		if err != nil {
			t.Fatal(err)
		}
		raise := func(b []byte) []byte {
			if tc.deploy == "" {
				return b
			}
			return []byte(strings.ReplaceAll(string(b), "kubernetesVersion: "+tc.version, "kubernetesVersion: "+tc.deploy))
		}
		init, err := RenderKubeadmConfig(goldenParams(tc.version))
		if err != nil {
			t.Fatal(err)
		}
		if tc.deploy != "" && !strings.Contains(string(init), "kubernetesVersion: "+tc.version) {
			t.Fatalf("the %s config has no kubernetesVersion line to raise:\n%s", tc.version, init)
		}
		validate("init-"+v.APIVersion(), raise(init))
		// kube-proxy without IPVS and the kubelet's own fields, as the lab sets them.
		lab := goldenParams(tc.version)
		lab.ProxyMode, lab.KubeletConfig = "nftables", "{failCgroupV1: false, cgroupRoot: /, cgroupDriver: systemd}"
		labInit, err := RenderKubeadmConfig(lab)
		if err != nil {
			t.Fatal(err)
		}
		validate("init-nftables-kubelet-"+v.APIVersion(), raise(labInit))
		for _, master := range []bool{true, false} {
			p := joinParams{Version: v, Endpoint: ControlPlaneAddress, Token: testToken, CACertHash: testHash, NodeName: "n"}
			name := "join-node-" + v.APIVersion()
			if master {
				p.CertificateKey, p.ControlPlane, p.AdvertiseAddress = testKey, true, "10.0.0.3"
				name = "join-master-" + v.APIVersion()
			}
			join, err := renderJoinConfig(p)
			if err != nil {
				t.Fatal(err)
			}
			validate(name, join)
		}
	}
	// A user's join configuration (the join kind's kubeadm_config) as
	// sealflow fills it, for a master and a worker.
	v, err := parseKubeVersion("v1.34.4")
	if err != nil {
		t.Fatal(err)
	}
	userFile := filepath.Join(dir, "user-join.yaml")
	if err := os.WriteFile(userFile, []byte(`apiVersion: kubeadm.k8s.io/v1beta4
kind: JoinConfiguration
discovery:
  bootstrapToken:
    apiServerEndpoint: 10.0.0.9:6443
nodeRegistration:
  criSocket: unix:///run/containerd/containerd.sock
  kubeletExtraArgs:
    - name: node-labels
      value: zone=a
timeouts:
  discovery: 10m0s
`), 0o600); err != nil {
		t.Fatal(err)
	}
	user, err := readUserJoinConfig(userFile, v)
	if err != nil {
		t.Fatal(err)
	}
	for _, master := range []bool{true, false} {
		p := joinParams{Version: v, Endpoint: ControlPlaneAddress, Token: testToken, CACertHash: testHash, NodeName: "n"}
		name := "user-join-node"
		if master {
			p.CertificateKey, p.ControlPlane, p.AdvertiseAddress = testKey, true, "10.0.0.3"
			name = "user-join-master"
		}
		cfg, _, _, err := user.merged(p)
		if err != nil {
			t.Fatal(err)
		}
		validate(name, cfg)
	}
}
