package steps

import (
	"context"
	"fmt"
	"net/netip"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// DefaultToolbox is the image the verify kind's pods run: the package's
// small toolbox (nc, nslookup, httpd).
const DefaultToolbox = "docker.io/library/busybox:1.36.1"

// verifyKind checks a cluster the way a user would judge it: nodes Ready,
// system pods Running, pods reaching pods on every other node, a Service's
// ClusterIP answering from every node, cluster DNS, and workers reaching
// the apiservers through the VIP. It runs kubectl on one master, leaves
// nothing behind, and fails naming the check and the node.
func verifyKind() *Kind {
	return &Kind{
		Name: "verify",
		Doc:  "check the cluster works: nodes Ready, kube-system Running, pod network between every pair of nodes, a Service from every node, DNS, the VIP from every worker",
		Params: []Param{
			{Name: "vip", Type: String, Doc: "the virtual IP workers reach the masters through (default " + DefaultVIP + ")"},
			{Name: "image", Type: String, Doc: "the toolbox image of the check pods (default " + DefaultToolbox + ")"},
			{Name: "namespace", Type: String, Doc: "the namespace the checks run in, deleted afterwards (default sealflow-verify)"},
			{Name: "timeout", Type: String, Doc: "how long nodes and pods may take to be ready (default 5m)"},
			{Name: "kubeconfig", Type: String, Doc: "the admin kubeconfig on the host (default /etc/kubernetes/admin.conf)"},
			{Name: "daemonsets", Type: StringList, Doc: "DaemonSets (NAMESPACE/NAME) that must run a ready pod on every node: kube-proxy, the pod network's agent"},
		},
		Rerunnable: true,
		New:        newVerify,
	}
}

type verify struct {
	vip, image, namespace, kubeconfig string
	daemonsets                        []string
	timeout                           time.Duration
}

var (
	namespaceRE = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)
	imageRE     = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._/:@-]*$`)
)

func newVerify(p Params) (Step, error) {
	s := &verify{}
	s.vip, _ = p["vip"].(string)
	s.image, _ = p["image"].(string)
	s.namespace, _ = p["namespace"].(string)
	s.kubeconfig, _ = p["kubeconfig"].(string)
	s.daemonsets, _ = p["daemonsets"].([]string)
	for _, d := range s.daemonsets {
		ns, name, ok := strings.Cut(d, "/")
		if !ok || !namespaceRE.MatchString(ns) || !namespaceRE.MatchString(name) {
			return nil, fmt.Errorf("daemonsets: %q is not NAMESPACE/NAME, e.g. kube-system/kube-proxy", d)
		}
	}
	to, _ := p["timeout"].(string)
	s.vip = orDefault(s.vip, DefaultVIP)
	if a, err := netip.ParseAddr(s.vip); err != nil || !a.Is4() {
		return nil, fmt.Errorf("vip: %q is not an IPv4 address", s.vip)
	}
	s.image = orDefault(s.image, DefaultToolbox)
	if !imageRE.MatchString(s.image) {
		return nil, fmt.Errorf("image: %q is not an image reference", s.image)
	}
	s.namespace = orDefault(s.namespace, "sealflow-verify")
	if !namespaceRE.MatchString(s.namespace) || s.namespace == "kube-system" || s.namespace == "default" {
		return nil, fmt.Errorf("namespace: %q: give a namespace of its own (lowercase letters, digits, '-'); it is deleted afterwards", s.namespace)
	}
	s.kubeconfig = orDefault(s.kubeconfig, "/etc/kubernetes/admin.conf")
	if err := checkRemotePath("kubeconfig", s.kubeconfig); err != nil {
		return nil, err
	}
	s.timeout = 5 * time.Minute
	if to != "" {
		d, err := time.ParseDuration(to)
		if err != nil || d < time.Second || d > 2*time.Hour {
			return nil, fmt.Errorf("timeout: %q: a duration from 1s to 2h such as 5m", to)
		}
		s.timeout = d
	}
	return s, nil
}

func (s *verify) env() map[string]string {
	return map[string]string{
		"KUBECONFIG":    s.kubeconfig,
		"SF_VIP":        s.vip,
		"SF_IMAGE":      s.image,
		"SF_NS":         s.namespace,
		"SF_TIMEOUT":    strconv.Itoa(int(s.timeout.Seconds())),
		"SF_DAEMONSETS": strings.Join(s.daemonsets, " "),
	}
}

// verifyScript: every check prints one row "CHECK NODE RESULT" and a failed
// one makes the script fail at the end with every failure named. The check
// objects are deleted on every exit.
const verifyScript = `ns=$SF_NS
k() { kubectl --request-timeout=30s "$@"; }
failed=0
row() { printf '%-14s %-24s %s\n' "$1" "$2" "$3"; }
fail() { row "$1" "$2" "FAIL: $3"; failed=$((failed + 1)); echo "verify: $1 on $2: $3" >&2; }
tmp=$(mktemp -d)
cleanup() { kubectl --request-timeout=30s delete namespace "$ns" --ignore-not-found --wait=true --timeout=120s >/dev/null 2>&1 || :; rm -rf "$tmp"; }
trap cleanup EXIT
deadline=$(( $(date +%s) + SF_TIMEOUT ))
waitfor() { # waitfor WHAT CMD...: until CMD succeeds or the deadline
	while ! "$@" >/dev/null 2>&1; do
		[ "$(date +%s)" -lt "$deadline" ] || return 1
		sleep 2
	done
}
row CHECK NODE RESULT
# get POD URL-HOST PORT: an HTTP GET from inside a check pod with nc (busybox
# builds' wget is not always usable: Debian's static one crashes), printing
# the body's last line.
get() { k exec -n "$ns" "$1" -- sh -c 'printf "GET / HTTP/1.0\r\n\r\n" | nc -w 5 "$0" "$1" | tail -n 1' "$2" "$3"; }

# 1. Every node Ready. Each poll keeps its listing and the verdict comes
# from the last one: a second listing may differ (a node or pod appearing
# or restarting in between), and a kubectl that fails is never "all ok".
nodesok() {
	nodelist=$(k get nodes -o jsonpath='{range .items[*]}{.metadata.name}{" "}{.status.conditions[?(@.type=="Ready")].status}{"\n"}{end}' 2>"$tmp/err") || { nodeerr="kubectl: $(tail -n 1 "$tmp/err")"; nodelist=; return 1; }
	nodeerr=
	[ -n "$nodelist" ] && [ -z "$(printf '%s\n' "$nodelist" | awk '$2 != "True"')" ]
}
waitfor nodesok || :
nodes=$(printf '%s\n' "$nodelist" | awk '{print $1}')
bad=$(printf '%s\n' "$nodelist" | awk '$2 != "True" {print $1}')
[ -z "$nodeerr" ] || fail node-ready all "cannot list the nodes: $nodeerr"
[ -n "$nodeerr" ] || [ -n "$nodes" ] || fail node-ready all "no node registered"
for n in $nodes; do
	case " $(echo $bad) " in
	*" $n "*) fail node-ready "$n" "NotReady ($(k get node "$n" -o jsonpath='{.status.conditions[?(@.type=="Ready")].message}'))" ;;
	*) row node-ready "$n" ok ;;
	esac
done

# 2. Every kube-system pod Running and ready (NAME@NODE:PHASE of the others).
sysok() {
	syslist=$(k get pods -n kube-system -o jsonpath='{range .items[*]}{.metadata.name}{" "}{.spec.nodeName}{" "}{.status.phase}{" "}{.status.containerStatuses[*].ready}{"\n"}{end}' 2>"$tmp/err") || { syserr="kubectl: $(tail -n 1 "$tmp/err")"; sysbad=; return 1; }
	syserr=
	sysbad=$(printf '%s\n' "$syslist" | awk '$3 != "Running" || $0 ~ /false/ {print $1 "@" $2 ":" $3}')
	[ -z "$sysbad" ]
}
waitfor sysok || :
[ -z "$syserr" ] || fail system-pod all "cannot list the kube-system pods: $syserr"
for p in $sysbad; do fail system-pod "${p#*@}" "${p%%@*} is not Running and ready"; done
[ -n "$syserr$sysbad" ] || row system-pods all ok
# 2b. Every node runs a ready pod of each DaemonSet named (kube-proxy, the
# pod network's agent): a node without its network agent may still look
# Ready for a while.
for d in $SF_DAEMONSETS; do
	dns=${d%%/*}; dname=${d#*/}
	if ! uid=$(k get ds "$dname" -n "$dns" -o jsonpath='{.metadata.uid}' 2>&1); then
		fail daemonset all "$d: $uid"
		continue
	fi
	missing() { # the nodes without a ready pod of the DaemonSet
		k get pods -n "$dns" -o jsonpath='{range .items[*]}{.metadata.ownerReferences[0].uid}{" "}{.spec.nodeName}{" "}{.status.phase}{" "}{.status.containerStatuses[*].ready}{"\n"}{end}' |
			awk -v u="$uid" '$1 == u && $3 == "Running" && $0 !~ /false/ {print $2}' | sort -u > "$tmp/have"
		for n in $nodes; do grep -qx "$n" "$tmp/have" || echo "$n"; done
	}
	none() { gone=$(missing); [ -z "$gone" ]; }
	waitfor none || :
	for n in $gone; do fail daemonset "$n" "no ready pod of $d"; done
	[ -n "$gone" ] || row daemonset all "ok $d"
done

# 3. Check pods: one on the pod network and one on the host network per node,
# in a namespace of their own. An earlier verify's namespace may still be
# going away (its pods on a node without a network take a while to end),
# and the API takes nothing new into it until it is gone: that is waited for.
nsfree() { [ -z "$(k get namespace "$ns" --ignore-not-found -o jsonpath='{.metadata.deletionTimestamp}')" ]; }
pods= hosts=
nsfree || echo "verify: namespace $ns of an earlier verify is still being deleted; waiting for it" >&2
if ! waitfor nsfree; then
	fail check-pods all "namespace $ns, an earlier verify's, is still being deleted: see kubectl get pods -n $ns"
elif ! k apply -f - >/dev/null 2>"$tmp/err" <<EOF
apiVersion: v1
kind: Namespace
metadata: {name: $ns}
---
apiVersion: apps/v1
kind: DaemonSet
metadata: {name: pod, namespace: $ns}
spec:
  selector: {matchLabels: {app: sealflow-verify-pod}}
  template:
    metadata: {labels: {app: sealflow-verify-pod}}
    spec:
      tolerations: [{operator: Exists}]
      terminationGracePeriodSeconds: 1
      containers:
      - name: toolbox
        image: $SF_IMAGE
        imagePullPolicy: IfNotPresent
        command: [sh, -c, 'mkdir -p /www && hostname >/www/index.html && exec httpd -f -p 8080 -h /www']
        ports: [{containerPort: 8080}]
---
apiVersion: apps/v1
kind: DaemonSet
metadata: {name: host, namespace: $ns}
spec:
  selector: {matchLabels: {app: sealflow-verify-host}}
  template:
    metadata: {labels: {app: sealflow-verify-host}}
    spec:
      hostNetwork: true
      dnsPolicy: ClusterFirstWithHostNet
      tolerations: [{operator: Exists}]
      terminationGracePeriodSeconds: 1
      containers:
      - name: toolbox
        image: $SF_IMAGE
        imagePullPolicy: IfNotPresent
        command: [sleep, "3600"]
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: $ns}
spec:
  selector: {app: sealflow-verify-pod}
  ports: [{port: 80, targetPort: 8080}]
EOF
then
	fail check-pods all "cannot create the check pods: kubectl: $(tail -n 1 "$tmp/err")"
else
	want=$(echo $nodes | wc -w)
	dsready() { [ "$(k get ds "$1" -n "$ns" -o jsonpath='{.status.numberReady}')" = "$want" ]; }
	for ds in pod host; do
		if ! waitfor dsready "$ds"; then
			k get pods -n "$ns" -o wide >&2 || :
			fail "$ds-pods" all "not every node runs a ready check pod (image $SF_IMAGE)"
		fi
	done
	# NAME,NODE,IP a line: what the checks below go through.
	for app in pod host; do
		if ! list=$(k get pods -n "$ns" -l "app=sealflow-verify-$app" -o jsonpath='{range .items[*]}{.metadata.name}{","}{.spec.nodeName}{","}{.status.podIP}{"\n"}{end}' 2>"$tmp/err"); then
			fail check-pods all "cannot list the $app check pods: kubectl: $(tail -n 1 "$tmp/err")"
		elif [ -z "$list" ]; then
			fail check-pods all "no check pod ($app) is listed in namespace $ns"
		fi
		case $app in pod) pods=$list ;; host) hosts=$list ;; esac
	done
fi

# 4. Every pod reaches every other node's pod.
for a in $pods; do
	an=${a#*,}; an=${an%%,*}; ap=${a%%,*}
	for b in $pods; do
		[ "$a" != "$b" ] || continue
		bn=${b#*,}; bn=${bn%%,*}; bip=${b##*,}; bp=${b%%,*}
		if got=$(get "$ap" "$bip" 8080 2>&1) && [ "$got" = "$bp" ]; then
			row pod-network "$an" "ok -> $bn"
		else
			fail pod-network "$an" "cannot reach the pod on $bn ($bip:8080): $got"
		fi
	done
done

# 5. The Service's ClusterIP answers from every node's own network.
svc=
[ -z "$hosts" ] || svc=$(k get svc web -n "$ns" -o jsonpath='{.spec.clusterIP}' 2>&1) || svc="(kubectl: $svc)"
for h in $hosts; do
	hp=${h%%,*}; hn=${h#*,}; hn=${hn%%,*}
	if got=$(get "$hp" "$svc" 80 2>&1) && [ -n "$got" ]; then
		row service "$hn" "ok $svc -> $got"
	else
		fail service "$hn" "ClusterIP $svc does not answer: $got"
	fi
done

# 6. Cluster DNS from a pod (the first, if any): the API's Service and the
# check Service by name.
for first in $(echo "$pods" | head -n 1); do
	fp=${first%%,*}; fn=${first#*,}; fn=${fn%%,*}
	api=$(k get svc kubernetes -n default -o jsonpath='{.spec.clusterIP}' 2>&1) || api="(kubectl: $api)"
	for q in "kubernetes.default.svc.cluster.local $api" "web.$ns.svc.cluster.local $svc"; do
		name=${q%% *}; ip=${q#* }
		if got=$(k exec -n "$ns" "$fp" -- nslookup "$name" 2>&1) && echo "$got" | grep -q "Address:* *$ip\$"; then
			row dns "$fn" "ok $name = $ip"
		else
			fail dns "$fn" "$name does not resolve to $ip: $(echo "$got" | tr '\n' ' ')"
		fi
	done
done

# 7. Every worker reaches the apiservers through the VIP.
for h in $hosts; do
	hp=${h%%,*}; hn=${h#*,}; hn=${hn%%,*}
	k get node "$hn" -o jsonpath='{.metadata.labels}' | grep -q 'node-role.kubernetes.io/control-plane' && continue
	if k exec -n "$ns" "$hp" -- nc -w 3 "$SF_VIP" 6443 -e /bin/true >/dev/null 2>&1; then
		row vip "$hn" "ok $SF_VIP:6443"
	else
		fail vip "$hn" "cannot connect to $SF_VIP:6443"
	fi
done

if [ "$failed" -gt 0 ]; then
	echo "verify: $failed checks failed" >&2
	exit 1
fi
`

func (s *verify) Run(ctx context.Context, t *Target) (Outputs, error) {
	out, err := output(ctx, t, "verify the cluster", verifyScript, s.env())
	logf(t, "%s", out)
	if err != nil {
		if f := failures(out); f != "" {
			// The first line is what a summary shows: the checks that failed.
			return nil, fmt.Errorf("%s\n%w", f, err)
		}
		return nil, err
	}
	return Outputs{"checks": strconv.Itoa(strings.Count(out, " ok"))}, nil
}

// failures names the table's failed rows on one line ("2 checks failed:
// daemonset n2: no ready pod of ...; dns m1: ..."), at most five of them.
func failures(table string) string {
	var rows []string
	for _, l := range strings.Split(table, "\n") {
		check, result, ok := strings.Cut(l, "FAIL: ")
		if !ok {
			continue
		}
		rows = append(rows, strings.Join(strings.Fields(check), " ")+": "+strings.TrimSpace(result))
	}
	if len(rows) == 0 {
		return ""
	}
	head := fmt.Sprintf("%d checks failed: ", len(rows))
	if len(rows) == 1 {
		head = "1 check failed: "
	}
	if len(rows) > 5 {
		rows = append(rows[:5], fmt.Sprintf("and %d more (see the log)", len(rows)-5))
	}
	return head + strings.Join(rows, "; ")
}

func (s *verify) Describe(t *Target) []string {
	return []string{fmt.Sprintf("check nodes Ready, kube-system Running, pod network, Service, DNS and VIP %s with %s pods in namespace %s (deleted afterwards)", s.vip, s.image, s.namespace)}
}
