//! Control-socket commands. Names follow OVS where OVS has the command (`dpif/show`, `fdb/show`,
//! `coverage/show`, `dpif-netdev/pmd-stats-show`), so operators' habits and scripts carry over.

use std::fmt::Write as _;
use std::sync::atomic::Ordering;

use control::{Registry, Request};

use crate::daemon::State;
use crate::packet::Mac;
use crate::stats::{Cov, PmdStat, PortStat};

pub fn registry() -> Registry {
    let mut r = Registry::new();
    r.register("list-commands", "", 0, 0);
    r.register("version", "", 0, 0);
    r.register("exit", "[--cleanup]", 0, 1);
    r.register("dpif/show", "", 0, 0);
    r.register("pmd/stats", "", 0, 0);
    r.register("pmd/stats-clear", "", 0, 0);
    r.register("dpif-netdev/pmd-stats-show", "", 0, 0);
    r.register("dpif-netdev/pmd-stats-clear", "", 0, 0);
    r.register("dpif-netdev/pmd-rxq-show", "", 0, 0);
    r.register("fdb/show", "bridge", 1, 1);
    r.register("fdb/flush", "[bridge]", 0, 1);
    r.register("coverage/show", "", 0, 0);
    r.register("memory/show", "", 0, 0);
    r.register("dpctl/dump-flows", "[-m] [dp]", 0, 2);
    r.register(
        "ofproto/trace",
        "bridge {[dp_name] odp_flow | bridge br_flow} [--ct-next FLAGS]...",
        1,
        12,
    );
    r.register("dpif/dump-flows", "[-m] [bridge]", 0, 2);
    r.register("dpif/add-port", "bridge iface[,opt=val...] [ofport]", 2, 3);
    r.register("dpif/del-port", "bridge iface", 2, 2);
    r.register("tnl/neigh/show", "", 0, 0);
    r.register("tnl/arp/show", "", 0, 0);
    r.register("tnl/neigh/flush", "", 0, 0);
    r.register("tnl/arp/flush", "", 0, 0);
    r.register("tnl/neigh/set", "BRIDGE IP MAC", 3, 3);
    r.register("tnl/arp/set", "BRIDGE IP MAC", 3, 3);
    r.register("tnl/ports/show", "[-v]", 0, 1);
    r.register("ovs/route/show", "[table=all|id]", 0, 1);
    r.register("vlog/set", "[spec]", 0, 1);
    r.register("vlog/list", "", 0, 0);
    r.register("ovsdb/show", "", 0, 0);
    r.register("vlog/reopen", "", 0, 0);
    r.register("vlog/disable-rate-limit", "[module]...", 0, 64);
    r.register("vlog/enable-rate-limit", "[module]...", 0, 64);
    r.register("port/state", "[PORT] [--json]", 0, 2);
    r.register("migration/timeline", "PORT [--json]", 1, 2);
    r.register("port/activate", "PORT", 1, 1);
    r.register("port/rearm", "PORT", 1, 1);
    r.register("dpif-netdev/emc", "[on|off]", 0, 1);
    r.register("dpctl/dump-conntrack", "[-m] [-s] [dp] [zone=N]", 0, 4);
    r.register("dpctl/flush-conntrack", "[dp] [zone=N]", 0, 2);
    r.register("dpctl/ct-stats-show", "[dp] [zone=N]", 0, 3);
    r.register("dpctl/ct-set-maxconns", "[dp] maxconns", 1, 2);
    r.register("dpctl/ct-get-maxconns", "[dp]", 0, 1);
    r.register("dpctl/ct-get-nconns", "[dp]", 0, 1);
    r.register(
        "dpctl/ct-set-limits",
        "[dp] [default=L] [zone=N,limit=L]...",
        0,
        64,
    );
    r
}

/// Runs one (already validated) request.
pub fn dispatch(st: &mut State, reg: &Registry, req: &Request) -> Result<String, String> {
    let _span = tracing::debug_span!("control", cmd = %req.method).entered();
    match req.method.as_str() {
        "list-commands" => Ok(reg.list_commands()),
        "version" => Ok(format!(
            "xvswitchd (xvswitch) {}\n",
            env!("CARGO_PKG_VERSION")
        )),
        "exit" => {
            st.exit_requested = true;
            Ok(String::new())
        }
        "dpif/show" => Ok(dpif_show(st)),
        "pmd/stats" | "dpif-netdev/pmd-stats-show" => Ok(pmd_stats(st)),
        "pmd/stats-clear" | "dpif-netdev/pmd-stats-clear" => {
            for p in &st.pmds {
                p.clear_request.store(true, Ordering::Release);
                p.waker.wake();
            }
            Ok(String::new())
        }
        "dpif-netdev/pmd-rxq-show" => Ok(rxq_show(st)),
        "fdb/show" => fdb_show(st, &req.params[0]),
        "fdb/flush" => fdb_flush(st, req.params.first().map(String::as_str)),
        "coverage/show" => Ok(coverage_show(st)),
        "memory/show" => Ok(memory_show(st)),
        "dpctl/dump-flows" | "dpif/dump-flows" => Ok(dump_flows(st)),
        "ofproto/trace" => trace(st, &req.params),
        "dpif/add-port" => add_port(st, &req.params),
        "dpif/del-port" => st
            .del_port(&req.params[0], &req.params[1])
            .map(|()| String::new())
            .map_err(|e| e.to_string()),
        "ovsdb/show" => Ok(crate::vswitchdb::show(st)),
        "vlog/set" => match req.params.first() {
            Some(spec) => crate::vlog::set(spec),
            None => Ok(String::new()),
        },
        "vlog/list" => Ok(crate::vlog::list()),
        "vlog/reopen" => crate::vlog::reopen(),
        // nothing is rate-limited: the PMDs do not log per packet
        "vlog/disable-rate-limit" | "vlog/enable-rate-limit" => Ok(String::new()),
        "tnl/neigh/show" | "tnl/arp/show" => Ok(st.tnl_neigh_show()),
        "tnl/neigh/flush" | "tnl/arp/flush" => Ok(st.tnl_neigh_flush()),
        "tnl/neigh/set" | "tnl/arp/set" => {
            st.tnl_neigh_set(&req.params[0], &req.params[1], &req.params[2])
        }
        "tnl/ports/show" => Ok(st.tnl_ports_show()),
        "ovs/route/show" => Ok(st.route_show()),
        "port/state" => super::migration::port_state(st, &req.params),
        "migration/timeline" => super::migration::timeline(st, &req.params),
        "port/activate" => super::migration::activate(st, &req.params[0]),
        "port/rearm" => super::migration::rearm(st, &req.params[0]),
        "dpif-netdev/emc" => {
            match req.params.first().map(String::as_str) {
                None => {}
                Some("on") => st.shared.emc.store(true, Ordering::Relaxed),
                Some("off") => st.shared.emc.store(false, Ordering::Relaxed),
                Some(o) => return Err(format!("expected on or off, not {o:?}")),
            }
            // PMDs switch at their next invalidation: make it now
            st.shared.invalidate();
            Ok(format!(
                "exact-match cache: {}\n",
                if st.shared.emc.load(Ordering::Relaxed) {
                    "on"
                } else {
                    "off"
                }
            ))
        }
        "dpctl/dump-conntrack" => {
            let zone = zone_arg(&req.params)?;
            let mut out = st.shared.conntrack.dump(zone).join("\n");
            if !out.is_empty() {
                out.push('\n');
            }
            Ok(out)
        }
        "dpctl/flush-conntrack" => {
            let zone = zone_arg(&req.params)?;
            st.shared.conntrack.flush(zone);
            Ok(String::new())
        }
        "dpctl/ct-stats-show" => Ok(st.shared.conntrack.stats_show()),
        "dpctl/ct-set-maxconns" => {
            let n = req.params.last().map(String::as_str).unwrap_or("");
            let n: u32 = n
                .parse()
                .map_err(|_| format!("maxconns missing or malformed: {n:?}"))?;
            st.shared.conntrack.set_maxconns(n);
            Ok("setting maxconns successful\n".into())
        }
        "dpctl/ct-get-maxconns" => Ok(format!("{}\n", st.shared.conntrack.maxconns())),
        "dpctl/ct-get-nconns" => Ok(format!("{}\n", st.shared.conntrack.count())),
        "dpctl/ct-set-limits" => ct_set_limits(st, &req.params),
        other => Err(format!("\"{other}\" is not implemented")),
    }
}

/// The `zone=N` argument of the dpctl conntrack commands (the datapath name and `-m`/`-s`
/// are accepted and ignored: there is one datapath).
fn zone_arg(params: &[String]) -> Result<Option<u16>, String> {
    let mut zone = None;
    for p in params {
        if let Some(z) = p.strip_prefix("zone=") {
            zone = Some(
                z.parse::<u16>()
                    .map_err(|_| format!("invalid zone {z:?} (0..65535)"))?,
            );
        } else if !p.starts_with('-') && !p.contains('@') && p != "netdev" && p != "system" {
            return Err(format!("unexpected argument {p:?} (expected zone=N)"));
        }
    }
    Ok(zone)
}

/// `dpctl/ct-set-limits [dp] [default=L] [zone=N,limit=L]...` (default sets the global
/// maximum here; a limit of 0 removes a zone's limit, as in OVS).
fn ct_set_limits(st: &mut State, params: &[String]) -> Result<String, String> {
    let num = |s: &str| s.parse::<u32>().map_err(|_| format!("invalid limit {s:?}"));
    for p in params {
        if let Some(d) = p.strip_prefix("default=") {
            st.shared.conntrack.set_maxconns(num(d)?);
        } else if let Some(rest) = p.strip_prefix("zone=") {
            let (z, l) = rest
                .split_once(",limit=")
                .ok_or_else(|| format!("expected zone=N,limit=L, got {p:?}"))?;
            let z: u16 = z.parse().map_err(|_| format!("invalid zone {z:?}"))?;
            let l = num(l)?;
            st.shared.conntrack.set_zone_limit(z, (l != 0).then_some(l));
        } else if !p.contains('@') {
            return Err(format!("unexpected argument {p:?}"));
        }
    }
    Ok(String::new())
}

/// `dpif/add-port BRIDGE IFACE[,OPT=VAL...] [OFPORT]`: answers the OpenFlow port number.
fn add_port(st: &mut State, params: &[String]) -> Result<String, String> {
    let config = crate::config::parse_port(&params[1])?;
    let ofport_request = match params.get(2) {
        Some(s) => Some(
            s.parse::<u32>()
                .map_err(|_| format!("{s:?} is not an OpenFlow port number"))?,
        ),
        None => None,
    };
    let spec = crate::reconf::PortSpec {
        config,
        ofport_request,
    };
    st.add_port(&params[0], spec)
        .map(|of| format!("{of}\n"))
        .map_err(|e| e.to_string())
}

fn port_counter(st: &State, dp: u16, s: PortStat) -> u64 {
    st.pmds
        .iter()
        .map(|p| p.ports[dp as usize].get(s as usize))
        .sum()
}

fn dpif_show(st: &State) -> String {
    let hits: u64 = st
        .pmds
        .iter()
        .map(|p| p.stats.get(PmdStat::CacheHits as usize))
        .sum();
    let miss: u64 = st
        .pmds
        .iter()
        .map(|p| p.stats.get(PmdStat::CacheMisses as usize))
        .sum();
    let mut s = format!("netdev@xvs-netdev: hit:{hits} missed:{miss}\n");
    for b in st.bridges.iter().filter(|b| !b.name.is_empty()) {
        let _ = writeln!(s, "  {}:", b.name);
        for &pi in &b.ports {
            let p = &st.ports[pi];
            let Some(x) = &p.xdp else {
                if let Some(peer) = &p.patch {
                    // as OVS: no datapath port number
                    let _ = writeln!(s, "    {} {}/none: (patch: peer={peer})", p.name, p.ofport);
                }
                if let Some((kind, cfg)) = &p.tunnel {
                    let _ = writeln!(
                        s,
                        "    {} {}/{}: ({}: {})",
                        p.name,
                        p.ofport,
                        p.dp,
                        kind.as_str(),
                        cfg.describe()
                    );
                    let _ = writeln!(
                        s,
                        "      RX packets:{} TX packets:{} TX dropped:{}",
                        port_counter(st, p.dp, PortStat::RxPackets),
                        port_counter(st, p.dp, PortStat::TxPackets),
                        port_counter(st, p.dp, PortStat::TxDropped),
                    );
                }
                continue;
            };
            let zc = x.sockets.iter().filter(|q| q.2).count();
            let bind = if zc == x.sockets.len() && zc > 0 {
                "zc"
            } else if zc == 0 {
                "copy"
            } else {
                "mixed"
            };
            // the LOCAL port shows under the bridge's name, numbered 65534 as in OVS, with the
            // interface the daemon really polls
            let peer = if p.name != x.name {
                format!(", local-peer={}", x.name)
            } else {
                String::new()
            };
            let _ = writeln!(
                s,
                "    {} {}/{}: (afxdp: queues={}, xdp={}, bind={}, need_wakeup=true, driver={}, link={}, csum-complete={}{peer})",
                p.name,
                ofport_str(p.ofport, "65534"),
                p.dp,
                x.queues,
                x.attach_mode.map(|m| m.as_str()).unwrap_or("none"),
                bind,
                x.driver,
                if p.admin_up && p.carrier { "up" } else { "down" },
                x.csum_complete,
            );
            let mut kdrops = 0u64;
            let mut ring_full = 0u64;
            let mut fill_empty = 0u64;
            for &(_, fd, _) in &x.sockets {
                if let Some(k) = x.socket_stats(fd) {
                    kdrops += k.rx_dropped;
                    ring_full += k.rx_ring_full;
                    fill_empty += k.rx_fill_ring_empty_descs;
                }
            }
            let _ = writeln!(
                s,
                "      RX packets:{} bytes:{} dropped:{} (kernel: dropped:{} ring_full:{} fill_empty:{})",
                port_counter(st, p.dp, PortStat::RxPackets),
                port_counter(st, p.dp, PortStat::RxBytes),
                port_counter(st, p.dp, PortStat::RxDropped),
                kdrops,
                ring_full,
                fill_empty,
            );
            let _ = writeln!(
                s,
                "      TX packets:{} bytes:{} dropped:{}",
                port_counter(st, p.dp, PortStat::TxPackets),
                port_counter(st, p.dp, PortStat::TxBytes),
                port_counter(st, p.dp, PortStat::TxDropped),
            );
        }
    }
    s
}

fn rxq_show(st: &State) -> String {
    let mut s = String::new();
    for p in &st.pmds {
        let _ = writeln!(
            s,
            "pmd thread numa_id 0 core_id {}:",
            p.core
                .map(|c| c.to_string())
                .unwrap_or_else(|| "any".into())
        );
        if let Ok(v) = p.rxqs.lock() {
            for (name, q, zc) in v.iter() {
                let _ = writeln!(
                    s,
                    "  port: {name:<16} queue-id: {q:>2} ({})",
                    if *zc { "zero-copy" } else { "copy" }
                );
            }
        }
    }
    s
}

fn pmd_stats(st: &State) -> String {
    let mut s = String::new();
    let ghz = st.hz / 1e9;
    for p in &st.pmds {
        let g = |x: PmdStat| p.stats.get(x as usize);
        let rx = g(PmdStat::RxPackets);
        let batches = g(PmdStat::RxBatches);
        let busy = g(PmdStat::BusyCycles);
        let idle = g(PmdStat::IdleCycles);
        let upc = g(PmdStat::CacheMisses);
        let _ = writeln!(
            s,
            "pmd thread numa_id 0 core_id {} (idle policy {:?}):",
            p.core
                .map(|c| c.to_string())
                .unwrap_or_else(|| "any".into()),
            p.idle
        );
        if let Ok(v) = p.rxqs.lock() {
            let q: Vec<String> = v
                .iter()
                .map(|(n, q, zc)| format!("{n}:{q}({})", if *zc { "zc" } else { "copy" }))
                .collect();
            let _ = writeln!(s, "  rx queues: {}", q.join(" "));
        }
        let _ = writeln!(s, "  packets received: {rx}");
        let _ = writeln!(
            s,
            "  packets sent: {} ({} tx wake-up syscalls)",
            g(PmdStat::TxPackets),
            g(PmdStat::TxKicks)
        );
        let _ = writeln!(
            s,
            "  rx batches: {batches} (avg {:.2} packets/batch)",
            if batches > 0 {
                rx as f64 / batches as f64
            } else {
                0.0
            }
        );
        let _ = writeln!(s, "  emc hits: {}", g(PmdStat::EmcHits));
        let _ = writeln!(s, "  megaflow hits: {}", g(PmdStat::CacheHits));
        let _ = writeln!(
            s,
            "  upcalls: {upc} (avg {:.2} us each)",
            if upc > 0 {
                g(PmdStat::UpcallCycles) as f64 / upc as f64 / st.hz * 1e6
            } else {
                0.0
            }
        );
        let _ = writeln!(
            s,
            "  megaflows: {} (masks: {})",
            g(PmdStat::Flows),
            g(PmdStat::Masks)
        );
        let tot = (busy + idle).max(1);
        let bp = g(PmdStat::BusyPackets);
        let _ = writeln!(
            s,
            "  busy cycles: {busy} ({:.2}%)",
            busy as f64 * 100.0 / tot as f64
        );
        let _ = writeln!(
            s,
            "  idle cycles: {idle} ({:.2}%)",
            idle as f64 * 100.0 / tot as f64
        );
        let per = |c: u64| if bp > 0 { c as f64 / bp as f64 } else { 0.0 };
        let _ = writeln!(
            s,
            "  avg processing cycles per packet: {:.1} ({:.1} ns; rx+processing {:.1} ns, tx {:.1} ns)",
            per(busy),
            per(busy) / ghz,
            per(g(PmdStat::RxCycles)) / ghz,
            per(g(PmdStat::TxCycles)) / ghz,
        );
        let _ = writeln!(
            s,
            "  preempted rounds: {} (busy rounds over 500 us, left out of the per-packet cost)",
            g(PmdStat::PreemptedRounds)
        );
        let _ = writeln!(
            s,
            "  busy rounds: {}, idle rounds: {}, naps: {}, blocking polls: {}",
            g(PmdStat::BusyRounds),
            g(PmdStat::IdleRounds),
            g(PmdStat::Naps),
            g(PmdStat::Blocks)
        );
        let _ = writeln!(
            s,
            "  umem frames: total {} free {} fill {} tx {} unaccounted {}",
            g(PmdStat::FramesTotal),
            g(PmdStat::FramesFree),
            g(PmdStat::FramesFill),
            g(PmdStat::FramesTx),
            g(PmdStat::FramesLeaked) as i64
        );
    }
    s
}

fn bridge_index(st: &State, name: &str) -> Result<usize, String> {
    st.bridges
        .iter()
        .position(|b| b.name == name)
        .ok_or_else(|| "no such bridge".to_string())
}

/// An OpenFlow port number as OVS prints it, with `local` for the LOCAL port (`LOCAL` in
/// fdb/show, `65534` in dpif/show).
fn ofport_str(ofport: u32, local: &str) -> String {
    if ofport == openflow::action::ports::LOCAL {
        local.to_string()
    } else {
        ofport.to_string()
    }
}

fn fdb_show(st: &State, bridge: &str) -> Result<String, String> {
    let bi = bridge_index(st, bridge)?;
    let now = st.shared.now_sec.load(Ordering::Relaxed);
    let mut entries: Vec<_> = st
        .shared
        .macs
        .entries()
        .into_iter()
        .filter(|e| e.bridge as usize == bi)
        .collect();
    entries.sort_by_key(|e| (e.port, e.vlan, e.mac));
    let mut s = String::from(" port  VLAN  MAC                Age\n");
    for e in entries {
        let ofport = st
            .ports
            .iter()
            .find(|p| p.dp == e.port)
            .map(|p| ofport_str(p.ofport, "LOCAL"))
            .unwrap_or_else(|| "?".into());
        let _ = writeln!(
            s,
            "{:>5}  {:>4}  {}  {:>3}",
            ofport,
            e.vlan,
            Mac::from_u64(e.mac),
            now.saturating_sub(e.last_seen)
        );
    }
    Ok(s)
}

fn fdb_flush(st: &State, bridge: Option<&str>) -> Result<String, String> {
    let bi = match bridge {
        Some(b) => Some(bridge_index(st, b)?),
        None => None,
    };
    st.shared
        .macs
        .flush(|e| bi.is_none_or(|b| e.bridge as usize == b));
    st.shared.invalidate();
    Ok("table successfully flushed\n".into())
}

fn coverage_show(st: &State) -> String {
    let mut s = String::from("Event coverage (totals since start):\n");
    let mut never = 0;
    for c in Cov::ALL {
        let total: u64 = st.pmds.iter().map(|p| p.cov.get(*c as usize)).sum();
        if total == 0 {
            never += 1;
            continue;
        }
        let _ = writeln!(s, "{:<32} total: {}", c.name(), total);
    }
    let m = &st.shared.macs;
    for (name, v) in [
        ("mac_table_evictions", m.evictions.load(Ordering::Relaxed)),
        ("mac_table_aged", m.aged.load(Ordering::Relaxed) as u64),
        ("mac_table_moves", m.moved.load(Ordering::Relaxed)),
        // OpenFlow, as OVS's ofproto/vconn coverage counters
        ("ofproto_flow_mods", st.ofproto.stats.flow_mods),
        ("ofproto_errors_sent", st.ofproto.stats.errors_sent),
        ("ofproto_packet_ins", st.ofproto.stats.packet_ins_sent),
        (
            "ofproto_packet_ins_metered",
            st.ofproto.stats.packet_ins_metered,
        ),
        ("ofproto_packet_outs", st.ofproto.stats.packet_outs),
        ("ofproto_barriers", st.ofproto.stats.barriers),
        (
            "ofproto_bundles_committed",
            st.ofproto.stats.bundles_committed,
        ),
        ("ofproto_bundles_failed", st.ofproto.stats.bundles_failed),
        ("learned_flows_added", st.ofproto.stats.learned_flows_added),
        (
            "learned_flows_refreshed",
            st.ofproto.stats.learned_flows_refreshed,
        ),
        (
            "learned_flows_deleted",
            st.ofproto.stats.learned_flows_deleted,
        ),
        ("learn_errors", st.ofproto.stats.learn_errors),
        (
            "ofproto_oversize_dropped",
            crate::ofproto::conn::OVERSIZE_DROPPED.load(Ordering::Relaxed),
        ),
    ] {
        if v > 0 {
            let _ = writeln!(s, "{name:<32} total: {v}");
        } else {
            never += 1;
        }
    }
    let _ = writeln!(s, "{never} events never hit");
    s
}

/// The megaflows of every PMD, in `ovs-appctl dpctl/dump-flows` style.
fn dump_flows(st: &State) -> String {
    let mut targets = Vec::new();
    for p in &st.pmds {
        let t = p.dump_req.fetch_add(1, Ordering::AcqRel) + 1;
        p.waker.wake();
        targets.push(t);
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_millis(500);
    let mut s = String::new();
    for (p, t) in st.pmds.iter().zip(targets) {
        while p.dump_done.load(Ordering::Acquire) < t && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_micros(100));
        }
        if st.pmds.len() > 1 {
            let _ = writeln!(
                s,
                "flow-dump from pmd on cpu core: {}",
                p.core
                    .map(|c| c.to_string())
                    .unwrap_or_else(|| "any".into())
            );
        }
        if let Ok(d) = p.dump.lock() {
            for l in d.iter() {
                s.push_str(l);
                s.push('\n');
            }
        }
    }
    s
}

/// `ofproto/trace BRIDGE FLOW`: walks the OpenFlow tables for a packet described in
/// ovs-ofctl's flow syntax and shows every table, rule and decision, then the datapath flow.
fn trace(st: &State, params: &[String]) -> Result<String, String> {
    use crate::pipeline::flow::{self, loc, PKEY_WORDS};
    use crate::pipeline::xlate::{self, XlateIn};
    // `--ct-next FLAGS` (repeatable): the ct_state each ct(table=) recirculation resumes
    // with, in order; trk,new when not given (as OVS's trace)
    let mut ct_next: Vec<u32> = Vec::new();
    let mut rest: Vec<String> = Vec::new();
    let mut it = params.iter();
    while let Some(p) = it.next() {
        if p == "--ct-next" {
            let v = it.next().ok_or("--ct-next needs flags, e.g. trk,est")?;
            ct_next.push(parse_ct_flags(v)?);
        } else {
            rest.push(p.clone());
        }
    }
    let params = &rest[..];
    let (bridge, text) = match params {
        [b, f] => (b.as_str(), f.as_str()),
        [f] => (
            st.bridges.first().map(|b| b.name.as_str()).unwrap_or(""),
            f.as_str(),
        ),
        _ => return Err("usage: ofproto/trace BRIDGE FLOW".into()),
    };
    let bi = bridge_index(st, bridge)?;
    let pipe = st.shared.pipeline.load();
    let Some(bt) = pipe.bridges.get(bi).cloned() else {
        return Err("no such bridge".into());
    };
    let mut map = xvs_ofctl::value::PortMap::new();
    for p in bt.ports.values() {
        map.insert(p.ofport as u16, &p.name);
    }
    let spec = xvs_ofctl::flow::parse_flow(text, xvs_ofctl::flow::ParseFor::Stats, Some(&map))?;
    let m = spec
        .match_
        .to_codec(6, 0, 0)
        .map_err(|e| format!("{text}: {e}"))?;
    let mut pkey = [0u64; PKEY_WORDS];
    for f in &m.fields {
        let Some(l) = loc(f.field) else {
            return Err(format!("field {} is not supported", f.field.info().name));
        };
        let mut v = f.value_u128();
        if f.field == openflow::Field::InPort {
            v = openflow::action::port_from_of10(v as u16) as u128;
        }
        l.set_masked(&mut pkey, v, f.mask_u128());
    }
    let cfg = st.shared.config.load();
    let inp = XlateIn {
        pipe: &pipe,
        cfg: &cfg,
        macs: &st.shared.macs,
        now: st.shared.now_sec.load(Ordering::Relaxed),
        now_ms: st.started.elapsed().as_millis() as u64,
        pkt_len: 64,
        trace: true,
        recirc: &st.shared.recirc,
    };
    let _ = flow::DP;
    let x = xlate::translate_pkey(&inp, &bt, pkey);
    let name = |p: u16| {
        st.ports
            .iter()
            .find(|x| x.dp == p)
            .map(|x| x.name.clone())
            .unwrap_or_else(|| p.to_string())
    };
    let mut s = format!("Flow: {text}\n\n");
    for l in &x.trace {
        s.push_str(l);
        s.push('\n');
    }
    if let Some(d) = x.drop {
        let _ = writeln!(s, "\nDropped: {d:?}");
    }
    let mut key = FlowKeyOf(&pkey).key();
    let in_of = loc(openflow::Field::InPortOxm)
        .map(|l| l.get(&pkey) as u32)
        .unwrap_or(0);
    key.set_in_port(bt.ports.get(&in_of).map(|p| p.dp as u32).unwrap_or(0xffff));
    let mf = crate::cache::Megaflow {
        key: crate::pipeline::masked(&key, &x.mask),
        mask: 0,
        actions: x.actions.clone(),
        last_output: 0,
        learn: None,
        rules: Vec::new(),
        packets: 0,
        bytes: 0,
        folded_packets: 0,
        folded_bytes: 0,
        created: 0,
        used: 0,
        tables: x.tables,
    };
    let line = crate::cache::format_megaflow(&mf, &x.mask, 0, &name);
    let (flow_part, acts) = line
        .split_once(", packets:")
        .map(|(a, b)| {
            (
                a.to_string(),
                b.split("actions:").nth(1).unwrap_or("").to_string(),
            )
        })
        .unwrap_or((line.clone(), String::new()));
    let _ = writeln!(s, "\nMegaflow: {flow_part}");
    let _ = writeln!(
        s,
        "Datapath actions: {}{}",
        acts,
        if x.cacheable {
            ""
        } else {
            " (not cacheable: translated per packet)"
        }
    );
    // follow ct(table=) recirculations (a few deep), with the ct_state the user asked for
    let mut actions = x.actions;
    for pass in 0..4 {
        let Some(ct) = actions.iter().find_map(|a| match a {
            crate::pipeline::DpAction::Ct(c) if c.recirc != 0 => Some(c.clone()),
            _ => None,
        }) else {
            break;
        };
        use crate::packet::key::w;
        let state = ct_next
            .get(pass)
            .copied()
            .unwrap_or(crate::conntrack::cs::TRACKED | crate::conntrack::cs::NEW);
        key.w[w::META] = (key.w[w::META] & 0xffff_ffff) | (ct.recirc as u64) << 32;
        key.w[w::TUN_CT] =
            (key.w[w::TUN_CT] & 0xffff) | (ct.act.zone as u64) << 16 | (state as u64) << 32;
        let _ = writeln!(
            s,
            "\n{}\nrecirc({:#x}): resuming from conntrack with ct_state={}, ct_zone={}\n{}",
            "=".repeat(78),
            ct.recirc,
            format_ct_flags(state),
            ct.act.zone,
            "=".repeat(78)
        );
        let y = xlate::translate(&inp, &key, key.in_port() as u16);
        for l in &y.trace {
            s.push_str(l);
            s.push('\n');
        }
        if let Some(d) = y.drop {
            let _ = writeln!(s, "\nDropped: {d:?}");
        }
        let mf = crate::cache::Megaflow {
            key: crate::pipeline::masked(&key, &y.mask),
            actions: y.actions.clone(),
            ..mf.clone()
        };
        let line = crate::cache::format_megaflow(&mf, &y.mask, 0, &name);
        let (flow_part, acts) = line
            .split_once(", packets:")
            .map(|(a, b)| {
                (
                    a.to_string(),
                    b.split("actions:").nth(1).unwrap_or("").to_string(),
                )
            })
            .unwrap_or((line.clone(), String::new()));
        let _ = writeln!(s, "\nMegaflow: {flow_part}");
        let _ = writeln!(s, "Datapath actions: {acts}");
        actions = y.actions;
    }
    Ok(s)
}

/// ct_state flag names as OVS prints and parses them (`trk,est`, `+trk+est`).
const CT_FLAGS: [(&str, u32); 8] = [
    ("new", 0x01),
    ("est", 0x02),
    ("rel", 0x04),
    ("rpl", 0x08),
    ("inv", 0x10),
    ("trk", 0x20),
    ("snat", 0x40),
    ("dnat", 0x80),
];

fn parse_ct_flags(v: &str) -> Result<u32, String> {
    let mut bits = 0;
    for f in v.split([',', '+', '|']).filter(|f| !f.is_empty()) {
        bits |= CT_FLAGS
            .iter()
            .find(|(n, _)| *n == f)
            .map(|(_, b)| *b)
            .ok_or_else(|| {
                format!("unknown ct_state flag {f:?} (new,est,rel,rpl,inv,trk,snat,dnat)")
            })?;
    }
    Ok(bits)
}

fn format_ct_flags(bits: u32) -> String {
    let v: Vec<&str> = CT_FLAGS
        .iter()
        .filter(|(_, b)| bits & b != 0)
        .map(|(n, _)| *n)
        .collect();
    v.join("|")
}

/// The datapath key inside a pipeline key.
struct FlowKeyOf<'a>(&'a crate::pipeline::flow::PKey);

impl FlowKeyOf<'_> {
    fn key(&self) -> crate::packet::key::FlowKey {
        let mut k = crate::packet::key::FlowKey::default();
        k.w.copy_from_slice(&self.0[crate::pipeline::flow::DP..]);
        k
    }
}

/// `memory/show`: ovs-vswitchd's line (`ofconns`, `ports`, `rules`, `udpif keys`, the datapath
/// flows) and then where the memory is: resident size and the classifiers' share.
fn memory_show(st: &State) -> String {
    let pipe = st.shared.pipeline.load();
    let (mut rules, mut cls_bytes) = (0usize, 0usize);
    for bt in &pipe.bridges {
        for t in &bt.tables {
            rules += t.len();
            cls_bytes += t.cls().memory_usage();
        }
    }
    let megaflows: u64 = st
        .pmds
        .iter()
        .map(|p| p.stats.get(crate::stats::PmdStat::Flows as usize))
        .sum();
    let rss_kb = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        })
        .unwrap_or(0);
    format!(
        "ofconns:{} ports:{} rules:{} udpif keys:{} conntrack:{}\n\
         resident:{} kB classifiers:{} kB (one copy; the control thread keeps a second)\n",
        st.ofproto.conns.len(),
        st.ports.len(),
        rules,
        megaflows,
        st.shared.conntrack.count(),
        rss_kb,
        cls_bytes / 1024
    )
}
