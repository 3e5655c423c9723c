//! xvswitchd next to a real Open vSwitch: the same flows given to both through `ovs-ofctl` read
//! back the same in every OpenFlow version, and the project's `xvs-ofctl` programs a real
//! `ovs-vswitchd` (userspace datapath, veth ports in a namespace) into the same pipeline the
//! xvswitchd tests use, checked with the same packets.

use xvs_tests::ofctl::{is_vlog_line, write_lines, Of, Ofctl};
use xvs_tests::ovs::OvsSwitch;
use xvs_tests::{Lab, Netns, RawSock, TempDir};

use crate::openflow::{
    appctl_error_lines, assert_no_problems, by_cookie, check_pipeline, expect_frame, flow_monitor,
    meters_enforced, missing_references, mod_port, openflow_10_specifics, packet_out,
    pause_and_resume, program_pipeline, show_ports, table_content, timeouts_and_flow_removed, udp,
    OfLab, Sut,
};

/// Flows whose actions exist in every version but are encoded differently in each (set_field /
/// load / NXAST_REG_LOAD2, move / NXAST_REG_MOVE / OFPAT_COPY_FIELD, mod_vlan_vid / push_vlan +
/// set_field, mod_nw_src / set_field...), plus Nicira actions that are the same everywhere.
const CROSS_FLOWS: &[&str] = &[
    "table=0,priority=100,in_port=1,udp,\
     actions=set_field:0x1->reg0,move:NXM_OF_UDP_SRC[]->NXM_NX_REG1[0..15],resubmit(,1)",
    "table=0,priority=90,in_port=2,ip,actions=load:0x5->NXM_NX_REG2[],resubmit(,2)",
    "table=0,priority=80,arp,actions=NORMAL",
    "table=0,priority=70,udp,tp_dst=7000,actions=controller(userdata=01.02,max_len=128)",
    "table=0,priority=50,icmp,actions=set_field:00:11:22:33:44:55->eth_dst,dec_ttl,output:3",
    "table=1,priority=10,reg0=1,udp,actions=group:1",
    "table=1,priority=5,reg1=0x1234/0xffff,actions=set_field:0x3/0x3->reg3,output:2",
    "table=2,cookie=0x42,priority=1,udp,actions=mod_nw_src:10.9.9.9,mod_tp_src:99,output:1",
    "table=3,idle_timeout=30,hard_timeout=60,send_flow_rem,priority=7,ip,nw_dst=10.0.0.0/8,\
     actions=mod_vlan_vid:100,output:1",
    "table=3,priority=6,vlan_tci=0x1000/0x1000,\
     actions=clone(set_field:0x7->reg4,resubmit(,4)),strip_vlan",
    "table=4,priority=1,actions=learn(table=5,NXM_OF_ETH_DST[]=NXM_OF_ETH_SRC[],\
     output:NXM_NX_REG0[0..15]),multipath(eth_src,50,hrw,12,0,NXM_NX_REG0[0..3])",
    "table=4,priority=2,ip,actions=ct(commit,zone=5),note:aa.bb",
];

const CROSS_GROUPS: &[&str] = &[
    "group_id=1,type=select,selection_method=hash,fields(udp_src),\
     bucket=bucket_id:0,actions=move:NXM_OF_UDP_SRC[]->NXM_NX_REG5[0..15],output:2,\
     bucket=bucket_id:1,actions=set_field:0x9->reg6,output:3",
];

/// A dump as compared: the exit status, then the flow (or group) lines sorted, without the
/// reply header line (it holds the xid) and without log lines.
fn comparable(code: Option<i32>, stdout: &str, stderr: &str) -> Vec<String> {
    let mut v: Vec<String> = stdout
        .lines()
        .chain(stderr.lines())
        .filter(|l| !is_vlog_line(l) && !l.contains(" reply ") && !l.trim().is_empty())
        .map(|l| {
            if l.starts_with("ovs-ofctl: ") {
                // the socket path differs between the two switches
                l.split(" (").last().unwrap_or(l).to_string()
            } else {
                l.to_string()
            }
        })
        .collect();
    v.sort();
    v.insert(0, format!("exit {code:?}"));
    v
}

fn diff(ovs: &[String], xvs: &[String]) -> String {
    const MAX: usize = 6;
    let mut s = String::new();
    for (who, mine, theirs) in [("ovs-vswitchd", ovs, xvs), ("xvswitchd:   ", xvs, ovs)] {
        let only: Vec<&String> = mine.iter().filter(|l| !theirs.contains(l)).collect();
        for l in only.iter().take(MAX) {
            s.push_str(&format!("    only from {who}: {l}\n"));
        }
        if only.len() > MAX {
            s.push_str(&format!(
                "    ... and {} more from {}\n",
                only.len() - MAX,
                who.trim()
            ));
        }
    }
    s
}

/// Proves the flow table is version-neutral, as in Open vSwitch: the same flows (and a select
/// group), installed by `ovs-ofctl` in OpenFlow 1.0, 1.3 or 1.5 into both xvswitchd and a real
/// ovs-vswitchd 3.1, are dumped by `ovs-ofctl dump-flows --no-stats` (and `dump-groups`) in each
/// of 1.0, 1.3 and 1.5 exactly as Open vSwitch dumps them: every action re-encoded for the
/// reader's version (a flow added with OpenFlow 1.5 `move` read in 1.0 or 1.3, a 1.3
/// `push_vlan` read in 1.0, 1.0 `load` read in 1.5), with the same flags. All nine
/// (add, dump) pairs are compared and every difference is reported.
#[test]
fn flows_read_back_in_every_version_as_from_open_vswitch() {
    let l = OfLab::secure(1, &[]);
    let ovs_ns = Netns::new("o");
    let ovs = OvsSwitch::start(&ovs_ns, &[]);
    let dir = TempDir::new();
    let flows = write_lines(&dir, "cross-flows.txt", CROSS_FLOWS);
    let groups = write_lines(&dir, "cross-groups.txt", CROSS_GROUPS);
    let switches = [
        ("ovs-vswitchd", Ofctl::ovs(&ovs.rundir)),
        ("xvswitchd", l.ofctl.clone()),
    ];
    let mut problems = Vec::new();
    for add in Of::ALL {
        let mut dumps: Vec<Vec<Vec<String>>> = Vec::new();
        for (name, o) in &switches {
            o.v(Of::V15).ok(&["del-groups", "br0"]);
            o.ok(&["del-flows", "br0"]);
            o.v(Of::V15).ok(&["add-groups", "br0", &groups]);
            let r = o.v(add).run(&["add-flows", "br0", &flows]);
            assert!(r.ok(), "{name}: {add:?} add-flows: {}", r.text());
            let mut per = Vec::new();
            for dump in Of::ALL {
                let r = o.v(dump).run(&["dump-flows", "br0", "--no-stats"]);
                per.push(comparable(r.code, &r.stdout, &r.stderr));
                if add == Of::V15 {
                    let r = o.v(dump).run(&["dump-groups", "br0"]);
                    per.push(comparable(r.code, &r.stdout, &r.stderr));
                }
            }
            dumps.push(per);
        }
        let mut i = 0;
        for dump in Of::ALL {
            let what = if add == Of::V15 {
                vec!["dump-flows", "dump-groups"]
            } else {
                vec!["dump-flows"]
            };
            for w in what {
                let (o, x) = (&dumps[0][i], &dumps[1][i]);
                if o != x {
                    problems.push(format!(
                        "added with {}, {w} with {}:\n{}",
                        add.explicit(),
                        dump.explicit(),
                        diff(o, x)
                    ));
                }
                i += 1;
            }
        }
    }
    assert!(
        problems.is_empty(),
        "{} of the (add version, dump version) reads differ from Open vSwitch:\n{}",
        problems.len(),
        problems.join("\n")
    );
}

/// Proves `xvs-ofctl` drives a real ovs-vswitchd: `show` lists the veth ports under the
/// requested OpenFlow numbers, the OpenFlow 1.5 pipeline of the xvswitchd test (registers,
/// move, goto_table, resubmit, a controller action seen by `xvs-ofctl monitor`, select and all
/// groups) installed with `xvs-ofctl add-groups` /
/// `add-flows` forwards exactly as checked there (same packets, same counters read back with
/// xvs-ofctl), `xvs-ofctl packet-out` delivers a frame to a port, and an atomic `--bundle` with a
/// flow Open vSwitch rejects (a missing group) changes nothing.
#[test]
fn xvs_ofctl_programs_a_real_ovs_vswitchd() {
    let lab = Lab::new(3);
    let ovs = OvsSwitch::start(&lab.sw, &lab.ports());
    let o = Ofctl::xvs(&ovs.rundir);
    let dir = TempDir::new();
    let show = o.v(Of::V13).ok(&["show", "br0"]);
    for (i, h) in lab.hosts.iter().enumerate() {
        assert!(
            show.contains(&format!(" {}({}): addr:", i + 1, h.port)),
            "xvs-ofctl show lacks port {}:\n{show}",
            i + 1
        );
    }
    let socks: Vec<RawSock> = lab
        .hosts
        .iter()
        .map(|h| RawSock::open(&h.ns, &h.ifname))
        .collect();
    program_pipeline(&o, &dir);
    check_pipeline(&lab.hosts, &socks, &o);

    let (a, b) = (&lab.hosts[0], &lab.hosts[1]);
    let f = udp(a, b, 7, 7, b"xvs-ofctl packet-out");
    o.ok(&[
        "packet-out",
        "br0",
        "CONTROLLER",
        "output:2",
        &xvs_tests::ofctl::hex(&f),
    ]);
    expect_frame(&socks[1], "xvs-ofctl packet-out output:2", |x| {
        x == f.as_slice()
    });

    let before = table_content(&o.v(Of::V15).flows("br0", ""));
    let bad = write_lines(
        &dir,
        "bad.txt",
        &[
            "table=0,priority=50,in_port=1,udp,actions=output:3",
            "table=0,priority=51,in_port=1,udp,actions=group:99",
        ],
    );
    let text = o
        .v(Of::V15)
        .with(&["--bundle"])
        .run(&["add-flows", "br0", &bad])
        .expect_failure();
    assert!(text.contains("OFPBAC_BAD_OUT_GROUP"), "{text}");
    assert_eq!(table_content(&o.v(Of::V15).flows("br0", "")), before);
    let flows = o.v(Of::V15).flows("br0", "");
    assert!(by_cookie(&flows, 0x60).n_packets > 0);
}

/// Proves the expectations of the xvswitchd tests that compare with Open vSwitch hold for the
/// real ovs-vswitchd 3.1 (userspace datapath, veth ports in a namespace), checked the same way:
/// missing groups, meters and table 254 refused; error replies echo the whole request,
/// OpenFlow 1.0 group mods work and a 1.0 modify sets the cookie; flow monitors in 1.0, 1.3 and
/// 1.5; paused packet-ins resumed by `ovs-ofctl monitor ... resume`; FLOW_REMOVED in the OpenFlow 1.0 format; packet-outs counted
/// in flow stats; `mod-port` down/no-forward take effect and are announced; ports described
/// identically in OpenFlow 1.0 and 1.3; control-socket errors on their own line; meters
/// enforced and counted.
#[test]
fn open_vswitch_meets_the_expectations_the_xvswitchd_tests_compare_with() {
    let lab = Lab::new(3);
    let ovs = OvsSwitch::start(&lab.sw, &lab.ports());
    let s = Sut::new(Ofctl::ovs(&ovs.rundir), &lab, ovs.ctl());
    let mut problems = Vec::new();
    problems.extend(missing_references(&s));
    problems.extend(openflow_10_specifics(&s));
    problems.extend(flow_monitor(&s));
    problems.extend(pause_and_resume(&s));
    problems.extend(packet_out(&s));
    problems.extend(mod_port(&s));
    problems.extend(show_ports(&s));
    problems.extend(appctl_error_lines(&s));
    problems.extend(timeouts_and_flow_removed(&s));
    problems.extend(meters_enforced(&s));
    assert_no_problems("the real ovs-vswitchd", problems);
}
