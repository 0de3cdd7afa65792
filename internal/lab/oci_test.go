package lab

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"testing"
)

// ociFile is a file of an image layer: a regular file (Body) or a symlink
// (Link).
type ociFile struct {
	Name, Link string
	Body       []byte
	Mode       int64
}

// writeOCIImage writes an OCI image layout tarball of one image called
// name (for `ctr images import`): one uncompressed layer of files, cmd as
// its default command.
func writeOCIImage(t *testing.T, path, name string, cmd []string, files []ociFile) {
	t.Helper()
	blobs := map[string][]byte{}
	add := func(b []byte) (string, int) {
		sum := sha256.Sum256(b)
		d := "sha256:" + hex.EncodeToString(sum[:])
		blobs[d] = b
		return d, len(b)
	}
	var layer bytes.Buffer
	tw := tar.NewWriter(&layer)
	dirs := map[string]bool{}
	for _, f := range files {
		for d := dirOf(f.Name); d != "" && !dirs[d]; d = dirOf(d) {
			dirs[d] = true
			must(t, tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: d + "/", Mode: 0o755}))
		}
		if f.Link != "" {
			must(t, tw.WriteHeader(&tar.Header{Typeflag: tar.TypeSymlink, Name: f.Name, Linkname: f.Link, Mode: 0o777}))
			continue
		}
		must(t, tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: f.Name, Mode: f.Mode, Size: int64(len(f.Body))}))
		_, err := tw.Write(f.Body)
		must(t, err)
	}
	must(t, tw.Close())
	layerDigest, layerSize := add(layer.Bytes())
	config := mustJSON(t, map[string]any{
		"architecture": "amd64",
		"os":           "linux",
		"config":       map[string]any{"Cmd": cmd, "Env": []string{"PATH=/bin"}},
		"rootfs":       map[string]any{"type": "layers", "diff_ids": []string{layerDigest}},
	})
	configDigest, configSize := add(config)
	manifest := mustJSON(t, map[string]any{
		"schemaVersion": 2,
		"mediaType":     "application/vnd.oci.image.manifest.v1+json",
		"config":        map[string]any{"mediaType": "application/vnd.oci.image.config.v1+json", "digest": configDigest, "size": configSize},
		"layers":        []any{map[string]any{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": layerDigest, "size": layerSize}},
	})
	manifestDigest, manifestSize := add(manifest)
	index := mustJSON(t, map[string]any{
		"schemaVersion": 2,
		"manifests": []any{map[string]any{
			"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": manifestDigest, "size": manifestSize,
			"annotations": map[string]string{"io.containerd.image.name": name, "org.opencontainers.image.ref.name": name},
		}},
	})

	var out bytes.Buffer
	ow := tar.NewWriter(&out)
	put := func(name string, b []byte) {
		must(t, ow.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: 0o644, Size: int64(len(b))}))
		_, err := ow.Write(b)
		must(t, err)
	}
	put("oci-layout", []byte(`{"imageLayoutVersion":"1.0.0"}`))
	put("index.json", index)
	must(t, ow.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: "blobs/", Mode: 0o755}))
	must(t, ow.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: "blobs/sha256/", Mode: 0o755}))
	for d, b := range blobs {
		put("blobs/sha256/"+d[len("sha256:"):], b)
	}
	must(t, ow.Close())
	must(t, os.WriteFile(path, out.Bytes(), 0o644))
}

func dirOf(p string) string {
	for i := len(p) - 1; i >= 0; i-- {
		if p[i] == '/' {
			return p[:i]
		}
	}
	return ""
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	must(t, err)
	return b
}
