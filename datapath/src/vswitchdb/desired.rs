//! The configuration the database asks for, and bringing the running switch in line with it.

use std::collections::{BTreeMap, HashMap};

use ::ovsdb::{Atom, Db, Row, Uuid};
use tracing::{info, warn};

use super::{Applied, DbSession};
use crate::config::{FailMode, PortConfig, XdpMode};
use crate::daemon::State;
use crate::reconf::{BridgeSpec, PortSpec};

/// Interface types xvswitchd implements (`Open_vSwitch.iface_types`).
pub const IFACE_TYPES: &[&str] = &["afxdp", "geneve", "internal", "patch", "system", "tap"];

/// Does a change of `table.column` call for a reconciliation (as opposed to our own status
/// write-back coming back)?
pub fn is_config_column(table: &str, column: &str) -> bool {
    match table {
        "Open_vSwitch" => matches!(column, "bridges" | "next_cfg" | "datapaths"),
        "Bridge" => matches!(
            column,
            "name" | "ports" | "datapath_type" | "fail_mode" | "controller" | "other_config"
        ),
        "Port" => matches!(column, "name" | "interfaces"),
        "Interface" => matches!(column, "name" | "type" | "options" | "ofport_request"),
        "Controller" => column == "target",
        _ => false,
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DesiredIface {
    pub uuid: Uuid,
    pub itype: String,
    pub options: BTreeMap<String, String>,
    pub ofport_request: Option<u32>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DesiredBridge {
    pub uuid: Uuid,
    pub fail_mode: FailMode,
    pub datapath_type: String,
    /// Active controller targets (`tcp:`).
    pub controllers: Vec<String>,
    /// Passive ones (`ptcp:`).
    pub listen: Vec<String>,
    pub ifaces: BTreeMap<String, DesiredIface>,
}

/// The whole configuration: bridges by name, interfaces that cannot be applied with why, and
/// the `next_cfg` it corresponds to.
#[derive(Clone, Debug, Default)]
pub struct Desired {
    pub bridges: BTreeMap<String, DesiredBridge>,
    pub errors: HashMap<String, String>,
    pub next_cfg: Option<i64>,
}

fn string_map(row: &Row, column: &str) -> BTreeMap<String, String> {
    row.get(column)
        .and_then(|d| d.as_map())
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| Some((k.as_str()?.to_string(), atom_string(v))))
                .collect()
        })
        .unwrap_or_default()
}

fn atom_string(a: &Atom) -> String {
    match a {
        Atom::String(s) => s.clone(),
        other => other.to_json().to_string(),
    }
}

impl Desired {
    pub fn from_db(db: &Db) -> Desired {
        let mut d = Desired::default();
        let Some(ovs) = db.table("Open_vSwitch").and_then(|t| t.values().next()) else {
            return d;
        };
        d.next_cfg = ovs.get_int("next_cfg");
        let mut owner: HashMap<String, String> = HashMap::new();
        // by name, so that an interface listed on two bridges stays on the same one
        let bridges: BTreeMap<&str, (Uuid, &Row)> = ovs
            .get_uuids("bridges")
            .iter()
            .filter_map(|u| {
                let r = db.row("Bridge", u)?;
                Some((r.get_str("name").unwrap_or(""), (*u, r)))
            })
            .collect();
        for (br_uuid, br) in bridges.into_values() {
            let name = br.get_str("name").unwrap_or("").to_string();
            if name.is_empty() || name.len() > 15 || name.contains('/') {
                warn!(bridge = %name, "bridge name unusable as an interface name; ignored");
                continue;
            }
            let dpt = br.get_str("datapath_type").unwrap_or("").to_string();
            let fail_mode = match br.get_str("fail_mode") {
                Some("secure") => FailMode::Secure,
                _ => FailMode::Standalone,
            };
            let mut controllers = Vec::new();
            let mut listen = Vec::new();
            for cu in br.get_uuids("controller") {
                let Some(t) = db.row("Controller", &cu).and_then(|c| c.get_str("target")) else {
                    continue;
                };
                if t.starts_with("tcp:") {
                    controllers.push(t.to_string());
                } else if t.starts_with("ptcp:") {
                    listen.push(t.to_string());
                } else {
                    warn!(bridge = %name, target = t, "controller target not supported (tcp: and ptcp: are); ignored");
                }
            }
            controllers.sort();
            listen.sort();
            let mut ifaces = BTreeMap::new();
            for pu in br.get_uuids("ports") {
                let Some(port) = db.row("Port", &pu) else {
                    continue;
                };
                for iu in port.get_uuids("interfaces") {
                    let Some(ir) = db.row("Interface", &iu) else {
                        continue;
                    };
                    let iname = ir.get_str("name").unwrap_or("").to_string();
                    if iname.is_empty() {
                        continue;
                    }
                    if let Some(other) = owner.get(&iname) {
                        d.errors.insert(
                            iname.clone(),
                            format!("interface {iname} is already on bridge {other}"),
                        );
                        continue;
                    }
                    owner.insert(iname.clone(), name.clone());
                    let ofport_request = ir
                        .get_int("ofport_request")
                        .and_then(|v| u32::try_from(v).ok());
                    ifaces.insert(
                        iname,
                        DesiredIface {
                            uuid: iu,
                            itype: ir.get_str("type").unwrap_or("").to_string(),
                            options: string_map(ir, "options"),
                            ofport_request,
                        },
                    );
                }
            }
            d.bridges.insert(
                name,
                DesiredBridge {
                    uuid: br_uuid,
                    fail_mode,
                    datapath_type: dpt,
                    controllers,
                    listen,
                    ifaces,
                },
            );
        }
        d
    }
}

impl DesiredIface {
    fn applied(&self, bridge: &str) -> Applied {
        Applied {
            bridge: bridge.to_string(),
            itype: self.itype.clone(),
            options: self.options.clone(),
            ofport_request: self.ofport_request,
        }
    }
}

/// Brings bridges and ports in line with `want`, touching only what differs.
pub fn reconcile(st: &mut State, db: &mut DbSession, want: &Desired) {
    let _span = tracing::info_span!("reconfigure", cfg = want.next_cfg).entered();
    let mut errors = want.errors.clone();
    // 1. bridges that went away
    let gone: Vec<String> = st
        .bridges
        .iter()
        .filter(|b| !b.name.is_empty() && !want.bridges.contains_key(&b.name))
        .map(|b| b.name.clone())
        .collect();
    for b in gone {
        if let Err(e) = st.del_bridge(&b) {
            warn!(bridge = %b, error = %e, "cannot delete bridge");
        }
        db.applied.retain(|_, a| a.bridge != b);
        db.fail_modes.remove(&b);
    }
    // 2. ports that went away or changed
    let mut remove: Vec<(String, String)> = Vec::new();
    for p in &st.ports {
        let bname = &st.bridges[p.bridge as usize].name;
        let keep = match (want.bridges.get(bname), db.applied.get(&p.name)) {
            (Some(b), Some(a)) => match b.ifaces.get(&p.name) {
                Some(i) => {
                    *a == i.applied(bname)
                        || (a.itype == i.itype
                            && a.options == i.options
                            && (i.ofport_request.is_none() || i.ofport_request == Some(p.ofport)))
                }
                None => false,
            },
            // not from the database (command line): kept only if the database lists it
            (Some(b), None) => b.ifaces.contains_key(&p.name),
            (None, _) => false,
        };
        if !keep {
            remove.push((bname.clone(), p.name.clone()));
        }
    }
    for (b, p) in remove {
        match st.del_port(&b, &p) {
            Ok(()) => info!(bridge = %b, port = %p, "port removed (database)"),
            Err(e) => warn!(bridge = %b, port = %p, error = %e, "cannot remove port"),
        }
        db.applied.remove(&p);
    }
    // 3. new bridges, and settings of existing ones
    for (name, b) in &want.bridges {
        if let Ok(bi) = st.bridge_index(name) {
            st.bridges[bi].controllers = b.controllers.clone();
            if db.fail_modes.get(name) != Some(&b.fail_mode) {
                if let Err(e) = st.set_fail_mode(name, b.fail_mode) {
                    warn!(bridge = %name, error = %e, "cannot change the fail mode");
                }
                db.fail_modes.insert(name.clone(), b.fail_mode);
            }
            continue;
        }
        if !matches!(b.datapath_type.as_str(), "netdev" | "") {
            warn!(bridge = %name, datapath_type = %b.datapath_type,
                "datapath_type is not netdev; running it in xvswitchd's userspace datapath anyway");
        }
        let spec = BridgeSpec {
            name: name.clone(),
            fail_mode: b.fail_mode,
            mac_aging: 300,
            datapath_id: crate::daemon::datapath_id(name),
            listen: b.listen.clone(),
            controllers: b.controllers.clone(),
        };
        db.fail_modes.insert(name.clone(), b.fail_mode);
        if let Err(e) = st.add_bridge(spec) {
            warn!(bridge = %name, error = %e, "cannot create bridge");
            for i in b.ifaces.keys() {
                errors.insert(i.clone(), format!("bridge {name}: {e}"));
            }
        }
    }
    // 4. new ports
    for (bname, b) in &want.bridges {
        if st.bridge_index(bname).is_err() {
            continue;
        }
        for (iname, i) in &b.ifaces {
            if st.ports.iter().any(|p| &p.name == iname) {
                db.applied
                    .entry(iname.clone())
                    .or_insert_with(|| i.applied(bname));
                continue;
            }
            if errors.contains_key(iname) {
                continue;
            }
            // as ovs-vswitchd: a requested number another port holds is not an error that
            // leaves this port out; it gets a free number (OVS's alloc_ofp_port falls back the
            // same way). OVS also moves a holder whose number was not requested; we leave it.
            let req = match i.ofport_request {
                Some(of) if st.ofport_taken(bname, of) => {
                    warn!(port = %iname, bridge = %bname, ofport = of,
                        "ofport_request is taken by another port; using a free number");
                    None
                }
                r => r,
            };
            let r = match i.itype.as_str() {
                "" | "system" | "afxdp" => {
                    let xdp_mode = match i.options.get("xdp-mode") {
                        Some(m) => match m.parse::<XdpMode>() {
                            Ok(m) => m,
                            Err(e) => {
                                errors.insert(iname.clone(), e);
                                continue;
                            }
                        },
                        None => XdpMode::BestEffort,
                    };
                    st.add_port(
                        bname,
                        PortSpec {
                            config: PortConfig {
                                name: iname.clone(),
                                xdp_mode,
                                csum_complete: None,
                                tunnel: None,
                                patch: None,
                            },
                            ofport_request: req,
                        },
                    )
                }
                "internal" => st.add_internal_port(bname, iname, req),
                "tap" => st.add_tap_port(bname, iname, req),
                "geneve" => match crate::port::TunnelConfig::from_options(&i.options) {
                    Ok(cfg) => {
                        st.add_tunnel_port(bname, iname, crate::port::TunnelKind::Geneve, cfg, req)
                    }
                    Err(e) => {
                        errors.insert(iname.clone(), format!("{iname}: bad tunnel options: {e}"));
                        continue;
                    }
                },
                "patch" => {
                    // OVS: the peer is the only option
                    let peer = match i.options.keys().find(|k| *k != "peer") {
                        Some(k) => Err(format!(
                            "{iname}: patch type takes only a 'peer' argument (not {k:?})"
                        )),
                        None => crate::config::check_patch_peer(
                            iname,
                            i.options.get("peer").map(String::as_str),
                        ),
                    };
                    match peer {
                        Ok(peer) => st.add_patch_port(bname, iname, &peer, req),
                        Err(e) => {
                            errors.insert(iname.clone(), e);
                            continue;
                        }
                    }
                }
                other => {
                    errors.insert(
                        iname.clone(),
                        format!("could not open network device {iname} (Unsupported interface type {other:?})"),
                    );
                    continue;
                }
            };
            match r {
                Ok(of) => {
                    info!(bridge = %bname, port = %iname, ofport = of, itype = %i.itype, "port added (database)");
                    db.applied.insert(iname.clone(), i.applied(bname));
                }
                Err(e) => {
                    warn!(bridge = %bname, port = %iname, error = %e, "cannot add port");
                    errors.insert(
                        iname.clone(),
                        format!("could not add network device {iname} to ofproto ({e})"),
                    );
                }
            }
        }
    }
    db.errors = errors;
    db.applied_cfg = want.next_cfg;
}
