// Package kubepkg builds, inspects and verifies sealflow's offline
// Kubernetes packages: sealos-style tarballs with kube/bin, kube/cni/bin,
// kube/images/images.tar, kube/shell, kube/conf and kube/manifest.json.
//
// A package manifest (YAML) names what goes in: upstream files with their
// URLs and checksums, and images (what kubeadm names, what the CNI's manifest
// names, extra references, sealflow's own image). Build fetches them (HTTP
// with resume, registries through go-containerregistry), verifies every
// checksum, and writes a reproducible tarball; Verify checks a package
// against the manifest.json it carries.
package kubepkg

import (
	"embed"
	"errors"
	"fmt"
	"net/url"
	"path"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/goccy/go-yaml"
	"github.com/goccy/go-yaml/ast"
	"github.com/goccy/go-yaml/parser"
	"github.com/google/go-containerregistry/pkg/name"
)

// maxManifestSize bounds a package manifest read from a file.
const maxManifestSize = 1 << 20

//go:embed manifests/*.yaml
var defaultManifests embed.FS

// Manifest says what a package holds.
type Manifest struct {
	// Version is the Kubernetes version (v1.34.4).
	Version string `yaml:"version" json:"version"`
	// Arch is the package's architecture (amd64, arm64).
	Arch string `yaml:"arch" json:"arch"`
	// Versions of the other components, for the record (containerd: v2.2.9).
	Versions map[string]string `yaml:"versions" json:"versions,omitempty"`
	Files    []File            `yaml:"files" json:"files"`
	Images   Images            `yaml:"images" json:"images"`

	// Source is the manifest's text and SourceName where it came from.
	Source     string `yaml:"-" json:"-"`
	SourceName string `yaml:"-" json:"-"`
}

// File is one upstream file.
type File struct {
	// Name identifies the file (in errors, images.from_files, progress).
	Name string `yaml:"name" json:"name"`
	// URL is where it is fetched from; ${version} and ${arch} expand.
	URL string `yaml:"url" json:"url"`
	// SHA256 pins its checksum. When empty, ChecksumURL is fetched.
	SHA256 string `yaml:"sha256" json:"sha256,omitempty"`
	// ChecksumURL is the checksum file published next to it (default URL.sha256):
	// "HEX" alone or "HEX  NAME" lines.
	ChecksumURL string `yaml:"checksum_url" json:"checksum_url,omitempty"`
	// Unverified allows a file with neither SHA256 nor a checksum file.
	Unverified bool `yaml:"unverified" json:"unverified,omitempty"`
	// To is where the file goes in the package, relative to kube/.
	To string `yaml:"to" json:"to,omitempty"`
	// Mode of the file in the package (default 0644; 0755 for bin/).
	Mode *uint32 `yaml:"mode" json:"mode,omitempty"`
	// Unpack extracts a tarball (gzip) instead: its regular files under From
	// go to To, keeping their paths below From.
	Unpack *Unpack `yaml:"unpack" json:"unpack,omitempty"`
}

// Unpack says which members of a tarball go where.
type Unpack struct {
	From string `yaml:"from" json:"from,omitempty"`
	To   string `yaml:"to" json:"to"`
}

// Images says which images the package holds.
type Images struct {
	// Kubeadm adds what `kubeadm config images list` names for Version.
	Kubeadm bool `yaml:"kubeadm" json:"kubeadm"`
	// FromFiles adds every image: reference in these files (by name).
	FromFiles []string `yaml:"from_files" json:"from_files,omitempty"`
	// Refs are further references.
	Refs []string `yaml:"refs" json:"refs,omitempty"`
	// Sealflow adds sealflow's own image (the lvscare static pod's).
	Sealflow bool `yaml:"sealflow" json:"sealflow"`
}

// reserved are the package paths the builder itself writes.
var reserved = []string{"shell", "conf", "images", "manifest.json", "SHA256SUMS"}

var (
	versionRE  = regexp.MustCompile(`^v[0-9]+\.[0-9]+\.[0-9]+$`)
	fileNameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9-]*$`)
	sha256RE   = regexp.MustCompile(`^[0-9a-f]{64}$`)
)

// Arches are the architectures a package can be built for.
var Arches = []string{"amd64", "arm64"}

// ManifestError is an invalid manifest: every problem found, each with its
// position.
type ManifestError struct {
	Problems []string
}

func (e *ManifestError) Error() string {
	if len(e.Problems) == 1 {
		return e.Problems[0]
	}
	return fmt.Sprintf("%d problems in the package manifest:\n  %s", len(e.Problems), strings.Join(e.Problems, "\n  "))
}

// DefaultVersions lists the Kubernetes versions with an embedded manifest.
func DefaultVersions() []string {
	ents, _ := defaultManifests.ReadDir("manifests")
	var vs []string
	for _, e := range ents {
		vs = append(vs, strings.TrimSuffix(e.Name(), ".yaml"))
	}
	sort.Strings(vs)
	return vs
}

// DefaultManifest is the embedded manifest of a Kubernetes version.
func DefaultManifest(version, arch string) (*Manifest, error) {
	data, err := defaultManifests.ReadFile("manifests/" + version + ".yaml")
	if err != nil {
		return nil, fmt.Errorf("no package manifest for Kubernetes %q is built in (built in: %s); write one and pass it with -f",
			version, strings.Join(DefaultVersions(), ", "))
	}
	return ParseManifest("default manifest "+version, data, arch)
}

// ParseManifest decodes and validates a manifest. arch, when not empty,
// overrides the manifest's.
func ParseManifest(file string, data []byte, arch string) (*Manifest, error) {
	if len(data) > maxManifestSize {
		return nil, fmt.Errorf("%s: the manifest is larger than %d bytes", file, maxManifestSize)
	}
	f, err := parser.ParseBytes(data, 0)
	if err != nil {
		return nil, &ManifestError{Problems: []string{yamlProblem(file, err)}}
	}
	m := &Manifest{Source: string(data), SourceName: file}
	if len(f.Docs) != 1 || f.Docs[0].Body == nil {
		return nil, &ManifestError{Problems: []string{file + ": expected one YAML document"}}
	}
	if err := yaml.NodeToValue(f.Docs[0].Body, m, yaml.Strict(), yaml.DisallowUnknownField()); err != nil {
		return nil, &ManifestError{Problems: []string{yamlProblem(file, err)}}
	}
	if arch != "" {
		m.Arch = arch
	}
	v := &validator{file: file, ast: f}
	v.check(m)
	if len(v.problems) > 0 {
		return nil, &ManifestError{Problems: v.problems}
	}
	m.expand()
	return m, nil
}

func yamlProblem(file string, err error) string {
	var ye yaml.Error
	if errors.As(err, &ye) && ye.GetToken() != nil {
		p := ye.GetToken().Position
		return fmt.Sprintf("%s:%d:%d: %s", file, p.Line, p.Column, ye.GetMessage())
	}
	return fmt.Sprintf("%s: %v", file, err)
}

type validator struct {
	file     string
	ast      *ast.File
	problems []string
}

// at reports a problem at the node of a YAML path ($.files[0].url), or at
// the nearest parent that exists.
func (v *validator) at(p string, format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	for q := p; q != ""; q = parentPath(q) {
		yp, err := yaml.PathString(q)
		if err != nil {
			continue
		}
		n, err := yp.FilterFile(v.ast)
		if err != nil || n == nil {
			continue
		}
		pos := n.GetToken().Position
		v.problems = append(v.problems, fmt.Sprintf("%s:%d:%d: %s", v.file, pos.Line, pos.Column, msg))
		return
	}
	v.problems = append(v.problems, fmt.Sprintf("%s: %s", v.file, msg))
}

func parentPath(p string) string {
	if p == "$" {
		return ""
	}
	i := strings.LastIndexAny(p, ".[")
	if i <= 0 {
		return "$"
	}
	return p[:i]
}

func (v *validator) check(m *Manifest) {
	if !versionRE.MatchString(m.Version) {
		v.at("$.version", "version %q is not a Kubernetes version such as v1.34.4", m.Version)
	}
	if !slices.Contains(Arches, m.Arch) {
		v.at("$.arch", "arch %q is not one of %s", m.Arch, strings.Join(Arches, ", "))
	}
	if len(m.Files) == 0 {
		v.at("$", "the manifest has no files (kubeadm, kubelet, kubectl ... are needed)")
	}
	names := map[string]bool{}
	dests := map[string]string{}
	for i, f := range m.Files {
		at := fmt.Sprintf("$.files[%d]", i)
		switch {
		case !fileNameRE.MatchString(f.Name):
			v.at(at+".name", "file name %q: use lowercase letters, digits and '-'", f.Name)
		case names[f.Name]:
			v.at(at+".name", "file name %q is used twice", f.Name)
		}
		names[f.Name] = true
		v.checkURL(at+".url", f.URL, "url")
		if f.ChecksumURL != "" {
			v.checkURL(at+".checksum_url", f.ChecksumURL, "checksum_url")
		}
		if f.SHA256 != "" && !sha256RE.MatchString(f.SHA256) {
			v.at(at+".sha256", "sha256 %q is not 64 lowercase hex digits", f.SHA256)
		}
		if f.Unverified && (f.SHA256 != "" || f.ChecksumURL != "") {
			v.at(at+".unverified", "unverified: true with a sha256 or checksum_url: drop unverified")
		}
		if f.Mode != nil && *f.Mode > 0o777 {
			v.at(at+".mode", "mode %o is not a permission mode (0644, 0755)", *f.Mode)
		}
		var dest string
		switch {
		case f.To != "" && f.Unpack != nil:
			v.at(at+".unpack", "file %s has both to: and unpack:; choose one", f.Name)
			continue
		case f.To == "" && f.Unpack == nil:
			v.at(at, "file %s has neither to: (where it goes in the package) nor unpack:", f.Name)
			continue
		case f.To != "":
			dest = f.To
			if !v.checkPath(at+".to", f.To) {
				continue
			}
		default:
			dest = f.Unpack.To
			if !v.checkPath(at+".unpack.to", f.Unpack.To) {
				continue
			}
			if f.Unpack.From != "" && !localPath(f.Unpack.From) {
				v.at(at+".unpack.from", "unpack.from %q must be a relative path inside the tarball", f.Unpack.From)
			}
			if f.Mode != nil {
				v.at(at+".mode", "mode does not apply to unpack: (members keep their modes)")
			}
		}
		if f.To != "" {
			if other, ok := dests[dest]; ok {
				v.at(at+".to", "%s is also where %s goes", dest, other)
			}
			dests[dest] = f.Name
		}
	}
	for i, n := range m.Images.FromFiles {
		if !names[n] {
			v.at(fmt.Sprintf("$.images.from_files[%d]", i), "from_files names %q, which is not a file of the manifest", n)
		}
	}
	for i, r := range m.Images.Refs {
		if _, err := name.ParseReference(m.expandString(r), name.StrictValidation); err != nil {
			v.at(fmt.Sprintf("$.images.refs[%d]", i), "image %q: %v (write REGISTRY/REPOSITORY:TAG)", r, err)
		}
	}
}

func (v *validator) checkURL(at, raw, what string) {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		v.at(at, "%s %q is not an http(s) URL", what, raw)
	}
}

// checkPath checks a destination inside kube/.
func (v *validator) checkPath(at, p string) bool {
	if !localPath(p) {
		v.at(at, "%q must be a relative path inside the package (such as bin/kubeadm)", p)
		return false
	}
	top := strings.SplitN(path.Clean(p), "/", 2)[0]
	if slices.Contains(reserved, top) {
		v.at(at, "%q is written by the builder itself (%s are reserved)", p, strings.Join(reserved, ", "))
		return false
	}
	return true
}

func localPath(p string) bool {
	c := path.Clean(p)
	return p != "" && !path.IsAbs(p) && c != "." && c != ".." && !strings.HasPrefix(c, "../")
}

func (m *Manifest) expandString(s string) string {
	return strings.NewReplacer("${version}", m.Version, "${arch}", m.Arch).Replace(s)
}

// expand replaces ${version} and ${arch} and fills defaults.
func (m *Manifest) expand() {
	for i := range m.Files {
		f := &m.Files[i]
		f.URL = m.expandString(f.URL)
		f.ChecksumURL = m.expandString(f.ChecksumURL)
		if f.ChecksumURL == "" && f.SHA256 == "" && !f.Unverified {
			f.ChecksumURL = f.URL + ".sha256"
		}
		if f.Mode == nil && f.To != "" {
			mode := uint32(0o644)
			if strings.HasPrefix(f.To, "bin/") {
				mode = 0o755
			}
			f.Mode = &mode
		}
	}
	for i, r := range m.Images.Refs {
		m.Images.Refs[i] = m.expandString(r)
	}
}

// file returns the manifest's file of that name.
func (m *Manifest) file(n string) *File {
	for i := range m.Files {
		if m.Files[i].Name == n {
			return &m.Files[i]
		}
	}
	return nil
}

func modeString(m uint32) string { return "0" + strconv.FormatUint(uint64(m), 8) }
