package main

import (
	"bufio"
	"context"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// nodeAgent keeps the kubelet's Node, Lease and mirror pods true in the
// API server.
type nodeAgent struct {
	o       options
	c       *apiClient
	log     *slog.Logger
	info    machineInfo
	nodeUID string
	since   time.Time // Ready since

	sent        map[string]string    // pod UID -> last status patch sent
	transitions map[string]time.Time // pod UID + condition -> last transition
	condValues  map[string]string
}

// microTime is the API's MicroTime format.
const microTime = "2006-01-02T15:04:05.000000Z07:00"

func newNodeAgent(o options, c *apiClient, log *slog.Logger) *nodeAgent {
	return &nodeAgent{
		o: o, c: c, log: log, info: readMachineInfo(), since: time.Now(),
		sent: map[string]string{}, transitions: map[string]time.Time{}, condValues: map[string]string{},
	}
}

// register creates the Node (or finds it) and remembers its UID.
func (a *nodeAgent) register(ctx context.Context) error {
	labels := map[string]string{
		"kubernetes.io/hostname":  a.o.NodeName,
		"kubernetes.io/os":        "linux",
		"kubernetes.io/arch":      runtime.GOARCH,
		"beta.kubernetes.io/os":   "linux",
		"beta.kubernetes.io/arch": runtime.GOARCH,
	}
	for k, v := range a.o.Labels {
		labels[k] = v
	}
	node := map[string]any{
		"apiVersion": "v1",
		"kind":       "Node",
		"metadata": map[string]any{
			"name":        a.o.NodeName,
			"labels":      labels,
			"annotations": map[string]string{"volumes.kubernetes.io/controller-managed-attach-detach": "true"},
		},
	}
	if len(a.o.Taints) > 0 {
		node["spec"] = map[string]any{"taints": a.o.Taints}
	}
	var got struct{ Metadata objectMeta }
	err := a.c.do(ctx, "POST", "/api/v1/nodes", jsonType, node, &got)
	if isCode(err, 409) {
		err = a.c.do(ctx, "GET", "/api/v1/nodes/"+url.PathEscape(a.o.NodeName), "", nil, &got)
	}
	if err != nil {
		return fmt.Errorf("register node %s: %w", a.o.NodeName, err)
	}
	if a.nodeUID != got.Metadata.UID {
		a.log.Info("node registered", "node", a.o.NodeName, "uid", got.Metadata.UID)
	}
	a.nodeUID = got.Metadata.UID
	return nil
}

// heartbeat posts the node's status (Ready) and renews its Lease.
func (a *nodeAgent) heartbeat(ctx context.Context) error {
	if err := a.updateStatus(ctx); err != nil {
		return err
	}
	return a.renewLease(ctx)
}

func (a *nodeAgent) updateStatus(ctx context.Context) error {
	now := time.Now().UTC().Format(time.RFC3339)
	since := a.since.UTC().Format(time.RFC3339)
	cond := func(typ, status, reason, msg string) map[string]string {
		return map[string]string{"type": typ, "status": status, "reason": reason, "message": msg,
			"lastHeartbeatTime": now, "lastTransitionTime": since}
	}
	res := map[string]string{
		"cpu":               strconv.Itoa(runtime.NumCPU()),
		"memory":            strconv.FormatUint(a.info.memKiB, 10) + "Ki",
		"pods":              "110",
		"ephemeral-storage": strconv.FormatUint(a.info.diskKiB, 10) + "Ki",
	}
	patch := map[string]any{"status": map[string]any{
		"conditions": []map[string]string{
			cond("MemoryPressure", "False", "KubeletHasSufficientMemory", "kubelet has sufficient memory available"),
			cond("DiskPressure", "False", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
			cond("PIDPressure", "False", "KubeletHasSufficientPID", "kubelet has sufficient PID available"),
			cond("Ready", "True", "KubeletReady", "kubelet is posting ready status"),
		},
		"addresses": []map[string]string{
			{"type": "InternalIP", "address": a.o.NodeIP},
			{"type": "Hostname", "address": a.o.NodeName},
		},
		"capacity":        res,
		"allocatable":     res,
		"daemonEndpoints": map[string]any{"kubeletEndpoint": map[string]int{"Port": a.o.Port}},
		"nodeInfo": map[string]string{
			"machineID":               a.info.machineID,
			"systemUUID":              a.info.machineID,
			"bootID":                  a.info.bootID,
			"kernelVersion":           a.info.kernel,
			"osImage":                 a.info.osImage,
			"containerRuntimeVersion": "standin://" + a.o.Version,
			"kubeletVersion":          a.o.Version,
			"kubeProxyVersion":        "",
			"operatingSystem":         "linux",
			"architecture":            runtime.GOARCH,
		},
	}}
	if err := a.c.do(ctx, "PATCH", "/api/v1/nodes/"+url.PathEscape(a.o.NodeName)+"/status", strategPatch, patch, nil); err != nil {
		return fmt.Errorf("update node status: %w", err)
	}
	return nil
}

func (a *nodeAgent) renewLease(ctx context.Context) error {
	path := "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/" + url.PathEscape(a.o.NodeName)
	lease := map[string]any{
		"apiVersion": "coordination.k8s.io/v1",
		"kind":       "Lease",
		"metadata": map[string]any{
			"name":      a.o.NodeName,
			"namespace": "kube-node-lease",
			"ownerReferences": []map[string]string{
				{"apiVersion": "v1", "kind": "Node", "name": a.o.NodeName, "uid": a.nodeUID},
			},
		},
		"spec": map[string]any{
			"holderIdentity":       a.o.NodeName,
			"leaseDurationSeconds": a.o.LeaseDuration,
			"renewTime":            time.Now().UTC().Format(microTime),
		},
	}
	var got struct{ Metadata objectMeta }
	err := a.c.do(ctx, "GET", path, "", nil, &got)
	switch {
	case isCode(err, 404):
		err = a.c.do(ctx, "POST", "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases", jsonType, lease, nil)
	case err == nil:
		lease["metadata"].(map[string]any)["resourceVersion"] = got.Metadata.ResourceVersion
		err = a.c.do(ctx, "PUT", path, jsonType, lease, nil)
	}
	if err != nil {
		return fmt.Errorf("renew node lease: %w", err)
	}
	return nil
}

// machineInfo is what the node reports about its machine.
type machineInfo struct {
	machineID, bootID, kernel, osImage string
	memKiB, diskKiB                    uint64
}

func readMachineInfo() machineInfo {
	var m machineInfo
	read := func(p string) string {
		b, _ := os.ReadFile(p)
		return strings.TrimSpace(string(b))
	}
	m.machineID = read("/etc/machine-id")
	m.bootID = read("/proc/sys/kernel/random/boot_id")
	m.kernel = read("/proc/sys/kernel/osrelease")
	m.osImage = "Linux"
	if f, err := os.Open("/etc/os-release"); err == nil {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if v, ok := strings.CutPrefix(sc.Text(), "PRETTY_NAME="); ok {
				m.osImage = strings.Trim(v, `"`)
			}
		}
		f.Close()
	}
	if f, err := os.Open("/proc/meminfo"); err == nil {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if v, ok := strings.CutPrefix(sc.Text(), "MemTotal:"); ok {
				m.memKiB, _ = strconv.ParseUint(strings.Fields(v)[0], 10, 64)
			}
		}
		f.Close()
	}
	var st syscall.Statfs_t
	if syscall.Statfs("/var/lib", &st) == nil {
		m.diskKiB = st.Blocks * uint64(st.Bsize) / 1024
	}
	return m
}
