package steps

import (
	"bytes"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestSplitWriterSeparatesLogAndOutputs(t *testing.T) {
	t.Parallel()
	stream := "line one\nbin\x00ary\n" + outputMarker + "k=v\nx=y\n"
	// Every way of cutting the stream into two writes gives the same result.
	for cut := 0; cut <= len(stream); cut++ {
		var log, out bytes.Buffer
		w := &splitWriter{log: &log, out: &out}
		w.Write([]byte(stream[:cut]))
		w.Write([]byte(stream[cut:]))
		got := string(w.outputs())
		if log.String() != "line one\nbin\x00ary\n" || got != "k=v\nx=y\n" {
			t.Fatalf("cut %d: log %q outputs %q", cut, log.String(), got)
		}
	}
}

func TestSplitWriterWithoutMarkerKeepsEverything(t *testing.T) {
	t.Parallel()
	var log, out bytes.Buffer
	w := &splitWriter{log: &log, out: &out}
	w.Write([]byte("partial \x00sealflow"))
	if got := w.outputs(); len(got) != 0 {
		t.Errorf("outputs %q from a stream without the marker", got)
	}
	if log.String() != "partial \x00sealflow" {
		t.Errorf("log %q lost bytes", log.String())
	}
}

func TestParseOutputs(t *testing.T) {
	t.Parallel()
	got, err := parseOutputs([]byte("# comment\n\na=1\nb=x=y\nc=\r\n"))
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(Outputs{"a": "1", "b": "x=y", "c": ""}, got); diff != "" {
		t.Error(diff)
	}
	for _, bad := range []string{"novalue\n", "=v\n", "9a=v\n", "a-b=v\n"} {
		if _, err := parseOutputs([]byte(bad)); err == nil || !strings.Contains(err.Error(), "SEALFLOW_OUTPUT line 1") {
			t.Errorf("%q: err = %v", bad, err)
		}
	}
}
