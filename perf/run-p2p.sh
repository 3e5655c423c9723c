#!/usr/bin/env bash
# Builds the workspace (release) and runs the p2p scenario: generator -> switch port 1 -> port 2
# -> sink, 64-byte frames, for the kernel's XDP_REDIRECT, the minimal AF_XDP forwarder,
# xvswitchd and OVS 3.1 afxdp, interleaved per round. Needs root.
#
#   perf/run-p2p.sh                          # all cases, RUNS=3, WINDOW=6 s, WARMUP=2 s,
#                                            # up to 30 s wait for a quiet machine per run
#   RUNS=5 perf/run-p2p.sh --cases xvs,ovs   # any `xvs-perf p2p` option passes through
#   perf/run-p2p.sh --in eth1 --out eth2 --pmd-cpus 2,3 --queues 2   # real NICs
#
# Prints a table and writes perf/results/p2p-<UTC time>.json (see perf/README.md).
set -euo pipefail
cd "$(dirname "$0")/.."
[ -f "$HOME/.cargo/env" ] && . "$HOME/.cargo/env"
if [ "$(id -u)" -ne 0 ]; then
  echo "run-p2p.sh: needs root (namespaces, XDP, AF_XDP, SCHED_FIFO)" >&2
  exit 1
fi
# WAIT_QUIET: before each run, wait up to that many seconds for the machine to be quiet
export RUNS="${RUNS:-3}" WINDOW="${WINDOW:-6}" WARMUP="${WARMUP:-2}" WAIT_QUIET="${WAIT_QUIET:-30}"
cargo build --release --workspace --quiet
exec ./target/release/xvs-perf p2p "$@"
