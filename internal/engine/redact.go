package engine

import (
	"io"
	"strings"
	"sync"
)

// redactor knows the secret values seen so far in a run and hides them.
type redactor struct {
	mu     sync.RWMutex
	values []string
}

const redacted = "[redacted]"

func (r *redactor) add(values ...string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, v := range values {
		// Very short values would redact ordinary text; they are still
		// kept out of the journal's clear text.
		if len(v) >= 4 {
			r.values = append(r.values, v)
		}
	}
}

func (r *redactor) redact(s string) string {
	if s == "" {
		return s
	}
	r.mu.RLock()
	defer r.mu.RUnlock()
	for _, v := range r.values {
		s = strings.ReplaceAll(s, v, redacted)
	}
	return s
}

// redactWriter hides known secrets in what a task writes to its log. It
// works line by line so a secret split across two writes is still found.
type redactWriter struct {
	mu  sync.Mutex
	w   io.Writer
	r   *redactor
	buf []byte
}

func (w *redactWriter) Write(p []byte) (int, error) {
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
	if _, err := io.WriteString(w.w, w.r.redact(string(w.buf[:i+1]))); err != nil {
		return 0, err
	}
	w.buf = append(w.buf[:0], w.buf[i+1:]...)
	return len(p), nil
}

// Flush writes what is left of an unfinished last line.
func (w *redactWriter) Flush() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.buf) == 0 {
		return nil
	}
	_, err := io.WriteString(w.w, w.r.redact(string(w.buf)))
	w.buf = w.buf[:0]
	return err
}
