#!/usr/bin/env bash
# perf/migration.sh -- live-migration downtime under real OVN 23.03, stock ovs-vswitchd and
# xvswitchd side by side in one run, migrations interleaved (ovs, xvs, ovs, xvs, ...).
#
# Two copies of the reference lab (../shared/lab/ovn-lab.sh: central + two chassis, client and
# VM on ch1, the VM's destination interface on ch2) are up at once, one per switch daemon, with
# their own namespace prefix (xo*, xx*) and state directory; RUNS migrations each of the VM
# (requested-chassis=ch1,ch2 + activation-strategy=rarp; a UDP stream client->VM; the source
# goes down and the destination sends QEMU's RARPs at 0/50/200/450/800 ms; then
# requested-chassis=ch2), one `ovn-lab.sh migrate 1` each, alternating between the labs.
#
# The stream, the receivers and the RARPs are `xvs-perf labtool` (perf/src/labtool.rs), not the
# lab's Python labtool.py: a paced sender (absolute deadlines, SCHED_FIFO, default 20 kpps =
# one datagram every 50 us; 50 kpps saturates this 2-core machine), receivers logging the
# kernel's receive timestamp, and an "instant source stop": the announcer downs the source VM's
# interface and sends the first RARP ~20-30 us later. Around each migration:
#   - a capture on the destination VM's own interface (kernel timestamps): the RARP leaving the
#     VM and the stream frames reaching it. The same ruler for both switches:
#       veth_rarp_to_first_us   first RARP -> first stream frame at the destination VIF
#   - xvswitchd only: `port/state PORT --json` on ch2, the switch's own timestamps (the PMD's
#     clock, read when it handles the RARP and when it hands the first packet to the port):
#       switch_first_delivery_us   activation (first RARP) -> first packet delivered
#     and `migration/timeline PORT --json`, `coverage/show` of both chassis before/after
#   - the lab's analyzer and perf/migration_report.py on the sender's log and the receivers'
#     kernel timestamps: lost_sent_after_rarp (datagrams sent after the first RARP and received
#     nowhere), switchover_gap_us (end-to-end gap: last datagram at the source VM -> first at
#     the destination), longest_gap_us (the longest interval without a datagram at either VM
#     from 0.5 s before the stop to the finalize step), steady_latency_*, lost_total, ...
# Both activation figures include the wait for the next stream datagram (at most one interval,
# 50 us at 20 kpps; sender_wait_* reports it).
# Writes perf/results/migration-*.json and the median/worst table (perf/migration_report.py,
# re-runnable on a results directory), and one timeline PNG per switch
# (perf/results/migration-*-SWITCH.png: blue = received at the source, red = at the
# destination, black ticks = RARPs, x = ms from the first RARP).
#
#   sudo perf/migration.sh [RUNS] [INTERVAL_S]      (defaults 10 and 0.00005 = 20 kpps)
#   SWITCHES="xvs" perf/migration.sh 3              (one switch only)
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:-10}
IV=${2:-0.00005}
SWITCHES=${SWITCHES:-ovs xvs}
LABSH=${LABSH:-../shared/lab/ovn-lab.sh}
XVS=${XVS:-$PWD/target/release/xvswitchd}
PERF=${PERF:-$PWD/target/release/xvs-perf}
[ -x "$LABSH" ] || { echo "need $LABSH" >&2; exit 1; }
[ -x "$XVS" ] || { echo "need $XVS (cargo build --release)" >&2; exit 1; }
[ -x "$PERF" ] || { echo "need $PERF (cargo build --release)" >&2; exit 1; }
TS=$(date -u +%Y%m%dT%H%M%SZ)
OUT=perf/results/migration-$TS
mkdir -p "$OUT"
# The reference lab names its namespaces ol* (olclient, olvmdst, olch1...), so two labs
# cannot be up at once and its `down` deletes whatever ol* exists. Run a copy whose names
# start with $OLP instead (one prefix per switch), so that the two labs of this run and
# another lab on the machine leave each other alone; the copy also takes the stream, the
# receivers and the RARPs from xvs-perf labtool.
LABDIR=$(cd "$(dirname "$LABSH")" && pwd)
LABCOPY=$(mktemp /tmp/xvs-migration-lab.XXXXXX.sh)
sed -e "s|^HERE=.*|HERE=$LABDIR; OLP=\${OLP:-ol}|" -e "s/'\^ol'/\"^\$OLP\"/" \
    -e 's/\bol\([a-z0-9$]\)/${OLP}\1/g' \
    -e "s#\\\$TOOL \\(send\\|recv\\|rarp\\) #$PERF labtool \\1 #" "$LABSH" > "$LABCOPY"
grep -q "$PERF labtool send" "$LABCOPY" || { echo "could not patch the lab's sender" >&2; exit 1; }
chmod +x "$LABCOPY"
LABSH=$LABCOPY
nsp() { if [ "$1" = ovs ]; then echo xo; else echo xx; fi; }
# runs the lab copy for switch $1 with the rest as arguments
lab() {
  local sw=$1; shift
  local vs=/usr/sbin/ovs-vswitchd args=""
  [ "$sw" = xvs ] && { vs=$XVS; args="--pmd-idle sleep"; }
  OLP=$(nsp "$sw") LAB=/tmp/xvs-migration-$sw VSWITCHD=$vs VSWITCHD_ARGS=$args "$LABSH" "$@"
}
CAP_PID=
stop_capture() {
  if [ -n "$CAP_PID" ]; then
    kill -INT "$CAP_PID" 2>/dev/null || true
    wait "$CAP_PID" 2>/dev/null || true
    CAP_PID=
  fi
}
cleanup() {
  stop_capture
  for sw in $SWITCHES; do lab "$sw" down >/dev/null 2>&1 || true; done
  rm -f "$LABCOPY"
}
trap cleanup EXIT
# NICE=-10 (default): every thread of each chassis' switch daemon and ovn-controller, both
# switches alike, runs at that nice level. The machine has two cores shared with compilers
# (load 5-8 while other engineers build): at nice 0 a PMD waits milliseconds for a core now and
# then, and that wait would be charged to whichever switch was unlucky (a production PMD owns
# its core). Not SCHED_FIFO: a trial with FIFO daemons hit RT throttling (tens of ms with every
# RT thread stopped, bursts of loss in steady state). NICE=0 measures without it.
NICE=${NICE:--10}
nice_daemons() {
  local sw=$1 ch pf
  for ch in ch1 ch2; do
    for pf in /tmp/xvs-migration-$sw/$ch/run/ovs-vswitchd.pid /tmp/xvs-migration-$sw/$ch/ovnrun/ovn-controller.pid; do
      # renice -p on each thread id: one process id only renices its main thread
      [ -f "$pf" ] && ls /proc/"$(cat "$pf")"/task | xargs renice -n "$NICE" -p >/dev/null \
        || echo "renice $pf failed" >&2
    done
  done
}
for sw in $SWITCHES; do
  lab "$sw" down >/dev/null 2>&1 || true
  lab "$sw" up >/dev/null 2>&1 || { echo "lab up failed ($sw)" >&2; exit 1; }
  nice_daemons "$sw"
done
for i in $(seq 1 "$RUNS"); do
  for sw in $SWITCHES; do
    P=$(nsp "$sw")
    M=$OUT/$sw/m$i
    mkdir -p "$M"
    echo "[$(date +%H:%M:%S)] $sw migration $i/$RUNS" >&2
    for ch in ch1 ch2; do lab "$sw" vsappctl $ch coverage/show > "$M/coverage-$ch-before.txt" 2>&1 || true; done
    ip netns exec ${P}vmdst tcpdump -i ${P}vd-eth0 -nn -s 64 -B 16384 -U -w "$M/dst.pcap" \
      'ether proto 0x8035 or udp port 9999' 2>"$M/tcpdump.log" &
    CAP_PID=$!
    sleep 0.5
    MIGRATE_INTERVAL=$IV MIGRATE_OUT=$M lab "$sw" migrate 1 >> "$OUT/$sw.log" 2>&1 || true
    stop_capture
    for ch in ch1 ch2; do lab "$sw" vsappctl $ch coverage/show > "$M/coverage-$ch-after.txt" 2>&1 || true; done
    if [ $sw = xvs ]; then
      lab "$sw" vsappctl ch2 port/state ${P}vd-p --json > "$M/port-state.json" 2>&1 || true
      lab "$sw" vsappctl ch2 migration/timeline ${P}vd-p --json > "$M/timeline.json" 2>&1 || true
      lab "$sw" vsappctl ch2 migration/timeline ${P}vd-p > "$M/timeline.txt" 2>&1 || true
    fi
    # the RARPs and the first 2000 stream frames after the first one (the rest is not read)
    tcpdump -r "$M/dst.pcap" -tt -nn 2>/dev/null \
      | awk '/Reverse|RARP/{r=1; print; next} r && n < 2000 {print; n++}' > "$M/dst.txt" || true
    rm -f "$M/dst.pcap"
  done
done
for sw in $SWITCHES; do
  [ $sw = xvs ] && lab "$sw" vsappctl ch2 port/state > "$OUT/xvs-port-state.txt" 2>&1 || true
  lab "$sw" down >/dev/null 2>&1 || true
  python3 perf/timeline_png.py "perf/results/migration-$TS-$sw.png" "$sw" "$OUT/$sw"/m*/run1
done
NICE=$NICE python3 perf/migration_report.py "$OUT" "$RUNS" "$IV"
