//! A bridge's OpenFlow state as translation sees it: 255 flow tables (one classifier each),
//! groups and the port map, published to PMDs as an immutable snapshot.
//!
//! The control thread owns the master copy and applies flow, group and meter mods to it; a
//! snapshot is published (arc-swap) before a barrier or bundle commit is answered. Tables are
//! behind `Arc`s so a publish copies only the tables that changed since the last one.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use classifier::{Classifier, ConjClause, RuleId};
use openflow::Match;

use super::flow::{self, PKey, PKEY_WORDS};
use super::ofpact::Ofpact;
use super::DpPort;

pub const N_TABLES: usize = 255;

/// Counters of one OpenFlow rule, shared between the master copy, snapshots and the megaflows
/// built from it (which fold their hits in).
#[derive(Debug, Default)]
pub struct RuleStats {
    pub packets: AtomicU64,
    pub bytes: AtomicU64,
    /// Milliseconds since daemon start of the last hit (0: never).
    pub used_ms: AtomicU64,
}

impl RuleStats {
    pub fn add(&self, packets: u64, bytes: u64, now_ms: u64) {
        self.packets.fetch_add(packets, Ordering::Relaxed);
        self.bytes.fetch_add(bytes, Ordering::Relaxed);
        self.used_ms.fetch_max(now_ms, Ordering::Relaxed);
    }
}

/// One OpenFlow flow entry.
#[derive(Debug)]
pub struct Rule {
    pub table: u8,
    pub priority: u16,
    pub cookie: u64,
    /// The match as the controller sent it (dumps print it back).
    pub match_: Match,
    pub value: PKey,
    pub mask: PKey,
    pub ofpacts: Vec<Ofpact>,
    /// OFPFF_* flags (send_flow_rem 1, check_overlap 2, reset_counts 4, no_pkt/byt counts).
    pub flags: u16,
    pub idle_timeout: u16,
    pub hard_timeout: u16,
    pub importance: u16,
    /// Milliseconds since daemon start when added (or last modified with reset_counts).
    pub created_ms: u64,
    pub stats: Arc<RuleStats>,
    /// Conjunction clauses when the actions are only `conjunction(...)`.
    pub clauses: Vec<ConjClause>,
    /// The instructions as received and the OpenFlow version they came in (dumps print them).
    pub instructions: Vec<openflow::Instruction>,
    pub of_version: u8,
}

impl Rule {
    /// The clauses of an action list made only of `conjunction` actions (OVS requires them to
    /// be alone); none otherwise.
    pub fn conjunction_clauses(ofpacts: &[Ofpact]) -> Vec<ConjClause> {
        let mut v = Vec::new();
        for a in ofpacts {
            match a {
                Ofpact::Conjunction {
                    id,
                    clause,
                    n_clauses,
                } => v.push(ConjClause {
                    id: *id,
                    clause: clause + 1,
                    n_clauses: *n_clauses,
                }),
                _ => return Vec::new(),
            }
        }
        v
    }
}

impl Rule {
    /// A rule with no match at `priority` in `table` (e.g. the standalone `priority=0
    /// actions=NORMAL`).
    pub fn catch_all(table: u8, priority: u16, ofpacts: Vec<Ofpact>, now_ms: u64) -> Rule {
        Rule {
            table,
            priority,
            cookie: 0,
            match_: Match::default(),
            value: [0; PKEY_WORDS],
            mask: [0; PKEY_WORDS],
            ofpacts,
            flags: 0,
            idle_timeout: 0,
            hard_timeout: 0,
            importance: 0,
            created_ms: now_ms,
            stats: Arc::new(RuleStats::default()),
            clauses: Vec::new(),
            instructions: Vec::new(),
            of_version: 6,
        }
    }
}

/// One flow table.
#[derive(Clone)]
pub struct Table {
    pub cls: Classifier<Arc<Rule>, PKEY_WORDS>,
    /// Lookups and matches, for table stats.
    pub stats: Arc<TableStats>,
}

#[derive(Debug, Default)]
pub struct TableStats {
    pub lookups: AtomicU64,
    pub matched: AtomicU64,
}

impl Default for Table {
    fn default() -> Self {
        Table {
            cls: Classifier::new(&flow::stages()),
            stats: Arc::new(TableStats::default()),
        }
    }
}

impl Table {
    /// The rule a packet hits, resolving conjunctions as OVS does; every bit examined is ORed
    /// into `wc`.
    pub fn lookup(&self, key: &PKey, wc: &mut PKey) -> Option<&Arc<Rule>> {
        let conj = flow::loc(openflow::Field::ConjId).expect("conj_id has a location");
        let id = self
            .cls
            .lookup_resolved(key, wc, |k, id| conj.set(k, id as u128))?;
        self.cls.get(id)
    }

    /// Inserts a rule (conjunctive when it carries clauses; they were validated when the
    /// actions were normalized).
    pub fn insert(&mut self, rule: Arc<Rule>) -> Result<RuleId, String> {
        let (v, m, p) = (rule.value, rule.mask, rule.priority as u32);
        if rule.clauses.is_empty() {
            Ok(self.cls.insert(v, m, p, rule))
        } else {
            let c = rule.clauses.clone();
            self.cls
                .try_insert_conjunctive(v, m, p, &c, rule)
                .map_err(|e| e.to_string())
        }
    }

    pub fn len(&self) -> usize {
        self.cls.len()
    }

    pub fn is_empty(&self) -> bool {
        self.cls.is_empty()
    }
}

/// Group types (OFPGT_*).
pub mod group_type {
    pub const ALL: u8 = 0;
    pub const SELECT: u8 = 1;
    pub const INDIRECT: u8 = 2;
    pub const FAST_FAILOVER: u8 = 3;
}

#[derive(Debug, Clone)]
pub struct Bucket {
    pub bucket_id: u32,
    pub weight: u16,
    pub watch_port: u32,
    pub watch_group: u32,
    pub ofpacts: Vec<Ofpact>,
    pub stats: Arc<RuleStats>,
}

/// An OpenFlow group.
#[derive(Debug)]
pub struct Group {
    pub group_id: u32,
    pub group_type: u8,
    pub buckets: Vec<Bucket>,
    /// The GROUP_MOD as received, for group-desc replies.
    pub desc: openflow::message::GroupMod,
    /// Selection method ("hash", "dp_hash" or empty) and fields for select groups.
    pub selection_method: String,
    pub stats: Arc<RuleStats>,
    pub created_ms: u64,
}

/// A port as the pipeline knows it.
#[derive(Debug, Clone)]
pub struct OfPort {
    pub ofport: u32,
    pub dp: DpPort,
    pub name: String,
    /// OFPPC_* config bits (no_flood 0x10, port_down 1, no_recv 4, no_fwd 0x20, no_packet_in 0x40).
    pub config: u32,
    pub up: bool,
}

/// Everything translation needs about one bridge.
#[derive(Clone, Default)]
pub struct BridgeTables {
    pub name: String,
    pub index: u8,
    pub tables: Vec<Arc<Table>>,
    pub groups: HashMap<u32, Arc<Group>>,
    pub ports: HashMap<u32, OfPort>,
    /// OpenFlow port of each datapath port of this bridge.
    pub of_of_dp: HashMap<DpPort, u32>,
    /// The bridge's datapath id (features reply).
    pub datapath_id: u64,
}

impl BridgeTables {
    pub fn new(name: &str, index: u8, datapath_id: u64) -> Self {
        BridgeTables {
            name: name.to_string(),
            index,
            tables: (0..N_TABLES).map(|_| Arc::new(Table::default())).collect(),
            groups: HashMap::new(),
            ports: HashMap::new(),
            of_of_dp: HashMap::new(),
            datapath_id,
        }
    }

    pub fn table(&self, t: u8) -> Option<&Table> {
        self.tables.get(t as usize).map(|t| &**t)
    }

    /// Adds the flow a standalone bridge starts with: `priority=0 actions=NORMAL`.
    pub fn add_normal_flow(&mut self, now_ms: u64) {
        let mut r = Rule::catch_all(
            0,
            0,
            vec![Ofpact::Output {
                port: openflow::action::ports::NORMAL,
                max_len: 0,
            }],
            now_ms,
        );
        r.instructions = vec![openflow::Instruction::ApplyActions(vec![
            openflow::Action::Output {
                port: openflow::action::ports::NORMAL,
                max_len: 0,
            },
        ])];
        let _ = Arc::make_mut(&mut self.tables[0]).insert(Arc::new(r));
    }

    pub fn n_flows(&self) -> usize {
        self.tables.iter().map(|t| t.len()).sum()
    }
}

/// The snapshot PMDs translate against: every bridge's tables.
#[derive(Clone, Default)]
pub struct Pipeline {
    pub bridges: Vec<Arc<BridgeTables>>,
    /// bridge index of each datapath port.
    pub bridge_of_dp: HashMap<DpPort, u8>,
}

impl Pipeline {
    pub fn bridge_of(&self, dp: DpPort) -> Option<&BridgeTables> {
        let b = *self.bridge_of_dp.get(&dp)?;
        self.bridges.get(b as usize).map(|b| &**b)
    }
}
