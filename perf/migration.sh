#!/usr/bin/env bash
# perf/migration.sh -- live-migration downtime under real OVN 23.03, stock ovs-vswitchd and
# xvswitchd side by side in one run.
#
# For each switch daemon: the reference lab (../shared/lab/ovn-lab.sh: central + two chassis,
# client and VM on ch1, the VM's destination interface on ch2) and RUNS migrations of the VM
# (requested-chassis=ch1,ch2 + activation-strategy=rarp; a UDP stream client->VM; the source
# goes down and the destination sends QEMU's RARPs at 0/50/200/450/800 ms; then
# requested-chassis=ch2). Per migration the lab's analyzer gives:
#   rarp0_to_first_dst_ms  first RARP sent -> first stream datagram received at the destination
#                          (the switch-owned activation latency plus at most one stream interval)
#   downtime_ms            last datagram at the source -> first at the destination
#   lost_total             stream datagrams never received
# Writes perf/results/migration-*.json (every run), a median/worst table, and one timeline PNG
# per switch (perf/results/migration-*-SWITCH.png: blue = received at the source, red = at the
# destination, black ticks = RARPs, x = ms from the first RARP).
#
#   sudo perf/migration.sh [RUNS] [INTERVAL_S]      (defaults 10 and 0.0001 = 10 kpps)
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:-10}
IV=${2:-0.0001}
LABSH=${LABSH:-../shared/lab/ovn-lab.sh}
XVS=${XVS:-$PWD/target/release/xvswitchd}
[ -x "$LABSH" ] || { echo "need $LABSH" >&2; exit 1; }
[ -x "$XVS" ] || { echo "need $XVS (cargo build --release)" >&2; exit 1; }
TS=$(date -u +%Y%m%dT%H%M%SZ)
OUT=perf/results/migration-$TS
mkdir -p "$OUT"
for sw in ovs xvs; do
  lab=/tmp/xvs-migration-$sw
  if [ $sw = ovs ]; then vs=/usr/sbin/ovs-vswitchd; args=""; else vs=$XVS; args="--pmd-idle sleep"; fi
  export LAB=$lab VSWITCHD=$vs VSWITCHD_ARGS=$args
  "$LABSH" down >/dev/null 2>&1 || true
  "$LABSH" up >/dev/null 2>&1 || { echo "lab up failed ($sw)" >&2; exit 1; }
  MIGRATE_INTERVAL=$IV MIGRATE_OUT=$OUT/$sw "$LABSH" migrate "$RUNS" > "$OUT/$sw.log" 2>&1 || true
  if [ $sw = xvs ]; then
    ovs-appctl -t $lab/ch2/run/ovs-vswitchd.ctl port/state > "$OUT/xvs-port-state.txt" 2>&1 || true
  fi
  "$LABSH" down >/dev/null 2>&1 || true
  python3 perf/timeline_png.py "perf/results/migration-$TS-$sw.png" "$sw" "$OUT/$sw"/run*
done
python3 - "$OUT" "$RUNS" "$IV" <<'PY'
import glob, json, statistics, sys
out, runs, iv = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
keys = ["rarp0_to_first_dst_ms", "downtime_ms", "lost_total", "rarp0_to_flowdel_ms"]
res = {"runs": runs, "interval_s": iv, "switches": {}}
for sw in ("ovs", "xvs"):
    rows = []
    for f in sorted(glob.glob(f"{out}/{sw}/run*/result.txt")):
        try:
            rows.append(json.load(open(f)))
        except Exception:
            pass
    res["switches"][sw] = rows
print(f"migrations per switch: {runs}, stream interval {iv*1e3:.2f} ms")
print(f"{'metric':<24} {'ovs median':>11} {'ovs worst':>10} {'xvs median':>11} {'xvs worst':>10}")
for k in keys:
    vals = {sw: [r[k] for r in rows if isinstance(r.get(k), (int, float))] for sw, rows in res["switches"].items()}
    cells = []
    for sw in ("ovs", "xvs"):
        v = vals[sw]
        cells += [f"{statistics.median(v):.2f}" if v else "-", f"{max(v):.2f}" if v else "-"]
    print(f"{k:<24} {cells[0]:>11} {cells[1]:>10} {cells[2]:>11} {cells[3]:>10}")
json.dump(res, open(out + ".json", "w"), indent=1)
print("results:", out + ".json")
PY
