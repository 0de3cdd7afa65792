package main

import (
	"archive/tar"
	"bytes"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// testImages is a small table in the shape of images: two images from a fake binary.
func testImages(t *testing.T) (*builder, []imageSpec) {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "hello"), []byte("#!/bin/sh\necho hello\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	return &builder{binDirs: []string{dir}}, []imageSpec{
		{ref: "registry.k8s.io/hello:v1", layers: []layerFunc{base, bins("/usr/local/bin", "hello")}, entrypoint: []string{"/usr/local/bin/hello"}},
		{ref: "ghcr.io/example/hello:v2", layers: []layerFunc{bins("/", "hello")}, user: nonroot},
	}
}

func TestImagesAreReproducible(t *testing.T) {
	b, specs := testImages(t)
	for _, s := range specs {
		a, err := b.build(s)
		if err != nil {
			t.Fatal(err)
		}
		c, _ := b.build(s)
		da, _ := a.Digest()
		dc, _ := c.Digest()
		if da != dc {
			t.Errorf("%s: two builds differ: %s, %s", s.ref, da, dc)
		}
	}
}

func TestServedImagePullsWithTheSameDigest(t *testing.T) {
	b, specs := testImages(t)
	out := filepath.Join(t.TempDir(), "images")
	if err := writeLayout(out, b, specs); err != nil {
		t.Fatal(err)
	}
	m, err := startMirror(t.TempDir(), out)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	p, _ := layout.FromPath(out)
	idx, _ := p.ImageIndex()
	im, _ := idx.IndexManifest()
	if len(im.Manifests) != len(specs) {
		t.Fatalf("layout has %d images, want %d", len(im.Manifests), len(specs))
	}
	for _, d := range im.Manifests {
		host, rest, _ := bytes.Cut([]byte(d.Annotations[refAnnotation]), []byte("/"))
		for _, repo := range []string{string(rest), string(host) + "/" + string(rest)} {
			r, err := name.ParseReference(m.Registry+"/"+repo, name.Insecure)
			if err != nil {
				t.Fatal(err)
			}
			img, err := remote.Image(r)
			if err != nil {
				t.Fatalf("pull %s: %v", r, err)
			}
			got, _ := img.Digest()
			if got != d.Digest {
				t.Errorf("%s: digest %s, layout has %s", r, got, d.Digest)
			}
		}
	}
}

func TestFilesServeRanges(t *testing.T) {
	www := t.TempDir()
	f := filepath.Join(www, "dl.k8s.io", "release", "v1", "kubeadm")
	os.MkdirAll(filepath.Dir(f), 0o755)
	os.WriteFile(f, []byte("0123456789"), 0o644)
	m, err := startMirror(www, "")
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	req, _ := http.NewRequest("GET", "http://"+m.HTTP+"/dl.k8s.io/release/v1/kubeadm", nil)
	req.Header.Set("Range", "bytes=3-5")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusPartialContent || string(body) != "345" {
		t.Errorf("Range bytes=3-5: %s %q, want 206 \"345\"", resp.Status, body)
	}
}

func TestCapabilitiesInLayer(t *testing.T) {
	b, _ := testImages(t)
	es, err := withCaps(netBindService, bins("/", "hello"))(b)
	if err != nil {
		t.Fatal(err)
	}
	data, err := layerTar(es)
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(bytes.NewReader(data))
	h, err := tr.Next()
	if err != nil {
		t.Fatal(err)
	}
	if h.Name != "hello" || h.PAXRecords["SCHILY.xattr.security.capability"] != string(netBindService) {
		t.Errorf("%s: PAX records %q, want security.capability", h.Name, h.PAXRecords)
	}
}
