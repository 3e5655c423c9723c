//! What xvswitchd writes back to the database: the columns ovs-vswitchd fills and
//! `ovs-vsctl` / ovn-controller read. Only columns whose value differs from the replica are
//! written, so a steady state costs no transaction.

use ::ovsdb::{ops, Datum, Db, Schema, Uuid};
use serde_json::{json, Map, Value};

use super::desired::IFACE_TYPES;
use super::DbSession;
use crate::daemon::State;

/// `Datapath.capabilities`: only what is implemented. ovn-controller 23.03 reads
/// `ct_zero_snat`, `ct_flush` and `max_hash_alg` (ovn-needs.md §3a). The userspace tracker
/// (datapath/src/conntrack) does zones, state, mark, label, NAT, the original tuple and
/// NXT_CT_FLUSH and all-zero SNAT (`nat(src)` without an address moves only a colliding port);
/// select groups hash at translation time (max_hash_alg 0: the L4 hash).
const CAPABILITIES: &[(&str, &str)] = &[
    ("ct_zero_snat", "true"),
    ("ct_flush", "true"),
    ("max_hash_alg", "0"),
    ("recirc", "true"),
    ("ct_state", "true"),
    ("ct_zone", "true"),
    ("ct_mark", "true"),
    ("ct_label", "true"),
    ("ct_state_nat", "true"),
    ("ct_orig_tuple", "true"),
    ("ct_clear", "true"),
    ("masked_set_action", "true"),
    ("clone", "true"),
];

/// Collects the changed columns of one row as an `update` operation.
struct RowUpdate<'a> {
    db: &'a Db,
    schema: &'a Schema,
    table: &'a str,
    uuid: Uuid,
    row: Map<String, Value>,
}

impl<'a> RowUpdate<'a> {
    fn new(db: &'a Db, schema: &'a Schema, table: &'a str, uuid: Uuid) -> Self {
        RowUpdate {
            db,
            schema,
            table,
            uuid,
            row: Map::new(),
        }
    }

    /// Sets `column` to `value` (OVSDB JSON) unless the replica already holds it. Columns the
    /// server's schema lacks are skipped.
    fn set(&mut self, column: &str, value: Value) {
        let Some(ty) = self
            .schema
            .tables
            .get(self.table)
            .and_then(|t| t.columns.get(column))
        else {
            return;
        };
        let Ok(want) = Datum::from_json_typed(&value, ty) else {
            tracing::debug!(table = self.table, column, %value, "write-back value does not fit the column");
            return;
        };
        let have = self
            .db
            .row(self.table, &self.uuid)
            .and_then(|r| r.get(column));
        if have != Some(&want) {
            self.row.insert(column.to_string(), want.to_json());
        }
    }

    fn into_op(self) -> Option<Value> {
        if self.row.is_empty() {
            None
        } else {
            Some(ops::update(
                self.table,
                vec![ops::uuid_is(self.uuid)],
                Value::Object(self.row),
            ))
        }
    }
}

fn set_of<T: Into<Value>>(items: Vec<T>) -> Value {
    json!([
        "set",
        items.into_iter().map(Into::into).collect::<Vec<Value>>()
    ])
}

fn map_of(pairs: &[(String, String)]) -> Value {
    json!([
        "map",
        pairs.iter().map(|(k, v)| json!([k, v])).collect::<Vec<_>>()
    ])
}

/// The write-back transaction's operations (empty: nothing to write).
pub fn ops(st: &State, sess: &DbSession) -> Vec<Value> {
    let client = sess.client();
    let (db, Some(schema)) = (client.db(), client.schema()) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    // Interface
    if let Some(t) = db.table("Interface") {
        for (uuid, row) in t {
            let Some(name) = row.get_str("name") else {
                continue;
            };
            let mut u = RowUpdate::new(db, schema, "Interface", *uuid);
            if let Some(p) = st.ports.iter().find(|p| p.name == name) {
                u.set("ofport", json!(p.ofport as i64 & 0xffff));
                match &p.patch {
                    // as ovs-vswitchd reports a patch port whose pair is incomplete
                    Some(peer) if !p.carrier => u.set(
                        "error",
                        set_of(vec![format!(
                            "No usable peer '{peer}' exists in 'netdev' datapath."
                        )]),
                    ),
                    _ => u.set("error", set_of::<String>(vec![])),
                }
                u.set("admin_state", json!(if p.admin_up { "up" } else { "down" }));
                u.set(
                    "link_state",
                    json!(if p.admin_up && p.carrier {
                        "up"
                    } else {
                        "down"
                    }),
                );
                if let Some(m) = p.mac {
                    u.set("mac_in_use", json!(m.to_string()));
                }
                let mut status = Vec::new();
                if let Some(x) = &p.xdp {
                    if let Ok(ifx) = afxdp::netdev::ifindex(&p.name) {
                        u.set("ifindex", json!(ifx as i64));
                    }
                    if let Some(mtu) = afxdp::netdev::mtu(&p.name) {
                        u.set("mtu", json!(mtu as i64));
                    }
                    status.push(("driver_name".to_string(), x.driver.clone()));
                    if let Some(m) = x.attach_mode {
                        status.push(("xdp_mode".to_string(), m.as_str().to_string()));
                    }
                    if p.name != x.name {
                        status.push(("local_peer".to_string(), x.name.clone()));
                    }
                } else if p.tunnel.is_some() {
                    // ovn-controller reads tunnel_egress_iface (to hang its QoS on it)
                    status.extend(st.tunnel_status(&p.name));
                }
                status.sort();
                u.set("status", map_of(&status));
            } else if let Some(err) = sess.errors.get(name) {
                u.set("ofport", json!(-1));
                u.set("error", set_of(vec![err.clone()]));
            } else {
                continue;
            }
            out.extend(u.into_op());
        }
    }
    // Bridge
    if let Some(t) = db.table("Bridge") {
        for (uuid, row) in t {
            let Some(name) = row.get_str("name") else {
                continue;
            };
            let Ok(bi) = st.bridge_index(name) else {
                continue;
            };
            let mut u = RowUpdate::new(db, schema, "Bridge", *uuid);
            if let Some(bt) = st.pipeline.bridges.get(bi) {
                u.set("datapath_id", json!(format!("{:016x}", bt.datapath_id)));
            }
            u.set("datapath_version", json!("<built-in>"));
            out.extend(u.into_op());
        }
    }
    // Controller
    if let Some(t) = db.table("Controller") {
        for (uuid, row) in t {
            let Some(target) = row.get_str("target") else {
                continue;
            };
            let connected = st
                .ofproto
                .conns
                .values()
                .any(|c| c.peer == target && !c.closed);
            let mut u = RowUpdate::new(db, schema, "Controller", *uuid);
            u.set("is_connected", json!(connected));
            out.extend(u.into_op());
        }
    }
    // Datapath rows (ovn-controller inserts an empty one for `netdev` and reads its
    // capabilities)
    if let Some(t) = db.table("Datapath") {
        for uuid in t.keys() {
            let mut u = RowUpdate::new(db, schema, "Datapath", *uuid);
            let caps: Vec<(String, String)> = CAPABILITIES
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            u.set("capabilities", map_of(&caps));
            u.set("datapath_version", json!("<built-in>"));
            out.extend(u.into_op());
        }
    }
    // Open_vSwitch, last: cur_cfg tells ovs-vsctl the rest is in place
    if let Some(t) = db.table("Open_vSwitch") {
        for uuid in t.keys() {
            let mut u = RowUpdate::new(db, schema, "Open_vSwitch", *uuid);
            u.set(
                "ovs_version",
                json!(format!("xvswitch-{}", env!("CARGO_PKG_VERSION"))),
            );
            u.set("db_version", json!(schema.version));
            u.set("datapath_types", set_of(vec!["netdev"]));
            u.set("iface_types", set_of(IFACE_TYPES.to_vec()));
            if let Some(cfg) = sess.applied_cfg {
                u.set("cur_cfg", json!(cfg));
            }
            out.extend(u.into_op());
        }
    }
    out
}
