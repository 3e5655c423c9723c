//! Parsers for the control-socket texts the tests assert on.

use std::collections::BTreeMap;

/// `coverage/show`: every "name   total: N" line. Events that never happened are not listed
/// by the daemon; [`Coverage::get`] reads them as 0.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Coverage(pub BTreeMap<String, u64>);

impl Coverage {
    pub fn parse(text: &str) -> Coverage {
        let mut m = BTreeMap::new();
        for line in text.lines() {
            if let Some((name, rest)) = line.split_once("total:") {
                let name = name.trim();
                if let (false, Ok(v)) = (name.is_empty(), rest.trim().parse::<u64>()) {
                    m.insert(name.to_string(), v);
                }
            }
        }
        Coverage(m)
    }

    pub fn get(&self, name: &str) -> u64 {
        self.0.get(name).copied().unwrap_or(0)
    }
}

/// The UMEM frame accounting line of one PMD in `pmd/stats`:
/// "umem frames: total T free F fill X tx Y unaccounted Z".
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Umem {
    pub total: u64,
    pub free: u64,
    pub fill: u64,
    pub tx: u64,
    pub unaccounted: i64,
}

/// One [`Umem`] per PMD, in order.
pub fn parse_umem(text: &str) -> Vec<Umem> {
    let mut v = Vec::new();
    for line in text.lines() {
        let Some((_, rest)) = line.split_once("umem frames:") else {
            continue;
        };
        let toks: Vec<&str> = rest.split_whitespace().collect();
        let mut u = Umem::default();
        for pair in toks.chunks(2) {
            if let [k, val] = pair {
                match *k {
                    "total" => u.total = val.parse().unwrap_or(0),
                    "free" => u.free = val.parse().unwrap_or(0),
                    "fill" => u.fill = val.parse().unwrap_or(0),
                    "tx" => u.tx = val.parse().unwrap_or(0),
                    "unaccounted" => u.unaccounted = val.parse().unwrap_or(i64::MIN),
                    _ => {}
                }
            }
        }
        v.push(u);
    }
    v
}

/// Sums a "key: N" line (e.g. "packets received") over the PMDs of a `pmd/stats` text.
pub fn pmd_counter(text: &str, key: &str) -> u64 {
    text.lines()
        .filter_map(|l| l.trim().strip_prefix(key)?.strip_prefix(':'))
        .filter_map(|r| r.split_whitespace().next()?.parse::<u64>().ok())
        .sum()
}

/// One port of `dpif/show`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DpifPort {
    pub bridge: String,
    pub name: String,
    pub ofport: u32,
    /// The key=value options in parentheses: queues, xdp, bind, driver, link, csum-complete...
    pub opts: BTreeMap<String, String>,
    pub rx_packets: u64,
    pub rx_bytes: u64,
    pub rx_dropped: u64,
    /// AF_XDP socket statistics (XDP_STATISTICS), summed over the port's sockets.
    pub kernel_dropped: u64,
    pub kernel_ring_full: u64,
    pub kernel_fill_empty: u64,
    pub tx_packets: u64,
    pub tx_bytes: u64,
    pub tx_dropped: u64,
}

impl DpifPort {
    pub fn opt(&self, k: &str) -> &str {
        self.opts.get(k).map(String::as_str).unwrap_or("")
    }
}

fn kv(s: &str, sep: char) -> BTreeMap<String, String> {
    s.split(|c: char| c.is_whitespace() || c == ',' || c == '(' || c == ')')
        .filter_map(|t| t.split_once(sep))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// Parses `dpif/show`.
pub fn parse_dpif(text: &str) -> Vec<DpifPort> {
    let mut ports: Vec<DpifPort> = Vec::new();
    let mut bridge = String::new();
    for line in text.lines() {
        let t = line.trim();
        if line.starts_with("  ") && !line.starts_with("   ") && t.ends_with(':') {
            bridge = t.trim_end_matches(':').to_string();
        } else if t.contains("(afxdp:") {
            let mut it = t.split_whitespace();
            let name = it.next().unwrap_or("").to_string();
            let ofport = it
                .next()
                .and_then(|n| n.split('/').next())
                .and_then(|n| n.parse().ok())
                .unwrap_or(0);
            let inner = t.split_once("(afxdp:").map(|x| x.1).unwrap_or("");
            ports.push(DpifPort {
                bridge: bridge.clone(),
                name,
                ofport,
                opts: kv(inner, '='),
                ..Default::default()
            });
        } else if let (Some(p), Some(rest)) = (ports.last_mut(), t.strip_prefix("RX ")) {
            let (own, kernel) = rest.split_once("(kernel:").unwrap_or((rest, ""));
            let a = kv(own, ':');
            let k = kv(kernel, ':');
            let n = |m: &BTreeMap<String, String>, key: &str| -> u64 {
                m.get(key).and_then(|v| v.parse().ok()).unwrap_or(0)
            };
            p.rx_packets = n(&a, "packets");
            p.rx_bytes = n(&a, "bytes");
            p.rx_dropped = n(&a, "dropped");
            p.kernel_dropped = n(&k, "dropped");
            p.kernel_ring_full = n(&k, "ring_full");
            p.kernel_fill_empty = n(&k, "fill_empty");
        } else if let (Some(p), Some(rest)) = (ports.last_mut(), t.strip_prefix("TX ")) {
            let a = kv(rest, ':');
            let n = |key: &str| -> u64 { a.get(key).and_then(|v| v.parse().ok()).unwrap_or(0) };
            p.tx_packets = n("packets");
            p.tx_bytes = n("bytes");
            p.tx_dropped = n("dropped");
        }
    }
    ports
}

/// One `fdb/show` entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FdbEntry {
    pub port: String,
    pub vlan: u16,
    pub mac: String,
    pub age: u64,
}

/// Parses `fdb/show BR` (" port  VLAN  MAC                Age" then one line per entry).
pub fn parse_fdb(text: &str) -> Vec<FdbEntry> {
    text.lines()
        .skip_while(|l| !l.contains("MAC"))
        .skip(1)
        .filter_map(|l| {
            let t: Vec<&str> = l.split_whitespace().collect();
            if t.len() < 4 {
                return None;
            }
            Some(FdbEntry {
                port: t[0].to_string(),
                vlan: t[1].parse().ok()?,
                mac: t[2].to_lowercase(),
                age: t[3].parse().ok()?,
            })
        })
        .collect()
}

/// One direction's tuple of a conntrack entry in `dpctl/dump-conntrack`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CtTuple {
    pub src: std::net::IpAddr,
    pub dst: std::net::IpAddr,
    /// TCP/UDP ports (none for ICMP).
    pub sport: Option<u16>,
    pub dport: Option<u16>,
}

/// One line of `ovs-appctl dpctl/dump-conntrack`, as OVS prints it:
/// `tcp,orig=(src=A,dst=B,sport=P,dport=Q),reply=(src=..),zone=Z,mark=M,protoinfo=(state=S)`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CtEntry {
    pub proto: String,
    pub orig: CtTuple,
    pub reply: CtTuple,
    pub zone: u16,
    pub mark: u32,
    /// The TCP state (`protoinfo=(state=...)`), if any.
    pub state: Option<String>,
}

fn ct_group<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    let start = line.find(&format!("{key}=("))? + key.len() + 2;
    let len = line[start..].find(')')?;
    Some(&line[start..start + len])
}

fn ct_kv<'a>(group: &'a str, key: &str) -> Option<&'a str> {
    group
        .split(',')
        .find_map(|kv| kv.strip_prefix(key)?.strip_prefix('='))
}

fn ct_tuple(group: &str) -> Option<CtTuple> {
    Some(CtTuple {
        src: ct_kv(group, "src")?.parse().ok()?,
        dst: ct_kv(group, "dst")?.parse().ok()?,
        sport: ct_kv(group, "sport").and_then(|v| v.parse().ok()),
        dport: ct_kv(group, "dport").and_then(|v| v.parse().ok()),
    })
}

/// `dpctl/dump-conntrack`: every line that parses (others, such as headers, are skipped).
pub fn parse_conntrack(text: &str) -> Vec<CtEntry> {
    text.lines()
        .filter_map(|line| {
            let line = line.trim();
            let (proto, _) = line.split_once(',')?;
            // the top-level fields, outside the parenthesised groups
            let mut top = String::new();
            let mut depth = 0;
            for c in line.chars() {
                match c {
                    '(' => depth += 1,
                    ')' => depth -= 1,
                    _ if depth == 0 => top.push(c),
                    _ => {}
                }
            }
            Some(CtEntry {
                proto: proto.to_string(),
                orig: ct_tuple(ct_group(line, "orig")?)?,
                reply: ct_tuple(ct_group(line, "reply")?)?,
                zone: ct_kv(&top, "zone")
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(0),
                mark: ct_kv(&top, "mark")
                    .and_then(|v| match v.strip_prefix("0x") {
                        Some(h) => u32::from_str_radix(h, 16).ok(),
                        None => v.parse().ok(),
                    })
                    .unwrap_or(0),
                state: ct_group(line, "protoinfo")
                    .and_then(|g| ct_kv(g, "state"))
                    .map(str::to_string),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const DPIF: &str = "netdev@xvs-netdev: hit:2 missed:4
  br0:
    mxs1 1/0: (afxdp: queues=1, xdp=drv, bind=copy, need_wakeup=true, driver=veth, link=up, csum-complete=true)
      RX packets:3 bytes:238 dropped:1 (kernel: dropped:4 ring_full:5 fill_empty:6)
      TX packets:7 bytes:238 dropped:8
    mxs2 2/1: (afxdp: queues=1, xdp=skb, bind=copy, need_wakeup=true, driver=tun, link=down, csum-complete=false)
      RX packets:0 bytes:0 dropped:0 (kernel: dropped:0 ring_full:0 fill_empty:0)
      TX packets:0 bytes:0 dropped:0
";

    #[test]
    fn dpif_show() {
        let p = parse_dpif(DPIF);
        assert_eq!(p.len(), 2);
        assert_eq!(
            (p[0].bridge.as_str(), p[0].name.as_str(), p[0].ofport),
            ("br0", "mxs1", 1)
        );
        assert_eq!(p[0].opt("xdp"), "drv");
        assert_eq!(p[0].opt("csum-complete"), "true");
        assert_eq!(
            (
                p[0].rx_packets,
                p[0].rx_dropped,
                p[0].kernel_dropped,
                p[0].kernel_ring_full
            ),
            (3, 1, 4, 5)
        );
        assert_eq!(
            (p[0].kernel_fill_empty, p[0].tx_packets, p[0].tx_dropped),
            (6, 7, 8)
        );
        assert_eq!(
            (p[1].ofport, p[1].opt("xdp"), p[1].opt("link")),
            (2, "skb", "down")
        );
    }

    #[test]
    fn coverage_umem_fdb() {
        let c = Coverage::parse(
            "Event coverage (totals since start):\nupcall                           total: 4\n\
             csum_partial_completed           total: 1000\n19 events never hit\n",
        );
        assert_eq!(c.get("upcall"), 4);
        assert_eq!(c.get("csum_partial_completed"), 1000);
        assert_eq!(c.get("drop_by_flow"), 0);
        let u = parse_umem(
            "pmd thread numa_id 0 core_id any (idle policy Sleep):\n  packets received: 6\n  \
             umem frames: total 8192 free 4102 fill 4090 tx 0 unaccounted 0\n\
             pmd thread numa_id 0 core_id 1:\n  packets received: 4\n  \
             umem frames: total 4096 free 1 fill 2 tx 3 unaccounted -4\n",
        );
        assert_eq!(
            u,
            vec![
                Umem {
                    total: 8192,
                    free: 4102,
                    fill: 4090,
                    tx: 0,
                    unaccounted: 0
                },
                Umem {
                    total: 4096,
                    free: 1,
                    fill: 2,
                    tx: 3,
                    unaccounted: -4
                }
            ]
        );
        let f = parse_fdb(
            " port  VLAN  MAC                Age\n    1     0  2a:b1:a6:9f:32:d0    0\n    2     0  16:4a:f8:55:dd:25   12\n",
        );
        assert_eq!(f.len(), 2);
        assert_eq!(
            (f[1].port.as_str(), f[1].mac.as_str(), f[1].age),
            ("2", "16:4a:f8:55:dd:25", 12)
        );
    }

    #[test]
    fn pmd_counters_sum_over_pmds() {
        let t = "pmd a:\n  packets received: 6\n  packets sent: 1\npmd b:\n  packets received: 4\n";
        assert_eq!(pmd_counter(t, "packets received"), 10);
        assert_eq!(pmd_counter(t, "packets sent"), 1);
    }

    #[test]
    fn conntrack_dump_lines_parse() {
        // as stock ovs-vswitchd 3.1 printed them for an OVN router SNAT and a load balancer
        let text = "tcp,orig=(src=10.0.0.1,dst=172.16.0.254,sport=58956,dport=8080),reply=(src=172.16.0.254,dst=172.16.0.100,sport=8080,dport=58956),zone=1,protoinfo=(state=TIME_WAIT)\n\
            icmp,orig=(src=10.0.0.1,dst=172.16.0.254,id=5853,type=8,code=0),reply=(src=172.16.0.254,dst=172.16.0.100,id=5853,type=0,code=0),zone=1\n\
            tcp,orig=(src=10.0.0.1,dst=172.30.0.10,sport=34724,dport=80),reply=(src=10.0.0.12,dst=10.0.0.1,sport=8080,dport=34724),zone=7,mark=2,protoinfo=(state=ESTABLISHED)\n\
            not a conntrack line\n";
        let e = parse_conntrack(text);
        assert_eq!(e.len(), 3);
        assert_eq!(e[0].proto, "tcp");
        assert_eq!(e[0].orig.dport, Some(8080));
        assert_eq!(e[0].reply.dst.to_string(), "172.16.0.100");
        assert_eq!(e[0].state.as_deref(), Some("TIME_WAIT"));
        assert_eq!(e[1].proto, "icmp");
        assert_eq!(
            (e[1].orig.sport, e[1].zone, e[1].state.clone()),
            (None, 1, None)
        );
        assert_eq!((e[2].zone, e[2].mark), (7, 2));
        assert_eq!(e[2].reply.src.to_string(), "10.0.0.12");
    }
}
