package engine

import (
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// TestUploadProgressEvents: a copy reports its upload as transfer events,
// at most one per progressEvery of the run's clock, and one at its end.
func TestUploadProgressEvents(t *testing.T) {
	t.Parallel()
	f := newFixture(t, `name: p
hosts: {groups: {g: [{name: h, address: local}]}}
steps:
  - {id: c, kind: copy, with: {src: '${DIR}/big', dest: '${DIR}/out/big'}}
`)
	const size = 3<<20 + 5
	if err := os.WriteFile(filepath.Join(f.dir, "big"), make([]byte, size), 0o644); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	clock := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var got []Event
	f.mustRun(func(o *Options) {
		o.Now = func() time.Time {
			mu.Lock()
			defer mu.Unlock()
			clock = clock.Add(50 * time.Millisecond)
			return clock
		}
		o.Events = func(ev Event) {
			if ev.Type == EventTransfer {
				got = append(got, ev)
			}
		}
	})
	if len(got) < 3 {
		t.Fatalf("%d transfer events for a %d-byte upload: %+v", len(got), size, got)
	}
	var last int64
	for i, ev := range got {
		tr := ev.Transfer
		if ev.Task != "c@h" || tr.Name != "big" || tr.Dest != filepath.Join(f.dir, "out/big") || tr.Total != size {
			t.Fatalf("event %d: %s %+v", i, ev.Task, tr)
		}
		if tr.Bytes < last || tr.Bytes > size {
			t.Errorf("event %d: %d bytes after %d (of %d)", i, tr.Bytes, last, size)
		}
		last = tr.Bytes
		if i > 0 && ev.Time.Sub(got[i-1].Time) < progressEvery && !tr.End {
			t.Errorf("event %d comes %s after the one before", i, ev.Time.Sub(got[i-1].Time))
		}
		if tr.End != (i == len(got)-1) {
			t.Errorf("event %d: End %v", i, tr.End)
		}
	}
	if end := got[len(got)-1].Transfer; end.Bytes != size || end.Sent != size {
		t.Errorf("last event: %+v, want %d bytes sent", end, size)
	}
}
