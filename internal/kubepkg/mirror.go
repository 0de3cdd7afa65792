package kubepkg

import (
	"fmt"
	"net"
	"sort"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
)

// Mirrors rewrite where files and images are fetched from (an internal
// mirror, or the lab's loopback servers). What the package records is the
// original URL and reference.
type Mirrors struct {
	urls []mirror // FROM is a URL prefix: https://dl.k8s.io
	regs []mirror // FROM is a registry: registry.k8s.io
}

type mirror struct{ from, to string }

// ParseMirrors reads --mirror FROM=TO values: a URL prefix
// (https://dl.k8s.io=http://10.0.0.9/k8s) or a registry
// (registry.k8s.io=127.0.0.1:5000, docker.io=mirror.example:5000/hub).
func ParseMirrors(specs []string) (Mirrors, error) {
	var m Mirrors
	for _, s := range specs {
		from, to, ok := strings.Cut(s, "=")
		from, to = strings.TrimSpace(from), strings.TrimSpace(to)
		if !ok || from == "" || to == "" {
			return Mirrors{}, fmt.Errorf("--mirror %q: write FROM=TO (https://dl.k8s.io=http://mirror/k8s or registry.k8s.io=mirror:5000)", s)
		}
		if strings.Contains(from, "://") {
			if !strings.HasPrefix(to, "http://") && !strings.HasPrefix(to, "https://") {
				return Mirrors{}, fmt.Errorf("--mirror %q: a URL prefix must map to an http(s) URL prefix", s)
			}
			m.urls = append(m.urls, mirror{strings.TrimSuffix(from, "/"), strings.TrimSuffix(to, "/")})
			continue
		}
		if strings.ContainsAny(from, "/@") {
			return Mirrors{}, fmt.Errorf("--mirror %q: a registry is a host name such as registry.k8s.io", s)
		}
		m.regs = append(m.regs, mirror{canonicalRegistry(from), strings.TrimSuffix(to, "/")})
	}
	// Longest prefix first, so the most specific mirror wins.
	sort.SliceStable(m.urls, func(i, j int) bool { return len(m.urls[i].from) > len(m.urls[j].from) })
	return m, nil
}

// URL rewrites a download URL.
func (m Mirrors) URL(u string) string {
	for _, r := range m.urls {
		if u == r.from || strings.HasPrefix(u, r.from+"/") {
			return r.to + strings.TrimPrefix(u, r.from)
		}
	}
	return u
}

// Ref rewrites an image reference to where it is pulled from.
func (m Mirrors) Ref(ref name.Reference) (name.Reference, error) {
	reg := canonicalRegistry(ref.Context().RegistryStr())
	for _, r := range m.regs {
		if r.from != reg {
			continue
		}
		to := r.to
		var opts []name.Option
		if strings.HasPrefix(to, "http://") {
			to = strings.TrimPrefix(to, "http://")
			opts = append(opts, name.Insecure)
		} else if loopbackHost(to) {
			opts = append(opts, name.Insecure)
		}
		repo := to + "/" + ref.Context().RepositoryStr()
		var s string
		switch t := ref.(type) {
		case name.Digest:
			s = repo + "@" + t.DigestStr()
		case name.Tag:
			s = repo + ":" + t.TagStr()
		default:
			return nil, fmt.Errorf("image %s: unsupported reference", ref)
		}
		out, err := name.ParseReference(s, opts...)
		if err != nil {
			return nil, fmt.Errorf("image %s through mirror %s: %w", ref, r.to, err)
		}
		return out, nil
	}
	return ref, nil
}

// canonicalRegistry names Docker Hub one way.
func canonicalRegistry(r string) string {
	if r == "index.docker.io" || r == "registry-1.docker.io" {
		return "docker.io"
	}
	return r
}

func loopbackHost(hostport string) bool {
	h := hostport
	if i := strings.IndexByte(h, '/'); i >= 0 {
		h = h[:i]
	}
	if host, _, err := net.SplitHostPort(h); err == nil {
		h = host
	}
	if h == "localhost" {
		return true
	}
	ip := net.ParseIP(h)
	return ip != nil && ip.IsLoopback()
}
