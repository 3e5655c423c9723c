//! Builders for `transact` operations (RFC 7047 §5.2) and their conditions / mutations.
//!
//! Values inside rows, conditions and mutations are OVSDB JSON: build them with
//! `serde_json::json!`, [`crate::Datum::to_json`], [`crate::Atom::to_json`] or
//! [`crate::Uuid::to_json`].

use crate::datum::Uuid;
use serde_json::{json, Map, Value};

/// `[column, function, value]`, e.g. `cond("name", "==", json!("br0"))`.
pub fn cond(column: &str, function: &str, value: Value) -> Value {
    json!([column, function, value])
}

/// `[column, "==", value]`.
pub fn eq(column: &str, value: Value) -> Value {
    cond(column, "==", value)
}

/// `["_uuid", "==", ["uuid", u]]`.
pub fn uuid_is(uuid: Uuid) -> Value {
    cond("_uuid", "==", uuid.to_json())
}

/// `[column, mutator, value]`, e.g. `mutation("cur_cfg", "+=", json!(1))`.
pub fn mutation(column: &str, mutator: &str, value: Value) -> Value {
    json!([column, mutator, value])
}

/// `insert`; `uuid_name` names the new row for later operations (`["named-uuid", name]`).
pub fn insert(table: &str, row: Value, uuid_name: Option<&str>) -> Value {
    let mut o = Map::new();
    o.insert("op".into(), json!("insert"));
    o.insert("table".into(), json!(table));
    o.insert("row".into(), row);
    if let Some(n) = uuid_name {
        o.insert("uuid-name".into(), json!(n));
    }
    Value::Object(o)
}

/// `update` of the rows matching `where_` with the columns of `row`.
pub fn update(table: &str, where_: Vec<Value>, row: Value) -> Value {
    json!({"op": "update", "table": table, "where": where_, "row": row})
}

/// `mutate` of the rows matching `where_`.
pub fn mutate(table: &str, where_: Vec<Value>, mutations: Vec<Value>) -> Value {
    json!({"op": "mutate", "table": table, "where": where_, "mutations": mutations})
}

/// `delete` of the rows matching `where_`.
pub fn delete(table: &str, where_: Vec<Value>) -> Value {
    json!({"op": "delete", "table": table, "where": where_})
}

/// `select`; an empty `columns` selects all columns.
pub fn select(table: &str, where_: Vec<Value>, columns: &[&str]) -> Value {
    let mut v = json!({"op": "select", "table": table, "where": where_});
    if !columns.is_empty() {
        v["columns"] = json!(columns);
    }
    v
}

/// `wait` until the `columns` of the rows matching `where_` are (`"=="`) or are not
/// (`"!="`) exactly `rows`; `timeout_ms` of `Some(0)` fails at once instead of waiting.
pub fn wait(
    table: &str,
    where_: Vec<Value>,
    columns: &[&str],
    until: &str,
    rows: Vec<Value>,
    timeout_ms: Option<u64>,
) -> Value {
    let mut v = json!({"op": "wait", "table": table, "where": where_, "columns": columns,
        "until": until, "rows": rows});
    if let Some(t) = timeout_ms {
        v["timeout"] = json!(t);
    }
    v
}

/// `comment` (logged by ovsdb-server with the transaction).
pub fn comment(text: &str) -> Value {
    json!({"op": "comment", "comment": text})
}

/// `assert` that this session owns lock `name` (RFC 7047 §5.2.10).
pub fn assert_lock(name: &str) -> Value {
    json!({"op": "assert", "lock": name})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes() {
        assert_eq!(
            insert("Bridge", json!({"name": "br0"}), Some("b")),
            json!({"op":"insert","table":"Bridge","row":{"name":"br0"},"uuid-name":"b"})
        );
        assert_eq!(
            update(
                "Interface",
                vec![eq("name", json!("p1"))],
                json!({"ofport": 7})
            ),
            json!({"op":"update","table":"Interface","where":[["name","==","p1"]],"row":{"ofport":7}})
        );
        assert_eq!(
            mutate(
                "Open_vSwitch",
                vec![],
                vec![mutation("next_cfg", "+=", json!(1))]
            ),
            json!({"op":"mutate","table":"Open_vSwitch","where":[],"mutations":[["next_cfg","+=",1]]})
        );
        assert_eq!(
            select("Port", vec![uuid_is(Uuid(1))], &["name"])["where"][0][2][0],
            json!("uuid")
        );
        assert_eq!(
            wait(
                "Bridge",
                vec![],
                &["name"],
                "==",
                vec![json!({"name":"br0"})],
                Some(0)
            )["timeout"],
            json!(0)
        );
        assert_eq!(comment("x")["op"], json!("comment"));
        assert_eq!(delete("Port", vec![])["op"], json!("delete"));
        assert_eq!(assert_lock("l")["lock"], json!("l"));
    }
}
