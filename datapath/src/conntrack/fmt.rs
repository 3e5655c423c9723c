//! `dpctl/dump-conntrack` and `dpctl/ct-stats-show` text, in ovs-appctl's formats
//! (lib/ct-dpif.c ct_dpif_format_entry, lib/dpctl.c dpctl_ct_stats_show), so scripts and
//! people reading OVS output read ours the same way.

use std::fmt::Write;

use super::tcp;
use super::{Key, L4State};
use crate::packet::ipproto;

/// A connection as a dump sees it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Entry {
    pub fwd: Key,
    pub rev: Key,
    pub mark: u32,
    pub label: u128,
    pub l4: L4State,
    #[allow(dead_code)]
    pub expires: u64,
}

fn proto_name(p: u8) -> Option<&'static str> {
    Some(match p {
        ipproto::ICMP => "icmp",
        ipproto::ICMPV6 => "icmpv6",
        ipproto::TCP => "tcp",
        ipproto::UDP => "udp",
        ipproto::SCTP => "sctp",
        136 => "udplite",
        33 => "dccp",
        2 => "igmp",
        _ => return None,
    })
}

fn tuple(s: &mut String, k: &Key) {
    let _ = write!(s, "src={},dst={}", k.addr(&k.src), k.addr(&k.dst));
    if k.proto == ipproto::ICMP || k.proto == ipproto::ICMPV6 {
        let _ = write!(
            s,
            ",id={},type={},code={}",
            k.sport, k.icmp_type, k.icmp_code
        );
    } else {
        let _ = write!(s, ",sport={},dport={}", k.sport, k.dport);
    }
}

/// One line of `ovs-appctl dpctl/dump-conntrack` (non-verbose, no stats).
pub(crate) fn entry_line(e: &Entry) -> String {
    let mut s = String::with_capacity(160);
    match proto_name(e.fwd.proto) {
        Some(n) => s.push_str(n),
        None => {
            let _ = write!(s, "{}", e.fwd.proto);
        }
    }
    s.push_str(",orig=(");
    tuple(&mut s, &e.fwd);
    s.push_str("),reply=(");
    tuple(&mut s, &e.rev);
    s.push(')');
    if e.fwd.zone != 0 {
        let _ = write!(s, ",zone={}", e.fwd.zone);
    }
    if e.mark != 0 {
        let _ = write!(s, ",mark={}", e.mark);
    }
    if e.label != 0 {
        // OVS prints the 128-bit label big-endian without leading zero bytes
        let _ = write!(s, ",labels={:#x}", e.label);
    }
    if let L4State::Tcp(peers) = e.l4 {
        let st = tcp::display_state(peers) as usize;
        let _ = write!(
            s,
            ",protoinfo=(state={})",
            tcp::STATE_NAMES.get(st).copied().unwrap_or("?")
        );
    }
    s
}

/// `ovs-appctl dpctl/ct-stats-show` output.
pub(crate) fn stats_show(entries: &[Entry]) -> String {
    let (mut tcp_n, mut udp, mut udplite, mut sctp, mut icmp, mut dccp, mut igmp, mut other) =
        (0, 0, 0, 0, 0, 0, 0, 0);
    for e in entries {
        match e.fwd.proto {
            ipproto::TCP => tcp_n += 1,
            ipproto::UDP => udp += 1,
            136 => udplite += 1,
            ipproto::SCTP => sctp += 1,
            ipproto::ICMP => icmp += 1,
            ipproto::ICMPV6 => {} // counted in the total only, as OVS does
            33 => dccp += 1,
            2 => igmp += 1,
            _ => other += 1,
        }
    }
    let mut s = format!("Connections Stats:\n    Total: {}\n", entries.len());
    for (name, n) in [
        ("TCP", tcp_n),
        ("UDP", udp),
        ("UDPLITE", udplite),
        ("SCTP", sctp),
        ("ICMP", icmp),
        ("DCCP", dccp),
        ("IGMP", igmp),
        ("Other", other),
    ] {
        if n != 0 {
            let _ = writeln!(s, "  {name}: {n}");
        }
    }
    s
}
