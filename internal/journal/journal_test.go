package journal

import (
	"bytes"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestAppendReplayRoundTrip(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "state")
	want := []Record{
		{Time: testStart, Event: RunStarted, Run: 1, Note: "sealflow run ha.yaml"},
		{Time: testStart.Add(time.Second), Event: Started, Run: 1, Step: "untar", Host: "m1", Attempt: 1, Fingerprint: "sha256:abc"},
		{
			Time: testStart.Add(2 * time.Second), Event: Done, Run: 1, Step: "kubeadm-init", Host: "m1", Attempt: 1,
			Fingerprint: "sha256:def",
			Outputs:     map[string]string{"endpoint": "10.103.97.2:6443", "quote\"d": "line1\nline2 <&>"},
			Secrets:     map[string]string{"token": "abcdef.0123456789abcdef", "certKey": "f00d"},
			Duration:    1500 * time.Millisecond,
		},
		{Time: testStart.Add(3 * time.Second), Event: Failed, Run: 1, Step: "join", Host: "w1", Attempt: 2, Error: "exit status 1: ünïcode", Duration: time.Second},
		{Time: testStart.Add(4 * time.Second), Event: Skipped, Run: 1, Step: "lvscare", Host: "w1"},
		{Time: testStart.Add(5 * time.Second), Event: Decided, Run: 2, Step: "join", Host: "w1", Note: "rerun"},
	}
	s, _ := openT(t, dir, Options{})
	mustAppend(t, s, want...)
	if diff := cmp.Diff(want, mustReplay(t, s)); diff != "" {
		t.Errorf("Replay on the open state (-want +got):\n%s", diff)
	}
	mustClose(t, s)

	s2, logs := openT(t, dir, Options{})
	if diff := cmp.Diff(want, mustReplay(t, s2)); diff != "" {
		t.Errorf("Replay after reopening (-want +got):\n%s", diff)
	}
	if l := logs.all(); len(l) != 0 {
		t.Errorf("reopening a cleanly closed state logged %q, want nothing", l)
	}

	// The file is one checksummed JSON line per record.
	lines := strings.Split(strings.TrimSuffix(string(readJournal(t, dir)), "\n"), "\n")
	if len(lines) != len(want) {
		t.Fatalf("journal has %d lines, want %d", len(lines), len(want))
	}
	for i, l := range lines {
		if _, err := checkLine(castagnoli(), []byte(l), true); err != nil {
			t.Errorf("line %d %q: %v", i+1, l, err)
		}
	}
}

func TestAppendStampsTimeFromClock(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	now := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	s, _ := openT(t, dir, Options{Now: func() time.Time { return now }})
	mustAppend(t, s, Record{Event: Started, Step: "a", Host: "h"})
	got := mustReplay(t, s)
	if len(got) != 1 || !got[0].Time.Equal(now) {
		t.Errorf("Replay = %+v, want one record at %v", got, now)
	}
}

// TestBadLastRecordIgnored covers what a crash leaves at the end of the
// journal: Replay ignores it, the next Append cuts it off, and both old and
// new records replay afterwards.
func TestBadLastRecordIgnored(t *testing.T) {
	t.Parallel()
	good, err := encodeLine(castagnoli(), rec(Started, "x", "h", 9))
	if err != nil {
		t.Fatal(err)
	}
	badCRC := append([]byte("00000000"), good[crcLen:]...)
	tests := []struct {
		name string
		tail []byte
		why  string
	}{
		{"partial line", good[:len(good)/2], "incomplete record"},
		{"whole record without newline", good[:len(good)-1], "incomplete record"},
		{"bad checksum with newline", badCRC, "checksum mismatch"},
		{"bad checksum without newline", badCRC[:len(badCRC)-1], "incomplete record"},
		{"zeros from a lost block", append(make([]byte, 4095), '\n'), "not a journal record"},
		{"empty line", []byte("\n"), "not a journal record"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			first := []Record{rec(Started, "a", "h", 1), rec(Done, "a", "h", 1)}
			s, _ := openT(t, dir, Options{})
			mustAppend(t, s, first...)
			mustClose(t, s)
			clean := readJournal(t, dir)
			writeJournal(t, dir, append(append([]byte(nil), clean...), tc.tail...))

			// A reader sees the good records only.
			r, err := ReadOnly(dir)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(first, mustReplay(t, r)); diff != "" {
				t.Errorf("ReadOnly Replay (-want +got):\n%s", diff)
			}

			s, logs := openT(t, dir, Options{})
			wantLog := fmt.Sprintf("ignoring the last record at byte offset %d", len(clean))
			if !logs.find(wantLog) || !logs.find(tc.why) {
				t.Errorf("Open logged %q, want a message with %q and %q", logs.all(), wantLog, tc.why)
			}
			if diff := cmp.Diff(first, mustReplay(t, s)); diff != "" {
				t.Errorf("Replay before the next append (-want +got):\n%s", diff)
			}
			next := rec(Started, "b", "h", 1)
			mustAppend(t, s, next)
			want := append(append([]Record(nil), first...), next)
			if diff := cmp.Diff(want, mustReplay(t, s)); diff != "" {
				t.Errorf("Replay after the next append (-want +got):\n%s", diff)
			}
			mustClose(t, s)

			raw := readJournal(t, dir)
			if !bytes.HasPrefix(raw, clean) || bytes.Count(raw, []byte("\n")) != 3 {
				t.Errorf("journal after the append is %q, want the 2 old lines and 1 new one", raw)
			}
			s, logs = openT(t, dir, Options{})
			if diff := cmp.Diff(want, mustReplay(t, s)); diff != "" {
				t.Errorf("Replay after reopening (-want +got):\n%s", diff)
			}
			if l := logs.all(); len(l) != 0 {
				t.Errorf("reopening logged %q, want nothing (the bad tail is gone)", l)
			}
		})
	}
}

func TestCorruptionInTheMiddle(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s, _ := openT(t, dir, Options{})
	mustAppend(t, s, rec(Started, "a", "h", 1), rec(Done, "a", "h", 1), rec(Started, "b", "h", 1))
	mustClose(t, s)
	raw := readJournal(t, dir)
	second := bytes.IndexByte(raw, '\n') + 1
	// Flip one character inside the second record's JSON.
	i := second + bytes.Index(raw[second:], []byte(`"done"`)) + 1
	raw[i] = 'D'
	writeJournal(t, dir, raw)

	check := func(t *testing.T, err error) {
		t.Helper()
		var ce *CorruptError
		if !errors.As(err, &ce) {
			t.Fatalf("error = %v, want a *CorruptError", err)
		}
		if ce.Offset != int64(second) {
			t.Errorf("offset = %d, want %d", ce.Offset, second)
		}
		want := fmt.Sprintf("journal %s is corrupt at byte offset %d (checksum mismatch)", filepath.Join(dir, "journal"), second)
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error = %q, want it to contain %q", err, want)
		}
	}
	r, err := ReadOnly(dir)
	if err != nil {
		t.Fatal(err)
	}
	_, err = r.Replay()
	check(t, err)

	s, logs := openT(t, dir, Options{})
	_, err = s.Replay()
	check(t, err)
	if !logs.find("is corrupt at byte offset") {
		t.Errorf("Open logged %q, want the corruption reported", logs.all())
	}
	check(t, s.Append(rec(Started, "c", "h", 1)))
	if got := readJournal(t, dir); !bytes.Equal(got, raw) {
		t.Errorf("a corrupt journal was written to")
	}
}

func TestAppendAfterClose(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s, _ := openT(t, dir, Options{})
	mustClose(t, s)
	if err := s.Append(rec(Started, "a", "h", 1)); err == nil || !strings.Contains(err.Error(), "closed") {
		t.Errorf("Append after Close = %v, want a closed error", err)
	}
	if _, err := s.Replay(); err == nil {
		t.Errorf("Replay after Close succeeded")
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close = %v", err)
	}
}

func TestLongRecords(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s, _ := openT(t, dir, Options{})
	big := strings.Repeat("x", 300<<10) // longer than the read buffer
	want := []Record{rec(Started, "a", "h", 1), rec(Done, "a", "h", 1), rec(Started, "b", "h", 1)}
	want[1].Outputs = map[string]string{"big": big}
	mustAppend(t, s, want...)
	mustClose(t, s)
	s, _ = openT(t, dir, Options{})
	if diff := cmp.Diff(want, mustReplay(t, s)); diff != "" {
		t.Errorf("Replay (-want +got):\n%s", diff)
	}
}

// Queued records keep their order with appended ones and are on disk
// after Close.
func TestQueueKeepsOrderAndClosesDurable(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s, _ := openT(t, dir, Options{})
	if err := s.Queue(rec(Started, "a", "h", 1)); err != nil {
		t.Fatal(err)
	}
	mustAppend(t, s, rec(Done, "a", "h", 1))
	if err := s.Queue(rec(Started, "b", "h", 1)); err != nil {
		t.Fatal(err)
	}
	mustClose(t, s)
	s2, _ := openT(t, dir, Options{})
	var got []string
	for _, r := range mustReplay(t, s2) {
		got = append(got, string(r.Event)+" "+r.Step)
	}
	if diff := cmp.Diff([]string{"started a", "done a", "started b"}, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	mustClose(t, s2)
	if err := s2.Queue(rec(Started, "c", "h", 1)); err == nil {
		t.Error("Queue after Close succeeded")
	}
}
