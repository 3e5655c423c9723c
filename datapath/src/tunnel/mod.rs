//! Native tunnelling, as OVS's userspace datapath does it (Documentation/howto/
//! userspace-tunneling.rst): the switch itself builds and strips the outer Ethernet, IPv4, UDP
//! and Geneve headers; the kernel only provides the routing table and the addresses of the
//! bridges' internal (LOCAL) ports.
//!
//! - Encap: translation of an output to a tunnel port looks the remote end up in the routing
//!   table, which must lead out of the LOCAL port of one of our bridges (the "underlay" bridge,
//!   br-phy in OVN's setups). The next hop's MAC comes from the switch's own neighbour cache.
//!   The datapath actions are: push the prebuilt header ([`TunnelHeader`]), then the underlay
//!   bridge's translation of the outer packet as if it came in on its LOCAL port (NORMAL sends
//!   it out of the underlay NIC), then strip the header again so later actions see the inner
//!   packet. All in one datapath flow, cached like any other.
//! - Decap: when a bridge's translation outputs to its LOCAL port a UDP packet to one of that
//!   port's addresses and a tunnel port's UDP port, a [`DpAction::TunnelPop`] replaces the
//!   output. The PMD strips the outer headers, picks the tunnel port by the outer source
//!   address (exact `remote_ip` first, then `remote_ip=flow`), and runs the inner frame through
//!   the cache again with in_port = that port and the tunnel fields set (OVS's tnl_pop and
//!   recirculation).
//! - Neighbours: ARP replies (and gratuitous ARPs) a bridge sends to its LOCAL port are snooped
//!   during translation; a miss makes the control thread send an ARP request from the LOCAL
//!   port through the bridge's pipeline. Both travel from PMDs to the control thread through a
//!   lock-free [`Mailbox`]; the control thread owns the cache and publishes it with the
//!   configuration snapshot (a change invalidates cached flows, which embed next-hop MACs).
//!
//! [`DpAction::TunnelPop`]: crate::pipeline::DpAction::TunnelPop

pub mod control;

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::sync::Arc;

use crate::packet::checksum;
use crate::packet::geneve::{self, GeneveOpt};
use crate::packet::key::Layout;
use crate::packet::{be16, be32, ethertype, ipproto, Mac, Malformed};
use crate::pipeline::DpPort;
use crate::port::tunnel::{TunnelIp, TunnelKey};
use crate::port::{TunnelConfig, TunnelKind};

/// UDP source ports of encapsulated packets, from a hash of the inner flow so that the underlay
/// spreads flows (OVS's defaults: tnl_udp_port_min/max).
pub const SRC_PORT_MIN: u16 = 32768;
pub const SRC_PORT_MAX: u16 = 61000;
/// TTL of the outer header (OVS's default).
pub const TTL: u8 = 64;
/// Outer Ethernet + IPv4 + UDP.
pub const OUTER_LEN: usize = 14 + 20 + 8;
/// Room for the prebuilt header: outer headers, Geneve, one option of up to 8 bytes.
pub const MAX_HEADER: usize = OUTER_LEN + geneve::HEADER_LEN + 12;

/// A tunnel port as translation sees it.
#[derive(Clone, Debug)]
pub struct TnlPort {
    pub dp: DpPort,
    pub ofport: u32,
    pub bridge: u8,
    pub name: String,
    pub kind: TunnelKind,
    pub cfg: TunnelConfig,
}

/// A route of the kernel's main table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Route {
    pub dst: u32,
    pub plen: u8,
    pub gw: Option<u32>,
    pub ifindex: u32,
    pub dev: String,
    pub prefsrc: Option<u32>,
    pub priority: u32,
}

/// A bridge's LOCAL port: where tunnel endpoints live.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LocalIf {
    pub bridge: u8,
    pub dp: DpPort,
    /// The host interface (the bridge's name).
    pub name: String,
    pub ifindex: u32,
    pub mac: Mac,
    pub addrs: Vec<u32>,
    pub mtu: u32,
}

/// Where an option mapped to `tun_metadata0` (by NXT_TLV_TABLE_MOD) lives on the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tlv0 {
    pub class: u16,
    pub typ: u8,
    /// Data bytes (4 for OVN's option; at most 8, the width of our tun_metadata0).
    pub len: u8,
}

/// What translation reads: published with the configuration snapshot.
#[derive(Debug, Default)]
pub struct TnlSnapshot {
    pub ports: Vec<TnlPort>,
    pub routes: Vec<Route>,
    pub locals: Vec<LocalIf>,
    /// Next hop IPv4 → MAC.
    pub neigh: BTreeMap<u32, Mac>,
    /// Per bridge: the TLV mapped to tun_metadata0.
    pub tlv0: Vec<Option<Tlv0>>,
    pub mail: Arc<Mailbox>,
}

impl TnlSnapshot {
    pub fn port_of_dp(&self, dp: DpPort) -> Option<&TnlPort> {
        self.ports.iter().find(|p| p.dp == dp)
    }

    pub fn local_of_dp(&self, dp: DpPort) -> Option<&LocalIf> {
        self.locals.iter().find(|l| l.dp == dp)
    }

    /// Longest-prefix match, then lowest metric (as the kernel's main table).
    pub fn route(&self, dst: u32) -> Option<&Route> {
        route_lookup(&self.routes, dst)
    }
}

pub fn route_lookup(routes: &[Route], dst: u32) -> Option<&Route> {
    routes
        .iter()
        .filter(|r| {
            let m = if r.plen == 0 {
                0
            } else {
                u32::MAX << (32 - r.plen.min(32))
            };
            dst & m == r.dst & m
        })
        .min_by_key(|r| (std::cmp::Reverse(r.plen), r.priority))
}

// ------------------------------------------------------------------------------- mailbox

/// Events from PMDs (translation) to the control thread, without locks: a fixed array of
/// slots, each claimed with one compare-and-swap. When every slot is busy the event is lost
/// (and counted); both kinds repeat on their own (ARP replies are re-snooped, misses recur).
#[derive(Debug)]
pub struct Mailbox {
    slots: Box<[Slot]>,
    /// Set after each post: the control thread drains on every loop round (thousands per
    /// second while it polls for OpenFlow input), and a scan is 64 compare-and-swaps, which
    /// made it a quarter of the control thread's time during `ovs-ofctl add-flows`.
    pending: AtomicBool,
    pub lost: AtomicU64,
}

#[derive(Debug, Default)]
struct Slot {
    /// 0 free, 1 being written, 2 full, 3 being read.
    state: AtomicU8,
    a: AtomicU64,
    b: AtomicU64,
}

/// A mailbox event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Event {
    /// An ARP reply or gratuitous ARP seen on `bridge`'s LOCAL port: `ip` is at `mac`.
    Snoop { bridge: u8, ip: u32, mac: Mac },
    /// Encapsulation needed `ip`'s MAC behind `bridge`'s LOCAL port, whose address `src` is.
    Miss { bridge: u8, ip: u32, src: u32 },
}

impl Default for Mailbox {
    fn default() -> Self {
        Mailbox {
            slots: (0..64).map(|_| Slot::default()).collect(),
            pending: AtomicBool::new(false),
            lost: AtomicU64::new(0),
        }
    }
}

impl Mailbox {
    pub fn post(&self, e: Event) {
        let (a, b) = match e {
            Event::Snoop { bridge, ip, mac } => (
                (1u64 << 56) | ((bridge as u64) << 48) | mac.to_u64(),
                (ip as u64) << 32,
            ),
            Event::Miss { bridge, ip, src } => (
                (2u64 << 56) | ((bridge as u64) << 48),
                ((ip as u64) << 32) | src as u64,
            ),
        };
        for s in self.slots.iter() {
            if s.state
                .compare_exchange(0, 1, Ordering::Acquire, Ordering::Relaxed)
                .is_ok()
            {
                s.a.store(a, Ordering::Relaxed);
                s.b.store(b, Ordering::Relaxed);
                s.state.store(2, Ordering::Release);
                self.pending.store(true, Ordering::Release);
                return;
            }
        }
        self.lost.fetch_add(1, Ordering::Relaxed);
    }

    /// Takes every posted event (control thread).
    pub fn drain(&self, mut f: impl FnMut(Event)) {
        // a post after this swap sets the flag again, so nothing waits longer than one round
        if !self.pending.load(Ordering::Acquire) || !self.pending.swap(false, Ordering::AcqRel) {
            return;
        }
        for s in self.slots.iter() {
            if s.state
                .compare_exchange(2, 3, Ordering::Acquire, Ordering::Relaxed)
                .is_err()
            {
                continue;
            }
            let (a, b) = (s.a.load(Ordering::Relaxed), s.b.load(Ordering::Relaxed));
            s.state.store(0, Ordering::Release);
            let bridge = (a >> 48) as u8;
            match a >> 56 {
                1 => f(Event::Snoop {
                    bridge,
                    ip: (b >> 32) as u32,
                    mac: Mac::from_u64(a & 0xffff_ffff_ffff),
                }),
                2 => f(Event::Miss {
                    bridge,
                    ip: (b >> 32) as u32,
                    src: b as u32,
                }),
                _ => {}
            }
        }
    }
}

// ------------------------------------------------------------------------------- encap

/// A prebuilt tunnel header: outer Ethernet, IPv4 (DF, TTL 64, lengths and checksum filled per
/// packet), UDP (source port and length per packet) and Geneve with its options.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TunnelHeader {
    pub bytes: [u8; MAX_HEADER],
    pub len: u8,
    pub csum: bool,
    /// Largest outer IP packet the underlay takes (the MTU of the LOCAL port the route leads
    /// out of); a bigger one is dropped and counted, never sent truncated or fragmented.
    pub mtu: u32,
    /// The tunnel port (its TX counters).
    pub port: DpPort,
}

/// What an encapsulation needs, resolved by translation.
#[derive(Clone, Debug)]
pub struct EncapParams<'a> {
    pub src_mac: Mac,
    pub dst_mac: Mac,
    pub src_ip: u32,
    pub dst_ip: u32,
    pub tos: u8,
    pub dst_port: u16,
    pub vni: u32,
    pub csum: bool,
    pub opts: &'a [GeneveOpt<'a>],
    pub mtu: u32,
    pub port: DpPort,
}

impl TunnelHeader {
    /// Builds the header; `None` when the options do not fit.
    pub fn build(p: &EncapParams) -> Option<TunnelHeader> {
        let olen: usize = p.opts.iter().map(|o| o.wire_len()).sum();
        let len = OUTER_LEN + geneve::HEADER_LEN + olen;
        if len > MAX_HEADER {
            return None;
        }
        let mut b = [0u8; MAX_HEADER];
        b[0..6].copy_from_slice(&p.dst_mac.0);
        b[6..12].copy_from_slice(&p.src_mac.0);
        b[12..14].copy_from_slice(&ethertype::IPV4.to_be_bytes());
        let ip = &mut b[14..34];
        ip[0] = 0x45;
        ip[1] = p.tos;
        // total length, id: per packet
        ip[6] = 0x40; // DF, as OVS sets by default (df_default=true)
        ip[8] = TTL;
        ip[9] = ipproto::UDP;
        ip[12..16].copy_from_slice(&p.src_ip.to_be_bytes());
        ip[16..20].copy_from_slice(&p.dst_ip.to_be_bytes());
        b[36..38].copy_from_slice(&p.dst_port.to_be_bytes());
        let g = &mut b[OUTER_LEN..];
        g[0] = (olen / 4) as u8;
        g[2..4].copy_from_slice(&geneve::PROTO_ETHERNET.to_be_bytes());
        g[4..7].copy_from_slice(&p.vni.to_be_bytes()[1..]);
        let mut at = geneve::HEADER_LEN;
        for o in p.opts {
            o.emit(&mut g[at..]);
            at += o.wire_len();
        }
        Some(TunnelHeader {
            bytes: b,
            len: len as u8,
            csum: p.csum,
            mtu: p.mtu,
            port: p.port,
        })
    }

    /// Fills a frame whose first `self.len` bytes are free and whose rest is the inner frame:
    /// copies the header in and completes lengths, the IPv4 ID and checksum, the UDP source
    /// port and (with `csum`) the UDP checksum.
    pub fn push(&self, frame: &mut [u8], ip_id: u16, src_port: u16) {
        let n = self.len as usize;
        frame[..n].copy_from_slice(&self.bytes[..n]);
        let total = (frame.len() - 14) as u16;
        let udp_len = total - 20;
        frame[16..18].copy_from_slice(&total.to_be_bytes());
        frame[18..20].copy_from_slice(&ip_id.to_be_bytes());
        let c = checksum::checksum(&frame[14..34]);
        frame[24..26].copy_from_slice(&c.to_be_bytes());
        frame[34..36].copy_from_slice(&src_port.to_be_bytes());
        frame[38..40].copy_from_slice(&udp_len.to_be_bytes());
        if self.csum {
            let src = [frame[26], frame[27], frame[28], frame[29]];
            let dst = [frame[30], frame[31], frame[32], frame[33]];
            let acc = checksum::pseudo_v4(src, dst, ipproto::UDP, udp_len);
            let mut c = !checksum::fold(checksum::sum(acc, &frame[34..]));
            if c == 0 {
                c = 0xffff; // 0 means "no checksum" in UDP over IPv4
            }
            frame[40..42].copy_from_slice(&c.to_be_bytes());
        }
    }
}

/// The outer UDP source port for an inner frame: a hash of its addresses and ports (the
/// fields the underlay's ECMP would hash had it seen them), in OVS's range.
pub fn src_port(frame: &[u8], lay: &Layout) -> u16 {
    let mut h: u32 = 0x811c_9dc5;
    let mut mix = |b: &[u8]| {
        for &x in b {
            h = (h ^ x as u32).wrapping_mul(0x0100_0193);
        }
    };
    let l3 = lay.l3 as usize;
    let l4 = lay.l4 as usize;
    match lay.ip_version {
        4 if frame.len() >= l3 + 20 => mix(&frame[l3 + 12..l3 + 20]),
        6 if frame.len() >= l3 + 40 => mix(&frame[l3 + 8..l3 + 40]),
        _ => mix(&frame[..12.min(frame.len())]),
    }
    if l4 != 0 && frame.len() >= l4 + 4 {
        mix(&frame[l4..l4 + 4]);
    }
    SRC_PORT_MIN + (h % (SRC_PORT_MAX - SRC_PORT_MIN) as u32) as u16
}

// ------------------------------------------------------------------------------- decap

/// A tunnel port that may receive a popped packet.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecvPort {
    pub dp: DpPort,
    /// Required outer source (`remote_ip`), or any (`remote_ip=flow`).
    pub remote: Option<u32>,
    /// Required outer destination (`local_ip`), or any.
    pub local: Option<u32>,
    /// Required VNI, or any (`key=flow`).
    pub key: Option<u32>,
    pub tlv0: Option<Tlv0>,
}

/// The tunnel ports listening on one UDP port of one endpoint, for [`pop`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TnlRecv {
    pub dst_port: u16,
    pub ports: Vec<RecvPort>,
}

impl TnlRecv {
    pub fn from_snapshot(t: &TnlSnapshot, dst_port: u16) -> TnlRecv {
        let mut ports: Vec<RecvPort> = t
            .ports
            .iter()
            .filter(|p| p.cfg.dst_port == dst_port)
            .map(|p| RecvPort {
                dp: p.dp,
                remote: match p.cfg.remote_ip {
                    TunnelIp::Fixed(ip) => Some(u32::from(ip)),
                    TunnelIp::Flow => None,
                },
                local: match p.cfg.local_ip {
                    Some(TunnelIp::Fixed(ip)) => Some(u32::from(ip)),
                    _ => None,
                },
                key: match p.cfg.key {
                    TunnelKey::Fixed(k) => Some(k),
                    TunnelKey::Flow => None,
                },
                tlv0: t.tlv0.get(p.bridge as usize).copied().flatten(),
            })
            .collect();
        // most specific first: a fixed remote end beats remote_ip=flow (OVS's tnl_find order)
        ports.sort_by_key(|p| (p.remote.is_none(), p.local.is_none(), p.key.is_none()));
        TnlRecv { dst_port, ports }
    }
}

/// The tunnel metadata of a popped packet.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TunMeta {
    pub dp: DpPort,
    pub id: u64,
    pub src: u32,
    pub dst: u32,
    /// tun_metadata0 when the mapped option was present.
    pub meta0: Option<u64>,
    pub oam: bool,
}

/// Why a packet to a tunnel endpoint was dropped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PopError {
    /// Not a well-formed IPv4/UDP/Geneve packet (or an IP fragment, a bad UDP checksum, an
    /// unknown critical option, a payload that is not Ethernet).
    Malformed,
    /// No tunnel port takes this source, destination and key.
    NoPort,
}

impl From<Malformed> for PopError {
    fn from(_: Malformed) -> Self {
        PopError::Malformed
    }
}

/// Parses the outer headers of `frame` (laid out as `lay` says) and picks the receiving port:
/// returns the inner frame's offset and the tunnel metadata.
pub fn pop(frame: &[u8], lay: &Layout, recv: &TnlRecv) -> Result<(usize, TunMeta), PopError> {
    let l3 = lay.l3 as usize;
    if lay.ip_version != 4 || lay.l4 == 0 || frame.len() < l3 + 20 {
        return Err(PopError::Malformed);
    }
    let ip = &frame[l3..];
    let ihl = (ip[0] & 0x0f) as usize * 4;
    let total = be16(ip, 2) as usize;
    if ip[9] != ipproto::UDP || ihl < 20 || total < ihl + 8 || total > ip.len() {
        return Err(PopError::Malformed);
    }
    if be16(ip, 6) & 0x3fff != 0 {
        return Err(PopError::Malformed); // fragments are not reassembled
    }
    let (src, dst) = (be32(ip, 12), be32(ip, 16));
    let udp = &ip[ihl..total];
    let ulen = be16(udp, 4) as usize;
    if ulen < 8 + geneve::HEADER_LEN || ulen > udp.len() || be16(udp, 2) != recv.dst_port {
        return Err(PopError::Malformed);
    }
    let udp = &udp[..ulen];
    if be16(udp, 6) != 0 {
        let s = [ip[12], ip[13], ip[14], ip[15]];
        let d = [ip[16], ip[17], ip[18], ip[19]];
        if !checksum::verify(udp, checksum::pseudo_v4(s, d, ipproto::UDP, ulen as u16)) {
            return Err(PopError::Malformed);
        }
    }
    let g = geneve::Header::new_checked(&udp[8..])?;
    if g.protocol() != geneve::PROTO_ETHERNET || g.payload().len() < 14 {
        return Err(PopError::Malformed);
    }
    let vni = g.vni();
    let port = recv
        .ports
        .iter()
        .find(|p| {
            p.remote.is_none_or(|r| r == src)
                && p.local.is_none_or(|l| l == dst)
                && p.key.is_none_or(|k| k == vni)
        })
        .ok_or(PopError::NoPort)?;
    let mut meta0 = None;
    for o in g.options() {
        let mapped = port
            .tlv0
            .filter(|t| t.class == o.class && t.typ == o.typ && t.len as usize == o.data.len());
        if mapped.is_some() {
            let mut v = 0u64;
            for &b in o.data {
                v = (v << 8) | b as u64;
            }
            meta0 = Some(v);
        } else if o.typ & 0x80 != 0 && !(o.class == geneve::OVN_OPT_CLASS && port.tlv0.is_none()) {
            // RFC 8926 3.5: a critical option the receiver does not understand drops the
            // packet. OVN's option before its TLV mapping arrives is let through, as OVS
            // would once ovn-controller maps it a moment later.
            return Err(PopError::Malformed);
        }
    }
    let inner = l3 + ihl + 8 + g.header_len();
    Ok((
        inner,
        TunMeta {
            dp: port.dp,
            id: vni as u64,
            src,
            dst,
            meta0,
            oam: g.oam(),
        },
    ))
}

/// Formats an IPv4 address held as a number.
pub fn ip_str(ip: u32) -> String {
    Ipv4Addr::from(ip).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::packet::key::{extract, FlowKey};

    const INNER: [u8; 42] = [
        // Ethernet: 02:00:00:00:00:02 <- 02:00:00:00:00:01, IPv4
        0x02, 0, 0, 0, 0, 2, 0x02, 0, 0, 0, 0, 1, 0x08, 0x00, //
        // IPv4 10.0.0.1 -> 10.0.0.2 UDP, 28 bytes
        0x45, 0, 0, 28, 0, 1, 0, 0, 64, 17, 0x66, 0xcd, 10, 0, 0, 1, 10, 0, 0, 2, //
        // UDP 1000 -> 2000, no payload
        0x03, 0xe8, 0x07, 0xd0, 0, 8, 0, 0,
    ];

    fn params<'a>(opts: &'a [GeneveOpt<'a>], csum: bool) -> EncapParams<'a> {
        EncapParams {
            src_mac: Mac([0xaa, 0, 0, 0, 0, 1]),
            dst_mac: Mac([0xaa, 0, 0, 0, 0, 2]),
            src_ip: u32::from(Ipv4Addr::new(172, 31, 0, 1)),
            dst_ip: u32::from(Ipv4Addr::new(172, 31, 0, 2)),
            tos: 0,
            dst_port: 6081,
            vni: 5,
            csum,
            opts,
            mtu: 1500,
            port: 7,
        }
    }

    fn encap(h: &TunnelHeader) -> Vec<u8> {
        let mut f = vec![0u8; h.len as usize];
        f.extend_from_slice(&INNER);
        h.push(&mut f, 0x1234, 40000);
        f
    }

    #[test]
    fn push_builds_the_expected_bytes() {
        let data = [0, 1, 0, 2];
        let opts = [GeneveOpt {
            class: geneve::OVN_OPT_CLASS,
            typ: geneve::OVN_OPT_TYPE,
            data: &data,
        }];
        let h = TunnelHeader::build(&params(&opts, false)).unwrap();
        assert_eq!(h.len as usize, 14 + 20 + 8 + 8 + 8);
        let f = encap(&h);
        #[rustfmt::skip]
        let want_outer: [u8; 58] = [
            0xaa, 0, 0, 0, 0, 2, 0xaa, 0, 0, 0, 0, 1, 0x08, 0x00,
            // IPv4: total 20+8+16+42 = 86, id 0x1234, DF, TTL 64, UDP
            0x45, 0, 0, 86, 0x12, 0x34, 0x40, 0, 64, 17, 0x00, 0x00, 172, 31, 0, 1, 172, 31, 0, 2,
            // UDP 40000 -> 6081, length 66, no checksum
            0x9c, 0x40, 0x17, 0xc1, 0, 66, 0, 0,
            // Geneve: 2 words of options, Ethernet, VNI 5, OVN option
            0x02, 0x00, 0x65, 0x58, 0, 0, 5, 0, 0x01, 0x02, 0x80, 0x01, 0, 1, 0, 2,
        ];
        let mut got = f[..58].to_vec();
        // the IP checksum is checked by verifying, not by copying
        assert_eq!(checksum::checksum(&got[14..34]), 0);
        got[24] = 0;
        got[25] = 0;
        assert_eq!(got, want_outer);
        assert_eq!(&f[58..], &INNER);
    }

    #[test]
    fn udp_checksum_when_asked() {
        let h = TunnelHeader::build(&params(&[], true)).unwrap();
        let f = encap(&h);
        let ulen = be16(&f, 38);
        let acc = checksum::pseudo_v4([172, 31, 0, 1], [172, 31, 0, 2], 17, ulen);
        assert_ne!(be16(&f, 40), 0);
        assert!(checksum::verify(&f[34..], acc));
    }

    fn recv(tlv: Option<Tlv0>) -> TnlRecv {
        TnlRecv {
            dst_port: 6081,
            ports: vec![
                RecvPort {
                    dp: 3,
                    remote: Some(u32::from(Ipv4Addr::new(172, 31, 0, 9))),
                    local: None,
                    key: None,
                    tlv0: tlv,
                },
                RecvPort {
                    dp: 4,
                    remote: None,
                    local: None,
                    key: None,
                    tlv0: tlv,
                },
            ],
        }
    }

    #[test]
    fn push_then_pop_round_trips() {
        let data = [0, 0, 0x12, 0x34];
        let opts = [GeneveOpt {
            class: geneve::OVN_OPT_CLASS,
            typ: geneve::OVN_OPT_TYPE,
            data: &data,
        }];
        for csum in [false, true] {
            let h = TunnelHeader::build(&params(&opts, csum)).unwrap();
            let f = encap(&h);
            let mut k = FlowKey::default();
            let mut lay = Layout::default();
            extract(&f, 0, &mut k, &mut lay).unwrap();
            let tlv = Tlv0 {
                class: 0x0102,
                typ: 0x80,
                len: 4,
            };
            let (off, m) = pop(&f, &lay, &recv(Some(tlv))).unwrap();
            assert_eq!(&f[off..], &INNER);
            // 172.31.0.1 is not port 3's remote end: the remote_ip=flow port takes it
            assert_eq!(m.dp, 4);
            assert_eq!(m.id, 5);
            assert_eq!(m.src, u32::from(Ipv4Addr::new(172, 31, 0, 1)));
            assert_eq!(m.dst, u32::from(Ipv4Addr::new(172, 31, 0, 2)));
            assert_eq!(m.meta0, Some(0x1234));
            // without a mapping the option is not reported
            let (_, m) = pop(&f, &lay, &recv(None)).unwrap();
            assert_eq!(m.meta0, None);
        }
    }

    #[test]
    fn pop_refuses_malformed_and_unclaimed_packets() {
        let h = TunnelHeader::build(&params(&[], true)).unwrap();
        let f = encap(&h);
        let mut k = FlowKey::default();
        let mut lay = Layout::default();
        extract(&f, 0, &mut k, &mut lay).unwrap();
        // a flipped payload bit breaks the UDP checksum
        let mut bad = f.clone();
        bad[60] ^= 1;
        assert_eq!(pop(&bad, &lay, &recv(None)), Err(PopError::Malformed));
        // Geneve version 1
        let mut bad = f.clone();
        bad[42] |= 0x40;
        bad[40] = 0;
        bad[41] = 0;
        assert_eq!(pop(&bad, &lay, &recv(None)), Err(PopError::Malformed));
        // truncated: the IP length says more than there is
        assert_eq!(pop(&f[..45], &lay, &recv(None)), Err(PopError::Malformed));
        // a port that wants another key
        let mut r = recv(None);
        r.ports.retain(|p| p.dp == 4);
        r.ports[0].key = Some(6);
        assert_eq!(pop(&f, &lay, &r), Err(PopError::NoPort));
        // the fixed remote end is preferred when it matches
        let mut r = recv(None);
        r.ports[0].remote = Some(u32::from(Ipv4Addr::new(172, 31, 0, 1)));
        assert_eq!(pop(&f, &lay, &r).unwrap().1.dp, 3);
    }

    #[test]
    fn routes_longest_prefix_then_metric() {
        let r = |dst: [u8; 4], plen, prio, ifindex| Route {
            dst: u32::from(Ipv4Addr::from(dst)),
            plen,
            gw: None,
            ifindex,
            dev: String::new(),
            prefsrc: None,
            priority: prio,
        };
        let t = vec![
            r([0, 0, 0, 0], 0, 0, 1),
            r([172, 31, 0, 0], 24, 100, 2),
            r([172, 31, 0, 0], 24, 10, 3),
            r([172, 31, 0, 128], 25, 500, 4),
        ];
        let l = |ip: [u8; 4]| route_lookup(&t, u32::from(Ipv4Addr::from(ip))).map(|r| r.ifindex);
        assert_eq!(l([172, 31, 0, 2]), Some(3));
        assert_eq!(l([172, 31, 0, 200]), Some(4));
        assert_eq!(l([8, 8, 8, 8]), Some(1));
    }

    #[test]
    fn mailbox_carries_events() {
        let m = Mailbox::default();
        let s = Event::Snoop {
            bridge: 1,
            ip: 0xac1f0002,
            mac: Mac([2, 3, 4, 5, 6, 7]),
        };
        let x = Event::Miss {
            bridge: 2,
            ip: 0xac1f0002,
            src: 0xac1f0001,
        };
        m.post(s);
        m.post(x);
        let mut got = Vec::new();
        m.drain(|e| got.push(e));
        assert_eq!(got, vec![s, x]);
        m.drain(|_| panic!("drained twice"));
    }
}
