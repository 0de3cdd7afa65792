package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// kubeadmKubeletConfig is (part of) what kubeadm writes to
// /var/lib/kubelet/config.yaml.
const kubeadmKubeletConfig = `apiVersion: kubelet.config.k8s.io/v1beta1
authentication:
  anonymous:
    enabled: false
  x509:
    clientCAFile: /etc/kubernetes/pki/ca.crt
cgroupDriver: systemd
clusterDNS:
- 10.96.0.10
clusterDomain: cluster.local
containerRuntimeEndpoint: ""
healthzBindAddress: 127.0.0.1
healthzPort: 10248
kind: KubeletConfiguration
rotateCertificates: true
staticPodPath: /etc/kubernetes/manifests
syncFrequency: 0s
fileCheckFrequency: 0s
nodeStatusUpdateFrequency: 0s
`

func TestLoadOptions(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	cfg := filepath.Join(dir, "config.yaml")
	if err := os.WriteFile(cfg, []byte(kubeadmKubeletConfig), 0o644); err != nil {
		t.Fatal(err)
	}
	bad := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(bad, []byte("apiVersion: v1\nkind: Pod\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	type view struct {
		NodeName, NodeIP, StaticPodPath, HealthzAddr, CertDir string
		Rotate                                                bool
		Taints                                                []taint
		Labels                                                map[string]string
		FileCheck, StatusUpdate                               time.Duration
	}
	tests := []struct {
		name    string
		f       flags
		want    view
		wantErr string
	}{
		{
			name: "kubeadm's config",
			f:    flags{"config": cfg, "hostname-override": "M1", "node-ip": "10.1.2.3"},
			want: view{NodeName: "m1", NodeIP: "10.1.2.3", StaticPodPath: "/etc/kubernetes/manifests", HealthzAddr: "127.0.0.1:10248",
				CertDir: "/var/lib/kubelet/pki", Rotate: true, Labels: map[string]string{}, FileCheck: 20 * time.Second, StatusUpdate: 10 * time.Second},
		},
		{
			name: "flags override the file",
			f: flags{"config": cfg, "hostname-override": "n1", "node-ip": "10.1.2.4", "pod-manifest-path": "/srv/m", "healthz-port": "20248",
				"root-dir": "/srv/kubelet", "register-with-taints": "a=b:NoSchedule,c:NoExecute", "node-labels": "x=y,z="},
			want: view{NodeName: "n1", NodeIP: "10.1.2.4", StaticPodPath: "/srv/m", HealthzAddr: "127.0.0.1:20248", CertDir: "/srv/kubelet/pki", Rotate: true,
				Taints: []taint{{Key: "a", Value: "b", Effect: "NoSchedule"}, {Key: "c", Effect: "NoExecute"}},
				Labels: map[string]string{"x": "y", "z": ""}, FileCheck: 20 * time.Second, StatusUpdate: 10 * time.Second},
		},
		{name: "not a kubelet config", f: flags{"config": bad, "node-ip": "10.1.2.3"}, wantErr: "want kind KubeletConfiguration"},
		{name: "missing config", f: flags{"config": filepath.Join(dir, "nope.yaml"), "node-ip": "10.1.2.3"}, wantErr: "load kubelet config file"},
		{name: "bad node IP", f: flags{"node-ip": "m1"}, wantErr: `--node-ip "m1" is not an IP address`},
		{name: "bad taint", f: flags{"node-ip": "10.1.2.3", "register-with-taints": "a=b:Sometimes"}, wantErr: `effect "Sometimes"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			o, err := loadOptions(tt.f, "v1.34.4")
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("loadOptions error = %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got := view{o.NodeName, o.NodeIP, o.StaticPodPath, o.HealthzAddr, o.CertDir, o.RotateCertificates, o.Taints, o.Labels, o.FileCheck, o.StatusUpdate}
			if d := cmp.Diff(tt.want, got); d != "" {
				t.Errorf("loadOptions (-want +got):\n%s", d)
			}
		})
	}
}
