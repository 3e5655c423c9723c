#!/usr/bin/env bash
# The main job: build xvswitchd, start it on its embedded default configuration (a MAC-learning
# bridge over AF_XDP ports, no database, no controller) with a demo topology of three network
# namespaces, and show traffic crossing it.
#
#   ./scripts/demo.sh          run the demo, print what crossed the switch, tear down
#   ./scripts/demo.sh --keep   leave the switch and namespaces up (./scripts/demo.sh --down removes them)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
RUN=/tmp/xvs-demo
NS=(xdemo-a xdemo-b xdemo-c)
IFS_SW=(xdemo0 xdemo1 xdemo2)

down() {
  if [ -f "$RUN/xvswitchd.pid" ]; then
    local pid; pid=$(cat "$RUN/xvswitchd.pid")
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  fi
  for n in "${NS[@]}"; do ip netns del "$n" 2>/dev/null || true; done
  for i in "${IFS_SW[@]}"; do ip link del "$i" 2>/dev/null || true; done
  rm -rf "$RUN"
}

if [ "${1:-}" = "--down" ]; then down; echo "demo removed"; exit 0; fi
KEEP=0; [ "${1:-}" = "--keep" ] && KEEP=1

./scripts/setup.sh
[ -f "$HOME/.cargo/env" ] && . "$HOME/.cargo/env"
BIN=$ROOT/target/release
down
[ $KEEP = 1 ] || trap down EXIT
mkdir -p "$RUN"

echo "== topology: three namespaces, each joined to the switch by a veth pair"
for k in 0 1 2; do
  n=${NS[$k]}; sw=${IFS_SW[$k]}
  ip netns add "$n"
  ip link add "$sw" type veth peer name eth0 netns "$n"
  ip link set "$sw" up
  ip -n "$n" link set lo up
  ip -n "$n" addr add "10.77.0.$((k+1))/24" dev eth0
  ip -n "$n" link set eth0 up
  echo "   $n: 10.77.0.$((k+1)) via switch port $sw (OpenFlow port $((k+1)))"
done

echo "== starting xvswitchd (embedded default: bridge br0, NORMAL switching, AF_XDP ports)"
"$BIN/xvswitchd" --rundir "$RUN" --bridge br0 --port xdemo0 --port xdemo1 --port xdemo2 \
  --pmd-idle sleep --pidfile "$RUN/xvswitchd.pid" --log-file "$RUN/xvswitchd.log" &
for _ in $(seq 100); do [ -S "$RUN/xvswitchd.ctl" ] && break; sleep 0.1; done
[ -S "$RUN/xvswitchd.ctl" ] || { echo "xvswitchd did not start:"; cat "$RUN/xvswitchd.log"; exit 1; }
APPCTL="$BIN/xvs-appctl -t $RUN/xvswitchd.ctl"

echo "== ping a -> b and c -> a"
ip netns exec xdemo-a ping -c 3 -i 0.2 10.77.0.2
ip netns exec xdemo-c ping -c 3 -i 0.2 10.77.0.1

echo "== TCP: iperf3 b -> a for 3 s (veths keep their default checksum offload on)"
ip netns exec xdemo-a iperf3 -s -1 -D >/dev/null
sleep 0.3
ip netns exec xdemo-b iperf3 -c 10.77.0.1 -t 3 | tail -4

echo "== ovs-appctl works against the control socket too: ovs-appctl -t $RUN/xvswitchd.ctl fdb/show br0"
if command -v ovs-appctl >/dev/null; then ovs-appctl -t "$RUN/xvswitchd.ctl" fdb/show br0; else $APPCTL fdb/show br0; fi
echo "== dpif/show"
$APPCTL dpif/show
echo "== pmd/stats"
$APPCTL pmd/stats
echo "== coverage/show"
$APPCTL coverage/show

if [ $KEEP = 1 ]; then
  echo "== the switch keeps running: $APPCTL list-commands; ./scripts/demo.sh --down removes the demo"
else
  echo "== stopping (SIGTERM: PMDs stop, XDP programs detach, control socket removed)"
fi
