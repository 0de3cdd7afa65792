package main

import (
	"crypto/sha256"
	"encoding/hex"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// TestPackageCommands drives `sealflow package` as a user would, against a
// loopback file server and registry standing for upstream: exit 2 for bad
// input, a build, inspect, verify, and verify of a damaged package.
func TestPackageCommands(t *testing.T) {
	t.Parallel()
	bin := sealflowBin(t)
	dir := t.TempDir()
	kubeadm := []byte("#!/bin/sh\necho kubeadm\n")
	h := sha256.Sum256(kubeadm)
	files := map[string][]byte{
		"/up/kubeadm":        kubeadm,
		"/up/kubeadm.sha256": []byte(hex.EncodeToString(h[:]) + "\n"),
	}
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		data, ok := files[r.URL.Path]
		if !ok {
			http.NotFound(w, r)
			return
		}
		w.Write(data)
	}))
	defer up.Close()
	reg := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	defer reg.Close()
	regHost := strings.TrimPrefix(reg.URL, "http://")
	img, err := random.Image(512, 1)
	if err != nil {
		t.Fatal(err)
	}
	cf, _ := img.ConfigFile()
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", "amd64"
	if img, err = mutate.ConfigFile(img, cf); err != nil {
		t.Fatal(err)
	}
	ref, _ := name.ParseReference(regHost+"/library/busybox:1.36.1", name.Insecure)
	if err := remote.Write(ref, img); err != nil {
		t.Fatal(err)
	}
	write(t, filepath.Join(dir, "pkg.yaml"), `version: v1.34.4
arch: amd64
files:
  - name: kubeadm
    url: https://upstream.example/kubeadm
    to: bin/kubeadm
images:
  refs: [docker.io/library/busybox:1.36.1]
  sealflow: true
`)
	write(t, filepath.Join(dir, "bad.yaml"), "version: v1.34.4\narch: amd64\nfiles:\n  - name: kubeadm\n    url: https://upstream.example/kubeadm\n    to: /usr/bin/kubeadm\n")
	mirrors := []string{"--mirror", "https://upstream.example=" + up.URL + "/up", "--mirror", "docker.io=" + regHost}

	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"package", "build", "-f", "bad.yaml", "-o", "x.tar.gz"}, "bad.yaml:6:9: \"/usr/bin/kubeadm\" must be a relative path"},
		{[]string{"package", "build", "--version", "v1.2.3", "-o", "x.tar.gz"}, "no package manifest for Kubernetes \"v1.2.3\" is built in"},
		{[]string{"package", "build", "-f", "pkg.yaml", "--arch", "mips", "-o", "x.tar.gz"}, "--arch \"mips\""},
		{[]string{"package", "build", "-f", "pkg.yaml", "--mirror", "nonsense", "-o", "x.tar.gz"}, "write FROM=TO"},
		{[]string{"package", "build", "-f", "missing.yaml"}, "missing.yaml"},
		{[]string{"package", "verify"}, "exactly one PKG"},
		{[]string{"package", "verify", "none.tar.gz"}, "none.tar.gz"},
		{[]string{"package", "inspect", "none.tar.gz"}, "none.tar.gz"},
	} {
		_, stderr, code := sf(t, bin, dir, "", c.args...)
		if code != 2 || !strings.Contains(stderr, c.want) {
			t.Errorf("sealflow %s: exit %d, want 2 and %q\n%s", strings.Join(c.args, " "), code, c.want, stderr)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "x.tar.gz")); err == nil {
		t.Error("a refused build wrote its output")
	}

	args := append([]string{"package", "build", "-f", "pkg.yaml", "--no-cache", "-o", "kube.tar.gz"}, mirrors...)
	stdout, stderr, code := sf(t, bin, dir, "", args...)
	if code != 0 || !strings.Contains(stdout, "kube.tar.gz") || !strings.Contains(stdout, "2 images") {
		t.Fatalf("build: exit %d\n%s\n%s", code, stdout, stderr)
	}
	if !strings.Contains(stderr, "fetched kubeadm") || strings.Contains(stderr, "\x1b[") {
		t.Errorf("build without a terminal: want plain lines per artifact, no escapes:\n%s", stderr)
	}
	stdout, stderr, code = sf(t, bin, dir, "", "package", "inspect", "kube.tar.gz")
	for _, w := range []string{"Kubernetes v1.34.4, linux/amd64", "kube/bin/kubeadm", "docker.io/library/busybox:1.36.1", "docker.io/sealflow/sealflow:", "https://upstream.example/kubeadm.sha256"} {
		if code != 0 || !strings.Contains(stdout, w) {
			t.Errorf("inspect: exit %d, no %q:\n%s%s", code, w, stdout, stderr)
		}
	}
	stdout, stderr, code = sf(t, bin, dir, "", "package", "verify", "kube.tar.gz")
	if code != 0 || !strings.Contains(stdout, "ok: ") {
		t.Errorf("verify: exit %d\n%s%s", code, stdout, stderr)
	}

	// A package that is not what its manifest.json says fails verify with 1.
	data, err := os.ReadFile(filepath.Join(dir, "kube.tar.gz"))
	if err != nil {
		t.Fatal(err)
	}
	cut := filepath.Join(dir, "cut.tar.gz")
	if err := os.WriteFile(cut, data[:len(data)*2/3], 0o644); err != nil {
		t.Fatal(err)
	}
	_, stderr, code = sf(t, bin, dir, "", "package", "verify", "cut.tar.gz")
	if code != 1 || !strings.Contains(stderr, "cut.tar.gz") {
		t.Errorf("verify of a truncated package: exit %d, want 1\n%s", code, stderr)
	}
}
