package plans

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"unicode/utf8"
)

// MaxFileSize bounds a plan or inventory file. The YAML parser needs tens
// of bytes of memory per byte of input, so the limit keeps a load within a
// few hundred MB whatever the file holds.
const MaxFileSize = 4 << 20

// ReadFile reads a plan or inventory file, refusing one larger than
// MaxFileSize without reading more than that (a device such as
// /dev/urandom included).
func ReadFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	size := int64(MaxFileSize)
	if fi, err := f.Stat(); err == nil && fi.Mode().IsRegular() {
		if fi.Size() > MaxFileSize {
			return nil, &TooLargeError{File: path}
		}
		size = fi.Size()
	}
	// One buffer, one byte larger than the file should be: a file that
	// grows meanwhile, or a device, still stops at the limit.
	buf := make([]byte, size+1)
	n, err := io.ReadFull(f, buf)
	switch {
	case err == nil && size == MaxFileSize:
		return nil, &TooLargeError{File: path}
	case err == nil:
		// The file grew since Stat: read on, up to the limit.
		rest, err := io.ReadAll(io.LimitReader(f, MaxFileSize-int64(n)+1))
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", path, err)
		}
		buf = append(buf, rest...)
		if len(buf) > MaxFileSize {
			return nil, &TooLargeError{File: path}
		}
		return buf, nil
	case errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF):
		return buf[:n], nil
	default:
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
}

// TooLargeError is a file over MaxFileSize.
type TooLargeError struct{ File string }

func (e *TooLargeError) Error() string {
	return fmt.Sprintf("%s: the file is larger than the limit of %d MiB for a plan or inventory", e.File, MaxFileSize>>20)
}

// checkShape scans the bytes of a YAML file before the parser sees them and
// reports the first reason it must not be parsed: too large, not UTF-8
// text, nested deeper than maxDepth, or more than maxNodes values. The
// parser builds its whole token list and tree before anything can count,
// so a hostile file (100,000 nested "{a:") must be stopped here. The scan
// is linear, allocates little, and errs on the side of counting: a plan
// it accepts may still be refused by the decoder's own bounds.
func checkShape(file string, data []byte, errs *collector) bool {
	if len(data) > MaxFileSize {
		errs.add(Position{File: file}, "split the inventory or plan", "the file is larger than the limit of %d MiB for a plan or inventory", MaxFileSize>>20)
		return false
	}
	s := shapeScanner{file: file, data: data, errs: errs, line: 1, blockIndent: -1}
	return s.run()
}

type shapeScanner struct {
	file  string
	data  []byte
	errs  *collector
	line  int
	nodes int
	// flow holds the open flow collections ({ or [) of the current value.
	flow int
	// block holds the indentation columns of the open block collections.
	block []int
	// quote is the open quoted scalar's quote character, or 0.
	quote byte
	// blockIndent is the indentation of the line that opened a block
	// scalar (| or >) whose content is being skipped, or -1.
	blockIndent int
}

func (s *shapeScanner) fail(col int, format string, args ...any) bool {
	s.errs.add(Position{File: s.file, Line: s.line, Col: col}, "", format, args...)
	return false
}

func (s *shapeScanner) run() bool {
	rest := s.data
	for len(rest) > 0 {
		var ln []byte
		if i := bytes.IndexByte(rest, '\n'); i >= 0 {
			ln, rest = rest[:i], rest[i+1:]
		} else {
			ln, rest = rest, nil
		}
		if !s.scanLine(bytes.TrimSuffix(ln, []byte("\r"))) {
			return false
		}
		s.line++
	}
	return true
}

func (s *shapeScanner) scanLine(ln []byte) bool {
	if !utf8.Valid(ln) || bytes.IndexByte(ln, 0) >= 0 {
		col := 1
		for i := 0; i < len(ln); {
			r, n := utf8.DecodeRune(ln[i:])
			if r == utf8.RuneError && n <= 1 || r == 0 {
				break
			}
			i += n
			col++
		}
		return s.fail(col, "the file is not YAML text (a NUL byte or invalid UTF-8)")
	}
	indent := 0
	for indent < len(ln) && ln[indent] == ' ' {
		indent++
	}
	trimmed := bytes.TrimLeft(ln, " \t")
	blank := len(trimmed) == 0 || trimmed[0] == '#'
	if s.blockIndent >= 0 {
		if blank || indent > s.blockIndent {
			return true
		}
		s.blockIndent = -1
	}
	i := 0
	atValue := true
	if s.quote == 0 && s.flow == 0 {
		if blank {
			return true
		}
		if indent == 0 && (bytes.HasPrefix(ln, []byte("---")) || bytes.HasPrefix(ln, []byte("..."))) {
			return true
		}
		for len(s.block) > 0 && s.block[len(s.block)-1] >= indent {
			s.block = s.block[:len(s.block)-1]
		}
		if !s.push(indent) {
			return false
		}
		i = indent
	}
	for i < len(ln) {
		c := ln[i]
		if s.quote != 0 {
			switch {
			case s.quote == '"' && c == '\\':
				i += 2
				continue
			case c == s.quote && s.quote == '\'' && i+1 < len(ln) && ln[i+1] == '\'':
				i += 2
				continue
			case c == s.quote:
				s.quote = 0
				atValue = false
			}
			i++
			continue
		}
		if c == ' ' || c == '\t' {
			i++
			continue
		}
		if c == '#' && (i == 0 || ln[i-1] == ' ' || ln[i-1] == '\t') {
			return true
		}
		if atValue {
			switch c {
			case '\'', '"':
				s.quote = c
				if !s.count(i) {
					return false
				}
				i++
				continue
			case '{', '[':
				s.flow++
				if !s.count(i) || !s.checkDepth(i) {
					return false
				}
				i++
				continue
			case '&', '!':
				// An anchor or tag precedes the value.
				for i < len(ln) && ln[i] != ' ' {
					i++
				}
				continue
			case '-', '?':
				if s.flow == 0 && (i+1 == len(ln) || ln[i+1] == ' ') {
					if !s.push(i + 1) {
						return false
					}
					i++
					continue
				}
			case '|', '>':
				if s.flow == 0 {
					s.blockIndent = indent
					return s.count(i)
				}
			}
			if !s.count(i) {
				return false
			}
			atValue = false
		}
		switch {
		case s.flow > 0 && (c == '{' || c == '['):
			s.flow++
			if !s.count(i) || !s.checkDepth(i) {
				return false
			}
			atValue = true
		case s.flow > 0 && (c == '}' || c == ']'):
			s.flow--
		case s.flow > 0 && c == ',':
			atValue = true
		case c == ':' && (i+1 == len(ln) || ln[i+1] == ' ' || ln[i+1] == '\t' || s.flow > 0 && bytes.IndexByte([]byte(",[]{}"), ln[i+1]) >= 0):
			atValue = true
		}
		i++
	}
	return true
}

// push opens a block level at column col (0-based).
func (s *shapeScanner) push(col int) bool {
	if n := len(s.block); n > 0 && s.block[n-1] >= col {
		return true
	}
	s.block = append(s.block, col)
	return s.checkDepth(col)
}

func (s *shapeScanner) checkDepth(col int) bool {
	if d := len(s.block) + s.flow; d > maxDepth+2 {
		return s.fail(col+1, "nested deeper than the limit of %d levels", maxDepth)
	}
	return true
}

func (s *shapeScanner) count(col int) bool {
	s.nodes++
	if s.nodes > maxNodes {
		return s.fail(col+1, "more than the limit of %d values in one file", maxNodes)
	}
	return true
}
