#!/usr/bin/env python3
"""Record how Open vSwitch 3.1 re-encodes stored actions for readers of other OpenFlow versions.

Writes `ovs31-cross-version.txt` next to this script, read by the unit tests of
`openflow/src/compat.rs`.

What it does: starts a private ovsdb-server + ovs-vswitchd (Debian's openvswitch-switch) in a
temporary directory, the switch inside a private network namespace (its netdev bridge creates
tap devices), with a recording unix-socket proxy in front of `br0.mgmt`.  Then, for each
OpenFlow version A in 1.0, 1.3, 1.4 and 1.5: deletes all groups, adds those of GROUPS with
`ovs-ofctl -O A add-group` and dumps them in the four versions; then, one flow of FLOWS at a
time (so that a flow that some reader cannot decode does not hide the others), deletes all
flows, adds it with `ovs-ofctl -O A add-flow` (the ones a version refuses are skipped) and
dumps it in the four versions.  From the recorded messages it keeps, per flow (keyed by table
and priority): the action or instruction bytes `ovs-ofctl` sent in the flow mod, and the bytes
and flags ovs-vswitchd replied to each reader; per group bucket the same.  The `ovs-ofctl`
text of each dump is kept as a comment.

Run as root:  python3 openflow/tests/compat/capture.py
"""

import os
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "ovs31-cross-version.txt")
SCHEMA = "/usr/share/openvswitch/vswitch.ovsschema"
NS = "xvscompat%d" % os.getpid()
VERSIONS = [(1, "OpenFlow10"), (4, "OpenFlow13"), (5, "OpenFlow14"), (6, "OpenFlow15")]

# Unique (table, priority) per line: that is how dumps are matched to flows.
FLOWS = [
    # the flows of tests/tests/e2e/ovs_interop.rs CROSS_FLOWS
    "table=0,priority=100,in_port=1,udp,actions=set_field:0x1->reg0,move:NXM_OF_UDP_SRC[]->NXM_NX_REG1[0..15],resubmit(,1)",
    "table=0,priority=90,in_port=2,ip,actions=load:0x5->NXM_NX_REG2[],resubmit(,2)",
    "table=0,priority=80,arp,actions=NORMAL",
    "table=0,priority=70,udp,tp_dst=7000,actions=controller(userdata=01.02,max_len=128)",
    "table=0,priority=50,icmp,actions=set_field:00:11:22:33:44:55->eth_dst,dec_ttl,output:3",
    "table=1,priority=10,reg0=1,udp,actions=group:1",
    "table=1,priority=5,reg1=0x1234/0xffff,actions=set_field:0x3/0x3->reg3,output:2",
    "table=2,cookie=0x42,priority=1,udp,actions=mod_nw_src:10.9.9.9,mod_tp_src:99,output:1",
    "table=3,idle_timeout=30,hard_timeout=60,send_flow_rem,priority=7,ip,nw_dst=10.0.0.0/8,actions=mod_vlan_vid:100,output:1",
    "table=3,priority=6,vlan_tci=0x1000/0x1000,actions=clone(set_field:0x7->reg4,resubmit(,4)),strip_vlan",
    "table=4,priority=1,actions=learn(table=5,NXM_OF_ETH_DST[]=NXM_OF_ETH_SRC[],output:NXM_NX_REG0[0..15]),multipath(eth_src,50,hrw,12,0,NXM_NX_REG0[0..3])",
    "table=4,priority=2,ip,actions=ct(commit,zone=5),note:aa.bb",
    # more actions whose encoding depends on the version
    "table=0,priority=1099,actions=move:NXM_NX_REG0[]->NXM_NX_REG1[],load:0x5->NXM_NX_REG2[0..15],load:0x6->NXM_NX_REG2[]",
    "table=0,priority=1098,ip,actions=set_field:1.2.3.4->ip_src,mod_dl_src:00:11:22:33:44:55,mod_nw_src:10.1.1.1,mod_nw_dst:10.2.2.2",
    "table=0,priority=1097,tcp,actions=mod_tp_dst:80,mod_tp_src:81,mod_nw_tos:16",
    "table=0,priority=1096,udp,actions=mod_tp_dst:53,set_field:54->udp_src",
    "table=0,priority=1095,ip,actions=mod_vlan_vid:100,mod_vlan_pcp:3,output:1",
    "table=0,priority=1094,vlan_tci=0x1000/0x1000,actions=mod_vlan_vid:200,output:1",
    "table=0,priority=1093,ip,actions=strip_vlan,dec_ttl,output:2",
    "table=0,priority=1045,ip,vlan_tci=0x1000/0x1000,actions=strip_vlan,dec_ttl,output:2",
    "table=0,priority=1092,actions=set_field:0x3->reg3,load:1->NXM_OF_VLAN_TCI[],write_metadata:0x1/0xff,goto_table:2",
    "table=0,priority=1091,actions=clone(set_field:0x7->reg4,move:NXM_NX_REG4[]->NXM_NX_REG5[],resubmit(,4)),output:3",
    "table=0,priority=1090,actions=set_field:0x3/0x3->reg3,set_field:0x5/0x5->reg6,output:2",
    "table=0,priority=1089,ip,actions=ct(commit,zone=5,exec(set_field:0x1->ct_mark,load:0x2->NXM_NX_CT_LABEL[0..7])),set_tunnel:0x10,mod_nw_ttl:9",
    "table=0,priority=1088,ip,actions=mod_nw_ecn:2,set_field:0x9->tun_id,enqueue:1:3",
    "table=0,priority=1087,actions=push_vlan:0x8100,set_field:4196->vlan_vid,output:1",
    "table=0,priority=1086,tcp,actions=set_field:8080->tcp_dst,set_field:2->ip_dscp,set_field:1->ip_ecn",
    "table=0,priority=1085,ipv6,actions=set_field:fe80::1->ipv6_src,load:0x1->NXM_NX_IPV6_DST[0..63]",
    "table=0,priority=1084,actions=clear_actions,write_actions(output:1)",
    "table=0,priority=1083,actions=mod_tp_src:10",
    "table=0,priority=1082,actions=set_field:0x1->metadata,set_field:0x2->xreg1,set_field:5->tun_gbp_id",
    "table=0,priority=1081,actions=set_field:0x1064->vlan_tci",
    "table=0,priority=1080,actions=set_field:0->vlan_tci",
    "table=0,priority=1079,ip,actions=set_field:1.2.3.0/255.255.255.0->ip_dst",
    "table=0,priority=1078,actions=set_field:0x3->reg3,load:1->NXM_OF_VLAN_TCI[],goto_table:2",
    "table=0,priority=1077,actions=write_metadata:0x1/0xff",
    "table=0,priority=1076,ip,actions=mod_nw_ttl:9,dec_ttl(1,2),output:1",
    "table=0,priority=1075,mpls,actions=set_mpls_label:5,set_mpls_tc:2,set_mpls_ttl:3,dec_mpls_ttl,pop_mpls:0x0800",
    "table=0,priority=1074,ip,actions=push_mpls:0x8847,set_mpls_label:7,output:1",
    "table=0,priority=1073,actions=controller(userdata=01.02,max_len=128),controller:100,output:NXM_NX_REG0[0..15]",
    "table=0,priority=1072,actions=push:NXM_NX_REG0[],pop:NXM_NX_REG1[],set_queue:4,group:1",
    "table=0,priority=1071,udp,actions=mod_tp_src:1,move:NXM_OF_UDP_DST[]->NXM_OF_UDP_SRC[]",
    "table=0,priority=1070,ip,actions=ct(commit,zone=NXM_NX_REG13[0..15],table=3,nat(src=10.0.0.1-10.0.0.5:100-200)),ct_clear",
    "table=0,priority=1069,vlan_tci=0x1000/0x1000,actions=mod_vlan_pcp:4,mod_vlan_vid:7",
    "table=0,priority=1068,actions=mod_vlan_pcp:4,mod_vlan_vid:7,strip_vlan,mod_vlan_vid:8",
    "table=0,priority=1067,ip,actions=clone(mod_vlan_vid:9),mod_vlan_vid:10",
    "table=0,priority=1066,actions=set_field:0x8->tun_id,set_tunnel64:0x9,set_tunnel:0x123456789",
    "table=0,priority=1065,ip,actions=check_pkt_larger(100)->NXM_NX_REG0[0],resubmit(,1)",
    "table=0,priority=1064,sctp,actions=mod_tp_src:5,set_field:6->sctp_dst",
    "table=0,priority=1063,tcp,actions=set_field:0x10->tun_metadata0",
    "table=0,priority=1062,actions=meter:1,output:1",
    "table=0,priority=1061,actions=meter:1,write_metadata:0x5/0xf",
    "table=0,priority=1060,ip,actions=mod_nw_tos:8,mod_nw_ecn:1,set_field:3->ip_ecn",
    "table=0,priority=1059,actions=output:1,output:IN_PORT,LOCAL,NORMAL,CONTROLLER:65535,enqueue:IN_PORT:5",
    "table=0,priority=1058,actions=clear_actions,write_actions(set_field:0x1->reg0,mod_vlan_vid:3,output:2),goto_table:3",
    "table=0,priority=1057,actions=move:NXM_NX_REG0[0..7]->NXM_NX_REG1[8..15],move:NXM_NX_XXREG0[]->NXM_NX_XXREG1[],move:NXM_OF_ETH_SRC[]->NXM_OF_ETH_DST[]",
    "table=0,priority=1056,ip,actions=move:NXM_OF_IP_SRC[]->NXM_NX_REG7[],move:OXM_OF_PKT_REG0[0..31]->NXM_NX_REG8[]",
    "table=0,priority=1054,ip,actions=set_field:1.2.3.4/255.255.0.255->ip_src,set_field:0x12/0xff->reg9",
    "table=0,priority=1053,ipv6,actions=set_field:::1:2:0:0/::ffff:ffff:0:0->ipv6_src",
    "table=0,priority=1052,vlan_tci=0x1000/0x1000,actions=set_field:0x1005/0x1007->vlan_vid,set_field:5->vlan_pcp",
    "table=0,priority=1051,actions=set_field:0x5->pkt_mark,load:0x1->NXM_NX_PKT_MARK[4..7],set_field:0x12345678/0xf0f0f0f0->pkt_mark",
    "table=0,priority=1050,ip,actions=dec_ttl,dec_ttl(0),dec_ttl(5)",
    "table=0,priority=1049,actions=sample(probability=100,collector_set_id=1,obs_domain_id=2,obs_point_id=3),exit",
    "table=0,priority=1048,actions=bundle(eth_src,0,hrw,ofport,members:1,2),output:NXM_NX_REG1[]",
    "table=0,priority=1047,arp,actions=set_field:1.2.3.4->arp_spa,set_field:00:00:00:00:00:02->arp_sha,load:0x2->NXM_OF_ARP_OP[]",
    "table=0,priority=1046,tcp,actions=fin_timeout(idle_timeout=10),resubmit(1,2),resubmit:3",
    "table=0,priority=1044,ip,actions=set_field:0x1234567890abcdef->tun_id,set_field:0x1/0x1->tun_id,set_field:10.0.0.1->tun_dst",
    "table=0,priority=1043,ipv6,actions=set_field:::1->ipv6_dst,set_field:0x12345->ipv6_label,set_field:::ff00:0/::ffff:0->ipv6_src",
    "table=0,priority=1042,actions=move:NXM_OF_ETH_SRC[0..47]->NXM_NX_XXREG0[0..47],move:NXM_NX_REG0[0..15]->NXM_OF_VLAN_TCI[]",
    "table=0,priority=1041,ip,actions=move:NXM_NX_DP_HASH[]->NXM_NX_REG0[],move:NXM_NX_REG1[]->NXM_NX_PKT_MARK[]",
    "table=0,priority=1040,tcp,actions=move:NXM_NX_TCP_FLAGS[]->NXM_NX_REG0[0..11],move:NXM_OF_IP_TOS[]->NXM_NX_REG1[0..7]",
    "table=0,priority=1039,actions=set_field:0x1->xxreg1,set_field:0x5/0x7->xxreg2,load:0x3->NXM_NX_XXREG3[64..127]",
]

GROUPS = [
    "group_id=1,type=select,selection_method=hash,fields(udp_src),bucket=bucket_id:0,actions=move:NXM_OF_UDP_SRC[]->NXM_NX_REG5[0..15],output:2,bucket=bucket_id:1,actions=set_field:0x9->reg6,output:3",
    "group_id=2,type=all,bucket=actions=load:0x5->NXM_NX_REG2[0..15],mod_vlan_vid:5,output:1,bucket=actions=mod_tp_src:7,mod_nw_src:1.1.1.1,set_field:0x3/0x3->reg3,output:2",
    "group_id=3,type=all,bucket=actions=push_vlan:0x8100,set_field:4101->vlan_vid,mod_dl_dst:00:00:00:00:00:01,output:1",
    "group_id=4,type=indirect,bucket=actions=mod_nw_tos:4,set_tunnel:0x5,load:0x1->OXM_OF_METADATA[0..3],output:1",
]


class Proxy(threading.Thread):
    """Unix-socket proxy recording complete OpenFlow messages per connection."""

    def __init__(self, listen, upstream):
        super().__init__(daemon=True)
        self.upstream = upstream
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(listen)
        self.sock.listen(8)
        self.lock = threading.Lock()
        self.conns = []  # list of lists of (direction, bytes)

    def run(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            u = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            u.connect(self.upstream)
            with self.lock:
                log = []
                self.conns.append(log)
            for src, dst, d in ((c, u, "c2s"), (u, c, "s2c")):
                threading.Thread(target=self.pump, args=(src, dst, d, log), daemon=True).start()

    def pump(self, src, dst, direction, log):
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
                n = struct.unpack("!H", buf[2:4])[0]
                if n < 8 or len(buf) < n:
                    break
                with self.lock:
                    log.append((direction, buf[:n]))
                buf = buf[n:]
            try:
                dst.sendall(data)
            except OSError:
                return

    def take(self):
        time.sleep(0.05)
        with self.lock:
            c, self.conns = self.conns, []
        return c


def sh(*argv, env=None, check=True, input=None):
    r = subprocess.run(argv, env=env, input=input, capture_output=True, text=True)
    if check and r.returncode != 0:
        raise RuntimeError("%s: %s%s" % (" ".join(argv), r.stdout, r.stderr))
    return r


def hx(b):
    """Hex of b, "-" when empty (so that every line has all its fields)."""
    return b.hex() or "-"


def pad8(n):
    return (n + 7) // 8 * 8


# ---- message layouts (the few needed) -------------------------------------------------

def of11_match_end(b, off):
    """Offset after an OXM ofp_match starting at off, and the TLV bytes."""
    mlen = struct.unpack("!H", b[off + 2:off + 4])[0]
    return off + pad8(mlen), b[off + 4:off + mlen]


def flow_mod(msg):
    """(table, priority, flags, action-or-instruction bytes) of a flow mod, or None."""
    v, t = msg[0], msg[1]
    if v == 1 and t == 14:
        cookie, cmd, idle, hard, prio, buf, outp, flags = struct.unpack("!QHHHHIHH", msg[48:72])
        return cmd >> 8, prio, flags, msg[72:]
    if v == 1 and t == 4 and struct.unpack("!II", msg[8:16]) == (0x2320, 13):
        cookie, cmd, idle, hard, prio, buf, outp, flags, mlen = struct.unpack(
            "!QHHHHIHHH", msg[16:42])
        return cmd >> 8, prio, flags, msg[48 + pad8(mlen):]
    if v >= 4 and t == 14:
        table = msg[24]
        prio = struct.unpack("!H", msg[30:32])[0]
        flags = struct.unpack("!H", msg[44:46])[0]
        end, _ = of11_match_end(msg, 48)
        return table, prio, flags, msg[end:]
    return None


def flow_stats(msgs, v):
    """[(table, priority, flags, oxm-match-bytes or None, actions/instructions)] of replies."""
    out = []
    for m in msgs:
        if m[0] != v:
            continue
        if v == 1 and m[1] == 17 and struct.unpack("!H", m[8:10])[0] == 0xffff:
            # NXST_FLOW reply: vendor stats header (8+4+4+4+4) then nx_flow_stats
            body, off = m, 24
            while off < len(body):
                n, table = struct.unpack("!HB", body[off:off + 3])
                prio, = struct.unpack("!H", body[off + 12:off + 14])
                mlen, = struct.unpack("!H", body[off + 18:off + 20])
                start = off + 48 + pad8(mlen)
                out.append((table, prio, 0, None, body[start:off + n]))
                off += n
        elif v == 1 and m[1] == 17 and struct.unpack("!H", m[8:10])[0] == 1:
            off = 12
            while off < len(m):
                n, table = struct.unpack("!HB", m[off:off + 3])
                prio, = struct.unpack("!H", m[off + 52:off + 54])
                out.append((table, prio, 0, None, m[off + 88:off + n]))
                off += n
        elif v >= 4 and m[1] == 19 and struct.unpack("!H", m[8:10])[0] == 1:
            off = 16
            while off < len(m):
                n, = struct.unpack("!H", m[off:off + 2])
                if v == 6:
                    table = m[off + 4]
                    prio, = struct.unpack("!H", m[off + 6:off + 8])
                    flags, = struct.unpack("!H", m[off + 12:off + 14])
                    end, tlvs = of11_match_end(m, off + 24)
                    slen, = struct.unpack("!H", m[end + 2:end + 4])
                    end += pad8(slen)
                else:
                    table = m[off + 2]
                    prio, flags = struct.unpack("!H", m[off + 12:off + 14])[0], \
                        struct.unpack("!H", m[off + 18:off + 20])[0]
                    end, tlvs = of11_match_end(m, off + 48)
                out.append((table, prio, flags, tlvs, m[end:off + n]))
                off += n
    return out


def buckets_13(b):
    out, off = [], 0
    while off < len(b):
        n, = struct.unpack("!H", b[off:off + 2])
        out.append((None, b[off + 16:off + n]))
        off += n
    return out


def buckets_15(b):
    out, off = [], 0
    while off < len(b):
        n, alen, bid = struct.unpack("!HHI", b[off:off + 8])
        out.append((bid, b[off + 8:off + 8 + alen]))
        off += n
    return out


def group_mod(msg):
    v, t = msg[0], msg[1]
    if t != 15:
        return None
    gid, = struct.unpack("!I", msg[12:16])
    if v == 6:
        blen, = struct.unpack("!H", msg[16:18])
        return gid, buckets_15(msg[24:24 + blen])
    return gid, buckets_13(msg[16:])


def group_desc(msgs, v):
    out = []
    for m in msgs:
        if m[0] != v:
            continue
        if v >= 4 and m[1] == 19 and struct.unpack("!H", m[8:10])[0] == 7:
            off = 16
            while off < len(m):
                n, gtype, gid = struct.unpack("!HBxI", m[off:off + 8])
                if v == 6:
                    blen, = struct.unpack("!H", m[off + 8:off + 10])
                    out.append((gid, buckets_15(m[off + 16:off + 16 + blen])))
                else:
                    out.append((gid, buckets_13(m[off + 8:off + n])))
                off += n
        elif v == 1 and m[1] == 17 and struct.unpack("!H", m[8:10])[0] == 0xffff:
            # NXST_GROUP_DESC: OpenFlow 1.5 group desc bodies after the 24-byte header
            off = 24
            while off < len(m):
                n, gtype, gid = struct.unpack("!HBxI", m[off:off + 8])
                blen, = struct.unpack("!H", m[off + 8:off + 10])
                out.append((gid, buckets_15(m[off + 16:off + 16 + blen])))
                off += n
    return out


def main():
    if os.geteuid() != 0:
        sys.exit("run as root")
    d = tempfile.mkdtemp(prefix="xvs-compat-")
    env = dict(os.environ, OVS_RUNDIR=d + "/run", OVS_DBDIR=d + "/db",
               OVS_LOGDIR=d + "/log", OVS_SYSCONFDIR=d + "/etc")
    for s in ("run", "db", "log", "etc"):
        os.makedirs(os.path.join(d, s))
    procs = []
    sh("ip", "netns", "add", NS)
    try:
        sh("ovsdb-tool", "create", d + "/db/conf.db", SCHEMA)
        db = "unix:%s/run/db.sock" % d
        procs.append(subprocess.Popen(
            ["ovsdb-server", "--no-chdir", "-vconsole:off", "-vsyslog:off",
             "--log-file=%s/log/ovsdb.log" % d, "--unixctl=%s/run/ovsdb.ctl" % d,
             "--remote=p" + db, d + "/db/conf.db"], env=env))
        for _ in range(100):
            if sh("ovs-vsctl", "--db=" + db, "--no-wait", "init", env=env,
                  check=False).returncode == 0:
                break
            time.sleep(0.1)
        procs.append(subprocess.Popen(
            ["ip", "netns", "exec", NS, "ovs-vswitchd", db, "--no-chdir", "-vconsole:off",
             "-vsyslog:off", "--log-file=%s/log/vswitchd.log" % d], env=env))
        sh("ovs-vsctl", "--db=" + db, "--timeout=20", "add-br", "br0", "--", "set", "bridge",
           "br0", "datapath_type=netdev", "fail_mode=secure", env=env)
        mgmt = d + "/run/br0.mgmt"
        for _ in range(100):
            if os.path.exists(mgmt):
                break
            time.sleep(0.1)
        proxy = Proxy(d + "/proxy.sock", mgmt)
        proxy.start()
        target = "unix:%s/proxy.sock" % d
        ofctl = lambda ver, *a, check=True: sh("ovs-ofctl", "-O", ver, *a, env=env, check=check)
        ofctl("OpenFlow13", "add-meter", target, "meter=1,kbps,band=type=drop,rate=1000")
        ofctl("OpenFlow10", "add-tlv-map", target, "{class=0xffff,type=0,len=4}->tun_metadata0")
        proxy.take()

        lines = ["# Recorded by openflow/tests/compat/capture.py from %s."
                 % sh("ovs-vswitchd", "--version").stdout.splitlines()[0],
                 "# flow T P: then per version A that accepted the flow: `sent A F HEX` (flags F",
                 "# and actions (OF1.0) or instructions that ovs-ofctl -O A sent), then",
                 "# `dump A B F HEX` (what ovs-vswitchd replied to a reader of version B; F its",
                 "# flags field, 0 in OF1.0), each after the ovs-ofctl text as a comment;",
                 "# `-` for no bytes.  `match HEX`: the flow's OXM match (from the 1.3 dump).",
                 "# group G: `sent A BUCKET HEX` and `dump A B BUCKET HEX` per bucket (OF1.0",
                 "# readers get NXST_GROUP_DESC, with OpenFlow 1.5 buckets).", ""]
        flows = {}   # (table, prio) -> {"line":..., "match":..., "sent": {A:(f,hex)}, "dump": {(A,B):(f,hex,text)}}
        groups = {}
        for a, aname in VERSIONS:
            ofctl("OpenFlow15", "del-flows", target)
            ofctl("OpenFlow15", "del-groups", target)
            proxy.take()
            for g in GROUPS:
                r = ofctl(aname, "add-group", target, g, check=False)
                for conn in proxy.take():
                    for dirn, m in conn:
                        if dirn == "c2s" and group_mod(m) and r.returncode == 0:
                            gid, bks = group_mod(m)
                            e = groups.setdefault(gid, {"line": g, "sent": {}, "dump": {}})
                            e["sent"][a] = bks
            for b, bname in VERSIONS:
                r = ofctl(bname, "dump-groups", target, check=False)
                for conn in proxy.take():
                    msgs = [m for dirn, m in conn if dirn == "s2c"]
                    for gid, bks in group_desc(msgs, b):
                        if gid in groups and a in groups[gid]["sent"]:
                            gl = [l.strip() for l in r.stdout.splitlines()
                                  if l.strip().startswith("group_id=%d," % gid)]
                            groups[gid]["dump"][(a, b)] = (bks, gl[0] if gl else "")
            # one flow at a time, so that a flow that ovs-ofctl cannot read back in some
            # version (it fails the whole dump) does not hide the others
            for f in FLOWS:
                ofctl("OpenFlow15", "del-flows", target)
                proxy.take()
                r = ofctl(aname, "add-flow", target, f, check=False)
                key = None
                for conn in proxy.take():
                    for dirn, m in conn:
                        fm = flow_mod(m) if dirn == "c2s" else None
                        if fm and r.returncode == 0:
                            key = (fm[0], fm[1])
                            e = flows.setdefault(key, {"line": f, "match": None,
                                                       "sent": {}, "dump": {}})
                            e["sent"][a] = (fm[2], fm[3])
                if key is None:
                    continue
                for b, bname in VERSIONS:
                    r = ofctl(bname, "dump-flows", target, "--no-stats", check=False)
                    out = [l.strip() for l in r.stdout.splitlines()
                           if l.strip() and " reply " not in l]
                    err = [l for l in r.stderr.strip().splitlines() if "|" not in l]
                    text = out[0] if out else "(%s)" % (err[-1] if err else "nothing")
                    for conn in proxy.take():
                        msgs = [m for dirn, m in conn if dirn == "s2c"]
                        for table, prio, flags, tlvs, body in flow_stats(msgs, b):
                            if (table, prio) != key:
                                continue
                            if tlvs is not None and e["match"] is None and b == 4:
                                e["match"] = tlvs
                            e["dump"][(a, b)] = (flags, body, text)
        for (table, prio), e in sorted(flows.items()):
            lines.append("# %s" % e["line"])
            lines.append("flow %d %d" % (table, prio))
            lines.append("match %s" % hx(e["match"] or b""))
            for a, _ in VERSIONS:
                if a not in e["sent"]:
                    continue
                f, body = e["sent"][a]
                lines.append("sent %d %d %s" % (a, f, hx(body)))
                for b, _ in VERSIONS:
                    if (a, b) in e["dump"]:
                        f, body, text = e["dump"][(a, b)]
                        lines.append("#   %s" % text)
                        lines.append("dump %d %d %d %s" % (a, b, f, hx(body)))
            lines.append("")
        for gid, e in sorted(groups.items()):
            lines.append("# %s" % e["line"])
            lines.append("group %d" % gid)
            for a, _ in VERSIONS:
                if a not in e["sent"]:
                    continue
                for i, (_, body) in enumerate(e["sent"][a]):
                    lines.append("sent %d %d %s" % (a, i, hx(body)))
                for b, _ in VERSIONS:
                    if (a, b) in e["dump"]:
                        bks, text = e["dump"][(a, b)]
                        lines.append("#   %s" % text)
                        for i, (_, body) in enumerate(bks):
                            lines.append("dump %d %d %d %s" % (a, b, i, hx(body)))
            lines.append("")
        with open(OUT, "w") as fh:
            fh.write("\n".join(lines))
        print("wrote %s: %d flows, %d groups" % (OUT, len(flows), len(groups)))
    finally:
        for p in reversed(procs):
            p.terminate()
            try:
                p.wait(5)
            except subprocess.TimeoutExpired:
                p.kill()
        sh("ip", "netns", "del", NS, check=False)
        shutil.rmtree(d, ignore_errors=True)


if __name__ == "__main__":
    main()
