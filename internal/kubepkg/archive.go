package kubepkg

import (
	"archive/tar"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
)

// maxUnpacked bounds what one upstream tarball may unpack to.
const maxUnpacked = 4 << 30

// writeTree writes the tree under root as a tar stream with entries named
// prefix/..., sorted, with fixed times and owners, so the same tree gives
// the same bytes. Only directories and regular files are allowed.
func writeTree(w io.Writer, root, prefix string) error {
	var paths []string
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() && !d.Type().IsRegular() {
			return fmt.Errorf("%s: only files and directories go into a package", p)
		}
		paths = append(paths, p)
		return nil
	})
	if err != nil {
		return err
	}
	names := make(map[string]string, len(paths))
	keys := make([]string, 0, len(paths))
	for _, p := range paths {
		rel, err := filepath.Rel(root, p)
		if err != nil {
			return err
		}
		n := path.Join(prefix, filepath.ToSlash(rel))
		if n == "" || n == "." {
			continue
		}
		names[n] = p
		keys = append(keys, n)
	}
	sort.Strings(keys)
	tw := tar.NewWriter(w)
	for _, n := range keys {
		p := names[n]
		fi, err := os.Stat(p)
		if err != nil {
			return err
		}
		h := &tar.Header{Name: n, ModTime: epoch, Mode: int64(fi.Mode().Perm()), Format: tar.FormatPAX}
		if fi.IsDir() {
			h.Typeflag, h.Name = tar.TypeDir, n+"/"
			if err := tw.WriteHeader(h); err != nil {
				return err
			}
			continue
		}
		h.Typeflag, h.Size = tar.TypeReg, fi.Size()
		if err := tw.WriteHeader(h); err != nil {
			return err
		}
		f, err := os.Open(p)
		if err != nil {
			return err
		}
		_, err = io.Copy(tw, f)
		f.Close()
		if err != nil {
			return fmt.Errorf("pack %s: %w", p, err)
		}
	}
	return tw.Close()
}

// writeTarGz writes root as a gzip'd tar (no name or time in the gzip header).
func writeTarGz(dst, root, prefix string) error {
	f, err := os.OpenFile(dst, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	zw, err := gzip.NewWriterLevel(f, gzip.DefaultCompression)
	if err != nil {
		f.Close()
		return err
	}
	if err := writeTree(zw, root, prefix); err != nil {
		f.Close()
		return err
	}
	if err := zw.Close(); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// writeTarFile writes root as a plain tar (images.tar).
func writeTarFile(dst, root string) error {
	f, err := os.OpenFile(dst, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	if err := writeTree(f, root, ""); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// unpackMembers extracts the regular files under from/ of a tarball
// (gzip'd or plain) into dir, keeping their paths below from and their
// modes; it returns the paths written, relative to dir.
func unpackMembers(tarball, from, dir string) ([]string, error) {
	f, err := os.Open(tarball)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var r io.Reader = f
	var magic [2]byte
	if _, err := io.ReadFull(f, magic[:]); err == nil && magic == [2]byte{0x1f, 0x8b} {
		if _, err := f.Seek(0, io.SeekStart); err != nil {
			return nil, err
		}
		zr, err := gzip.NewReader(f)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", tarball, err)
		}
		defer zr.Close()
		r = zr
	} else if _, err := f.Seek(0, io.SeekStart); err != nil {
		return nil, err
	}
	from = strings.Trim(path.Clean("/"+from), "/")
	tr := tar.NewReader(r)
	var written []string
	var total int64
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", tarball, err)
		}
		n := strings.Trim(path.Clean("/"+h.Name), "/")
		rel := n
		if from != "" {
			var ok bool
			rel, ok = strings.CutPrefix(n, from+"/")
			if !ok {
				continue
			}
		}
		switch h.Typeflag {
		case tar.TypeDir:
			continue
		case tar.TypeReg:
		default:
			return nil, fmt.Errorf("%s: member %s is not a regular file (links are not unpacked)", tarball, h.Name)
		}
		if rel == "" || !localPath(rel) {
			return nil, fmt.Errorf("%s: member %s has an unsafe path", tarball, h.Name)
		}
		total += h.Size
		if total > maxUnpacked {
			return nil, fmt.Errorf("%s: unpacks to more than %d bytes", tarball, int64(maxUnpacked))
		}
		dst := filepath.Join(dir, filepath.FromSlash(rel))
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			return nil, err
		}
		out, err := os.OpenFile(dst, os.O_CREATE|os.O_EXCL|os.O_WRONLY, fs.FileMode(h.Mode).Perm())
		if err != nil {
			return nil, fmt.Errorf("%s: member %s: %w", tarball, h.Name, err)
		}
		_, err = io.Copy(out, tr)
		if cerr := out.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return nil, fmt.Errorf("%s: member %s: %w", tarball, h.Name, err)
		}
		// The mode is the member's, not reduced by the umask.
		if err := os.Chmod(dst, fs.FileMode(h.Mode).Perm()); err != nil {
			return nil, err
		}
		written = append(written, rel)
	}
	if len(written) == 0 {
		what := "no files"
		if from != "" {
			what = "no files under " + from + "/"
		}
		return nil, fmt.Errorf("%s has %s", tarball, what)
	}
	return written, nil
}
