package journal

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"strconv"
	"time"
)

// Event is what happened to a task or a run.
type Event string

// The events a journal records.
const (
	Started    Event = "started"
	Done       Event = "done"
	Failed     Event = "failed"
	Skipped    Event = "skipped"
	RunStarted Event = "run"
	Decided    Event = "decided"
)

// Record is one line of the journal.
type Record struct {
	Time        time.Time         `json:"t"`
	Event       Event             `json:"e"`
	Run         int               `json:"run,omitempty"` // run number, increments per run/resume
	Step        string            `json:"step,omitempty"`
	Host        string            `json:"host,omitempty"`
	Attempt     int               `json:"attempt,omitempty"`
	Fingerprint string            `json:"fp,omitempty"`
	Outputs     map[string]string `json:"out,omitempty"` // non-secret outputs, in clear
	Secrets     map[string]string `json:"sec,omitempty"` // secret outputs: Append encrypts, Replay decrypts
	Error       string            `json:"err,omitempty"`
	Duration    time.Duration     `json:"d,omitempty"`
	Note        string            `json:"note,omitempty"` // e.g. Decided: "rerun" or "skip"
}

// CorruptError reports a bad record that is not the last one of a journal:
// something other than a crash changed the file, and nothing after it can be
// trusted.
type CorruptError struct {
	Path   string // the journal file
	Offset int64  // byte offset of the bad record
	Reason string
}

func (e *CorruptError) Error() string {
	return fmt.Sprintf("journal %s is corrupt at byte offset %d (%s) and has records after it; "+
		"inspect the file, or move the state directory aside and start a new run", e.Path, e.Offset, e.Reason)
}

const crcLen = 8 // hex digits of a CRC-32C

// minRecordLen is about the shortest line a task record takes (checksum,
// time, event, step and host), for a capacity to replay into.
const minRecordLen = 96

func castagnoli() *crc32.Table { return crc32.MakeTable(crc32.Castagnoli) }

// encodeLine returns the journal line of r: "<crc32c hex> <json>\n".
func encodeLine(tab *crc32.Table, r Record) ([]byte, error) {
	js, err := json.Marshal(r)
	if err != nil {
		return nil, fmt.Errorf("encode record: %w", err)
	}
	line := make([]byte, 0, crcLen+2+len(js))
	line = fmt.Appendf(line, "%08x ", crc32.Checksum(js, tab))
	line = append(line, js...)
	return append(line, '\n'), nil
}

// checkLine validates one line (without its '\n') and returns its JSON text.
// The JSON syntax is checked only when validJSON is set (a caller that
// decodes the record checks it anyway).
func checkLine(tab *crc32.Table, line []byte, validJSON bool) ([]byte, error) {
	if len(line) < crcLen+2 || line[crcLen] != ' ' {
		return nil, errors.New("not a journal record")
	}
	want, err := strconv.ParseUint(string(line[:crcLen]), 16, 32)
	if err != nil {
		return nil, errors.New("not a journal record: bad checksum field")
	}
	js := line[crcLen+1:]
	if crc32.Checksum(js, tab) != uint32(want) {
		return nil, errors.New("checksum mismatch")
	}
	if validJSON && !json.Valid(js) {
		return nil, errors.New("checksum matches but the record is not JSON")
	}
	return js, nil
}

// scanResult describes a journal read from start to end.
type scanResult struct {
	good     int64  // end offset of the last good record
	tornOff  int64  // offset of an ignored bad last record, or -1
	tornWhy  string // why it was ignored
	tornSize int64  // its length in bytes
}

// scan reads the journal text from r, calling fn with the offset and JSON of
// each good record. A bad last record is ignored and described in the
// result; a bad record followed by anything is a *CorruptError.
func scan(r io.Reader, path string, tab *crc32.Table, fn func(off int64, js []byte) error) (scanResult, error) {
	res := scanResult{tornOff: -1}
	br := bufio.NewReaderSize(r, 64<<10)
	var off int64
	for {
		line, rerr := br.ReadSlice('\n')
		if errors.Is(rerr, bufio.ErrBufferFull) {
			// A record longer than the buffer: collect the rest of it.
			long := append([]byte(nil), line...)
			var rest []byte
			rest, rerr = br.ReadBytes('\n')
			line = append(long, rest...)
		}
		if len(line) > 0 {
			if res.tornOff >= 0 {
				return res, &CorruptError{Path: path, Offset: res.tornOff, Reason: res.tornWhy}
			}
			complete := line[len(line)-1] == '\n'
			body := line
			if complete {
				body = line[:len(line)-1]
			}
			js, err := checkLine(tab, body, fn == nil)
			switch {
			case !complete:
				res.tornOff, res.tornWhy, res.tornSize = off, "incomplete record (no end of line)", int64(len(line))
			case err != nil:
				res.tornOff, res.tornWhy, res.tornSize = off, err.Error(), int64(len(line))
			default:
				if fn != nil {
					if err := fn(off, js); err != nil {
						return res, err
					}
				}
				res.good = off + int64(len(line))
			}
			off += int64(len(line))
		}
		if rerr == io.EOF {
			return res, nil
		}
		if rerr != nil {
			return res, fmt.Errorf("read journal %s at byte offset %d: %w", path, off, rerr)
		}
	}
}

// replay decodes every good record of the journal text in r, decrypting
// secret outputs with sl. With no key (sl nil), secret values are left
// empty, their names kept.
// size is the text's length when known (0 if not): the records are
// counted before they are decoded, so they are held in one allocation,
// not in a slice regrown (and copied) twenty times for 40,000 records.
func replay(r io.Reader, path string, tab *crc32.Table, sl *sealer, size int64) ([]Record, error) {
	var out []Record
	if size > 0 {
		out = make([]Record, 0, size/minRecordLen+1)
	}
	_, err := scan(r, path, tab, func(off int64, js []byte) error {
		var rec Record
		if err := decodeRecord(js, &rec); err != nil {
			return &CorruptError{Path: path, Offset: off, Reason: "record does not decode: " + err.Error()}
		}
		if len(rec.Secrets) > 0 && sl == nil {
			for name := range rec.Secrets {
				rec.Secrets[name] = ""
			}
		} else if len(rec.Secrets) > 0 {
			clear, err := sl.openAll(rec.Step, rec.Host, rec.Secrets)
			if err != nil {
				return fmt.Errorf("cannot decrypt secret outputs in %s: %w (record at byte offset %d, step %q, host %q)",
					path, err, off, rec.Step, rec.Host)
			}
			rec.Secrets = clear
		}
		out = append(out, rec)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}
