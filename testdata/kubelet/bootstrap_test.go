package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// signed makes a CA and a certificate it signed for the CSR's key.
func signed(t *testing.T, key *ecdsa.PrivateKey, cn string) (caPEM, certPEM []byte) {
	t.Helper()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "kubernetes"}, IsCA: true,
		BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: cn, Organization: []string{"system:nodes"}},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

func TestCSRIsForTheKubeletSigner(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	key, keyPEM, err := pendingKey(dir)
	if err != nil {
		t.Fatal(err)
	}
	// A restarted kubelet reuses the pending key.
	again, _, err := pendingKey(dir)
	if err != nil || !again.Equal(key) {
		t.Fatalf("pendingKey again: %v; same key: %v", err, again.Equal(key))
	}
	b, err := newCSR(key, "n1")
	if err != nil {
		t.Fatal(err)
	}
	blk, _ := pem.Decode(b)
	csr, err := x509.ParseCertificateRequest(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	if err := csr.CheckSignature(); err != nil {
		t.Errorf("CSR signature: %v", err)
	}
	if d := cmp.Diff([]string{"system:node:n1", "system:nodes"}, []string{csr.Subject.CommonName, csr.Subject.Organization[0]}); d != "" {
		t.Errorf("CSR subject (-want +got):\n%s", d)
	}
	spec := csrObject(b)["spec"].(map[string]any)
	if spec["signerName"] != "kubernetes.io/kube-apiserver-client-kubelet" {
		t.Errorf("signer = %v", spec["signerName"])
	}
	if d := cmp.Diff([]string{"digital signature", "client auth"}, spec["usages"]); d != "" {
		t.Errorf("usages (-want +got):\n%s", d)
	}

	// The signed certificate goes to the store and into the kubeconfig,
	// which the kubelet (and kubeadm) can then use.
	caPEM, certPEM := signed(t, key, "system:node:n1")
	current, err := storeClientCert(filepath.Join(dir, "pki"), certPEM, keyPEM, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if l, err := os.Readlink(current); err != nil || filepath.Dir(l) != "." {
		t.Errorf("%s: link %q, %v; want a relative link", current, l, err)
	}
	kc := filepath.Join(dir, "kubelet.conf")
	if err := writeFileAtomic(kc, kubeletKubeconfig("https://apiserver.cluster.local:6443", caPEM, current), 0o600); err != nil {
		t.Fatal(err)
	}
	creds, err := loadKubeconfig(kc)
	if err != nil {
		t.Fatal(err)
	}
	if creds.Server != "https://apiserver.cluster.local:6443" || string(creds.CA) != string(caPEM) {
		t.Errorf("kubeconfig server %q, CA equal %v", creds.Server, string(creds.CA) == string(caPEM))
	}
	cert, err := creds.clientCert(time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if cert.Leaf.Subject.CommonName != "system:node:n1" {
		t.Errorf("client certificate CN %q", cert.Leaf.Subject.CommonName)
	}
	if _, err := creds.clientCert(time.Now().Add(2 * time.Hour)); err == nil {
		t.Error("an expired certificate was accepted")
	}
}

func TestLoadKubeconfigErrors(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	tests := []struct{ name, content, want string }{
		{"no context", "apiVersion: v1\nkind: Config\ncurrent-context: x\n", `current context "x" not found`},
		{"no server", "contexts: [{name: x, context: {cluster: c, user: u}}]\ncurrent-context: x\nclusters: [{name: c, cluster: {}}]\n", `cluster "c" has no server`},
		{"no credentials", "contexts: [{name: x, context: {cluster: c, user: u}}]\ncurrent-context: x\nclusters: [{name: c, cluster: {server: https://h:6443}}]\nusers: [{name: u, user: {}}]\n", "neither a client certificate nor a token"},
		{"missing file", "contexts: [{name: x, context: {cluster: c, user: u}}]\ncurrent-context: x\nclusters: [{name: c, cluster: {server: https://h:6443}}]\nusers: [{name: u, user: {client-certificate: nope.pem, client-key: nope.pem}}]\n", "nope.pem"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			p := filepath.Join(dir, tt.name+".conf")
			if err := os.WriteFile(p, []byte(tt.content), 0o600); err != nil {
				t.Fatal(err)
			}
			_, err := loadKubeconfig(p)
			if err == nil || !containsAll(err.Error(), tt.want, p) {
				t.Errorf("error = %v, want one naming %s and containing %q", err, p, tt.want)
			}
		})
	}
}

func containsAll(s string, subs ...string) bool {
	for _, x := range subs {
		if !strings.Contains(s, x) {
			return false
		}
	}
	return true
}
