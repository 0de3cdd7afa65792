package steps

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// writeTarball writes a gzipped tarball of files (name → content; a
// name ending in / is a directory).
func writeTarball(t *testing.T, file string, files map[string]string, order []string) {
	t.Helper()
	var b bytes.Buffer
	gz := gzip.NewWriter(&b)
	tw := tar.NewWriter(gz)
	for _, name := range order {
		h := &tar.Header{Name: name, Mode: 0o755, Typeflag: tar.TypeDir}
		if !strings.HasSuffix(name, "/") {
			h = &tar.Header{Name: name, Mode: 0o644, Size: int64(len(files[name])), Typeflag: tar.TypeReg}
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if h.Typeflag == tar.TypeReg {
			tw.Write([]byte(files[name]))
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	gz.Close()
	if err := os.MkdirAll(filepath.Dir(file), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(file, b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

func kubePackage(t *testing.T, file, initScript string) {
	t.Helper()
	files := map[string]string{"kube/shell/init.sh": initScript, "kube/bin/kubeadm": "bin", "kube/conf/kubeadm.yaml": "conf"}
	writeTarball(t, file, files, []string{"kube/", "kube/shell/", "kube/shell/init.sh", "kube/bin/", "kube/bin/kubeadm", "kube/conf/", "kube/conf/kubeadm.yaml"})
}

func TestUntar(t *testing.T) {
	t.Parallel()
	l := newLab(t)
	ctx := context.Background()
	src := filepath.Join(l.dir, "root", "kube1.29.tar.gz")
	kubePackage(t, src, "echo init\n")
	dest := filepath.Join(l.dir, "root")
	s, err := untarKind().New(Params{"src": src, "dest": dest})
	if err != nil {
		t.Fatal(err)
	}
	c := s.(Checker)
	if done, _, err := c.Done(ctx, l.target()); err != nil || done {
		t.Fatalf("Done before = %v, %v", done, err)
	}
	out, err := s.Run(ctx, l.target())
	if err != nil {
		t.Fatalf("%v\nlog:\n%s", err, l.log.String())
	}
	sum, _ := steptestSum(src)
	if out["dir"] != dest || out["sha256"] != sum {
		t.Errorf("outputs %v, want dir %s and sha256 %s", out, dest, sum)
	}
	if got := l.read(t, "root/kube/conf/kubeadm.yaml"); got != "conf" {
		t.Errorf("extracted file holds %q", got)
	}
	if got := l.read(t, "root/.sealflow-untar"); got != sum+"\nkube\n" {
		t.Errorf("marker %q", got)
	}
	if done, out, err := c.Done(ctx, l.target()); err != nil || !done || out["sha256"] != sum || out["dir"] != dest {
		t.Errorf("Done after = %v, %v, %v", done, out, err)
	}
	// The extracted directory is gone (a reset that kept the marker): not done.
	if err := os.RemoveAll(filepath.Join(dest, "kube")); err != nil {
		t.Fatal(err)
	}
	if done, _, _ := c.Done(ctx, l.target()); done {
		t.Error("Done with the extracted directory removed = true")
	}
	// A new tarball: not done until extracted again.
	kubePackage(t, src, "echo init v2\n")
	if done, _, _ := c.Done(ctx, l.target()); done {
		t.Error("Done with a changed tarball = true")
	}
	if _, err := s.Run(ctx, l.target()); err != nil {
		t.Fatal(err)
	}
	if got := l.read(t, "root/kube/shell/init.sh"); got != "echo init v2\n" {
		t.Errorf("init.sh after the second extraction: %q", got)
	}
	if done, _, _ := c.Done(ctx, l.target()); !done {
		t.Error("Done after the second extraction = false")
	}
	l.noInjection(t)
}

func TestUntarMissingOrBroken(t *testing.T) {
	t.Parallel()
	l := newLab(t)
	ctx := context.Background()
	dest := filepath.Join(l.dir, "root")
	s, _ := untarKind().New(Params{"src": filepath.Join(l.dir, "none.tgz"), "dest": dest})
	if _, err := s.Run(ctx, l.target()); err == nil || !strings.Contains(l.log.String(), "distribute it first") {
		t.Errorf("missing tarball: %v, log %q", err, l.log.String())
	}
	broken := filepath.Join(l.dir, "broken.tgz")
	l.write(t, broken, "not a tarball")
	s, _ = untarKind().New(Params{"src": broken, "dest": dest})
	if _, err := s.Run(ctx, l.target()); err == nil {
		t.Error("extracting a broken tarball succeeded")
	}
	if exists(filepath.Join(dest, untarMarker)) {
		t.Error("a marker was written for a failed extraction")
	}
	if _, err := untarKind().New(Params{"src": "rel.tgz", "dest": "/x"}); err == nil {
		t.Error("relative src accepted")
	}
}

func steptestSum(file string) (string, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return "", err
	}
	return sumOf(b), nil
}

func TestUntarChecksPackageSums(t *testing.T) {
	t.Parallel()
	l := newLab(t)
	ctx := context.Background()
	dest := filepath.Join(l.dir, "root")
	good, bad := "bin", "tampered"
	for _, c := range []struct {
		name, content, want string
	}{
		{"match", good, ""},
		{"differs", bad, "the unpacked files do not match kube/SHA256SUMS: kube/bin/kubeadm: FAILED"},
	} {
		src := filepath.Join(l.dir, c.name+".tgz")
		h := sha256Hex(good)
		files := map[string]string{"kube/bin/kubeadm": c.content, "kube/SHA256SUMS": h + "  kube/bin/kubeadm\n"}
		writeTarball(t, src, files, []string{"kube/", "kube/bin/", "kube/bin/kubeadm", "kube/SHA256SUMS"})
		s, err := untarKind().New(Params{"src": src, "dest": dest, "checksums": "kube/SHA256SUMS"})
		if err != nil {
			t.Fatal(err)
		}
		_, err = s.Run(ctx, l.target())
		if c.want == "" && err != nil {
			t.Errorf("%s: %v\n%s", c.name, err, l.log.String())
		}
		if c.want != "" && (err == nil || !strings.Contains(l.log.String(), c.want)) {
			t.Errorf("%s: %v; want the log to say %q:\n%s", c.name, err, c.want, l.log.String())
		}
	}
	src := filepath.Join(l.dir, "nosums.tgz")
	kubePackage(t, src, "echo init\n")
	s, _ := untarKind().New(Params{"src": src, "dest": dest, "checksums": "kube/SHA256SUMS"})
	if _, err := s.Run(ctx, l.target()); err == nil || !strings.Contains(l.log.String(), "is not in") {
		t.Errorf("a tarball without its sums: %v\n%s", err, l.log.String())
	}
	if _, err := untarKind().New(Params{"src": src, "dest": dest, "checksums": "../x"}); err == nil {
		t.Error("checksums outside dest accepted")
	}
}

func sha256Hex(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:])
}
