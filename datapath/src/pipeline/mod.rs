//! Translation: from a packet's flow key to a datapath flow (mask + compiled actions).
//!
//! [`tables`] holds each bridge's OpenFlow tables, groups and ports as an immutable snapshot;
//! [`xlate`] walks them for a packet, un-wildcarding every field a lookup or action examined,
//! and emits the [`DpAction`] list the fast path executes for every packet of the datapath flow.
//! NORMAL (a MAC-learning L2 switch, OVS's NORMAL action, over [`mac`]) is one of the outputs;
//! a standalone bridge has the single flow `priority=0 actions=NORMAL`.

pub mod flow;
pub mod learn;
pub mod mac;
pub mod meter;
pub mod ofpact;
pub mod recirc;
pub mod tables;
pub mod xlate;

use std::sync::Arc;

use crate::packet::key::{FlowKey, KEY_WORDS};

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
    /// For a patch port, its peer's datapath port once the pair is complete: output to it
    /// continues translation in the peer's bridge (`Some(None)`: a patch port without a
    /// usable peer, whose output drops).
    pub patch: Option<Option<DpPort>>,
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
    /// Tunnel ports, routes, LOCAL port addresses and neighbours.
    pub tnl: Arc<crate::tunnel::TnlSnapshot>,
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

/// A packet field the datapath can write (after the pipeline changed it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DpField {
    EthSrc,
    EthDst,
    /// The TCI of the outermost tag (PCP, CFI, VID).
    VlanTci,
    Ipv4Src,
    Ipv4Dst,
    /// IPv4 TOS / IPv6 traffic class byte (DSCP and ECN).
    IpTos,
    /// IPv4 TTL / IPv6 hop limit.
    IpTtl,
    Ipv6Src,
    Ipv6Dst,
    Ipv6Label,
    /// TCP/UDP/SCTP source and destination ports.
    TpSrc,
    TpDst,
    IcmpType,
    IcmpCode,
    ArpOp,
    ArpSpa,
    ArpTpa,
    ArpSha,
    ArpTha,
    NdTarget,
    NdSll,
    NdTll,
}

/// What a packet-in needs: where it came from in the pipeline, the controller action's
/// parameters and the pipeline fields at that point. Shared by every packet of a cached flow.
#[derive(Debug)]
pub struct PacketInSpec {
    pub bridge: u8,
    pub table_id: u8,
    pub cookie: u64,
    pub spec: Arc<ofpact::ControllerSpec>,
    /// Pipeline fields (metadata, registers, in_port, tunnel, ct) at the controller action.
    pub metadata: Vec<(openflow::Field, u128)>,
    /// For `controller(pause)`: the translation state to resume with NXT_RESUME.
    pub frozen: Option<Arc<Frozen>>,
}

/// A paused translation, resumed by NXT_RESUME: for each nesting level, innermost first, the
/// table and cookie it ran in and the actions left to run there.
#[derive(Debug)]
pub struct Frozen {
    pub bridge: u8,
    pub frames: Vec<(u8, u64, Vec<ofpact::Ofpact>)>,
    pub stack: Vec<u128>,
}

/// A compiled datapath action. An empty list drops.
#[derive(Clone, Debug, PartialEq)]
pub enum DpAction {
    Output(DpPort),
    /// Writes the bits of `value` under `mask` into `field` (checksums updated).
    Set {
        field: DpField,
        value: u128,
        mask: u128,
    },
    PushVlan {
        tpid: u16,
        tci: u16,
    },
    PopVlan,
    /// A copy of the packet, as it is at this point, to the controller.
    Userspace(Arc<PacketInSpec>),
    /// Runs the packet through an OpenFlow meter (the `meter` instruction / `meter:N` action).
    /// A packet the meter drops skips to action `skip_to`: the end of the list (dropped), or
    /// the end of the `clone`/group bucket the meter was in (only that copy is dropped).
    /// Executed per packet, so a cached megaflow meters each packet, not each translation.
    Meter {
        meter: Arc<meter::Meter>,
        id: u32,
        skip_to: u32,
    },
    /// Native tunnel encap: prepends the prebuilt outer headers (lengths, IP ID and checksum,
    /// UDP source port and checksum completed per packet). The actions up to the matching
    /// [`DpAction::TunnelStrip`] are the underlay bridge's and see the outer packet; a packet
    /// too big for the underlay's MTU skips them (dropped and counted).
    TunnelPush(Arc<crate::tunnel::TunnelHeader>),
    /// Removes the header the matching `TunnelPush` added.
    TunnelStrip,
    /// Native tunnel decap (OVS's tnl_pop), in place of an output to a LOCAL port: strips the
    /// outer headers and runs the inner frame through the datapath again, from the tunnel port
    /// the outer addresses and key select, with the tunnel fields set.
    TunnelPop(Arc<crate::tunnel::TnlRecv>),
    /// Opens a live-migration gate (the packet matched an activation flow): the first such
    /// packet flips the gate and invalidates cached flows, so the blocking flows stop
    /// applying from the next packet on. Placed before the packet's outputs.
    Activate(Arc<crate::migration::GateState>, crate::migration::Trigger),
    /// The translation ended on a gate's blocking flow: counts the drop.
    GateDrop(Arc<crate::migration::GateState>, crate::migration::GateDir),
    /// The translation went past an opened gate's blocking flow while the gate still awaits
    /// its first packet that way: the first packet records its time (the switch-owned
    /// activation latency) and invalidates the cached flows, so steady-state flows never
    /// carry this. Placed before the packet's outputs.
    GateFirst(Arc<crate::migration::GateState>, crate::migration::GateDir),
    /// Learns a flow (the `learn` action): handed to the control thread, which adds it or
    /// refreshes the identical flow already there. Every packet of the datapath flow teaches
    /// the same flow (see [`learn`]); the PMD sends it at most every ~100 ms.
    Learn(Arc<learn::Learned>),
    /// `ct()`: runs the packet through the connection tracker (commit, NAT, mark and label as
    /// translation resolved them; the zone is a number by then). With a recirculation id the
    /// tracked packet looks up the datapath again with `recirc_id` and the ct_* fields set; it
    /// is the packet itself when this is its last action, else a copy (OVS's fork).
    Ct(Arc<CtExec>),
    /// `ct_clear`: the packet forgets its conntrack metadata (a later `ct()` in the same zone
    /// looks the connection up afresh).
    CtClear,
}

/// A datapath conntrack action.
#[derive(Debug, PartialEq, Eq)]
pub struct CtExec {
    pub act: crate::conntrack::CtAction,
    /// Recirculation id ([`recirc::RecircTable`]), 0 for none.
    pub recirc: u32,
}

impl PartialEq for meter::Meter {
    fn eq(&self, o: &Self) -> bool {
        std::ptr::eq(self, o)
    }
}

impl PartialEq for PacketInSpec {
    fn eq(&self, o: &Self) -> bool {
        std::ptr::eq(self, o)
    }
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

/// Applies `mask` to `key` word by word.
#[inline]
pub fn masked(key: &FlowKey, mask: &FlowKey) -> FlowKey {
    let mut out = FlowKey::default();
    for i in 0..KEY_WORDS {
        out.w[i] = key.w[i] & mask.w[i];
    }
    out
}
