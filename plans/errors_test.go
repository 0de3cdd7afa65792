package plans

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestPositionString(t *testing.T) {
	t.Parallel()
	tests := []struct {
		pos  Position
		want string
	}{
		{Position{"a.yaml", 3, 7}, "a.yaml:3:7"},
		{Position{"a.yaml", 3, 0}, "a.yaml:3"},
		{Position{"a.yaml", 0, 0}, "a.yaml"},
		{Position{"", 2, 1}, "2:1"},
	}
	for _, tt := range tests {
		if got := tt.pos.String(); got != tt.want {
			t.Errorf("%#v.String() = %q, want %q", tt.pos, got, tt.want)
		}
	}
}

func TestErrorListSortedAndCapped(t *testing.T) {
	t.Parallel()
	var b strings.Builder
	b.WriteString("name: many\nsteps:\n")
	for i := 30; i > 0; i-- {
		fmt.Fprintf(&b, "  - {id: s%d, kind: shell, retries: -1, with: {run: echo}}\n", i)
	}
	_, err := Load("many.yaml", []byte(b.String()), LoadOptions{Kinds: testKinds(t)})
	var list ErrorList
	if !errors.As(err, &list) {
		t.Fatalf("error %T %v, want ErrorList", err, err)
	}
	if len(list) != maxErrors+1 {
		t.Fatalf("%d errors, want %d and a last line saying how many more", len(list), maxErrors)
	}
	if got, want := list[maxErrors].Error(), "... and 10 more problem(s) not shown (fix these and validate again)"; got != want {
		t.Errorf("last entry %q, want %q", got, want)
	}
	for i, e := range list[:maxErrors] {
		if e.Pos.Line != i+3 {
			t.Errorf("error %d at line %d, want %d (sorted)", i, e.Pos.Line, i+3)
		}
	}
	lines := strings.Split(err.Error(), "\n")
	want := `many.yaml:3:37: step "s30": retries must not be negative, got -1`
	if lines[0] != want || lines[1] != "\thint: 0 means no retry" {
		t.Errorf("error text starts %q, want %q and its hint", lines[:2], want)
	}
	var first *Error
	if !errors.As(err, &first) || first != list[0] {
		t.Errorf("errors.As did not find the first *Error")
	}
}

func TestAllProblemsReported(t *testing.T) {
	t.Parallel()
	src := `name: several
steps:
  - id: a
    kind: shel
    retries: x
  - id: b
    kind: shell
    needs: [zz]
    with: {run: echo, bogus: 1}
`
	_, err := Load("s.yaml", []byte(src), LoadOptions{Kinds: testKinds(t)})
	var list ErrorList
	if !errors.As(err, &list) {
		t.Fatalf("error %v, want ErrorList", err)
	}
	var got []string
	for _, e := range list {
		got = append(got, e.Pos.String()+" "+e.Msg)
	}
	want := []string{
		`s.yaml:4:11 step "a": unknown kind "shel"`,
		`s.yaml:5:14 step "a": retries: want an integer, got string`,
		`s.yaml:8:13 step "b" needs unknown step "zz"`,
		`s.yaml:9:23 step "b": unknown parameter "bogus" for kind shell`,
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("errors (-want +got):\n%s", diff)
	}
}

func TestLoadNeedsKinds(t *testing.T) {
	t.Parallel()
	if _, err := Load("x.yaml", []byte("name: x\n"), LoadOptions{}); err == nil || !strings.Contains(err.Error(), "Kinds is required") {
		t.Errorf("Load without kinds: %v", err)
	}
	if _, err := LoadFile(filepath.Join(t.TempDir(), "missing.yaml"), LoadOptions{Kinds: testKinds(t)}); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("LoadFile of a missing file: %v, want ErrNotExist", err)
	}
}

// FuzzLoad feeds arbitrary bytes to Load: it must return a plan or an
// error, never panic.
func FuzzLoad(f *testing.F) {
	for _, dir := range []string{"../testdata/plans/valid", "../testdata/plans/invalid"} {
		files, _ := filepath.Glob(filepath.Join(dir, "*.yaml"))
		for _, file := range files {
			data, err := os.ReadFile(file)
			if err != nil {
				f.Fatal(err)
			}
			f.Add(data)
		}
	}
	f.Add([]byte("a: &a [*a]\n"))
	f.Add([]byte("name: x\nsteps:\n  - &s {id: a, kind: shell, with: {run: '${{ vars }}'}, <<: *s}\n"))
	kinds := testKinds(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := Load("fuzz.yaml", data, LoadOptions{Kinds: kinds, Set: map[string]string{"version": "1"}})
		if err == nil {
			if p == nil {
				t.Fatal("no plan and no error")
			}
			for _, s := range p.Steps {
				for _, h := range s.Targets {
					env := p.NewEnv(h)
					_, _ = s.EvalWhen(env)
					_, _ = s.Render(env)
				}
			}
			return
		}
		var list ErrorList
		if errors.As(err, &list) && len(list) > maxErrors+1 {
			t.Fatalf("%d errors", len(list))
		}
	})
}

func TestAliasBombs(t *testing.T) {
	t.Parallel()
	laughs := `a: &a ["x", "x", "x", "x", "x", "x", "x", "x", "x", "x"]
b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]
c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]
d: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c]
e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d, *d]
f: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e, *e]
g: &g [*f, *f, *f, *f, *f, *f, *f, *f, *f, *f]
h: &h [*g, *g, *g, *g, *g, *g, *g, *g, *g, *g]
`
	tests := []struct {
		name, src, want string
	}{
		{"vars", "name: x\nvars:\n  " + strings.ReplaceAll(laughs, "\n", "\n  ") + "\nsteps:\n  - {id: s, kind: shell, with: {run: echo}}\n", "value too large"},
		{"with", "name: x\nanchors:\n  " + strings.ReplaceAll(laughs, "\n", "\n  ") + "\nsteps:\n  - {id: s, kind: shell, with: {run: echo, secret_outputs: *h}}\n", "value too large"},
		{"recursive", "name: x\nvars:\n  a: &a [1, *a]\nsteps:\n  - {id: s, kind: shell, with: {run: echo}}\n", "nested too deep"},
	}
	for _, tt := range tests {
		_, err := Load("bomb.yaml", []byte(tt.src), LoadOptions{Kinds: testKinds(t)})
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: error %v, want %q", tt.name, err, tt.want)
		}
	}
}

// A hint is given once for problems in a row that share it.
func TestErrorListHintOnce(t *testing.T) {
	l := ErrorList{
		{Pos: Position{File: "p.yaml", Line: 3, Col: 5}, Msg: `unknown key "hosts" in step "a"`, Hint: "keys: id, kind"},
		{Pos: Position{File: "p.yaml", Line: 4, Col: 5}, Msg: `unknown key "hosts" in step "b"`, Hint: "keys: id, kind"},
		{Pos: Position{File: "p.yaml", Line: 5, Col: 5}, Msg: `bad kind "x"`, Hint: "kinds: shell"},
	}
	want := "p.yaml:3:5: unknown key \"hosts\" in step \"a\"\n\thint: keys: id, kind\n" +
		"p.yaml:4:5: unknown key \"hosts\" in step \"b\"\n" +
		"p.yaml:5:5: bad kind \"x\"\n\thint: kinds: shell"
	if got := l.Error(); got != want {
		t.Errorf("got:\n%s\nwant:\n%s", got, want)
	}
}
