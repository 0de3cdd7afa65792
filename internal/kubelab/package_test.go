package kubelab

import (
	"context"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sealflow/sealflow/internal/kubepkg"
)

// TestRealPackage checks the lab's real package, built by `sealflow package
// build` through loopback mirrors: it verifies, it holds every file of the
// built-in manifest, and its kubeadm images are exactly what its own
// kubeadm names for the version, each from the upstream registry.
func TestRealPackage(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the real offline package")
	}
	pkg := ForTest(t)
	pm, err := kubepkg.Verify(pkg)
	if err != nil {
		t.Fatal(err)
	}
	if pm.Kubernetes != "v1.34.4" || pm.Arch != "amd64" {
		t.Errorf("package of %s/%s", pm.Kubernetes, pm.Arch)
	}
	var paths []string
	for _, f := range pm.Files {
		paths = append(paths, f.Path)
	}
	for _, want := range []string{"bin/kubeadm", "bin/kubelet", "bin/kubectl", "bin/containerd", "bin/containerd-shim-runc-v2",
		"bin/ctr", "bin/runc", "bin/crictl", "cni/bin/bridge", "cni/bin/host-local", "cni/bin/portmap", "cni/bin/loopback",
		"manifests/kube-flannel.yml", "shell/init.sh", "shell/clean.sh", "images/images.tar"} {
		if !slices.Contains(paths, want) {
			t.Errorf("the package has no kube/%s", want)
		}
	}
	for _, s := range pm.Sources {
		if s.Verified == "unverified" && s.Name != "cni" {
			t.Errorf("%s was not verified against a checksum", s.Name)
		}
		if !strings.HasPrefix(s.URL, "https://dl.k8s.io/") && !strings.HasPrefix(s.URL, "https://github.com/") {
			t.Errorf("%s is recorded with %s, not its upstream URL", s.Name, s.URL)
		}
	}
	dir := t.TempDir()
	if out, err := exec.Command("tar", "-xzf", pkg, "-C", dir, "kube/bin/kubeadm").CombinedOutput(); err != nil {
		t.Fatalf("extract kubeadm: %v %s", err, out)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, filepath.Join(dir, "kube", "bin", "kubeadm"), "config", "images", "list", "--kubernetes-version", "v1.34.4").Output()
	if err != nil {
		t.Fatal(err)
	}
	want := strings.Fields(string(out))
	var got, from []string
	for _, im := range pm.Images {
		if im.From == "kubeadm" {
			got = append(got, im.Ref)
		}
		from = append(from, im.From)
		if !strings.HasPrefix(im.Digest, "sha256:") {
			t.Errorf("%s has no digest", im.Ref)
		}
		if strings.HasSuffix(im.Ref, ":latest") {
			t.Errorf("%s is tagged latest", im.Ref)
		}
	}
	slices.Sort(want)
	slices.Sort(got)
	if !slices.Equal(want, got) {
		t.Errorf("kubeadm's images in the package %v, kubeadm names %v", got, want)
	}
	for _, f := range []string{"cni", "refs", "sealflow"} {
		if !slices.Contains(from, f) {
			t.Errorf("no image from %s in the package", f)
		}
	}
}
