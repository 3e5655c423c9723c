//! A bridge's OpenFlow state as translation sees it: 255 flow tables (one classifier each),
//! groups and the port map, published to PMDs as an immutable snapshot.
//!
//! The control thread owns the master copy and applies flow, group and meter mods to it; a
//! snapshot is published (arc-swap) before a barrier or bundle commit is answered. Tables are
//! behind `Arc`s so a publish copies only the tables that changed since the last one.

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use classifier::{Classifier, ConjClause, RuleId};
use openflow::Match;

use super::flow::{self, PKey, PKEY_WORDS};
use super::ofpact::Ofpact;
use super::DpPort;

pub const N_TABLES: usize = 255;
/// Journals at least this long, and as long as the table they change, are brought over by
/// copying the table instead of replaying them (see [`Pipeline::reclaim`]).
const COPY_OVER_REPLAY_MIN: usize = 1024;

/// Tables of at least this many rules are freed by a thread of their own when emptied.
const DROP_ASIDE_MIN: usize = 10_000;

/// Frees `x` on a short-lived thread: freeing 100,000 rules takes the control thread ~60 ms
/// (cache misses per rule and key), which the next OpenFlow message would otherwise wait
/// for. If no thread can be started, `x` is freed here (with the closure that owns it).
fn drop_aside<T: Send + 'static>(x: T) {
    let _ = std::thread::Builder::new()
        .name("drop".into())
        .spawn(move || drop(x));
}

/// Counters of one OpenFlow rule, shared between the master copy, snapshots and the megaflows
/// built from it (which fold their hits in).
#[derive(Debug, Default)]
pub struct RuleStats {
    pub packets: AtomicU64,
    pub bytes: AtomicU64,
    /// Milliseconds since daemon start of the last hit (0: never).
    pub used_ms: AtomicU64,
    /// Milliseconds since daemon start when a `learn` action last asked for this flow as it
    /// is (OVS refreshes a learned rule's `modified` time): the hard timeout counts from here.
    pub refreshed_ms: AtomicU64,
}

impl RuleStats {
    pub fn add(&self, packets: u64, bytes: u64, now_ms: u64) {
        self.packets.fetch_add(packets, Ordering::Relaxed);
        self.bytes.fetch_add(bytes, Ordering::Relaxed);
        self.used_ms.fetch_max(now_ms, Ordering::Relaxed);
    }
}

/// A pipeline key's (value, mask) with only the words whose mask is not zero: how the journal
/// carries an inserted rule's match to the other copy of the tables.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SparseKey(Box<[(u8, u64, u64)]>);

impl SparseKey {
    pub fn new(value: &PKey, mask: &PKey) -> SparseKey {
        SparseKey(
            (0..PKEY_WORDS)
                .filter(|&i| mask[i] != 0)
                .map(|i| (i as u8, value[i] & mask[i], mask[i]))
                .collect(),
        )
    }
    pub fn value(&self) -> PKey {
        let mut k = [0; PKEY_WORDS];
        for &(i, v, _) in self.0.iter() {
            k[i as usize] = v;
        }
        k
    }
    pub fn mask(&self) -> PKey {
        let mut k = [0; PKEY_WORDS];
        for &(i, _, m) in self.0.iter() {
            k[i as usize] = m;
        }
        k
    }
    /// Whether this match is at least as specific as (`value`, `mask`) and agrees with it.
    pub fn covered_by(&self, value: &PKey, mask: &PKey) -> bool {
        let (v, m) = (self.value(), self.mask());
        (0..PKEY_WORDS).all(|i| m[i] & mask[i] == mask[i] && v[i] & mask[i] == value[i])
    }
}

/// One OpenFlow flow entry.
#[derive(Debug)]
pub struct Rule {
    pub table: u8,
    pub priority: u16,
    pub cookie: u64,
    /// The match and instructions as the controller sent them (dumps print them back), kept
    /// encoded: see [`RuleWire`].
    pub wire: RuleWire,
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
    /// The OpenFlow version the instructions came in (dumps convert them to the reader's).
    pub of_version: u8,
}

/// A rule's match (NXM/OXM TLVs, headers as received) and instructions (in the version they
/// came in), encoded back to back. Only dumps, flow monitors and flow-removed messages read
/// them, while decoded (`Vec<MatchField>`, `Vec<Instruction>`) they took ~670 of a flow's
/// ~2,000 bytes; encoded they take ~100.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct RuleWire {
    bytes: Box<[u8]>,
    match_len: u32,
}

impl RuleWire {
    /// Encodes `m` and `instructions` (the OpenFlow version the instructions are in).
    pub fn new(m: &Match, instructions: &[openflow::Instruction], version: u8) -> RuleWire {
        let mut bytes = m.tlv_bytes();
        let match_len = bytes.len() as u32;
        bytes.extend(openflow::action::encode_instructions(instructions, version));
        RuleWire {
            bytes: bytes.into_boxed_slice(),
            match_len,
        }
    }

    /// The same match with other instructions (a modify keeps the match).
    pub fn with_instructions(
        &self,
        instructions: &[openflow::Instruction],
        version: u8,
    ) -> RuleWire {
        let mut bytes = self.bytes[..self.match_len as usize].to_vec();
        bytes.extend(openflow::action::encode_instructions(instructions, version));
        RuleWire {
            bytes: bytes.into_boxed_slice(),
            match_len: self.match_len,
        }
    }

    /// The match. What was encoded from a decoded match decodes again, so this cannot fail
    /// short of a codec bug; such a bug shows as an empty match in dumps, not a crash.
    pub fn match_(&self) -> Match {
        let r = Match::from_tlv_bytes(&self.bytes[..self.match_len as usize]);
        debug_assert!(r.is_ok(), "stored match decodes: {r:?}");
        r.unwrap_or_default()
    }

    /// The instructions, in the version they were encoded in (see [`RuleWire::match_`]).
    pub fn instructions(&self, version: u8) -> Vec<openflow::Instruction> {
        let r =
            openflow::action::decode_instructions(&self.bytes[self.match_len as usize..], version);
        debug_assert!(r.is_ok(), "stored instructions decode: {r:?}");
        r.unwrap_or_default()
    }

    /// Heap bytes.
    pub fn heap_bytes(&self) -> usize {
        self.bytes.len()
    }
}

impl std::fmt::Debug for RuleWire {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RuleWire")
            .field("match", &self.match_())
            .field("bytes", &self.bytes.len())
            .finish()
    }
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
    /// The match as the controller sent it.
    pub fn match_(&self) -> Match {
        self.wire.match_()
    }

    /// The instructions as the controller sent them (in [`Rule::of_version`]).
    pub fn instructions(&self) -> Vec<openflow::Instruction> {
        self.wire.instructions(self.of_version)
    }

    /// A rule with no match at `priority` in `table` (e.g. the standalone `priority=0
    /// actions=NORMAL`).
    pub fn catch_all(table: u8, priority: u16, ofpacts: Vec<Ofpact>, now_ms: u64) -> Rule {
        Rule {
            table,
            priority,
            cookie: 0,
            wire: RuleWire::default(),
            ofpacts,
            flags: 0,
            idle_timeout: 0,
            hard_timeout: 0,
            importance: 0,
            created_ms: now_ms,
            stats: Arc::new(RuleStats::default()),
            clauses: Vec::new(),
            of_version: 6,
        }
    }
}

/// One flow table.
///
/// Changes go through [`Table::insert`], [`Table::remove`] and [`Table::replace`], which also
/// record them in a journal: the control thread keeps two copies of the tables (the one the
/// PMDs read and the one it changes) and brings the retired copy up to date by replaying the
/// journal rather than cloning whole classifiers (see [`Pipeline::reclaim`]). `version` counts
/// the changes, so a replay that missed one is detected.
pub struct Table {
    cls: Classifier<Arc<Rule>, PKEY_WORDS>,
    /// Lookups and matches, for table stats.
    pub stats: Arc<TableStats>,
    version: u64,
    journal: Vec<TableOp>,
    /// What live-migration gate recognition reads, kept current by every change (replays
    /// included) so that a publish looks at a handful of rules, not at OVN's 20k flows.
    gate_index: GateIndex,
}

/// The rules of one table that [`crate::migration`] recognises OVN's activation gates from.
#[derive(Clone, Debug, Default)]
pub struct GateIndex {
    /// Rules whose actions send to the controller with userdata starting with OVN's
    /// activation-strategy opcode (26).
    pub activators: BTreeSet<RuleId>,
    /// Every rule by cookie (OVN gives all flows of a port binding the binding's cookie), as
    /// (cookie, rule) pairs: a set of pairs costs ~20 bytes per rule where a set of rules per
    /// cookie cost ~90 (OVN's cookies are nearly unique per flow, so most sets held one rule).
    by_cookie: BTreeSet<(u64, RuleId)>,
}

impl GateIndex {
    fn add(&mut self, id: RuleId, r: &Rule) {
        if crate::migration::is_activator(&r.ofpacts) {
            self.activators.insert(id);
        }
        self.by_cookie.insert((r.cookie, id));
    }

    fn del(&mut self, id: RuleId, r: &Rule) {
        self.activators.remove(&id);
        self.by_cookie.remove(&(r.cookie, id));
    }

    /// The rules with `cookie`.
    pub fn with_cookie(&self, cookie: u64) -> impl Iterator<Item = RuleId> + '_ {
        self.by_cookie
            .range((cookie, RuleId::MIN)..)
            .take_while(move |(c, _)| *c == cookie)
            .map(|&(_, id)| id)
    }
}

/// One change of a table, as recorded for replay on the other copy. Rule ids agree between
/// copies: both start equal and the classifier allocates ids deterministically.
#[derive(Clone)]
pub enum TableOp {
    /// A rule and its match (value, mask).
    Insert(Arc<Rule>, SparseKey),
    Remove(RuleId),
    Replace(RuleId, Arc<Rule>),
    /// Every rule removed.
    Clear,
}

impl Clone for Table {
    /// A copy of the rules; the journal stays with the original.
    fn clone(&self) -> Self {
        Table {
            cls: self.cls.clone(),
            stats: self.stats.clone(),
            version: self.version,
            journal: Vec::new(),
            gate_index: self.gate_index.clone(),
        }
    }
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
            version: 0,
            journal: Vec::new(),
            gate_index: GateIndex::default(),
        }
    }
}

impl Table {
    /// The rule a packet hits, resolving conjunctions as OVS does; every bit examined is ORed
    /// into `wc`.
    pub fn lookup(&self, key: &PKey, wc: &mut PKey) -> Option<&Arc<Rule>> {
        self.lookup_id(key, wc).map(|(_, r)| r)
    }

    /// [`Table::lookup`] with the rule's id.
    pub fn lookup_id(&self, key: &PKey, wc: &mut PKey) -> Option<(RuleId, &Arc<Rule>)> {
        let conj = flow::loc(openflow::Field::ConjId).expect("conj_id has a location");
        let id = self
            .cls
            .lookup_resolved(key, wc, |k, id| conj.set(k, id as u128))?;
        Some((id, self.cls.get(id)?))
    }

    /// The rule a packet hits among the rules of priority below `ceiling`: what the table
    /// yields once a bypassed gate rule at `ceiling` is set aside.
    pub fn lookup_below(
        &self,
        key: &PKey,
        wc: &mut PKey,
        ceiling: u16,
    ) -> Option<(RuleId, &Arc<Rule>)> {
        let conj = flow::loc(openflow::Field::ConjId).expect("conj_id has a location");
        let id = self.cls.lookup_resolved_below(
            key,
            wc,
            |k, id| conj.set(k, id as u128),
            ceiling as u32,
        )?;
        Some((id, self.cls.get(id)?))
    }

    /// The gate-recognition index (see [`GateIndex`]).
    pub fn gate_index(&self) -> &GateIndex {
        &self.gate_index
    }

    /// The rules, for lookups and iteration (changes go through the methods below).
    pub fn cls(&self) -> &Classifier<Arc<Rule>, PKEY_WORDS> {
        &self.cls
    }

    /// Inserts a rule matching (`value`, `mask`) (conjunctive when it carries clauses; they
    /// were validated when the actions were normalized). The classifier keeps the match; the
    /// rule itself does not (see [`Table::key_of`]).
    pub fn insert(&mut self, rule: Arc<Rule>, value: &PKey, mask: &PKey) -> Result<RuleId, String> {
        let id = self.insert_quiet(rule.clone(), *value, *mask)?;
        self.journal
            .push(TableOp::Insert(rule, SparseKey::new(value, mask)));
        Ok(id)
    }

    /// The (value, mask) rule `id` matches.
    pub fn key_of(&self, id: RuleId) -> Option<(PKey, PKey)> {
        self.cls.rule(id).map(|r| (r.value, *r.mask))
    }

    fn insert_quiet(&mut self, rule: Arc<Rule>, v: PKey, m: PKey) -> Result<RuleId, String> {
        let p = rule.priority as u32;
        let r = rule.clone();
        let id = if rule.clauses.is_empty() {
            self.cls.insert(v, m, p, rule)
        } else {
            let c = rule.clauses.clone();
            self.cls
                .try_insert_conjunctive(v, m, p, &c, rule)
                .map_err(|e| e.to_string())?
        };
        self.gate_index.add(id, &r);
        self.version += 1;
        Ok(id)
    }

    /// Counts the changes (equal versions of the two copies of a table: equal rules).
    pub fn version(&self) -> u64 {
        self.version
    }

    /// Empties the table `t` points at and returns its rules. A shared table is not copied
    /// first: `t` gets a new, empty table (same counters) whose journal says `Clear`, so the
    /// other copy of the tables replays one step, not one removal per rule.
    pub fn clear(t: &mut Arc<Table>) -> Vec<Arc<Rule>> {
        let rules: Vec<Arc<Rule>> = t.cls.iter().map(|r| r.payload.clone()).collect();
        // a private table keeps its unpublished changes ahead of the clear (a shared one has
        // none: a publish took them)
        let mut journal = Arc::get_mut(t)
            .map(|t| std::mem::take(&mut t.journal))
            .unwrap_or_default();
        journal.push(TableOp::Clear);
        let empty = Arc::new(Table {
            cls: Classifier::new(&flow::stages()),
            stats: t.stats.clone(),
            version: t.version + 1,
            journal,
            gate_index: GateIndex::default(),
        });
        let old = std::mem::replace(t, empty);
        if old.len() >= DROP_ASIDE_MIN {
            drop_aside(old);
        }
        rules
    }

    fn clear_quiet(&mut self) {
        let old = std::mem::replace(&mut self.cls, Classifier::new(&flow::stages()));
        if old.len() >= DROP_ASIDE_MIN {
            drop_aside(old);
        }
        self.gate_index = GateIndex::default();
        self.version += 1;
    }

    /// Removes a rule.
    pub fn remove(&mut self, id: RuleId) -> Option<Arc<Rule>> {
        let r = self.remove_quiet(id)?;
        self.journal.push(TableOp::Remove(id));
        Some(r)
    }

    fn remove_quiet(&mut self, id: RuleId) -> Option<Arc<Rule>> {
        let r = self.cls.remove(id)?;
        self.gate_index.del(id, &r);
        self.version += 1;
        Some(r)
    }

    /// Puts `new` (same match and priority; new actions, clauses, cookie...) in the place of
    /// rule `id`. Returns false when there is no such rule.
    pub fn replace(&mut self, id: RuleId, new: Arc<Rule>) -> bool {
        if !self.replace_quiet(id, new.clone()) {
            return false;
        }
        self.journal.push(TableOp::Replace(id, new));
        true
    }

    fn replace_quiet(&mut self, id: RuleId, new: Arc<Rule>) -> bool {
        let Some(old) = self.cls.get(id).cloned() else {
            return false;
        };
        if old.clauses != new.clauses && self.cls.set_conjunctions(id, &new.clauses).is_err() {
            return false;
        }
        self.gate_index.del(id, &old);
        self.gate_index.add(id, &new);
        match self.cls.get_mut(id) {
            Some(slot) => *slot = new,
            None => return false,
        }
        self.version += 1;
        true
    }

    /// Applies changes recorded on the other copy. False when one of them does not apply:
    /// the copies differ and this one must not be used.
    fn replay<'a>(&mut self, ops: impl IntoIterator<Item = &'a TableOp>) -> bool {
        for op in ops {
            let ok = match op {
                TableOp::Insert(r, k) => self.insert_quiet(r.clone(), k.value(), k.mask()).is_ok(),
                TableOp::Remove(id) => self.remove_quiet(*id).is_some(),
                TableOp::Replace(id, r) => self.replace_quiet(*id, r.clone()),
                TableOp::Clear => {
                    self.clear_quiet();
                    true
                }
            };
            if !ok {
                return false;
            }
        }
        true
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
    /// OpenFlow version of the group mod that installed it: how its bucket actions are
    /// re-encoded for readers of other versions depends on it (see `openflow::compat`).
    pub of_version: u8,
}

/// A port as the pipeline knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
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
    /// Tables changed since the last publish (bit per table): a publish collects the journals
    /// of these only, instead of visiting 255 tables per flow mod + barrier. Whoever changes a
    /// table through `Arc::make_mut` marks it ([`BridgeTables::table_mut`] does both); a table
    /// changed unmarked keeps its journal, so the next replay onto the other copy fails its
    /// version check and that table is shared instead: slower, never wrong.
    pub dirty: [u64; 4],
    pub groups: HashMap<u32, Arc<Group>>,
    /// Meters by id. They live in the snapshot so that translation can put the meter itself
    /// into a datapath flow's actions (no per-packet lookup); a meter mod replaces the `Arc`
    /// and the publish that follows flushes the megaflows holding the old one.
    pub meters: HashMap<u32, Arc<super::meter::Meter>>,
    pub ports: HashMap<u32, OfPort>,
    /// OpenFlow port of each datapath port of this bridge.
    pub of_of_dp: HashMap<DpPort, u32>,
    /// The bridge's datapath id (features reply).
    pub datapath_id: u64,
    /// Rules that belong to a live-migration gate, by (table, rule): translation bypasses a
    /// blocking rule of an activated gate and makes an activator's packet activate it.
    pub gates: Arc<crate::migration::GateMap>,
}

/// Marks table `t` changed in a [`BridgeTables::dirty`] bitmap.
#[inline]
pub fn mark_dirty(dirty: &mut [u64; 4], t: usize) {
    dirty[(t / 64) & 3] |= 1 << (t % 64);
}

impl BridgeTables {
    /// Table `t`, ready to change (copied first if shared), marked changed.
    pub fn table_mut(&mut self, t: usize) -> &mut Table {
        mark_dirty(&mut self.dirty, t);
        Arc::make_mut(&mut self.tables[t])
    }

    pub fn new(name: &str, index: u8, datapath_id: u64) -> Self {
        BridgeTables {
            name: name.to_string(),
            index,
            tables: (0..N_TABLES).map(|_| Arc::new(Table::default())).collect(),
            dirty: [0; 4],
            groups: HashMap::new(),
            meters: HashMap::new(),
            ports: HashMap::new(),
            of_of_dp: HashMap::new(),
            datapath_id,
            gates: Arc::default(),
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
        r.wire = RuleWire::new(
            &Match::default(),
            &[openflow::Instruction::ApplyActions(vec![
                openflow::Action::Output {
                    port: openflow::action::ports::NORMAL,
                    max_len: 0,
                },
            ])],
            r.of_version,
        );
        let zero = [0; PKEY_WORDS];
        let _ = self.table_mut(0).insert(Arc::new(r), &zero, &zero);
    }

    /// Removes the flow [`Self::add_normal_flow`] adds (cookie 0, no match, priority 0,
    /// `actions=NORMAL`), if it is there: a bridge switched to `fail_mode=secure`.
    pub fn remove_normal_flow(&mut self) -> bool {
        let zero = [0; PKEY_WORDS];
        let t = self.table_mut(0);
        let Some(id) = t.cls().find_exact(&zero, &zero, 0) else {
            return false;
        };
        let is_normal = t.cls().get(id).is_some_and(|r| {
            r.cookie == 0
                && matches!(
                    r.ofpacts.as_slice(),
                    [Ofpact::Output { port, .. }] if *port == openflow::action::ports::NORMAL
                )
        });
        is_normal && t.remove(id).is_some()
    }

    /// Whether table 0 has a priority-0 flow with no match (what NORMAL mode would add).
    pub fn has_catch_all(&self) -> bool {
        let zero = [0; PKEY_WORDS];
        self.tables[0].cls().find_exact(&zero, &zero, 0).is_some()
    }

    /// How many flows use each group (OpenFlow group stats `ref_count`; OVS counts the rules
    /// whose actions name the group, not other groups' buckets).
    pub fn group_ref_counts(&self) -> HashMap<u32, u32> {
        let mut n: HashMap<u32, u32> = HashMap::new();
        for t in &self.tables {
            for r in t.cls.iter() {
                let mut seen: Vec<u32> = Vec::new();
                crate::pipeline::ofpact::groups_used(&r.payload.ofpacts, &mut seen);
                seen.sort_unstable();
                seen.dedup();
                for g in seen {
                    *n.entry(g).or_default() += 1;
                }
            }
        }
        n
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

    /// Whether datapath port `dp` is an OpenFlow port with an armed live-migration gate.
    pub fn gate_armed(&self, dp: DpPort) -> bool {
        self.bridge_of(dp).is_some_and(|b| {
            !b.gates.is_empty() && b.of_of_dp.get(&dp).is_some_and(|&of| b.gates.armed(of))
        })
    }

    /// (bridge, OpenFlow port) of every port with an armed live-migration gate, sorted.
    pub fn armed_gates(&self) -> Vec<(u8, u32)> {
        let mut v: Vec<(u8, u32)> = self
            .bridges
            .iter()
            .enumerate()
            .filter(|(_, b)| !b.gates.is_empty())
            .flat_map(|(bi, b)| b.gates.armed_ports().map(move |of| (bi as u8, of)))
            .collect();
        v.sort_unstable();
        v
    }

    /// Takes the changes recorded since the last call: (bridge, table, changes).
    pub fn take_journal(&mut self) -> Journal {
        let mut out = Vec::new();
        for (b, bt) in self.bridges.iter_mut().enumerate() {
            // shared bridges and tables have not changed since they were shared (changing
            // them would have copied them first)
            let Some(bt) = Arc::get_mut(bt) else {
                continue;
            };
            let dirty = std::mem::take(&mut bt.dirty);
            for (w, mut bits) in dirty.into_iter().enumerate() {
                while bits != 0 {
                    let t = w * 64 + bits.trailing_zeros() as usize;
                    bits &= bits - 1;
                    if let Some(tab) = bt.tables.get_mut(t).and_then(Arc::get_mut) {
                        if !tab.journal.is_empty() {
                            out.push((b, t, std::mem::take(&mut tab.journal)));
                        }
                    }
                }
            }
        }
        out
    }

    /// Turns `self`, a retired snapshot, into a private copy equal to `current` by replaying
    /// `journal` (the changes made between the two) — instead of cloning every changed
    /// classifier, which made each flow mod + barrier cost O(table size). Tables whose replay
    /// does not end in exactly `current`'s version and size are shared with `current` instead
    /// (the next change copies them), so a mistake costs time, never correctness. The other
    /// parts of each bridge (groups, ports) are small and copied.
    pub fn reclaim(mut self, current: &Pipeline, journal: &Journal) -> Pipeline {
        let mut ops: HashMap<(usize, usize), Vec<&TableOp>> = HashMap::new();
        for (b, t, j) in journal {
            ops.entry((*b, *t)).or_default().extend(j.iter());
        }
        self.bridges.truncate(current.bridges.len());
        for (b, cur) in current.bridges.iter().enumerate() {
            if b >= self.bridges.len() || Arc::ptr_eq(&self.bridges[b], cur) {
                if b >= self.bridges.len() {
                    self.bridges.push(cur.clone());
                }
                continue;
            }
            if self.bridges[b].tables.len() != cur.tables.len() {
                self.bridges[b] = cur.clone();
                continue;
            }
            let bt = Arc::make_mut(&mut self.bridges[b]);
            bt.name.clone_from(&cur.name);
            bt.index = cur.index;
            bt.groups.clone_from(&cur.groups);
            bt.meters.clone_from(&cur.meters);
            bt.ports.clone_from(&cur.ports);
            bt.of_of_dp.clone_from(&cur.of_of_dp);
            bt.datapath_id = cur.datapath_id;
            bt.gates = cur.gates.clone();
            for (t, cur_t) in cur.tables.iter().enumerate() {
                let mine = &mut bt.tables[t];
                if Arc::ptr_eq(mine, cur_t) {
                    continue;
                }
                let list = ops.get(&(b, t));
                if list.is_some_and(|l| l.len() >= COPY_OVER_REPLAY_MIN && l.len() >= cur_t.len()) {
                    // a journal as long as the table (a bundle, a resync): copying the
                    // table costs less than replaying it insert by insert
                    *mine = Arc::new((**cur_t).clone());
                    continue;
                }
                let ok = match list {
                    Some(list) => Arc::make_mut(mine).replay(list.iter().copied()),
                    None => true,
                };
                if !ok || mine.version != cur_t.version || mine.len() != cur_t.len() {
                    *mine = cur_t.clone();
                }
            }
        }
        self.bridge_of_dp.clone_from(&current.bridge_of_dp);
        self
    }
}

/// What cached translations a change from `old` to `new` may have made stale: the tables whose
/// rules changed when nothing else did, else everything. Anything not shown equal here
/// (bridges, ports, groups, meters, gates) counts as changed.
pub fn change_scope(old: &Pipeline, new: &Pipeline) -> crate::pmd::Scope {
    use crate::pmd::Scope;
    if old.bridges.len() != new.bridges.len() || old.bridge_of_dp != new.bridge_of_dp {
        return Scope::All;
    }
    fn same_arcs<T>(a: &HashMap<u32, Arc<T>>, b: &HashMap<u32, Arc<T>>) -> bool {
        a.len() == b.len()
            && a.iter()
                .all(|(k, v)| b.get(k).is_some_and(|w| Arc::ptr_eq(v, w)))
    }
    let mut tags = [0u64; 4];
    for (o, n) in old.bridges.iter().zip(&new.bridges) {
        if Arc::ptr_eq(o, n) {
            continue;
        }
        let same_rest = o.name == n.name
            && o.index == n.index
            && o.datapath_id == n.datapath_id
            && o.tables.len() == n.tables.len()
            && same_arcs(&o.groups, &n.groups)
            && same_arcs(&o.meters, &n.meters)
            && o.ports == n.ports
            && o.of_of_dp == n.of_of_dp
            && Arc::ptr_eq(&o.gates, &n.gates);
        if !same_rest {
            return Scope::All;
        }
        for (t, (a, b)) in o.tables.iter().zip(&n.tables).enumerate() {
            if !Arc::ptr_eq(a, b) && a.version != b.version {
                let (w, bit) = super::xlate::table_tag(n.index, t as u8);
                tags[w] |= bit;
            }
        }
    }
    Scope::Tables(tags)
}

/// Changes recorded in a pipeline's tables: (bridge, table, changes in order).
pub type Journal = Vec<(usize, usize, Vec<TableOp>)>;

#[cfg(test)]
mod tests {
    use super::*;

    const Z: PKey = [0; PKEY_WORDS];

    fn rules(p: &Pipeline) -> Vec<(RuleId, u16, usize)> {
        let mut v: Vec<_> = p.bridges[0].tables[0]
            .cls()
            .iter()
            .map(|r| (r.id, r.payload.priority, Arc::as_ptr(r.payload) as usize))
            .collect();
        v.sort_by_key(|x| x.0.index());
        v
    }

    /// Publishes `master` as `publish_pipeline` does: returns (front, journal) and leaves the
    /// shallow copy in `master`.
    fn publish(master: &mut Pipeline) -> (Arc<Pipeline>, Journal) {
        let j = master.take_journal();
        let front = Arc::new(std::mem::take(master));
        *master = (*front).clone();
        (front, j)
    }

    /// A master with one empty bridge, br0, just published: (master, its snapshot).
    fn published_br0() -> (Pipeline, Arc<Pipeline>) {
        let mut master = Pipeline::default();
        master
            .bridges
            .push(Arc::new(BridgeTables::new("br0", 0, 1)));
        let (front0, _) = publish(&mut master);
        (master, front0)
    }

    fn table0(p: &mut Pipeline) -> &mut Table {
        Arc::make_mut(&mut p.bridges[0]).table_mut(0)
    }

    #[test]
    fn a_retired_snapshot_is_brought_up_to_date_by_replay_not_copy() {
        let (mut master, front0) = published_br0();
        // first change after a publish copies the shared table (no retired copy yet)
        let ids: Vec<RuleId> = (1..=4u16)
            .map(|p| {
                table0(&mut master)
                    .insert(Arc::new(Rule::catch_all(0, p, Vec::new(), 0)), &Z, &Z)
                    .unwrap()
            })
            .collect();
        let (front1, j1) = publish(&mut master);
        let mut back = Arc::try_unwrap(front0).ok().unwrap().reclaim(&front1, &j1);
        assert_eq!(rules(&back), rules(&front1));
        assert!(!Arc::ptr_eq(
            &back.bridges[0].tables[0],
            &front1.bridges[0].tables[0]
        ));
        // the reclaimed copy is private: changing it copies nothing
        let before = Arc::as_ptr(&back.bridges[0].tables[0]);
        table0(&mut back).remove(ids[1]).unwrap();
        assert!(table0(&mut back).replace(ids[2], Arc::new(Rule::catch_all(0, 3, Vec::new(), 7))));
        table0(&mut back)
            .insert(Arc::new(Rule::catch_all(0, 9, Vec::new(), 0)), &Z, &Z)
            .unwrap();
        assert_eq!(Arc::as_ptr(&back.bridges[0].tables[0]), before);
        // and the next round replays remove, replace and insert onto front1
        let (front2, j2) = publish(&mut back);
        let again = Arc::try_unwrap(front1).ok().unwrap().reclaim(&front2, &j2);
        assert_eq!(rules(&again), rules(&front2));
        assert_eq!(rules(&again).len(), 4);
    }

    #[test]
    fn a_journal_as_long_as_its_table_is_brought_over_by_a_private_copy() {
        let (mut master, front0) = published_br0();
        // a bundle's worth: every rule of the table arrived since the last publish
        let n = COPY_OVER_REPLAY_MIN as u16 + 10;
        for p in 1..=n {
            table0(&mut master)
                .insert(Arc::new(Rule::catch_all(0, p, Vec::new(), 0)), &Z, &Z)
                .unwrap();
        }
        let (front1, j1) = publish(&mut master);
        assert_eq!(j1[0].2.len(), n as usize);
        let mut back = Arc::try_unwrap(front0).ok().unwrap().reclaim(&front1, &j1);
        assert_eq!(rules(&back), rules(&front1));
        assert_eq!(
            back.bridges[0].tables[0].version(),
            front1.bridges[0].tables[0].version()
        );
        // a copy of its own: changing it leaves the published one alone
        let before = Arc::as_ptr(&back.bridges[0].tables[0]);
        table0(&mut back)
            .insert(Arc::new(Rule::catch_all(0, 9999, Vec::new(), 0)), &Z, &Z)
            .unwrap();
        assert_eq!(Arc::as_ptr(&back.bridges[0].tables[0]), before);
        assert_eq!(front1.bridges[0].tables[0].len(), n as usize);
        // and the next round replays the one insert onto front1
        let (front2, j2) = publish(&mut back);
        let again = Arc::try_unwrap(front1).ok().unwrap().reclaim(&front2, &j2);
        assert_eq!(rules(&again), rules(&front2));
    }

    #[test]
    fn only_the_tables_marked_changed_are_journaled_and_replayed() {
        let (mut master, front0) = published_br0();
        let bt = Arc::make_mut(&mut master.bridges[0]);
        for t in [3usize, 137, 254] {
            bt.table_mut(t)
                .insert(Arc::new(Rule::catch_all(t as u8, 1, Vec::new(), 0)), &Z, &Z)
                .unwrap();
        }
        let (front1, j1) = publish(&mut master);
        let mut tables: Vec<usize> = j1.iter().map(|(_, t, _)| *t).collect();
        tables.sort();
        assert_eq!(tables, vec![3, 137, 254]);
        assert_eq!(
            front1.bridges[0].dirty, [0; 4],
            "a publish clears the marks"
        );
        let back = Arc::try_unwrap(front0).ok().unwrap().reclaim(&front1, &j1);
        for t in [3usize, 137, 254] {
            assert_eq!(back.bridges[0].tables[t].len(), 1);
            assert!(!Arc::ptr_eq(
                &back.bridges[0].tables[t],
                &front1.bridges[0].tables[t]
            ));
        }
    }

    #[test]
    fn a_cleared_table_replays_as_one_step_and_later_changes_follow() {
        let (mut master, front0) = published_br0();
        for p in 1..=5u16 {
            table0(&mut master)
                .insert(Arc::new(Rule::catch_all(0, p, Vec::new(), 0)), &Z, &Z)
                .unwrap();
        }
        let (front1, j1) = publish(&mut master);
        // the master shares table 0 with front1 now: clearing it must not copy 5 rules
        let bt = Arc::make_mut(&mut master.bridges[0]);
        mark_dirty(&mut bt.dirty, 0);
        let gone = Table::clear(&mut bt.tables[0]);
        assert_eq!(gone.len(), 5);
        assert_eq!(
            front1.bridges[0].tables[0].len(),
            5,
            "the snapshot keeps its rules"
        );
        bt.table_mut(0)
            .insert(Arc::new(Rule::catch_all(0, 9, Vec::new(), 0)), &Z, &Z)
            .unwrap();
        let back0 = Arc::try_unwrap(front0).ok().unwrap().reclaim(&front1, &j1);
        assert_eq!(rules(&back0), rules(&front1));
        drop(back0);
        let (front2, j2) = publish(&mut master);
        let ops: Vec<_> = j2[0]
            .2
            .iter()
            .map(|o| matches!(o, TableOp::Clear))
            .collect();
        assert_eq!(ops, vec![true, false], "clear, then the insert");
        let back = Arc::try_unwrap(front1).ok().unwrap().reclaim(&front2, &j2);
        assert_eq!(rules(&back), rules(&front2));
        assert_eq!(rules(&back).len(), 1);
        assert!(!Arc::ptr_eq(
            &back.bridges[0].tables[0],
            &front2.bridges[0].tables[0]
        ));
    }

    #[test]
    fn change_scope_names_the_changed_tables_and_nothing_else() {
        use crate::pmd::Scope;
        let (mut master, front0) = published_br0();
        Arc::make_mut(&mut master.bridges[0])
            .table_mut(3)
            .insert(Arc::new(Rule::catch_all(3, 1, Vec::new(), 0)), &Z, &Z)
            .unwrap();
        let (front1, j1) = publish(&mut master);
        let (w, bit) = crate::pipeline::xlate::table_tag(0, 3);
        let mut want = [0u64; 4];
        want[w] = bit;
        assert_eq!(change_scope(&front0, &front1), Scope::Tables(want));
        // the reclaimed copy holds the same rules: nothing changed between it and front1
        let back = Arc::try_unwrap(front0).ok().unwrap().reclaim(&front1, &j1);
        assert_eq!(change_scope(&front1, &back), Scope::Tables([0; 4]));
        // anything but rules: all
        let mut ported = back;
        Arc::make_mut(&mut ported.bridges[0]).ports.insert(
            7,
            OfPort {
                ofport: 7,
                dp: 7,
                name: "p7".into(),
                config: 0,
                up: true,
            },
        );
        assert_eq!(change_scope(&front1, &ported), Scope::All);
    }

    #[test]
    fn a_replay_that_misses_a_change_falls_back_to_sharing() {
        let (mut master, front0) = published_br0();
        for p in 1..=3u16 {
            table0(&mut master)
                .insert(Arc::new(Rule::catch_all(0, p, Vec::new(), 0)), &Z, &Z)
                .unwrap();
        }
        let (front1, mut j1) = publish(&mut master);
        j1[0].2.pop(); // lose the last insert
        let back = Arc::try_unwrap(front0).ok().unwrap().reclaim(&front1, &j1);
        assert!(Arc::ptr_eq(
            &back.bridges[0].tables[0],
            &front1.bridges[0].tables[0]
        ));
        assert_eq!(rules(&back), rules(&front1));
    }
}
