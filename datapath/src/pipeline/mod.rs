//! Translation: from a packet's flow key to a datapath flow (mask + compiled actions).
//!
//! Today the only pipeline is NORMAL (a MAC-learning L2 switch, as OVS's NORMAL action with no
//! controller). The OpenFlow tables slot in here: translation walks them, un-wildcards every field
//! a lookup examined, and emits the same [`DpAction`] list the fast path executes.

pub mod mac;

use crate::packet::key::{w, FlowKey, KEY_WORDS};
use crate::packet::Mac;

/// Dense datapath port index (not the OpenFlow port number).
pub type DpPort = u16;
pub const MAX_PORTS: usize = 1024;

/// What the slow path needs to know about a port.
#[derive(Clone, Debug)]
pub struct PortInfo {
    pub name: String,
    pub ofport: u32,
    pub bridge: u8,
    /// Admin up and carrier: floods skip ports that are down, unicast to them is dropped.
    pub up: bool,
}

#[derive(Clone, Debug)]
pub struct BridgeInfo {
    pub name: String,
    pub ports: Vec<DpPort>,
    pub mac_aging: u32,
}

/// The immutable configuration snapshot PMDs translate against (published with arc-swap).
#[derive(Clone, Debug, Default)]
pub struct DpConfig {
    pub ports: Vec<Option<PortInfo>>,
    pub bridges: Vec<BridgeInfo>,
}

impl DpConfig {
    pub fn port(&self, p: DpPort) -> Option<&PortInfo> {
        self.ports.get(p as usize).and_then(|p| p.as_ref())
    }
    pub fn port_by_name(&self, name: &str) -> Option<(DpPort, &PortInfo)> {
        self.ports.iter().enumerate().find_map(|(i, p)| {
            p.as_ref()
                .filter(|p| p.name == name)
                .map(|p| (i as DpPort, p))
        })
    }
}

/// A compiled datapath action. An empty list drops.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DpAction {
    Output(DpPort),
}

/// A MAC-table entry a cached flow keeps alive.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LearnRef {
    pub slot: u32,
    pub bridge: u8,
    pub vlan: u16,
    pub mac: u64,
    pub port: DpPort,
}

/// Why NORMAL dropped, for the flow's description and coverage.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DropReason {
    UnknownPort,
    MulticastSource,
    ReservedMulticast,
    Hairpin,
    PortDown,
}

/// The result of translating one packet.
#[derive(Clone, Debug)]
pub struct Translation {
    /// Which key bits the decision depended on.
    pub mask: FlowKey,
    pub actions: Vec<DpAction>,
    pub learn: Option<LearnRef>,
    /// The translation changed state (MAC table) that earlier cached decisions depended on.
    pub invalidates: bool,
    pub drop: Option<DropReason>,
    pub flooded: bool,
}

const MAC_BITS: u64 = (1 << 48) - 1;

/// NORMAL: learn the source, forward to the known destination, flood otherwise; never back out
/// of the input port. IEEE 802.1D link-local multicast (01:80:c2:00:00:0x) is not forwarded, as
/// with OVS's default `forward-bpdu=false`.
pub fn xlate_normal(cfg: &DpConfig, macs: &mac::MacTable, key: &FlowKey, now: u32) -> Translation {
    let mut mask = FlowKey::default();
    mask.w[w::META] = 0xffff_ffff; // in_port
    let mut t = Translation {
        mask,
        actions: Vec::new(),
        learn: None,
        invalidates: false,
        drop: None,
        flooded: false,
    };
    let in_port = key.in_port() as DpPort;
    let Some(pi) = cfg.port(in_port) else {
        t.drop = Some(DropReason::UnknownPort);
        return t;
    };
    let bridge = pi.bridge;
    // dl_src, dl_dst and the VLAN decide everything below
    t.mask.w[w::ETH_SRC] = MAC_BITS;
    t.mask.w[w::ETH_DST] = MAC_BITS | (0xffff << 48);
    let src = key.dl_src();
    let dst = key.dl_dst();
    let vlan = key.vlan_vid();
    if src.is_multicast() {
        t.drop = Some(DropReason::MulticastSource);
        return t;
    }
    if is_reserved_multicast(dst) {
        t.drop = Some(DropReason::ReservedMulticast);
        return t;
    }
    let (learned, slot) = macs.learn(bridge, vlan, key.dl_src_u64(), in_port, now);
    t.invalidates = learned != mac::Learned::Same;
    if slot != u32::MAX {
        t.learn = Some(LearnRef {
            slot,
            bridge,
            vlan,
            mac: key.dl_src_u64(),
            port: in_port,
        });
    }
    let known = if dst.is_multicast() {
        None
    } else {
        macs.lookup(bridge, vlan, key.dl_dst_u64())
    };
    match known {
        Some(p) if p == in_port => t.drop = Some(DropReason::Hairpin),
        Some(p) => match cfg.port(p) {
            Some(o) if o.up && o.bridge == bridge => t.actions.push(DpAction::Output(p)),
            Some(_) => t.drop = Some(DropReason::PortDown),
            None => flood(cfg, bridge, in_port, &mut t),
        },
        None => flood(cfg, bridge, in_port, &mut t),
    }
    t
}

fn flood(cfg: &DpConfig, bridge: u8, in_port: DpPort, t: &mut Translation) {
    t.flooded = true;
    if let Some(b) = cfg.bridges.get(bridge as usize) {
        for &p in &b.ports {
            if p != in_port && cfg.port(p).is_some_and(|pi| pi.up) {
                t.actions.push(DpAction::Output(p));
            }
        }
    }
}

fn is_reserved_multicast(m: Mac) -> bool {
    m.0[..5] == [0x01, 0x80, 0xc2, 0x00, 0x00] && m.0[5] & 0xf0 == 0
}

/// Applies `mask` to `key` word by word.
#[inline]
pub fn masked(key: &FlowKey, mask: &FlowKey) -> FlowKey {
    let mut out = FlowKey::default();
    for i in 0..KEY_WORDS {
        out.w[i] = key.w[i] & mask.w[i];
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::packet::key::{extract, testpkt, Layout};

    fn cfg(n: usize) -> DpConfig {
        let ports = (0..n)
            .map(|i| {
                Some(PortInfo {
                    name: format!("p{i}"),
                    ofport: i as u32 + 1,
                    bridge: 0,
                    up: true,
                })
            })
            .collect();
        DpConfig {
            ports,
            bridges: vec![BridgeInfo {
                name: "br0".into(),
                ports: (0..n as u16).collect(),
                mac_aging: 300,
            }],
        }
    }

    fn key_for(src: [u8; 6], dst: [u8; 6], in_port: u32) -> FlowKey {
        let mut f = testpkt::eth(dst, src, 0x0800);
        f.extend_from_slice(&[
            0x45, 0, 0, 20, 0, 0, 0, 0, 64, 253, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2,
        ]);
        let mut k = FlowKey::default();
        let mut l = Layout::default();
        extract(&f, in_port, &mut k, &mut l).unwrap();
        k
    }

    const A: [u8; 6] = [2, 0, 0, 0, 0, 0xa];
    const B: [u8; 6] = [2, 0, 0, 0, 0, 0xb];

    #[test]
    fn floods_then_forwards_once_learnt_and_never_hairpins() {
        let c = cfg(3);
        let m = mac::MacTable::new(64);
        let t = xlate_normal(&c, &m, &key_for(A, B, 0), 1);
        assert!(t.flooded);
        assert_eq!(t.actions, vec![DpAction::Output(1), DpAction::Output(2)]);
        assert!(t.invalidates, "A is new");
        let t = xlate_normal(&c, &m, &key_for(B, A, 2), 1);
        assert_eq!(t.actions, vec![DpAction::Output(0)]);
        let t = xlate_normal(&c, &m, &key_for(A, B, 0), 1);
        assert_eq!(t.actions, vec![DpAction::Output(2)]);
        assert!(!t.invalidates);
        // B now appears behind port 0 as well as A: hairpin is dropped
        let t = xlate_normal(&c, &m, &key_for(A, A, 0), 1);
        assert_eq!(t.drop, Some(DropReason::Hairpin));
        assert!(t.actions.is_empty());
    }

    #[test]
    fn broadcast_floods_to_up_ports_only_and_bpdus_are_dropped() {
        let mut c = cfg(3);
        c.ports[2].as_mut().unwrap().up = false;
        let m = mac::MacTable::new(64);
        let t = xlate_normal(&c, &m, &key_for(A, [0xff; 6], 1), 1);
        assert_eq!(t.actions, vec![DpAction::Output(0)]);
        let t = xlate_normal(&c, &m, &key_for(A, [1, 0x80, 0xc2, 0, 0, 0], 1), 1);
        assert_eq!(t.drop, Some(DropReason::ReservedMulticast));
        let t = xlate_normal(&c, &m, &key_for([3, 0, 0, 0, 0, 1], B, 1), 1);
        assert_eq!(t.drop, Some(DropReason::MulticastSource));
    }

    #[test]
    fn mask_covers_only_what_normal_reads() {
        let c = cfg(2);
        let m = mac::MacTable::new(64);
        let t = xlate_normal(&c, &m, &key_for(A, B, 0), 1);
        assert_eq!(t.mask.w[w::L3], 0, "IP fields are wildcarded");
        assert_eq!(t.mask.w[w::NW_SRC_LO], 0);
        assert_eq!(t.mask.w[w::META], 0xffff_ffff);
    }
}
