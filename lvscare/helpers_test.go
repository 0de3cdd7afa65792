package lvscare

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"testing"
	"time"

	"github.com/sealflow/sealflow/lvscare/podspec"
)

// Helper processes: the test binary re-runs itself inside a network
// namespace (ip netns exec NS /proc/self/exe) with LVSCARE_HELPER set.
const helperEnv = "LVSCARE_HELPER"

func TestMain(m *testing.M) {
	switch os.Getenv(helperEnv) {
	case "":
		os.Exit(m.Run())
	case "server":
		os.Exit(helperServer())
	case "care":
		os.Exit(helperCare())
	case "clean":
		os.Exit(helperClean())
	default:
		fmt.Fprintln(os.Stderr, "unknown helper", os.Getenv(helperEnv))
		os.Exit(2)
	}
}

// selfSigned returns a certificate for 127.0.0.1 and any name, and its PEM.
func selfSigned() (tls.Certificate, []byte, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: "lvscare-test"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		IPAddresses:  []net.IP{net.ParseIP("127.0.0.1")},
		DNSNames:     []string{"localhost"},
		KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IsCA:         true, BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	pemBytes := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, pemBytes, nil
}

// helperServer serves HTTPS on :6443 and HTTP on :80: /healthz answers
// "ok", every other path the server's name (LVSCARE_NAME). It prints
// "ready" once both listen and serves until killed.
func helperServer() int {
	name := os.Getenv("LVSCARE_NAME")
	mux := http.NewServeMux()
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprint(w, "ok") })
	mux.HandleFunc("/", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprint(w, name) })
	cert, _, err := selfSigned()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	tl, err := tls.Listen("tcp", ":6443", &tls.Config{Certificates: []tls.Certificate{cert}})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	pl, err := net.Listen("tcp", ":80")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	fmt.Println("ready")
	go func() { _ = http.Serve(pl, mux) }()
	_ = http.Serve(tl, mux)
	return 1
}

// helperCare runs Care with the Options in LVSCARE_OPTIONS (JSON) until
// SIGTERM, as the CLI does.
func helperCare() int {
	var o podspec.Options
	if err := json.Unmarshal([]byte(os.Getenv("LVSCARE_OPTIONS")), &o); err != nil {
		fmt.Fprintln(os.Stderr, "options:", err)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	if err := Care(ctx, o, log); err != nil {
		fmt.Fprintln(os.Stderr, "care:", err)
		return 1
	}
	return 0
}

// helperClean runs Clean for LVSCARE_VS with LVSCARE_MODE and the lock
// directory LVSCARE_LOCKDIR.
func helperClean() int {
	vs, err := podspec.ParseAddrPort("--vs", os.Getenv("LVSCARE_VS"))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	if err := Clean(ctx, vs, podspec.Mode(os.Getenv("LVSCARE_MODE")), os.Getenv("LVSCARE_LOCKDIR"), log); err != nil {
		fmt.Fprintln(os.Stderr, "clean:", err)
		return 1
	}
	return 0
}
