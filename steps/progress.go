package steps

import (
	"context"
	"io"
	"io/fs"
	"os"
	"path/filepath"
)

// Progress is how far a step's upload is (see Target.Progress).
type Progress struct {
	// Name is the file's last path element; Dest where it goes.
	Name, Dest string
	// Bytes is how far into the file the upload is; Total its size.
	Bytes, Total int64
	// End is set once, when the upload succeeded; Sent is then how many
	// bytes were read to send it (0 when the host had the file already).
	End  bool
	Sent int64
}

// uploadFile uploads the open file f (of size bytes) to dest, telling
// t.Progress how far it is.
func uploadFile(ctx context.Context, t *Target, f *os.File, size int64, dest string, mode fs.FileMode, sum string) error {
	r := &progressFile{f: f, t: t, p: Progress{Name: filepath.Base(f.Name()), Dest: dest, Total: size}}
	if pos, err := f.Seek(0, io.SeekCurrent); err == nil {
		r.p.Bytes = pos
	}
	if err := t.Conn.Upload(ctx, r, dest, mode, sum); err != nil {
		return err
	}
	r.p.End, r.p.Bytes = true, size
	r.report()
	return nil
}

// progressFile is a file being uploaded that reports its position. It
// has the methods the transports look for (Seek to resume a partial
// upload, Stat to know the size) and no others, so every byte they read
// goes through Read.
type progressFile struct {
	f *os.File
	t *Target
	p Progress
}

func (r *progressFile) Read(b []byte) (int, error) {
	n, err := r.f.Read(b)
	if n > 0 {
		r.p.Bytes += int64(n)
		r.p.Sent += int64(n)
		r.report()
	}
	return n, err
}

func (r *progressFile) Seek(offset int64, whence int) (int64, error) {
	pos, err := r.f.Seek(offset, whence)
	if err == nil {
		r.p.Bytes = pos
	}
	return pos, err
}

func (r *progressFile) Stat() (fs.FileInfo, error) { return r.f.Stat() }

func (r *progressFile) report() {
	if r.t.Progress != nil {
		r.t.Progress(r.p)
	}
}
