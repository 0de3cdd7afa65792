package plans

import (
	"bufio"
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

var wantRE = regexp.MustCompile(`^# want: (\d+):(\d+): (.+)$`)

// TestInvalidPlans loads every plan of testdata/plans/invalid and checks
// that the first error (by position) is the one its "# want:" line names.
func TestInvalidPlans(t *testing.T) {
	t.Parallel()
	files, err := filepath.Glob("../testdata/plans/invalid/*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if len(files) < 40 {
		t.Fatalf("found %d invalid plans, want at least 40", len(files))
	}
	kinds := testKinds(t)
	for _, file := range files {
		t.Run(filepath.Base(file), func(t *testing.T) {
			t.Parallel()
			data, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			first, _, _ := bufio.NewReader(bytes.NewReader(data)).ReadLine()
			m := wantRE.FindStringSubmatch(string(first))
			if m == nil {
				t.Fatalf("first line %q is not `# want: LINE:COL: MESSAGE`", first)
			}
			line, _ := strconv.Atoi(m[1])
			col, _ := strconv.Atoi(m[2])
			p, err := Load(file, data, LoadOptions{Kinds: kinds})
			if err == nil {
				t.Fatalf("Load succeeded (%d steps), want error %s", len(p.Steps), first)
			}
			var list ErrorList
			if !errors.As(err, &list) || len(list) == 0 {
				t.Fatalf("Load error is %T %v, want an ErrorList", err, err)
			}
			got := list[0]
			if got.Pos.File != file || got.Pos.Line != line || got.Pos.Col != col || !strings.Contains(got.Msg, m[3]) {
				t.Errorf("first error:\n  %v\nwant at %s:%d:%d containing %q\nall errors:\n%v", got, file, line, col, m[3], err)
			}
			if !strings.HasPrefix(err.Error(), file+":"+m[1]+":"+m[2]+": ") {
				t.Errorf("error text %q does not start with file:line:col", err.Error())
			}
		})
	}
}
