package main

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestParseFlags(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		args    []string
		want    flags
		wantErr string
	}{
		{
			name: "as 10-kubeadm.conf and kubeadm-flags.env pass them",
			args: []string{
				"--bootstrap-kubeconfig=/etc/kubernetes/bootstrap-kubelet.conf", "--kubeconfig=/etc/kubernetes/kubelet.conf",
				"--config=/var/lib/kubelet/config.yaml",
				"--container-runtime-endpoint=unix:///run/containerd/containerd.sock", "--pod-infra-container-image=registry.k8s.io/pause:3.10.1",
				"--node-ip", "10.0.0.11", "--hostname-override=M1",
			},
			want: flags{
				"bootstrap-kubeconfig": "/etc/kubernetes/bootstrap-kubelet.conf", "kubeconfig": "/etc/kubernetes/kubelet.conf",
				"config": "/var/lib/kubelet/config.yaml", "container-runtime-endpoint": "unix:///run/containerd/containerd.sock",
				"pod-infra-container-image": "registry.k8s.io/pause:3.10.1", "node-ip": "10.0.0.11", "hostname-override": "M1",
			},
		},
		{name: "bare boolean", args: []string{"--fail-swap-on", "--rotate-certificates=false"}, want: flags{"fail-swap-on": "true", "rotate-certificates": "false"}},
		{name: "last value wins", args: []string{"--v=2", "--v=5"}, want: flags{"v": "5"}},
		{name: "no flags", args: nil, want: flags{}},
		{name: "unknown flag", args: []string{"--kubeconfig=x", "--no-such-flag=1"}, wantErr: "unknown flag: --no-such-flag"},
		{name: "missing value", args: []string{"--kubeconfig"}, wantErr: "flag needs an argument: --kubeconfig"},
		{name: "bad boolean", args: []string{"--fail-swap-on=yes"}, wantErr: `invalid argument "yes" for --fail-swap-on`},
		{name: "positional", args: []string{"run"}, wantErr: `unexpected argument "run"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := parseFlags(tt.args)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("parseFlags(%q) error = %v, want one containing %q", tt.args, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("parseFlags(%q): %v", tt.args, err)
			}
			if d := cmp.Diff(tt.want, got); d != "" {
				t.Errorf("parseFlags(%q) (-want +got):\n%s", tt.args, d)
			}
		})
	}
}
