#!/usr/bin/env bash
# perf/ovn-install.sh -- how long does ovn-controller take to program a chassis, on stock
# ovs-vswitchd and on xvswitchd, in one run?
#
# Runs the reference OVN lab (../shared/lab/ovn-lab.sh: central + two chassis, base topology)
# once per switch daemon, RUNS times, and reads the chassis' ovn-controller logs:
#   start      ovn-controller's first log line
#   installed  the last "Setting lport ... ovn-installed in OVS" of the bring-up (ovn-controller
#              writes it once the port's flows are committed and barrier-acknowledged)
# and counts br-int's flows on each chassis. Prints a table, writes perf/results/ovn-install-*.json.
#
#   sudo perf/ovn-install.sh [RUNS]       (default 3; needs a release build)
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:-3}
LABSH=${LABSH:-../shared/lab/ovn-lab.sh}
XVS=${XVS:-$PWD/target/release/xvswitchd}
[ -x "$LABSH" ] || { echo "need $LABSH" >&2; exit 1; }
[ -x "$XVS" ] || { echo "need $XVS (cargo build --release)" >&2; exit 1; }
OUT=perf/results/ovn-install-$(date -u +%Y%m%dT%H%M%SZ).json
ms() { date -d "$1" +%s%3N; }
rows=()
for run in $(seq "$RUNS"); do
  for sw in ovs xvs; do
    lab=/tmp/xvs-ovn-install-$sw
    if [ $sw = ovs ]; then vs=/usr/sbin/ovs-vswitchd; args=""; else vs=$XVS; args="--pmd-idle sleep"; fi
    LAB=$lab VSWITCHD=$vs VSWITCHD_ARGS=$args "$LABSH" down >/dev/null 2>&1 || true
    LAB=$lab VSWITCHD=$vs VSWITCHD_ARGS=$args "$LABSH" up >/dev/null 2>&1 || { echo "lab up failed ($sw)" >&2; exit 1; }
    for ch in ch1 ch2; do
      log=$lab/$ch/log/ovn-controller.log
      t0=$(head -1 "$log" | cut -c1-23)
      t1=$(grep "ovn-installed in OVS" "$log" | grep Setting | tail -1 | cut -c1-23)
      flows=$(ovs-ofctl -O OpenFlow15 dump-flows "unix:$lab/$ch/run/br-int.mgmt" --no-stats | grep -c priority= || true)
      dt=$(( $(ms "${t1/T/ }") - $(ms "${t0/T/ }") ))
      printf '%-4s run%-2s %s  flows %5d  start->installed %5d ms\n' $sw "$run" $ch "$flows" "$dt"
      rows+=("{\"switch\":\"$sw\",\"run\":$run,\"chassis\":\"$ch\",\"flows\":$flows,\"start_to_installed_ms\":$dt}")
    done
    LAB=$lab VSWITCHD=$vs "$LABSH" down >/dev/null 2>&1 || true
  done
done
printf '[%s]\n' "$(IFS=,; echo "${rows[*]}")" > "$OUT"
python3 - "$OUT" <<'EOF'
import json, statistics, sys
rows = json.load(open(sys.argv[1]))
for ch in ("ch1", "ch2"):
    m = {sw: statistics.median(r["start_to_installed_ms"] for r in rows if r["switch"] == sw and r["chassis"] == ch) for sw in ("ovs", "xvs")}
    f = {sw: statistics.median(r["flows"] for r in rows if r["switch"] == sw and r["chassis"] == ch) for sw in ("ovs", "xvs")}
    print(f"{ch}: flows ovs {f['ovs']:.0f} xvs {f['xvs']:.0f}; start->installed median ovs {m['ovs']:.0f} ms, xvs {m['xvs']:.0f} ms (xvs/ovs {m['xvs']/max(m['ovs'],1):.2f})")
print("results:", sys.argv[1])
EOF
