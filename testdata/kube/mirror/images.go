package main

import (
	"archive/tar"
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// Versions of the images, as kubeadm v1.34.4 and flannel's v0.27.4 manifest name them.
const (
	kubeVersion      = "v1.34.4"
	etcdTag          = "3.6.5-0"
	corednsTag       = "v1.12.1"
	pauseTag         = "3.10.1"
	flannelTag       = "v0.27.4"
	flannelCNITag    = "v1.7.1-flannel1"
	busyboxTag       = "1.36.1"
	refAnnotation    = "org.opencontainers.image.ref.name"
	ctrdAnnotation   = "io.containerd.image.name"
	defaultPath      = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
	nonroot          = "65532:65532" // distroless' nonroot user
	pauseUser        = "65535:65535"
	busyboxOnHost    = "/bin/busybox"
	xtablesModuleDir = "/usr/lib/x86_64-linux-gnu/xtables"
)

// created is every image's creation time and every file's mtime: images are reproducible.
var created = time.Unix(0, 0).UTC()

// imageSpec is one upstream image: its layers (each a function of the build) and its config.
type imageSpec struct {
	ref        string
	layers     []layerFunc
	entrypoint []string
	cmd        []string
	user       string
	env        []string
}

// layerFunc returns a layer's files.
type layerFunc func(b *builder) ([]entry, error)

// The images. Layers shared between images (base, netfilter, toolbox) are byte-identical,
// so a registry stores them once. Upstream's kube-* images start /go-runner (not on the Go
// proxy); here the entrypoint is the binary itself (kubeadm sets the command anyway).
var images = []imageSpec{
	{ref: "registry.k8s.io/kube-apiserver:" + kubeVersion, layers: []layerFunc{base, bins("/usr/local/bin", "kube-apiserver")},
		entrypoint: []string{"/usr/local/bin/kube-apiserver"}},
	{ref: "registry.k8s.io/kube-controller-manager:" + kubeVersion, layers: []layerFunc{base, bins("/usr/local/bin", "kube-controller-manager")},
		entrypoint: []string{"/usr/local/bin/kube-controller-manager"}},
	{ref: "registry.k8s.io/kube-scheduler:" + kubeVersion, layers: []layerFunc{base, bins("/usr/local/bin", "kube-scheduler")},
		entrypoint: []string{"/usr/local/bin/kube-scheduler"}},
	{ref: "registry.k8s.io/kube-proxy:" + kubeVersion, layers: []layerFunc{base, netfilter, bins("/usr/local/bin", "kube-proxy")},
		entrypoint: []string{"/usr/local/bin/kube-proxy"}},
	{ref: "registry.k8s.io/etcd:" + etcdTag, layers: []layerFunc{base, bins("/usr/local/bin", "etcd", "etcdctl", "etcdutl")}},
	{ref: "registry.k8s.io/coredns/coredns:" + corednsTag, layers: []layerFunc{base, withCaps(netBindService, bins("/", "coredns"))},
		entrypoint: []string{"/coredns"}, user: nonroot},
	{ref: "registry.k8s.io/pause:" + pauseTag, layers: []layerFunc{bins("/", "pause")},
		entrypoint: []string{"/pause"}, user: pauseUser},
	{ref: "ghcr.io/flannel-io/flannel:" + flannelTag, layers: []layerFunc{base, toolbox, netfilter, bins("/opt/bin", "flanneld")},
		entrypoint: []string{"/opt/bin/flanneld"}},
	{ref: "ghcr.io/flannel-io/flannel-cni-plugin:" + flannelCNITag, layers: []layerFunc{base, toolbox, bins("/", "flannel")},
		cmd: []string{"/bin/sh"}},
	{ref: "docker.io/library/busybox:" + busyboxTag, layers: []layerFunc{base, toolbox},
		cmd: []string{"sh"}},
}

// entry is one file, directory or symlink of a layer.
type entry struct {
	name string // absolute path in the image
	mode int64
	data []byte
	link string // symlink target
	dir  bool
	caps []byte // file capabilities (security.capability)
}

// builder finds binaries in its bin directories.
type builder struct {
	binDirs []string
}

func (b *builder) find(name string) (string, error) {
	for _, d := range b.binDirs {
		p := filepath.Join(d, name)
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() {
			return p, nil
		}
	}
	return "", fmt.Errorf("%s not found in %s", name, strings.Join(b.binDirs, ", "))
}

// bins puts the named binaries in dir.
func bins(dir string, names ...string) layerFunc {
	return func(b *builder) ([]entry, error) {
		var es []entry
		for _, n := range names {
			p, err := b.find(n)
			if err != nil {
				return nil, err
			}
			data, err := os.ReadFile(p)
			if err != nil {
				return nil, err
			}
			es = append(es, entry{name: path.Join(dir, n), mode: 0o755, data: data})
		}
		return es, nil
	}
}

// netBindService is the security.capability value of cap_net_bind_service=+ep (as setcap
// writes it: VFS_CAP_REVISION_2 with the effective flag, permitted bit 10).
var netBindService = []byte{0x01, 0, 0, 0x02, 0x00, 0x04, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}

// withCaps gives the files of a layer file capabilities: upstream's coredns image binds
// port 53 as a non-root user thanks to cap_net_bind_service on /coredns.
func withCaps(caps []byte, lf layerFunc) layerFunc {
	return func(b *builder) ([]entry, error) {
		es, err := lf(b)
		for i := range es {
			es[i].caps = caps
		}
		return es, err
	}
}

// base is what distroless has and the programs expect: users, groups, /tmp.
func base(*builder) ([]entry, error) {
	return []entry{
		{name: "/etc/passwd", mode: 0o644, data: []byte("root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n")},
		{name: "/etc/group", mode: 0o644, data: []byte("root:x:0:\nnobody:x:65534:\nnonroot:x:65532:\n")},
		{name: "/tmp", mode: 0o1777, dir: true},
		{name: "/root", mode: 0o700, dir: true},
		{name: "/home/nonroot", mode: 0o700, dir: true},
	}, nil
}

// toolbox is Debian's static busybox with a link for each applet (sh, cp, ls, ...).
func toolbox(*builder) ([]entry, error) {
	data, err := os.ReadFile(busyboxOnHost)
	if err != nil {
		return nil, fmt.Errorf("%w (Debian package busybox-static)", err)
	}
	out, err := exec.Command(busyboxOnHost, "--list-full").Output()
	if err != nil {
		return nil, fmt.Errorf("%s --list-full: %w", busyboxOnHost, err)
	}
	es := []entry{{name: "/bin/busybox", mode: 0o755, data: data}}
	for _, l := range strings.Fields(string(out)) {
		if p := "/" + l; p != "/bin/busybox" {
			es = append(es, entry{name: p, link: "/bin/busybox"})
		}
	}
	return es, nil
}

// netfilter is the host's iptables (nft and legacy backends; iptables, ip6tables and
// their -save/-restore are the nft backend, as on the host) and nft, with the shared
// libraries ldd resolves for them and for the xtables modules.
func netfilter(*builder) ([]entry, error) {
	progs := []string{"/usr/sbin/xtables-nft-multi", "/usr/sbin/xtables-legacy-multi", "/usr/sbin/nft"}
	mods, err := filepath.Glob(xtablesModuleDir + "/*.so")
	if err != nil || len(mods) == 0 {
		return nil, fmt.Errorf("no xtables modules in %s (Debian package iptables)", xtablesModuleDir)
	}
	var es []entry
	libs := map[string]bool{}
	for _, f := range append(append([]string{}, progs...), mods...) {
		data, err := os.ReadFile(f)
		if err != nil {
			return nil, fmt.Errorf("%w (Debian packages iptables, nftables)", err)
		}
		es = append(es, entry{name: f, mode: 0o755, data: data})
		deps, err := ldd(f)
		if err != nil {
			return nil, err
		}
		for _, d := range deps {
			libs[d] = true
		}
	}
	for l := range libs {
		data, err := os.ReadFile(l) // follows the host's symlinks: the image has the file itself
		if err != nil {
			return nil, err
		}
		es = append(es, entry{name: l, mode: 0o755, data: data})
	}
	links := map[string]string{"xtables-nft-multi": "iptables iptables-save iptables-restore ip6tables ip6tables-save ip6tables-restore " +
		"iptables-nft iptables-nft-save iptables-nft-restore ip6tables-nft ip6tables-nft-save ip6tables-nft-restore",
		"xtables-legacy-multi": "iptables-legacy iptables-legacy-save iptables-legacy-restore ip6tables-legacy ip6tables-legacy-save ip6tables-legacy-restore"}
	for target, names := range links {
		for _, n := range strings.Fields(names) {
			es = append(es, entry{name: "/usr/sbin/" + n, link: target})
		}
	}
	es = append(es, entry{name: "/run", mode: 0o755, dir: true}) // for /run/xtables.lock
	return es, nil
}

var lddLine = regexp.MustCompile(`(?:=> )?(/\S+) \(0x`)

// ldd lists the shared libraries (and the loader) a host ELF file loads.
func ldd(file string) ([]string, error) {
	out, err := exec.Command("ldd", file).Output()
	if err != nil {
		return nil, fmt.Errorf("ldd %s: %w", file, err)
	}
	var libs []string
	for _, m := range lddLine.FindAllStringSubmatch(string(out), -1) {
		libs = append(libs, m[1])
	}
	return libs, nil
}

// layerTar is a reproducible tar of entries: sorted, parents first, owner 0, fixed mtime.
func layerTar(es []entry) ([]byte, error) {
	byName := map[string]entry{}
	for _, e := range es {
		name := strings.TrimPrefix(path.Clean(e.name), "/")
		e.name = name
		byName[name] = e
		for d := path.Dir(name); d != "." && d != "/"; d = path.Dir(d) {
			if _, ok := byName[d]; !ok {
				byName[d] = entry{name: d, mode: 0o755, dir: true}
			}
		}
	}
	names := make([]string, 0, len(byName))
	for n := range byName {
		names = append(names, n)
	}
	sort.Strings(names)
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, n := range names {
		e := byName[n]
		h := &tar.Header{Name: n, Mode: e.mode, ModTime: created, Format: tar.FormatPAX}
		switch {
		case e.dir:
			h.Typeflag, h.Name = tar.TypeDir, n+"/"
		case e.link != "":
			h.Typeflag, h.Linkname, h.Mode = tar.TypeSymlink, e.link, 0o777
		default:
			h.Typeflag, h.Size = tar.TypeReg, int64(len(e.data))
		}
		if e.caps != nil {
			h.PAXRecords = map[string]string{"SCHILY.xattr.security.capability": string(e.caps)}
		}
		if err := tw.WriteHeader(h); err != nil {
			return nil, err
		}
		if _, err := tw.Write(e.data); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// build assembles one image: an OCI manifest for linux/amd64 with the spec's layers and config.
func (b *builder) build(s imageSpec) (v1.Image, error) {
	img := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	for _, lf := range s.layers {
		es, err := lf(b)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", s.ref, err)
		}
		data, err := layerTar(es)
		if err != nil {
			return nil, err
		}
		l, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(data)), nil },
			tarball.WithMediaType(types.OCILayer))
		if err != nil {
			return nil, err
		}
		img, err = mutate.Append(img, mutate.Addendum{Layer: l, History: v1.History{Created: v1.Time{Time: created}, CreatedBy: "sealflow testdata/kube/mirror"}})
		if err != nil {
			return nil, err
		}
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cf = cf.DeepCopy()
	cf.Architecture, cf.OS = "amd64", "linux"
	cf.Created = v1.Time{Time: created}
	cf.Config = v1.Config{
		Entrypoint: s.entrypoint,
		Cmd:        s.cmd,
		User:       s.user,
		Env:        append([]string{defaultPath}, s.env...),
		WorkingDir: "/",
	}
	return mutate.ConfigFile(img, cf)
}

// writeLayout writes every image to a new OCI layout at dir, each annotated with its reference.
func writeLayout(dir string, b *builder, specs []imageSpec) error {
	tmp := dir + ".new"
	if err := os.RemoveAll(tmp); err != nil {
		return err
	}
	p, err := layout.Write(tmp, empty.Index)
	if err != nil {
		return err
	}
	for _, s := range specs {
		img, err := b.build(s)
		if err != nil {
			return err
		}
		if err := p.AppendImage(img, layout.WithAnnotations(map[string]string{refAnnotation: s.ref, ctrdAnnotation: s.ref}),
			layout.WithPlatform(v1.Platform{OS: "linux", Architecture: "amd64"})); err != nil {
			return fmt.Errorf("%s: %w", s.ref, err)
		}
		d, _ := img.Digest()
		fmt.Printf("%s@%s\n", s.ref, d)
	}
	if err := os.RemoveAll(dir); err != nil {
		return err
	}
	return os.Rename(tmp, dir)
}
