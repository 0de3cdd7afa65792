package kubepkg

import (
	"archive/tar"
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/goccy/go-yaml/ast"
	"github.com/goccy/go-yaml/parser"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// Annotations on each image of images.tar (an OCI image layout): containerd's
// import names the image after the first; the second is the OCI tag.
const (
	annotationImageName = "io.containerd.image.name"
	annotationRefName   = "org.opencontainers.image.ref.name"
)

// Image is one image of a package, as manifest.json records it.
type Image struct {
	Ref string `json:"ref"`
	// Digest of the image's manifest for the package's platform.
	Digest string `json:"digest"`
	// IndexDigest is the multi-platform index it was picked from, if any.
	IndexDigest string `json:"index_digest,omitempty"`
	// From says why it is in the package: kubeadm, a file name, refs, sealflow.
	From string `json:"from"`
}

// PlatformError is an image without a manifest for the package's platform.
type PlatformError struct {
	Ref, Want string
	Have      []string
}

func (e *PlatformError) Error() string {
	if len(e.Have) == 0 {
		return fmt.Sprintf("image %s is not for %s", e.Ref, e.Want)
	}
	return fmt.Sprintf("image %s has no %s manifest (it has %s)", e.Ref, e.Want, strings.Join(e.Have, ", "))
}

// puller fetches images for one platform.
type puller struct {
	mirrors   Mirrors
	platform  v1.Platform
	transport http.RoundTripper
}

// pull fetches ref for the platform.
func (p puller) pull(ctx context.Context, ref string) (v1.Image, Image, error) {
	r, err := name.ParseReference(ref, name.StrictValidation)
	if err != nil {
		return nil, Image{}, fmt.Errorf("image %q: %w", ref, err)
	}
	src, err := p.mirrors.Ref(r)
	if err != nil {
		return nil, Image{}, err
	}
	opts := []remote.Option{remote.WithContext(ctx), remote.WithPlatform(p.platform)}
	if p.transport != nil {
		opts = append(opts, remote.WithTransport(p.transport))
	}
	desc, err := remote.Get(src, opts...)
	if err != nil {
		return nil, Image{}, fmt.Errorf("image %s (from %s): %w", ref, src, err)
	}
	rec := Image{Ref: ref}
	want := p.platform.OS + "/" + p.platform.Architecture
	var img v1.Image
	if desc.MediaType.IsIndex() {
		rec.IndexDigest = desc.Digest.String()
		idx, err := desc.ImageIndex()
		if err != nil {
			return nil, Image{}, fmt.Errorf("image %s: %w", ref, err)
		}
		im, err := idx.IndexManifest()
		if err != nil {
			return nil, Image{}, fmt.Errorf("image %s: %w", ref, err)
		}
		var have []string
		for _, m := range im.Manifests {
			if m.Platform == nil {
				continue
			}
			if m.Platform.OS == p.platform.OS && m.Platform.Architecture == p.platform.Architecture {
				img, err = idx.Image(m.Digest)
				if err != nil {
					return nil, Image{}, fmt.Errorf("image %s: %w", ref, err)
				}
				break
			}
			have = append(have, m.Platform.OS+"/"+m.Platform.Architecture)
		}
		if img == nil {
			return nil, Image{}, &PlatformError{Ref: ref, Want: want, Have: have}
		}
	} else {
		img, err = desc.Image()
		if err != nil {
			return nil, Image{}, fmt.Errorf("image %s: %w", ref, err)
		}
		cf, err := img.ConfigFile()
		if err != nil {
			return nil, Image{}, fmt.Errorf("image %s: %w", ref, err)
		}
		if cf.OS != p.platform.OS || cf.Architecture != p.platform.Architecture {
			return nil, Image{}, &PlatformError{Ref: ref, Want: want, Have: []string{cf.OS + "/" + cf.Architecture}}
		}
	}
	d, err := img.Digest()
	if err != nil {
		return nil, Image{}, fmt.Errorf("image %s: %w", ref, err)
	}
	rec.Digest = d.String()
	return img, rec, nil
}

// imageLayout collects images into an OCI image layout directory.
type imageLayout struct {
	path     layout.Path
	platform v1.Platform
}

func newImageLayout(dir string, platform v1.Platform) (*imageLayout, error) {
	p, err := layout.Write(dir, empty.Index)
	if err != nil {
		return nil, fmt.Errorf("image layout %s: %w", dir, err)
	}
	return &imageLayout{path: p, platform: platform}, nil
}

func (l *imageLayout) add(ref string, img v1.Image) error {
	r, err := name.ParseReference(ref)
	if err != nil {
		return err
	}
	tag := r.Identifier()
	if err := l.path.AppendImage(img,
		layout.WithPlatform(l.platform),
		layout.WithAnnotations(map[string]string{annotationImageName: fullName(ref), annotationRefName: tag}),
	); err != nil {
		return fmt.Errorf("write image %s: %w", ref, err)
	}
	return nil
}

// fullName is a reference as containerd and the kubelet name it:
// registry/repository:tag, with Docker Hub as docker.io.
func fullName(ref string) string {
	r, err := name.ParseReference(ref)
	if err != nil {
		return ref
	}
	repo := canonicalRegistry(r.Context().RegistryStr()) + "/" + r.Context().RepositoryStr()
	if d, ok := r.(name.Digest); ok {
		return repo + "@" + d.DigestStr()
	}
	return repo + ":" + r.Identifier()
}

// epoch is every timestamp of what the builder makes itself.
var epoch = time.Unix(0, 0).UTC()

// sealflowImage is one layer holding the binary as /usr/bin/sealflow.
func sealflowImage(binary, arch string) (v1.Image, error) {
	data, err := os.ReadFile(binary)
	if err != nil {
		return nil, fmt.Errorf("sealflow's image: %w", err)
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, d := range []string{"usr/", "usr/bin/"} {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: d, Mode: 0o755, ModTime: epoch, Format: tar.FormatPAX}); err != nil {
			return nil, err
		}
	}
	if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: "usr/bin/sealflow", Mode: 0o755, Size: int64(len(data)), ModTime: epoch, Format: tar.FormatPAX}); err != nil {
		return nil, err
	}
	if _, err := tw.Write(data); err != nil {
		return nil, err
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	layerBytes := buf.Bytes()
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(layerBytes)), nil
	}, tarball.WithMediaType(types.OCILayer))
	if err != nil {
		return nil, fmt.Errorf("sealflow's image layer: %w", err)
	}
	base := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	base = mutate.ConfigMediaType(base, types.OCIConfigJSON)
	img, err := mutate.Append(base, mutate.Addendum{Layer: layer, History: v1.History{Created: v1.Time{Time: epoch}, CreatedBy: "sealflow package build"}})
	if err != nil {
		return nil, err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", arch
	cf.Created = v1.Time{Time: epoch}
	cf.Config.Entrypoint = []string{"/usr/bin/sealflow"}
	cf.Config.Env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin"}
	return mutate.ConfigFile(img, cf)
}

// kubeadmImages runs kubeadm to list the images of a Kubernetes version.
func kubeadmImages(ctx context.Context, kubeadm, version string) ([]string, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, kubeadm, "config", "images", "list", "--kubernetes-version", version)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("%s config images list --kubernetes-version %s: %v: %s", filepath.Base(kubeadm), version, err, strings.TrimSpace(stderr.String()))
	}
	var refs []string
	for _, l := range strings.Split(string(out), "\n") {
		if l = strings.TrimSpace(l); l != "" {
			if _, err := name.ParseReference(l, name.StrictValidation); err != nil {
				return nil, fmt.Errorf("kubeadm named an image %q that is not a reference: %v", l, err)
			}
			refs = append(refs, l)
		}
	}
	if len(refs) == 0 {
		return nil, fmt.Errorf("kubeadm config images list named no image")
	}
	return refs, nil
}

// fileImages finds every `image:` value in a YAML file (a CNI's manifest).
func fileImages(data []byte) ([]string, error) {
	f, err := parser.ParseBytes(data, 0)
	if err != nil {
		return nil, err
	}
	seen := map[string]bool{}
	var refs []string
	for _, doc := range f.Docs {
		ast.Walk(visitFunc(func(n ast.Node) {
			mv, ok := n.(*ast.MappingValueNode)
			if !ok || mv.Key == nil || mv.Key.GetToken() == nil || mv.Key.GetToken().Value != "image" {
				return
			}
			s, ok := mv.Value.(*ast.StringNode)
			if !ok || seen[s.Value] {
				return
			}
			seen[s.Value] = true
			refs = append(refs, s.Value)
		}), doc)
	}
	sort.Strings(refs)
	return refs, nil
}

type visitFunc func(ast.Node)

func (f visitFunc) Visit(n ast.Node) ast.Visitor {
	f(n)
	return f
}
