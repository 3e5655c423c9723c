#!/bin/bash
# Rough ns/packet of xvswitchd's PMD: VM->VM through NORMAL on one bridge (p2p) vs VM->geneve
# encap (chassis A of a two-chassis setup). iperf3 UDP, 64-byte payloads, 5 s.
set -u
WORK=${WORK:-/tmp/xvs-geneve-perf}; mkdir -p "$WORK"
B=${XVS_BIN_DIR:-$(dirname "$0")/../target/release}/xvswitchd
T=hgp$$
cleanup() {
  for p in $(cat ${WORK:-/tmp/xvs-geneve-perf}/pids 2>/dev/null); do kill $p 2>/dev/null; done
  sleep 1
  for n in ${T}a ${T}b ${T}va ${T}vb ${T}s ${T}x ${T}y; do ip netns del $n 2>/dev/null; done
  rm -f ${WORK:-/tmp/xvs-geneve-perf}/pids
}
trap cleanup EXIT
: > ${WORK:-/tmp/xvs-geneve-perf}/pids
run() { # ns rundir args...
  local ns=$1 rd=$2; shift 2
  mkdir -p $rd
  ip netns exec $ns $B --rundir $rd "$@" --pmd-idle sleep > $rd/log 2>&1 &
  echo $! >> ${WORK:-/tmp/xvs-geneve-perf}/pids
  for i in $(seq 50); do [ -S $rd/xvswitchd.ctl ] && break; sleep 0.1; done
}
appctl() { ovs-appctl -t $1/xvswitchd.ctl "${@:2}"; }
measure() { # ns-of-client dst rundir
  ip netns exec $4 iperf3 -s -1 -D >/dev/null 2>&1; sleep 0.5
  ip netns exec $1 iperf3 -c $2 -u -l 64 -b 0 -t 2 >/dev/null 2>&1
  appctl $3 pmd/stats-clear
  ip netns exec $4 iperf3 -s -1 -D >/dev/null 2>&1; sleep 0.5
  ip netns exec $1 iperf3 -c $2 -u -l 64 -b 0 -t 5 2>&1 | grep -E "receiver|sender" | tail -2
  appctl $3 pmd/stats | grep -E "avg processing|packets received"
}
# --- p2p: one switch, two VMs
ip netns add ${T}s; ip netns add ${T}x; ip netns add ${T}y
ip link add xa netns ${T}x type veth peer name pa netns ${T}s
ip link add xb netns ${T}y type veth peer name pb netns ${T}s
ip -n ${T}x addr add 10.88.0.1/24 dev xa; ip -n ${T}x link set xa up; ip -n ${T}x link set lo up
ip -n ${T}y addr add 10.88.0.2/24 dev xb; ip -n ${T}y link set xb up; ip -n ${T}y link set lo up
ip -n ${T}s link set pa up; ip -n ${T}s link set pb up
run ${T}s ${WORK:-/tmp/xvs-geneve-perf}/s --bridge br0 --port pa --port pb
ip netns exec ${T}x ping -c 2 -i 0.2 10.88.0.2 >/dev/null
echo "== p2p (NORMAL, VM -> VM)"
measure ${T}x 10.88.0.2 ${WORK:-/tmp/xvs-geneve-perf}/s ${T}y
# --- geneve: two chassis
for n in a b va vb; do ip netns add ${T}$n; ip -n ${T}$n link set lo up; done
ip link add ula netns ${T}a type veth peer name ulb netns ${T}b
ip link add va netns ${T}va type veth peer name pva netns ${T}a
ip link add vb netns ${T}vb type veth peer name pvb netns ${T}b
ip -n ${T}va addr add 10.77.0.1/24 dev va; ip -n ${T}va link set va up
ip -n ${T}vb addr add 10.77.0.2/24 dev vb; ip -n ${T}vb link set vb up
for x in "a ula pva 172.31.0.2 172.31.0.1" "b ulb pvb 172.31.0.1 172.31.0.2"; do
  set -- $x
  ip -n ${T}$1 link set $2 up; ip -n ${T}$1 link set $3 up
  run ${T}$1 ${WORK:-/tmp/xvs-geneve-perf}/$1 --bridge br-int --port $3 --port geneve0,type=geneve,remote_ip=$4,key=flow \
      --bridge br-phy --port $2
  ip -n ${T}$1 link set br-phy up; ip -n ${T}$1 addr add $5/24 dev br-phy
  sleep 1.5
  OVS_RUNDIR=${WORK:-/tmp/xvs-geneve-perf}/$1 ovs-ofctl del-flows br-int
  OVS_RUNDIR=${WORK:-/tmp/xvs-geneve-perf}/$1 ovs-ofctl add-tlv-map br-int "{class=0x0102,type=0x80,len=4}->tun_metadata0"
  OVS_RUNDIR=${WORK:-/tmp/xvs-geneve-perf}/$1 ovs-ofctl add-flow br-int "in_port=1,actions=set_field:5->tun_id,set_field:0x1234->tun_metadata0,output:2"
  OVS_RUNDIR=${WORK:-/tmp/xvs-geneve-perf}/$1 ovs-ofctl add-flow br-int "in_port=2,tun_id=5,tun_metadata0=0x1234,actions=output:1"
done
for i in $(seq 20); do ip netns exec ${T}va ping -c 1 -W 1 10.77.0.2 >/dev/null && break; done
echo "== geneve encap (chassis A: VM -> tunnel)"
measure ${T}va 10.77.0.2 ${WORK:-/tmp/xvs-geneve-perf}/a ${T}vb
echo "== geneve decap (chassis B: tunnel -> VM, same run)"
appctl ${WORK:-/tmp/xvs-geneve-perf}/b pmd/stats | grep -E "avg processing|packets received"
