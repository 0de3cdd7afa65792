package plans

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// loadBounded loads data and returns the error and the bytes allocated.
func loadBounded(t *testing.T, name string, data []byte) (error, uint64) {
	t.Helper()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	_, err := Load(name, data, LoadOptions{Kinds: testKinds(t)})
	runtime.ReadMemStats(&after)
	return err, after.TotalAlloc - before.TotalAlloc
}

func TestHostileInputRefusedBeforeParsing(t *testing.T) {
	// Not parallel: TotalAlloc counts every goroutine's allocations.
	random := make([]byte, 3<<20)
	r := rand.NewChaCha8([32]byte{1})
	r.Read(random)
	deepIndent := new(bytes.Buffer)
	deepIndent.WriteString("name: x\nsteps:\n")
	for i := range 200 {
		deepIndent.WriteString(strings.Repeat(" ", i) + "k:\n")
	}
	manyValues := "name: x\nvars:\n  list:\n" + strings.Repeat("    - a\n", 250000)
	tests := []struct {
		name, data, want string
	}{
		{"flow.yaml", "name: x\nsteps: " + strings.Repeat("{a: ", 100000), "flow.yaml:2:268: nested deeper than the limit of 64 levels"},
		{"seq.yaml", "name: x\nsteps:\n" + strings.Repeat("- ", 100000) + "x", "seq.yaml:3:132: nested deeper than the limit of 64 levels"},
		{"indent.yaml", deepIndent.String(), "indent.yaml:69:67: nested deeper than the limit of 64 levels"},
		{"random.yaml", string(random), "random.yaml:1:"},
		{"many.yaml", manyValues, "many.yaml:200000:7: more than the limit of 200000 values in one file"},
		{"big.yaml", "name: x\n" + strings.Repeat("# a comment line\n", MaxFileSize/17+1), "big.yaml: the file is larger than the limit of 4 MiB for a plan or inventory"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err, alloc := loadBounded(t, tt.name, []byte(tt.data))
			if err == nil || !strings.HasPrefix(err.Error(), tt.want) {
				t.Fatalf("error %v, want it to start with %q", err, tt.want)
			}
			if tt.name == "random.yaml" && !strings.Contains(err.Error(), "not YAML text") {
				t.Errorf("error %v, want: not YAML text", err)
			}
			// The parser needs ~200 bytes per input byte; the scan far less.
			if limit := uint64(len(tt.data)) + 8<<20; alloc > limit {
				t.Errorf("refusing it allocated %d MB, want at most %d MB", alloc>>20, limit>>20)
			}
		})
	}
}

func TestHostileInventoryRefused(t *testing.T) {
	plan := "name: x\nsteps:\n  - {id: a, kind: shell, with: {run: echo}}\n"
	inv := "groups: " + strings.Repeat("[", 1000)
	_, err := Load("p.yaml", []byte(plan), LoadOptions{Kinds: testKinds(t), Inventory: []byte(inv), InventoryFile: "inv.yaml"})
	if err == nil || !strings.HasPrefix(err.Error(), "inv.yaml:1:74: nested deeper than the limit of 64 levels") {
		t.Fatalf("error %v", err)
	}
}

func TestReadFileBounded(t *testing.T) {
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	_, err := ReadFile("/dev/urandom")
	runtime.ReadMemStats(&after)
	var tl *TooLargeError
	if !errors.As(err, &tl) || err.Error() != "/dev/urandom: the file is larger than the limit of 4 MiB for a plan or inventory" {
		t.Fatalf("ReadFile(/dev/urandom) = %v", err)
	}
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 3*MaxFileSize {
		t.Errorf("reading allocated %d MB", alloc>>20)
	}
	ok := filepath.Join(t.TempDir(), "ok.yaml")
	if err := os.WriteFile(ok, []byte("name: x\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if b, err := ReadFile(ok); err != nil || string(b) != "name: x\n" {
		t.Fatalf("ReadFile = %q, %v", b, err)
	}
}

// Legit YAML the scan must let through: block scalars and quotes holding
// brackets, comments, flow maps, documents markers.
func TestShapeAcceptsOrdinaryYAML(t *testing.T) {
	t.Parallel()
	plan := `---
name: ok # a comment with { [
vars: {a: [1, 2, {b: c}], s: "{{{{[[[[", t: '[[[['' {{{{'}
steps:
  - id: a
    kind: shell
    with:
      run: |
        f() { { { { { { { { { { { { { { { { { { { { { { { { { { { { { { { { { { { { { { { { { { { { { { { { { { { { { { { { { { { { { { { { { { { { { { {
        echo ${{ vars.s }} [ [ [ [ [ [ [ [ [ [ [ [ [ [ [ [ [ [ [ [ [ [ [ [ [ [ [ [ [ [ [ [ [ [ [ [ [ [ [ [ [ [ [ [ [ [ [ [ [ [ [ [ [ [ [ [ [ [ [ [ [ [ [ [ [ [
      env: {X: "multi
        line {{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{ quoted"}
  - id: b
    kind: shell
    needs: [a]
    with: {run: "echo [[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[["}
`
	if _, err := Load("ok.yaml", []byte(plan), LoadOptions{Kinds: testKinds(t)}); err != nil {
		t.Fatal(err)
	}
	for _, name := range ShippedNames() {
		b, _ := Shipped(name)
		errs := &collector{}
		if !checkShape(name, b, errs) {
			t.Errorf("shipped plan %s refused: %v", name, errs.err())
		}
	}
}
