#!/usr/bin/env bash
# ovn-sandbox.sh -- real OVN (Debian's ovn-central + ovn-host, unmodified) on one machine,
# driving two chassis whose switch daemon is xvswitchd or, to compare, stock ovs-vswitchd.
#
#   ovn-sandbox.sh up                 start the central, ch1, ch2, ls0 with vm1 (ch1), vm2 (ch2);
#                                     a healthy sandbox is left as is, a half-up one rebuilt
#   ovn-sandbox.sh down               stop everything (by pid file), delete the namespaces
#   ovn-sandbox.sh status             daemons, ovn-sbctl show, flows per chassis, ping vm1->vm2
#   ovn-sandbox.sh ping [FROM] [IP]   ping (default vm1 -> 10.1.0.2)
#   ovn-sandbox.sh nbctl|sbctl ARGS   ovn-nbctl / ovn-sbctl on the sandbox's databases
#   ovn-sandbox.sh vsctl CH ARGS      ovs-vsctl on chassis CH (ch1, ch2)
#   ovn-sandbox.sh ofctl CH CMD ARGS  ovs-ofctl -O OpenFlow15 CMD <br-int of CH> ARGS
#   ovn-sandbox.sh appctl CH ARGS     ovs-appctl to CH's switch daemon (its unixctl socket)
#   ovn-sandbox.sh add-vm CH NAME MAC IP   a logical port NAME on ls0 and its namespace xosNAME
#
# Environment:
#   SWITCH=xvs|ovs        switch daemon on the chassis (default xvs)
#   XVSWITCHD=PATH        xvswitchd binary (default: target/release/xvswitchd of this repo)
#   SANDBOX=DIR           databases, sockets, pid files, logs (default /tmp/xvs-ovn-sandbox)
#   TIMEOUT=S             deadline of each wait (default 30)
#
# Topology (the test harness tests/src/ovn.rs builds the same, with other names):
#   root netns: NB + SB ovsdb-server, ovn-northd, on unix sockets under $SANDBOX/central
#   xosch1 / xosch2: ovsdb-server, switch daemon, ovn-controller (--monitor: restarted if it
#     crashes); br-phy holds the underlay veth xosu1 <-> xosu2 (arp off) and the encap IP
#     192.168.60.N/24 on its internal port (OVS userspace tunnelling routes and ARPs there);
#     br-int (netdev, fail_mode=secure) made before ovn-controller starts, with OVN's Geneve
#     TLV mapping already added (ovn-controller 23.03 may crash when it has to add it itself)
#   xosvm1 / xosvm2: eth0 (10.1.0.N/24, MTU 1400, TX checksum offload off) whose peer
#     xosvmN-p is a br-int port with external_ids:iface-id=vmN
# Only one sandbox runs at a time (the namespace names are fixed).
set -uo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(dirname "$HERE")
SANDBOX=${SANDBOX:-/tmp/xvs-ovn-sandbox}
XVSWITCHD=${XVSWITCHD:-$ROOT/target/release/xvswitchd}
TIMEOUT=${TIMEOUT:-30}
C=$SANDBOX/central
CHASSIS=(ch1 ch2)
UNDERLAY_NET=192.168.60
VS_SCHEMA=/usr/share/openvswitch/vswitch.ovsschema
NB_SCHEMA=/usr/share/ovn/ovn-nb.ovsschema
SB_SCHEMA=/usr/share/ovn/ovn-sb.ovsschema

log() { echo "ovn-sandbox: $*" >&2; }
die() {
  echo "ovn-sandbox: error: $*" >&2
  [ -n "${IN_UP:-}" ] && echo "ovn-sandbox: what was started is left for inspection (logs in" \
    "$SANDBOX); '$0 up' rebuilds, '$0 down' removes it" >&2
  exit 1
}

# ---------------------------------------------------------------- helpers
chn() { echo "${1#ch}"; }                 # ch2 -> 2
cdir() { echo "$SANDBOX/$1"; }            # a chassis' directory
cns() { echo "xos$1"; }                   # a chassis' namespace
nsx() { local ns=$1; shift; ip netns exec "$ns" "$@"; }
ns_exists() { ip netns list | awk '{print $1}' | grep -qx "$1"; }
check_ch() { case " ${CHASSIS[*]} " in *" ${1:-} "*) ;; *) die "no chassis '${1:-}' (ch1 or ch2)";; esac; }

nbctl() { ovn-nbctl --db="unix:$C/nb.sock" --timeout="$TIMEOUT" "$@"; }
sbctl() { ovn-sbctl --db="unix:$C/sb.sock" --timeout="$TIMEOUT" "$@"; }
vsctl() { local ch=$1; shift; ovs-vsctl --db="unix:$(cdir "$ch")/run/db.sock" --timeout="$TIMEOUT" "$@"; }
ofctl() {
  local ch=$1 cmd=$2; shift 2
  ovs-ofctl -O OpenFlow15 "$cmd" "unix:$(cdir "$ch")/run/br-int.mgmt" "$@"
}
appctl() { local ch=$1; shift; ovs-appctl -t "$(cdir "$ch")/run/switch.ctl" "$@"; }

# wait_until WHAT LOG CMD...: polls CMD until it succeeds; dies after $TIMEOUT s
wait_until() {
  local what=$1 logf=$2; shift 2
  local end=$((SECONDS + TIMEOUT))
  until "$@" >/dev/null 2>&1; do
    if [ $SECONDS -ge $end ]; then
      [ -n "$logf" ] && [ -f "$logf" ] && { echo "--- last lines of $logf:" >&2; tail -n 15 "$logf" >&2; }
      die "timed out after ${TIMEOUT}s waiting for $what"
    fi
    sleep 0.1
  done
}

# the pid in pid file $1 if that process is alive and one of ours (its command line names
# $SANDBOX: a stale pid file never makes us signal a stranger)
our_pid() {
  local pf=$1 pid
  [ -f "$pf" ] || return 1
  pid=$(cat "$pf" 2>/dev/null) || return 1
  [ -n "$pid" ] && running "$pid" || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF "$SANDBOX/" || return 1
  echo "$pid"
}
alive() { our_pid "$1" >/dev/null; }

# running PID: alive and not a zombie (a detached daemon's parent is pid 1, which may take
# seconds to reap it)
running() { local st; st=$(ps -o stat= -p "$1" 2>/dev/null) && [[ $st != Z* ]]; }

# stop_pid PID: SIGTERM, wait up to 5 s, then SIGKILL
stop_pid() {
  local pid=$1 i
  kill "$pid" 2>/dev/null || return 0
  for i in $(seq 50); do running "$pid" || return 0; sleep 0.1; done
  log "pid $pid ignored SIGTERM; killing it"
  kill -9 "$pid" 2>/dev/null
}

# stop_pidfile PIDFILE: stops the daemon and, for `--monitor`ed ones, its monitor: the
# daemon's parent, whose command line OVS rewrites to "NAME: monitoring pid PID (...)"; it
# exits by itself when the daemon dies of SIGTERM
stop_pidfile() {
  local pf=$1 pid ppid monitor=""
  if pid=$(our_pid "$pf"); then
    ppid=$(ps -o ppid= -p "$pid" | tr -d ' ')
    [ -n "$ppid" ] && [ "$ppid" != 1 ] &&
      ps -o args= -p "$ppid" | grep -q ": monitoring pid $pid " && monitor=$ppid
    stop_pid "$pid"
    if [ -n "$monitor" ]; then
      local i
      for i in $(seq 50); do running "$monitor" || break; sleep 0.1; done
      running "$monitor" && stop_pid "$monitor"
    fi
  fi
  rm -f "$pf"
}

# every daemon: "DESCRIPTION<tab>PIDFILE"
daemons() {
  printf '%s\t%s\n' nb-ovsdb-server "$C/nb.pid" sb-ovsdb-server "$C/sb.pid" \
    ovn-northd "$C/northd.pid"
  local ch D
  for ch in "${CHASSIS[@]}"; do
    D=$(cdir "$ch")
    printf '%s\t%s\n' "$ch-ovsdb-server" "$D/run/ovsdb-server.pid" "$ch-switch" \
      "$D/run/switch.pid" "$ch-ovn-controller" "$D/ovnrun/ovn-controller.pid"
  done
}

need_root() { [ "$(id -u)" = 0 ] || die "run as root (sudo $0 ${CMD:-})"; }

need_bins() {
  local b
  for b in ip ovsdb-tool ovsdb-server ovn-northd ovn-controller ovn-nbctl ovn-sbctl \
           ovs-vsctl ovs-ofctl ovs-appctl; do
    command -v "$b" >/dev/null 2>&1 || die "'$b' not found (apt install ovn-central ovn-host openvswitch-switch iproute2)"
  done
  local f
  for f in "$VS_SCHEMA" "$NB_SCHEMA" "$SB_SCHEMA"; do [ -f "$f" ] || die "missing schema $f"; done
  [ -x "$(switch_bin)" ] || {
    [ "$SWITCH" = xvs ] && die "$(switch_bin) not found: run 'cargo build --release' (or set XVSWITCHD)"
    die "$(switch_bin) not found (apt install openvswitch-switch)"
  }
}

switch_bin() { if [ "$SWITCH" = ovs ]; then echo /usr/sbin/ovs-vswitchd; else echo "$XVSWITCHD"; fi; }

# ---------------------------------------------------------------- central
start_central() {
  mkdir -p "$C"
  local db schema
  for db in nb sb; do
    schema=$NB_SCHEMA; [ $db = sb ] && schema=$SB_SCHEMA
    ovsdb-tool create "$C/$db.db" "$schema" || die "ovsdb-tool create $db"
    ovsdb-server "$C/$db.db" --detach --no-chdir -vconsole:off -vsyslog:off \
      --pidfile="$C/$db.pid" --log-file="$C/$db.log" --unixctl="$C/$db.ctl" \
      --remote="punix:$C/$db.sock" || die "cannot start the $db ovsdb-server (see $C/$db.log)"
  done
  OVN_RUNDIR=$C ovn-northd --detach --no-chdir -vconsole:off -vsyslog:off \
    --pidfile="$C/northd.pid" --log-file="$C/northd.log" --unixctl="$C/northd.ctl" \
    --ovnnb-db="unix:$C/nb.sock" --ovnsb-db="unix:$C/sb.sock" \
    || die "cannot start ovn-northd (see $C/northd.log)"
  wait_until "the NB database" "$C/nb.log" nbctl init
  wait_until "the SB database" "$C/sb.log" sbctl show
}

# ---------------------------------------------------------------- chassis
# chassis_run CH CMD...: CMD in CH's namespace with the directories its OVS/OVN daemons use
chassis_run() {
  local ch=$1 D; shift; D=$(cdir "$ch")
  nsx "$(cns "$ch")" env "OVS_RUNDIR=$D/run" "OVS_LOGDIR=$D/log" "OVS_DBDIR=$D" \
    "OVS_SYSCONFDIR=$D/etc" "OVN_RUNDIR=$D/ovnrun" "OVN_LOGDIR=$D/log" "OVN_DBDIR=$D" \
    "OVN_SYSCONFDIR=$D/etc" "$@"
}

start_switch() {
  local ch=$1 D; D=$(cdir "$ch")
  local common=("unix:$D/run/db.sock" --detach --no-chdir -vconsole:off -vsyslog:off
                "--pidfile=$D/run/switch.pid" "--log-file=$D/log/switch.log"
                "--unixctl=$D/run/switch.ctl")
  local extra=()
  [ "$SWITCH" = xvs ] && extra=(--pmd-idle sleep)
  chassis_run "$ch" "$(switch_bin)" "${common[@]}" "${extra[@]}" \
    || die "$ch: cannot start $(switch_bin) (see $D/log/switch.log)"
  wait_until "$ch's switch control socket" "$D/log/switch.log" appctl "$ch" version
}

start_chassis() {
  local ch=$1 n D ns; n=$(chn "$ch"); D=$(cdir "$ch"); ns=$(cns "$ch")
  mkdir -p "$D/run" "$D/log" "$D/ovnrun" "$D/etc"
  ovsdb-tool create "$D/conf.db" "$VS_SCHEMA" || die "$ch: ovsdb-tool create"
  chassis_run "$ch" ovsdb-server "$D/conf.db" --detach --no-chdir \
    -vconsole:off -vsyslog:off --pidfile="$D/run/ovsdb-server.pid" \
    --log-file="$D/log/ovsdb-server.log" --unixctl="$D/run/ovsdb-server.ctl" \
    --remote="punix:$D/run/db.sock" || die "$ch: cannot start ovsdb-server"
  wait_until "$ch's database" "$D/log/ovsdb-server.log" vsctl "$ch" --no-wait init
  vsctl "$ch" --no-wait set Open_vSwitch . \
    "external_ids:system-id=$ch" "external_ids:hostname=$ch" \
    "external_ids:ovn-remote=unix:$C/sb.sock" \
    external_ids:ovn-encap-type=geneve "external_ids:ovn-encap-ip=$UNDERLAY_NET.$n" \
    external_ids:ovn-bridge=br-int external_ids:ovn-bridge-datapath-type=netdev \
    || die "$ch: cannot configure Open_vSwitch"
  start_switch "$ch"
  # underlay: the veth end is a br-phy port, the encap IP on br-phy's internal port
  vsctl "$ch" --may-exist add-br br-phy -- set bridge br-phy datapath_type=netdev \
    -- --may-exist add-port br-phy "xosu$n" || die "$ch: cannot add br-phy"
  wait_until "$ch's br-phy interface" "$D/log/switch.log" nsx "$ns" ip link show br-phy
  nsx "$ns" ip link set br-phy up
  nsx "$ns" ip addr replace "$UNDERLAY_NET.$n/24" dev br-phy
  # br-int before ovn-controller, with OVN's Geneve option mapping in place
  vsctl "$ch" --may-exist add-br br-int -- set bridge br-int datapath_type=netdev \
    fail_mode=secure other_config:disable-in-band=true || die "$ch: cannot add br-int"
  wait_until "$ch's br-int.mgmt" "$D/log/switch.log" test -S "$D/run/br-int.mgmt"
  ofctl "$ch" add-tlv-map "{class=0x0102,type=0x80,len=4}->tun_metadata0" \
    || die "$ch: ovs-ofctl add-tlv-map failed"
  # --monitor: OVS's daemon library restarts ovn-controller if it crashes
  chassis_run "$ch" ovn-controller "unix:$D/run/db.sock" --detach --monitor \
    --no-chdir -vconsole:off -vsyslog:off --pidfile="$D/ovnrun/ovn-controller.pid" \
    --log-file="$D/log/ovn-controller.log" || die "$ch: cannot start ovn-controller"
}

make_underlay() {
  local ns1 ns2; ns1=$(cns ch1); ns2=$(cns ch2)
  ip link add xosu1 netns "$ns1" type veth peer name xosu2 netns "$ns2" \
    || die "cannot create the underlay veth xosu1/xosu2"
  # arp off: the veth ends are br-phy ports only; the chassis kernel must not answer ARP for
  # the encap IP on them (the tunnel would learn the veth's MAC instead of br-phy's)
  nsx "$ns1" ip link set xosu1 mtu 1600 arp off up
  nsx "$ns2" ip link set xosu2 mtu 1600 arp off up
}

# ---------------------------------------------------------------- VMs
# add_vif CH NAME MAC IP: namespace xosNAME, eth0 <-> xosNAME-p on CH's br-int (iface-id NAME)
add_vif() {
  local ch=$1 name=$2 mac=$3 ip=$4
  local ns=xos$name out=xos$name-p cns_; cns_=$(cns "$ch")
  ip netns add "$ns" || die "cannot create namespace $ns"
  echo "$ch $name $mac $ip" >>"$SANDBOX/vms"
  nsx "$ns" ip link set lo up
  ip link add eth0 netns "$ns" type veth peer name "$out" netns "$cns_" \
    || die "cannot create the veth of $name"
  nsx "$ns" ip link set eth0 address "$mac" mtu 1400
  nsx "$ns" ip addr add "$ip/24" dev eth0 || die "bad address $ip"
  nsx "$ns" ip link set eth0 up
  # stock OVS forwards partial checksums as they are, xvswitchd completes them: off for both,
  # so the comparison is like for like
  if command -v ethtool >/dev/null 2>&1; then
    nsx "$ns" ethtool -K eth0 tx off >/dev/null 2>&1 || log "$name: ethtool -K eth0 tx off failed"
  else
    log "ethtool not found: TX checksum offload left on in $ns"
  fi
  nsx "$cns_" ip link set "$out" mtu 1400 up
  vsctl "$ch" --may-exist add-port br-int "$out" \
    -- set interface "$out" "external_ids:iface-id=$name" || die "$ch: cannot add port $out"
}

installed() { # CH NAME: ovn-controller has installed NAME's flows
  vsctl "$1" --no-wait get interface "xos$2-p" external_ids:ovn-installed 2>/dev/null | grep -q true
}

ping_cmd() { if command -v ping >/dev/null 2>&1; then echo ping; else echo "busybox ping"; fi; }

# ---------------------------------------------------------------- commands
sandbox_state() { # "up" (every daemon alive), "none" (nothing of ours), else "partial"
  local pf _d n_alive=0 n=0
  while IFS=$'\t' read -r _d pf; do
    n=$((n + 1)); alive "$pf" && n_alive=$((n_alive + 1))
  done < <(daemons)
  if [ $n_alive = $n ]; then echo up; return; fi
  if [ $n_alive = 0 ] && [ ! -e "$SANDBOX" ] && ! ip netns list | awk '{print $1}' | grep -q '^xos'; then
    echo none; return
  fi
  echo partial
}

cmd_up() {
  need_root
  case "$SWITCH" in xvs|ovs) ;; *) die "SWITCH must be xvs or ovs, not '$SWITCH'";; esac
  case $(sandbox_state) in
    up)
      local cur; cur=$(cat "$SANDBOX/switch" 2>/dev/null)
      [ "$cur" = "$SWITCH" ] || die "the sandbox is up with SWITCH=$cur: run '$0 down' first"
      log "already up (SWITCH=$SWITCH); nothing to do"
      cmd_ping 1 >/dev/null 2>&1 && log "vm1 -> vm2 ping OK" || log "but vm1 -> vm2 ping FAILED"
      return 0 ;;
    partial)
      [ -d "$SANDBOX" ] || die "namespaces xos* exist but $SANDBOX does not: another" \
        "sandbox (SANDBOX=...)? '$0 down' with its SANDBOX removes it"
      log "a half-up sandbox is there: tearing it down first"; cmd_down ;;
  esac
  need_bins
  local ns
  for ns in xosch1 xosch2 xosvm1 xosvm2; do
    ns_exists "$ns" && die "namespace $ns exists (another sandbox? '$0 down' removes it)"
  done
  IN_UP=1
  rm -rf "$SANDBOX"; mkdir -p "$SANDBOX"
  echo "$SWITCH" >"$SANDBOX/switch"
  log "switch daemon: $(switch_bin)"
  log "starting the central (NB, SB, ovn-northd)"
  start_central
  local ch
  for ch in "${CHASSIS[@]}"; do
    ip netns add "$(cns "$ch")" || die "cannot create namespace $(cns "$ch")"
    nsx "$(cns "$ch")" ip link set lo up
  done
  make_underlay
  for ch in "${CHASSIS[@]}"; do log "starting chassis $ch"; start_chassis "$ch"; done
  nbctl --may-exist ls-add ls0 || die "ovn-nbctl ls-add failed"
  cmd_add_vm ch1 vm1 0a:00:00:01:00:01 10.1.0.1
  cmd_add_vm ch2 vm2 0a:00:00:01:00:02 10.1.0.2
  wait_until "both chassis in ovn-nbctl --wait=hv sync" "" nbctl --wait=hv sync
  if cmd_ping 3 >/dev/null 2>&1; then
    log "up: vm1 (ch1) -> vm2 (ch2) ping OK; logs in $SANDBOX"
  else
    log "up, but vm1 -> vm2 ping FAILED; logs in $SANDBOX ('$0 status' for details)"
    return 1
  fi
}

cmd_add_vm() {
  [ $# = 4 ] || die "usage: add-vm CH NAME MAC IP"
  local ch=$1 name=$2 mac=$3 ip=$4
  need_root; check_ch "$ch"
  alive "$(cdir "$ch")/ovnrun/ovn-controller.pid" || die "$ch is not running ('$0 up')"
  [[ $name =~ ^[A-Za-z0-9_]{1,10}$ ]] || die "VM name '$name': 1 to 10 letters, digits or _"
  ns_exists "xos$name" && die "namespace xos$name exists already"
  nbctl --may-exist lsp-add ls0 "$name" -- lsp-set-addresses "$name" "$mac $ip" \
    || die "ovn-nbctl lsp-add $name failed"
  add_vif "$ch" "$name" "$mac" "$ip"
  wait_until "ovn-controller on $ch to install $name (external_ids:ovn-installed)" \
    "$(cdir "$ch")/log/ovn-controller.log" installed "$ch" "$name"
  log "$name ($mac $ip) on $ch: namespace xos$name, interface eth0"
}

cmd_down() {
  need_root
  local pf ch order=()
  # ovn-controllers first, then switches, chassis databases, northd, NB and SB
  for ch in "${CHASSIS[@]}"; do order+=("$(cdir "$ch")/ovnrun/ovn-controller.pid"); done
  for ch in "${CHASSIS[@]}"; do order+=("$(cdir "$ch")/run/switch.pid"); done
  for ch in "${CHASSIS[@]}"; do order+=("$(cdir "$ch")/run/ovsdb-server.pid"); done
  order+=("$C/northd.pid" "$C/nb.pid" "$C/sb.pid")
  for pf in "${order[@]}"; do stop_pidfile "$pf"; done
  # namespaces (their veths go with them): the chassis', the VMs' (recorded by add-vm) and
  # the default VMs'
  local nss=(xosch1 xosch2 xosvm1 xosvm2) _ch name _rest ns
  if [ -f "$SANDBOX/vms" ]; then
    while read -r _ch name _rest; do nss+=("xos$name"); done <"$SANDBOX/vms"
  fi
  # processes left in a chassis namespace are not this sandbox's (another SANDBOX=... with
  # the same names?): then its namespaces are left alone
  local pids=""
  for ns in xosch1 xosch2; do
    ns_exists "$ns" && pids+=$(ip netns pids "$ns" 2>/dev/null | tr '\n' ' ')
  done
  if [ -n "$pids" ]; then
    log "processes not started from $SANDBOX run in xosch1/xosch2 ($pids): namespaces left alone"
  else
    for ns in "${nss[@]}"; do
      ns_exists "$ns" && { ip netns delete "$ns" || log "cannot delete namespace $ns"; }
    done
  fi
  rm -rf "$SANDBOX"
  local left; left=$(ip netns list | awk '$1 ~ /^xos/ {print $1}' | tr '\n' ' ')
  [ -n "$left" ] && log "namespaces not removed (not recorded in $SANDBOX): $left"
  log "down"
}

cmd_status() {
  need_root
  local pf d pid
  echo "sandbox $SANDBOX, SWITCH=$(cat "$SANDBOX/switch" 2>/dev/null || echo '?')"
  while IFS=$'\t' read -r d pf; do
    if pid=$(our_pid "$pf"); then printf '  %-20s running, pid %s\n' "$d" "$pid"
    else printf '  %-20s DOWN\n' "$d"; fi
  done < <(daemons)
  [ -S "$C/sb.sock" ] || { echo "no SB database: the sandbox is down"; return 1; }
  echo "== ovn-sbctl show"
  sbctl show
  local ch n crashes
  for ch in "${CHASSIS[@]}"; do
    [ -S "$(cdir "$ch")/run/br-int.mgmt" ] || { echo "== $ch: no br-int"; continue; }
    n=$(ofctl "$ch" dump-flows --no-stats 2>/dev/null | grep -c priority=)
    crashes=$(grep -c 'crashes: pid' "$(cdir "$ch")/log/ovn-controller.log" 2>/dev/null)
    echo "== $ch: $n flows on br-int; ovn-controller restarts after a crash: ${crashes:-0}"
  done
  echo "== ping vm1 -> vm2"
  cmd_ping 3
}

cmd_ping() {
  local count=${1:-3} from=${2:-vm1} to=${3:-10.1.0.2}
  need_root
  ns_exists "xos$from" || die "no namespace xos$from"
  # shellcheck disable=SC2046
  nsx "xos$from" $(ping_cmd) -c "$count" -W 1 -w $((count + 3)) "$to"
}

usage() { sed -n '2,/^set /p' "$0" | grep '^#' | sed 's/^# \{0,1\}//'; }

SWITCH=${SWITCH:-xvs}
CMD=${1:-}
[ $# -gt 0 ] && shift
case "$CMD" in
  up) cmd_up ;;
  down) cmd_down ;;
  status) cmd_status ;;
  ping) cmd_ping 3 "${1:-vm1}" "${2:-10.1.0.2}" ;;
  nbctl) need_root; nbctl "$@" ;;
  sbctl) need_root; sbctl "$@" ;;
  vsctl|ofctl|appctl) need_root; check_ch "${1:-}"; "$CMD" "$@" ;;
  add-vm) cmd_add_vm "$@" ;;
  -h|--help|help) usage ;;
  *) usage; exit 2 ;;
esac
