package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"
)

// apiClient makes REST calls to the API server with the kubelet's
// credentials.
type apiClient struct {
	server    string
	hc        *http.Client
	token     string
	userAgent string
}

// apiError is a non-2xx answer, with the Status the API server sent.
type apiError struct {
	Method, Path string
	Code         int
	Reason       string
	Message      string
}

func (e *apiError) Error() string {
	return fmt.Sprintf("%s %s: %d %s: %s", e.Method, e.Path, e.Code, e.Reason, e.Message)
}

func isCode(err error, code int) bool {
	var e *apiError
	return errors.As(err, &e) && e.Code == code
}

const (
	jsonType     = "application/json"
	mergePatch   = "application/merge-patch+json"
	strategPatch = "application/strategic-merge-patch+json"
)

// requestTimeout bounds one API call.
const requestTimeout = 15 * time.Second

func newAPIClient(c credentials, now time.Time, version string) (*apiClient, error) {
	hc, err := c.httpClient(now)
	if err != nil {
		return nil, err
	}
	return &apiClient{server: c.Server, hc: hc, token: c.Token, userAgent: "kubelet/" + version + " (linux/amd64) standin"}, nil
}

// do sends in (JSON) with the content type ctype and decodes the answer
// into out (if not nil).
func (c *apiClient) do(ctx context.Context, method, path, ctype string, in, out any) error {
	ctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return fmt.Errorf("%s %s: encode: %w", method, path, err)
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.server+path, body)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	req.Header.Set("Accept", jsonType)
	req.Header.Set("User-Agent", c.userAgent)
	if in != nil {
		req.Header.Set("Content-Type", ctype)
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return fmt.Errorf("%s %s: read answer: %w", method, path, err)
	}
	if resp.StatusCode/100 != 2 {
		e := &apiError{Method: method, Path: path, Code: resp.StatusCode}
		var st struct{ Reason, Message string }
		if json.Unmarshal(b, &st) == nil && st.Message != "" {
			e.Reason, e.Message = st.Reason, st.Message
		} else {
			e.Reason, e.Message = http.StatusText(resp.StatusCode), string(bytes.TrimSpace(b))
		}
		return e
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			return fmt.Errorf("%s %s: decode answer: %w", method, path, err)
		}
	}
	return nil
}

// objectMeta is the metadata the stand-in reads back from objects.
type objectMeta struct {
	Name            string            `json:"name"`
	Namespace       string            `json:"namespace,omitempty"`
	UID             string            `json:"uid,omitempty"`
	ResourceVersion string            `json:"resourceVersion,omitempty"`
	Annotations     map[string]string `json:"annotations,omitempty"`
}
