//! OVSDB data: UUIDs, atoms and datums (RFC 7047 §5.1), untyped and schema-typed.

use crate::schema::{AtomicType, ColumnType};
use serde_json::{json, Value};
use std::cmp::Ordering;
use std::fmt;

/// A row UUID.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Uuid(pub u128);

impl Uuid {
    /// Parses the canonical 36-character form `xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx`.
    pub fn parse(s: &str) -> Option<Uuid> {
        let b = s.as_bytes();
        if b.len() != 36 {
            return None;
        }
        let mut v: u128 = 0;
        for (i, &c) in b.iter().enumerate() {
            if matches!(i, 8 | 13 | 18 | 23) {
                if c != b'-' {
                    return None;
                }
                continue;
            }
            let d = (c as char).to_digit(16)?;
            v = (v << 4) | d as u128;
        }
        Some(Uuid(v))
    }

    /// `["uuid", "..."]`.
    pub fn to_json(&self) -> Value {
        json!(["uuid", self.to_string()])
    }
}

impl fmt::Display for Uuid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let h = format!("{:032x}", self.0);
        write!(
            f,
            "{}-{}-{}-{}-{}",
            &h[0..8],
            &h[8..12],
            &h[12..16],
            &h[16..20],
            &h[20..32]
        )
    }
}

/// One scalar value.
#[derive(Debug, Clone)]
pub enum Atom {
    Integer(i64),
    Real(f64),
    Boolean(bool),
    String(String),
    Uuid(Uuid),
    /// `["named-uuid", name]`: only meaningful inside a transaction.
    NamedUuid(String),
}

impl Atom {
    fn rank(&self) -> u8 {
        match self {
            Atom::Integer(_) => 0,
            Atom::Real(_) => 1,
            Atom::Boolean(_) => 2,
            Atom::String(_) => 3,
            Atom::Uuid(_) => 4,
            Atom::NamedUuid(_) => 5,
        }
    }

    /// Parses an atom without knowing its type.
    pub fn from_json(v: &Value) -> Result<Atom, String> {
        match v {
            Value::Bool(b) => Ok(Atom::Boolean(*b)),
            Value::String(s) => Ok(Atom::String(s.clone())),
            Value::Number(n) => {
                if let Some(i) = n.as_i64() {
                    Ok(Atom::Integer(i))
                } else if let Some(f) = n.as_f64() {
                    Ok(Atom::Real(f))
                } else {
                    Err(format!("number {n} out of range"))
                }
            }
            Value::Array(a) if a.len() == 2 => match (&a[0], &a[1]) {
                (Value::String(tag), Value::String(s)) if tag == "uuid" => Uuid::parse(s)
                    .map(Atom::Uuid)
                    .ok_or_else(|| format!("bad uuid {s:?}")),
                (Value::String(tag), Value::String(s)) if tag == "named-uuid" => {
                    Ok(Atom::NamedUuid(s.clone()))
                }
                _ => Err(format!("not an atom: {v}")),
            },
            _ => Err(format!("not an atom: {v}")),
        }
    }

    /// Converts to `ty` (integers are accepted for reals) or fails on mismatch.
    pub fn coerce(self, ty: AtomicType) -> Result<Atom, String> {
        match (ty, self) {
            (AtomicType::Integer, a @ Atom::Integer(_))
            | (AtomicType::Real, a @ Atom::Real(_))
            | (AtomicType::Boolean, a @ Atom::Boolean(_))
            | (AtomicType::String, a @ Atom::String(_))
            | (AtomicType::Uuid, a @ (Atom::Uuid(_) | Atom::NamedUuid(_))) => Ok(a),
            (AtomicType::Real, Atom::Integer(i)) => Ok(Atom::Real(i as f64)),
            (ty, a) => Err(format!("expected {ty:?}, got {}", a.to_json())),
        }
    }

    /// The default atom of a type (0, 0.0, false, "", all-zero UUID).
    pub fn default_of(ty: AtomicType) -> Atom {
        match ty {
            AtomicType::Integer => Atom::Integer(0),
            AtomicType::Real => Atom::Real(0.0),
            AtomicType::Boolean => Atom::Boolean(false),
            AtomicType::String => Atom::String(String::new()),
            AtomicType::Uuid => Atom::Uuid(Uuid(0)),
        }
    }

    pub fn to_json(&self) -> Value {
        match self {
            Atom::Integer(i) => json!(i),
            Atom::Real(f) => json!(f),
            Atom::Boolean(b) => json!(b),
            Atom::String(s) => json!(s),
            Atom::Uuid(u) => u.to_json(),
            Atom::NamedUuid(n) => json!(["named-uuid", n]),
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Atom::String(s) => Some(s),
            _ => None,
        }
    }
    pub fn as_int(&self) -> Option<i64> {
        match self {
            Atom::Integer(i) => Some(*i),
            _ => None,
        }
    }
    pub fn as_real(&self) -> Option<f64> {
        match self {
            Atom::Real(f) => Some(*f),
            Atom::Integer(i) => Some(*i as f64),
            _ => None,
        }
    }
    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Atom::Boolean(b) => Some(*b),
            _ => None,
        }
    }
    pub fn as_uuid(&self) -> Option<Uuid> {
        match self {
            Atom::Uuid(u) => Some(*u),
            _ => None,
        }
    }
}

impl Ord for Atom {
    fn cmp(&self, other: &Self) -> Ordering {
        match (self, other) {
            (Atom::Integer(a), Atom::Integer(b)) => a.cmp(b),
            (Atom::Real(a), Atom::Real(b)) => a.total_cmp(b),
            (Atom::Boolean(a), Atom::Boolean(b)) => a.cmp(b),
            (Atom::String(a), Atom::String(b)) => a.cmp(b),
            (Atom::Uuid(a), Atom::Uuid(b)) => a.cmp(b),
            (Atom::NamedUuid(a), Atom::NamedUuid(b)) => a.cmp(b),
            _ => self.rank().cmp(&other.rank()),
        }
    }
}
impl PartialOrd for Atom {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl PartialEq for Atom {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for Atom {}

impl From<&str> for Atom {
    fn from(s: &str) -> Atom {
        Atom::String(s.to_string())
    }
}
impl From<String> for Atom {
    fn from(s: String) -> Atom {
        Atom::String(s)
    }
}
impl From<i64> for Atom {
    fn from(i: i64) -> Atom {
        Atom::Integer(i)
    }
}
impl From<bool> for Atom {
    fn from(b: bool) -> Atom {
        Atom::Boolean(b)
    }
}
impl From<Uuid> for Atom {
    fn from(u: Uuid) -> Atom {
        Atom::Uuid(u)
    }
}

/// A column value: an atom, a set of atoms or a map.
///
/// Values in the replica are canonical for their column type: a scalar column (exactly one
/// atom) holds [`Datum::Atom`], other non-map columns (including optional ones, `min` 0 /
/// `max` 1) hold a sorted, duplicate-free [`Datum::Set`], and map columns hold a
/// [`Datum::Map`] sorted by key.  The accessors hide the difference between an atom and a
/// one-element set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Datum {
    Atom(Atom),
    Set(Vec<Atom>),
    Map(Vec<(Atom, Atom)>),
}

impl Datum {
    /// Parses without a type: `["set",[..]]`, `["map",[[k,v],..]]` or a bare atom.
    pub fn from_json(v: &Value) -> Result<Datum, String> {
        if let Value::Array(a) = v {
            if a.len() == 2 {
                if let (Value::String(tag), Value::Array(items)) = (&a[0], &a[1]) {
                    if tag == "set" {
                        return items
                            .iter()
                            .map(Atom::from_json)
                            .collect::<Result<_, _>>()
                            .map(Datum::Set);
                    }
                    if tag == "map" {
                        let mut pairs = Vec::with_capacity(items.len());
                        for p in items {
                            match p {
                                Value::Array(kv) if kv.len() == 2 => {
                                    pairs.push((Atom::from_json(&kv[0])?, Atom::from_json(&kv[1])?))
                                }
                                _ => return Err(format!("bad map pair {p}")),
                            }
                        }
                        return Ok(Datum::Map(pairs));
                    }
                }
            }
        }
        Atom::from_json(v).map(Datum::Atom)
    }

    /// Parses and canonicalises for a column of type `ty` (see the type's doc).
    pub fn from_json_typed(v: &Value, ty: &ColumnType) -> Result<Datum, String> {
        Datum::from_json(v)?.canonical(ty)
    }

    /// Checks atom types against `ty` and puts the value in canonical form.
    pub fn canonical(self, ty: &ColumnType) -> Result<Datum, String> {
        let kt = ty.key.atomic;
        if let Some(vt) = &ty.value {
            let vt = vt.atomic;
            let mut pairs = match self {
                Datum::Map(p) => p,
                Datum::Set(s) if s.is_empty() => Vec::new(),
                other => return Err(format!("expected a map, got {}", other.to_json())),
            };
            for (k, v) in pairs.iter_mut() {
                let kk = std::mem::replace(k, Atom::Boolean(false));
                *k = kk.coerce(kt)?;
                let vv = std::mem::replace(v, Atom::Boolean(false));
                *v = vv.coerce(vt)?;
            }
            // Stable sort keeps the last duplicate last; keep the last one.
            pairs.sort_by(|a, b| a.0.cmp(&b.0));
            let mut out: Vec<(Atom, Atom)> = Vec::with_capacity(pairs.len());
            for p in pairs {
                match out.last_mut() {
                    Some(last) if last.0 == p.0 => *last = p,
                    _ => out.push(p),
                }
            }
            return Ok(Datum::Map(out));
        }
        let mut atoms = match self {
            Datum::Atom(a) => vec![a],
            Datum::Set(s) => s,
            Datum::Map(m) if m.is_empty() => Vec::new(),
            Datum::Map(_) => return Err("expected a set or atom, got a map".into()),
        };
        for a in atoms.iter_mut() {
            let x = std::mem::replace(a, Atom::Boolean(false));
            *a = x.coerce(kt)?;
        }
        if ty.is_scalar() {
            return match atoms.len() {
                1 => Ok(Datum::Atom(atoms.pop().unwrap_or(Atom::Boolean(false)))),
                n => Err(format!("expected exactly one value, got {n}")),
            };
        }
        atoms.sort();
        atoms.dedup();
        Ok(Datum::Set(atoms))
    }

    /// The default value of a column type (what ovsdb-server omits from `initial`/`insert`).
    pub fn default_of(ty: &ColumnType) -> Datum {
        let k = Atom::default_of(ty.key.atomic);
        match &ty.value {
            Some(v) if ty.min > 0 => Datum::Map(vec![(k, Atom::default_of(v.atomic))]),
            Some(_) => Datum::Map(Vec::new()),
            None if ty.is_scalar() => Datum::Atom(k),
            None if ty.min > 0 => Datum::Set(vec![k]),
            None => Datum::Set(Vec::new()),
        }
    }

    /// Applies an `update2` "modify" difference (ovsdb-server(7) §4.1.14) for a column of
    /// type `ty`: non-composite columns (`max` 1) take the new value; for sets every element
    /// of the difference is toggled; for maps a new key is added, a key with the same value is
    /// removed and a key with a different value takes the new value.
    pub fn apply_diff(&self, diff: Datum, ty: &ColumnType) -> Result<Datum, String> {
        let diff = diff.canonical(ty)?;
        if ty.max <= 1 {
            return Ok(diff);
        }
        match (self.clone().canonical(ty)?, diff) {
            (Datum::Set(mut cur), Datum::Set(d)) => {
                for a in d {
                    match cur.binary_search(&a) {
                        Ok(i) => {
                            cur.remove(i);
                        }
                        Err(i) => cur.insert(i, a),
                    }
                }
                Ok(Datum::Set(cur))
            }
            (Datum::Map(mut cur), Datum::Map(d)) => {
                for (k, v) in d {
                    match cur.binary_search_by(|p| p.0.cmp(&k)) {
                        Ok(i) if cur[i].1 == v => {
                            cur.remove(i);
                        }
                        Ok(i) => cur[i].1 = v,
                        Err(i) => cur.insert(i, (k, v)),
                    }
                }
                Ok(Datum::Map(cur))
            }
            (_, d) => Ok(d),
        }
    }

    /// JSON form: bare atom, `["set",[...]]` or `["map",[[k,v],...]]`.
    pub fn to_json(&self) -> Value {
        match self {
            Datum::Atom(a) => a.to_json(),
            Datum::Set(s) => json!(["set", s.iter().map(Atom::to_json).collect::<Vec<_>>()]),
            Datum::Map(m) => json!([
                "map",
                m.iter()
                    .map(|(k, v)| json!([k.to_json(), v.to_json()]))
                    .collect::<Vec<_>>()
            ]),
        }
    }

    /// The single atom of an atom or one-element set.
    pub fn as_atom(&self) -> Option<&Atom> {
        match self {
            Datum::Atom(a) => Some(a),
            Datum::Set(s) if s.len() == 1 => s.first(),
            _ => None,
        }
    }
    pub fn as_str(&self) -> Option<&str> {
        self.as_atom()?.as_str()
    }
    pub fn as_int(&self) -> Option<i64> {
        self.as_atom()?.as_int()
    }
    pub fn as_real(&self) -> Option<f64> {
        self.as_atom()?.as_real()
    }
    pub fn as_bool(&self) -> Option<bool> {
        self.as_atom()?.as_bool()
    }
    pub fn as_uuid(&self) -> Option<Uuid> {
        self.as_atom()?.as_uuid()
    }
    /// The elements of a set (an atom is a one-element set).
    pub fn as_set(&self) -> Option<&[Atom]> {
        match self {
            Datum::Atom(a) => Some(std::slice::from_ref(a)),
            Datum::Set(s) => Some(s),
            Datum::Map(_) => None,
        }
    }
    /// The pairs of a map (an empty set is an empty map).
    pub fn as_map(&self) -> Option<&[(Atom, Atom)]> {
        match self {
            Datum::Map(m) => Some(m),
            Datum::Set(s) if s.is_empty() => Some(&[]),
            _ => None,
        }
    }
    /// Value of a string key in a map column (`other_config:foo`).
    pub fn map_get(&self, key: &str) -> Option<&Atom> {
        self.as_map()?
            .iter()
            .find(|(k, _)| k.as_str() == Some(key))
            .map(|(_, v)| v)
    }
    /// UUIDs in a set-of-references column.
    pub fn uuids(&self) -> Vec<Uuid> {
        self.as_set()
            .map(|s| s.iter().filter_map(Atom::as_uuid).collect())
            .unwrap_or_default()
    }
    /// True for an empty set or map.
    pub fn is_empty(&self) -> bool {
        match self {
            Datum::Atom(_) => false,
            Datum::Set(s) => s.is_empty(),
            Datum::Map(m) => m.is_empty(),
        }
    }
}

impl From<Atom> for Datum {
    fn from(a: Atom) -> Datum {
        Datum::Atom(a)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::ColumnType;

    fn ty(v: Value) -> ColumnType {
        ColumnType::from_json(&v).unwrap()
    }

    #[test]
    fn uuid_round_trip() {
        let s = "5ce9d0ad-c4e7-4ab2-93ea-0fa5fc9f3a1f";
        let u = Uuid::parse(s).unwrap();
        assert_eq!(u.to_string(), s);
        assert!(Uuid::parse("5ce9d0ad-c4e7-4ab2-93ea-0fa5fc9f3a1").is_none());
        assert!(Uuid::parse("5ce9d0adxc4e7-4ab2-93ea-0fa5fc9f3a1f").is_none());
        assert!(Uuid::parse("5ce9d0ad-c4e7-4ab2-93ea-0fa5fc9f3a1g").is_none());
        assert!(Uuid::parse("5ce9d0ad-c4e7-4ab2-93ea-0fa5fc9f3aé").is_none());
    }

    #[test]
    fn parse_and_canonicalise() {
        let set = ty(json!({"key":"string","min":0,"max":"unlimited"}));
        let d = Datum::from_json_typed(&json!("a"), &set).unwrap();
        assert_eq!(d, Datum::Set(vec!["a".into()]));
        assert_eq!(d.as_str(), Some("a"));
        let d = Datum::from_json_typed(&json!(["set", ["b", "a", "b"]]), &set).unwrap();
        assert_eq!(d, Datum::Set(vec!["a".into(), "b".into()]));
        assert_eq!(d.as_str(), None);
        assert!(Datum::from_json_typed(&json!(["set", [1]]), &set).is_err());

        let scalar = ty(json!("integer"));
        assert_eq!(
            Datum::from_json_typed(&json!(["set", [7]]), &scalar).unwrap(),
            Datum::Atom(Atom::Integer(7))
        );
        assert!(Datum::from_json_typed(&json!(["set", []]), &scalar).is_err());
        let real = ty(json!("real"));
        assert_eq!(
            Datum::from_json_typed(&json!(3), &real).unwrap().as_real(),
            Some(3.0)
        );

        let map = ty(json!({"key":"string","value":"string","min":0,"max":"unlimited"}));
        let d = Datum::from_json_typed(&json!(["map", [["z", "1"], ["a", "2"]]]), &map).unwrap();
        assert_eq!(d.map_get("a").and_then(Atom::as_str), Some("2"));
        assert_eq!(d.as_map().unwrap()[0].0, Atom::from("a"));
        assert_eq!(
            Datum::from_json_typed(&json!(["set", []]), &map).unwrap(),
            Datum::Map(vec![])
        );
        assert!(Datum::from_json_typed(&json!("x"), &map).is_err());

        let u = ty(json!({"key":{"type":"uuid","refTable":"Port"},"min":0,"max":"unlimited"}));
        let d =
            Datum::from_json_typed(&json!(["uuid", "5ce9d0ad-c4e7-4ab2-93ea-0fa5fc9f3a1f"]), &u)
                .unwrap();
        assert_eq!(d.uuids().len(), 1);
        assert_eq!(
            d.to_json(),
            json!(["set", [["uuid", "5ce9d0ad-c4e7-4ab2-93ea-0fa5fc9f3a1f"]]])
        );
        assert!(Datum::from_json(&json!({"x":1})).is_err());
        assert!(Datum::from_json(&json!(["map", [1]])).is_err());
        assert!(Datum::from_json(&json!(["uuid", "nope"])).is_err());
    }

    #[test]
    fn diff_on_sets_toggles() {
        let set = ty(json!({"key":"string","min":0,"max":"unlimited"}));
        let cur = Datum::from_json_typed(&json!(["set", ["a", "b", "c"]]), &set).unwrap();
        let diff = Datum::from_json(&json!(["set", ["b", "d"]])).unwrap();
        let new = cur.apply_diff(diff, &set).unwrap();
        assert_eq!(new, Datum::Set(vec!["a".into(), "c".into(), "d".into()]));
        // A bare atom is a one-element difference.
        let new = new
            .apply_diff(Datum::from_json(&json!("a")).unwrap(), &set)
            .unwrap();
        assert_eq!(new, Datum::Set(vec!["c".into(), "d".into()]));
    }

    #[test]
    fn diff_on_maps_add_remove_replace() {
        let map = ty(json!({"key":"string","value":"string","min":0,"max":"unlimited"}));
        let cur =
            Datum::from_json_typed(&json!(["map", [["a", "1"], ["b", "2"], ["c", "3"]]]), &map)
                .unwrap();
        // a: same value -> removed; b: different -> replaced; d: new -> added.
        let diff =
            Datum::from_json(&json!(["map", [["a", "1"], ["b", "20"], ["d", "4"]]])).unwrap();
        let new = cur.apply_diff(diff, &map).unwrap();
        assert_eq!(
            new.to_json(),
            json!(["map", [["b", "20"], ["c", "3"], ["d", "4"]]])
        );
    }

    #[test]
    fn diff_on_non_composite_replaces() {
        // Optional scalar (min 0, max 1): the difference is the new value (OVS behaviour).
        let opt = ty(json!({"key":"integer","min":0,"max":1}));
        let cur = Datum::from_json_typed(&json!(["set", [1]]), &opt).unwrap();
        let new = cur
            .apply_diff(Datum::from_json(&json!(7)).unwrap(), &opt)
            .unwrap();
        assert_eq!(new.as_int(), Some(7));
        let new = new
            .apply_diff(Datum::from_json(&json!(["set", []])).unwrap(), &opt)
            .unwrap();
        assert!(new.is_empty());
        let scalar = ty(json!("string"));
        let cur = Datum::Atom("br0".into());
        let new = cur
            .apply_diff(Datum::from_json(&json!("br1")).unwrap(), &scalar)
            .unwrap();
        assert_eq!(new.as_str(), Some("br1"));
    }

    #[test]
    fn defaults() {
        assert_eq!(
            Datum::default_of(&ty(json!("string"))),
            Datum::Atom("".into())
        );
        assert_eq!(
            Datum::default_of(&ty(json!({"key":"integer","min":0,"max":1}))),
            Datum::Set(vec![])
        );
        assert_eq!(
            Datum::default_of(&ty(
                json!({"key":"string","value":"string","min":0,"max":"unlimited"})
            )),
            Datum::Map(vec![])
        );
    }
}
