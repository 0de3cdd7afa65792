package steps

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/sealflow/sealflow/steps/steptest"
)

func TestDistributeParams(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		p    Params
		want string
	}{
		{"src", Params{"src": "a", "dest": "/b"}, ""},
		{"url", Params{"url": "http://127.0.0.1/a.tgz", "dest": "/b", "sha256": strings.Repeat("A", 64)}, ""},
		{"neither", Params{"dest": "/b"}, "give one"},
		{"both", Params{"src": "a", "url": "http://x/a", "dest": "/b"}, "only one"},
		{"relative dest", Params{"src": "a", "dest": "b"}, "dest:"},
		{"dir dest", Params{"src": "a", "dest": "/b/"}, "dest:"},
		{"root dest", Params{"src": "a", "dest": "/"}, "dest:"},
		{"bad sum", Params{"src": "a", "dest": "/b", "sha256": "xyz"}, "sha256:"},
		{"bad url", Params{"url": "file:///etc/passwd", "dest": "/b"}, "url:"},
		{"newline url", Params{"url": "http://x/a\nb", "dest": "/b"}, "url:"},
	}
	for _, tt := range tests {
		_, err := distributeKind().New(tt.p)
		if tt.want == "" && err != nil || tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)) {
			t.Errorf("%s: error %v, want %q", tt.name, err, tt.want)
		}
	}
}

func sumOf(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func TestDistributeUpload(t *testing.T) {
	t.Parallel()
	data := []byte(strings.Repeat("package ", 10000))
	src := filepath.Join(t.TempDir(), "kube.tar.gz")
	if err := os.WriteFile(src, data, 0o600); err != nil {
		t.Fatal(err)
	}
	k := distributeKind()
	ctx := context.Background()
	// Two hosts, one kind: the file is sent to each, skipped the second
	// time on a host.
	for _, host := range []string{"h1", "h2"} {
		conn := steptest.New(steptest.Local)
		conn.Root = filepath.Join(t.TempDir(), host)
		dest := "/root/kube.tar.gz"
		s, err := k.New(Params{"src": src, "dest": dest})
		if err != nil {
			t.Fatal(err)
		}
		tg := &Target{Conn: conn}
		// Done looks at the file through a command; point it into Root.
		s2, _ := k.New(Params{"src": src, "dest": filepath.Join(conn.Root, dest)})
		if done, _, err := s2.(Checker).Done(ctx, tg); err != nil || done {
			t.Fatalf("Done before = %v, %v", done, err)
		}
		for i := 0; i < 2; i++ {
			out, err := s.Run(ctx, tg)
			if err != nil {
				t.Fatal(err)
			}
			if out["sha256"] != sumOf(data) {
				t.Errorf("sha256 output %s, want %s", out["sha256"], sumOf(data))
			}
		}
		ups := conn.Uploads()
		if len(ups) != 2 || ups[0].Skipped || ups[0].Size != int64(len(data)) || !ups[1].Skipped || ups[1].Mode != 0o644 {
			t.Errorf("uploads %+v, want one sent with mode 0644, then one skipped", ups)
		}
		if got, _ := os.ReadFile(filepath.Join(conn.Root, dest)); string(got) != string(data) {
			t.Error("the host's file differs")
		}
		if done, out, err := s2.(Checker).Done(ctx, tg); err != nil || !done || out["sha256"] != sumOf(data) {
			t.Errorf("Done after = %v, %v, %v", done, out, err)
		}
	}
	// A wrong sha256 given in the plan: the upload fails.
	conn := steptest.New(nil)
	conn.Root = t.TempDir()
	s, _ := k.New(Params{"src": src, "dest": "/x", "sha256": strings.Repeat("0", 64)})
	if _, err := s.Run(ctx, &Target{Conn: conn}); err == nil {
		t.Error("upload with a wrong sha256 succeeded")
	}
}

func TestDistributeDownload(t *testing.T) {
	t.Parallel()
	if _, err := exec.LookPath("curl"); err != nil {
		t.Skip("curl is not installed (Debian package curl)")
	}
	data := []byte(strings.Repeat("offline package ", 5000))
	var hits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		if r.URL.Path != "/pkg/"+hostile {
			http.NotFound(w, r)
			return
		}
		w.Write(data)
	}))
	defer srv.Close()
	l := newLab(t)
	ctx := context.Background()
	u := srv.URL + "/pkg/" + strings.NewReplacer(" ", "%20", `"`, "%22", "`", "%60", "$", "%24", ";", "%3B").Replace(hostile)
	dest := filepath.Join(l.dir, "root", "kube.tar.gz")
	s, err := distributeKind().New(Params{"url": u, "dest": dest, "sha256": sumOf(data)})
	if err != nil {
		t.Fatal(err)
	}
	if done, _, err := s.(Checker).Done(ctx, l.target()); err != nil || done {
		t.Fatalf("Done before = %v, %v", done, err)
	}
	out, err := s.Run(ctx, l.target())
	if err != nil {
		t.Fatalf("%v\nlog:\n%s", err, l.log.String())
	}
	if out["sha256"] != sumOf(data) {
		t.Errorf("sha256 %s", out["sha256"])
	}
	if got, _ := os.ReadFile(dest); string(got) != string(data) {
		t.Error("downloaded file differs")
	}
	if done, _, err := s.(Checker).Done(ctx, l.target()); err != nil || !done {
		t.Errorf("Done after = %v, %v", done, err)
	}
	// Again: the file is there with its sum, nothing is fetched.
	n := hits.Load()
	if _, err := s.Run(ctx, l.target()); err != nil {
		t.Fatal(err)
	}
	if hits.Load() != n {
		t.Error("a second run downloaded again")
	}
	// A wrong sum: error, and no file left behind.
	dest2 := filepath.Join(l.dir, "root", "other.tgz")
	bad, _ := distributeKind().New(Params{"url": u, "dest": dest2, "sha256": strings.Repeat("0", 64)})
	if _, err := bad.Run(ctx, l.target()); err == nil {
		t.Error("download with a wrong sum succeeded")
	}
	if ents, _ := os.ReadDir(filepath.Dir(dest2)); len(ents) != 1 {
		t.Errorf("files left: %v, want only kube.tar.gz", ents)
	}
	// No sum: cannot check, the sum is still an output.
	nosum, _ := distributeKind().New(Params{"url": u, "dest": dest2})
	if Checks(nosum) {
		t.Error("a download without sha256 says it can check itself")
	}
	if out, err := nosum.Run(ctx, l.target()); err != nil || out["sha256"] != sumOf(data) {
		t.Errorf("download without sum: %v, %v", out, err)
	}
	l.noInjection(t)
}
