package podspec

import (
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/goccy/go-yaml"
	"github.com/google/go-cmp/cmp"

	"github.com/sealflow/sealflow/internal/version"
)

func careOpts(rs ...string) Options {
	o := Options{VS: netip.MustParseAddrPort("10.103.97.2:6443")}
	for _, r := range rs {
		o.RS = append(o.RS, netip.MustParseAddrPort(r))
	}
	return o
}

func TestStaticPod(t *testing.T) {
	t.Parallel()
	got, err := StaticPod(PodOptions{Image: "registry.local/sealflow:v1", Care: careOpts("192.168.0.11:6443", "192.168.0.12:6443")})
	if err != nil {
		t.Fatal(err)
	}
	want := `apiVersion: v1
kind: Pod
metadata:
  name: kube-lvscare
  namespace: kube-system
  labels:
    component: kube-lvscare
    tier: control-plane
spec:
  hostNetwork: true
  priorityClassName: system-node-critical
  containers:
    - name: kube-lvscare
      image: registry.local/sealflow:v1
      imagePullPolicy: IfNotPresent
      command:
        - sealflow
        - lvscare
        - care
        - --vs
        - 10.103.97.2:6443
        - --rs
        - 192.168.0.11:6443
        - --rs
        - 192.168.0.12:6443
      securityContext:
        privileged: true
      volumeMounts:
        - name: lib-modules
          mountPath: /lib/modules
          readOnly: true
        - name: lvscare-state
          mountPath: /run/sealflow
          readOnly: false
  volumes:
    - name: lib-modules
      hostPath:
        path: /lib/modules
        type: Directory
    - name: lvscare-state
      hostPath:
        path: /run/sealflow
        type: DirectoryOrCreate
`
	if diff := cmp.Diff(want, string(got)); diff != "" {
		t.Errorf("manifest (-want +got):\n%s", diff)
	}
}

func TestStaticPodCarriesOptions(t *testing.T) {
	t.Parallel()
	o := careOpts("192.168.0.11:6443")
	o.Health = Health{Scheme: "http", Path: "/ready z", Status: StatusRange{200, 204}, Timeout: 3 * time.Second, CAFile: "/etc/kubernetes/pki/ca.crt"}
	o.Interval, o.Fall, o.Rise, o.Mode = 2*time.Second, 3, 2, ModeNFTables
	o.LockDir = "/var/run/lvs"
	out, err := StaticPod(PodOptions{Care: o})
	if err != nil {
		t.Fatal(err)
	}
	var pod struct {
		Spec struct {
			HostNetwork bool `yaml:"hostNetwork"`
			Containers  []struct {
				Image           string   `yaml:"image"`
				Command         []string `yaml:"command"`
				SecurityContext struct {
					Privileged bool `yaml:"privileged"`
				} `yaml:"securityContext"`
				VolumeMounts []struct {
					MountPath string `yaml:"mountPath"`
				} `yaml:"volumeMounts"`
			} `yaml:"containers"`
		} `yaml:"spec"`
	}
	if err := yaml.Unmarshal(out, &pod); err != nil {
		t.Fatalf("manifest does not parse: %v\n%s", err, out)
	}
	c := pod.Spec.Containers[0]
	want := []string{"sealflow", "lvscare", "care", "--vs", "10.103.97.2:6443", "--rs", "192.168.0.11:6443",
		"--health-schem", "http", "--health-path", "/ready z", "--health-status", "200-204",
		"--health-timeout", "3s", "--health-ca", "/etc/kubernetes/pki/ca.crt", "--interval", "2s",
		"--rise", "2", "--fall", "3", "--mode", "nftables", "--lock-dir", "/var/run/lvs"}
	if diff := cmp.Diff(want, c.Command); diff != "" {
		t.Errorf("command (-want +got):\n%s", diff)
	}
	if !pod.Spec.HostNetwork || !c.SecurityContext.Privileged || c.Image != version.Image() {
		t.Errorf("pod: hostNetwork %v privileged %v image %q", pod.Spec.HostNetwork, c.SecurityContext.Privileged, c.Image)
	}
	// The lock and pin directory the daemon is told of is the host's.
	if len(c.VolumeMounts) != 3 || c.VolumeMounts[1].MountPath != "/var/run/lvs" || c.VolumeMounts[2].MountPath != "/etc/kubernetes/pki" {
		t.Errorf("the lock directory and the CA file's directory must be mounted: %+v", c.VolumeMounts)
	}
}

func TestManifestsRejectBadOptions(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		o    Options
		want string
	}{
		{"no rs", careOpts(), "--rs"},
		{"run once", func() Options { o := careOpts("192.168.0.11:6443"); o.RunOnce = true; return o }(), "run-once"},
		{"bad scheme", func() Options { o := careOpts("192.168.0.11:6443"); o.Health.Scheme = "ftp"; return o }(), "--health-schem"},
	} {
		if _, err := StaticPod(PodOptions{Care: tc.o}); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("StaticPod %s: %v, want an error naming %s", tc.name, err, tc.want)
		}
		if _, err := SystemdUnit(UnitOptions{Care: tc.o}); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("SystemdUnit %s: %v, want an error naming %s", tc.name, err, tc.want)
		}
	}
	if _, err := SystemdUnit(UnitOptions{Binary: "sealflow", Care: careOpts("192.168.0.11:6443")}); err == nil {
		t.Error("SystemdUnit with a relative binary: no error")
	}
}

func TestSystemdUnit(t *testing.T) {
	t.Parallel()
	o := careOpts("192.168.0.11:6443", "192.168.0.12:6443")
	o.Health.Path = "/a b%$x"
	got, err := SystemdUnit(UnitOptions{Care: o})
	if err != nil {
		t.Fatal(err)
	}
	want := `[Unit]
Description=lvscare: virtual server 10.103.97.2:6443 kept true
After=network-online.target
Wants=network-online.target

[Service]
ExecStart=/usr/local/bin/sealflow lvscare care --vs 10.103.97.2:6443 --rs 192.168.0.11:6443 --rs 192.168.0.12:6443 --health-path "/a b%%$$x"
# SIGTERM leaves the rules in place; ` + "`sealflow lvscare clean`" + ` removes them.
KillSignal=SIGTERM
Restart=always
RestartSec=2

[Install]
WantedBy=multi-user.target
`
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("unit (-want +got):\n%s", diff)
	}
}
