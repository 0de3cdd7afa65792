package lvscare

import (
	"context"
	"crypto/tls"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sealflow/sealflow/lvscare/podspec"
)

func addrOf(t *testing.T, url string) netip.AddrPort {
	t.Helper()
	i := strings.LastIndex(url, "/")
	ap, err := netip.ParseAddrPort(url[i+1:])
	if err != nil {
		t.Fatal(err)
	}
	return ap
}

func TestProbe(t *testing.T) {
	t.Parallel()
	mux := http.NewServeMux()
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { w.Write([]byte("ok")) })
	mux.HandleFunc("/sick", func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(500) })
	mux.HandleFunc("/moved", func(w http.ResponseWriter, r *http.Request) { http.Redirect(w, r, "/sick", http.StatusFound) })
	mux.HandleFunc("/hang", func(w http.ResponseWriter, r *http.Request) { <-r.Context().Done() })
	plain := httptest.NewServer(mux)
	t.Cleanup(plain.Close)

	cert, pemBytes, err := selfSigned()
	if err != nil {
		t.Fatal(err)
	}
	tlsSrv := httptest.NewUnstartedServer(mux)
	tlsSrv.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
	tlsSrv.StartTLS()
	t.Cleanup(tlsSrv.Close)
	dir := t.TempDir()
	goodCA := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(goodCA, pemBytes, 0o600); err != nil {
		t.Fatal(err)
	}
	_, otherPEM, err := selfSigned()
	if err != nil {
		t.Fatal(err)
	}
	otherCA := filepath.Join(dir, "other.pem")
	if err := os.WriteFile(otherCA, otherPEM, 0o600); err != nil {
		t.Fatal(err)
	}

	// A closed port: listen, note the address, close.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := netip.MustParseAddrPort(l.Addr().String())
	l.Close()

	h := func(scheme, path, ca string) podspec.Health {
		return podspec.Health{Scheme: scheme, Path: path, Status: podspec.DefaultHealthStatus, Timeout: 2 * time.Second, CAFile: ca}
	}
	for _, tc := range []struct {
		name string
		h    podspec.Health
		rs   netip.AddrPort
		ok   bool
	}{
		{"http ok", h("http", "/healthz", ""), addrOf(t, plain.URL), true},
		{"http 500", h("http", "/sick", ""), addrOf(t, plain.URL), false},
		{"redirect is 302, in range, not followed", h("http", "/moved", ""), addrOf(t, plain.URL), true},
		{"http closed port", h("http", "/healthz", ""), closed, false},
		{"https self-signed accepted", h("https", "/healthz", ""), addrOf(t, tlsSrv.URL), true},
		{"https with its CA", h("https", "/healthz", goodCA), addrOf(t, tlsSrv.URL), true},
		{"https with another CA", h("https", "/healthz", otherCA), addrOf(t, tlsSrv.URL), false},
		{"https to a plain server", h("https", "/healthz", ""), addrOf(t, plain.URL), false},
		{"tcp open", h("tcp", "", ""), addrOf(t, plain.URL), true},
		{"tcp closed", h("tcp", "", ""), closed, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			p, err := NewProber(tc.h)
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			err = p(ctx, tc.rs)
			if (err == nil) != tc.ok {
				t.Errorf("probe error %v, want ok=%v", err, tc.ok)
			}
		})
	}

	t.Run("hanging server ends with the context", func(t *testing.T) {
		t.Parallel()
		p, err := NewProber(podspec.Health{Scheme: "http", Path: "/hang", Status: podspec.DefaultHealthStatus, Timeout: time.Minute})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		defer cancel()
		done := make(chan error, 1)
		go func() { done <- p(ctx, addrOf(t, plain.URL)) }()
		select {
		case err := <-done:
			if err == nil {
				t.Error("a hanging server passed the probe")
			}
		case <-time.After(30 * time.Second):
			t.Fatal("probe ignored its context")
		}
	})
}

func TestProberRejectsBadCA(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	junk := filepath.Join(dir, "junk.pem")
	if err := os.WriteFile(junk, []byte("not a certificate"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, ca := range []string{junk, filepath.Join(dir, "missing.pem")} {
		if _, err := NewProber(podspec.Health{Scheme: "https", Path: "/", Status: podspec.DefaultHealthStatus, Timeout: time.Second, CAFile: ca}); err == nil {
			t.Errorf("CA file %s: no error", ca)
		}
	}
}
