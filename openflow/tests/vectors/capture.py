#!/usr/bin/env python3
"""Capture real OpenFlow byte vectors for the `openflow` crate's tests.

What it does
------------
1. Starts a private ovsdb-server and ovs-vswitchd (Open vSwitch from the Debian packages) with
   OVS_RUNDIR/OVS_DBDIR/OVS_LOGDIR/OVS_SYSCONFDIR in a temporary directory; vswitchd runs in
   a private network namespace so the tap devices of its netdev bridge (`br0`, `ovs-netdev`)
   cannot clash with anything else on the machine.
2. Runs a man-in-the-middle unix-socket proxy in front of `<rundir>/br0.mgmt`.  Every OpenFlow
   message that crosses it, in either direction, is recorded as hex.
3. Drives the proxy with the real tools: `ovs-ofctl` (add/mod/del flows with real OVN flow lines
   from shared/ovn-reference, groups, meters, TLV maps, stats, bundles, packet-out, monitor) in
   OpenFlow 1.0, 1.3, 1.4 and 1.5, plus `ovs-ofctl monitor` as a controller that receives
   packet-ins (standard, NXT_PACKET_IN, NXT_PACKET_IN2 with continuations), flow-removed and
   port-status messages and resumes continuations with NXT_RESUME through `ofctl/send`.
4. Writes one file per scenario into this directory: `<scenario>.txt`, one message per line as
   `c2s HEX` (controller/tool to switch) or `s2c HEX`, each preceded by a comment with the
   first line of `ovs-ofctl ofp-print` for it.

Run it as root (it needs `ip netns`):  `python3 openflow/tests/vectors/capture.py`
It cleans up its namespace and daemons even on failure.  Re-running overwrites the vector
files; the Rust tests (`tests/vectors.rs`) read whatever files are here.
"""

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SHARED = os.path.abspath(os.path.join(HERE, "..", "..", "..", "..", "shared"))
REF = os.path.join(SHARED, "ovn-reference")
SCHEMA = "/usr/share/openvswitch/vswitch.ovsschema"


class Recorder:
    """Collects (scenario, conn, dir, bytes) for every OpenFlow message seen by the proxy."""

    def __init__(self):
        self.lock = threading.Lock()
        self.scenario = "init"
        self.records = []

    def add(self, conn, direction, msg):
        with self.lock:
            self.records.append((self.scenario, conn, direction, msg))


class Proxy(threading.Thread):
    """Unix-socket man in the middle between a client and vswitchd's mgmt socket."""

    def __init__(self, listen_path, upstream_path, rec):
        super().__init__(daemon=True)
        self.listen_path = listen_path
        self.upstream_path = upstream_path
        self.rec = rec
        self.nconn = 0
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(listen_path)
        self.sock.listen(16)

    def run(self):
        while True:
            try:
                client, _ = self.sock.accept()
            except OSError:
                return
            self.nconn += 1
            up = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            up.connect(self.upstream_path)
            cid = self.nconn
            for src, dst, d in ((client, up, "c2s"), (up, client, "s2c")):
                threading.Thread(target=self.pump, args=(src, dst, cid, d), daemon=True).start()

    def pump(self, src, dst, cid, direction):
        buf = b""
        while True:
            try:
                data = src.recv(65536)
            except OSError:
                data = b""
            if not data:
                try:
                    dst.shutdown(socket.SHUT_WR)
                except OSError:
                    pass
                return
            buf += data
            while len(buf) >= 8:
                length = int.from_bytes(buf[2:4], "big")
                if length < 8:
                    # Not OpenFlow; record what we have and stop framing.
                    self.rec.add(cid, direction + "-garbage", buf)
                    buf = b""
                    break
                if len(buf) < length:
                    break
                self.rec.add(cid, direction, buf[:length])
                buf = buf[length:]
            try:
                dst.sendall(data)
            except OSError:
                return


class Lab:
    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="xvs-ofcap-")
        self.ns = "xvsofcap%d" % os.getpid()
        self.env = dict(os.environ)
        for k, sub in (("OVS_RUNDIR", "run"), ("OVS_DBDIR", "db"), ("OVS_LOGDIR", "log"),
                       ("OVS_SYSCONFDIR", "etc")):
            path = os.path.join(self.dir, sub)
            os.makedirs(path)
            self.env[k] = path
        self.run_dir = self.env["OVS_RUNDIR"]
        self.procs = []

    def sh(self, *argv, check=True, input=None):
        r = subprocess.run(argv, env=self.env, input=input, capture_output=True, text=True)
        if check and r.returncode != 0:
            raise RuntimeError("%s failed: %s %s" % (" ".join(argv), r.stdout, r.stderr))
        return r

    def vsctl(self, *args):
        return self.sh("ovs-vsctl", "--db=unix:%s/db.sock" % self.run_dir, "--timeout=20", *args)

    def up(self):
        d = self.dir
        self.sh("ip", "netns", "add", self.ns)
        self.sh("ip", "netns", "exec", self.ns, "ip", "link", "set", "lo", "up")
        self.sh("ovsdb-tool", "create", "%s/db/conf.db" % d, SCHEMA)
        self.sh("ovsdb-server", "--detach", "--no-chdir", "-vconsole:off", "-vsyslog:off",
                "--pidfile=%s/run/ovsdb-server.pid" % d, "--log-file=%s/log/ovsdb-server.log" % d,
                "--unixctl=%s/run/ovsdb-server.ctl" % d, "--remote=punix:%s/run/db.sock" % d,
                "%s/db/conf.db" % d)
        self.vsctl("--no-wait", "init")
        self.sh("ip", "netns", "exec", self.ns, "env",
                *["%s=%s" % (k, self.env[k]) for k in
                  ("OVS_RUNDIR", "OVS_DBDIR", "OVS_LOGDIR", "OVS_SYSCONFDIR")],
                "ovs-vswitchd", "unix:%s/run/db.sock" % d, "--detach", "--no-chdir",
                "-vconsole:off", "-vsyslog:off", "--pidfile=%s/run/ovs-vswitchd.pid" % d,
                "--log-file=%s/log/ovs-vswitchd.log" % d, "--unixctl=%s/run/ovs-vswitchd.ctl" % d)
        self.vsctl("add-br", "br0", "--", "set", "bridge", "br0", "datapath_type=netdev",
                   "--", "set", "bridge", "br0", "fail_mode=secure",
                   "other_config:datapath-id=0000000000000001")
        for i in range(100):
            if os.path.exists("%s/run/br0.mgmt" % d):
                break
            time.sleep(0.1)
        else:
            raise RuntimeError("no br0.mgmt")

    def down(self):
        for p in self.procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
                try:
                    p.wait(5)
                except subprocess.TimeoutExpired:
                    p.kill()
        for name in ("ovs-vswitchd", "ovsdb-server"):
            pidfile = "%s/run/%s.pid" % (self.dir, name)
            try:
                pid = int(open(pidfile).read().strip())
                os.kill(pid, signal.SIGTERM)
            except (OSError, ValueError):
                pass
        time.sleep(0.5)
        subprocess.run(["ip", "netns", "del", self.ns], capture_output=True)
        shutil.rmtree(self.dir, ignore_errors=True)


def ovn_flow_lines(name, limit=None):
    """Flow lines from an ovn-flows dump, in add-flows syntax (stats were already stripped)."""
    out = []
    with open(os.path.join(REF, name)) as f:
        for line in f:
            line = line.strip()
            if not line or line.startswith("NXST") or line.startswith("OFPST"):
                continue
            out.append(line)
    return out[:limit] if limit else out


def group_lines(name):
    out = []
    with open(os.path.join(REF, "dumps", name)) as f:
        for line in f:
            line = line.strip()
            if line.startswith("group_id="):
                out.append(line)
    return out


# Extra flows covering match fields and actions the OVN dumps do not use (or use rarely), so
# that the codec sees OVS's encoding of them too.
EXTRA_FLOWS = [
    "table=1,priority=10,tcp,tcp_flags=+syn-ack,tp_dst=80 actions=output:1",
    "table=1,priority=11,sctp,sctp_src=5,sctp_dst=6 actions=mod_tp_src:7",
    "table=1,priority=12,ip,nw_tos=0x10,nw_ecn=1 actions=mod_nw_tos:0x20,mod_nw_ecn:2",
    "table=1,priority=13,ipv6,ipv6_label=0x12345,nw_frag=later actions=dec_ttl(1,2,3)",
    "table=1,priority=14,dl_vlan=5,dl_vlan_pcp=3 actions=strip_vlan,push_vlan:0x88a8,"
    "set_field:4101->vlan_vid,output:2",
    "table=1,priority=15,mpls,mpls_label=5,mpls_tc=1,mpls_bos=1 actions=pop_mpls:0x0800,"
    "output:3",
    "table=1,priority=16,ip actions=push_mpls:0x8847,set_mpls_label:10,set_mpls_ttl:5,"
    "dec_mpls_ttl,output:3",
    "table=1,priority=17,tun_id=0x5/0xff,tun_src=1.1.1.1,tun_dst=2.2.2.0/24,"
    "tun_flags=+oam actions=set_tunnel:0x6,set_tunnel64:0x100000000,output:4",
    "table=1,priority=18,pkt_mark=0x5/0xf,ct_zone=5,ct_label=0x1/0x1,"
    "ct_state=+trk+est-new,ip actions=set_field:0x7->pkt_mark,ct_clear,output:5",
    "table=1,priority=19,ct_state=+trk,tcp actions=controller(reason=no_match,max_len=128,"
    "id=5,userdata=01.02.03)",
    "table=1,priority=20,ct_state=+trk,udp6 "
    "actions=ct(commit,zone=5,alg=tftp,nat(src=[fe80::1]-[fe80::9]:100-200,persistent,random))",
    "table=1,priority=20,ct_state=+trk,tcp actions=ct(commit,zone=5,alg=ftp,"
    "nat(src=10.0.0.1-10.0.0.9:100-200,persistent,random))",
    "table=1,priority=21,xreg3=0x5,xxreg2=0x6/0xff,tcp6 actions=ct(commit,zone=NXM_NX_REG1[0..15],"
    "exec(set_field:0x1->ct_label,set_field:0x5/0xf->ct_mark),nat(dst=[fe80::1]:80,hash))",
    "table=1,priority=22,arp,arp_sha=00:11:22:33:44:55,arp_tha=00:00:00:00:00:01,"
    "arp_tpa=1.1.1.0/24 actions=mod_dl_src:00:00:00:00:00:01,mod_dl_dst:00:00:00:00:00:02,"
    "set_field:1.2.3.4->arp_spa,IN_PORT",
    "table=1,priority=22,ip actions=mod_nw_src:1.2.3.4,mod_nw_dst:5.6.7.8,output:1",
    "table=1,priority=23,icmp6,icmpv6_type=135,nd_target=fe80::/64,nd_sll=00:11:22:33:44:55 "
    "actions=output(port=1,max_len=100)",
    "table=1,priority=24,ip actions=multipath(symmetric_l4,1024,hrw,2,0,NXM_NX_REG0[0..1])",
    "table=1,priority=25,ip actions=bundle_load(eth_src,0,hrw,ofport,NXM_NX_REG0[],"
    "members:1,2)",
    "table=1,priority=26,ip actions=learn(table=2,idle_timeout=10,hard_timeout=20,"
    "fin_idle_timeout=5,fin_hard_timeout=6,priority=7,cookie=0x1234,send_flow_rem,"
    "NXM_OF_VLAN_TCI[0..11],NXM_OF_ETH_DST[]=NXM_OF_ETH_SRC[],load:0x5->NXM_NX_REG1[],"
    "output:NXM_OF_IN_PORT[],eth_type=0x800,nw_proto=6)",
    "table=1,priority=27,tcp actions=sample(probability=100,collector_set_id=1,"
    "obs_domain_id=2,obs_point_id=3),fin_timeout(idle_timeout=5,hard_timeout=10),"
    "note:01.02.03.04.05",
    "table=1,priority=28,ct_state=+trk-inv,ip actions=output:NXM_NX_REG1[0..15],enqueue:1:2,set_queue:3,"
    "pop_queue,resubmit(1,3,ct),exit",
    "table=1,priority=29,conj_id=5,ip actions=write_metadata:0x5/0xff,goto_table:3",
    "table=1,priority=30,ip actions=clear_actions,write_actions(output:2),goto_table:4",
    "table=1,priority=31,in_port=LOCAL,dl_type=0x88cc actions=controller(pause,"
    "userdata=05.06)",
    "table=1,priority=32,ip,nw_ttl=3 actions=check_pkt_larger(1500)->NXM_NX_REG0[0],"
    "clone(dec_ttl,resubmit(,2)),set_field:0x1/0x1->reg2,move:NXM_NX_REG0[0..3]->"
    "NXM_NX_REG1[4..7],push:NXM_NX_REG0[],pop:NXM_NX_REG1[],load:0x1->NXM_NX_REG3[0..3]",
    "table=1,priority=33,udp,tp_src=67/0xfff0 actions=mod_nw_ttl:9,dec_ttl,mod_tp_dst:68,"
    "set_field:0x1->tun_metadata0,output:NXM_NX_REG2[]",
    "table=1,priority=34,tun_metadata0=0x5,ip actions=ct(table=3,zone=7,nat),"
    "group:1",
    "table=1,priority=35,ipv6,ipv6_src=2001:db8::/32,ipv6_dst=::1,ip_dscp=8,ip_ecn=0,"
    "ipv6_label=7 actions=mod_nw_tos:4",
    "table=1,priority=36,actset_output=5 actions=drop",
    "table=1,priority=38,ip actions=encap(nsh(md_type=1)),set_field:0x1->nsh_spi,"
    "encap(ethernet)",
    "table=1,priority=39,packet_type=(1,0x894f),nsh_ttl=5 actions=decap(),dec_nsh_ttl",
]


# Flows that ovs-ofctl encodes but vswitchd refuses (an error reply echoes them): sent one by
# one outside bundles, so the vectors hold both the flow mod and OVS's error.
REFUSED_FLOWS = [
    "table=1,priority=19,ct_state=+trk,ct_nw_src=1.2.3.4,ct_nw_dst=5.6.7.8,ct_nw_proto=6,"
    "ct_tp_src=1,ct_tp_dst=2,tcp actions=drop",
    "table=1,priority=37,dp_hash=0x1/0xf actions=drop",
    "table=1,priority=40,ct_state=+trk,ct_ipv6_src=::1,ct_ipv6_dst=::2,ct_nw_proto=17,"
    "ct_tp_src=3,ipv6,udp6 actions=drop",
]


def has_continuation(msg):
    """True if an NXT_PACKET_IN2 carries NXPINT_CONTINUATION (property type 8)."""
    off = 16
    while off + 4 <= len(msg):
        ptype = int.from_bytes(msg[off:off + 2], "big")
        plen = int.from_bytes(msg[off + 2:off + 4], "big")
        if ptype == 8:
            return True
        if plen < 4:
            return False
        off += (plen + 7) // 8 * 8
    return False


def usable(ver, flows):
    """The flow lines that ovs-ofctl can encode in `ver` (some need a newer version)."""
    out = []
    for f in flows:
        if ver == "OpenFlow10" and any(w in f for w in ("write_metadata", "clear_actions", "encap", "decap")):
            continue  # vswitchd refuses these in OF1.0 (action order, no encap)
        r = subprocess.run(["ovs-ofctl", "-O", ver, "parse-flow", f], capture_output=True)
        if r.returncode == 0:
            out.append(f)
    return out


def main():
    if os.geteuid() != 0:
        sys.exit("run as root (needs ip netns)")
    lab = Lab()
    rec = Recorder()
    try:
        lab.up()
        proxy_path = os.path.join(lab.dir, "proxy.sock")
        proxy = Proxy(proxy_path, os.path.join(lab.run_dir, "br0.mgmt"), rec)
        proxy.start()
        sw = "unix:" + proxy_path
        tmp = lab.dir

        def ofctl(ver, *args, check=True, input=None, scen=None):
            if scen:
                rec.scenario = scen
            # Options go before the command, the switch right after the command.
            i = 0
            while args[i].startswith("--"):
                i += 1
            # --no-names: otherwise every invocation fetches the (large) table features and
            # port descriptions just to print names.
            r = lab.sh("ovs-ofctl", "--no-names", "-O", ver, *args[:i + 1], sw, *args[i + 1:], check=check,
                       input=input)
            time.sleep(0.05)
            return r

        def write_file(name, lines):
            p = os.path.join(tmp, name)
            with open(p, "w") as f:
                f.write("\n".join(lines) + "\n")
            return p

        def monitor(ver, *extra, fmt=None):
            ctl = os.path.join(tmp, "mon%d.ctl" % len(lab.procs))
            argv = ["ovs-ofctl", "--no-names", "-O", ver, "--unixctl=" + ctl]
            if fmt:
                argv += ["-P", fmt]
            argv += ["monitor", sw, *extra]
            p = subprocess.Popen(argv, env=lab.env, stdout=subprocess.DEVNULL,
                                 stderr=subprocess.DEVNULL)
            lab.procs.append(p)
            for _ in range(50):
                if os.path.exists(ctl):
                    break
                time.sleep(0.1)
            time.sleep(0.5)
            return p, ctl

        def stop(p):
            p.send_signal(signal.SIGTERM)
            p.wait(5)
            time.sleep(0.1)

        # Tunnel metadata first: OVN flows set/move tun_metadata0.
        for ver, tag in (("OpenFlow15", "of15"), ("OpenFlow13", "of13"), ("OpenFlow10", "of10")):
            rec.scenario = tag + "-handshake"
            ofctl(ver, "show")
            ofctl(ver, "get-frags")
            ofctl(ver, "set-frags", "normal")
            ofctl(ver, "probe")
            ofctl(ver, "ping", "2", check=False)
            ofctl(ver, "dump-desc")
            rec.scenario = tag + "-tlv"
            ofctl(ver, "add-tlv-map", "{class=0x102,type=0x80,len=4}->tun_metadata0")
            ofctl(ver, "add-tlv-map", "{class=0xffff,type=0x1,len=8}->tun_metadata1")
            ofctl(ver, "dump-tlv-map")
            ofctl(ver, "del-tlv-map", "{class=0xffff,type=0x1,len=8}->tun_metadata1")
            ofctl(ver, "del-tlv-map")
        ofctl("OpenFlow15", "add-tlv-map", "{class=0x102,type=0x80,len=4}->tun_metadata0",
              scen="setup")

        groups = group_lines("ovn-groups-full-ch1.txt") + group_lines("ovn-groups-full-ch2.txt")
        extra_groups = [
            "group_id=10,type=all,bucket=output:1,bucket=output:2",
            "group_id=11,type=indirect,bucket=set_field:0x1->reg0,resubmit(,3)",
            "group_id=12,type=ff,bucket=watch_port:1,output:1,bucket=watch_port:2,output:2",
            "group_id=13,type=select,selection_method=hash,fields(ip_src,ip_dst,tcp_dst),"
            "bucket=weight:10,output:1,bucket=weight:20,output:2",
            "group_id=14,type=select,bucket=output:1,bucket=output:2",
        ]
        # Groups and meters (OF1.1+ for groups, OF1.3+ for meters).
        for ver, tag in (("OpenFlow15", "of15"), ("OpenFlow13", "of13"), ("OpenFlow14", "of14")):
            rec.scenario = tag + "-groups"
            glist = [g for g in groups if ver == "OpenFlow15" or "selection_method" not in g]
            if ver != "OpenFlow15":
                glist = ["group_id=1,type=select,bucket=weight:100,actions=ct(commit,table=21,"
                         "zone=NXM_NX_REG13[0..15],nat(dst=10.0.0.20:80),"
                         "exec(set_field:0x2/0x2->ct_mark))"]
            eg = [g for g in extra_groups if ver == "OpenFlow15" or "selection_method" not in g]
            # OVN's dumps have two different group 1s, keep the first of each id.
            seen, gl = set(), []
            for g in glist + eg:
                gid = g.split(",")[0]
                if gid not in seen:
                    seen.add(gid)
                    gl.append(g)
            ofctl(ver, "del-groups")
            ofctl(ver, "add-groups", write_file("groups.txt", gl))
            ofctl(ver, "dump-groups")
            ofctl(ver, "dump-group-stats")
            ofctl(ver, "dump-group-features")
            ofctl(ver, "mod-group", "group_id=10,type=all,bucket=output:3")
            if ver == "OpenFlow15":
                ofctl(ver, "insert-buckets", "group_id=10,command_bucket_id=last,"
                      "bucket=bucket_id:5,output:4")
                ofctl(ver, "remove-buckets", "group_id=10,command_bucket_id=5")
            ofctl(ver, "del-groups", "group_id=10")
            rec.scenario = tag + "-meters"
            ofctl(ver, "del-meters")
            ofctl(ver, "meter-features")
            ofctl(ver, "add-meter", "meter=1,pktps,stats,bands=type=drop,rate=10")
            ofctl(ver, "add-meter", "meter=2,kbps,burst,stats,bands=type=drop,rate=1000,"
                  "burst_size=100")
            ofctl(ver, "add-meter", "meter=3,pktps,bands=type=dscp_remark,rate=100,prec_level=1",
                  check=False)
            ofctl(ver, "mod-meter", "meter=2,kbps,stats,bands=type=drop,rate=2000")
            ofctl(ver, "dump-meters")
            ofctl(ver, "meter-stats")
            ofctl(ver, "del-meter", "meter=2", check=False)
            ofctl(ver, "del-meters")
            ofctl(ver, "add-meter", "meter=1,pktps,stats,bands=type=drop,rate=10")
            if ver != "OpenFlow15":
                ofctl(ver, "del-groups")
        ofctl("OpenFlow15", "del-groups", scen="setup")
        ofctl("OpenFlow15", "add-groups", write_file("groups.txt", [
            g for g in groups if g.startswith("group_id=1,") or g.startswith("group_id=2,")][:2]
            + extra_groups[1:]), scen="setup")

        full = ovn_flow_lines("ovn-flows-full-ch1.txt")
        ha = ovn_flow_lines("ovn-flows-ha-ch1.txt")
        base = ovn_flow_lines("ovn-flows-ch1.txt")
        # Flows from the ha dump not in full (bundle(), more learn variants).
        full_set = set(full)
        ha_extra = [f for f in ha if f not in full_set]
        flow_files = {}
        for ver in ("OpenFlow15", "OpenFlow14", "OpenFlow13", "OpenFlow10"):
            extra = usable(ver, EXTRA_FLOWS)
            flow_files[ver] = (write_file("flows-%s.txt" % ver, full + ha_extra + extra),
                               write_file("base-%s.txt" % ver, base + extra))

        # Flow tables, OF1.5 the way ovn-controller does it (atomic bundle), then the others.
        for ver, tag, which in (("OpenFlow15", "of15", 0), ("OpenFlow14", "of14", 1),
                                ("OpenFlow13", "of13", 0), ("OpenFlow10", "of10", 0)):
            ffile = flow_files[ver][which]
            base_file = flow_files[ver][1]
            rec.scenario = tag + "-flowmod"
            if ver == "OpenFlow10":
                ofctl(ver, "add-flows", ffile)
            else:
                ofctl(ver, "--bundle", "add-flows", ffile)
            rec.scenario = tag + "-flowmod-misc"
            for f in usable(ver, REFUSED_FLOWS):
                ofctl(ver, "add-flow", f, check=False)
            ofctl(ver, "add-flow", "table=2,priority=5,idle_timeout=60,hard_timeout=120,"
                  "cookie=0x1234,send_flow_rem,in_port=1 actions=output:2")
            ofctl(ver, "add-flow", "table=2,priority=6,importance=5,in_port=2 actions=output:3",
                  check=False)
            ofctl(ver, "--strict", "mod-flows", "table=2,priority=5,in_port=1 actions=output:3")
            ofctl(ver, "mod-flows", "table=2,cookie=0x1234/-1 actions=output:4")
            ofctl(ver, "mod-flows", "table=2,in_port=1 actions=output:5", check=False)
            ofctl(ver, "--strict", "del-flows", "table=2,priority=6,in_port=2")
            ofctl(ver, "del-flows", "table=2,cookie=0x1234/0xffff,out_port=4")
            ofctl(ver, "del-flows", "table=2,out_group=1", check=False)
            if ver != "OpenFlow10":
                ofctl(ver, "add-flow", "table=2,priority=7,reset_counts,in_port=3 "
                      "actions=meter:1,output:2")
            ofctl(ver, "--bundle", "del-flows", "table=2", check=ver != "OpenFlow10")
            rec.scenario = tag + "-stats"
            ofctl(ver, "dump-flows", "table=10")
            ofctl(ver, "dump-flows", "table=8,cookie=0xeab71613/-1")
            ofctl(ver, "dump-aggregate")
            ofctl(ver, "dump-aggregate", "table=9")
            ofctl(ver, "dump-tables")
            ofctl(ver, "dump-ports")
            ofctl(ver, "dump-ports-desc")
            ofctl(ver, "queue-stats", check=False)
            ofctl(ver, "dump-table-features", check=False)
            ofctl(ver, "dump-table-desc", check=False)
            ofctl(ver, "mod-port", "br0", "no-flood")
            ofctl(ver, "mod-port", "br0", "flood")
            ofctl(ver, "mod-table", "3", "evict", check=False)
            rec.scenario = tag + "-dump-all"
            ofctl(ver, "dump-flows")
            rec.scenario = tag + "-del"
            ofctl(ver, "del-flows")
            if ver == "OpenFlow10":
                ofctl(ver, "--bundle", "add-flows", base_file, check=False)
                ofctl(ver, "add-flows", base_file)
            ofctl(ver, "ct-flush-zone", "5")
            ofctl(ver, "ct-flush", "zone=5", check=False)
            ofctl(ver, "ct-flush", "zone=5", "ct_nw_src=10.0.0.1,ct_nw_proto=6,ct_tp_src=5",
                  check=False)
            ofctl(ver, "del-flows")

        # Bundles with groups, the ovn-controller way (OF1.5).
        rec.scenario = "of15-bundle-groups"
        ofctl("OpenFlow15", "--bundle", "del-groups")
        ofctl("OpenFlow15", "--bundle", "add-groups", write_file("g2.txt", groups[:1]))
        ofctl("OpenFlow15", "bundle", write_file("b.txt", [
            "flow add table=0,priority=5,in_port=1 actions=group:1",
            "group add group_id=20,type=select,selection_method=dp_hash,bucket=output:1",
            "flow delete_strict table=0,priority=5,in_port=1",
            "group delete group_id=20",
            "flow modify table=0 actions=drop"]))

        # Controller-side messages: packet-in in all formats, continuations, flow removed,
        # port status, flow monitor.
        ofctl("OpenFlow15", "add-flows", write_file("pin.txt", [
            "table=0,priority=10,in_port=LOCAL,udp actions=controller(userdata=00.00.00.1a."
            "00.00.00.00),resubmit(,8)",
            "table=0,priority=10,in_port=LOCAL,tcp actions=set_field:0x5->reg0,"
            "set_field:0x6->metadata,controller(userdata=00.00.00.0e.00.00.00.00,pause),"
            "set_field:0x7->reg1,resubmit(,8)",
            "table=0,priority=10,in_port=LOCAL,icmp actions=controller(max_len=64)",
            "table=8,priority=0 actions=drop",
        ]), scen="setup")
        udp = ("eth_src=0a:00:00:00:00:20,eth_dst=0a:00:00:00:00:10,udp,nw_src=10.0.0.20,"
               "nw_dst=10.0.0.10,nw_ttl=64,udp_src=1000,udp_dst=2000")
        tcp = udp.replace("udp,", "tcp,").replace("udp_src=1000,udp_dst=2000",
                                                  "tcp_src=1000,tcp_dst=80")
        icmp = udp.replace("udp,", "icmp,").replace("udp_src=1000,udp_dst=2000",
                                                    "icmp_type=8,icmp_code=0")

        def hexpkt(spec):
            # `compose-packet` prints a hex dump: "OFFSET  xx xx ...-xx ...".
            out = lab.sh("ovs-ofctl", "compose-packet", spec).stdout
            h = ""
            for line in out.splitlines():
                body = line[10:58].replace("-", " ")
                h += "".join(body.split())
            return h

        pkts = {"udp": hexpkt(udp), "tcp": hexpkt(tcp), "icmp": hexpkt(icmp)}
        for ver, tag, fmts in (("OpenFlow15", "of15", ("nxt_packet_in2", "standard")),
                               ("OpenFlow13", "of13", ("standard", "nxt_packet_in2")),
                               ("OpenFlow10", "of10", ("standard", "nxt_packet_in",
                                                       "nxt_packet_in2"))):
            for fmt in fmts:
                rec.scenario = "%s-async-%s" % (tag, fmt)
                mon, ctl = monitor(ver, "65535", fmt=fmt)
                for name, h in pkts.items():
                    ofctl(ver, "packet-out", "in_port=LOCAL,packet=%s,actions=table" % h)
                    time.sleep(0.3)
                ofctl(ver, "packet-out", "in_port=LOCAL,packet=%s,actions=output:CONTROLLER"
                      % pkts["udp"])
                ofctl(ver, "packet-out", "in_port=CONTROLLER,packet=%s,actions=set_field:"
                      "0x3->reg1,resubmit(CONTROLLER,0)" % pkts["udp"], check=False)
                time.sleep(0.3)
                if fmt == "nxt_packet_in2":
                    # Resume the paused tcp packet-in: NXT_RESUME carries the same properties.
                    with rec.lock:
                        pin2 = [m for (s, c, d, m) in rec.records
                                if s == rec.scenario and d == "s2c" and len(m) > 16
                                and m[1] == 4 and m[8:12] == b"\x00\x00\x23\x20"
                                and m[12:16] == (30).to_bytes(4, "big")]
                    for m in pin2:
                        if has_continuation(m):
                            resume = m[:12] + (28).to_bytes(4, "big") + m[16:]
                            lab.sh("ovs-appctl", "-t", ctl, "ofctl/send", resume.hex(),
                                   check=False)
                            time.sleep(0.3)
                            break
                # Flow removed: a flow with send_flow_rem deleted from another connection.
                ofctl(ver, "add-flow", "table=5,priority=1,cookie=0x99,send_flow_rem,"
                      "idle_timeout=100,in_port=7 actions=drop")
                ofctl(ver, "del-flows", "table=5")
                # Port status ADD/MOD/DEL.
                lab.vsctl("add-port", "br0", "p1", "--", "set", "interface", "p1",
                          "type=internal", "ofport_request=7")
                time.sleep(0.5)
                ofctl(ver, "mod-port", "p1", "down", check=False)
                time.sleep(0.3)
                lab.vsctl("del-port", "br0", "p1")
                time.sleep(0.5)
                # Role, controller id and async config through ofctl/send (hand-built hex).
                vb = {"OpenFlow10": 1, "OpenFlow13": 4, "OpenFlow15": 6}[ver]
                msgs = []
                if vb >= 4:
                    # OFPT_ROLE_REQUEST (24) role=EQUAL(1), generation_id=0
                    msgs.append(bytes([vb, 24, 0, 24, 0, 0, 0, 0x77]) +
                                (1).to_bytes(4, "big") + bytes(4) + bytes(8))
                    # OFPT_GET_ASYNC_REQUEST (26)
                    msgs.append(bytes([vb, 26, 0, 8, 0, 0, 0, 0x78]))
                else:
                    # NXT_ROLE_REQUEST (10): role=OTHER(0)
                    msgs.append(bytes([vb, 4, 0, 20, 0, 0, 0, 0x77, 0, 0, 0x23, 0x20, 0, 0, 0, 10,
                                       0, 0, 0, 0]))
                # NXT_SET_CONTROLLER_ID (20): pad[6], controller_id=5
                msgs.append(bytes([vb, 4, 0, 24, 0, 0, 0, 0x79, 0, 0, 0x23, 0x20, 0, 0, 0, 20,
                                   0, 0, 0, 0, 0, 0, 0, 5]))
                # BARRIER
                msgs.append(bytes([vb, 20 if vb >= 4 else 18, 0, 8, 0, 0, 0, 0x7a]))
                for m in msgs:
                    lab.sh("ovs-appctl", "-t", ctl, "ofctl/send", m.hex(), check=False)
                    time.sleep(0.2)
                stop(mon)
            # Flow monitor.
            rec.scenario = "%s-flow-monitor" % tag
            mon, ctl = monitor(ver, "watch:")
            ofctl(ver, "add-flow", "table=6,priority=1,in_port=2,actions=output:3")
            ofctl(ver, "mod-flows", "table=6,in_port=2,actions=output:4")
            ofctl(ver, "del-flows", "table=6")
            time.sleep(0.3)
            stop(mon)
            mon, ctl = monitor(ver, "watch:!initial,!actions,table=0,in_port=LOCAL")
            ofctl(ver, "add-flow", "table=0,priority=1,in_port=LOCAL,actions=output:3")
            ofctl(ver, "--strict", "del-flows", "table=0,in_port=LOCAL,priority=1")
            time.sleep(0.3)
            stop(mon)

        # Error replies from the switch (the offending message echoed back).
        rec.scenario = "errors"
        ofctl("OpenFlow15", "add-flow", "table=0,actions=group:999", check=False)
        ofctl("OpenFlow13", "add-flow", "table=0,actions=group:999", check=False)
        ofctl("OpenFlow10", "add-flow", "actions=resubmit(,300)", check=False)
        ofctl("OpenFlow15", "del-meter", "meter=77", check=False)
        ofctl("OpenFlow15", "add-meter", "meter=1,pktps,stats,bands=type=drop,rate=10",
              check=False)
        ofctl("OpenFlow15", "add-group", "group_id=1,type=all,bucket=output:1", check=False)
    finally:
        lab.down()
    write_vectors(rec)


def ofp_print(h):
    r = subprocess.run(["ovs-ofctl", "ofp-print", h], capture_output=True, text=True)
    first = (r.stdout or r.stderr).strip().split("\n")[0]
    return first[:200]


def write_vectors(rec):
    by_scen = {}
    for scen, cid, direction, msg in rec.records:
        by_scen.setdefault(scen, []).append((cid, direction, msg))
    for old in os.listdir(HERE):
        if old.endswith(".txt"):
            os.unlink(os.path.join(HERE, old))
    total = 0
    for scen, msgs in by_scen.items():
        lines = ["# scenario %s: captured by capture.py (ovs-vswitchd %s)" %
                 (scen, subprocess.run(["ovs-vswitchd", "--version"], capture_output=True,
                                       text=True).stdout.split("\n")[0])]
        features = 0
        for cid, direction, msg in msgs:
            # Table-features replies for all 255 tables run to ~1.3 MB per dump: keep two
            # messages of each dump (they hold every property kind).
            if len(msg) >= 10 and msg[0] >= 4 and msg[1] == 19 and msg[8:10] == b"\x00\x0c":
                features += 1
                if features > 2:
                    continue
            h = msg.hex()
            lines.append("# conn %d: %s" % (cid, ofp_print(h)))
            lines.append("%s %s" % (direction, h))
            total += 1
        with open(os.path.join(HERE, scen + ".txt"), "w") as f:
            f.write("\n".join(lines) + "\n")
    print("wrote %d messages in %d scenarios" % (total, len(by_scen)))


if __name__ == "__main__":
    main()
