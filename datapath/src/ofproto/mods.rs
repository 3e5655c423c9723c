//! Applying FLOW_MOD, GROUP_MOD, METER_MOD and TLV_TABLE_MOD to a bridge's tables, with the
//! semantics and error codes of ovs-vswitchd (ofproto.c): ADD replaces an identical flow
//! (keeping its counters unless reset_counts), MODIFY/DELETE are loose and filter by cookie
//! mask, out_port and out_group, the _STRICT forms need the exact match and priority, OpenFlow
//! 1.0/1.1 MODIFY adds when nothing matches, and deleting a group deletes the flows using it.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use openflow::action::ports;
use openflow::message::{FlowMod, GroupMod, MeterMod, TlvMap};
use openflow::{Field, Match, OfpErr};

use crate::pipeline::flow::{loc, PKey, PKEY_WORDS};
use crate::pipeline::ofpact::{self, Ofpact};
use crate::pipeline::tables::{
    mark_dirty, BridgeTables, Bucket, Group, Rule, RuleStats, RuleWire, Table,
};

/// The last table, read-only (OVS uses it for internal flows and hides it).
pub const HIDDEN_TABLE: u8 = 254;

/// Flow-mod commands.
pub mod cmd {
    pub const ADD: u8 = 0;
    pub const MODIFY: u8 = 1;
    pub const MODIFY_STRICT: u8 = 2;
    pub const DELETE: u8 = 3;
    pub const DELETE_STRICT: u8 = 4;
}

/// OFPFF_* flags.
pub mod flags {
    pub const SEND_FLOW_REM: u16 = 1;
    pub const CHECK_OVERLAP: u16 = 2;
    pub const RESET_COUNTS: u16 = 4;
}

/// Flow-removed reasons.
pub mod reason {
    pub const IDLE_TIMEOUT: u8 = 0;
    pub const HARD_TIMEOUT: u8 = 1;
    pub const DELETE: u8 = 2;
    pub const GROUP_DELETE: u8 = 3;
    pub const METER_DELETE: u8 = 4;
}

/// A failed modification: the OpenFlow error and a human text for the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModError {
    pub err: OfpErr,
    pub why: String,
}

fn fail<T>(err: OfpErr, why: impl Into<String>) -> Result<T, ModError> {
    Err(ModError {
        err,
        why: why.into(),
    })
}

/// A rule a modification removed, for FLOW_REMOVED messages.
pub struct Removed {
    pub rule: Arc<Rule>,
    pub reason: u8,
}

/// What a modification did, for FLOW_REMOVED messages and flow monitors.
#[derive(Default)]
pub struct Changes {
    pub removed: Vec<Removed>,
    pub added: Vec<Arc<Rule>>,
    pub modified: Vec<Arc<Rule>>,
    /// Rules that a modify or an identical add replaced (their learn actions are gone
    /// unless the new rule has them too: see `delete_learned`).
    pub replaced: Vec<Arc<Rule>>,
}

/// Converts a match into the pipeline key's (value, mask). Also returns the NXM cookie
/// pseudo-field (value, mask) when present.
/// (value, mask, NXM cookie filter) of a match.
pub type KeyedMatch = (PKey, PKey, Option<(u64, u64)>);

pub fn match_to_key(m: &Match) -> Result<KeyedMatch, ModError> {
    let mut value = [0u64; PKEY_WORDS];
    let mut mask = [0u64; PKEY_WORDS];
    let mut cookie = None;
    for f in &m.fields {
        if f.field == Field::Cookie {
            cookie = Some((f.value_u128() as u64, f.mask_u128() as u64));
            continue;
        }
        let Some(l) = loc(f.field) else {
            return fail(
                OfpErr::OFPBMC_BAD_FIELD,
                format!("match field {} is not supported", f.field.info().name),
            );
        };
        let mut v = f.value_u128();
        let mut mk = f.mask_u128();
        if f.field == Field::InPort {
            // OpenFlow 1.0 / NXM 16-bit port: reserved ports move to the 32-bit range
            v = openflow::action::port_from_of10(v as u16) as u128;
            mk = if mk & 0xffff == 0xffff {
                0xffff_ffff
            } else {
                mk
            };
        }
        if let Field::TunMetadata(_) = f.field {
            // tun_metadata values are left-aligned to the option length
            let bytes = f.value.len().min(8);
            if bytes < 16 {
                let _ = bytes;
            }
        }
        l.set_masked(&mut value, v, mk);
        l.or_mask(&mut mask, mk);
    }
    for i in 0..PKEY_WORDS {
        value[i] &= mask[i];
    }
    Ok((value, mask, cookie))
}

fn cookie_ok(rule: &Rule, cookie: u64, cookie_mask: u64) -> bool {
    rule.cookie & cookie_mask == cookie & cookie_mask
}

fn out_ok(rule: &Rule, out_port: u32, out_group: u32) -> bool {
    (out_port == ports::ANY || ofpact::outputs_to(&rule.ofpacts, out_port))
        && (out_group == 0xffff_ffff || ofpact::outputs_to_group(&rule.ofpacts, out_group))
}

/// Applies one flow mod. `table_ext`: the OpenFlow 1.0 connection enabled the flow_mod_table_id
/// extension (otherwise 1.0 flow mods address table 0 / all tables).
pub fn flow_mod(
    bt: &mut BridgeTables,
    fm: &FlowMod,
    version: u8,
    table_ext: bool,
    now_ms: u64,
    changes: &mut Changes,
) -> Result<(), ModError> {
    if fm.buffer_id != 0xffff_ffff && fm.command <= cmd::MODIFY_STRICT {
        return fail(
            OfpErr::OFPBRC_BUFFER_UNKNOWN,
            "this switch buffers no packets",
        );
    }
    let table = if version == 1 && !table_ext {
        255
    } else {
        fm.table_id
    };
    if table == HIDDEN_TABLE && fm.command <= cmd::MODIFY_STRICT {
        // OVS keeps table 254 for internal flows, read-only to controllers
        return fail(OfpErr::OFPBRC_EPERM, "table 254 is read-only");
    }
    let m = fm.match_.to_match();
    let (value, mask, nx_cookie) = match_to_key(&m)?;
    let (cookie_f, cookie_mask_f) = nx_cookie.unwrap_or((fm.cookie, fm.cookie_mask));
    match fm.command {
        cmd::ADD => {
            let t = if table == 255 {
                if version >= 3 {
                    return fail(OfpErr::OFPFMFC_BAD_TABLE_ID, "add to table 255");
                }
                0
            } else {
                table
            };
            add(bt, fm, t, version, value, mask, m, now_ms, changes)
        }
        cmd::MODIFY | cmd::MODIFY_STRICT => {
            let strict = fm.command == cmd::MODIFY_STRICT;
            let tables: Vec<u8> = if table == 255 {
                (0..254).collect()
            } else {
                vec![table]
            };
            let mut n = 0;
            for t in tables {
                let Some(tab) = bt.tables.get_mut(t as usize) else {
                    continue;
                };
                // (marked even if nothing matches: take_journal then finds an empty journal)
                mark_dirty(&mut bt.dirty, t as usize);
                if tab.is_empty() {
                    continue;
                }
                let ids: Vec<_> = if strict {
                    tab.cls()
                        .find_exact(&value, &mask, fm.priority as u32)
                        .into_iter()
                        .collect()
                } else {
                    tab.cls()
                        .iter_covered_by(&value, &mask)
                        .map(|r| r.id)
                        .collect()
                };
                for id in ids {
                    let Some(old) = tab.cls().get(id).cloned() else {
                        continue;
                    };
                    if !cookie_ok(&old, cookie_f, cookie_mask_f) {
                        continue;
                    }
                    let ofpacts =
                        ofpact::from_instructions(&fm.instructions, t).map_err(|r| ModError {
                            err: r.err,
                            why: r.why,
                        })?;
                    let reset = openflow::compat::flow_flags_kept(fm.flags, version, fm.command)
                        & flags::RESET_COUNTS
                        != 0;
                    let new = Rule {
                        table: t,
                        priority: old.priority,
                        // OpenFlow 1.0 (and NXT_FLOW_MOD) carry the new cookie in the
                        // header; all ones means "keep" (OVS ofputil_decode_flow_mod sets
                        // new_cookie, modify_flows applies it). Later versions keep it.
                        cookie: if version == 1 && fm.cookie != u64::MAX {
                            fm.cookie
                        } else {
                            old.cookie
                        },
                        wire: old.wire.with_instructions(&fm.instructions, version),
                        clauses: Rule::conjunction_clauses(&ofpacts),
                        ofpacts,
                        flags: old.flags,
                        idle_timeout: old.idle_timeout,
                        hard_timeout: old.hard_timeout,
                        importance: old.importance,
                        created_ms: if reset { now_ms } else { old.created_ms },
                        stats: if reset {
                            Arc::new(RuleStats::default())
                        } else {
                            old.stats.clone()
                        },
                        of_version: version,
                    };
                    let tab = Arc::make_mut(tab);
                    let new = Arc::new(new);
                    if tab.replace(id, new.clone()) {
                        changes.modified.push(new);
                        changes.replaced.push(old);
                    }
                    n += 1;
                }
            }
            if n == 0 && version <= 2 && table != 255 {
                // OpenFlow 1.0/1.1: a modify that matches nothing adds
                return add(bt, fm, table, version, value, mask, m, now_ms, changes);
            }
            if n == 0 && version <= 2 && table == 255 {
                return add(bt, fm, 0, version, value, mask, m, now_ms, changes);
            }
            Ok(())
        }
        cmd::DELETE | cmd::DELETE_STRICT => {
            let strict = fm.command == cmd::DELETE_STRICT;
            let tables: Vec<u8> = if table == 255 {
                (0..254).collect()
            } else {
                vec![table]
            };
            for t in tables {
                let Some(tab) = bt.tables.get_mut(t as usize) else {
                    continue;
                };
                // (marked even if nothing matches: take_journal then finds an empty journal)
                mark_dirty(&mut bt.dirty, t as usize);
                if tab.is_empty() {
                    continue;
                }
                let ids: Vec<_> = if strict {
                    tab.cls()
                        .find_exact(&value, &mask, fm.priority as u32)
                        .into_iter()
                        .collect()
                } else if mask.iter().all(|&w| w == 0) {
                    tab.cls().iter().map(|r| r.id).collect()
                } else {
                    tab.cls()
                        .iter_covered_by(&value, &mask)
                        .map(|r| r.id)
                        .collect()
                };
                let ids: Vec<_> = ids
                    .into_iter()
                    .filter(|id| {
                        tab.cls().get(*id).is_some_and(|r| {
                            cookie_ok(r, cookie_f, cookie_mask_f)
                                && out_ok(r, fm.out_port, fm.out_group)
                        })
                    })
                    .collect();
                if ids.is_empty() {
                    continue;
                }
                if ids.len() == tab.len() {
                    // every rule goes (`del-flows`): a fresh table, not a copy of the shared
                    // one emptied rule by rule and replayed so on the other copy
                    for r in Table::clear(tab) {
                        changes.removed.push(Removed {
                            rule: r,
                            reason: reason::DELETE,
                        });
                    }
                    continue;
                }
                let tab = Arc::make_mut(tab);
                for id in ids {
                    if let Some(r) = tab.remove(id) {
                        changes.removed.push(Removed {
                            rule: r,
                            reason: reason::DELETE,
                        });
                    }
                }
            }
            Ok(())
        }
        c => fail(OfpErr::OFPFMFC_BAD_COMMAND, format!("flow mod command {c}")),
    }
}

#[allow(clippy::too_many_arguments)]
fn add(
    bt: &mut BridgeTables,
    fm: &FlowMod,
    table: u8,
    version: u8,
    value: PKey,
    mask: PKey,
    m: Match,
    now_ms: u64,
    changes: &mut Changes,
) -> Result<(), ModError> {
    if table as usize >= bt.tables.len() {
        return fail(OfpErr::OFPFMFC_BAD_TABLE_ID, format!("table {table}"));
    }
    let ofpacts = ofpact::from_instructions(&fm.instructions, table).map_err(|r| ModError {
        err: r.err,
        why: r.why,
    })?;
    check_conjunction(&ofpacts)?;
    check_refs(bt, &ofpacts)?;
    let tab = bt.table_mut(table as usize);
    if fm.flags & flags::CHECK_OVERLAP != 0
        && tab.cls().has_overlap(&value, &mask, fm.priority as u32)
    {
        return fail(OfpErr::OFPFMFC_OVERLAP, "overlapping flow");
    }
    let mut stats = Arc::new(RuleStats::default());
    if let Some(id) = tab.cls().find_exact(&value, &mask, fm.priority as u32) {
        // an identical flow is replaced; OVS keeps its counters unless reset_counts, and its
        // duration restarts (OVS keeps the creation time only for a modify)
        if let Some(old) = tab.remove(id) {
            if openflow::compat::flow_flags_kept(fm.flags, version, fm.command)
                & flags::RESET_COUNTS
                == 0
            {
                stats = old.stats.clone();
            }
            changes.replaced.push(old);
        }
    }
    let rule = Rule {
        table,
        priority: fm.priority,
        cookie: fm.cookie,
        wire: RuleWire::new(&m, &fm.instructions, version),
        clauses: Rule::conjunction_clauses(&ofpacts),
        ofpacts,
        flags: openflow::compat::flow_flags_kept(fm.flags, version, fm.command),
        idle_timeout: fm.idle_timeout,
        hard_timeout: fm.hard_timeout,
        importance: fm.importance,
        created_ms: now_ms,
        stats,
        of_version: version,
    };
    let rule = Arc::new(rule);
    tab.insert(rule.clone(), &value, &mask)
        .map_err(|e| ModError {
            err: OfpErr::NXBAC_BAD_CONJUNCTION,
            why: e,
        })?;
    changes.added.push(rule);
    Ok(())
}

/// OVS requires `conjunction` actions to be the only actions of their flow.
fn check_conjunction(acts: &[Ofpact]) -> Result<(), ModError> {
    let n = acts
        .iter()
        .filter(|a| matches!(a, Ofpact::Conjunction { .. }))
        .count();
    if n > 0 && n != acts.len() {
        return fail(
            OfpErr::NXBAC_BAD_CONJUNCTION,
            "conjunction must be the only action of its flow",
        );
    }
    Ok(())
}

/// Group commands.
pub mod gcmd {
    pub const ADD: u16 = 0;
    pub const MODIFY: u16 = 1;
    pub const DELETE: u16 = 2;
    pub const INSERT_BUCKET: u16 = 3;
    pub const REMOVE_BUCKET: u16 = 5;
}

pub const GROUP_ALL: u32 = 0xffff_fffc;
pub const GROUP_ANY: u32 = 0xffff_ffff;

fn build_group(gm: &GroupMod, version: u8, now_ms: u64) -> Result<Group, ModError> {
    if gm.group_type > 3 {
        return fail(
            OfpErr::OFPGMFC_BAD_TYPE,
            format!("group type {}", gm.group_type),
        );
    }
    if gm.group_id > 0xffff_ff00 {
        return fail(
            OfpErr::OFPGMFC_INVALID_GROUP,
            format!("group id {:#x}", gm.group_id),
        );
    }
    let mut buckets = Vec::new();
    for b in &gm.buckets {
        let ofpacts = ofpact::from_actions(&b.actions, 0).map_err(|r| ModError {
            err: r.err,
            why: r.why,
        })?;
        buckets.push(Bucket {
            bucket_id: b.bucket_id,
            weight: b
                .weight
                .unwrap_or(1)
                .max(if gm.group_type == 1 { 0 } else { 1 }),
            watch_port: b.watch_port.unwrap_or(ports::ANY),
            watch_group: b.watch_group.unwrap_or(GROUP_ANY),
            ofpacts,
            stats: Arc::new(RuleStats::default()),
        });
    }
    if gm.group_type == 2 && buckets.len() != 1 {
        return fail(
            OfpErr::OFPGMFC_BAD_BUCKET,
            "an indirect group has exactly one bucket",
        );
    }
    Ok(Group {
        group_id: gm.group_id,
        group_type: gm.group_type,
        buckets,
        desc: gm.clone(),
        selection_method: String::new(),
        stats: Arc::new(RuleStats::default()),
        created_ms: now_ms,
        of_version: version,
    })
}

/// Applies one group mod.
pub fn group_mod(
    bt: &mut BridgeTables,
    gm: &GroupMod,
    version: u8,
    now_ms: u64,
    changes: &mut Changes,
) -> Result<(), ModError> {
    match gm.command {
        gcmd::ADD => {
            if bt.groups.contains_key(&gm.group_id) {
                return fail(
                    OfpErr::OFPGMFC_GROUP_EXISTS,
                    format!("group {}", gm.group_id),
                );
            }
            let g = build_group(gm, version, now_ms)?;
            bt.groups.insert(gm.group_id, Arc::new(g));
            Ok(())
        }
        gcmd::MODIFY => {
            let Some(old) = bt.groups.get(&gm.group_id) else {
                return fail(
                    OfpErr::OFPGMFC_UNKNOWN_GROUP,
                    format!("group {}", gm.group_id),
                );
            };
            let mut g = build_group(gm, version, now_ms)?;
            g.stats = old.stats.clone();
            g.created_ms = old.created_ms;
            bt.groups.insert(gm.group_id, Arc::new(g));
            Ok(())
        }
        gcmd::DELETE => {
            let ids: Vec<u32> = if gm.group_id == GROUP_ALL {
                bt.groups.keys().copied().collect()
            } else if bt.groups.contains_key(&gm.group_id) {
                vec![gm.group_id]
            } else {
                Vec::new() // deleting a missing group is not an error
            };
            for id in ids {
                bt.groups.remove(&id);
                delete_flows_using_group(bt, id, changes);
            }
            Ok(())
        }
        gcmd::INSERT_BUCKET | gcmd::REMOVE_BUCKET => fail(
            OfpErr::OFPGMFC_BAD_COMMAND,
            "insert/remove bucket is not supported",
        ),
        c => fail(OfpErr::OFPGMFC_BAD_COMMAND, format!("group command {c}")),
    }
}

/// Refuses a flow whose actions name a group or a meter that does not exist, as OVS does
/// (ofproto.c ofproto_check_ofpacts): OFPBAC_BAD_OUT_GROUP, OFPMMFC_INVALID_METER. Checks
/// modifies; an add checks the actions it compiles ([`add`], so they are compiled once) and
/// deletes have none. Actions that fail to normalize are left for `flow_mod` to refuse with
/// its own error.
pub fn check_references(bt: &BridgeTables, fm: &FlowMod) -> Result<(), ModError> {
    if fm.command == cmd::ADD || fm.command > cmd::MODIFY_STRICT {
        return Ok(());
    }
    let Ok(acts) = ofpact::from_instructions(&fm.instructions, fm.table_id) else {
        return Ok(());
    };
    check_refs(bt, &acts)
}

fn check_refs(bt: &BridgeTables, acts: &[Ofpact]) -> Result<(), ModError> {
    for a in acts {
        match a {
            Ofpact::Group(g) if !bt.groups.contains_key(g) => {
                return fail(
                    OfpErr::OFPBAC_BAD_OUT_GROUP,
                    format!("group {g} does not exist"),
                )
            }
            Ofpact::Meter(m) if !bt.meters.contains_key(m) => {
                return fail(
                    OfpErr::OFPMMFC_INVALID_METER,
                    format!("meter {m} does not exist"),
                )
            }
            Ofpact::Clone(inner) | Ofpact::WriteActions(inner) => check_refs(bt, inner)?,
            _ => {}
        }
    }
    Ok(())
}

/// Deletes the flows whose meter instruction names `meter` (OFPRR_METER_DELETE), as OVS does
/// when a meter is deleted. `meter` METER_ALL: every metered flow.
pub fn delete_flows_using_meter(bt: &mut BridgeTables, meter: u32, changes: &mut Changes) {
    let uses = |acts: &[Ofpact]| {
        let mut v = Vec::new();
        meters_used(acts, &mut v);
        v.iter().any(|m| meter == METER_ALL || *m == meter)
    };
    delete_flows_where(bt, uses, reason::METER_DELETE, changes);
}

fn delete_flows_using_group(bt: &mut BridgeTables, group: u32, changes: &mut Changes) {
    let uses = |acts: &[Ofpact]| ofpact::outputs_to_group(acts, group);
    delete_flows_where(bt, uses, reason::GROUP_DELETE, changes);
}

/// Removes every flow whose actions satisfy `uses`, reporting them with `why` (OFPRR_*).
fn delete_flows_where(
    bt: &mut BridgeTables,
    uses: impl Fn(&[Ofpact]) -> bool,
    why: u8,
    changes: &mut Changes,
) {
    for (t, tab) in bt.tables.iter_mut().enumerate() {
        if tab.is_empty() {
            continue;
        }
        mark_dirty(&mut bt.dirty, t);
        let ids: Vec<_> = tab
            .cls()
            .iter()
            .filter(|r| uses(&r.payload.ofpacts))
            .map(|r| r.id)
            .collect();
        if ids.is_empty() {
            continue;
        }
        let t: &mut Table = Arc::make_mut(tab);
        for id in ids {
            if let Some(r) = t.remove(id) {
                changes.removed.push(Removed {
                    rule: r,
                    reason: why,
                });
            }
        }
    }
}

/// The meters an action list names, nested lists (clone, write-actions) included, as
/// `check_refs` checks them.
fn meters_used(acts: &[Ofpact], out: &mut Vec<u32>) {
    for a in acts {
        match a {
            Ofpact::Meter(m) => out.push(*m),
            Ofpact::Clone(inner) | Ofpact::WriteActions(inner) => meters_used(inner, out),
            _ => {}
        }
    }
}

/// How many flows use each meter (meter stats `flow_count`; OVS counts the rules attached to
/// the meter, each once).
pub fn meter_flow_counts(bt: &BridgeTables) -> HashMap<u32, u32> {
    let mut n: HashMap<u32, u32> = HashMap::new();
    if bt.meters.is_empty() {
        return n;
    }
    let mut seen = Vec::new();
    for t in &bt.tables {
        for r in t.cls().iter() {
            seen.clear();
            meters_used(&r.payload.ofpacts, &mut seen);
            seen.sort_unstable();
            seen.dedup();
            for m in &seen {
                *n.entry(*m).or_default() += 1;
            }
        }
    }
    n
}

pub use crate::pipeline::meter::{Meter, MF_BURST, MF_KBPS, MF_PKTPS, MF_STATS};

pub const METER_ALL: u32 = 0xffff_ffff;
/// OFPMC_DELETE.
pub const METER_DELETE: u16 = 2;
/// How many meters a bridge holds (meter features `max_meter`).
pub const MAX_METERS: usize = 65535;

/// Applies one meter mod to a bridge's meters.
pub fn meter_mod(meters: &mut HashMap<u32, Arc<Meter>>, mm: &MeterMod) -> Result<(), ModError> {
    const ADD: u16 = 0;
    const MODIFY: u16 = 1;
    const DELETE: u16 = METER_DELETE;
    let make = |mm: &MeterMod, created: Instant| -> Result<Arc<Meter>, ModError> {
        if mm.flags & (MF_KBPS | MF_PKTPS) == (MF_KBPS | MF_PKTPS) {
            return fail(OfpErr::OFPMMFC_BAD_FLAGS, "both kbps and pktps");
        }
        if mm.bands.len() > 1 {
            return fail(OfpErr::OFPMMFC_BAD_BAND, "one band per meter");
        }
        for b in &mm.bands {
            if b.band_type != 1 {
                return fail(OfpErr::OFPMMFC_BAD_BAND, "only drop bands are supported");
            }
            if b.rate == 0 {
                return fail(OfpErr::OFPMMFC_BAD_RATE, "rate 0");
            }
        }
        Ok(Arc::new(Meter::new(mm.flags, &mm.bands, created)))
    };
    match mm.command {
        ADD => {
            if mm.meter_id == 0 || mm.meter_id > 0xffff_0000 {
                return fail(
                    OfpErr::OFPMMFC_INVALID_METER,
                    format!("meter {}", mm.meter_id),
                );
            }
            if meters.contains_key(&mm.meter_id) {
                return fail(
                    OfpErr::OFPMMFC_METER_EXISTS,
                    format!("meter {}", mm.meter_id),
                );
            }
            if meters.len() >= MAX_METERS {
                return fail(
                    OfpErr::OFPMMFC_OUT_OF_METERS,
                    format!("{MAX_METERS} meters"),
                );
            }
            meters.insert(mm.meter_id, make(mm, Instant::now())?);
            Ok(())
        }
        MODIFY => {
            let Some(old) = meters.get(&mm.meter_id) else {
                return fail(
                    OfpErr::OFPMMFC_UNKNOWN_METER,
                    format!("meter {}", mm.meter_id),
                );
            };
            // a new meter (full bucket, zeroed counters: dpif-netdev replaces its dp_meter);
            // the duration keeps counting from the add (ofproto.c meter_update)
            let m = make(mm, old.created)?;
            meters.insert(mm.meter_id, m);
            Ok(())
        }
        DELETE => {
            if mm.meter_id == METER_ALL {
                meters.clear();
            } else {
                meters.remove(&mm.meter_id);
            }
            Ok(())
        }
        c => fail(OfpErr::OFPMMFC_BAD_COMMAND, format!("meter command {c}")),
    }
}

/// Applies a TLV table mod (Geneve option → tun_metadata index mappings).
pub fn tlv_mod(maps: &mut Vec<TlvMap>, command: u16, new: &[TlvMap]) -> Result<(), ModError> {
    const ADD: u16 = 0;
    const DELETE: u16 = 1;
    const CLEAR: u16 = 2;
    match command {
        ADD => {
            for m in new {
                if m.index >= 64 {
                    return fail(OfpErr::NXTTMFC_BAD_FIELD_IDX, format!("index {}", m.index));
                }
                if m.option_len % 4 != 0 || m.option_len > 124 {
                    return fail(
                        OfpErr::NXTTMFC_BAD_OPT_LEN,
                        format!("length {}", m.option_len),
                    );
                }
                if let Some(e) = maps.iter().find(|e| e.index == m.index) {
                    if e != m {
                        return fail(OfpErr::NXTTMFC_ALREADY_MAPPED, format!("index {}", m.index));
                    }
                    continue;
                }
                if maps
                    .iter()
                    .any(|e| e.option_class == m.option_class && e.option_type == m.option_type)
                {
                    return fail(OfpErr::NXTTMFC_DUP_ENTRY, "option already mapped");
                }
                maps.push(*m);
            }
            Ok(())
        }
        DELETE => {
            maps.retain(|e| !new.iter().any(|m| m.index == e.index));
            Ok(())
        }
        CLEAR => {
            maps.clear();
            Ok(())
        }
        c => fail(OfpErr::NXTTMFC_BAD_COMMAND, format!("TLV command {c}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use openflow::action::Action;
    use openflow::types::MatchRepr;
    use openflow::{Instruction, MatchField};

    fn fm(command: u8, prio: u16, fields: Vec<MatchField>, out: u32) -> FlowMod {
        FlowMod {
            cookie: 0x10,
            cookie_mask: 0,
            table_id: 0,
            command,
            idle_timeout: 0,
            hard_timeout: 0,
            priority: prio,
            buffer_id: 0xffff_ffff,
            out_port: ports::ANY,
            out_group: 0xffff_ffff,
            flags: 0,
            importance: 0,
            match_: MatchRepr::Oxm(Match { fields }),
            instructions: vec![Instruction::ApplyActions(vec![Action::Output {
                port: out,
                max_len: 0,
            }])],
        }
    }

    fn reg(n: u8, v: u32) -> MatchField {
        MatchField::new(Field::Reg(n), 6, v.to_be_bytes().to_vec(), None).unwrap()
    }

    #[test]
    fn add_modify_delete_with_filters() {
        let mut bt = BridgeTables::new("br", 0, 1);
        let mut rm = Changes::default();
        flow_mod(
            &mut bt,
            &fm(cmd::ADD, 10, vec![reg(0, 1)], 1),
            6,
            false,
            0,
            &mut rm,
        )
        .unwrap();
        flow_mod(
            &mut bt,
            &fm(cmd::ADD, 10, vec![reg(0, 2)], 2),
            6,
            false,
            0,
            &mut rm,
        )
        .unwrap();
        flow_mod(
            &mut bt,
            &fm(cmd::ADD, 20, vec![reg(0, 2)], 3),
            6,
            false,
            0,
            &mut rm,
        )
        .unwrap();
        // identical add replaces
        flow_mod(
            &mut bt,
            &fm(cmd::ADD, 10, vec![reg(0, 1)], 4),
            6,
            false,
            0,
            &mut rm,
        )
        .unwrap();
        assert_eq!(bt.n_flows(), 3);
        // strict modify touches one flow
        flow_mod(
            &mut bt,
            &fm(cmd::MODIFY_STRICT, 20, vec![reg(0, 2)], 9),
            6,
            false,
            0,
            &mut rm,
        )
        .unwrap();
        let outs: Vec<bool> = bt.tables[0]
            .cls()
            .iter()
            .map(|r| ofpact::outputs_to(&r.payload.ofpacts, 9))
            .collect();
        assert_eq!(outs.iter().filter(|x| **x).count(), 1);
        // loose delete with an out_port filter
        let mut d = fm(cmd::DELETE, 0, vec![], 0);
        d.out_port = 2;
        flow_mod(&mut bt, &d, 6, false, 0, &mut rm).unwrap();
        assert_eq!(bt.n_flows(), 2);
        assert_eq!(rm.removed.len(), 1);
        // delete all (table 255)
        let mut d = fm(cmd::DELETE, 0, vec![], 0);
        d.table_id = 255;
        flow_mod(&mut bt, &d, 6, false, 0, &mut rm).unwrap();
        assert_eq!(bt.n_flows(), 0);
    }

    #[test]
    fn errors_are_openflow_errors() {
        let mut bt = BridgeTables::new("br", 0, 1);
        let mut rm = Changes::default();
        let mut f = fm(cmd::ADD, 1, vec![], 1);
        f.table_id = 255;
        assert_eq!(
            flow_mod(&mut bt, &f, 6, false, 0, &mut rm).unwrap_err().err,
            OfpErr::OFPFMFC_BAD_TABLE_ID
        );
        let mut f = fm(cmd::ADD, 1, vec![], 1);
        f.buffer_id = 7;
        assert_eq!(
            flow_mod(&mut bt, &f, 6, false, 0, &mut rm).unwrap_err().err,
            OfpErr::OFPBRC_BUFFER_UNKNOWN
        );
        let mut f = fm(cmd::ADD, 5, vec![reg(1, 1)], 1);
        f.flags = flags::CHECK_OVERLAP;
        flow_mod(&mut bt, &f, 6, false, 0, &mut rm).unwrap();
        let mut g = fm(cmd::ADD, 5, vec![], 1);
        g.flags = flags::CHECK_OVERLAP;
        assert_eq!(
            flow_mod(&mut bt, &g, 6, false, 0, &mut rm).unwrap_err().err,
            OfpErr::OFPFMFC_OVERLAP
        );
    }
}
