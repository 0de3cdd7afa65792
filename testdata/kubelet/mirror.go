package main

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

const (
	mirrorAnnotation = "kubernetes.io/config.mirror"
	hashAnnotation   = "kubernetes.io/config.hash"
)

// mirrorPod is the API object standing for a static pod: the manifest,
// named and bound to this node, marked as a mirror with the static pod's
// hash and owned by the Node (as NodeRestriction requires).
func (a *nodeAgent) mirrorPod(p staticPod) map[string]any {
	var obj map[string]any
	b, _ := json.Marshal(p.Raw)
	_ = json.Unmarshal(b, &obj) // a deep copy
	meta, _ := obj["metadata"].(map[string]any)
	if meta == nil {
		meta = map[string]any{}
	}
	for _, k := range []string{"uid", "resourceVersion", "creationTimestamp", "generateName", "ownerReferences"} {
		delete(meta, k)
	}
	ann, _ := meta["annotations"].(map[string]any)
	if ann == nil {
		ann = map[string]any{}
	}
	ann[hashAnnotation] = p.UID
	ann[mirrorAnnotation] = p.UID
	ann["kubernetes.io/config.source"] = "file"
	ann["kubernetes.io/config.seen"] = time.Now().UTC().Format(time.RFC3339Nano)
	meta["annotations"] = ann
	meta["name"] = p.Name
	meta["namespace"] = p.Namespace
	meta["ownerReferences"] = []map[string]any{{
		"apiVersion": "v1", "kind": "Node", "name": a.o.NodeName, "uid": a.nodeUID, "controller": true,
	}}
	obj["metadata"] = meta
	spec, _ := obj["spec"].(map[string]any)
	if spec == nil {
		spec = map[string]any{}
	}
	spec["nodeName"] = a.o.NodeName
	tols, _ := spec["tolerations"].([]any)
	spec["tolerations"] = append(tols, map[string]any{"operator": "Exists", "effect": "NoExecute"})
	obj["spec"] = spec
	delete(obj, "status")
	return obj
}

// syncMirrorPods makes the mirror pods of this node those of the running
// static pods (deleting outdated ones), then posts their status.
func (a *nodeAgent) syncMirrorPods(ctx context.Context, pods []podState) error {
	q := url.Values{"fieldSelector": {"spec.nodeName=" + a.o.NodeName}}
	var list struct {
		Items []struct{ Metadata objectMeta }
	}
	if err := a.c.do(ctx, "GET", "/api/v1/pods?"+q.Encode(), "", nil, &list); err != nil {
		return fmt.Errorf("list mirror pods: %w", err)
	}
	want := map[string]staticPod{}
	for _, st := range pods {
		want[st.Pod.Namespace+"/"+st.Pod.Name] = st.Pod
	}
	have := map[string]bool{}
	for _, it := range list.Items {
		m := it.Metadata
		hash, isMirror := m.Annotations[mirrorAnnotation]
		if !isMirror {
			continue
		}
		key := m.Namespace + "/" + m.Name
		if p, ok := want[key]; ok && p.UID == hash {
			have[key] = true
			continue
		}
		del := map[string]any{"apiVersion": "v1", "kind": "DeleteOptions", "preconditions": map[string]string{"uid": m.UID}}
		err := a.c.do(ctx, "DELETE", "/api/v1/namespaces/"+url.PathEscape(m.Namespace)+"/pods/"+url.PathEscape(m.Name), jsonType, del, nil)
		if err != nil && !isCode(err, 404) && !isCode(err, 409) {
			return fmt.Errorf("delete outdated mirror pod %s: %w", key, err)
		}
		a.log.Info("deleted mirror pod", "pod", key, "hash", hash)
	}
	var firstErr error
	for _, st := range pods {
		p := st.Pod
		key := p.Namespace + "/" + p.Name
		if !have[key] {
			err := a.c.do(ctx, "POST", "/api/v1/namespaces/"+url.PathEscape(p.Namespace)+"/pods", jsonType, a.mirrorPod(p), nil)
			if err != nil && !isCode(err, 409) {
				if firstErr == nil {
					firstErr = fmt.Errorf("create mirror pod %s: %w", key, err)
				}
				continue
			}
			a.log.Info("created mirror pod", "pod", key)
			delete(a.sent, p.UID)
		}
		if err := a.postPodStatus(ctx, st); err != nil && firstErr == nil {
			firstErr = err
		}
	}
	for uid := range a.sent {
		found := false
		for _, st := range pods {
			found = found || st.Pod.UID == uid
		}
		if !found {
			delete(a.sent, uid)
		}
	}
	return firstErr
}

// postPodStatus patches a mirror pod's status when it changed.
func (a *nodeAgent) postPodStatus(ctx context.Context, st podState) error {
	p := st.Pod
	var statuses []map[string]any
	allReady, anyStarted := true, false
	var startTime time.Time
	for i, c := range st.Containers {
		ready := c.Running
		if ready && i < len(p.Containers) && p.Containers[i].Readiness != nil {
			ready = runProbe(ctx, p.Containers[i].Readiness, a.o.NodeIP)
		}
		allReady = allReady && ready
		s := map[string]any{
			"name": c.Name, "image": c.Image, "imageID": "", "ready": ready, "started": c.Running,
			"restartCount": c.Restarts,
		}
		if c.Running {
			anyStarted = true
			if startTime.IsZero() || c.Started.Before(startTime) {
				startTime = c.Started
			}
			s["containerID"] = "standin://" + strconv.Itoa(c.PID)
			s["state"] = map[string]any{"running": map[string]string{"startedAt": c.Started.UTC().Format(time.RFC3339)}}
		} else {
			s["state"] = map[string]any{"waiting": map[string]string{"reason": c.Waiting, "message": c.Message}}
		}
		if !c.LastFinished.IsZero() {
			t := map[string]any{
				"exitCode": 0, "reason": "Error",
				"startedAt": c.LastStarted.UTC().Format(time.RFC3339), "finishedAt": c.LastFinished.UTC().Format(time.RFC3339),
			}
			if c.LastExit != nil {
				t["exitCode"] = *c.LastExit
				if *c.LastExit == 0 {
					t["reason"] = "Completed"
				}
			} else {
				t["exitCode"] = 137
			}
			s["lastState"] = map[string]any{"terminated": t}
		}
		statuses = append(statuses, s)
	}
	phase := "Pending"
	if anyStarted {
		phase = "Running"
	}
	b := func(v bool) string {
		if v {
			return "True"
		}
		return "False"
	}
	conds := []map[string]any{}
	for _, c := range []struct{ typ, status string }{
		{"PodReadyToStartContainers", "True"},
		{"Initialized", "True"},
		{"Ready", b(allReady && anyStarted)},
		{"ContainersReady", b(allReady && anyStarted)},
		{"PodScheduled", "True"},
	} {
		key := p.UID + "/" + c.typ
		if a.condValues[key] != c.status {
			a.condValues[key] = c.status
			a.transitions[key] = time.Now()
		}
		conds = append(conds, map[string]any{"type": c.typ, "status": c.status, "lastTransitionTime": a.transitions[key].UTC().Format(time.RFC3339)})
	}
	status := map[string]any{
		"phase":             phase,
		"conditions":        conds,
		"hostIP":            a.o.NodeIP,
		"hostIPs":           []map[string]string{{"ip": a.o.NodeIP}},
		"podIP":             a.o.NodeIP,
		"podIPs":            []map[string]string{{"ip": a.o.NodeIP}},
		"containerStatuses": statuses,
	}
	if !startTime.IsZero() {
		status["startTime"] = startTime.UTC().Format(time.RFC3339)
	}
	sig, _ := json.Marshal(status)
	if a.sent[p.UID] == string(sig) {
		return nil
	}
	path := "/api/v1/namespaces/" + url.PathEscape(p.Namespace) + "/pods/" + url.PathEscape(p.Name) + "/status"
	if err := a.c.do(ctx, "PATCH", path, strategPatch, map[string]any{"status": status}, nil); err != nil {
		return fmt.Errorf("update status of mirror pod %s/%s: %w", p.Namespace, p.Name, err)
	}
	a.sent[p.UID] = string(sig)
	return nil
}

// runProbe runs an HTTP GET or TCP probe (other kinds pass) against the
// pod's address (the node's: static pods here use the host network).
func runProbe(ctx context.Context, p *probe, podIP string) bool {
	timeout := time.Second
	if p.TimeoutSeconds > 0 {
		timeout = time.Duration(p.TimeoutSeconds) * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	port := func(raw json.RawMessage) string {
		var n int
		if json.Unmarshal(raw, &n) == nil {
			return strconv.Itoa(n)
		}
		var s string
		_ = json.Unmarshal(raw, &s)
		return s
	}
	switch {
	case p.HTTPGet != nil:
		g := p.HTTPGet
		host := g.Host
		if host == "" {
			host = podIP
		}
		scheme := strings.ToLower(g.Scheme)
		if scheme == "" {
			scheme = "http"
		}
		path := g.Path
		if !strings.HasPrefix(path, "/") {
			path = "/" + path
		}
		req, err := http.NewRequestWithContext(ctx, "GET", scheme+"://"+net.JoinHostPort(host, port(g.Port))+path, nil)
		if err != nil {
			return false
		}
		req.Header.Set("User-Agent", "kube-probe/standin")
		tr := &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, DisableKeepAlives: true} // as the kubelet's prober
		defer tr.CloseIdleConnections()
		resp, err := (&http.Client{Transport: tr, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}).Do(req)
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode >= 200 && resp.StatusCode < 400
	case p.TCPSocket != nil:
		host := p.TCPSocket.Host
		if host == "" {
			host = podIP
		}
		var d net.Dialer
		conn, err := d.DialContext(ctx, "tcp", net.JoinHostPort(host, port(p.TCPSocket.Port)))
		if err != nil {
			return false
		}
		conn.Close()
		return true
	}
	return true
}
