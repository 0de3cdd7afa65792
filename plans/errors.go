package plans

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
)

// Position is a place in a plan or inventory file. Line and Col start at 1;
// zero means unknown.
type Position struct {
	File      string
	Line, Col int
}

// String returns "file:line:col", leaving out what is unknown.
func (p Position) String() string {
	var b strings.Builder
	b.WriteString(p.File)
	if p.Line > 0 {
		if b.Len() > 0 {
			b.WriteByte(':')
		}
		b.WriteString(strconv.Itoa(p.Line))
		if p.Col > 0 {
			b.WriteByte(':')
			b.WriteString(strconv.Itoa(p.Col))
		}
	}
	return b.String()
}

func (p Position) before(q Position) bool {
	if p.File != q.File {
		return p.File < q.File
	}
	if p.Line != q.Line {
		return p.Line < q.Line
	}
	return p.Col < q.Col
}

// Error is one problem in a plan, at a position, with an optional hint on
// how to fix it.
type Error struct {
	Pos  Position
	Msg  string
	Hint string
}

func (e *Error) Error() string {
	var b strings.Builder
	if s := e.Pos.String(); s != "" {
		b.WriteString(s)
		b.WriteString(": ")
	}
	b.WriteString(e.Msg)
	if e.Hint != "" {
		b.WriteString("\n\thint: ")
		b.WriteString(e.Hint)
	}
	return b.String()
}

// ErrorList is every problem found in a plan, sorted by position.
type ErrorList []*Error

// Error gives each problem on its own line; a hint the problem before
// already gave is not repeated.
func (l ErrorList) Error() string {
	msgs := make([]string, len(l))
	for i, e := range l {
		if i > 0 && e.Hint != "" && e.Hint == l[i-1].Hint {
			e = &Error{Pos: e.Pos, Msg: e.Msg}
		}
		msgs[i] = e.Error()
	}
	return strings.Join(msgs, "\n")
}

// Unwrap lets errors.As find the first *Error.
func (l ErrorList) Unwrap() []error {
	errs := make([]error, len(l))
	for i, e := range l {
		errs[i] = e
	}
	return errs
}

// maxErrors bounds how many problems one Load reports.
const maxErrors = 20

// collector gathers the problems of one Load.
type collector struct {
	list ErrorList
}

func (c *collector) add(pos Position, hint, format string, args ...any) {
	c.list = append(c.list, &Error{Pos: pos, Msg: fmt.Sprintf(format, args...), Hint: hint})
}

func (c *collector) failed() bool { return len(c.list) > 0 }

// err returns the sorted problems, or nil: the first maxErrors, then one
// entry that says how many more there are.
func (c *collector) err() error {
	if len(c.list) == 0 {
		return nil
	}
	l := append(ErrorList(nil), c.list...)
	sort.SliceStable(l, func(i, j int) bool { return l[i].Pos.before(l[j].Pos) })
	if len(l) > maxErrors {
		more := len(l) - maxErrors
		l = append(l[:maxErrors:maxErrors], &Error{Msg: fmt.Sprintf("... and %d more problem(s) not shown (fix these and validate again)", more)})
	}
	return l
}
