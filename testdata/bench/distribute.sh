#!/usr/bin/env bash
# Distribution benchmark, on one lab of HOSTS (default 16) hosts whose
# links are all shaped at RATE (default 100mbit, see below) each way,
# sealflow running in the lab's control namespace (its link shaped too, as
# a control machine's on the same network). A SIZE_MIB (default 256) MiB
# random file is put at /var/lib/bench/blob with the distribute step:
#   - to one host (--limit n1): the baseline, one link's worth;
#   - push to all hosts (mode: push): the control machine sends every copy;
#   - relay to all hosts (mode: relay): the hosts pass the file on;
#   - relay with one host (VICTIM, default the middle one: n8) cut off
#     halfway: its link is taken down when its partial file is half the
#     size; the others' finish time, whether the run names the cut-off
#     host, and the time of `sealflow resume` once the link is up again.
# The runs take turns (one host, push, relay, ...); times are min/median/max
# of RUNS runs (default 3), each ratio the median of the per-run ratios. A
# push sends HOSTS copies through the control machine's one link (about 6
# minutes at the defaults), so it runs only in the first PUSH_RUNS runs
# (default 1; 0 leaves it out).
# "egress" is what the control machine sent into the lab (sealflow lab
# egress) over the file's size; "cpu" the machine's busy share of its cores
# (other work on the machine counts too).
# MODE=0 is for a sealflow whose distribute has no mode parameter (it
# pushes): the plans leave `mode:` out, the relay lines are skipped and
# VICTIM is cut off in a push instead. A sealflow built without its relay
# agents (`go build` rather than `make build`) pushes too: a relay's egress
# of about HOSTS x the file says so.
#
# RATE: every host of a relay receives, checks and passes on the whole
# stream, all on this machine's cores: at 100mbit 16 hosts move 200 MB/s.
# On 2 cores a relay of 256 MiB to 16 hosts kept the cores 52% busy and took
# 1.01x the one-host time, so the links, not the cores, set the pace at
# 100mbit. "cpu" near 100% says the cores were the limit: then lower RATE.
set -euo pipefail
cd "$(dirname "$0")/../.."
[ "$(id -u)" = 0 ] || { echo "the benchmark needs root (lab hosts)" >&2; exit 2; }
RUNS=${RUNS:-3}
PUSH_RUNS=${PUSH_RUNS:-1}
HOSTS=${HOSTS:-16}
RATE=${RATE:-100mbit}
SIZE_MIB=${SIZE_MIB:-256}
MODE=${MODE:-1}
VICTIM=${VICTIM:-n$((HOSTS / 2))}

need=()
[ -x /usr/sbin/sshd ] || need+=(openssh-server)
command -v bc >/dev/null || need+=(bc)
command -v tc >/dev/null || need+=(iproute2)
if [ ${#need[@]} -gt 0 ]; then
	echo "installing ${need[*]} ..."
	apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi

bin=${SEALFLOW:-$PWD/bin/sealflow}
work=$(mktemp -d /var/tmp/sealflow-bench.XXXXXX)
name=bdist$$
bg=
trap '[ -z "$bg" ] || kill "$bg" 2>/dev/null || true; "$bin" lab down --name "$name" >/dev/null 2>&1 || true; rm -rf "$work"' EXIT

"$bin" lab up -q --name "$name" --masters 0 --nodes "$HOSTS" --rate "$RATE" --control-ns --dir "$work/lab" >/dev/null
inv=$work/lab/inventory.yaml kh=$work/lab/known_hosts
# `lab ls` names the control namespace ("netns NS") and each host's link
# on the bridge ("link LINK").
field() { "$bin" lab ls | awk -v lab="$name" -v row="$1" -v key="$2" \
	'$1 == "lab" { cur = $2 } cur == lab && $1 == row { for (i = 1; i < NF; i++) if ($i == key) print $(i + 1) }'; }
ctl=$(field control netns)
hosts=$(sed -n 's/.*{name: \([^,]*\),.*/\1/p' "$inv")
if [ -z "$ctl" ] || [ "$(echo "$hosts" | wc -w)" != "$HOSTS" ]; then
	echo "lab $name: no control namespace or not $HOSTS hosts (sealflow lab ls)" >&2
	exit 1
fi
grep -qx "$VICTIM" <<<"$hosts" || { echo "VICTIM=$VICTIM is not a host of the lab" >&2; exit 2; }

size=$((SIZE_MIB << 20))
head -c "$size" /dev/urandom >"$work/blob"
sum=$(sha256sum "$work/blob" | cut -d' ' -f1)
dest=/var/lib/bench/blob
partial=/var/lib/bench/.blob.sealflow-partial
plan() { # plan FILE [MODE]
	{
		echo "name: distribute"
		echo "steps:"
		echo "  - id: blob"
		echo "    kind: distribute"
		echo "    with: {src: $work/blob, dest: $dest, sha256: $sum${2:+, mode: $2}}"
	} >"$1"
}
plan "$work/one.yaml"
if [ "$MODE" = 1 ]; then plan "$work/push.yaml" push; else plan "$work/push.yaml"; fi
plan "$work/relay.yaml" relay

on() { "$bin" lab exec "$name" "$@"; }
clean() { for h in $hosts; do on "$h" -- rm -rf /var/lib/bench; done; }
egress() { "$bin" lab egress --name "$name"; }
# sealflow run or resume in the control namespace
sf() { local cmd=$1; shift; ip netns exec "$ctl" "$bin" "$cmd" --output plain --state "$work/state" --known-hosts "$kh" "$@"; }
now() { date +%s.%N; }
# busy and total jiffies of the machine's cores
cpu() { awk '$1 == "cpu" { print $2 + $3 + $4 + $7 + $8, $2 + $3 + $4 + $5 + $6 + $7 + $8 }' /proc/stat; }
# one run of a plan: seconds, egress / size and cpu share into files $2.{t,e,c}
once() { # once PLAN OUT [RUN FLAGS...]
	local p=$1 out=$2 t0 t1 e0 e1 c0 c1
	shift 2
	clean
	rm -rf "$work/state"
	e0=$(egress) c0=$(cpu) t0=$(now)
	sf run -i "$inv" "$@" "$p" >"$work/last.log" 2>&1 || { echo "FAILED: sealflow run $* $p" >&2; tail -20 "$work/last.log" >&2; exit 1; }
	t1=$(now) c1=$(cpu) e1=$(egress)
	echo "$t1 - $t0" | bc -l >>"$out.t"
	echo "scale=3; ($e1 - $e0) / $size" | bc -l >>"$out.e"
	echo "$c0 $c1" | awk '{ printf "%.0f\n", 100 * ($3 - $1) / ($4 - $2) }' >>"$out.c"
	tail -1 "$out.t"
}
# min/median/max of the numbers on stdin
mmm() { sort -n | awk '{a[NR]=$1} END {printf "%.2f/%.2f/%.2f", a[1], a[int((NR+1)/2)], a[NR]}'; }
med() { sort -n | awk '{a[NR]=$1} END {printf "%.2f", a[int((NR+1)/2)]}'; }
ratio() { echo "scale=3; $1 / $2" | bc -l; }
size_on() { on "$1" -- stat -c %s "$2" 2>/dev/null || echo 0; }

# A run of PLAN (LABEL) with VICTIM cut off when its partial file is half
# the size: the others' finish time, whether the run names VICTIM, and the
# time `sealflow resume` takes once the link is up again.
cut_off() { # cut_off PLAN LABEL
	local plan=$1 label="$2, $VICTIM cut off halfway" link t0 t_cut='' t_others rc=0 waited h t1 failed
	link=$(field "$VICTIM" link)
	clean
	rm -rf "$work/state"
	t0=$(now)
	sf run -i "$inv" "$plan" >"$work/cut.log" 2>&1 &
	bg=$!
	while kill -0 "$bg" 2>/dev/null && [ -z "$t_cut" ]; do
		if [ "$(size_on "$VICTIM" "$partial")" -ge $((size / 2)) ]; then
			ip link set "$link" down
			t_cut=$(now)
		fi
		sleep 0.2
	done
	# The run ends when it gives up on VICTIM (no answer to keepalives).
	waited=0
	while kill -0 "$bg" 2>/dev/null && [ "$waited" -lt 900 ]; do sleep 1; waited=$((waited + 1)); done
	if kill -0 "$bg" 2>/dev/null; then
		kill "$bg"
		echo "the run still went on 900s after $VICTIM was cut off: stopped it" >>"$work/cut.log"
	fi
	wait "$bg" || rc=$?
	bg=
	t1=$(now)
	ip link set "$link" up
	if [ -z "$t_cut" ]; then
		printf '%-34s not cut: the run ended (exit %d) before its partial file was half the size\n' "$label" "$rc"
		return
	fi
	# The others are done when the last of them has the whole file: its
	# last write is the file's mtime (the hosts share this machine's clock).
	t_others=0
	for h in $hosts; do
		[ "$h" != "$VICTIM" ] || continue
		if [ "$(size_on "$h" "$dest")" != "$size" ]; then t_others=; break; fi
		t_others=$(on "$h" -- stat -c %.3Y "$dest" | awk -v t="$t_others" '{ print ($1 > t) ? $1 : t }')
	done
	# The hosts of the run's summary of failed tasks ("  STEP@HOST: ...").
	failed=$(sed -n '/^failed:/,$ s/^  [^ ]*@\([^:]*\): .*/\1/p' "$work/cut.log" | sort -u | tr '\n' ' ')
	printf '%-34s cut at %.1fs; others done %s; run exit %d after %.1fs, failed: %s(want %s)\n' "$label" \
		"$(echo "$t_cut - $t0" | bc -l)" "$([ -n "$t_others" ] && printf '%.1fs' "$(echo "$t_others - $t0" | bc -l)" || echo "never (not all have the file)")" \
		"$rc" "$(echo "$t1 - $t0" | bc -l)" "${failed:-none }" "$VICTIM"
	t0=$(now)
	if sf resume >"$work/resume.log" 2>&1 && [ "$(on "$VICTIM" -- sha256sum "$dest" | cut -d' ' -f1)" = "$sum" ]; then
		printf '%-34s %.1fs, %s has the file\n' "  then link up, sealflow resume" "$(echo "$(now) - $t0" | bc -l)" "$VICTIM"
	else
		printf '%-34s FAILED (see below)\n' "  then link up, sealflow resume"
		tail -20 "$work/resume.log"
	fi
}

# RATE in bits per second (tc's units: k, m and g are powers of 1000)
bits() { awk -v r="$1" 'BEGIN { u = tolower(r); sub(/^[0-9.]+/, "", u); split("bit 1 kbit 1e3 mbit 1e6 gbit 1e9 bps 8 kbps 8e3 mbps 8e6 gbps 8e9", a)
	for (i = 1; i < 16; i += 2) m[a[i]] = a[i + 1]; printf "%.0f", (r + 0) * m[u] }'; }
secs=$(echo "scale=1; $size * 8 / $(bits "$RATE")" | bc -l)
printf 'distribute %d MiB to %d lab hosts, links %s each way (%ss for the file on one link), %d cores, %d runs each (push %d)\n' \
	"$SIZE_MIB" "$HOSTS" "$RATE" "$secs" "$(nproc)" "$RUNS" "$(( PUSH_RUNS < RUNS ? PUSH_RUNS : RUNS ))"
printf '(times min/median/max; egress: control machine bytes sent / file size; cpu: machine busy; ratio: median of per-run ratios)\n'
for i in $(seq 1 "$RUNS"); do
	a=$(once "$work/one.yaml" "$work/one" --limit n1)
	if [ "$i" -le "$PUSH_RUNS" ]; then
		b=$(once "$work/push.yaml" "$work/push")
		ratio "$b" "$a" >>"$work/r_push"
	fi
	if [ "$MODE" = 1 ]; then
		c=$(once "$work/relay.yaml" "$work/relay")
		ratio "$c" "$a" >>"$work/r_relay"
	fi
done
line() { # line LABEL OUT RATIOS
	printf '%-34s %-22s egress %5.2fx  cpu %3.0f%%  %s\n' "$1" "$(mmm <"$2.t")s" "$(med <"$2.e")" "$(med <"$2.c")" "${3:+time / one host $(med <"$3")x}"
}
line "one host (--limit n1)" "$work/one"
[ "$PUSH_RUNS" -lt 1 ] || line "push to $HOSTS ($([ "$MODE" = 1 ] && echo "mode: push" || echo "no mode"))" "$work/push" "$work/r_push"
if [ "$MODE" = 1 ]; then
	line "relay to $HOSTS (mode: relay)" "$work/relay" "$work/r_relay"
	cut_off "$work/relay.yaml" relay
else
	echo "relay lines skipped (MODE=0: distribute without a mode parameter)"
	cut_off "$work/push.yaml" push
fi
