package steps

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/sealflow/sealflow/steps/steptest"
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

// A script that writes no outputs is the command itself (no outputs file,
// so no private directory on the host); one that names $SEALFLOW_OUTPUT,
// or declares outputs, gets the outputs file.
func TestShellOutputsFileOnlyWhenUsed(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name        string
		params      Params
		wantScript  bool // the command's script is the run text itself
		wantOutputs Outputs
		wantLog     string
	}{
		{name: "plain", params: Params{"run": "echo hi"}, wantScript: true, wantOutputs: Outputs{}, wantLog: "hi\n"},
		{name: "names SEALFLOW_OUTPUT", params: Params{"run": `echo hi; echo k=v >>"$SEALFLOW_OUTPUT"`}, wantOutputs: Outputs{"k": "v"}, wantLog: "hi\n"},
		{name: "declares outputs", params: Params{"run": `o=SEALFLOW_OUT; eval "echo k=w >>\"\$${o}PUT\""`, "outputs": true}, wantOutputs: Outputs{"k": "w"}},
		{name: "secret outputs", params: Params{"run": `f=$(env | sed -n 's/^SEALFLOW_OUT[P]UT=//p'); echo k=s >>"$f"`, "secret_outputs": []string{"k"}}, wantOutputs: Outputs{"k": "s"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			step, err := newShell(tt.params)
			if err != nil {
				t.Fatal(err)
			}
			conn := steptest.New(steptest.Local)
			var log syncBuffer // stdout and stderr are written at once
			outs, err := step.Run(context.Background(), &Target{Conn: conn, Log: &log})
			if err != nil {
				t.Fatalf("Run: %v (log %q)", err, log.String())
			}
			cmds := conn.Commands()
			if len(cmds) != 1 {
				t.Fatalf("%d commands, want 1", len(cmds))
			}
			run := tt.params["run"].(string)
			got := []any{cmds[0].Script == run, outs, log.String()}
			want := []any{tt.wantScript, tt.wantOutputs, tt.wantLog}
			if d := cmp.Diff(want, got); d != "" {
				t.Errorf("script is run, outputs, log (-want +got):\n%s", d)
			}
		})
	}
}
