package kubepkg

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"testing/fstest"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/sealflow/sealflow/internal/transport"
)

// upstream is a loopback server holding files at their upstream paths
// (dl.example/...), with switches to break it the ways real servers break.
type upstream struct {
	t     *testing.T
	srv   *httptest.Server
	mu    sync.Mutex
	files map[string][]byte
	// cutOnce: the first GET of this path sends half the body, then drops.
	cutOnce map[string]bool
	// block: GETs of this path wait until the request is cancelled.
	block    map[string]chan struct{}
	requests map[string][]string // path -> Range headers seen
}

func newUpstream(t *testing.T) *upstream {
	u := &upstream{t: t, files: map[string][]byte{}, cutOnce: map[string]bool{}, block: map[string]chan struct{}{}, requests: map[string][]string{}}
	u.srv = httptest.NewServer(http.HandlerFunc(u.serve))
	t.Cleanup(u.srv.Close)
	return u
}

func (u *upstream) serve(w http.ResponseWriter, r *http.Request) {
	u.mu.Lock()
	data, ok := u.files[r.URL.Path]
	cut := u.cutOnce[r.URL.Path]
	delete(u.cutOnce, r.URL.Path)
	block := u.block[r.URL.Path]
	u.requests[r.URL.Path] = append(u.requests[r.URL.Path], r.Header.Get("Range"))
	u.mu.Unlock()
	if block != nil {
		close(block)
		<-r.Context().Done()
		return
	}
	if !ok {
		http.NotFound(w, r)
		return
	}
	if cut {
		w.Header().Set("Content-Length", fmt.Sprint(len(data)))
		w.WriteHeader(http.StatusOK)
		w.Write(data[:len(data)/2])
		w.(http.Flusher).Flush()
		hj, ok := w.(http.Hijacker)
		if !ok {
			u.t.Error("cannot hijack")
			return
		}
		c, _, _ := hj.Hijack()
		c.Close()
		return
	}
	http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(data))
}

// put adds a file and its URL.sha256.
func (u *upstream) put(p string, data []byte) {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.files[p] = data
	u.files[p+".sha256"] = []byte(sum(data) + "\n")
}

func (u *upstream) seen(p string) []string {
	u.mu.Lock()
	defer u.mu.Unlock()
	return append([]string(nil), u.requests[p]...)
}

func sum(data []byte) string {
	h := sha256.Sum256(data)
	return hex.EncodeToString(h[:])
}

// tgz makes a gzip'd tarball of name -> content (mode 0755).
func tgz(t *testing.T, files map[string]string, order ...string) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	tw := tar.NewWriter(zw)
	for _, n := range order {
		if strings.HasSuffix(n, "/") {
			tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: n, Mode: 0o755})
			continue
		}
		c := files[n]
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: n, Mode: 0o755, Size: int64(len(c))}); err != nil {
			t.Fatal(err)
		}
		tw.Write([]byte(c))
	}
	tw.Close()
	zw.Close()
	return buf.Bytes()
}

// lab is an upstream, a registry and a manifest naming them by upstream
// names, reached through mirrors.
type lab struct {
	up       *upstream
	reg      string // host:port of the loopback registry
	manifest string
	mirrors  []string
	sealflow string // a file standing for the sealflow binary
	images   map[string]v1.Image
}

const testManifest = `version: v1.34.4
arch: amd64
versions: {containerd: v2.2.9}
files:
  - name: kubeadm
    url: https://dl.example/release/${version}/bin/linux/${arch}/kubeadm
    to: bin/kubeadm
  - name: containerd
    url: https://gh.example/containerd-${arch}.tar.gz
    checksum_url: https://gh.example/containerd-${arch}.tar.gz.sha256sum
    unpack: {from: bin, to: bin}
  - name: cni
    url: https://gh.example/kube-flannel.yml
    to: manifests/kube-flannel.yml
images:
  kubeadm: true
  from_files: [cni]
  refs: [docker.example/library/busybox:1.36.1]
  sealflow: true
`

func newLab(t *testing.T) *lab {
	t.Helper()
	l := &lab{up: newUpstream(t), manifest: testManifest, images: map[string]v1.Image{}}
	reg := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	t.Cleanup(reg.Close)
	l.reg = strings.TrimPrefix(reg.URL, "http://")
	base := l.up.srv.URL
	l.mirrors = []string{
		"https://dl.example=" + base + "/dl.example",
		"https://gh.example=" + base + "/gh.example",
		"registry.example=" + l.reg,
		"ghcr.example=" + l.reg,
		"docker.example=" + l.reg,
	}
	l.up.put("/dl.example/release/v1.34.4/bin/linux/amd64/kubeadm", []byte("#!/bin/sh\n# kubeadm\n"))
	ctd := tgz(t, map[string]string{"bin/containerd": "containerd", "bin/ctr": "ctr", "README": "x"}, "bin/", "bin/containerd", "bin/ctr", "README")
	l.up.files["/gh.example/containerd-amd64.tar.gz"] = ctd
	l.up.files["/gh.example/containerd-amd64.tar.gz.sha256sum"] = []byte(sum(ctd) + "  containerd-amd64.tar.gz\n")
	l.up.put("/gh.example/kube-flannel.yml", []byte("kind: DaemonSet\nspec:\n  template:\n    spec:\n      initContainers:\n      - image: ghcr.example/flannel-cni-plugin:v1\n      containers:\n      - image: ghcr.example/flannel:v0.27.4\n---\nkind: ConfigMap\n"))
	for _, ref := range []string{"registry.example/pause:3.10.1", "registry.example/etcd:3.6.5-0", "ghcr.example/flannel-cni-plugin:v1", "ghcr.example/flannel:v0.27.4", "docker.example/library/busybox:1.36.1"} {
		l.push(t, ref, "amd64")
	}
	l.sealflow = filepath.Join(t.TempDir(), "sealflow")
	if err := os.WriteFile(l.sealflow, []byte("\x7fELF sealflow stand-in for the image layer"), 0o755); err != nil {
		t.Fatal(err)
	}
	return l
}

// push puts a one-layer image for arch into the registry under ref's path.
func (l *lab) push(t *testing.T, ref, arch string) v1.Image {
	t.Helper()
	img, err := random.Image(256, 1)
	if err != nil {
		t.Fatal(err)
	}
	cf, _ := img.ConfigFile()
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", arch
	img, err = mutate.ConfigFile(img, cf)
	if err != nil {
		t.Fatal(err)
	}
	r := l.mirrored(t, ref)
	if err := remote.Write(r, img); err != nil {
		t.Fatal(err)
	}
	l.images[ref] = img
	return img
}

func (l *lab) mirrored(t *testing.T, ref string) name.Reference {
	t.Helper()
	r, err := name.ParseReference(ref)
	if err != nil {
		t.Fatal(err)
	}
	out, err := name.ParseReference(l.reg+"/"+r.Context().RepositoryStr()+":"+r.Identifier(), name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func (l *lab) options(t *testing.T, out string) BuildOptions {
	t.Helper()
	m, err := ParseManifest("test.yaml", []byte(l.manifest), "")
	if err != nil {
		t.Fatal(err)
	}
	mirrors, err := ParseMirrors(l.mirrors)
	if err != nil {
		t.Fatal(err)
	}
	return BuildOptions{
		Manifest: m, Out: out, Mirrors: mirrors,
		SealflowBinary: l.sealflow, SealflowVersion: "v0.9.0",
		ListImages: func(ctx context.Context, kubeadm, version string) ([]string, error) {
			data, err := os.ReadFile(kubeadm)
			if err != nil || !strings.Contains(string(data), "# kubeadm") {
				return nil, fmt.Errorf("not the fetched kubeadm: %s", kubeadm)
			}
			return []string{"registry.example/etcd:3.6.5-0", "registry.example/pause:3.10.1"}, nil
		},
		Assets:  fstest.MapFS{"shell/init.sh": {Data: []byte("#!/bin/sh\n")}, "conf/crictl.yaml": {Data: []byte("runtime-endpoint: x\n")}},
		Backoff: func(int) time.Duration { return time.Millisecond },
	}
}

// entries reads a package: name -> content (directories end in /).
func entries(t *testing.T, pkg string) (map[string][]byte, map[string]int64) {
	t.Helper()
	files, modes := map[string][]byte{}, map[string]int64{}
	err := walkPackage(pkg, func(h *tar.Header, r io.Reader) (bool, error) {
		data, err := io.ReadAll(r)
		files[h.Name], modes[h.Name] = data, h.Mode
		return true, err
	})
	if err != nil {
		t.Fatal(err)
	}
	return files, modes
}

func TestBuildWritesAVerifiablePackage(t *testing.T) {
	l := newLab(t)
	out := filepath.Join(t.TempDir(), "kube1.34.4.tar.gz")
	res, err := Build(context.Background(), l.options(t, out))
	if err != nil {
		t.Fatal(err)
	}
	files, modes := entries(t, out)
	if string(files["kube/bin/containerd"]) != "containerd" || string(files["kube/bin/ctr"]) != "ctr" {
		t.Errorf("containerd's bin/ members were not unpacked into kube/bin: %q %q", files["kube/bin/containerd"], files["kube/bin/ctr"])
	}
	if _, ok := files["kube/bin/README"]; ok {
		t.Error("a member outside unpack.from was unpacked")
	}
	if modes["kube/bin/kubeadm"] != 0o755 || modes["kube/manifests/kube-flannel.yml"] != 0o644 || modes["kube/shell/init.sh"] != 0o755 {
		t.Errorf("modes: kubeadm %o, flannel %o, init.sh %o", modes["kube/bin/kubeadm"], modes["kube/manifests/kube-flannel.yml"], modes["kube/shell/init.sh"])
	}
	var pm PackageManifest
	if err := json.Unmarshal(files[ManifestFile], &pm); err != nil {
		t.Fatal(err)
	}
	var refs []string
	for _, im := range pm.Images {
		refs = append(refs, im.Ref+" "+im.From)
		if want, ok := l.images[im.Ref]; ok {
			d, _ := want.Digest()
			if im.Digest != d.String() {
				t.Errorf("%s: digest %s, the registry has %s", im.Ref, im.Digest, d)
			}
		}
	}
	wantRefs := []string{
		"docker.example/library/busybox:1.36.1 refs",
		"docker.io/sealflow/sealflow:v0.9.0 sealflow",
		"ghcr.example/flannel-cni-plugin:v1 cni",
		"ghcr.example/flannel:v0.27.4 cni",
		"registry.example/etcd:3.6.5-0 kubeadm",
		"registry.example/pause:3.10.1 kubeadm",
	}
	if d := cmp.Diff(wantRefs, refs); d != "" {
		t.Errorf("images (-want +got):\n%s", d)
	}
	verified := map[string]string{}
	for _, s := range pm.Sources {
		verified[s.Name] = s.Verified
	}
	if d := cmp.Diff(map[string]string{
		"kubeadm":    "https://dl.example/release/v1.34.4/bin/linux/amd64/kubeadm.sha256",
		"containerd": "https://gh.example/containerd-amd64.tar.gz.sha256sum",
		"cni":        "https://gh.example/kube-flannel.yml.sha256",
	}, verified); d != "" {
		t.Errorf("each file verified by its upstream checksum file, recorded with its upstream URL (-want +got):\n%s", d)
	}
	if !strings.Contains(string(files[SumsFile]), sum(files["kube/bin/kubeadm"])+"  kube/bin/kubeadm\n") {
		t.Errorf("SHA256SUMS lacks kubeadm:\n%s", files[SumsFile])
	}
	if pm.Manifest != l.manifest {
		t.Error("manifest.json does not carry the manifest it was built from")
	}
	got, err := Verify(out)
	if err != nil {
		t.Fatalf("verify a fresh package: %v", err)
	}
	if len(got.Images) != 6 || res.SHA256 != sumFile(t, out) {
		t.Errorf("verify read %d images; result sha256 %s", len(got.Images), res.SHA256)
	}
	leftovers, _ := filepath.Glob(filepath.Join(filepath.Dir(out), ".*"))
	if len(leftovers) != 0 {
		t.Errorf("the build left %v beside the package", leftovers)
	}
}

func sumFile(t *testing.T, p string) string {
	s, err := transport.FileSum(p)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestTwoBuildsAreByteIdentical(t *testing.T) {
	l := newLab(t)
	dir := t.TempDir()
	a, b := filepath.Join(dir, "a.tar.gz"), filepath.Join(dir, "b.tar.gz")
	if _, err := Build(context.Background(), l.options(t, a)); err != nil {
		t.Fatal(err)
	}
	// The second build takes its files from a cache and runs later: still the same bytes.
	o := l.options(t, b)
	o.Cache = t.TempDir()
	if _, err := Build(context.Background(), o); err != nil {
		t.Fatal(err)
	}
	if sumFile(t, a) != sumFile(t, b) {
		t.Fatal("two builds of the same inputs differ")
	}
}

// failBuild builds and expects an error containing every want; nothing may
// be left in the output directory.
func failBuild(t *testing.T, o BuildOptions, want ...string) error {
	t.Helper()
	_, err := Build(context.Background(), o)
	if err == nil {
		t.Fatal("build succeeded")
	}
	for _, w := range want {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q does not say %q", err, w)
		}
	}
	left, _ := os.ReadDir(filepath.Dir(o.Out))
	for _, e := range left {
		t.Errorf("a failed build left %s", e.Name())
	}
	return err
}

func TestChecksumMismatchWritesNothing(t *testing.T) {
	l := newLab(t)
	bad := strings.Repeat("0", 64)
	l.up.files["/dl.example/release/v1.34.4/bin/linux/amd64/kubeadm.sha256"] = []byte(bad + "\n")
	o := l.options(t, filepath.Join(t.TempDir(), "k.tar.gz"))
	err := failBuild(t, o, "kubeadm", "https://dl.example/release/v1.34.4/bin/linux/amd64/kubeadm", bad,
		sum([]byte("#!/bin/sh\n# kubeadm\n")))
	var ce *ChecksumError
	if !errors.As(err, &ce) {
		t.Errorf("error %T is not a ChecksumError", err)
	}
}

func TestPinnedChecksumIsUsed(t *testing.T) {
	l := newLab(t)
	l.manifest = strings.Replace(l.manifest, "    to: bin/kubeadm\n", "    to: bin/kubeadm\n    sha256: "+strings.Repeat("a", 64)+"\n", 1)
	failBuild(t, l.options(t, filepath.Join(t.TempDir(), "k.tar.gz")), "expected "+strings.Repeat("a", 64)+" (pinned)")
	if n := len(l.up.seen("/dl.example/release/v1.34.4/bin/linux/amd64/kubeadm.sha256")); n != 0 {
		t.Errorf("a pinned file's checksum file was fetched %d times", n)
	}
}

func TestMissingChecksumFile(t *testing.T) {
	l := newLab(t)
	delete(l.up.files, "/gh.example/containerd-amd64.tar.gz.sha256sum")
	failBuild(t, l.options(t, filepath.Join(t.TempDir(), "k.tar.gz")),
		"containerd", "checksum file https://gh.example/containerd-amd64.tar.gz.sha256sum not found", "pin sha256")
}

func TestNotFoundIsNotRetried(t *testing.T) {
	l := newLab(t)
	p := "/gh.example/kube-flannel.yml"
	delete(l.up.files, p)
	l.up.files[p+".sha256"] = []byte(strings.Repeat("b", 64))
	failBuild(t, l.options(t, filepath.Join(t.TempDir(), "k.tar.gz")), "cni", "404")
	if n := len(l.up.seen(p)); n != 1 {
		t.Errorf("a 404 was asked %d times", n)
	}
}

func TestCutDownloadResumes(t *testing.T) {
	l := newLab(t)
	p := "/dl.example/release/v1.34.4/bin/linux/amd64/kubeadm"
	big := bytes.Repeat([]byte("# kubeadm\n"), 50000)
	l.up.put(p, big)
	l.up.cutOnce[p] = true
	out := filepath.Join(t.TempDir(), "k.tar.gz")
	if _, err := Build(context.Background(), l.options(t, out)); err != nil {
		t.Fatal(err)
	}
	got := l.up.seen(p)
	if len(got) != 2 || got[0] != "" || got[1] != fmt.Sprintf("bytes=%d-", len(big)/2) {
		t.Errorf("requests' Range headers %q: want a full GET, then the second half", got)
	}
	files, _ := entries(t, out)
	if !bytes.Equal(files["kube/bin/kubeadm"], big) {
		t.Error("the resumed download is not the file")
	}
}

func TestImageWithoutThePlatform(t *testing.T) {
	l := newLab(t)
	arm := l.push(t, "docker.example/library/busybox:1.36.1", "arm64")
	idx := mutate.AppendManifests(empty.Index, mutate.IndexAddendum{Add: arm, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: "arm64"}}})
	if err := remote.WriteIndex(l.mirrored(t, "docker.example/library/busybox:1.36.1"), idx); err != nil {
		t.Fatal(err)
	}
	err := failBuild(t, l.options(t, filepath.Join(t.TempDir(), "k.tar.gz")), "docker.example/library/busybox:1.36.1", "no linux/amd64 manifest", "linux/arm64")
	var pe *PlatformError
	if !errors.As(err, &pe) {
		t.Errorf("error %T is not a PlatformError", err)
	}
}

func TestInterruptedBuildLeavesNoOutput(t *testing.T) {
	l := newLab(t)
	started := make(chan struct{})
	l.up.block["/gh.example/kube-flannel.yml"] = started
	o := l.options(t, filepath.Join(t.TempDir(), "k.tar.gz"))
	ctx, cancel := context.WithCancel(context.Background())
	go func() { <-started; cancel() }()
	_, err := Build(ctx, o)
	if !errors.Is(err, context.Canceled) {
		t.Errorf("interrupted build: %v", err)
	}
	left, _ := os.ReadDir(filepath.Dir(o.Out))
	for _, e := range left {
		t.Errorf("an interrupted build left %s", e.Name())
	}
}

func TestDownloadCacheIsUsed(t *testing.T) {
	l := newLab(t)
	o := l.options(t, filepath.Join(t.TempDir(), "a.tar.gz"))
	o.Cache = t.TempDir()
	if _, err := Build(context.Background(), o); err != nil {
		t.Fatal(err)
	}
	p := "/dl.example/release/v1.34.4/bin/linux/amd64/kubeadm"
	before := len(l.up.seen(p))
	o.Out = filepath.Join(filepath.Dir(o.Out), "b.tar.gz")
	if _, err := Build(context.Background(), o); err != nil {
		t.Fatal(err)
	}
	if n := len(l.up.seen(p)) - before; n != 0 {
		t.Errorf("a cached file was downloaded again (%d times)", n)
	}
}

// rewrite copies a package, changing entries with edit (return nil to drop one).
func rewrite(t *testing.T, src, dst string, edit func(name string, data []byte) []byte) {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	tw := tar.NewWriter(zw)
	err := walkPackage(src, func(h *tar.Header, r io.Reader) (bool, error) {
		data, err := io.ReadAll(r)
		if err != nil {
			return false, err
		}
		data = edit(h.Name, data)
		if data == nil {
			return true, nil
		}
		h.Size = int64(len(data))
		if err := tw.WriteHeader(h); err != nil {
			return false, err
		}
		_, err = tw.Write(data)
		return true, err
	})
	if err != nil {
		t.Fatal(err)
	}
	tw.Close()
	zw.Close()
	if err := os.WriteFile(dst, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

// editInner changes the entries of the nested images.tar.
func editInner(t *testing.T, data []byte, edit func(name string, data []byte) []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	tr := tar.NewReader(bytes.NewReader(data))
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		d, _ := io.ReadAll(tr)
		d = edit(h.Name, d)
		if d == nil {
			continue
		}
		h.Size = int64(len(d))
		tw.WriteHeader(h)
		tw.Write(d)
	}
	tw.Close()
	return buf.Bytes()
}

func flip(data []byte) []byte {
	c := append([]byte(nil), data...)
	c[len(c)/2] ^= 0x01
	return c
}

func TestVerifyFindsEveryChange(t *testing.T) {
	l := newLab(t)
	dir := t.TempDir()
	pkg := filepath.Join(dir, "k.tar.gz")
	if _, err := Build(context.Background(), l.options(t, pkg)); err != nil {
		t.Fatal(err)
	}
	files, _ := entries(t, pkg)
	var layerBlob string
	{
		var pm PackageManifest
		json.Unmarshal(files[ManifestFile], &pm)
		img := l.images["registry.example/pause:3.10.1"]
		ls, _ := img.Layers()
		d, _ := ls[0].Digest()
		layerBlob = "blobs/sha256/" + d.Hex
	}
	// A flipped byte in each file of the package is found and named.
	for n, data := range files {
		if n == ManifestFile || strings.HasSuffix(n, "/") || len(data) == 0 {
			continue
		}
		t.Run("flip "+n, func(t *testing.T) {
			bad := filepath.Join(dir, "bad.tar.gz")
			rewrite(t, pkg, bad, func(name string, d []byte) []byte {
				if name == n {
					return flip(d)
				}
				return d
			})
			_, err := Verify(bad)
			var ve *VerifyError
			if !errors.As(err, &ve) || !strings.Contains(ve.Problems[0], n) {
				t.Errorf("verify: %v; want the first problem to name %s", err, n)
			}
		})
	}
	cases := []struct {
		name string
		edit func(string, []byte) []byte
		want string
	}{
		{"a layer blob inside images.tar", func(n string, d []byte) []byte { return d }, "blob " + strings.TrimPrefix(layerBlob, "blobs/sha256/") + " has sha256"},
		{"an image dropped from the index", nil, "image registry.example/pause:3.10.1 is missing from images.tar"},
		{"a missing file", func(n string, d []byte) []byte {
			if n == "kube/bin/ctr" {
				return nil
			}
			return d
		}, "kube/bin/ctr is missing"},
		{"an added file", nil, "kube/bin/extra is not in manifest.json"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			bad := filepath.Join(dir, "bad.tar.gz")
			edit := c.edit
			switch c.name {
			case "a layer blob inside images.tar":
				edit = func(n string, d []byte) []byte {
					if n != "kube/images/images.tar" {
						return d
					}
					return editInner(t, d, func(in string, b []byte) []byte {
						if in == layerBlob {
							return flip(b)
						}
						return b
					})
				}
			case "an image dropped from the index":
				edit = func(n string, d []byte) []byte {
					if n != "kube/images/images.tar" {
						return d
					}
					return editInner(t, d, func(in string, b []byte) []byte {
						if in != "index.json" {
							return b
						}
						var idx v1.IndexManifest
						json.Unmarshal(b, &idx)
						var keep []v1.Descriptor
						for _, m := range idx.Manifests {
							if m.Annotations[annotationImageName] != "registry.example/pause:3.10.1" {
								keep = append(keep, m)
							}
						}
						idx.Manifests = keep
						out, _ := json.Marshal(idx)
						return out
					})
				}
			case "an added file":
				// Added through a rewrite that appends an entry after kubeadm.
				edit = nil
			}
			if edit != nil {
				rewrite(t, pkg, bad, edit)
			} else {
				addEntry(t, pkg, bad, "kube/bin/extra", []byte("x"))
			}
			_, err := Verify(bad)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("verify: %v; want %q", err, c.want)
			}
		})
	}
}

func addEntry(t *testing.T, src, dst, name string, data []byte) {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	tw := tar.NewWriter(zw)
	walkPackage(src, func(h *tar.Header, r io.Reader) (bool, error) {
		d, _ := io.ReadAll(r)
		tw.WriteHeader(h)
		tw.Write(d)
		return true, nil
	})
	tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: 0o644, Size: int64(len(data))})
	tw.Write(data)
	tw.Close()
	zw.Close()
	if err := os.WriteFile(dst, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestInspectReadsTheManifest(t *testing.T) {
	l := newLab(t)
	pkg := filepath.Join(t.TempDir(), "k.tar.gz")
	if _, err := Build(context.Background(), l.options(t, pkg)); err != nil {
		t.Fatal(err)
	}
	pm, err := Inspect(pkg)
	if err != nil {
		t.Fatal(err)
	}
	if pm.Kubernetes != "v1.34.4" || pm.Arch != "amd64" || pm.Versions["containerd"] != "v2.2.9" || pm.Sealflow != "v0.9.0" {
		t.Errorf("inspect: %+v", pm)
	}
	if _, err := Inspect(filepath.Join(t.TempDir(), "none.tar.gz")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("inspect of a missing file: %v", err)
	}
}
