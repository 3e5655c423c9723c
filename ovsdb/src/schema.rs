//! The parts of an OVSDB schema (RFC 7047 §3.2) the client needs: column types.

use crate::error::Error;
use serde_json::Value;
use std::collections::BTreeMap;

/// RFC 7047 `<atomic-type>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AtomicType {
    Integer,
    Real,
    Boolean,
    String,
    Uuid,
}

impl AtomicType {
    fn parse(s: &str) -> Result<AtomicType, String> {
        Ok(match s {
            "integer" => AtomicType::Integer,
            "real" => AtomicType::Real,
            "boolean" => AtomicType::Boolean,
            "string" => AtomicType::String,
            "uuid" => AtomicType::Uuid,
            _ => return Err(format!("unknown atomic type {s:?}")),
        })
    }
}

/// RFC 7047 `<base-type>` (constraints other than `refTable` are not kept: the server
/// enforces them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BaseType {
    pub atomic: AtomicType,
    pub ref_table: Option<String>,
}

impl BaseType {
    fn from_json(v: &Value) -> Result<BaseType, String> {
        match v {
            Value::String(s) => Ok(BaseType {
                atomic: AtomicType::parse(s)?,
                ref_table: None,
            }),
            Value::Object(o) => {
                let t = o
                    .get("type")
                    .and_then(Value::as_str)
                    .ok_or("base type without \"type\"")?;
                Ok(BaseType {
                    atomic: AtomicType::parse(t)?,
                    ref_table: o.get("refTable").and_then(Value::as_str).map(String::from),
                })
            }
            _ => Err(format!("bad base type {v}")),
        }
    }
}

/// RFC 7047 `<type>`.  `max` is `u64::MAX` for "unlimited".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ColumnType {
    pub key: BaseType,
    pub value: Option<BaseType>,
    pub min: u64,
    pub max: u64,
}

impl ColumnType {
    pub fn from_json(v: &Value) -> Result<ColumnType, String> {
        match v {
            Value::String(_) => Ok(ColumnType {
                key: BaseType::from_json(v)?,
                value: None,
                min: 1,
                max: 1,
            }),
            Value::Object(o) => {
                let key = BaseType::from_json(o.get("key").ok_or("type without \"key\"")?)?;
                let value = o.get("value").map(BaseType::from_json).transpose()?;
                let min = match o.get("min") {
                    None => 1,
                    Some(m) => m.as_u64().ok_or_else(|| format!("bad min {m}"))?,
                };
                let max = match o.get("max") {
                    None => 1,
                    Some(Value::String(s)) if s == "unlimited" => u64::MAX,
                    Some(m) => m.as_u64().ok_or_else(|| format!("bad max {m}"))?,
                };
                if min > 1 || max < 1 || min > max {
                    return Err(format!("bad min/max {min}/{max}"));
                }
                Ok(ColumnType {
                    key,
                    value,
                    min,
                    max,
                })
            }
            _ => Err(format!("bad type {v}")),
        }
    }

    /// Exactly one atom, no value.
    pub fn is_scalar(&self) -> bool {
        self.value.is_none() && self.min == 1 && self.max == 1
    }

    pub fn is_map(&self) -> bool {
        self.value.is_some()
    }
}

/// One table: its column types (`_uuid`/`_version` are implicit and not listed).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct TableSchema {
    pub columns: BTreeMap<String, ColumnType>,
    pub is_root: bool,
}

/// A database schema.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Schema {
    pub name: String,
    pub version: String,
    pub tables: BTreeMap<String, TableSchema>,
}

impl Schema {
    pub fn from_json(v: &Value) -> Result<Schema, Error> {
        let bad = |m: String| Error::BadSchema(m);
        let o = v.as_object().ok_or_else(|| bad("not an object".into()))?;
        let name = o.get("name").and_then(Value::as_str).unwrap_or_default();
        let version = o.get("version").and_then(Value::as_str).unwrap_or_default();
        let tables_json = o
            .get("tables")
            .and_then(Value::as_object)
            .ok_or_else(|| bad("no \"tables\" object".into()))?;
        let mut tables = BTreeMap::new();
        for (tname, t) in tables_json {
            let cols = t
                .get("columns")
                .and_then(Value::as_object)
                .ok_or_else(|| bad(format!("table {tname} has no \"columns\"")))?;
            let mut columns = BTreeMap::new();
            for (cname, c) in cols {
                let ty = c
                    .get("type")
                    .ok_or_else(|| bad(format!("column {tname}.{cname} has no type")))
                    .and_then(|t| {
                        ColumnType::from_json(t)
                            .map_err(|e| bad(format!("column {tname}.{cname}: {e}")))
                    })?;
                columns.insert(cname.clone(), ty);
            }
            let is_root = t.get("isRoot").and_then(Value::as_bool).unwrap_or(false);
            tables.insert(tname.clone(), TableSchema { columns, is_root });
        }
        Ok(Schema {
            name: name.to_string(),
            version: version.to_string(),
            tables,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn parse_types() {
        let s = Schema::from_json(&json!({
            "name": "T", "version": "1.0.0",
            "tables": {"A": {"isRoot": true, "columns": {
                "i": {"type": "integer"},
                "o": {"type": {"key": {"type": "integer", "minInteger": 1}, "min": 0, "max": 1}},
                "m": {"type": {"key": "string", "value": "string", "min": 0, "max": "unlimited"}},
                "r": {"type": {"key": {"type": "uuid", "refTable": "B"}, "min": 0, "max": "unlimited"}}
            }}}
        }))
        .unwrap();
        let a = &s.tables["A"];
        assert!(a.is_root);
        assert!(a.columns["i"].is_scalar());
        assert!(!a.columns["o"].is_scalar());
        assert!(a.columns["m"].is_map());
        assert_eq!(a.columns["r"].key.ref_table.as_deref(), Some("B"));
        assert_eq!(a.columns["r"].max, u64::MAX);
        assert!(Schema::from_json(
            &json!({"tables": {"A": {"columns": {"x": {"type": "float"}}}}})
        )
        .is_err());
        assert!(Schema::from_json(&json!([])).is_err());
    }

    #[test]
    fn real_vswitch_schema() {
        let path = "/usr/share/openvswitch/vswitch.ovsschema";
        let Ok(text) = std::fs::read_to_string(path) else {
            return;
        };
        let s = Schema::from_json(&serde_json::from_str(&text).unwrap()).unwrap();
        assert_eq!(s.name, "Open_vSwitch");
        assert!(s.tables["Interface"].columns["ofport"].max == 1);
        assert!(s.tables["Bridge"].columns["ports"].key.ref_table.as_deref() == Some("Port"));
    }
}
