#!/usr/bin/env bash
# perf/migration.sh -- live-migration downtime under real OVN 23.03, stock ovs-vswitchd and
# xvswitchd side by side in one run.
#
# For each switch daemon: the reference lab (../shared/lab/ovn-lab.sh: central + two chassis,
# client and VM on ch1, the VM's destination interface on ch2) and RUNS migrations of the VM
# (requested-chassis=ch1,ch2 + activation-strategy=rarp; a UDP stream client->VM; the source
# goes down and the destination sends QEMU's RARPs at 0/50/200/450/800 ms; then
# requested-chassis=ch2), one `ovn-lab.sh migrate 1` each, with around each migration:
#   - a capture on the destination VM's own interface (xmvd-eth0 in netns xmvmdst, kernel
#     timestamps): the RARP leaving the VM and the first stream frame reaching it. The same
#     ruler for both switches:
#       veth_rarp_to_first_us   first RARP -> first stream frame at the destination VIF
#   - xvswitchd only: `port/state xmvd-p --json` on ch2, the switch's own timestamps (the
#     PMD's clock, read when it handles the RARP and when it hands the first packet to the
#     port):
#       switch_first_delivery_us   activation (first RARP) -> first packet delivered
#     and `migration/timeline xmvd-p --json`, `coverage/show` of both chassis before/after
#   - the lab's analyzer (Python sender/receiver clocks):
#       rarp0_to_first_dst_ms  first RARP sent -> first stream datagram received at the VM
#       downtime_ms            last datagram at the source -> first at the destination
#       lost_total, lost_after_final, dst_before_stop (must be 0: the gate armed)
# Both activation figures include the wait for the next stream datagram (at most one
# interval: 100 us at 10 kpps).
# Writes perf/results/migration-*.json and the median/worst table (perf/migration_report.py,
# re-runnable on a results directory), and one timeline PNG per switch
# (perf/results/migration-*-SWITCH.png: blue = received at the source, red = at the
# destination, black ticks = RARPs, x = ms from the first RARP).
#
#   sudo perf/migration.sh [RUNS] [INTERVAL_S]      (defaults 10 and 0.0001 = 10 kpps)
#   SWITCHES="xvs" perf/migration.sh 3              (one switch only)
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:-10}
IV=${2:-0.0001}
SWITCHES=${SWITCHES:-ovs xvs}
LABSH=${LABSH:-../shared/lab/ovn-lab.sh}
XVS=${XVS:-$PWD/target/release/xvswitchd}
[ -x "$LABSH" ] || { echo "need $LABSH" >&2; exit 1; }
[ -x "$XVS" ] || { echo "need $XVS (cargo build --release)" >&2; exit 1; }
TS=$(date -u +%Y%m%dT%H%M%SZ)
OUT=perf/results/migration-$TS
mkdir -p "$OUT"
# The reference lab names its namespaces ol* (olclient, olvmdst, olch1...), so two labs
# cannot be up at once and its `down` deletes whatever ol* exists. Run a copy whose names
# start with $NSP instead, so that another lab on the machine is left alone.
NSP=${NSP:-xm}
LABDIR=$(cd "$(dirname "$LABSH")" && pwd)
LABCOPY=$(mktemp /tmp/xvs-migration-lab.XXXXXX.sh)
sed -e "s|^HERE=.*|HERE=$LABDIR; OLP=\${OLP:-ol}|" -e "s/'\^ol'/\"^\$OLP\"/" \
    -e 's/\bol\([a-z0-9$]\)/${OLP}\1/g' "$LABSH" > "$LABCOPY"
chmod +x "$LABCOPY"
export OLP=$NSP
LABSH=$LABCOPY
CAP_PID=
stop_capture() {
  if [ -n "$CAP_PID" ]; then
    kill -INT "$CAP_PID" 2>/dev/null || true
    wait "$CAP_PID" 2>/dev/null || true
    CAP_PID=
  fi
}
trap 'stop_capture; "$LABSH" down >/dev/null 2>&1 || true; rm -f "$LABCOPY"' EXIT
for sw in $SWITCHES; do
  lab=/tmp/xvs-migration-$sw
  if [ $sw = ovs ]; then vs=/usr/sbin/ovs-vswitchd; args=""; else vs=$XVS; args="--pmd-idle sleep"; fi
  export LAB=$lab VSWITCHD=$vs VSWITCHD_ARGS=$args
  "$LABSH" down >/dev/null 2>&1 || true
  "$LABSH" up >/dev/null 2>&1 || { echo "lab up failed ($sw)" >&2; exit 1; }
  for i in $(seq 1 "$RUNS"); do
    M=$OUT/$sw/m$i
    mkdir -p "$M"
    for ch in ch1 ch2; do "$LABSH" vsappctl $ch coverage/show > "$M/coverage-$ch-before.txt" 2>&1 || true; done
    ip netns exec ${NSP}vmdst tcpdump -i ${NSP}vd-eth0 -nn -s 64 -U -w "$M/dst.pcap" \
      'ether proto 0x8035 or udp port 9999' 2>"$M/tcpdump.log" &
    CAP_PID=$!
    sleep 0.5
    MIGRATE_INTERVAL=$IV MIGRATE_OUT=$M "$LABSH" migrate 1 >> "$OUT/$sw.log" 2>&1 || true
    stop_capture
    for ch in ch1 ch2; do "$LABSH" vsappctl $ch coverage/show > "$M/coverage-$ch-after.txt" 2>&1 || true; done
    if [ $sw = xvs ]; then
      "$LABSH" vsappctl ch2 port/state ${NSP}vd-p --json > "$M/port-state.json" 2>&1 || true
      "$LABSH" vsappctl ch2 migration/timeline ${NSP}vd-p --json > "$M/timeline.json" 2>&1 || true
      "$LABSH" vsappctl ch2 migration/timeline ${NSP}vd-p > "$M/timeline.txt" 2>&1 || true
    fi
    tcpdump -r "$M/dst.pcap" -tt -nn 2>/dev/null > "$M/dst.txt" || true
    rm -f "$M/dst.pcap"
  done
  if [ $sw = xvs ]; then
    "$LABSH" vsappctl ch2 port/state > "$OUT/xvs-port-state.txt" 2>&1 || true
  fi
  "$LABSH" down >/dev/null 2>&1 || true
  python3 perf/timeline_png.py "perf/results/migration-$TS-$sw.png" "$sw" "$OUT/$sw"/m*/run1
done
python3 perf/migration_report.py "$OUT" "$RUNS" "$IV"
