#!/bin/sh
# The RDMA suites, run inside the soft-RoCE VM by `make test-rxe`:
#   ferry-vm -nvme-size 8M -- sh test/vm/rxe-suite.sh BINDIR
# BINDIR holds test binaries built on the host with `go test -c`. Each runs
# from its package directory, as `go test` would run it. Every suite runs
# even if an earlier one failed; the exit status says whether all passed.
# Last, ib_write_lat and Ferry's null exec run on the same rxe device in
# the same boot, for comparison (printed, not asserted).
set -u
bin=${1:?usage: rxe-suite.sh BINDIR}
root=$(pwd)
failed=""

run() { # name dir [env...] -- args
	name=$1 dir=$2
	shift 2
	echo "=== suite $name (kernel $(uname -r), $FERRY_RDMA_DEV on $FERRY_RDMA_NETDEV $FERRY_RDMA_ADDR)"
	start=$(date +%s)
	if (cd "$root/$dir" && env "$@"); then
		echo "=== suite $name: ok ($(( $(date +%s) - start )) s)"
	else
		echo "=== suite $name: FAIL ($(( $(date +%s) - start )) s)"
		failed="$failed $name"
	fi
}

run cgo cgo "$bin/cgo.test" -test.count=1
run rdma rdma "$bin/rdma.test" -test.count=1
run bpf bpf "$bin/bpf.test" -test.count=1 -test.run 'TestLoad|TestExtensionsMatchRef|TestRunChecksInput|TestEngine'
run target target "$bin/target.test" -test.count=1
run e2e-rdma test/e2e FERRY_E2E_TRANSPORT=rdma FERRY_E2E_NVME="$FERRY_NVME" \
	"$bin/e2e.test" -test.count=1 -test.v

echo "=== fabric sanity: raw RDMA write latency next to Ferry's null exec round trip"
# The server may not listen yet when the client starts: retry the client
# while the server lives, and bound both so a lost handshake cannot hang
# the suite.
timeout 120 taskset -c 0 ib_write_lat -d "$FERRY_RDMA_DEV" -s 64 -n 2000 >/tmp/lat-server.txt 2>&1 &
server=$!
for try in 1 2 3 4 5 6 7 8 9 10; do
	sleep 1
	if timeout 60 taskset -c 1 ib_write_lat -d "$FERRY_RDMA_DEV" -s 64 -n 2000 "$FERRY_RDMA_ADDR" \
		>/tmp/lat-client.txt 2>&1; then
		break
	fi
	kill -0 "$server" 2>/dev/null || break
done
kill "$server" 2>/dev/null
wait "$server" 2>/dev/null
grep -A1 't_typical' /tmp/lat-client.txt || { echo "ib_write_lat gave no figure:"; cat /tmp/lat-client.txt; }
for poll in 0 1; do
	echo "Ferry null exec, busy polling=$poll:"
	(cd "$root/test/e2e" && FERRY_E2E_TRANSPORT=rdma FERRY_E2E_NVME="$FERRY_NVME" FERRY_E2E_BUSYPOLL=$poll \
		"$bin/e2e.test" -test.run '^$' -test.bench 'BenchmarkNullExec' -test.benchtime 2000x | grep ns/op)
done
echo "(ib_write_lat reports one-way latency, half its busy-polled ping-pong; Ferry's figure is a"
echo " full round trip: request send, BPF_PROG_RUN over an empty range, reply send)"

if [ -n "$failed" ]; then
	echo "rxe suites failed:$failed"
	exit 1
fi
echo "rxe suites passed"
