package main

import (
	"encoding/json"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// addrs is what serve writes to its address file.
type addrs struct {
	HTTP     string `json:"http"`     // files: http://HTTP/dl.k8s.io/..., http://HTTP/github.com/...
	Registry string `json:"registry"` // images: REGISTRY/kube-apiserver:v1.34.4 and REGISTRY/registry.k8s.io/kube-apiserver:v1.34.4
}

// mirror is a running file server and registry, both on loopback.
type mirror struct {
	addrs
	servers []*http.Server
}

func (m *mirror) Close() {
	for _, s := range m.servers {
		s.Close()
	}
}

// listen serves h on a free loopback port.
func (m *mirror) listen(h http.Handler) (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	s := &http.Server{Handler: h, ErrorLog: log.New(io.Discard, "", 0)}
	m.servers = append(m.servers, s)
	go s.Serve(l)
	return l.Addr().String(), nil
}

// startMirror serves www over HTTP and, from a registry, every image of the OCI layout
// at imagesDir (empty: none).
func startMirror(www, imagesDir string) (*mirror, error) {
	m := &mirror{}
	var err error
	if m.HTTP, err = m.listen(http.FileServer(http.Dir(www))); err != nil {
		return nil, err
	}
	if m.Registry, err = m.listen(registry.New(registry.Logger(log.New(io.Discard, "", 0)))); err != nil {
		m.Close()
		return nil, err
	}
	if imagesDir != "" {
		if err := m.load(imagesDir); err != nil {
			m.Close()
			return nil, err
		}
	}
	return m, nil
}

// load pushes each image of the layout under two names: its repository without the
// registry's host (for a mirror host=REGISTRY) and with it (host=REGISTRY/host). The
// manifests are pushed as they are: digests do not change.
func (m *mirror) load(dir string) error {
	p, err := layout.FromPath(dir)
	if err != nil {
		return err
	}
	idx, err := p.ImageIndex()
	if err != nil {
		return err
	}
	im, err := idx.IndexManifest()
	if err != nil {
		return err
	}
	seen := map[string]string{}
	for _, d := range im.Manifests {
		ref := d.Annotations[refAnnotation]
		if ref == "" {
			return fmt.Errorf("%s: image %s has no %s annotation", dir, d.Digest, refAnnotation)
		}
		img, err := idx.Image(d.Digest)
		if err != nil {
			return err
		}
		host, rest, ok := strings.Cut(ref, "/")
		if !ok {
			return fmt.Errorf("%s: reference without a registry", ref)
		}
		for _, target := range []string{rest, host + "/" + rest} {
			if other, dup := seen[target]; dup {
				return fmt.Errorf("%s and %s are both served as %s", other, ref, target)
			}
			seen[target] = ref
			if err := m.push(target, img); err != nil {
				return fmt.Errorf("pushing %s: %w", ref, err)
			}
		}
	}
	return nil
}

func (m *mirror) push(repoTag string, img v1.Image) error {
	r, err := name.ParseReference(m.Registry+"/"+repoTag, name.Insecure)
	if err != nil {
		return err
	}
	return remote.Write(r, img)
}

// writeAddrs writes the addresses to file atomically.
func writeAddrs(file string, a addrs) error {
	data, err := json.Marshal(a)
	if err != nil {
		return err
	}
	tmp := file + ".tmp"
	if err := os.WriteFile(tmp, append(data, '\n'), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, file)
}
