package journal

import (
	"fmt"
)

// appendReq is one record queued for the writer goroutine.
type appendReq struct {
	line []byte
	done chan error
}

// Batches are bounded so one fsync never waits on an unbounded write.
const (
	maxBatch      = 4096
	maxBatchBytes = 4 << 20
)

// Append writes r to the journal and returns once it is on disk. A zero
// Time is set from the clock; Secrets are encrypted before they leave this
// call. Concurrent appends are written and fsynced together.
func (s *State) Append(r Record) error {
	req, err := s.enqueue(r)
	if err != nil {
		return err
	}
	if err := <-req.done; err != nil {
		return fmt.Errorf("append %s record of step %q host %q: %w", r.Event, r.Step, r.Host, err)
	}
	return nil
}

// Queue writes r to the journal without waiting for it to reach the disk.
// Records reach the file in the order they are queued or appended, so r is
// durable once any later Append returns (or Close). A write failure shows
// in the next Append.
func (s *State) Queue(r Record) error {
	_, err := s.enqueue(r)
	return err
}

// Sync returns once every record queued before it is on disk, or with the
// error that kept one from it (a full disk): a run that ends knows whether
// its journal holds what it did.
func (s *State) Sync() error {
	s.closeMu.RLock()
	if s.closed {
		s.closeMu.RUnlock()
		return fmt.Errorf("sync journal %s: state is closed", s.path)
	}
	req := &appendReq{done: make(chan error, 1)}
	s.reqs <- req
	s.closeMu.RUnlock()
	return <-req.done
}

func (s *State) enqueue(r Record) (*appendReq, error) {
	// closeMu is held from the first check to the queueing: Close and
	// Discard change what the checks read.
	s.closeMu.RLock()
	defer s.closeMu.RUnlock()
	if s.corrupt != nil {
		return nil, fmt.Errorf("append to journal: %w", s.corrupt)
	}
	s.mu.Lock()
	werr := s.werr
	s.mu.Unlock()
	if werr != nil {
		return nil, werr
	}
	if r.Time.IsZero() {
		r.Time = s.now()
	}
	if len(r.Secrets) > 0 && s.keyErr != nil {
		return nil, s.keyErr
	}
	if len(r.Secrets) > 0 {
		sealed, err := s.seal.sealAll(r.Step, r.Host, r.Secrets)
		if err != nil {
			return nil, fmt.Errorf("append %s record of step %q host %q: encrypt secret outputs: %w", r.Event, r.Step, r.Host, err)
		}
		r.Secrets = sealed
	}
	line, err := encodeLine(s.tab, r)
	if err != nil {
		return nil, fmt.Errorf("append %s record of step %q host %q: %w", r.Event, r.Step, r.Host, err)
	}
	req := &appendReq{line: line, done: make(chan error, 1)}
	if s.closed {
		return nil, fmt.Errorf("append %s record of step %q host %q to %s: state is closed", r.Event, r.Step, r.Host, s.path)
	}
	s.reqs <- req
	return req, nil
}

// writeLoop is the writer goroutine: it takes everything queued, writes it
// in one write and makes it durable with one fsync, then answers every
// append of the batch.
func (s *State) writeLoop() {
	defer close(s.writerDone)
	var (
		batch []*appendReq
		buf   []byte
	)
	for first := range s.reqs {
		batch = append(batch[:0], first)
		size := len(first.line)
	drain:
		for len(batch) < maxBatch && size < maxBatchBytes {
			select {
			case r, ok := <-s.reqs:
				if !ok {
					break drain
				}
				batch = append(batch, r)
				size += len(r.line)
			default:
				break drain
			}
		}
		buf = buf[:0]
		for _, r := range batch {
			buf = append(buf, r.line...)
		}
		err := s.commit(buf)
		for i, r := range batch {
			r.done <- err
			batch[i] = nil
		}
	}
}

// commit appends buf to the journal and fsyncs it. After a failure the
// journal's end is unknown, so every later append fails too.
func (s *State) commit(buf []byte) error {
	s.mu.Lock()
	werr := s.werr
	s.mu.Unlock()
	if werr != nil {
		return werr
	}
	err := s.writeSync(buf)
	s.mu.Lock()
	defer s.mu.Unlock()
	if err != nil {
		s.werr = fmt.Errorf("journal %s is unusable after a failed write (%w); close it and open the state directory again", s.path, err)
		return s.werr
	}
	s.synced += int64(len(buf))
	return nil
}

func (s *State) writeSync(buf []byte) error {
	if s.truncateTo >= 0 {
		if err := s.f.Truncate(s.truncateTo); err != nil {
			return fmt.Errorf("cut the torn last record: %w", err)
		}
		s.truncateTo = -1
	}
	if _, err := s.f.Write(buf); err != nil {
		return fmt.Errorf("write: %w", err)
	}
	if err := s.syncFn(s.f); err != nil {
		return fmt.Errorf("fsync: %w", err)
	}
	return nil
}
