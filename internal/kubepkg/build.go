package kubepkg

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"golang.org/x/sync/errgroup"

	"github.com/sealflow/sealflow/internal/transport"
	"github.com/sealflow/sealflow/internal/version"
)

// ManifestFile is where a package carries its manifest.json, and
// SumsFile its sha256sum-format list (for `sha256sum -c` on a host).
const (
	ManifestFile = "kube/manifest.json"
	SumsFile     = "kube/SHA256SUMS"
	// FormatVersion is the version of manifest.json's format.
	FormatVersion = 1
)

// BuildOptions are the inputs of Build.
type BuildOptions struct {
	Manifest *Manifest
	// Out is the tarball to write; it appears only once complete.
	Out     string
	Mirrors Mirrors
	// Cache keeps verified downloads by sha256 for the next build ("" = none).
	Cache string
	// SealflowBinary goes into sealflow's image (default: this executable,
	// when the package's arch is this machine's).
	SealflowBinary  string
	SealflowVersion string
	// Progress hears about downloads and images (nil = silent).
	Progress Progress
	// Log gets one line per stage (nil = silent).
	Log io.Writer
	// HTTP is the client for files; Transport the one for registries (nil = defaults).
	HTTP      *http.Client
	Transport http.RoundTripper
	// ListImages lists kubeadm's images (default: runs kubeadm).
	ListImages func(ctx context.Context, kubeadm, version string) ([]string, error)
	// Assets holds shell/ and conf/ (default: the embedded ones).
	Assets fs.FS
	// Backoff between download attempts (nil = 1s, 2s, 4s ...).
	Backoff func(attempt int) time.Duration
}

// PackageManifest is kube/manifest.json.
type PackageManifest struct {
	Format     int               `json:"format"`
	Kubernetes string            `json:"kubernetes"`
	Arch       string            `json:"arch"`
	Sealflow   string            `json:"sealflow,omitempty"`
	Versions   map[string]string `json:"versions,omitempty"`
	Sources    []Source          `json:"sources"`
	Files      []FileSum         `json:"files"`
	Images     []Image           `json:"images"`
	// Manifest is the text of the package manifest it was built from.
	Manifest string `json:"manifest"`
}

// Source is an upstream file and how it was verified.
type Source struct {
	Name   string `json:"name"`
	URL    string `json:"url"`
	SHA256 string `json:"sha256"`
	// Verified: "pinned", the checksum file's URL, or "unverified".
	Verified string `json:"verified"`
}

// FileSum is a file of the package.
type FileSum struct {
	Path   string `json:"path"`
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
	Mode   string `json:"mode"`
}

// Result is a built package.
type Result struct {
	Path     string
	Size     int64
	SHA256   string
	Manifest *PackageManifest
}

// Build writes the package the manifest describes.
func Build(ctx context.Context, o BuildOptions) (*Result, error) {
	if o.Manifest == nil {
		return nil, errors.New("build: no manifest")
	}
	m := o.Manifest
	out, err := filepath.Abs(o.Out)
	if err != nil {
		return nil, err
	}
	if fi, err := os.Stat(out); err == nil && fi.IsDir() {
		return nil, fmt.Errorf("-o %s is a directory: name the tarball (%s/kube%s.tar.gz)", o.Out, o.Out, strings.TrimPrefix(m.Version, "v"))
	}
	dir := filepath.Dir(out)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	partial := filepath.Join(dir, "."+filepath.Base(out)+".partial")
	os.Remove(partial)
	work, err := os.MkdirTemp(dir, "."+filepath.Base(out)+".build-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(work)
	ok := false
	defer func() {
		if !ok {
			os.Remove(partial)
		}
	}()
	b := &builder{o: o, m: m, work: work, stage: filepath.Join(work, "stage", "kube")}
	b.fetcher = &Fetcher{Client: o.HTTP, Mirrors: o.Mirrors, Progress: o.Progress, Backoff: o.Backoff}
	if err := os.MkdirAll(b.stage, 0o755); err != nil {
		return nil, err
	}
	pm := &PackageManifest{Format: FormatVersion, Kubernetes: m.Version, Arch: m.Arch, Sealflow: o.SealflowVersion,
		Versions: map[string]string{"kubernetes": m.Version}, Manifest: m.Source}
	for k, v := range m.Versions {
		pm.Versions[k] = v
	}
	if pm.Sources, err = b.files(ctx); err != nil {
		return nil, err
	}
	if pm.Images, err = b.images(ctx); err != nil {
		return nil, err
	}
	if err := b.assets(); err != nil {
		return nil, err
	}
	if pm.Files, err = b.sums(); err != nil {
		return nil, err
	}
	if err := writeJSON(filepath.Join(b.stage, "manifest.json"), pm); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	b.logf("packing %s", out)
	if err := writeTarGz(partial, filepath.Dir(b.stage), ""); err != nil {
		return nil, fmt.Errorf("write %s: %w", partial, err)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	sum, err := transport.FileSum(partial)
	if err != nil {
		return nil, err
	}
	fi, err := os.Stat(partial)
	if err != nil {
		return nil, err
	}
	if err := os.Rename(partial, out); err != nil {
		return nil, err
	}
	ok = true
	return &Result{Path: out, Size: fi.Size(), SHA256: sum, Manifest: pm}, nil
}

type builder struct {
	o       BuildOptions
	m       *Manifest
	fetcher *Fetcher
	work    string
	stage   string // WORK/stage/kube
}

func (b *builder) logf(format string, args ...any) {
	if b.o.Log != nil {
		fmt.Fprintf(b.o.Log, format+"\n", args...)
	}
}

// files fetches, verifies and places every file, four at a time.
func (b *builder) files(ctx context.Context) ([]Source, error) {
	srcs := make([]Source, len(b.m.Files))
	paths := make([]string, len(b.m.Files))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(4)
	for i := range b.m.Files {
		f := b.m.Files[i]
		g.Go(func() error {
			p, src, err := b.fetch(gctx, f)
			srcs[i], paths[i] = src, p
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	// Placing is sequential: two tarballs may not write the same path.
	for i, f := range b.m.Files {
		if err := b.place(f, paths[i]); err != nil {
			return nil, err
		}
	}
	return srcs, nil
}

// fetch downloads one file (or takes it from the cache) and verifies it.
func (b *builder) fetch(ctx context.Context, f File) (string, Source, error) {
	src := Source{Name: f.Name, URL: f.URL}
	want := f.SHA256
	switch {
	case want != "":
		src.Verified = "pinned"
	case f.ChecksumURL != "":
		sum, err := b.fetcher.Checksum(ctx, f.ChecksumURL, f.URL)
		if err != nil {
			return "", src, fmt.Errorf("%s: %w", f.Name, err)
		}
		want, src.Verified = sum, f.ChecksumURL
	default:
		src.Verified = "unverified"
	}
	if want != "" && b.o.Cache != "" {
		cached := filepath.Join(b.o.Cache, "sha256", want)
		if got, err := transport.FileSum(cached); err == nil && got == want {
			b.logf("%s: cached (sha256 %s)", f.Name, want[:12])
			src.SHA256 = want
			return cached, src, nil
		}
	}
	dlDir := filepath.Join(b.work, "dl")
	if b.o.Cache != "" {
		dlDir = filepath.Join(b.o.Cache, "partial")
	}
	if err := os.MkdirAll(dlDir, 0o755); err != nil {
		return "", src, err
	}
	h := sha256.Sum256([]byte(f.URL))
	dst := filepath.Join(dlDir, hex.EncodeToString(h[:8])+"-"+path.Base(f.URL))
	got, err := b.fetcher.Download(ctx, f.Name, f.URL, dst)
	if err != nil {
		return "", src, fmt.Errorf("%s: %w", f.Name, err)
	}
	if want != "" && got != want {
		os.Remove(dst)
		return "", src, &ChecksumError{Name: f.Name, URL: f.URL, Want: want, Got: got, From: src.Verified}
	}
	src.SHA256 = got
	b.logf("%s: %s (sha256 %s, %s)", f.Name, f.URL, got[:12], src.Verified)
	if b.o.Cache != "" && want != "" {
		cached := filepath.Join(b.o.Cache, "sha256", want)
		if err := os.MkdirAll(filepath.Dir(cached), 0o755); err != nil {
			return "", src, err
		}
		if err := os.Rename(dst, cached); err != nil {
			return "", src, err
		}
		return cached, src, nil
	}
	return dst, src, nil
}

// place puts a fetched file into the stage.
func (b *builder) place(f File, p string) error {
	if f.Unpack != nil {
		dir := filepath.Join(b.stage, filepath.FromSlash(f.Unpack.To))
		if _, err := unpackMembers(p, f.Unpack.From, dir); err != nil {
			return fmt.Errorf("%s: %w", f.Name, err)
		}
		return nil
	}
	dst := filepath.Join(b.stage, filepath.FromSlash(f.To))
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	if err := copyFile(p, dst, fs.FileMode(*f.Mode)); err != nil {
		return fmt.Errorf("%s: %w", f.Name, err)
	}
	return nil
}

func copyFile(src, dst string, mode fs.FileMode) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_EXCL|os.O_WRONLY, mode)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	if err := out.Close(); err != nil {
		return err
	}
	return os.Chmod(dst, mode)
}

// imageRefs lists the package's images, with why each is there.
func (b *builder) imageRefs(ctx context.Context) ([]Image, error) {
	from := map[string]string{}
	add := func(ref, why string) {
		if _, ok := from[ref]; !ok {
			from[ref] = why
		}
	}
	im := b.m.Images
	if im.Kubeadm {
		kubeadm, err := b.hostKubeadm(ctx)
		if err != nil {
			return nil, err
		}
		list := b.o.ListImages
		if list == nil {
			list = kubeadmImages
		}
		refs, err := list(ctx, kubeadm, b.m.Version)
		if err != nil {
			return nil, err
		}
		for _, r := range refs {
			add(r, "kubeadm")
		}
	}
	for _, n := range im.FromFiles {
		f := b.m.file(n)
		if f == nil || f.To == "" {
			return nil, fmt.Errorf("images.from_files: %s is not a file placed with to:", n)
		}
		data, err := os.ReadFile(filepath.Join(b.stage, filepath.FromSlash(f.To)))
		if err != nil {
			return nil, err
		}
		refs, err := fileImages(data)
		if err != nil {
			return nil, fmt.Errorf("images in %s: %w", n, err)
		}
		if len(refs) == 0 {
			return nil, fmt.Errorf("images.from_files: %s (%s) names no image", n, f.URL)
		}
		for _, r := range refs {
			add(r, n)
		}
	}
	for _, r := range im.Refs {
		add(r, "refs")
	}
	if im.Sealflow {
		add(version.ImageOf(b.o.SealflowVersion), "sealflow")
	}
	refs := make([]string, 0, len(from))
	for r := range from {
		refs = append(refs, r)
	}
	sort.Strings(refs)
	out := make([]Image, len(refs))
	for i, r := range refs {
		out[i] = Image{Ref: r, From: from[r]}
	}
	return out, nil
}

// hostKubeadm is a kubeadm this machine can run: the package's, or, for a
// package of another architecture, the same release for this machine's.
func (b *builder) hostKubeadm(ctx context.Context) (string, error) {
	f := b.m.file("kubeadm")
	if f == nil || f.To == "" {
		return "", errors.New("images.kubeadm: the manifest has no file named kubeadm placed with to:")
	}
	if b.m.Arch == runtime.GOARCH {
		return filepath.Join(b.stage, filepath.FromSlash(f.To)), nil
	}
	host := *f
	host.Name = "kubeadm-" + runtime.GOARCH
	host.URL = strings.ReplaceAll(f.URL, "/"+b.m.Arch+"/", "/"+runtime.GOARCH+"/")
	if host.URL == f.URL {
		return "", fmt.Errorf("images.kubeadm: cannot tell where kubeadm for %s is (its URL %s has no /%s/)", runtime.GOARCH, f.URL, b.m.Arch)
	}
	host.SHA256 = ""
	if f.ChecksumURL != "" {
		host.ChecksumURL = strings.ReplaceAll(f.ChecksumURL, "/"+b.m.Arch+"/", "/"+runtime.GOARCH+"/")
	}
	p, _, err := b.fetch(ctx, host)
	if err != nil {
		return "", err
	}
	exe := filepath.Join(b.work, "host-kubeadm")
	if err := copyFile(p, exe, 0o755); err != nil {
		return "", err
	}
	return exe, nil
}

// images pulls every image for the package's platform and writes
// kube/images/images.tar (an OCI image layout).
func (b *builder) images(ctx context.Context) ([]Image, error) {
	recs, err := b.imageRefs(ctx)
	if err != nil {
		return nil, err
	}
	platform := v1.Platform{OS: "linux", Architecture: b.m.Arch}
	lay, err := newImageLayout(filepath.Join(b.work, "layout"), platform)
	if err != nil {
		return nil, err
	}
	p := puller{mirrors: b.o.Mirrors, platform: platform, transport: b.o.Transport}
	prog := b.fetcher.progress()
	for i, rec := range recs {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		prog.Start(rec.Ref, -1)
		var img v1.Image
		if rec.From == "sealflow" {
			img, err = b.sealflowImage()
			if err == nil {
				var d v1.Hash
				d, err = img.Digest()
				recs[i].Digest = d.String()
			}
		} else {
			var got Image
			img, got, err = p.pull(ctx, rec.Ref)
			recs[i].Digest, recs[i].IndexDigest = got.Digest, got.IndexDigest
		}
		if err == nil {
			err = lay.add(rec.Ref, img)
		}
		prog.Done(rec.Ref, err)
		if err != nil {
			return nil, err
		}
		b.logf("image %s@%s (%s)", rec.Ref, recs[i].Digest, rec.From)
	}
	dst := filepath.Join(b.stage, "images", "images.tar")
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return nil, err
	}
	if err := writeTarFile(dst, filepath.Join(b.work, "layout")); err != nil {
		return nil, fmt.Errorf("write images.tar: %w", err)
	}
	return recs, nil
}

func (b *builder) sealflowImage() (v1.Image, error) {
	bin := b.o.SealflowBinary
	if bin == "" {
		if b.m.Arch != runtime.GOARCH {
			return nil, fmt.Errorf("sealflow's image for %s needs a sealflow binary for %s: pass --sealflow-binary (GOARCH=%s make build)", b.m.Arch, b.m.Arch, b.m.Arch)
		}
		exe, err := os.Executable()
		if err != nil {
			return nil, fmt.Errorf("sealflow's image: %w", err)
		}
		bin = exe
	}
	return sealflowImage(bin, b.m.Arch)
}

// assets copies shell/ and conf/ into the stage.
func (b *builder) assets() error {
	src := b.o.Assets
	if src == nil {
		src = Assets()
	}
	return fs.WalkDir(src, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		top := strings.SplitN(p, "/", 2)[0]
		if p == "." || (top != "shell" && top != "conf") {
			if d.IsDir() && p != "." {
				return fs.SkipDir
			}
			return nil
		}
		dst := filepath.Join(b.stage, filepath.FromSlash(p))
		if d.IsDir() {
			return os.MkdirAll(dst, 0o755)
		}
		data, err := fs.ReadFile(src, p)
		if err != nil {
			return err
		}
		mode := fs.FileMode(0o644)
		if strings.HasSuffix(p, ".sh") {
			mode = 0o755
		}
		if err := os.WriteFile(dst, data, mode); err != nil {
			return err
		}
		return os.Chmod(dst, mode)
	})
}

// sums lists every file of the stage and writes SHA256SUMS.
func (b *builder) sums() ([]FileSum, error) {
	var files []FileSum
	err := filepath.WalkDir(b.stage, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, err := filepath.Rel(b.stage, p)
		if err != nil {
			return err
		}
		rel = filepath.ToSlash(rel)
		fi, err := d.Info()
		if err != nil {
			return err
		}
		sum, err := transport.FileSum(p)
		if err != nil {
			return err
		}
		files = append(files, FileSum{Path: rel, Size: fi.Size(), SHA256: sum, Mode: modeString(uint32(fi.Mode().Perm()))})
		return nil
	})
	if err != nil {
		return nil, err
	}
	sort.Slice(files, func(i, j int) bool { return files[i].Path < files[j].Path })
	if err := os.WriteFile(filepath.Join(b.stage, "SHA256SUMS"), []byte(sumsText(files)), 0o644); err != nil {
		return nil, err
	}
	return files, nil
}

// sumsText is SHA256SUMS: `sha256sum -c` format, paths from kube's parent.
func sumsText(files []FileSum) string {
	var sb strings.Builder
	for _, f := range files {
		fmt.Fprintf(&sb, "%s  kube/%s\n", f.SHA256, f.Path)
	}
	return sb.String()
}

func writeJSON(p string, v any) error {
	data, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(p, append(data, '\n'), 0o644)
}
