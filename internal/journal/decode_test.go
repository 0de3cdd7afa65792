package journal

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// decodeSeeds are record texts as encodeLine writes them and as it never
// does (space, other keys, nulls, fractions, bad UTF-8...).
func decodeSeeds(t testing.TB) [][]byte {
	at := time.Date(2026, 12, 2, 0, 5, 2, 123456789, time.FixedZone("x", 3600))
	recs := []Record{
		{},
		{Time: at, Event: RunStarted, Run: 3, Note: "bench"},
		{Time: at.UTC(), Event: Started, Run: 1, Step: "s000", Host: "h0001", Attempt: 2, Fingerprint: "0123abcd"},
		{Time: at, Event: Done, Step: "a<b>&c", Host: "hôst\u2028", Outputs: map[string]string{"k": "v\n\"q\"\\", "": "", "ü": "\x01"},
			Secrets: map[string]string{"tok": "c2VhbGVk"}, Duration: 1<<62 + 7},
		{Time: at, Event: Failed, Error: "exit 1:\n\tbad \u00e9 \U0001F600", Duration: -5, Note: "interrupted"},
		{Event: Done, Outputs: map[string]string{}},
	}
	var out [][]byte
	for _, r := range recs {
		js, err := json.Marshal(r)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, js)
	}
	for _, s := range []string{
		`{"e":"done", "step":"a"}`, `{"e":"done","Step":"a"}`, `{"e":"done","x":1}`, `{"e":"done","e":"failed"}`,
		`{"e":null}`, `{"attempt":1.5}`, `{"attempt":01}`, `{"attempt":1e3}`, `{"run":-0}`, `{"d":99999999999999999999}`,
		`{"step":"\xff"}`, `{"step":"\ud800"}`, `{"step":"a\u0041\/"}`, `{"step":"\x"}`, `{"out":{"a":"1","a":"2"}}`,
		`{"out":{"a":1}}`, `{"out":null}`, `{"t":"not a time"}`, `{"t":"2026-12-02T00:05:02Z"}`, `{}`, `{"e":"done"}x`,
		`{"e":"done",}`, `[]`, ``, `{"e":"a` + "\n" + `b"}`,
	} {
		out = append(out, []byte(s))
	}
	return out
}

// checkDecode compares decodeRecord with json.Unmarshal on js.
func checkDecode(t *testing.T, js []byte) {
	t.Helper()
	var want, got Record
	wantErr := json.Unmarshal(js, &want)
	gotErr := decodeRecord(js, &got)
	if (wantErr == nil) != (gotErr == nil) {
		t.Fatalf("%q: decodeRecord error %v, json.Unmarshal error %v", js, gotErr, wantErr)
	}
	if wantErr != nil {
		return
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Fatalf("%q: decodeRecord differs from json.Unmarshal (-want +got):\n%s", js, d)
	}
}

// TestDecodeRecordIsJSON: a record decodes to what json.Unmarshal gives,
// whether the fast parser reads it or hands it over.
func TestDecodeRecordIsJSON(t *testing.T) {
	t.Parallel()
	for _, js := range decodeSeeds(t) {
		checkDecode(t, js)
	}
}

// TestDecodeRecordFastPath: what encodeLine writes is read by the fast
// parser, not handed to encoding/json (the speed of status and plan on a
// large journal depends on it).
func TestDecodeRecordFastPath(t *testing.T) {
	t.Parallel()
	for _, js := range decodeSeeds(t)[:6] {
		var rec Record
		if !fastDecode(js, &rec) {
			t.Errorf("%s: not read by the fast parser", js)
		}
	}
}

func FuzzDecodeRecord(f *testing.F) {
	for _, js := range decodeSeeds(f) {
		f.Add(js)
	}
	f.Fuzz(func(t *testing.T, js []byte) { checkDecode(t, js) })
}
