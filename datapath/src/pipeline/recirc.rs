//! Recirculation: where a packet resumes after `ct(table=N)` sent it through the connection
//! tracker. Translation freezes the pipeline-only state (metadata, registers, OpenFlow in_port,
//! the field stack) with the table to resume in, and names it by a recirculation id the
//! datapath carries in the packet's key (`recirc_id`). The recirculated packet looks up the
//! megaflow cache again with that id and the ct_* fields the tracker set; on a miss,
//! translation starts from the frozen state instead of table 0.
//!
//! Identical frozen states share one id (as OVS's recirc_id_node dedup does), so a megaflow per
//! (state, packet class) is all recirculation costs in the cache: a busy connection never
//! allocates ids. Ids are kept for the daemon's life; the table is bounded.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use super::flow::PIPE_WORDS;

/// Frozen translation state (OVS: struct frozen_state, without the actions: `ct(table=N)`
/// forks, so nothing of the current action list continues in the recirculated copy).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct RecircState {
    pub bridge: u8,
    pub table: u8,
    /// Pipeline words (metadata, registers, OpenFlow in_port, actset_output).
    pub pipe: [u64; PIPE_WORDS],
    pub stack: Vec<u128>,
}

/// Most frozen states kept. Registers are part of the state (OVN keeps addresses and ports in
/// them across `ct()`), so a busy node can mint many; past this the table starts afresh.
pub const MAX_STATES: usize = 1 << 16;

struct Inner {
    ids: HashMap<Arc<RecircState>, u32>,
    states: HashMap<u32, Arc<RecircState>>,
    /// Ids are never reused (a PMD's cache may still hold flows of a forgotten id: a new id
    /// must not match them).
    next: u32,
}

impl Default for Inner {
    fn default() -> Self {
        Inner {
            ids: HashMap::new(),
            states: HashMap::new(),
            next: 1,
        }
    }
}

/// The id ↔ state table, shared by every PMD (touched only on upcalls, never per packet).
#[derive(Default)]
pub struct RecircTable {
    inner: Mutex<Inner>,
    /// Set when the table started afresh: the control thread then invalidates the caches so
    /// megaflows of forgotten ids go (their packets would otherwise miss and be dropped).
    pub cleared: AtomicBool,
}

impl RecircTable {
    /// The id of `st`, allocating one (0 means "not recirculated" and is never given).
    pub fn intern(&self, st: RecircState) -> Option<u32> {
        let mut g = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(&id) = g.ids.get(&st) {
            return Some(id);
        }
        if g.states.len() >= MAX_STATES {
            g.ids.clear();
            g.states.clear();
            self.cleared.store(true, Ordering::Release);
        }
        let id = g.next;
        g.next = g.next.checked_add(1)?;
        let st = Arc::new(st);
        g.states.insert(id, st.clone());
        g.ids.insert(st, id);
        Some(id)
    }

    pub fn get(&self, id: u32) -> Option<Arc<RecircState>> {
        let g = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        g.states.get(&id).cloned()
    }

    pub fn len(&self) -> usize {
        self.inner.lock().map(|g| g.states.len()).unwrap_or(0)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether the table started afresh since the last call.
    pub fn take_cleared(&self) -> bool {
        self.cleared.swap(false, Ordering::AcqRel)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identical_states_share_an_id_and_ids_start_at_one() {
        let t = RecircTable::default();
        let s = |table: u8, r: u64| RecircState {
            bridge: 0,
            table,
            pipe: [r; PIPE_WORDS],
            stack: vec![],
        };
        let a = t.intern(s(10, 1)).unwrap();
        let b = t.intern(s(10, 2)).unwrap();
        assert_eq!(a, 1);
        assert_ne!(a, b);
        assert_eq!(t.intern(s(10, 1)), Some(a));
        assert_eq!(t.get(b).unwrap().pipe[0], 2);
        assert!(t.get(0).is_none());
        assert!(t.get(99).is_none());
        assert_eq!(t.len(), 2);
        assert!(!t.take_cleared());
    }

    #[test]
    fn a_full_table_starts_afresh_without_reusing_ids() {
        let t = RecircTable::default();
        let s = |r: u64| RecircState {
            bridge: 0,
            table: 1,
            pipe: [r; PIPE_WORDS],
            stack: vec![],
        };
        let first = t.intern(s(0)).unwrap();
        for r in 1..MAX_STATES as u64 {
            t.intern(s(r)).unwrap();
        }
        assert!(!t.take_cleared());
        let next = t.intern(s(u64::MAX)).unwrap();
        assert!(t.take_cleared());
        assert_eq!(t.len(), 1);
        assert!(t.get(first).is_none(), "forgotten");
        assert!(next > MAX_STATES as u32, "ids are not reused");
        assert_ne!(t.intern(s(0)).unwrap(), first);
    }
}
