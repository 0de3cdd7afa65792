package main

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// kubeconfig is the part of a kubeconfig file (clientcmd v1) a kubelet
// uses: the current context's server, CA and client credentials.
type kubeconfig struct {
	Clusters []struct {
		Name    string `json:"name"`
		Cluster struct {
			Server                   string `json:"server"`
			CertificateAuthority     string `json:"certificate-authority"`
			CertificateAuthorityData string `json:"certificate-authority-data"`
		} `json:"cluster"`
	} `json:"clusters"`
	Users []struct {
		Name string `json:"name"`
		User struct {
			ClientCertificate     string `json:"client-certificate"`
			ClientCertificateData string `json:"client-certificate-data"`
			ClientKey             string `json:"client-key"`
			ClientKeyData         string `json:"client-key-data"`
			Token                 string `json:"token"`
		} `json:"user"`
	} `json:"users"`
	Contexts []struct {
		Name    string `json:"name"`
		Context struct {
			Cluster string `json:"cluster"`
			User    string `json:"user"`
		} `json:"context"`
	} `json:"contexts"`
	CurrentContext string `json:"current-context"`
}

// credentials are a kubeconfig's current context, resolved: file
// references read, base64 data decoded.
type credentials struct {
	Server  string
	CA      []byte // PEM
	CertPEM []byte
	KeyPEM  []byte
	Token   string
}

// loadKubeconfig reads path and resolves its current context. Relative
// file references are relative to the kubeconfig's directory.
func loadKubeconfig(path string) (credentials, error) {
	var c credentials
	b, err := os.ReadFile(path)
	if err != nil {
		return c, err
	}
	var k kubeconfig
	if err := yamlToJSON(b, &k); err != nil {
		return c, fmt.Errorf("parse kubeconfig %s: %w", path, err)
	}
	var clusterName, userName string
	for _, x := range k.Contexts {
		if x.Name == k.CurrentContext {
			clusterName, userName = x.Context.Cluster, x.Context.User
		}
	}
	if clusterName == "" {
		return c, fmt.Errorf("kubeconfig %s: current context %q not found", path, k.CurrentContext)
	}
	dir := filepath.Dir(path)
	data := func(inline, file, what string) ([]byte, error) {
		if inline != "" {
			d, err := base64.StdEncoding.DecodeString(inline)
			if err != nil {
				return nil, fmt.Errorf("kubeconfig %s: %s: %w", path, what, err)
			}
			return d, nil
		}
		if file == "" {
			return nil, nil
		}
		if !filepath.IsAbs(file) {
			file = filepath.Join(dir, file)
		}
		d, err := os.ReadFile(file)
		if err != nil {
			return nil, fmt.Errorf("kubeconfig %s: %s: %w", path, what, err)
		}
		return d, nil
	}
	found := false
	for _, x := range k.Clusters {
		if x.Name != clusterName {
			continue
		}
		found = true
		c.Server = strings.TrimRight(x.Cluster.Server, "/")
		if c.CA, err = data(x.Cluster.CertificateAuthorityData, x.Cluster.CertificateAuthority, "certificate authority"); err != nil {
			return c, err
		}
	}
	if !found || c.Server == "" {
		return c, fmt.Errorf("kubeconfig %s: cluster %q has no server", path, clusterName)
	}
	for _, x := range k.Users {
		if x.Name != userName {
			continue
		}
		u := x.User
		if c.CertPEM, err = data(u.ClientCertificateData, u.ClientCertificate, "client certificate"); err != nil {
			return c, err
		}
		if c.KeyPEM, err = data(u.ClientKeyData, u.ClientKey, "client key"); err != nil {
			return c, err
		}
		c.Token = u.Token
	}
	if len(c.CertPEM) == 0 && c.Token == "" {
		return c, fmt.Errorf("kubeconfig %s: user %q has neither a client certificate nor a token", path, userName)
	}
	return c, nil
}

// clientCert returns the credentials' client certificate, checking that it
// is currently valid.
func (c credentials) clientCert(now time.Time) (*tls.Certificate, error) {
	if len(c.CertPEM) == 0 {
		return nil, nil
	}
	cert, err := tls.X509KeyPair(c.CertPEM, c.KeyPEM)
	if err != nil {
		return nil, fmt.Errorf("client certificate and key: %w", err)
	}
	leaf, err := x509.ParseCertificate(cert.Certificate[0])
	if err != nil {
		return nil, fmt.Errorf("client certificate: %w", err)
	}
	if now.After(leaf.NotAfter) {
		return nil, fmt.Errorf("client certificate expired at %s", leaf.NotAfter.UTC().Format(time.RFC3339))
	}
	cert.Leaf = leaf
	return &cert, nil
}

// httpClient builds a client that talks to the credentials' server.
func (c credentials) httpClient(now time.Time) (*http.Client, error) {
	tc := &tls.Config{MinVersion: tls.VersionTLS12}
	if len(c.CA) > 0 {
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(c.CA) {
			return nil, errors.New("certificate authority: no PEM certificate")
		}
		tc.RootCAs = pool
	}
	cert, err := c.clientCert(now)
	if err != nil {
		return nil, err
	}
	if cert != nil {
		tc.Certificates = []tls.Certificate{*cert}
	}
	return &http.Client{
		Transport: &http.Transport{
			TLSClientConfig:     tc,
			ForceAttemptHTTP2:   true,
			TLSHandshakeTimeout: 10 * time.Second,
			IdleConnTimeout:     90 * time.Second,
		},
		Timeout: 30 * time.Second,
	}, nil
}

// kubeletKubeconfig is the kubeconfig the real kubelet writes after a TLS
// bootstrap: the bootstrap file's cluster, and the rotated client
// certificate and key in one PEM file.
func kubeletKubeconfig(server string, ca []byte, pemPath string) []byte {
	return []byte(`apiVersion: v1
clusters:
- cluster:
    certificate-authority-data: ` + base64.StdEncoding.EncodeToString(ca) + `
    server: ` + server + `
  name: default-cluster
contexts:
- context:
    cluster: default-cluster
    namespace: default
    user: default-auth
  name: default-context
current-context: default-context
kind: Config
preferences: {}
users:
- name: default-auth
  user:
    client-certificate: ` + pemPath + `
    client-key: ` + pemPath + `
`)
}

// certKeyPEM joins a certificate chain and its key in one PEM file, as the
// kubelet's certificate store does.
func certKeyPEM(certPEM, keyPEM []byte) []byte {
	var out []byte
	rest := certPEM
	for {
		var blk *pem.Block
		blk, rest = pem.Decode(rest)
		if blk == nil {
			break
		}
		out = append(out, pem.EncodeToMemory(blk)...)
	}
	return append(out, keyPEM...)
}
