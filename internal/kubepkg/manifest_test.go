package kubepkg

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-containerregistry/pkg/name"

	"github.com/sealflow/sealflow/internal/version"
)

func TestDefaultManifest(t *testing.T) {
	for _, v := range DefaultVersions() {
		for _, arch := range Arches {
			m, err := DefaultManifest(v, arch)
			if err != nil {
				t.Fatalf("%s %s: %v", v, arch, err)
			}
			var dests []string
			for _, f := range m.Files {
				if strings.Contains(f.URL, "${") || !strings.Contains(f.URL, arch) && f.Name != "cni" {
					t.Errorf("%s: url %s is not expanded for %s", f.Name, f.URL, arch)
				}
				if f.SHA256 == "" && f.ChecksumURL == "" && !f.Unverified {
					t.Errorf("%s: no way to verify it", f.Name)
				}
				dests = append(dests, f.Name)
			}
			want := []string{"kubeadm", "kubelet", "kubectl", "containerd", "runc", "cni-plugins", "crictl", "cni"}
			if d := cmp.Diff(want, dests); d != "" {
				t.Errorf("files (-want +got):\n%s", d)
			}
			if !m.Images.Kubeadm || !m.Images.Sealflow || len(m.Images.FromFiles) != 1 {
				t.Errorf("images: %+v", m.Images)
			}
		}
	}
	if _, err := DefaultManifest("v1.10.0", "amd64"); err == nil || !strings.Contains(err.Error(), "built in: v1.34.4") {
		t.Errorf("unknown version: %v", err)
	}
}

func TestManifestErrorsHavePositions(t *testing.T) {
	base := "version: v1.34.4\narch: amd64\nfiles:\n  - name: kubeadm\n    url: https://dl.example/kubeadm\n    to: bin/kubeadm\n"
	cases := []struct {
		name, doc, want string
	}{
		{"unknown key", base + "extra: 1\n", "m.yaml:7:1: unknown field \"extra\""},
		{"bad version", strings.Replace(base, "v1.34.4", "1.34", 1), "m.yaml:1:10: version \"1.34\" is not a Kubernetes version"},
		{"bad arch", strings.Replace(base, "amd64", "mips", 1), "m.yaml:2:7: arch \"mips\" is not one of amd64, arm64"},
		{"bad url", strings.Replace(base, "https://dl.example/kubeadm", "ftp://x/kubeadm", 1), "m.yaml:5:10: url \"ftp://x/kubeadm\" is not an http(s) URL"},
		{"escaping path", strings.Replace(base, "bin/kubeadm", "../kubeadm", 1), "m.yaml:6:9: \"../kubeadm\" must be a relative path inside the package"},
		{"reserved path", strings.Replace(base, "bin/kubeadm", "shell/init.sh", 1), "m.yaml:6:9: \"shell/init.sh\" is written by the builder itself"},
		{"duplicate name", base + "  - name: kubeadm\n    url: https://dl.example/k2\n    to: bin/k2\n", "m.yaml:7:11: file name \"kubeadm\" is used twice"},
		{"to and unpack", base + "    unpack: {to: bin}\n", "m.yaml:7:13: file kubeadm has both to: and unpack:"},
		{"bad sha256", base + "    sha256: abc\n", "m.yaml:7:13: sha256 \"abc\" is not 64 lowercase hex digits"},
		{"unknown from_files", base + "images:\n  from_files: [cni]\n", "m.yaml:8:16: from_files names \"cni\", which is not a file of the manifest"},
		{"bad image", base + "images:\n  refs: [\"UPPER/x:1\"]\n", "m.yaml:8:10: image \"UPPER/x:1\""},
		{"syntax", "version: [\n", "m.yaml:1:"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := ParseManifest("m.yaml", []byte(c.doc), "")
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("error %v\nwant %q", err, c.want)
			}
		})
	}
	if _, err := ParseManifest("m.yaml", []byte(base), ""); err != nil {
		t.Errorf("the base manifest: %v", err)
	}
	if _, err := ParseManifest("m.yaml", []byte(strings.Repeat("#", maxManifestSize+1)), ""); err == nil {
		t.Error("an oversized manifest was read")
	}
}

func TestMirrors(t *testing.T) {
	m, err := ParseMirrors([]string{
		"https://dl.k8s.io=http://127.0.0.1:8080/k8s",
		"https://dl.k8s.io/release/v1.34.4=http://127.0.0.1:8080/pinned",
		"registry.k8s.io=127.0.0.1:5000",
		"docker.io=mirror.example:5000/hub",
	})
	if err != nil {
		t.Fatal(err)
	}
	for in, want := range map[string]string{
		"https://dl.k8s.io/release/v1.34.3/bin/linux/amd64/kubeadm": "http://127.0.0.1:8080/k8s/release/v1.34.3/bin/linux/amd64/kubeadm",
		"https://dl.k8s.io/release/v1.34.4/bin/linux/amd64/kubeadm": "http://127.0.0.1:8080/pinned/bin/linux/amd64/kubeadm",
		"https://dl.k8s.io.evil/x":                                  "https://dl.k8s.io.evil/x",
		"https://github.com/x":                                      "https://github.com/x",
	} {
		if got := m.URL(in); got != want {
			t.Errorf("URL(%s) = %s, want %s", in, got, want)
		}
	}
	for in, want := range map[string]string{
		"registry.k8s.io/pause:3.10.1":                           "127.0.0.1:5000/pause:3.10.1",
		"busybox:1.36.1":                                         "mirror.example:5000/hub/library/busybox:1.36.1",
		"ghcr.io/flannel-io/flannel:v1":                          "ghcr.io/flannel-io/flannel:v1",
		"registry.k8s.io/etcd@sha256:" + strings.Repeat("a", 64): "127.0.0.1:5000/etcd@sha256:" + strings.Repeat("a", 64),
	} {
		r, err := name.ParseReference(in)
		if err != nil {
			t.Fatal(err)
		}
		got, err := m.Ref(r)
		if err != nil {
			t.Fatal(err)
		}
		if got.String() != want {
			t.Errorf("Ref(%s) = %s, want %s", in, got, want)
		}
	}
	for _, bad := range []string{"nothing", "=x", "https://a=ftp://b", "registry.k8s.io/path=x"} {
		if _, err := ParseMirrors([]string{bad}); err == nil {
			t.Errorf("--mirror %q was accepted", bad)
		}
	}
}

func TestFileImagesAndFullNames(t *testing.T) {
	refs, err := fileImages([]byte("a:\n  image: x/a:1\n  list:\n  - image: \"x/b:2\"\n---\nimage: x/a:1\nnot_image: x/c:3\n"))
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff([]string{"x/a:1", "x/b:2"}, refs); d != "" {
		t.Errorf("(-want +got):\n%s", d)
	}
	for in, want := range map[string]string{
		"busybox:1.36.1":               "docker.io/library/busybox:1.36.1",
		"docker.io/library/busybox:1":  "docker.io/library/busybox:1",
		"registry.k8s.io/pause:3.10.1": "registry.k8s.io/pause:3.10.1",
	} {
		if got := fullName(in); got != want {
			t.Errorf("fullName(%s) = %s, want %s", in, got, want)
		}
	}
	if got := version.ImageOf("v0.3.0-4-gabc+dirty"); got != "docker.io/sealflow/sealflow:v0.3.0-4-gabc-dirty" {
		t.Errorf("ImageOf = %s", got)
	}
}
