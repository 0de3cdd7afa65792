// Package redact hides a run's secret values in what it shows: task logs,
// errors, events. A step registers a value through its Target the moment
// it mints or receives it (steps.Target.Secret); the engine registers the
// secret outputs it restores from the journal. Every value is replaced by
// one marker, Marker.
package redact

import (
	"io"
	"strings"
	"sync"
)

// Marker replaces a secret value.
const Marker = "[redacted]"

// Set holds the secret values seen so far in a run. The zero value is
// empty and ready; a Set is safe for concurrent use.
type Set struct {
	mu     sync.RWMutex
	values []string
}

// Add registers values as secrets.
func (s *Set) Add(values ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, v := range values {
		// Very short values would redact ordinary text; they are still
		// kept out of the journal's clear text.
		if len(v) >= 4 {
			s.values = append(s.values, v)
		}
	}
}

// Redact returns text with every registered value replaced by Marker.
func (s *Set) Redact(text string) string {
	if text == "" {
		return text
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	for _, v := range s.values {
		text = strings.ReplaceAll(text, v, Marker)
	}
	return text
}

// Holds reports whether text contains a registered value.
func (s *Set) Holds(text string) bool {
	if text == "" {
		return false
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	for _, v := range s.values {
		if strings.Contains(text, v) {
			return true
		}
	}
	return false
}

// Writer hides the values of a Set in what is written through it. It
// works line by line so a secret split across two writes is still found;
// Flush writes an unfinished last line.
type Writer struct {
	mu  sync.Mutex
	w   io.Writer
	s   *Set
	buf []byte
}

// NewWriter returns a Writer passing text on to w with the values of s
// hidden.
func NewWriter(w io.Writer, s *Set) *Writer { return &Writer{w: w, s: s} }

func (w *Writer) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf = append(w.buf, p...)
	i := strings.LastIndexByte(string(w.buf), '\n')
	if i < 0 && len(w.buf) < 64*1024 {
		return len(p), nil
	}
	if i < 0 {
		i = len(w.buf) - 1
	}
	if _, err := io.WriteString(w.w, w.s.Redact(string(w.buf[:i+1]))); err != nil {
		return 0, err
	}
	w.buf = append(w.buf[:0], w.buf[i+1:]...)
	return len(p), nil
}

// Flush writes what is left of an unfinished last line.
func (w *Writer) Flush() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.buf) == 0 {
		return nil
	}
	_, err := io.WriteString(w.w, w.s.Redact(string(w.buf)))
	w.buf = w.buf[:0]
	return err
}
