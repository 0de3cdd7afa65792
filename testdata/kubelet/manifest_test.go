package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// etcdManifest is shaped like kubeadm's etcd static pod.
const etcdManifest = `apiVersion: v1
kind: Pod
metadata:
  annotations:
    kubeadm.kubernetes.io/etcd.advertise-client-urls: https://10.0.0.11:2379
  labels:
    component: etcd
    tier: control-plane
  name: etcd
  namespace: kube-system
spec:
  containers:
  - command:
    - etcd
    - --advertise-client-urls=https://10.0.0.11:2379
    - --data-dir=/var/lib/etcd
    env:
    - name: GOMAXPROCS
      value: "2"
    - name: POD_IP
      valueFrom:
        fieldRef:
          fieldPath: status.podIP
    - name: URL
      value: https://$(POD_IP):2379 $$(POD_IP)
    image: registry.k8s.io/etcd:3.6.4-0
    name: etcd
    readinessProbe:
      httpGet:
        host: 127.0.0.1
        path: /readyz
        port: 2381
        scheme: HTTP
  hostNetwork: true
  terminationGracePeriodSeconds: 5
status: {}
`

func TestParseStaticPod(t *testing.T) {
	t.Parallel()
	env := podEnv{NodeName: "M1", NodeIP: "10.0.0.11", Path: "/usr/bin:/bin", Marker: "MARK"}
	p, err := parseStaticPod("/etc/kubernetes/manifests/etcd.yaml", []byte(etcdManifest), env)
	if err != nil {
		t.Fatal(err)
	}
	type view struct {
		Name, Namespace string
		Grace           string
		Argv, Env       []string
		Dir             string
		Probe           bool
	}
	c := p.Containers[0]
	got := view{p.Name, p.Namespace, p.Grace.String(), c.Argv, c.Env, c.Dir, c.Readiness != nil && c.Readiness.HTTPGet != nil}
	want := view{
		Name: "etcd-m1", Namespace: "kube-system", Grace: "5s",
		Argv: []string{"etcd", "--advertise-client-urls=https://10.0.0.11:2379", "--data-dir=/var/lib/etcd"},
		Env: []string{"PATH=/usr/bin:/bin", "HOSTNAME=M1", "HOME=/root", "MARK=kube-system/etcd-m1/etcd",
			"GOMAXPROCS=2", "POD_IP=10.0.0.11", "URL=https://10.0.0.11:2379 $(POD_IP)"},
		Dir: "/", Probe: true,
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("parseStaticPod (-want +got):\n%s", d)
	}
	if len(p.UID) != 32 {
		t.Errorf("UID %q: want 32 hex digits", p.UID)
	}

	// The UID identifies content, file and node: a change is a new pod.
	same, _ := parseStaticPod("/etc/kubernetes/manifests/etcd.yaml", []byte(etcdManifest), env)
	changed, _ := parseStaticPod("/etc/kubernetes/manifests/etcd.yaml", []byte(strings.Replace(etcdManifest, "--data-dir=/var/lib/etcd", "--data-dir=/srv/etcd", 1)), env)
	other := env
	other.NodeName = "m2"
	onM2, _ := parseStaticPod("/etc/kubernetes/manifests/etcd.yaml", []byte(etcdManifest), other)
	if same.UID != p.UID || changed.UID == p.UID || onM2.UID == p.UID {
		t.Errorf("UIDs: same content %s/%s, changed %s, other node %s: want equal, different, different", p.UID, same.UID, changed.UID, onM2.UID)
	}
}

func TestParseStaticPodErrors(t *testing.T) {
	t.Parallel()
	env := podEnv{NodeName: "m1", NodeIP: "10.0.0.11", Path: "/bin", Marker: "MARK"}
	tests := []struct{ name, manifest, want string }{
		{"not a pod", "apiVersion: v1\nkind: Service\nmetadata: {name: x}\n", `want kind Pod of apiVersion v1, got kind "Service"`},
		{"no name", "apiVersion: v1\nkind: Pod\nspec: {containers: [{name: a, command: [x]}]}\n", "name is needed"},
		{"no command", "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec: {containers: [{name: a, image: nginx}]}\n", `container a: no command: there is no image "nginx"`},
		{"secret env", "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec: {containers: [{name: a, command: [x], env: [{name: E, valueFrom: {secretKeyRef: {name: s, key: k}}}]}]}\n", "env E: only fieldRef"},
		{"bad yaml", "apiVersion: v1\nkind: Pod\n  metadata: [\n", "static pod /m/p.yaml"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := parseStaticPod("/m/p.yaml", []byte(tt.manifest), env)
			if err == nil || !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), "/m/p.yaml") {
				t.Errorf("error = %v, want one naming /m/p.yaml and containing %q", err, tt.want)
			}
		})
	}
}

func TestLoadStaticPodsSkipsHiddenAndBad(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	write := func(name, s string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("etcd.yaml", etcdManifest)
	write(".etcd.yaml.swp", "garbage")
	write("broken.yaml", "kind: Pod\n")
	pods, errs := loadStaticPods(dir, podEnv{NodeName: "m1", Path: "/bin", Marker: "M"})
	if len(pods) != 1 || pods[0].Name != "etcd-m1" {
		t.Errorf("pods = %v, want etcd-m1 only", pods)
	}
	if len(errs) != 1 || !strings.Contains(errs[0].Error(), "broken.yaml") {
		t.Errorf("errs = %v, want one about broken.yaml", errs)
	}
	if pods, errs := loadStaticPods(filepath.Join(dir, "none"), podEnv{}); pods != nil || errs != nil {
		t.Errorf("missing dir: got %v %v, want nothing", pods, errs)
	}
}
