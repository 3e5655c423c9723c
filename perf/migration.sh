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
# Writes perf/results/migration-*.json, a median/worst table, and one timeline PNG per switch
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
python3 - "$OUT" "$RUNS" "$IV" <<'PY'
import glob, json, os, statistics, sys
out, runs, iv = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])

def veth_times(path):
    """(first RARP leaving the destination VM, first stream frame reaching it after that),
    kernel timestamps (s, wall clock) of the capture on the VM's interface."""
    t_rarp = None
    try:
        for line in open(path):
            p = line.split(None, 2)
            if len(p) < 3:
                continue
            t = float(p[0])
            if t_rarp is None:
                if "Reverse Request" in p[2] or "RARP" in p[2] or "ethertype Reverse" in p[2]:
                    t_rarp = t
            elif ".9999:" in p[2] and "UDP" in p[2]:
                return t_rarp, t
    except FileNotFoundError:
        pass
    return t_rarp, None

def switch_times(path):
    """xvswitchd's own timestamps (s, wall clock, read by the PMD): the activation (when it
    handled the first RARP) and the first packet it handed to the port after it."""
    try:
        v = json.load(open(path))
        g = v[0]["gates"][0]
        return g["activation"]["at_ns"] / 1e9, g["first_delivered"]["at_ns"] / 1e9
    except Exception:
        return None, None

def us(a, b):
    return round((b - a) * 1e6, 1) if a is not None and b is not None else None

def coverage_delta(m, ch):
    def load(p):
        d = {}
        try:
            for line in open(p):
                p2 = line.split()
                if len(p2) < 2:
                    continue
                if "total:" in line:
                    d[p2[0]] = int(line.rsplit("total:", 1)[1].split()[0])
                elif p2[-1].isdigit():
                    d[p2[0].rstrip(":")] = int(p2[-1])
        except FileNotFoundError:
            pass
        return d
    a, b = load(f"{m}/coverage-{ch}-before.txt"), load(f"{m}/coverage-{ch}-after.txt")
    return {k: b[k] - a.get(k, 0) for k in b if b[k] != a.get(k, 0) and ("drop" in k or "gate" in k)}

res = {"runs": runs, "interval_s": iv, "switches": {}}
for sw in ("ovs", "xvs"):
    rows = []
    for m in sorted(glob.glob(f"{out}/{sw}/m*"), key=lambda p: int(p.rsplit("m", 1)[1])):
        try:
            r = json.load(open(f"{m}/run1/result.txt"))
        except Exception:
            r = {"run": os.path.basename(m), "error": "no result"}
        r["run"] = os.path.basename(m)
        v_rarp, v_first = veth_times(f"{m}/dst.txt")
        r["veth_rarp_to_first_us"] = us(v_rarp, v_first)
        if sw == "xvs":
            # the same wall clock: the RARP on the VM's veth -> the PMD handling it (kernel
            # delivery to the AF_XDP socket and PMD wake-up) -> the first packet the PMD
            # hands to the port (the switch) -> that frame on the VM's veth (kernel)
            s_act, s_first = switch_times(f"{m}/port-state.json")
            r["switch_first_delivery_us"] = us(s_act, s_first)
            r["veth_rarp_to_activation_us"] = us(v_rarp, s_act)
            r["delivery_to_veth_us"] = us(s_first, v_first)
        r["coverage_drops_ch1"] = coverage_delta(m, "ch1")
        r["coverage_drops_ch2"] = coverage_delta(m, "ch2")
        rows.append(r)
    res["switches"][sw] = rows
keys = ["switch_first_delivery_us", "veth_rarp_to_activation_us", "delivery_to_veth_us",
        "veth_rarp_to_first_us", "rarp0_to_first_dst_ms",
        "downtime_ms", "lost_total", "lost_after_final", "dst_before_stop", "final_reblock_ms",
        "rarp0_to_flowdel_ms"]
summary = {}
print(f"migrations per switch: {runs}, stream interval {iv*1e3:.2f} ms")
print(f"{'metric':<26} {'ovs median':>11} {'ovs worst':>10} {'xvs median':>11} {'xvs worst':>10} {'n ovs/xvs':>10}")
for k in keys:
    vals = {sw: [r[k] for r in rows if isinstance(r.get(k), (int, float))] for sw, rows in res["switches"].items()}
    cells, ns = [], []
    for sw in ("ovs", "xvs"):
        v = vals.get(sw, [])
        ns.append(str(len(v)))
        cells += [f"{statistics.median(v):.2f}" if v else "-", f"{max(v):.2f}" if v else "-"]
        if v:
            summary.setdefault(sw, {})[k] = {"median": statistics.median(v), "worst": max(v), "n": len(v)}
    print(f"{k:<26} {cells[0]:>11} {cells[1]:>10} {cells[2]:>11} {cells[3]:>10} {'/'.join(ns):>10}")
res["summary"] = summary
for sw, rows in res["switches"].items():
    for r in rows:
        if r.get("lost_after_final"):
            print(f"{sw} {r['run']}: {r['lost_after_final']} lost after finalize; drops ch1 {r['coverage_drops_ch1']} ch2 {r['coverage_drops_ch2']}")
json.dump(res, open(out + ".json", "w"), indent=1)
print("results:", out + ".json")
PY
