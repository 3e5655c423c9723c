//! The in-memory replica of the monitored tables and how updates change it.

use crate::client::Event;
use crate::datum::{Atom, Datum, Uuid};
use crate::error::Error;
use crate::schema::{ColumnType, Schema};
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};

/// One row: column name → value.  Every monitored column is present (columns the server
/// omitted hold their type's default).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Row {
    pub columns: BTreeMap<String, Datum>,
}

impl Row {
    pub fn get(&self, column: &str) -> Option<&Datum> {
        self.columns.get(column)
    }
    pub fn get_str(&self, column: &str) -> Option<&str> {
        self.get(column)?.as_str()
    }
    pub fn get_int(&self, column: &str) -> Option<i64> {
        self.get(column)?.as_int()
    }
    pub fn get_bool(&self, column: &str) -> Option<bool> {
        self.get(column)?.as_bool()
    }
    pub fn get_uuid(&self, column: &str) -> Option<Uuid> {
        self.get(column)?.as_uuid()
    }
    /// UUIDs of a reference set column (empty if absent).
    pub fn get_uuids(&self, column: &str) -> Vec<Uuid> {
        self.get(column).map(Datum::uuids).unwrap_or_default()
    }
    /// `column:key` of a string-keyed map column.
    pub fn map_get(&self, column: &str, key: &str) -> Option<&Atom> {
        self.get(column)?.map_get(key)
    }
}

/// Rows of one table by UUID.
pub type Table = HashMap<Uuid, Row>;

/// The replica: monitored table name → rows.  Every monitored table is present, possibly
/// empty.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Db {
    pub tables: HashMap<String, Table>,
}

/// What is monitored: table → column → type.
pub(crate) type MonitorSpec = BTreeMap<String, BTreeMap<String, ColumnType>>;

/// Builds the monitored column set from the caller's request and the schema.  Unknown
/// tables and columns are dropped (with a trace); an empty column list means every column;
/// an empty table list means every table.
pub(crate) fn monitor_spec(schema: &Schema, wanted: &[(String, Vec<String>)]) -> MonitorSpec {
    let mut spec = MonitorSpec::new();
    let all: Vec<(String, Vec<String>)>;
    let wanted = if wanted.is_empty() {
        all = schema
            .tables
            .keys()
            .map(|t| (t.clone(), Vec::new()))
            .collect();
        &all
    } else {
        wanted
    };
    for (table, cols) in wanted {
        let Some(ts) = schema.tables.get(table) else {
            tracing::warn!(table, "ovsdb: table not in schema, not monitored");
            continue;
        };
        let entry = spec.entry(table.clone()).or_default();
        if cols.is_empty() {
            entry.extend(ts.columns.iter().map(|(c, t)| (c.clone(), t.clone())));
        }
        for c in cols {
            match ts.columns.get(c) {
                Some(t) => {
                    entry.insert(c.clone(), t.clone());
                }
                None => tracing::debug!(table, column = c, "ovsdb: column not in schema"),
            }
        }
    }
    spec
}

fn bad(table: &str, uuid: &str, msg: impl Into<String>) -> Event {
    Event::Error(Error::BadData {
        context: format!("{table} row {uuid}"),
        msg: msg.into(),
    })
}

impl Db {
    pub(crate) fn with_tables(spec: &MonitorSpec) -> Db {
        Db {
            tables: spec.keys().map(|t| (t.clone(), Table::new())).collect(),
        }
    }

    /// Rows of `table` (None if not monitored).
    pub fn table(&self, table: &str) -> Option<&Table> {
        self.tables.get(table)
    }

    /// One row.
    pub fn row(&self, table: &str, uuid: &Uuid) -> Option<&Row> {
        self.tables.get(table)?.get(uuid)
    }

    /// First row of `table` whose string `column` equals `value` (e.g. Bridge by name).
    pub fn find(&self, table: &str, column: &str, value: &str) -> Option<(Uuid, &Row)> {
        self.tables
            .get(table)?
            .iter()
            .find(|(_, r)| r.get_str(column) == Some(value))
            .map(|(u, r)| (*u, r))
    }

    /// Total number of rows.
    pub fn len(&self) -> usize {
        self.tables.values().map(HashMap::len).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// A complete row from an `initial`/`insert`/`new` object: defaults for omitted columns.
    fn full_row(
        cols: &BTreeMap<String, ColumnType>,
        table: &str,
        uuid: &str,
        json: &Value,
        events: &mut Vec<Event>,
    ) -> Option<Row> {
        let Some(obj) = json.as_object() else {
            events.push(bad(table, uuid, "row is not an object"));
            return None;
        };
        let mut row = Row {
            columns: cols
                .iter()
                .map(|(c, t)| (c.clone(), Datum::default_of(t)))
                .collect(),
        };
        for (c, v) in obj {
            let Some(ty) = cols.get(c) else { continue };
            match Datum::from_json_typed(v, ty) {
                Ok(d) => {
                    row.columns.insert(c.clone(), d);
                }
                Err(e) => events.push(bad(table, uuid, format!("column {c}: {e}"))),
            }
        }
        Some(row)
    }

    /// Inserts or replaces a row, emitting inserted / modified.
    fn put_row(&mut self, table: &str, uuid: Uuid, row: Row, events: &mut Vec<Event>) {
        let t = self.tables.entry(table.to_string()).or_default();
        match t.insert(uuid, row) {
            None => events.push(Event::RowInserted {
                table: table.to_string(),
                uuid,
            }),
            Some(old) => {
                let new = &t[&uuid];
                let columns = changed_columns(&old, new);
                if !columns.is_empty() {
                    events.push(Event::RowModified {
                        table: table.to_string(),
                        uuid,
                        columns,
                    });
                }
            }
        }
    }

    fn delete_row(&mut self, table: &str, uuid: Uuid, events: &mut Vec<Event>) {
        if let Some(old) = self.tables.get_mut(table).and_then(|t| t.remove(&uuid)) {
            events.push(Event::RowDeleted {
                table: table.to_string(),
                uuid,
                old,
            });
        }
    }

    /// Iterates `<table-updates>`/`<table-updates2>` over monitored tables, parsing UUIDs.
    fn for_each_row_update(
        spec: &MonitorSpec,
        updates: &Value,
        events: &mut Vec<Event>,
        mut f: impl FnMut(&str, &BTreeMap<String, ColumnType>, Uuid, &str, &Value, &mut Vec<Event>),
    ) {
        let Some(tables) = updates.as_object() else {
            events.push(Event::Error(Error::BadData {
                context: "table updates".into(),
                msg: "not an object".into(),
            }));
            return;
        };
        for (table, rows) in tables {
            let Some(cols) = spec.get(table) else {
                continue;
            };
            let Some(rows) = rows.as_object() else {
                events.push(bad(table, "*", "table update is not an object"));
                continue;
            };
            for (us, ru) in rows {
                match Uuid::parse(us) {
                    Some(u) => f(table, cols, u, us, ru, events),
                    None => events.push(bad(table, us, "bad uuid")),
                }
            }
        }
    }

    /// Applies `<table-updates2>` (monitor_cond reply or `update2` notification).
    pub(crate) fn apply_update2(
        &mut self,
        spec: &MonitorSpec,
        updates: &Value,
        events: &mut Vec<Event>,
    ) {
        Self::for_each_row_update(spec, updates, events, |table, cols, uuid, us, ru, ev| {
            let Some((kind, row)) = ru
                .as_object()
                .filter(|o| o.len() == 1)
                .and_then(|o| o.iter().next())
            else {
                ev.push(bad(table, us, "row update must have exactly one member"));
                return;
            };
            match kind.as_str() {
                "initial" | "insert" => {
                    if let Some(r) = Self::full_row(cols, table, us, row, ev) {
                        self.put_row(table, uuid, r, ev);
                    }
                }
                "delete" => self.delete_row(table, uuid, ev),
                "modify" => {
                    let Some(obj) = row.as_object() else {
                        ev.push(bad(table, us, "modify is not an object"));
                        return;
                    };
                    let Some(cur) = self.tables.get_mut(table).and_then(|t| t.get_mut(&uuid))
                    else {
                        ev.push(bad(table, us, "modify of unknown row"));
                        return;
                    };
                    let mut columns = Vec::new();
                    for (c, v) in obj {
                        let Some(ty) = cols.get(c) else { continue };
                        let old = cur
                            .columns
                            .get(c)
                            .cloned()
                            .unwrap_or_else(|| Datum::default_of(ty));
                        let res = Datum::from_json(v).and_then(|d| old.apply_diff(d, ty));
                        match res {
                            Ok(new) if new != old => {
                                cur.columns.insert(c.clone(), new);
                                columns.push(c.clone());
                            }
                            Ok(_) => {}
                            Err(e) => ev.push(bad(table, us, format!("column {c}: {e}"))),
                        }
                    }
                    if !columns.is_empty() {
                        ev.push(Event::RowModified {
                            table: table.to_string(),
                            uuid,
                            columns,
                        });
                    }
                }
                other => ev.push(bad(table, us, format!("unknown row update {other:?}"))),
            }
        });
    }

    /// Applies RFC 7047 `<table-updates>` (monitor reply or `update` notification).
    pub(crate) fn apply_update(
        &mut self,
        spec: &MonitorSpec,
        updates: &Value,
        events: &mut Vec<Event>,
    ) {
        Self::for_each_row_update(spec, updates, events, |table, cols, uuid, us, ru, ev| {
            let Some(o) = ru.as_object() else {
                ev.push(bad(table, us, "row update is not an object"));
                return;
            };
            let new = o.get("new").filter(|v| !v.is_null());
            let old = o.get("old").filter(|v| !v.is_null());
            match (old, new) {
                (_, None) => self.delete_row(table, uuid, ev),
                (Some(_), Some(new)) if self.row(table, &uuid).is_some() => {
                    // "new" carries the monitored columns; merge it over the current row.
                    let Some(obj) = new.as_object() else {
                        ev.push(bad(table, us, "new is not an object"));
                        return;
                    };
                    let mut row = self.tables[table][&uuid].clone();
                    for (c, v) in obj {
                        let Some(ty) = cols.get(c) else { continue };
                        match Datum::from_json_typed(v, ty) {
                            Ok(d) => {
                                row.columns.insert(c.clone(), d);
                            }
                            Err(e) => ev.push(bad(table, us, format!("column {c}: {e}"))),
                        }
                    }
                    self.put_row(table, uuid, row, ev);
                }
                (_, Some(new)) => {
                    if let Some(r) = Self::full_row(cols, table, us, new, ev) {
                        self.put_row(table, uuid, r, ev);
                    }
                }
            }
        });
    }

    /// Replaces the replica by `new` (a fresh snapshot), emitting the differences.
    pub(crate) fn replace_with(&mut self, mut new: Db, events: &mut Vec<Event>) {
        let old = std::mem::take(&mut self.tables);
        let mut names: Vec<&String> = old.keys().chain(new.tables.keys()).collect();
        names.sort();
        names.dedup();
        for name in names {
            let empty = Table::new();
            let o = old.get(name).unwrap_or(&empty);
            let n = new.tables.get(name).unwrap_or(&empty);
            let mut gone: Vec<&Uuid> = o.keys().filter(|u| !n.contains_key(u)).collect();
            gone.sort();
            for u in gone {
                events.push(Event::RowDeleted {
                    table: name.clone(),
                    uuid: *u,
                    old: o[u].clone(),
                });
            }
            let mut uuids: Vec<&Uuid> = n.keys().collect();
            uuids.sort();
            for u in uuids {
                match o.get(u) {
                    None => events.push(Event::RowInserted {
                        table: name.clone(),
                        uuid: *u,
                    }),
                    Some(or) => {
                        let columns = changed_columns(or, &n[u]);
                        if !columns.is_empty() {
                            events.push(Event::RowModified {
                                table: name.clone(),
                                uuid: *u,
                                columns,
                            });
                        }
                    }
                }
            }
        }
        self.tables = std::mem::take(&mut new.tables);
    }
}

fn changed_columns(old: &Row, new: &Row) -> Vec<String> {
    let mut cols: Vec<String> = new
        .columns
        .iter()
        .filter(|(c, d)| old.columns.get(*c) != Some(d))
        .map(|(c, _)| c.clone())
        .collect();
    cols.extend(
        old.columns
            .keys()
            .filter(|c| !new.columns.contains_key(*c))
            .cloned(),
    );
    cols
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const U1: &str = "11111111-1111-1111-1111-111111111111";
    const U2: &str = "22222222-2222-2222-2222-222222222222";

    fn spec() -> MonitorSpec {
        let schema = Schema::from_json(&json!({"name":"T","tables":{
            "Bridge": {"columns": {
                "name": {"type": "string"},
                "ports": {"type": {"key": {"type":"uuid","refTable":"Port"}, "min":0, "max":"unlimited"}},
                "external_ids": {"type": {"key":"string","value":"string","min":0,"max":"unlimited"}},
                "datapath_id": {"type": {"key":"string","min":0,"max":1}}
            }},
            "Port": {"columns": {"name": {"type": "string"}}}
        }}))
        .unwrap();
        monitor_spec(
            &schema,
            &[("Bridge".into(), vec![]), ("Nope".into(), vec![])],
        )
    }

    #[test]
    fn update2_initial_insert_modify_delete() {
        let spec = spec();
        assert_eq!(spec.len(), 1);
        let mut db = Db::with_tables(&spec);
        let mut ev = Vec::new();
        db.apply_update2(
            &spec,
            &json!({"Bridge": {U1: {"initial": {"name": "br0", "unknown_col": 5,
                "external_ids": ["map", [["a","1"],["b","2"]]]}}},
                "Unmonitored": {U2: {"insert": {}}}}),
            &mut ev,
        );
        assert_eq!(ev.len(), 1, "{ev:?}");
        let u1 = Uuid::parse(U1).unwrap();
        let r = db.row("Bridge", &u1).unwrap();
        assert_eq!(r.get_str("name"), Some("br0"));
        assert_eq!(r.get("ports"), Some(&Datum::Set(vec![])), "default filled");
        assert!(r.get("unknown_col").is_none());

        let p1 = "33333333-3333-3333-3333-333333333333";
        let p2 = "44444444-4444-4444-4444-444444444444";
        ev.clear();
        db.apply_update2(
            &spec,
            &json!({"Bridge": {U1: {"modify": {
                "ports": ["set", [["uuid", p1], ["uuid", p2]]],
                "external_ids": ["map", [["a","1"],["b","3"],["c","4"]]],
                "datapath_id": "0000aabbccddeeff",
                "ignored": 1
            }}}}),
            &mut ev,
        );
        let r = db.row("Bridge", &u1).unwrap();
        assert_eq!(r.get_uuids("ports").len(), 2);
        assert_eq!(
            r.get("external_ids").unwrap().to_json(),
            json!(["map", [["b", "3"], ["c", "4"]]])
        );
        assert_eq!(r.get_str("datapath_id"), Some("0000aabbccddeeff"));
        match &ev[..] {
            [Event::RowModified { columns, .. }] => {
                assert_eq!(columns, &["datapath_id", "external_ids", "ports"])
            }
            other => panic!("{other:?}"),
        }
        // Toggle p1 out of the set (bare atom form).
        ev.clear();
        db.apply_update2(
            &spec,
            &json!({"Bridge": {U1: {"modify": {"ports": ["uuid", p1]}}}}),
            &mut ev,
        );
        assert_eq!(
            db.row("Bridge", &u1).unwrap().get_uuids("ports"),
            vec![Uuid::parse(p2).unwrap()]
        );
        ev.clear();
        db.apply_update2(&spec, &json!({"Bridge": {U1: {"delete": null}}}), &mut ev);
        assert!(
            matches!(&ev[..], [Event::RowDeleted { old, .. }] if old.get_str("name") == Some("br0"))
        );
        assert!(db.is_empty());
    }

    #[test]
    fn malformed_updates_do_not_panic() {
        let spec = spec();
        let mut db = Db::with_tables(&spec);
        let mut ev = Vec::new();
        for bad in [
            json!(1),
            json!({"Bridge": 1}),
            json!({"Bridge": {"not-a-uuid": {"insert": {}}}}),
            json!({"Bridge": {U1: {"insert": {}, "delete": null}}}),
            json!({"Bridge": {U1: {"modify": {"name": "x"}}}}),
            json!({"Bridge": {U1: {"frobnicate": {}}}}),
            json!({"Bridge": {U1: {"insert": {"name": 5}}}}),
            json!({"Bridge": {U1: {"insert": 5}}}),
            json!({"Bridge": {U1: {"modify": {"external_ids": "x"}}}}),
            json!({"Bridge": {U1: {"old": 1}}}),
        ] {
            db.apply_update2(&spec, &bad, &mut ev);
            db.apply_update(&spec, &bad, &mut ev);
        }
        assert!(ev.iter().any(|e| matches!(e, Event::Error(_))));
    }

    #[test]
    fn update_v1_old_new() {
        let spec = spec();
        let mut db = Db::with_tables(&spec);
        let mut ev = Vec::new();
        db.apply_update(
            &spec,
            &json!({"Bridge": {U1: {"new": {"name": "br0", "ports": ["set", []]}}}}),
            &mut ev,
        );
        assert!(matches!(&ev[..], [Event::RowInserted { .. }]));
        ev.clear();
        db.apply_update(
            &spec,
            &json!({"Bridge": {U1: {"old": {"name": "br0"}, "new": {"name": "br1", "ports": ["set", []]}}}}),
            &mut ev,
        );
        assert!(matches!(&ev[..], [Event::RowModified { columns, .. }] if columns == &["name"]));
        ev.clear();
        db.apply_update(
            &spec,
            &json!({"Bridge": {U1: {"old": {"name": "br1"}}}}),
            &mut ev,
        );
        assert!(matches!(&ev[..], [Event::RowDeleted { .. }]));
    }

    #[test]
    fn resync_diff() {
        let spec = spec();
        let mut db = Db::with_tables(&spec);
        let mut ev = Vec::new();
        db.apply_update2(
            &spec,
            &json!({"Bridge": {U1: {"initial": {"name": "br0"}}, U2: {"initial": {"name": "br1"}}}}),
            &mut ev,
        );
        let mut snap = Db::with_tables(&spec);
        let u3 = "55555555-5555-5555-5555-555555555555";
        snap.apply_update2(
            &spec,
            &json!({"Bridge": {U2: {"initial": {"name": "br1-renamed"}}, u3: {"initial": {"name": "br2"}}}}),
            &mut Vec::new(),
        );
        ev.clear();
        db.replace_with(snap.clone(), &mut ev);
        assert_eq!(db, snap);
        assert_eq!(ev.len(), 3, "{ev:?}");
        assert!(matches!(&ev[0], Event::RowDeleted { uuid, .. } if uuid.to_string() == U1));
        assert!(
            matches!(&ev[1], Event::RowModified { uuid, columns, .. } if uuid.to_string() == U2 && columns == &["name"])
        );
        assert!(matches!(&ev[2], Event::RowInserted { uuid, .. } if uuid.to_string() == u3));
    }
}
