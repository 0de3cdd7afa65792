package relay

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"strconv"
	"strings"
)

// MinChunk is the smallest chunk; a file gets at most maxChunks chunks.
const (
	MinChunk  = 1 << 20
	maxChunks = 4096
)

// Manifest is what the control machine vouches for: the file's size, its
// sha256 and the sha256 of each chunk.
type Manifest struct {
	Size  int64
	Chunk int64
	Whole [32]byte
	Sums  [][32]byte
}

// ChunkSize is the chunk size for a file of size bytes: MinChunk, larger
// for files of more than maxChunks MiB, so that a manifest stays small.
func ChunkSize(size int64) int64 {
	c := int64(MinChunk)
	for size > c*maxChunks {
		c *= 2
	}
	return c
}

// NewManifest reads r (size bytes) once.
func NewManifest(r io.Reader, size int64) (*Manifest, error) {
	m := &Manifest{Size: size, Chunk: ChunkSize(size)}
	whole := sha256.New()
	buf := make([]byte, m.Chunk)
	for off := int64(0); off < size; off += m.Chunk {
		n := m.chunkLen(off)
		if _, err := io.ReadFull(r, buf[:n]); err != nil {
			if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
				return nil, errors.New("the file is shorter than its size: it changed while being read")
			}
			return nil, err
		}
		m.Sums = append(m.Sums, sha256.Sum256(buf[:n]))
		whole.Write(buf[:n])
	}
	copy(m.Whole[:], whole.Sum(nil))
	return m, nil
}

// chunkLen is the length of the chunk at off.
func (m *Manifest) chunkLen(off int64) int64 { return min(m.Chunk, m.Size-off) }

// WholeHex is the file's hex sha256.
func (m *Manifest) WholeHex() string { return hex.EncodeToString(m.Whole[:]) }

// Line is the manifest as the agent reads it (after the keyword).
func (m *Manifest) Line() string {
	var b strings.Builder
	b.Grow(64*len(m.Sums) + 100)
	b.WriteString(strconv.FormatInt(m.Size, 10))
	b.WriteByte(' ')
	b.WriteString(strconv.FormatInt(m.Chunk, 10))
	b.WriteByte(' ')
	b.WriteString(m.WholeHex())
	b.WriteByte(' ')
	for _, s := range m.Sums {
		b.WriteString(hex.EncodeToString(s[:]))
	}
	if len(m.Sums) == 0 {
		b.WriteByte('-')
	}
	return b.String()
}

func parseManifest(s string) (*Manifest, error) {
	f := strings.Fields(s)
	if len(f) != 4 {
		return nil, errors.New("manifest: want SIZE CHUNK WHOLE SUMS")
	}
	m := &Manifest{}
	var err error
	if m.Size, err = strconv.ParseInt(f[0], 10, 64); err != nil || m.Size < 0 {
		return nil, errors.New("manifest: bad size")
	}
	if m.Chunk, err = strconv.ParseInt(f[1], 10, 64); err != nil || m.Chunk < 1 || m.Chunk > 1<<30 {
		return nil, errors.New("manifest: bad chunk size")
	}
	if err := decodeSum(m.Whole[:], f[2]); err != nil {
		return nil, err
	}
	n := (m.Size + m.Chunk - 1) / m.Chunk
	sums := f[3]
	if n == 0 && sums == "-" {
		sums = ""
	}
	if int64(len(sums)) != 64*n {
		return nil, errors.New("manifest: the chunk sums do not match the size")
	}
	m.Sums = make([][32]byte, n)
	for i := range m.Sums {
		if err := decodeSum(m.Sums[i][:], sums[64*i:64*i+64]); err != nil {
			return nil, err
		}
	}
	return m, nil
}

func decodeSum(dst []byte, s string) error {
	if len(s) != 64 {
		return errors.New("manifest: a sha256 is not 64 hex digits")
	}
	if _, err := hex.Decode(dst, []byte(s)); err != nil {
		return errors.New("manifest: a sha256 is not 64 hex digits")
	}
	return nil
}
