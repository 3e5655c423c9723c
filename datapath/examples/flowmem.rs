//! Where the memory of installed flows goes: parses an add-flows file (e.g. `xvs-perf flowmod
//! --write-flows F`), applies it to one bridge's tables as the OpenFlow server does, and prints
//! the heap bytes per flow of the rules and of the classifiers (which exist twice in the
//! daemon: the copy the PMDs read and the one the control thread changes).
//!
//! `cargo run --release -p datapath --example flowmem -- FILE`

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering};
use std::sync::Arc;

use datapath::ofproto::mods;
use datapath::pipeline::tables::{BridgeTables, Pipeline, Table};

struct Counting;
static LIVE: AtomicIsize = AtomicIsize::new(0);

// SAFETY: forwards to the system allocator, only counting.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        LIVE.fetch_add(l.size() as isize, Ordering::Relaxed);
        // SAFETY: same layout contract as ours.
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        LIVE.fetch_sub(l.size() as isize, Ordering::Relaxed);
        // SAFETY: p was allocated by System with l.
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, n: usize) -> *mut u8 {
        LIVE.fetch_add(n as isize - l.size() as isize, Ordering::Relaxed);
        // SAFETY: p was allocated by System with l.
        unsafe { System.realloc(p, l, n) }
    }
}

#[global_allocator]
static A: Counting = Counting;

fn live() -> isize {
    LIVE.load(Ordering::Relaxed)
}

fn main() {
    let path = std::env::args().nth(1).expect("usage: flowmem FILE");
    let text = std::fs::read_to_string(&path).expect("read");
    let mut fms = Vec::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let spec = xvs_ofctl::flow::parse_flow(
            line,
            xvs_ofctl::flow::ParseFor::Mod(xvs_ofctl::flow::Command::Add),
            None,
        )
        .expect("parse");
        match xvs_ofctl::flow::encode_flow_mod(&spec, xvs_ofctl::field::proto::OF15_OXM)
            .expect("encode")
        {
            openflow::Message::FlowMod(fm) => fms.push(fm),
            _ => unreachable!(),
        }
    }
    let n = fms.len() as f64;
    let mut bt = BridgeTables::new("br0", 0, 1);
    let base = live();
    let mut changes = mods::Changes::default();
    for fm in &fms {
        mods::flow_mod(&mut bt, fm, 6, true, 0, &mut changes).expect("flow_mod");
        changes = mods::Changes::default();
    }
    // drop the journals (the daemon takes them at each publish)
    let mut p = Pipeline::default();
    p.bridges.push(Arc::new(bt));
    drop(p.take_journal());
    let bt = &p.bridges[0];
    let one = live() - base;
    let cls: usize = bt.tables.iter().map(|t| t.cls().memory_usage()).sum();
    let copy: Vec<Table> = bt.tables.iter().map(|t| (**t).clone()).collect();
    let two = live() - base;
    println!("flows {}", fms.len());
    println!(
        "bytes/flow, one copy of everything:      {:.0}",
        one as f64 / n
    );
    println!(
        "bytes/flow, the second copy of the tables: {:.0}",
        (two - one) as f64 / n
    );
    println!(
        "classifier estimate (memory_usage):       {:.0}",
        cls as f64 / n
    );
    println!(
        "  => rules + indexes:                     {:.0}",
        (one as f64 - cls as f64) / n
    );
    drop(copy);
    let rules: Vec<_> = bt
        .tables
        .iter()
        .flat_map(|t| t.cls().iter().map(|r| r.payload.clone()))
        .collect();
    let part = |name: &str, f: &dyn Fn() -> Box<dyn std::any::Any>| {
        let b = live();
        let x = f();
        println!("  {name:<28} {:.0}", (live() - b) as f64 / n);
        drop(x);
    };
    println!(
        "Rule struct (size_of)            {}",
        std::mem::size_of::<datapath::pipeline::tables::Rule>()
    );
    part("wire: match + instructions (clone)", &|| {
        Box::new(rules.iter().map(|r| r.wire.clone()).collect::<Vec<_>>())
    });
    part("ofpacts (clone)", &|| {
        Box::new(rules.iter().map(|r| r.ofpacts.clone()).collect::<Vec<_>>())
    });
    part("clauses (clone)", &|| {
        Box::new(rules.iter().map(|r| r.clauses.clone()).collect::<Vec<_>>())
    });
    part("gate index (clone)", &|| {
        Box::new(
            bt.tables
                .iter()
                .map(|t| t.gate_index().clone())
                .collect::<Vec<_>>(),
        )
    });
}
