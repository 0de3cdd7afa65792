// Command kubelet stands in for the real kubelet where no container runtime
// exists (the lab hosts). It keeps the real kubelet's contract with kubeadm
// and the API server, and runs static pods as host processes:
//
//   - it takes the real kubelet's flags (unknown ones are errors) and reads
//     the KubeletConfiguration given by --config;
//   - it serves /healthz on healthzBindAddress:healthzPort (127.0.0.1:10248);
//   - it runs each container of each static pod in staticPodPath as a host
//     process (command + args, looked up on PATH; env from the spec), logs
//     to /var/log/pods, restarts it with a backoff when it exits or when its
//     manifest changes, stops it when the manifest goes, and finds it again
//     after a restart (pid files in ROOT_DIR/standin);
//   - it registers its Node with kubelet.conf's credentials, keeps it Ready
//     (status and Lease heartbeats) and creates mirror pods for its static
//     pods (owned by the Node, status Running with the node's address);
//   - without a usable kubelet.conf it performs the TLS bootstrap with
//     --bootstrap-kubeconfig (a CSR for kubernetes.io/kube-apiserver-client-kubelet)
//     and writes ROOT_DIR/pki/kubelet-client-current.pem and kubelet.conf;
//   - on SIGTERM it stops and leaves the static pod processes running, as
//     the real kubelet leaves its containers.
//
// Differences a user may notice: a container that exits is restarted after
// 1 s doubling to 10 s (the real kubelet: 10 s to 5 min); the node is Ready
// without a CNI plugin (static pods use the host network). What it does not
// do: pods other than static pods, volumes other than host paths (which need
// nothing), liveness probes, the kubelet's own API on port 10250 (logs,
// exec), client certificate rotation after the bootstrap.
package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"
)

// version is the Kubernetes version the kubelet reports (set at build).
var version = "v0.0.0-standin"

// markerEnv marks the processes of static pods (clean.sh finds them by it).
const markerEnv = "SEALFLOW_STANDIN_POD"

// processPath is the PATH commands of static pods are looked up on.
const processPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

func main() {
	os.Exit(run(os.Args[1:]))
}

func run(args []string) int {
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	f, err := parseFlags(args)
	if err != nil {
		log.Error("command failed", "err", fmt.Errorf("failed to parse kubelet flag: %w", err))
		fmt.Fprint(os.Stderr, usage())
		return 1
	}
	if f["help"] == "true" {
		fmt.Print(usage())
		return 0
	}
	if v := f["version"]; v != "" && v != "false" {
		fmt.Println("Kubernetes " + version)
		return 0
	}
	o, err := loadOptions(f, version)
	if err != nil {
		log.Error("command failed", "err", err)
		return 1
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	if err := serve(ctx, o, log); err != nil {
		log.Error("kubelet failed", "err", err)
		return 1
	}
	return 0
}

// serve runs the kubelet until ctx ends.
func serve(ctx context.Context, o options, log *slog.Logger) error {
	log.Info("starting kubelet (stand-in)", "version", o.Version, "node", o.NodeName, "nodeIP", o.NodeIP,
		"staticPodPath", o.StaticPodPath, "healthz", o.HealthzAddr)
	ln, err := net.Listen("tcp", o.HealthzAddr)
	if err != nil {
		return fmt.Errorf("serve healthz: %w", err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok")) })
	hs := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = hs.Serve(ln) }()
	defer hs.Close()

	changed := make(chan struct{}, 1)
	notify := func() {
		select {
		case changed <- struct{}{}:
		default:
		}
	}
	sup, err := newSupervisor(log, filepath.Join(o.RootDir, "standin"), "/var/log/pods", processPath,
		backoff{Initial: time.Second, Max: 10 * time.Second, Reset: time.Minute}, notify)
	if err != nil {
		return err
	}
	env := podEnv{NodeName: o.NodeName, NodeIP: o.NodeIP, Path: processPath, Marker: markerEnv}

	done := make(chan struct{})
	go func() {
		defer close(done)
		apiLoop(ctx, o, sup, changed, log)
	}()
	watchManifests(ctx, o, env, sup, log)
	<-done
	sup.Detach()
	log.Info("kubelet stopped; static pod processes left running")
	return nil
}

// watchManifests syncs the supervisor with the static pod path: at once,
// then every check interval (the real kubelet also watches with inotify;
// polling each second stands in for that).
func watchManifests(ctx context.Context, o options, env podEnv, sup *supervisor, log *slog.Logger) {
	if o.StaticPodPath == "" {
		log.Info("no staticPodPath: no static pods")
		sup.Sync(nil)
		<-ctx.Done()
		return
	}
	every := min(o.FileCheck, time.Second)
	reported := map[string]bool{}
	for {
		pods, errs := loadStaticPods(o.StaticPodPath, env)
		now := map[string]bool{}
		for _, err := range errs {
			now[err.Error()] = true
			if !reported[err.Error()] {
				log.Error("static pod not run", "err", err)
			}
		}
		reported = now
		sup.Sync(pods)
		select {
		case <-ctx.Done():
			return
		case <-time.After(every):
		}
	}
}

// apiLoop keeps the node's objects in the API server: it gets credentials
// (bootstrapping them if needed), registers the node, then heartbeats and
// syncs mirror pods until ctx ends or the credentials change.
func apiLoop(ctx context.Context, o options, sup *supervisor, changed <-chan struct{}, log *slog.Logger) {
	var last string
	say := func(msg string, err error) {
		if s := msg + err.Error(); s != last {
			last = s
			log.Warn(msg, "err", err)
		}
	}
	for ctx.Err() == nil {
		c, stamp, err := connect(ctx, o, log)
		if err != nil {
			say("no connection to the API server yet; static pods run meanwhile", err)
			sleepCtx(ctx, 2*time.Second)
			continue
		}
		a := newNodeAgent(o, c, log)
		if err := a.register(ctx); err != nil {
			say("cannot register the node", err)
			sleepCtx(ctx, 2*time.Second)
			continue
		}
		last = ""
		err = a.loop(ctx, o, sup, changed, stamp)
		if err != nil && ctx.Err() == nil {
			say("lost the API server", err)
			sleepCtx(ctx, time.Second)
		}
	}
}

// loop heartbeats and syncs mirror pods; it returns when the kubeconfig
// changed or the API server rejects the credentials.
func (a *nodeAgent) loop(ctx context.Context, o options, sup *supervisor, changed <-chan struct{}, stamp string) error {
	beat := time.NewTicker(o.StatusUpdate)
	defer beat.Stop()
	podTick := time.NewTicker(2 * time.Second)
	defer podTick.Stop()
	var lastErr string
	report := func(err error) {
		if err == nil {
			lastErr = ""
			return
		}
		if err.Error() != lastErr {
			lastErr = err.Error()
			a.log.Warn("sync with the API server", "err", err)
		}
	}
	fatal := func(err error) bool { return isCode(err, 401) }
	if err := a.heartbeat(ctx); fatal(err) {
		return err
	} else {
		report(err)
	}
	for {
		if err := a.syncMirrorPods(ctx, sup.Pods()); fatal(err) {
			return err
		} else {
			report(err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-changed:
		case <-podTick.C:
		case <-beat.C:
			if err := a.heartbeat(ctx); fatal(err) {
				return err
			} else {
				report(err)
			}
		}
		if kubeconfigStamp(o.Kubeconfig) != stamp {
			return errors.New("kubeconfig changed: reconnecting")
		}
	}
}

// connect returns a client with the kubelet's credentials: kubelet.conf
// when it is usable, else those of a TLS bootstrap. It also returns the
// stamp of the kubeconfig it used.
func connect(ctx context.Context, o options, log *slog.Logger) (*apiClient, string, error) {
	if o.Kubeconfig == "" {
		return nil, "", errors.New("no --kubeconfig: running standalone")
	}
	creds, err := loadKubeconfig(o.Kubeconfig)
	if err == nil {
		_, err = creds.clientCert(time.Now())
	}
	if err != nil {
		if o.BootstrapKubeconfig == "" {
			return nil, "", fmt.Errorf("%s is not usable and there is no --bootstrap-kubeconfig: %w", o.Kubeconfig, err)
		}
		if _, serr := os.Stat(o.BootstrapKubeconfig); serr != nil {
			return nil, "", fmt.Errorf("%s is not usable (%v) and the bootstrap kubeconfig is missing: %w", o.Kubeconfig, err, serr)
		}
		log.Info("no usable kubeconfig: TLS bootstrap", "kubeconfig", o.Kubeconfig, "reason", err)
		if err := tlsBootstrap(ctx, o, log); err != nil {
			return nil, "", err
		}
		if creds, err = loadKubeconfig(o.Kubeconfig); err != nil {
			return nil, "", err
		}
	} else if o.RotateCertificates {
		// As the kubelet's certificate manager does with a kubeconfig
		// that holds its certificate: keep it in the certificate store.
		if _, serr := os.Stat(filepath.Join(o.CertDir, currentPEMName)); errors.Is(serr, os.ErrNotExist) {
			if p, err := storeClientCert(o.CertDir, creds.CertPEM, creds.KeyPEM, time.Now()); err != nil {
				log.Warn("cannot store the client certificate", "err", err)
			} else {
				log.Info("stored the client certificate", "path", p)
			}
		}
	}
	stamp := kubeconfigStamp(o.Kubeconfig)
	c, err := newAPIClient(creds, time.Now(), o.Version)
	if err != nil {
		return nil, "", fmt.Errorf("kubeconfig %s: %w", o.Kubeconfig, err)
	}
	return c, stamp, nil
}

// kubeconfigStamp changes when the file at path changes.
func kubeconfigStamp(path string) string {
	fi, err := os.Stat(path)
	if err != nil {
		return "missing"
	}
	return fmt.Sprint(fi.Size(), fi.ModTime().UnixNano())
}

func sleepCtx(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}
