package kubepkg

import (
	"archive/tar"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"sort"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

const (
	// maxJSON bounds manifest.json, index.json and image manifests read.
	maxJSON = 16 << 20
	// maxProblems is how many problems Verify lists.
	maxProblems = 20
)

// VerifyError lists what does not match the package's manifest.json; the
// first problem is the first file (in the tarball's order) that differs.
type VerifyError struct {
	Package  string
	Problems []string
	More     int
}

func (e *VerifyError) Error() string {
	var sb strings.Builder
	fmt.Fprintf(&sb, "%s does not match its manifest.json: %s", e.Package, e.Problems[0])
	for _, p := range e.Problems[1:] {
		sb.WriteString("\n  " + p)
	}
	if e.More > 0 {
		fmt.Fprintf(&sb, "\n  ... and %d more", e.More)
	}
	return sb.String()
}

// Inspect reads a package's manifest.json.
func Inspect(pkg string) (*PackageManifest, error) {
	var pm *PackageManifest
	err := walkPackage(pkg, func(h *tar.Header, r io.Reader) (bool, error) {
		if h.Name != ManifestFile {
			return true, nil
		}
		var err error
		pm, err = readManifestJSON(r)
		return false, err
	})
	if err != nil {
		return nil, err
	}
	if pm == nil {
		return nil, fmt.Errorf("%s has no %s: not a package built by sealflow package build", pkg, ManifestFile)
	}
	return pm, nil
}

func readManifestJSON(r io.Reader) (*PackageManifest, error) {
	data, err := io.ReadAll(io.LimitReader(r, maxJSON+1))
	if err != nil {
		return nil, err
	}
	if len(data) > maxJSON {
		return nil, fmt.Errorf("%s is larger than %d bytes", ManifestFile, maxJSON)
	}
	var pm PackageManifest
	if err := json.Unmarshal(data, &pm); err != nil {
		return nil, fmt.Errorf("%s: %w", ManifestFile, err)
	}
	if pm.Format != FormatVersion {
		return nil, fmt.Errorf("%s has format %d; this sealflow reads format %d", ManifestFile, pm.Format, FormatVersion)
	}
	return &pm, nil
}

// walkPackage calls fn for each entry of a gzip'd tar until it returns false.
func walkPackage(pkg string, fn func(h *tar.Header, r io.Reader) (bool, error)) error {
	f, err := os.Open(pkg)
	if err != nil {
		return err
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		return fmt.Errorf("%s: not a gzip'd tarball: %w", pkg, err)
	}
	defer zr.Close()
	tr := tar.NewReader(zr)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("%s: %w", pkg, err)
		}
		more, err := fn(h, tr)
		if err != nil || !more {
			return err
		}
	}
}

type seenFile struct {
	sum  string
	size int64
	mode string
}

// Verify checks every file of a package against its manifest.json, and
// every image of images.tar: each blob's sha256, and each recorded image
// present with its digest and all its blobs.
func Verify(pkg string) (*PackageManifest, error) {
	var pm *PackageManifest
	seen := map[string]seenFile{}
	var order []string
	var imgs *layoutCheck
	var sums *[]byte
	err := walkPackage(pkg, func(h *tar.Header, r io.Reader) (bool, error) {
		if h.Typeflag != tar.TypeReg {
			return true, nil
		}
		rel, ok := strings.CutPrefix(h.Name, "kube/")
		if !ok {
			return true, fmt.Errorf("%s: entry %s is outside kube/", pkg, h.Name)
		}
		switch h.Name {
		case ManifestFile:
			var err error
			pm, err = readManifestJSON(r)
			return true, err
		case SumsFile:
			data, err := io.ReadAll(io.LimitReader(r, maxJSON+1))
			sums = &data
			return true, err
		}
		hash := sha256.New()
		var src io.Reader = io.TeeReader(r, hash)
		if rel == "images/images.tar" {
			imgs = &layoutCheck{}
			if err := imgs.read(src); err != nil {
				imgs.problems = append(imgs.problems, "images/images.tar: "+err.Error())
			}
		}
		n, err := io.Copy(io.Discard, src)
		if err != nil {
			return false, fmt.Errorf("%s: %s: %w", pkg, h.Name, err)
		}
		seen[rel] = seenFile{sum: hex.EncodeToString(hash.Sum(nil)), size: n, mode: modeString(uint32(h.Mode) & 0o777)}
		order = append(order, rel)
		return true, nil
	})
	if err != nil {
		return nil, err
	}
	if pm == nil {
		return nil, fmt.Errorf("%s has no %s: not a package built by sealflow package build", pkg, ManifestFile)
	}
	var problems []string
	want := map[string]FileSum{}
	for _, f := range pm.Files {
		want[f.Path] = f
	}
	for _, rel := range order {
		got := seen[rel]
		w, ok := want[rel]
		switch {
		case !ok:
			problems = append(problems, fmt.Sprintf("kube/%s is not in manifest.json", rel))
		case w.SHA256 != got.sum:
			problems = append(problems, fmt.Sprintf("kube/%s has sha256 %s, manifest.json says %s", rel, got.sum, w.SHA256))
		case w.Mode != got.mode:
			problems = append(problems, fmt.Sprintf("kube/%s has mode %s, manifest.json says %s", rel, got.mode, w.Mode))
		}
	}
	for _, f := range pm.Files {
		if _, ok := seen[f.Path]; !ok {
			problems = append(problems, fmt.Sprintf("kube/%s is missing", f.Path))
		}
	}
	switch {
	case sums == nil:
		problems = append(problems, SumsFile+" is missing")
	case string(*sums) != sumsText(pm.Files):
		problems = append(problems, SumsFile+" does not list the files of manifest.json")
	}
	if len(pm.Images) > 0 && imgs == nil {
		problems = append(problems, "kube/images/images.tar is missing")
	} else if imgs != nil {
		problems = append(problems, imgs.problems...)
		problems = append(problems, imgs.check(pm.Images)...)
	}
	if len(problems) > 0 {
		e := &VerifyError{Package: pkg, Problems: problems}
		if len(problems) > maxProblems {
			e.Problems, e.More = problems[:maxProblems], len(problems)-maxProblems
		}
		return pm, e
	}
	return pm, nil
}

// layoutCheck reads an OCI image layout tar, checking each blob's digest.
type layoutCheck struct {
	blobs    map[string]bool   // sha256:HEX present and intact
	small    map[string][]byte // blobs small enough to be manifests
	index    *v1.IndexManifest
	problems []string
}

func (l *layoutCheck) read(r io.Reader) error {
	l.blobs, l.small = map[string]bool{}, map[string][]byte{}
	tr := tar.NewReader(r)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		if h.Typeflag != tar.TypeReg {
			continue
		}
		name := path.Clean(h.Name)
		if name == "index.json" {
			data, err := io.ReadAll(io.LimitReader(tr, maxJSON+1))
			if err != nil {
				return err
			}
			var idx v1.IndexManifest
			if err := json.Unmarshal(data, &idx); err != nil {
				return fmt.Errorf("index.json: %w", err)
			}
			l.index = &idx
			continue
		}
		hexd, ok := strings.CutPrefix(name, "blobs/sha256/")
		if !ok {
			continue
		}
		hash := sha256.New()
		var keep []byte
		if h.Size <= maxJSON {
			data, err := io.ReadAll(io.TeeReader(tr, hash))
			if err != nil {
				return err
			}
			keep = data
		} else if _, err := io.Copy(hash, tr); err != nil {
			return err
		}
		got := hex.EncodeToString(hash.Sum(nil))
		if got != hexd {
			l.problems = append(l.problems, fmt.Sprintf("images/images.tar: blob %s has sha256 %s", hexd, got))
			continue
		}
		l.blobs["sha256:"+hexd] = true
		if keep != nil {
			l.small["sha256:"+hexd] = keep
		}
	}
}

// check finds each recorded image in the index with all its blobs.
func (l *layoutCheck) check(images []Image) []string {
	if l.index == nil {
		return []string{"images/images.tar has no index.json"}
	}
	var problems []string
	byName := map[string]v1.Descriptor{}
	for _, d := range l.index.Manifests {
		byName[d.Annotations[annotationImageName]] = d
	}
	refs := make([]string, 0, len(images))
	for _, im := range images {
		refs = append(refs, im.Ref)
	}
	sort.Strings(refs)
	for _, im := range images {
		d, ok := byName[fullName(im.Ref)]
		if !ok {
			problems = append(problems, fmt.Sprintf("image %s is missing from images.tar", im.Ref))
			continue
		}
		if d.Digest.String() != im.Digest {
			problems = append(problems, fmt.Sprintf("image %s is %s in images.tar, manifest.json says %s", im.Ref, d.Digest, im.Digest))
			continue
		}
		raw, ok := l.small[im.Digest]
		if !ok {
			problems = append(problems, fmt.Sprintf("image %s: its manifest %s is missing from images.tar", im.Ref, im.Digest))
			continue
		}
		var mf v1.Manifest
		if err := json.Unmarshal(raw, &mf); err != nil {
			problems = append(problems, fmt.Sprintf("image %s: manifest: %v", im.Ref, err))
			continue
		}
		for _, b := range append([]v1.Descriptor{mf.Config}, mf.Layers...) {
			if !l.blobs[b.Digest.String()] {
				problems = append(problems, fmt.Sprintf("image %s: blob %s is missing from images.tar", im.Ref, b.Digest))
			}
		}
	}
	return problems
}
