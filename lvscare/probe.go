package lvscare

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"time"

	"github.com/sealflow/sealflow/lvscare/podspec"
)

// ProbeFunc checks one real server; nil means healthy. It must return
// when ctx ends.
type ProbeFunc func(ctx context.Context, rs netip.AddrPort) error

// NewProber returns the probe h describes: an HTTP(S) GET of h.Path whose
// status must be in h.Status, or a TCP connect. HTTPS accepts any
// certificate unless h.CAFile is set.
func NewProber(h podspec.Health) (ProbeFunc, error) {
	dialer := &net.Dialer{Timeout: h.Timeout}
	if h.Scheme == "tcp" {
		return func(ctx context.Context, rs netip.AddrPort) error {
			c, err := dialer.DialContext(ctx, "tcp", rs.String())
			if err != nil {
				return fmt.Errorf("tcp connect %s: %w", rs, err)
			}
			return c.Close()
		}, nil
	}
	if h.Scheme != "http" && h.Scheme != "https" {
		return nil, fmt.Errorf("health scheme %q: want https, http or tcp", h.Scheme)
	}
	tlsConf := &tls.Config{InsecureSkipVerify: true} // apiservers use self-signed certificates
	if h.CAFile != "" {
		pem, err := os.ReadFile(h.CAFile)
		if err != nil {
			return nil, fmt.Errorf("read health CA file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("health CA file %s: no PEM certificate in it", h.CAFile)
		}
		tlsConf = &tls.Config{RootCAs: pool}
	}
	client := &http.Client{
		Transport: &http.Transport{
			DialContext:         dialer.DialContext,
			TLSClientConfig:     tlsConf,
			TLSHandshakeTimeout: h.Timeout,
			MaxIdleConnsPerHost: 1,
			IdleConnTimeout:     30 * time.Second,
			ForceAttemptHTTP2:   false,
		},
		// A redirect's status is the answer; do not follow it.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	status := h.Status
	return func(ctx context.Context, rs netip.AddrPort) error {
		url := h.Scheme + "://" + rs.String() + h.Path
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return fmt.Errorf("probe %s: %w", url, err)
		}
		resp, err := client.Do(req)
		if err != nil {
			return fmt.Errorf("probe %s: %w", url, err)
		}
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
		resp.Body.Close()
		if !status.Contains(resp.StatusCode) {
			return fmt.Errorf("probe %s: status %d, want %s", url, resp.StatusCode, status)
		}
		return nil
	}, nil
}
