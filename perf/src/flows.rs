//! OpenFlow flow files for the control-plane scenarios, in `ovs-ofctl add-flows` syntax.
//!
//! * [`ovn_like`]: N distinct flows shaped like ovn-controller's (taken from
//!   `../shared/ovn-reference/ovn-flows-full-ch1.txt`): spread over ~50 tables of OVN's
//!   numbering (0, 8-51, 64-65, 73-74), matching on metadata (datapath), reg14/reg15 (logical
//!   ports), reg0/reg10 flag bits, MAC and IPv4/IPv6 addresses, L4 ports, ct_state, conj_id;
//!   actions set_field (registers, xxreg0, MACs, ARP fields), move, resubmit, conjunction,
//!   ct(commit,nat), dec_ttl, output. Deterministic: the same N gives the same file.
//! * [`miss_pipeline`]: a T-table resubmit chain ending in `output:2`, whose table 0 has one
//!   exact `tp_dst` flow per destination port, so every new port is a new megaflow.

use std::fmt::Write as _;

/// One kind of OVN flow: a name, its share of the file (per mille) and the tables it goes to.
struct Kind {
    name: &'static str,
    per_mille: usize,
    tables: &'static [u8],
}

const ACL_TABLES: &[u8] = &[
    11, 12, 13, 14, 15, 16, 17, 18, 19, 22, 40, 41, 42, 43, 45, 46, 47,
];

const KINDS: &[Kind] = &[
    // physical-to-logical: one per local VIF / tunnel port
    Kind {
        name: "in_port",
        per_mille: 30,
        tables: &[0],
    },
    // port security: source MAC, then MAC+IP of each logical port
    Kind {
        name: "port_sec_l2",
        per_mille: 70,
        tables: &[8, 48],
    },
    Kind {
        name: "port_sec_ip",
        per_mille: 70,
        tables: &[9, 49],
    },
    Kind {
        name: "nd",
        per_mille: 40,
        tables: &[10, 74],
    },
    Kind {
        name: "arp_responder",
        per_mille: 80,
        tables: &[27],
    },
    Kind {
        name: "l2_lookup",
        per_mille: 100,
        tables: &[33],
    },
    Kind {
        name: "acl",
        per_mille: 250,
        tables: ACL_TABLES,
    },
    Kind {
        name: "acl_conjunction",
        per_mille: 60,
        tables: &[44],
    },
    Kind {
        name: "route",
        per_mille: 80,
        tables: &[20, 21],
    },
    Kind {
        name: "lb_dnat",
        per_mille: 50,
        tables: &[13, 14],
    },
    Kind {
        name: "output",
        per_mille: 50,
        tables: &[37, 38, 39, 64, 65],
    },
    Kind {
        name: "ipv6_src",
        per_mille: 50,
        tables: &[12, 16],
    },
    // per-datapath defaults in every table of the pipelines (the remainder)
    Kind {
        name: "default",
        per_mille: 70,
        tables: &[
            8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29,
            30, 31, 32, 33, 34, 35, 36, 40, 41, 42, 43, 44, 45, 46, 47, 48, 49, 50, 51, 73,
        ],
    },
];

/// Logical ports per datapath in the generated topology.
const PORTS_PER_DP: usize = 200;

fn splitmix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// What [`ovn_like`] wrote.
pub struct FlowSet {
    pub text: String,
    pub n: usize,
    /// (kind, count)
    pub kinds: Vec<(&'static str, usize)>,
    pub tables: Vec<u8>,
}

/// The kinds of flow [`ovn_like`] writes.
pub fn kind_names() -> Vec<&'static str> {
    KINDS.iter().map(|k| k.name).collect()
}

/// `n` distinct OVN-shaped flows (see the module comment); kinds named in `exclude` are left
/// out and their share goes to the others in proportion.
pub fn ovn_like(n: usize, exclude: &[String]) -> FlowSet {
    let keep: Vec<bool> = KINDS
        .iter()
        .map(|k| !exclude.iter().any(|e| e == k.name))
        .collect();
    let total: usize = KINDS
        .iter()
        .zip(&keep)
        .filter(|(_, &k)| k)
        .map(|(k, _)| k.per_mille)
        .sum::<usize>()
        .max(1);
    let mut counts: Vec<usize> = KINDS
        .iter()
        .zip(&keep)
        .map(|(k, &kp)| if kp { n * k.per_mille / total } else { 0 })
        .collect();
    let assigned: usize = counts.iter().sum();
    // the rounding remainder goes to the last kind kept (the per-datapath defaults)
    if let Some(i) = keep.iter().rposition(|&k| k) {
        counts[i] += n - assigned;
    }
    let mut text = String::with_capacity(n * 190);
    let mut tables = std::collections::BTreeSet::new();
    let mut kinds = Vec::new();
    for (ki, (kind, &cnt)) in KINDS.iter().zip(counts.iter()).enumerate() {
        if !keep[ki] {
            continue;
        }
        kinds.push((kind.name, cnt));
        for k in 0..cnt {
            let t = kind.tables[k % kind.tables.len()];
            tables.insert(t);
            // several flows share a cookie, as the flows of one logical flow do
            let cookie = splitmix(((ki as u64) << 40) | (k as u64 / 3)) & 0xffff_ffff;
            let _ = write!(text, "cookie={cookie:#x},table={t},");
            line(&mut text, kind.name, k, t, kind.tables.len());
            text.push('\n');
        }
    }
    FlowSet {
        text,
        n,
        kinds,
        tables: tables.into_iter().collect(),
    }
}

/// Datapath (metadata) and logical port key of the k-th flow of a kind that is spread over
/// `nt` tables: every (table, dp, port) triple is distinct.
fn dp_port(k: usize, nt: usize) -> (usize, usize) {
    let j = k / nt;
    (1 + j / PORTS_PER_DP, 1 + j % PORTS_PER_DP)
}

fn mac(dp: usize, p: usize) -> String {
    format!(
        "0a:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
        (dp >> 16) & 0xff,
        (dp >> 8) & 0xff,
        dp & 0xff,
        (p >> 8) & 0xff,
        p & 0xff
    )
}

fn ip(dp: usize, p: usize) -> String {
    format!("10.{}.{}.{}", (dp >> 8) & 0xff, dp & 0xff, p & 0xff)
}

/// Appends the match and actions of the k-th flow of `kind` in table `t`.
fn line(s: &mut String, kind: &str, k: usize, t: u8, nt: usize) {
    let (dp, p) = dp_port(k, nt);
    let next = t + 1;
    let _ = match kind {
        "in_port" => write!(
            s,
            "priority={},in_port={} actions=set_field:{:#x}->reg13,set_field:0x4->reg11,\
             set_field:0x3->reg12,set_field:{dp:#x}->metadata,set_field:{p:#x}->reg14,resubmit(,8)",
            100 + k / 60000,
            3 + k % 60000,
            k % 65000 + 1
        ),
        "port_sec_l2" => write!(
            s,
            "priority=50,reg14={p:#x},metadata={dp:#x},dl_src={} actions=resubmit(,{next})",
            mac(dp, p)
        ),
        "port_sec_ip" => write!(
            s,
            "priority=90,ip,reg14={p:#x},metadata={dp:#x},dl_src={},nw_src={} \
             actions=resubmit(,{next})",
            mac(dp, p),
            ip(dp, p)
        ),
        "nd" => write!(
            s,
            "priority=90,icmp6,reg14={p:#x},metadata={dp:#x},nw_ttl=255,icmp_type=135,\
             icmp_code=0,nd_target=fe80::{dp:x}:{p:x} actions=resubmit(,{next})"
        ),
        "arp_responder" => {
            let (m, a) = (mac(dp, p), ip(dp, p));
            write!(
                s,
                "priority=50,arp,metadata={dp:#x},arp_tpa={a},arp_op=1 \
                 actions=move:NXM_OF_ETH_SRC[]->NXM_OF_ETH_DST[],set_field:{m}->eth_src,\
                 set_field:2->arp_op,move:NXM_NX_ARP_SHA[]->NXM_NX_ARP_THA[],\
                 set_field:{m}->arp_sha,move:NXM_OF_ARP_SPA[]->NXM_OF_ARP_TPA[],\
                 set_field:{a}->arp_spa,move:NXM_NX_REG14[]->NXM_NX_REG15[],\
                 set_field:0x1/0x1->reg10,resubmit(,37)"
            )
        }
        "l2_lookup" => write!(
            s,
            "priority=50,metadata={dp:#x},dl_dst={} actions=set_field:{p:#x}->reg15,resubmit(,37)",
            mac(dp, p)
        ),
        "acl" => {
            // three shapes (three subtables per table), each ACL a distinct (dp, port)
            let prio = 1001 + (k / nt) % 1000;
            match (k / nt) % 3 {
                0 => write!(
                    s,
                    "priority={prio},ct_state=+new-est+trk,tcp,reg0=0x80/0x80,reg15={p:#x},\
                     metadata={dp:#x},nw_src={}/32,tp_dst={} \
                     actions=set_field:0x2/0x2->reg0,resubmit(,{next})",
                    ip(dp, p),
                    1024 + k % 30000
                ),
                1 => write!(
                    s,
                    "priority={prio},udp,reg15={p:#x},metadata={dp:#x},nw_dst={}/24,tp_dst=53 \
                     actions=set_field:0x4/0x4->reg0,resubmit(,{next})",
                    ip(dp, 0)
                ),
                _ => write!(
                    s,
                    "priority={prio},ip,reg14={p:#x},metadata={dp:#x},nw_src={} \
                     actions=set_field:0x1/0x1->reg0,resubmit(,{next})",
                    ip(dp, p)
                ),
            }
        }
        "acl_conjunction" => {
            // triplets: clause 1 (source address), clause 2 (port), the conj_id flow
            let id = k / 3 + 1;
            let (dp, p) = dp_port(k / 3, 1);
            match k % 3 {
                0 => write!(
                    s,
                    "priority=2001,ip,reg15={p:#x},metadata={dp:#x},nw_src={} \
                     actions=conjunction({id},1/2)",
                    ip(dp, p)
                ),
                1 => write!(
                    s,
                    "priority=2001,tcp,reg15={p:#x},metadata={dp:#x},tp_dst={} \
                     actions=conjunction({id},2/2)",
                    8000 + p
                ),
                _ => write!(
                    s,
                    "priority=2001,conj_id={id},ip,metadata={dp:#x} \
                     actions=set_field:0x2/0x2->reg0,resubmit(,45)"
                ),
            }
        }
        "route" => {
            let rdp = 0x8000 + dp;
            write!(
                s,
                "priority=74,ip,metadata={rdp:#x},nw_dst={}.{}.{}.0/24 \
                 actions=dec_ttl(),set_field:0/0xffff00000000->xreg4,\
                 move:NXM_OF_IP_DST[]->NXM_NX_XXREG0[96..127],\
                 set_field:{:#x}0000000000000000/0xffffffff0000000000000000->xxreg0,\
                 set_field:{}->eth_src,set_field:{p:#x}->reg15,set_field:0x1/0x1->reg10,\
                 resubmit(,{next})",
                20 + ((dp >> 8) & 0xff),
                dp & 0xff,
                p & 0xff,
                0x0a00_0001u32 | ((dp as u32 & 0xff) << 8),
                mac(dp, p)
            )
        }
        "lb_dnat" => write!(
            s,
            "priority=120,ct_state=+new+trk,tcp,metadata={dp:#x},nw_dst=172.16.{}.{},tp_dst=80 \
             actions=set_field:0x8/0x8->reg10,ct(commit,table=15,zone=NXM_NX_REG13[0..15],\
             nat(dst={}:8080))",
            dp & 0xff,
            p & 0xff,
            ip(dp, p)
        ),
        "output" => match t {
            39 => write!(
                s,
                "priority=100,reg15={p:#x},metadata={dp:#x} \
                 actions=set_field:{dp:#x}/0xffffff->tun_id,\
                 move:NXM_NX_REG14[0..14]->NXM_NX_TUN_ID[0..14],output:1,resubmit(,40)"
            ),
            64 | 65 => write!(
                s,
                "priority=100,reg15={p:#x},metadata={dp:#x} actions=output:{}",
                2 + p % 2
            ),
            _ => write!(
                s,
                "priority=100,reg15={p:#x},metadata={dp:#x} \
                 actions=set_field:0x1->reg13,set_field:0x4->reg11,resubmit(,{next})"
            ),
        },
        "ipv6_src" => write!(
            s,
            "priority=100,ipv6,reg14={p:#x},metadata={dp:#x},ipv6_src=fd00:{dp:x}::{p:x} \
             actions=set_field:0x1/0x1->reg0,resubmit(,{next})"
        ),
        _ => {
            // default: one per (table, datapath)
            let dp = 1 + k / nt;
            write!(s, "priority=0,metadata={dp:#x} actions=resubmit(,{next})")
        }
    };
}

/// The `miss` pipeline: tables 0..T-1, each packet of the test stream visiting all of them.
/// Table 0 has one `udp,in_port=1,tp_dst=P` flow per port P in `ports` (so each port is its
/// own megaflow), tables 1..T-2 match OVN-like fields of the stream and resubmit, table T-1
/// outputs to port 2. Every table also holds `decoys` flows of the same shape for other
/// datapaths and `decoys` of a second shape (more subtables to search), as OVN's tables would.
pub fn miss_pipeline(
    ports: std::ops::Range<u32>,
    tables: u8,
    decoys: usize,
    src_mac: &str,
    dst_mac: &str,
) -> String {
    let tables = tables.max(2);
    let last = tables - 1;
    let mut s = String::new();
    for p in ports {
        let _ = writeln!(
            s,
            "table=0,priority=100,udp,in_port=1,tp_dst={p} \
             actions=set_field:0x1->metadata,set_field:0x1->reg14,resubmit(,1)"
        );
    }
    let _ = writeln!(s, "table=0,priority=0 actions=drop");
    for j in 0..decoys {
        let _ = writeln!(
            s,
            "table=0,priority=100,in_port={} actions=set_field:{:#x}->metadata,resubmit(,1)",
            3 + j,
            2 + j
        );
    }
    // what the stream matches in table t (1..last), and a decoy of the same shape
    let shape = |t: u8, md: usize| -> String {
        match (t - 1) % 8 {
            0 => format!("priority=50,reg14=0x1,metadata={md:#x},dl_src={src_mac}"),
            1 => format!(
                "priority=90,ip,reg14=0x1,metadata={md:#x},dl_src={src_mac},nw_src=198.18.0.1"
            ),
            2 => format!("priority=100,ip,metadata={md:#x},nw_dst=198.19.0.0/16"),
            3 => format!("priority=2002,udp,reg0=0x1/0x1,metadata={md:#x},nw_src=198.18.0.0/15"),
            4 => format!("priority=50,metadata={md:#x},dl_dst={dst_mac}"),
            5 => format!("priority=100,reg15=0x2,metadata={md:#x}"),
            6 => format!("priority=100,ip,reg15=0x2,metadata={md:#x},nw_dst=198.19.0.1"),
            _ => format!("priority=1,metadata={md:#x}"),
        }
    };
    for t in 1..tables {
        let acts = if t == last {
            "output:2".to_string()
        } else {
            let set = match (t - 1) % 8 {
                2 => "set_field:0x1/0x1->reg0,",
                4 => "set_field:0x2->reg15,",
                5 => "set_field:0x1->reg13,",
                _ => "",
            };
            format!("{set}resubmit(,{})", t + 1)
        };
        let m = if t == last {
            "priority=100,reg14=0x1,metadata=0x1".to_string()
        } else {
            shape(t, 1)
        };
        let _ = writeln!(s, "table={t},{m} actions={acts}");
        for j in 0..decoys {
            let md = 2 + j;
            let dm = if t == last {
                format!("priority=100,reg14=0x1,metadata={md:#x}")
            } else {
                shape(t, md)
            };
            let _ = writeln!(s, "table={t},{dm} actions=drop");
            let _ = writeln!(
                s,
                "table={t},priority=10,ip,metadata={md:#x},nw_src=10.{}.{}.0/24 actions=drop",
                j / 256,
                j % 256
            );
        }
    }
    s
}

/// The `ovn` scenario's pipeline: logical switches laid out over OVN 23.03's table numbers
/// (0, 8-34, 37-51, 64-65), flow shapes taken from `../shared/ovn-reference/ovn-flows-acl-ch1.txt`.
///
/// Datapath (metadata) 1 holds the two test ports: OpenFlow port 1 (logical port 1, MAC
/// `gen_mac`, source addresses 198.18.0.0/16) and port 2 (logical port 2, MAC `sink_mac`,
/// 198.19.0.1). Its ingress ACL (table 16) is a stateless "allow from address set" with one
/// exact `nw_src` flow per address (OVN expands `ip4.src == $as` that way), so every traffic
/// flow is its own megaflow; its egress ACL (table 46) is a conjunction (`nw_src` prefix x UDP
/// port set). Everything else the packet meets is OVN's default `priority=0,metadata=DP` hop,
/// port security, L2 lookup, loopback check and output. Datapaths 2..=`dps` are filled with
/// `ports` logical ports each (half local with an `in_port`, half remote behind a tunnel output)
/// and the stateful flows of OVN's ACL pipeline (`ct()`, `ct_state`): present in the tables the
/// test packet searches, never matched by it (other metadata).
#[derive(Clone, Debug)]
pub struct OvnPipeline {
    /// Logical switches besides the test one.
    pub dps: usize,
    /// Logical ports per other switch.
    pub ports: usize,
    /// Addresses in the test ACL's address set: 198.18.0.1 onwards (traffic flow i has source
    /// 198.18.0.0 + 1 + i).
    pub addrs: usize,
    pub gen_mac: String,
    pub sink_mac: String,
}

/// What [`OvnPipeline::text`] wrote.
pub struct OvnFlows {
    pub text: String,
    pub n: usize,
    pub tables: Vec<u8>,
    pub ct_flows: usize,
    pub conjunction_flows: usize,
}

/// Source address of traffic flow `i` of the `ovn` scenario (and of its address set).
pub fn ovn_src_ip(i: usize) -> std::net::Ipv4Addr {
    let v = 1 + i as u32;
    std::net::Ipv4Addr::new(198, 18, (v >> 8) as u8, v as u8)
}

/// Destination address of the `ovn` scenario's traffic (logical port 2).
pub const OVN_DST_IP: &str = "198.19.0.1";

impl OvnPipeline {
    pub fn text(&self) -> OvnFlows {
        let mut s = String::with_capacity((self.dps * self.ports * 14 + self.addrs) * 150);
        let mut ofport = 3u32;
        // datapath 1: the test switch, then the others
        self.datapath(&mut s, 1, &mut ofport);
        for dp in 2..self.dps + 2 {
            self.datapath(&mut s, dp, &mut ofport);
        }
        // tables that are not per datapath
        s.push_str("table=0,priority=0 actions=drop\n");
        s.push_str("table=37,priority=0 actions=resubmit(,38)\n");
        s.push_str("table=38,priority=10,reg10=0x1/0x1 actions=resubmit(,40)\n");
        s.push_str("table=38,priority=0 actions=resubmit(,39)\n");
        s.push_str("table=39,priority=150,reg10=0x2/0x3 actions=resubmit(,40)\n");
        s.push_str("table=39,priority=150,reg10=0x10/0x10 actions=resubmit(,40)\n");
        s.push_str("table=39,priority=0 actions=resubmit(,40)\n");
        s.push_str("table=40,priority=0 actions=drop\n");
        s.push_str(
            "table=41,priority=0 actions=set_field:0->reg0,set_field:0->reg1,set_field:0->reg2,\
             set_field:0->reg3,set_field:0->reg4,set_field:0->reg5,set_field:0->reg6,\
             set_field:0->reg7,set_field:0->reg8,set_field:0->reg9,resubmit(,42)\n",
        );
        s.push_str("table=64,priority=0 actions=resubmit(,65)\n");
        let mut tables = std::collections::BTreeSet::new();
        let (mut n, mut ct, mut conj) = (0, 0, 0);
        for l in s.lines() {
            n += 1;
            if let Some(t) = l
                .strip_prefix("table=")
                .and_then(|r| r.split(',').next())
                .and_then(|t| t.parse::<u8>().ok())
            {
                tables.insert(t);
            }
            if l.contains("ct(") || l.contains("ct_state") {
                ct += 1;
            }
            if l.contains("conjunction(") || l.contains("conj_id=") {
                conj += 1;
            }
        }
        OvnFlows {
            text: s,
            n,
            tables: tables.into_iter().collect(),
            ct_flows: ct,
            conjunction_flows: conj,
        }
    }

    /// (MAC, IPv4) of logical port `p` of datapath `dp`.
    fn port(&self, dp: usize, p: usize) -> (String, String) {
        match (dp, p) {
            (1, 1) => (self.gen_mac.clone(), "198.18.0.0/16".into()),
            (1, 2) => (self.sink_mac.clone(), OVN_DST_IP.into()),
            _ => (mac(dp, p), ip(dp, p)),
        }
    }

    fn datapath(&self, s: &mut String, dp: usize, ofport: &mut u32) {
        let test = dp == 1;
        let md = format!("metadata={dp:#x}");
        let nports = if test { self.ports.max(2) } else { self.ports };
        let w = |s: &mut String, t: u8, rest: &str| {
            let _ = writeln!(s, "table={t},{rest}");
        };
        // per logical port
        for p in 1..=nports {
            let (m, a) = self.port(dp, p);
            // test ports 1, 2 and every odd port are local VIFs, the rest are remote
            let local = test && p <= 2 || p % 2 == 1;
            let port_no = if test && p <= 2 {
                p as u32
            } else {
                let n = *ofport;
                if local {
                    *ofport += 1;
                }
                n
            };
            let zone = (dp * 64 + p) % 65000 + 1;
            if local {
                w(
                    s,
                    0,
                    &format!(
                        "priority=100,in_port={port_no} actions=set_field:{zone:#x}->reg13,\
                     set_field:0x4->reg11,set_field:0x3->reg12,set_field:{dp:#x}->metadata,\
                     set_field:{p:#x}->reg14,resubmit(,8)"
                    ),
                );
            }
            // ingress port security (L2, IP, ARP)
            w(
                s,
                8,
                &format!("priority=50,reg14={p:#x},{md},dl_src={m} actions=resubmit(,9)"),
            );
            w(
                s,
                9,
                &format!(
                    "priority=90,ip,reg14={p:#x},{md},dl_src={m},nw_src={a} actions=resubmit(,10)"
                ),
            );
            w(
                s,
                9,
                &format!("priority=80,ip,reg14={p:#x},{md} actions=drop"),
            );
            if !a.contains('/') {
                w(
                    s,
                    10,
                    &format!(
                        "priority=90,arp,reg14={p:#x},{md},dl_src={m},arp_spa={a},arp_sha={m} \
                     actions=resubmit(,11)"
                    ),
                );
            }
            w(
                s,
                10,
                &format!("priority=80,arp,reg14={p:#x},{md} actions=drop"),
            );
            // ARP responder
            if !a.contains('/') {
                w(
                    s,
                    27,
                    &format!(
                        "priority=50,arp,{md},arp_tpa={a},arp_op=1 \
                     actions=move:NXM_OF_ETH_SRC[]->NXM_OF_ETH_DST[],set_field:{m}->eth_src,\
                     set_field:2->arp_op,move:NXM_NX_ARP_SHA[]->NXM_NX_ARP_THA[],\
                     set_field:{m}->arp_sha,move:NXM_OF_ARP_SPA[]->NXM_OF_ARP_TPA[],\
                     set_field:{a}->arp_spa,move:NXM_NX_REG14[]->NXM_NX_REG15[],\
                     set_field:0x1/0x1->reg10,resubmit(,37)"
                    ),
                );
            }
            // L2 lookup
            w(
                s,
                33,
                &format!(
                    "priority=50,{md},dl_dst={m} actions=set_field:{p:#x}->reg15,resubmit(,37)"
                ),
            );
            if local {
                w(
                    s,
                    40,
                    &format!(
                        "priority=100,reg15={p:#x},{md} actions=set_field:{zone:#x}->reg13,\
                     set_field:0x4->reg11,set_field:0x3->reg12,resubmit(,41)"
                    ),
                );
                w(
                    s,
                    41,
                    &format!(
                        "priority=100,reg10=0/0x1,reg14={p:#x},reg15={p:#x},{md} actions=drop"
                    ),
                );
                w(
                    s,
                    65,
                    &format!("priority=100,reg15={p:#x},{md} actions=output:{port_no}"),
                );
            } else {
                // remote: the tunnel to the chassis that has it
                w(
                    s,
                    37,
                    &format!(
                    "priority=100,reg15={p:#x},{md} actions=set_field:{dp:#x}/0xffffff->tun_id,\
                     move:NXM_NX_REG14[0..14]->NXM_NX_TUN_ID[0..14],output:{}",
                    60000 + dp % 16),
                );
            }
            // egress port security
            if !a.contains('/') {
                w(
                    s,
                    49,
                    &format!(
                    "priority=90,ip,reg15={p:#x},{md},dl_dst={m},nw_dst={a} actions=resubmit(,50)"),
                );
                w(
                    s,
                    49,
                    &format!("priority=80,ip,reg15={p:#x},{md} actions=drop"),
                );
            }
            if !test {
                // stateful per-port ACLs (from-lport allow-related, to-lport conjunctions)
                w(
                    s,
                    16,
                    &format!(
                        "priority=2001,ip,reg0=0x100/0x100,reg14={p:#x},{md},nw_src={}/24 \
                     actions=resubmit(,17)",
                        ip(dp, 0)
                    ),
                );
                let id = dp * 1000 + p;
                w(
                    s,
                    46,
                    &format!(
                        "priority=2001,tcp,reg0=0x100/0x100,reg15={p:#x},{md},nw_src={} \
                     actions=conjunction({id},1/2)",
                        ip(dp, (p % self.ports.max(1)) + 1)
                    ),
                );
                w(
                    s,
                    46,
                    &format!(
                        "priority=2001,tcp,reg0=0x100/0x100,reg15={p:#x},{md},tp_dst={} \
                     actions=conjunction({id},2/2)",
                        8000 + p
                    ),
                );
                w(
                    s,
                    46,
                    &format!(
                        "priority=2001,conj_id={id},tcp,reg0=0x100/0x100,reg15={p:#x},{md} \
                     actions=resubmit(,47)"
                    ),
                );
            }
        }
        // per datapath: OVN's fixed flows
        w(
            s,
            8,
            &format!("priority=100,{md},vlan_tci=0x1000/0x1000 actions=drop"),
        );
        w(
            s,
            8,
            &format!("priority=100,{md},dl_src=01:00:00:00:00:00/01:00:00:00:00:00 actions=drop"),
        );
        for (t, next) in [(9, 10), (10, 11), (11, 12)] {
            w(s, t, &format!("priority=0,{md} actions=resubmit(,{next})"));
        }
        for (t, next) in [(12u8, 13u8), (42, 43)] {
            // pre-ACL: DHCPv6 / ND / MLD go around conntrack
            w(s, t, &format!("priority=110,{md},dl_dst=01:00:00:00:00:00/01:00:00:00:00:00 actions=resubmit(,{next})"));
            w(
                s,
                t,
                &format!("priority=110,udp6,{md},tp_src=546,tp_dst=547 actions=resubmit(,{next})"),
            );
            for ty in [130, 131, 132] {
                w(s, t, &format!("priority=110,icmp6,{md},ipv6_src=fe80::/10,icmp_type={ty} actions=resubmit(,{next})"));
            }
            for ty in [133, 134, 135, 136] {
                w(s, t, &format!("priority=110,icmp6,{md},nw_ttl=255,icmp_type={ty},icmp_code=0 actions=resubmit(,{next})"));
            }
            if !test {
                w(s, t, &format!("priority=100,ip,{md} actions=set_field:0x1000000000000000000000000/0x1000000000000000000000000->xxreg0,resubmit(,{next})"));
                w(s, t, &format!("priority=100,ipv6,{md} actions=set_field:0x1000000000000000000000000/0x1000000000000000000000000->xxreg0,resubmit(,{next})"));
            }
            w(s, t, &format!("priority=0,{md} actions=resubmit(,{next})"));
        }
        for (t, next) in [(13u8, 14u8), (43, 44)] {
            w(
                s,
                t,
                &format!("priority=110,reg0=0x10000/0x10000,{md} actions=resubmit(,{next})"),
            );
            w(s, t, &format!("priority=0,{md} actions=resubmit(,{next})"));
        }
        for (t, next) in [(14u8, 15u8), (44, 45)] {
            // pre-stateful: into conntrack when the pre-ACL asked for it
            if !test {
                w(s, t, &format!("priority=110,ip,reg0=0x4/0x4,{md} actions=ct(table={next},zone=NXM_NX_REG13[0..15],nat)"));
                w(s, t, &format!("priority=100,ip,reg0=0x1/0x1,{md} actions=ct(table={next},zone=NXM_NX_REG13[0..15])"));
            }
            w(s, t, &format!("priority=0,{md} actions=resubmit(,{next})"));
        }
        for (t, next) in [(15u8, 16u8), (45, 46)] {
            // ACL hints from the conntrack state
            if !test {
                w(s, t, &format!("priority=7,ct_state=+new-est+trk,{md} actions=set_field:0x80/0x80->reg0,set_field:0x200/0x200->reg0,resubmit(,{next})"));
                w(s, t, &format!("priority=5,ct_state=-trk,{md} actions=set_field:0x100/0x100->reg0,set_field:0x200/0x200->reg0,resubmit(,{next})"));
                w(s, t, &format!("priority=3,ct_state=-est+trk,{md} actions=set_field:0x200/0x200->reg0,resubmit(,{next})"));
                w(s, t, &format!("priority=1,ct_state=+est+trk,{md} actions=set_field:0x400/0x400->reg0,resubmit(,{next})"));
            }
            w(s, t, &format!("priority=0,{md} actions=resubmit(,{next})"));
        }
        if test {
            // ingress ACL: allow from the address set, default deny
            for i in 0..self.addrs {
                w(
                    s,
                    16,
                    &format!(
                        "priority=2002,udp,reg14=0x1,{md},nw_src={} \
                     actions=set_field:0x2/0x2->reg0,resubmit(,17)",
                        ovn_src_ip(i)
                    ),
                );
            }
            w(s, 16, &format!("priority=0,{md} actions=drop"));
            // egress ACL: a conjunction (source prefix x destination port set), default deny
            w(s, 46, &format!("priority=2001,udp,reg15=0x2,{md},nw_src=198.18.0.0/16 actions=conjunction(7,1/2)"));
            for port in [9, 53, 123, 514] {
                w(
                    s,
                    46,
                    &format!(
                        "priority=2001,udp,reg15=0x2,{md},tp_dst={port} actions=conjunction(7,2/2)"
                    ),
                );
            }
            w(
                s,
                46,
                &format!("priority=2001,conj_id=7,udp,{md} actions=resubmit(,47)"),
            );
            w(s, 46, &format!("priority=0,{md} actions=drop"));
        } else {
            for t in [16u8, 46] {
                w(
                    s,
                    t,
                    &format!("priority=65532,ct_state=+inv+trk,{md} actions=drop"),
                );
                w(s, t, &format!("priority=1,ct_state=-est+trk,ip,{md} actions=set_field:0x2/0x2->reg0,resubmit(,{})", t + 1));
                w(
                    s,
                    t,
                    &format!("priority=0,{md} actions=resubmit(,{})", t + 1),
                );
            }
        }
        for t in (17u8..=25).chain([28, 29, 30, 31, 32, 47, 48]) {
            w(
                s,
                t,
                &format!("priority=0,{md} actions=resubmit(,{})", t + 1),
            );
        }
        for (t, next) in [(26u8, 27u8), (49, 50)] {
            if !test {
                w(s, t, &format!("priority=100,ip,reg0=0x2/0x2002,{md} actions=ct(commit,zone=NXM_NX_REG13[0..15]),resubmit(,{next})"));
            }
            if t == 49 {
                w(s, t, &format!("priority=0,{md} actions=resubmit(,{next})"));
            }
        }
        if !test {
            // a load balancer VIP per datapath
            w(s, 21, &format!(
                "priority=120,ct_state=+new+trk,tcp,{md},nw_dst=172.16.{}.{},tp_dst=80 \
                 actions=set_field:0x8/0x8->reg10,ct(commit,table=22,zone=NXM_NX_REG13[0..15],nat(dst={}:8080))",
                (dp >> 8) & 0xff, dp & 0xff, ip(dp, 1)));
        }
        w(s, 26, &format!("priority=0,{md} actions=resubmit(,27)"));
        w(s, 27, &format!("priority=0,{md} actions=resubmit(,28)"));
        w(s, 33, &format!("priority=70,{md},dl_dst=01:00:00:00:00:00/01:00:00:00:00:00 actions=set_field:0x8000->reg15,resubmit(,37)"));
        w(
            s,
            33,
            &format!("priority=0,{md} actions=set_field:0->reg15,resubmit(,34)"),
        );
        w(s, 34, &format!("priority=50,reg15=0,{md} actions=drop"));
        w(s, 34, &format!("priority=0,{md} actions=resubmit(,37)"));
        w(s, 50, &format!("priority=100,{md},dl_dst=01:00:00:00:00:00/01:00:00:00:00:00 actions=resubmit(,51)"));
        w(s, 50, &format!("priority=0,{md} actions=resubmit(,51)"));
        w(
            s,
            51,
            &format!("priority=50,reg0=0x8000/0x8000,{md} actions=drop"),
        );
        w(s, 51, &format!("priority=0,{md} actions=resubmit(,64)"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    /// (table, priority, match) of a flow line: what makes two flows the same flow. IPv4
    /// prefixes are masked (10.0.0.5/24 and 10.0.0.6/24 are the same match).
    fn identity(l: &str) -> String {
        let m = l.split(" actions=").next().unwrap_or("");
        m.split(',')
            .filter(|f| !f.starts_with("cookie="))
            .map(|f| {
                let Some((k, v)) = f.split_once('=') else {
                    return f.to_string();
                };
                let Some((a, n)) = v.split_once('/') else {
                    return f.to_string();
                };
                match (a.parse::<std::net::Ipv4Addr>(), n.parse::<u32>()) {
                    (Ok(a), Ok(n)) if n <= 32 => {
                        let m = if n == 0 { 0 } else { u32::MAX << (32 - n) };
                        format!("{k}={}/{n}", std::net::Ipv4Addr::from(u32::from(a) & m))
                    }
                    _ => f.to_string(),
                }
            })
            .collect::<Vec<_>>()
            .join(",")
    }

    #[test]
    fn ovn_like_flows_are_distinct_and_spread() {
        let f = ovn_like(20_000, &[]);
        let lines: Vec<&str> = f.text.lines().collect();
        assert_eq!(lines.len(), 20_000);
        assert_eq!(f.kinds.iter().map(|k| k.1).sum::<usize>(), 20_000);
        let ids: HashSet<String> = lines.iter().map(|l| identity(l)).collect();
        assert_eq!(ids.len(), lines.len(), "every flow is distinct");
        assert!(f.tables.len() >= 40, "{} tables", f.tables.len());
        assert!(lines.iter().all(|l| l.contains(" actions=")));
        assert!(lines.iter().any(|l| l.contains("conjunction(")));
        assert!(lines.iter().any(|l| l.contains("conj_id=")));
    }

    #[test]
    fn ovn_like_is_deterministic_and_distinct_at_full_size() {
        let a = ovn_like(100_000, &[]);
        assert_eq!(a.text, ovn_like(100_000, &[]).text);
        let ids: HashSet<String> = a.text.lines().map(identity).collect();
        assert_eq!(ids.len(), 100_000);
        let ex = ["arp_responder".to_string(), "route".to_string()];
        let b = ovn_like(100_000, &ex);
        assert_eq!(b.text.lines().count(), 100_000);
        assert!(!b.text.contains("arp_op=1") && !b.text.contains("dec_ttl"));
        let ids: HashSet<String> = b.text.lines().map(identity).collect();
        assert_eq!(ids.len(), 100_000);
    }

    #[test]
    fn miss_pipeline_has_a_chain_of_tables() {
        let s = miss_pipeline(1000..1100, 10, 5, "02:00:00:00:00:01", "02:00:00:00:00:02");
        let lines: Vec<&str> = s.lines().collect();
        assert_eq!(lines.iter().filter(|l| l.contains("tp_dst=")).count(), 100);
        for t in 1..9 {
            assert!(
                lines.iter().any(|l| l.starts_with(&format!("table={t},"))
                    && l.contains(&format!("resubmit(,{})", t + 1))),
                "table {t} resubmits"
            );
        }
        assert!(lines
            .iter()
            .any(|l| l.starts_with("table=9,") && l.ends_with("actions=output:2")));
        let ids: HashSet<String> = lines.iter().map(|l| identity(l)).collect();
        assert_eq!(ids.len(), lines.len());
    }
}
