#!/usr/bin/env bash
# make bench: every benchmark of the README, in one run.
set -euo pipefail
cd "$(dirname "$0")/../.."

echo "== engine: 10,000 no-op tasks (100 chained steps x 100 hosts), real journal; then resume with one task left"
go test -run '^$' -bench 'Engine10k' -benchtime 3x ./internal/engine | grep -E '^Benchmark|^cpu'

echo
echo "== engine at scale: 20,000 no-op tasks (10 chained steps x 2,000 hosts), a connection that returns at once, real journal"
echo "   (ms/task: wall time / tasks; peak-live-B/task and peak-heap-B/task: runtime/metrics peaks above the heap before the run)"
go test -run '^$' -bench 'Engine2kHosts' -benchtime 3x -benchmem ./internal/engine | grep -E '^Benchmark'
echo "== status and plan on that state directory (20,000 tasks journaled), the functions the CLI calls"
go test -run '^$' -bench 'StatusPlan2kHosts' -benchtime 3x -benchmem ./internal/app | grep -E '^Benchmark'

echo
echo "== one \`true\` after another on one lab host over one connection: on its runner, in a session of its own"
go test -run '^$' -bench 'ExecLab' -benchtime 300x ./internal/transport/sshconn | grep -E '^Benchmark'

echo
echo "== fan-out over SSH: sealflow vs ansible-playbook and parallel-ssh"
bash testdata/bench/fanout.sh

echo
echo "== distribution: relay vs push"
bash testdata/bench/distribute.sh

echo
echo "== offline package: build (cold, warm), verify, size"
bash testdata/bench/package.sh

if [ -f testdata/bench/lvscare.sh ]; then
	echo
	echo "== lvscare: failover time and idle cost"
	bash testdata/bench/lvscare.sh
fi

echo
echo "== HA cluster on the real node stack: time to Ready and to verify, memory, idle CPU"
bash testdata/bench/cluster.sh
