package journal

import (
	"encoding/json"
	"strconv"
	"time"
	"unicode/utf8"
)

// decodeRecord decodes the JSON text of a record exactly as json.Unmarshal
// does. Records are written by encodeLine: flat objects of known keys with
// no space. A small parser reads those several times faster than
// encoding/json's reflection, which was most of `sealflow status` and
// `sealflow plan` on a journal of 20,000 tasks. Whatever it does not
// expect (another key, a repeated one, a null, space, a number with a
// fraction, a string that is not plain UTF-8...) goes to json.Unmarshal,
// so the result, error included, is always json.Unmarshal's.
func decodeRecord(js []byte, rec *Record) error {
	if fastDecode(js, rec) {
		return nil
	}
	*rec = Record{}
	return json.Unmarshal(js, rec)
}

// fastDecode decodes js into rec and reports whether it could; on false,
// rec holds garbage.
func fastDecode(js []byte, rec *Record) bool {
	p := &parser{b: js}
	if !p.byte('{') {
		return false
	}
	if p.peek('}') {
		p.i++
		return p.i == len(p.b)
	}
	var seen uint16
	for {
		key, ok := p.plainString()
		if !ok || !p.byte(':') {
			return false
		}
		bit, ok := fieldBit[key]
		if !ok || seen&bit != 0 {
			return false
		}
		seen |= bit
		switch key {
		case "t":
			start := p.i
			if _, ok := p.str(); !ok {
				return false
			}
			if rec.Time.UnmarshalJSON(p.b[start:p.i]) != nil {
				return false
			}
		case "e":
			s, ok := p.str()
			rec.Event = Event(s)
			if !ok {
				return false
			}
		case "step":
			if rec.Step, ok = p.str(); !ok {
				return false
			}
		case "host":
			if rec.Host, ok = p.str(); !ok {
				return false
			}
		case "fp":
			if rec.Fingerprint, ok = p.str(); !ok {
				return false
			}
		case "err":
			if rec.Error, ok = p.str(); !ok {
				return false
			}
		case "note":
			if rec.Note, ok = p.str(); !ok {
				return false
			}
		case "run":
			n, ok := p.int()
			if !ok || int64(int(n)) != n {
				return false
			}
			rec.Run = int(n)
		case "attempt":
			n, ok := p.int()
			if !ok || int64(int(n)) != n {
				return false
			}
			rec.Attempt = int(n)
		case "d":
			n, ok := p.int()
			if !ok {
				return false
			}
			rec.Duration = time.Duration(n)
		case "out":
			if rec.Outputs, ok = p.stringMap(); !ok {
				return false
			}
		case "sec":
			if rec.Secrets, ok = p.stringMap(); !ok {
				return false
			}
		}
		if p.peek('}') {
			p.i++
			return p.i == len(p.b)
		}
		if !p.byte(',') {
			return false
		}
	}
}

var fieldBit = map[string]uint16{
	"t": 1 << 0, "e": 1 << 1, "run": 1 << 2, "step": 1 << 3, "host": 1 << 4, "attempt": 1 << 5,
	"fp": 1 << 6, "out": 1 << 7, "sec": 1 << 8, "err": 1 << 9, "d": 1 << 10, "note": 1 << 11,
}

type parser struct {
	b []byte
	i int
}

func (p *parser) peek(c byte) bool { return p.i < len(p.b) && p.b[p.i] == c }

func (p *parser) byte(c byte) bool {
	if !p.peek(c) {
		return false
	}
	p.i++
	return true
}

// str reads a JSON string. One with escapes is unquoted by encoding/json
// itself; one with a control character or invalid UTF-8 is refused (it
// goes to json.Unmarshal whole).
func (p *parser) str() (string, bool) {
	if !p.byte('"') {
		return "", false
	}
	start, escaped := p.i, false
	for ; p.i < len(p.b); p.i++ {
		switch c := p.b[p.i]; {
		case c == '"':
			raw := p.b[start:p.i]
			p.i++
			if escaped {
				var s string
				if json.Unmarshal(p.b[start-1:p.i], &s) != nil {
					return "", false
				}
				return s, true
			}
			if !utf8.Valid(raw) {
				return "", false
			}
			return string(raw), true
		case c == '\\':
			escaped = true
			p.i++ // the escaped byte; json.Unmarshal checks the escape
		case c < 0x20:
			return "", false
		}
	}
	return "", false
}

// plainString reads a key: a string without escapes.
func (p *parser) plainString() (string, bool) {
	if !p.byte('"') {
		return "", false
	}
	start := p.i
	for ; p.i < len(p.b); p.i++ {
		switch c := p.b[p.i]; {
		case c == '"':
			s := string(p.b[start:p.i])
			p.i++
			return s, true
		case c == '\\' || c < 0x20 || c >= utf8.RuneSelf:
			return "", false
		}
	}
	return "", false
}

// int reads an integer in JSON's grammar (no fraction, no exponent).
func (p *parser) int() (int64, bool) {
	start := p.i
	if p.peek('-') {
		p.i++
	}
	digits := p.i
	for p.i < len(p.b) && p.b[p.i] >= '0' && p.b[p.i] <= '9' {
		p.i++
	}
	switch {
	case p.i == digits:
		return 0, false
	case p.b[digits] == '0' && p.i-digits > 1:
		return 0, false // a leading zero is not JSON
	case p.i < len(p.b) && (p.b[p.i] == '.' || p.b[p.i] == 'e' || p.b[p.i] == 'E'):
		return 0, false
	}
	n, err := strconv.ParseInt(string(p.b[start:p.i]), 10, 64)
	return n, err == nil
}

// stringMap reads an object of string values; a repeated key is refused
// (encoding/json keeps the last, but nothing writes one).
func (p *parser) stringMap() (map[string]string, bool) {
	if !p.byte('{') {
		return nil, false
	}
	m := map[string]string{}
	if p.byte('}') {
		return m, true
	}
	for {
		k, ok := p.str()
		if !ok || !p.byte(':') {
			return nil, false
		}
		if _, dup := m[k]; dup {
			return nil, false
		}
		if m[k], ok = p.str(); !ok {
			return nil, false
		}
		if p.byte('}') {
			return m, true
		}
		if !p.byte(',') {
			return nil, false
		}
	}
}
