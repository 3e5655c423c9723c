//! STUB (replaced by the tracker from branch h-ct): the API the pipeline and PMD compile against.
#![allow(dead_code, unused_variables)]

use std::net::IpAddr;

pub mod cs {
    pub const NEW: u32 = 0x01;
    pub const ESTABLISHED: u32 = 0x02;
    pub const RELATED: u32 = 0x04;
    pub const REPLY_DIR: u32 = 0x08;
    pub const INVALID: u32 = 0x10;
    pub const TRACKED: u32 = 0x20;
    pub const SRC_NAT: u32 = 0x40;
    pub const DST_NAT: u32 = 0x80;
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NatKind {
    Src,
    Dst,
    Reapply,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NatSpec {
    pub kind: NatKind,
    pub addr_min: Option<IpAddr>,
    pub addr_max: Option<IpAddr>,
    pub port_min: Option<u16>,
    pub port_max: Option<u16>,
    pub persistent: bool,
    pub hash: bool,
    pub random: bool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CtAction {
    pub zone: u16,
    pub commit: bool,
    pub force: bool,
    pub nat: Option<NatSpec>,
    pub set_mark: Option<(u32, u32)>,
    pub set_label: Option<(u128, u128)>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OrigTuple {
    pub proto: u8,
    pub src: IpAddr,
    pub dst: IpAddr,
    pub sport: u16,
    pub dport: u16,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CtResult {
    pub state: u32,
    pub zone: u16,
    pub mark: u32,
    pub label: u128,
    pub orig: Option<OrigTuple>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TupleFilter {
    pub src: Option<IpAddr>,
    pub dst: Option<IpAddr>,
    pub sport: Option<u16>,
    pub dport: Option<u16>,
    pub proto: Option<u8>,
}

pub struct Conntrack {}

impl Conntrack {
    pub fn new(max_conns: u32) -> Self {
        Conntrack {}
    }
    pub fn execute(
        &self,
        frame: &mut [u8],
        lay: &crate::packet::key::Layout,
        act: &CtAction,
        now_ms: u64,
    ) -> CtResult {
        CtResult {
            state: cs::TRACKED | cs::NEW,
            zone: act.zone,
            mark: 0,
            label: 0,
            orig: None,
        }
    }
    pub fn sweep(&self, now_ms: u64) -> usize {
        0
    }
    pub fn flush(&self, zone: Option<u16>) -> usize {
        0
    }
    pub fn flush_tuple(&self, zone: u16, orig: &TupleFilter, reply: &TupleFilter) -> usize {
        0
    }
    pub fn dump(&self, zone: Option<u16>) -> Vec<String> {
        Vec::new()
    }
    pub fn stats_show(&self) -> String {
        String::new()
    }
    pub fn set_maxconns(&self, n: u32) {}
    pub fn maxconns(&self) -> u32 {
        0
    }
    pub fn count(&self) -> u32 {
        0
    }
    pub fn set_zone_limit(&self, zone: u16, limit: Option<u32>) {}
}
pub const DEFAULT_MAX_CONNS: u32 = 3_000_000;
