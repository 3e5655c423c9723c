//! Control-socket commands for live migration: `port/state`, `migration/timeline`,
//! `port/activate`, `port/rearm`.

use std::fmt::Write as _;
use std::sync::atomic::Ordering;

use serde_json::json;

use crate::daemon::State;
use crate::migration::{fmt_time, Gate, GateKey};
use crate::packet::Mac;

/// `external_ids:iface-id` of an interface, from the database replica.
fn iface_id(st: &State, name: &str) -> Option<String> {
    let db = st.db.as_ref()?;
    let t = db.client().db().table("Interface")?;
    let row = t.values().find(|r| r.get_str("name") == Some(name))?;
    let m = row.get("external_ids")?.as_map()?;
    m.iter()
        .find_map(|(k, v)| (k.as_str()? == "iface-id").then(|| v.as_str().map(str::to_string))?)
}

fn port_names(st: &State, bridge: u8, ofports: &[u32]) -> Vec<String> {
    ofports
        .iter()
        .map(|&o| {
            st.ports
                .iter()
                .find(|p| p.bridge == bridge && p.ofport == o)
                .map(|p| p.name.clone())
                .unwrap_or_else(|| format!("ofport {o}"))
        })
        .collect()
}

fn gate_json(st: &State, k: &GateKey, g: &Gate) -> serde_json::Value {
    let s = &g.state;
    let act = s.activation().map(|(t, mac, trig)| {
        json!({
            "at_ns": t,
            "at": fmt_time(t),
            "trigger": trig.name(),
            "mac": Mac::from_u64(mac).to_string(),
            "after_us": t.saturating_sub(g.armed_ns) / 1000,
        })
    });
    let flows = |v: &[(u8, classifier::RuleId, u16)]| -> Vec<serde_json::Value> {
        v.iter()
            .map(|(t, _, p)| json!({"table": t, "priority": p}))
            .collect()
    };
    let (ingress, egress, activators) = match &g.recog {
        Some(r) => (
            flows(&r.ingress),
            flows(&r.egress),
            r.activators
                .iter()
                .map(|a| json!({"table": a.table, "priority": a.priority, "trigger": a.trigger.name()}))
                .collect(),
        ),
        None => (Vec::new(), Vec::new(), Vec::new()),
    };
    let act_ns = s.activation().map(|a| a.0);
    let first = |t: Option<u64>| {
        t.map(|t| {
            json!({
                "at_ns": t,
                "at": fmt_time(t),
                "after_activation_us": act_ns.map(|a| t.saturating_sub(a) as f64 / 1000.0),
            })
        })
    };
    json!({
        "cookie": format!("{:#x}", k.2),
        "state": if act.is_some() { "activated" } else { "armed" },
        "armed_at": fmt_time(g.armed_ns),
        "activation": act,
        "first_delivered": first(s.first_out()),
        "first_forwarded": first(s.first_in()),
        "flows_installed": g.recog.is_some(),
        "activator_flows": activators,
        "ingress_drop_flows": ingress,
        "egress_drop_flows": egress,
        "bypassed": s.is_activated() && g.recog.is_some(),
        "datapath_key": g.last.dp_key,
        "port_key": g.last.port_key,
        "dropped_ingress": s.drops_in.load(Ordering::Relaxed),
        "dropped_egress": s.drops_out.load(Ordering::Relaxed),
        "activation_packets": s.triggers_seen.load(Ordering::Relaxed),
        "copies_to": port_names(st, k.0, &g.copies_to),
    })
}

/// `port/state [PORT] [--json]`.
pub fn port_state(st: &mut State, params: &[String]) -> Result<String, String> {
    let json_out = params.iter().any(|p| p == "--json");
    let want = params.iter().find(|p| *p != "--json").cloned();
    st.migration.sync_all();
    let mut ports: Vec<&crate::daemon::PortState> = st
        .ports
        .iter()
        .filter(|p| want.as_deref().is_none_or(|w| p.name == w))
        .collect();
    if ports.is_empty() {
        if let Some(w) = want {
            return Err(format!("{w}: no such port"));
        }
    }
    ports.sort_by_key(|p| (p.bridge, p.ofport));
    let mut out = Vec::new();
    let mut text = String::new();
    for p in ports {
        let bridge = st
            .bridges
            .get(p.bridge as usize)
            .map(|b| b.name.clone())
            .unwrap_or_default();
        let gates: Vec<(&GateKey, &Gate)> = st
            .migration
            .gates
            .iter()
            .filter(|(k, _)| k.0 == p.bridge && k.1 == p.ofport)
            .collect();
        let copies: Vec<String> = {
            let mut v: Vec<u32> = gates
                .iter()
                .flat_map(|(_, g)| g.copies_to.clone())
                .collect();
            v.sort_unstable();
            v.dedup();
            port_names(st, p.bridge, &v)
        };
        let iid = iface_id(st, &p.name);
        if json_out {
            out.push(json!({
                "bridge": bridge,
                "port": p.name,
                "ofport": p.ofport,
                "iface_id": iid,
                "multi_chassis": !copies.is_empty(),
                "copies_to": copies,
                "gates": gates.iter().map(|(k, g)| gate_json(st, k, g)).collect::<Vec<_>>(),
            }));
            continue;
        }
        let _ = writeln!(
            text,
            "{bridge} {}: ofport {}, iface-id {}",
            p.name,
            p.ofport,
            iid.as_deref().unwrap_or("-")
        );
        if copies.is_empty() {
            let _ = writeln!(text, "  multi-chassis: no");
        } else {
            let _ = writeln!(
                text,
                "  multi-chassis: yes, copies to: {}",
                copies.join(", ")
            );
        }
        if gates.is_empty() {
            let _ = writeln!(text, "  gate: none");
        }
        for (k, g) in gates {
            let s = &g.state;
            match s.activation() {
                Some((t, mac, trig)) => {
                    let from = if trig == crate::migration::Trigger::Operator {
                        "by the operator".to_string()
                    } else {
                        format!("by {} from {}", trig.name(), Mac::from_u64(mac))
                    };
                    let _ = writeln!(
                        text,
                        "  gate: activated at {} {from}, after {} us (cookie {:#x})",
                        fmt_time(t),
                        t.saturating_sub(g.armed_ns) / 1000,
                        k.2
                    );
                }
                None => {
                    let _ = writeln!(
                        text,
                        "  gate: armed since {} (cookie {:#x})",
                        fmt_time(g.armed_ns),
                        k.2
                    );
                }
            }
            if let Some((a, ..)) = s.activation() {
                let f = |t: Option<u64>| match t {
                    Some(t) => format!("+{:.1} us", t.saturating_sub(a) as f64 / 1000.0),
                    None => "not yet".into(),
                };
                let _ = writeln!(
                    text,
                    "  first packet after the activation: delivered to the port {}, forwarded from it {}",
                    f(s.first_out()),
                    f(s.first_in())
                );
            }
            let _ = writeln!(
                text,
                "  dropped: ingress {}, egress {}; activation packets {}",
                s.drops_in.load(Ordering::Relaxed),
                s.drops_out.load(Ordering::Relaxed),
                s.triggers_seen.load(Ordering::Relaxed)
            );
            match &g.recog {
                Some(r) => {
                    let mark = if s.is_activated() { " (bypassed)" } else { "" };
                    for a in &r.activators {
                        let _ = writeln!(
                            text,
                            "  flow: table {} priority {} {} activator",
                            a.table,
                            a.priority,
                            a.trigger.name()
                        );
                    }
                    for (t, _, pr) in &r.ingress {
                        let _ =
                            writeln!(text, "  flow: table {t} priority {pr} ingress drop{mark}");
                    }
                    for (t, _, pr) in &r.egress {
                        let _ = writeln!(text, "  flow: table {t} priority {pr} egress drop{mark}");
                    }
                }
                None => {
                    let _ = writeln!(text, "  gate flows: deleted by the controller");
                }
            }
        }
    }
    if json_out {
        return Ok(serde_json::to_string_pretty(&out).unwrap_or_default() + "\n");
    }
    Ok(text)
}

/// `port/activate PORT`.
pub fn activate(st: &mut State, port: &str) -> Result<String, String> {
    let n = st.migration.activate(port)?;
    st.shared.invalidate();
    Ok(if n == 0 {
        format!("{port}: already activated\n")
    } else {
        format!("{port}: activated\n")
    })
}

/// `port/rearm PORT`.
pub fn rearm(st: &mut State, port: &str) -> Result<String, String> {
    st.migration.rearm(port)?;
    st.shared.invalidate();
    Ok(format!("{port}: re-armed\n"))
}

/// `migration/timeline PORT [--json]`: the gate's events with their µs timestamps; the JSON
/// form also carries the activation's timestamps as numbers (wall-clock ns).
pub fn timeline(st: &mut State, params: &[String]) -> Result<String, String> {
    let json_out = params.iter().any(|p| p == "--json");
    let Some(port) = params.iter().find(|p| *p != "--json") else {
        return Err("usage: migration/timeline PORT [--json]".into());
    };
    if !json_out {
        return st.migration.timeline(port);
    }
    let gates = st.migration.timeline_events(port)?;
    let out: Vec<serde_json::Value> = gates
        .into_iter()
        .map(|(k, g, events)| {
            let s = &g.state;
            json!({
                "port": g.port,
                "ofport": k.1,
                "cookie": format!("{:#x}", k.2),
                "activated_ns": s.activation().map(|a| a.0),
                "first_delivered_ns": s.first_out(),
                "first_forwarded_ns": s.first_in(),
                "events": events
                    .into_iter()
                    .map(|(t, e)| json!({"at_ns": t, "at": fmt_time(t), "event": e}))
                    .collect::<Vec<_>>(),
            })
        })
        .collect();
    Ok(serde_json::to_string_pretty(&out).unwrap_or_default() + "\n")
}
