package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"time"
)

const (
	kubeletSigner  = "kubernetes.io/kube-apiserver-client-kubelet"
	currentPEMName = "kubelet-client-current.pem"
	pendingKeyName = "kubelet-client.key.tmp"
)

// csrPollInterval is how often a pending CSR is looked at; after
// csrWaitTimeout the kubelet gives up on it and posts a new one.
const (
	csrPollInterval = time.Second
	csrWaitTimeout  = 10 * time.Minute
)

// newCSR makes the PEM certificate request of a kubelet's client
// certificate: CN system:node:NAME, O system:nodes.
func newCSR(key *ecdsa.PrivateKey, node string) ([]byte, error) {
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{
		Subject: pkix.Name{CommonName: "system:node:" + node, Organization: []string{"system:nodes"}},
	}, key)
	if err != nil {
		return nil, fmt.Errorf("create certificate request: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}), nil
}

// csrObject is the CertificateSigningRequest a kubelet posts.
func csrObject(csrPEM []byte) map[string]any {
	return map[string]any{
		"apiVersion": "certificates.k8s.io/v1",
		"kind":       "CertificateSigningRequest",
		"metadata":   map[string]any{"generateName": "node-csr-"},
		"spec": map[string]any{
			"request":    base64.StdEncoding.EncodeToString(csrPEM),
			"signerName": kubeletSigner,
			"usages":     []string{"digital signature", "client auth"},
		},
	}
}

// pendingKey returns the key of a bootstrap in progress (kept so that a
// restarted kubelet can use a certificate signed for it) or a new one.
func pendingKey(certDir string) (*ecdsa.PrivateKey, []byte, error) {
	p := filepath.Join(certDir, pendingKeyName)
	if b, err := os.ReadFile(p); err == nil {
		if blk, _ := pem.Decode(b); blk != nil {
			if k, err := x509.ParseECPrivateKey(blk.Bytes); err == nil {
				return k, b, nil
			}
		}
	}
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("generate key: %w", err)
	}
	der, err := x509.MarshalECPrivateKey(k)
	if err != nil {
		return nil, nil, fmt.Errorf("encode key: %w", err)
	}
	b := pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der})
	if err := os.MkdirAll(certDir, 0o755); err != nil {
		return nil, nil, fmt.Errorf("create cert dir: %w", err)
	}
	if err := os.WriteFile(p, b, 0o600); err != nil {
		return nil, nil, fmt.Errorf("write key: %w", err)
	}
	return k, b, nil
}

// storeClientCert writes cert+key as kubelet-client-TIMESTAMP.pem and
// points kubelet-client-current.pem at it, as the kubelet's certificate
// store does. It returns the path of the current link.
func storeClientCert(certDir string, certPEM, keyPEM []byte, now time.Time) (string, error) {
	if err := os.MkdirAll(certDir, 0o755); err != nil {
		return "", fmt.Errorf("create cert dir: %w", err)
	}
	name := "kubelet-client-" + now.UTC().Format("2006-01-02-15-04-05") + ".pem"
	if err := os.WriteFile(filepath.Join(certDir, name), certKeyPEM(certPEM, keyPEM), 0o600); err != nil {
		return "", fmt.Errorf("write client certificate: %w", err)
	}
	current := filepath.Join(certDir, currentPEMName)
	tmp := current + ".tmp"
	_ = os.Remove(tmp)
	if err := os.Symlink(name, tmp); err != nil {
		return "", fmt.Errorf("link client certificate: %w", err)
	}
	if err := os.Rename(tmp, current); err != nil {
		return "", fmt.Errorf("link client certificate: %w", err)
	}
	return current, nil
}

// tlsBootstrap gets the kubelet a client certificate with the bootstrap
// kubeconfig's token: it posts a CSR for the kubelet signer, waits until
// the controller-manager approved and signed it, and writes the
// certificate and the kubeconfig that uses it.
func tlsBootstrap(ctx context.Context, o options, log *slog.Logger) error {
	boot, err := loadKubeconfig(o.BootstrapKubeconfig)
	if err != nil {
		return fmt.Errorf("TLS bootstrap: %w", err)
	}
	c, err := newAPIClient(boot, time.Now(), o.Version)
	if err != nil {
		return fmt.Errorf("TLS bootstrap with %s: %w", o.BootstrapKubeconfig, err)
	}
	key, keyPEM, err := pendingKey(o.CertDir)
	if err != nil {
		return fmt.Errorf("TLS bootstrap: %w", err)
	}
	csr, err := newCSR(key, o.NodeName)
	if err != nil {
		return fmt.Errorf("TLS bootstrap: %w", err)
	}
	var created struct{ Metadata objectMeta }
	if err := c.do(ctx, "POST", "/apis/certificates.k8s.io/v1/certificatesigningrequests", jsonType, csrObject(csr), &created); err != nil {
		return fmt.Errorf("TLS bootstrap: post CSR: %w", err)
	}
	log.Info("TLS bootstrap: waiting for the CSR to be approved and signed", "csr", created.Metadata.Name, "signer", kubeletSigner)
	ctx, cancel := context.WithTimeout(ctx, csrWaitTimeout)
	defer cancel()
	path := "/apis/certificates.k8s.io/v1/certificatesigningrequests/" + url.PathEscape(created.Metadata.Name)
	var certPEM []byte
	for len(certPEM) == 0 {
		select {
		case <-ctx.Done():
			return fmt.Errorf("TLS bootstrap: waiting for CSR %s: %w", created.Metadata.Name, ctx.Err())
		case <-time.After(csrPollInterval):
		}
		var got struct {
			Status struct {
				Certificate string `json:"certificate"`
				Conditions  []struct {
					Type, Reason, Message string
				} `json:"conditions"`
			} `json:"status"`
		}
		if err := c.do(ctx, "GET", path, "", nil, &got); err != nil {
			return fmt.Errorf("TLS bootstrap: get CSR: %w", err)
		}
		for _, cond := range got.Status.Conditions {
			if cond.Type == "Denied" || cond.Type == "Failed" {
				return fmt.Errorf("TLS bootstrap: CSR %s %s: %s %s", created.Metadata.Name, cond.Type, cond.Reason, cond.Message)
			}
		}
		if got.Status.Certificate != "" {
			// The API returns the certificate's bytes (PEM), base64 in JSON.
			b, err := base64.StdEncoding.DecodeString(got.Status.Certificate)
			if err != nil {
				return fmt.Errorf("TLS bootstrap: CSR %s: certificate: %w", created.Metadata.Name, err)
			}
			if blk, _ := pem.Decode(b); blk == nil {
				return errors.New("TLS bootstrap: CSR " + created.Metadata.Name + ": the certificate is not PEM")
			}
			certPEM = b
		}
	}
	current, err := storeClientCert(o.CertDir, certPEM, keyPEM, time.Now())
	if err != nil {
		return fmt.Errorf("TLS bootstrap: %w", err)
	}
	if err := writeFileAtomic(o.Kubeconfig, kubeletKubeconfig(boot.Server, boot.CA, current), 0o600); err != nil {
		return fmt.Errorf("TLS bootstrap: %w", err)
	}
	_ = os.Remove(filepath.Join(o.CertDir, pendingKeyName))
	log.Info("TLS bootstrap done", "kubeconfig", o.Kubeconfig, "certificate", current)
	return nil
}

func writeFileAtomic(path string, b []byte, mode os.FileMode) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, mode); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}
