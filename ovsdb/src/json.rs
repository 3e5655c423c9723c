//! JSON-RPC 1.0 over a byte stream: framing and message classification.
//!
//! OVSDB (RFC 7047 §3) sends JSON objects back to back with no delimiter.  [`Framer`] accepts
//! arbitrary chunks of bytes and yields complete [`Value`]s.  It scans incrementally with a
//! small brace/string-aware state machine, so each byte is looked at once however the stream
//! is split, then hands each complete object to `serde_json`.

use crate::error::Error;
use serde_json::{Map, Value};

/// Default limit on the size of one message (ovsdb-server snapshots of big OVN databases can
/// be large; 64 MiB is generous but bounded).
pub const DEFAULT_MAX_MESSAGE: usize = 64 << 20;

/// Incremental splitter of a byte stream into JSON values.
#[derive(Debug)]
pub struct Framer {
    buf: Vec<u8>,
    /// Start in `buf` of the message being scanned (bytes before it are consumed; they are
    /// dropped in one go when the buffer runs dry, not after every message).
    start: usize,
    /// Bytes of `buf` already scanned.
    scanned: usize,
    /// Nesting depth of `{`/`[` in the message being scanned (0: between messages).
    depth: usize,
    in_string: bool,
    escape: bool,
    max: usize,
    /// Stream offset of `buf[0]`, for error messages.
    base: u64,
    poisoned: Option<Error>,
}

impl Default for Framer {
    fn default() -> Self {
        Self::new(DEFAULT_MAX_MESSAGE)
    }
}

impl Framer {
    /// A framer refusing messages longer than `max_message` bytes.
    pub fn new(max_message: usize) -> Self {
        Framer {
            buf: Vec::new(),
            start: 0,
            scanned: 0,
            depth: 0,
            in_string: false,
            escape: false,
            max: max_message.max(2),
            base: 0,
            poisoned: None,
        }
    }

    /// Forget everything (new connection).
    pub fn reset(&mut self) {
        *self = Self::new(self.max);
    }

    /// Bytes held for an incomplete message.
    pub fn buffered(&self) -> usize {
        self.buf.len() - self.start
    }

    /// Feeds `bytes` and returns the complete values they finish, in order.
    ///
    /// On error the values completed before the bad byte are lost to this call and the framer
    /// stays failed (every later call returns the same error) until [`Framer::reset`]: the
    /// stream cannot be resynchronised.  Use [`Framer::push`] + [`Framer::next_value`] to
    /// keep the values that precede an error.
    pub fn feed(&mut self, bytes: &[u8]) -> Result<Vec<Value>, Error> {
        self.push(bytes);
        let mut out = Vec::new();
        while let Some(v) = self.next_value()? {
            out.push(v);
        }
        Ok(out)
    }

    /// Appends bytes without scanning them.
    pub fn push(&mut self, bytes: &[u8]) {
        if self.poisoned.is_none() {
            self.buf.extend_from_slice(bytes);
        }
    }

    /// Extracts the next complete value, if any.
    pub fn next_value(&mut self) -> Result<Option<Value>, Error> {
        if let Some(e) = &self.poisoned {
            return Err(e.clone());
        }
        match self.scan() {
            Ok(Some(end)) => {
                let offset = self.base + self.start as u64;
                let parsed = serde_json::from_slice::<Value>(&self.buf[self.start..end]);
                self.start = end;
                self.scanned = end;
                match parsed {
                    Ok(v) => Ok(Some(v)),
                    Err(e) => self.fail(Error::BadJson {
                        offset,
                        msg: e.to_string(),
                    }),
                }
            }
            Ok(None) => {
                // Compact: drop consumed bytes.
                self.buf.drain(..self.start);
                self.base += self.start as u64;
                self.scanned -= self.start;
                self.start = 0;
                Ok(None)
            }
            Err(e) => self.fail(e),
        }
    }

    fn fail<T>(&mut self, e: Error) -> Result<T, Error> {
        self.buf = Vec::new();
        self.poisoned = Some(e.clone());
        Err(e)
    }

    /// Scans new bytes; returns the end (exclusive) of a complete top-level value.
    fn scan(&mut self) -> Result<Option<usize>, Error> {
        let mut i = self.scanned;
        while i < self.buf.len() {
            let b = self.buf[i];
            if self.depth == 0 {
                match b {
                    b' ' | b'\t' | b'\r' | b'\n' => self.start = i + 1,
                    b'{' => self.depth = 1,
                    _ => {
                        return Err(Error::BadFraming {
                            offset: self.base + i as u64,
                            byte: b,
                        })
                    }
                }
            } else if self.in_string {
                if self.escape {
                    self.escape = false;
                } else if b == b'\\' {
                    self.escape = true;
                } else if b == b'"' {
                    self.in_string = false;
                }
            } else {
                match b {
                    b'"' => self.in_string = true,
                    b'{' | b'[' => self.depth += 1,
                    b'}' | b']' => {
                        self.depth -= 1;
                        if self.depth == 0 {
                            return Ok(Some(i + 1));
                        }
                    }
                    _ => {}
                }
            }
            i += 1;
            if i - self.start > self.max {
                return Err(Error::MessageTooLarge { limit: self.max });
            }
        }
        self.scanned = i;
        Ok(None)
    }
}

/// A JSON-RPC 1.0 message, classified.
#[derive(Debug, Clone, PartialEq)]
pub enum Message {
    /// A request (`id` not null): must be answered.
    Request {
        method: String,
        params: Vec<Value>,
        id: Value,
    },
    /// A notification (`id` null).
    Notification { method: String, params: Vec<Value> },
    /// A reply: `Ok(result)` or `Err(error)`.
    Reply {
        id: Value,
        result: Result<Value, Value>,
    },
}

impl Message {
    /// Classifies a JSON value as a JSON-RPC message.
    pub fn from_value(v: Value) -> Result<Message, Error> {
        let Value::Object(mut o) = v else {
            return Err(Error::BadMessage("message is not a JSON object".into()));
        };
        let id = o.remove("id").unwrap_or(Value::Null);
        if let Some(method) = o.remove("method") {
            let Value::String(method) = method else {
                return Err(Error::BadMessage("\"method\" is not a string".into()));
            };
            let params = match o.remove("params") {
                Some(Value::Array(a)) => a,
                Some(Value::Null) | None => Vec::new(),
                Some(_) => {
                    return Err(Error::BadMessage(format!(
                        "\"params\" of {method} is not an array"
                    )))
                }
            };
            return Ok(if id.is_null() {
                Message::Notification { method, params }
            } else {
                Message::Request { method, params, id }
            });
        }
        let error = o.remove("error").unwrap_or(Value::Null);
        let result = o.remove("result");
        if !error.is_null() {
            return Ok(Message::Reply {
                id,
                result: Err(error),
            });
        }
        match result {
            Some(r) => Ok(Message::Reply { id, result: Ok(r) }),
            None => Err(Error::BadMessage(
                "neither \"method\" nor \"result\"/\"error\"".into(),
            )),
        }
    }

    /// Serialises the message (appending to `out`).
    pub fn write(&self, out: &mut Vec<u8>) {
        let mut o = Map::new();
        match self {
            Message::Request { method, params, id } => {
                o.insert("method".into(), Value::String(method.clone()));
                o.insert("params".into(), Value::Array(params.clone()));
                o.insert("id".into(), id.clone());
            }
            Message::Notification { method, params } => {
                o.insert("method".into(), Value::String(method.clone()));
                o.insert("params".into(), Value::Array(params.clone()));
                o.insert("id".into(), Value::Null);
            }
            Message::Reply { id, result } => {
                let (r, e) = match result {
                    Ok(r) => (r.clone(), Value::Null),
                    Err(e) => (Value::Null, e.clone()),
                };
                o.insert("result".into(), r);
                o.insert("error".into(), e);
                o.insert("id".into(), id.clone());
            }
        }
        // Serialising a Value into a Vec cannot fail.
        let _ = serde_json::to_writer(&mut *out, &Value::Object(o));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const TWO: &[u8] = br#"{"id":1,"result":{"a":"}{\"]["},"error":null} {"method":"echo","params":["x{"],"id":"echo"}"#;

    #[test]
    fn split_at_every_byte_boundary() {
        for cut in 0..=TWO.len() {
            let mut f = Framer::default();
            let mut got = f.feed(&TWO[..cut]).unwrap();
            got.extend(f.feed(&TWO[cut..]).unwrap());
            assert_eq!(got.len(), 2, "cut at {cut}");
            assert_eq!(got[0]["result"]["a"], json!("}{\"]["));
            assert_eq!(got[1]["params"][0], json!("x{"));
            assert_eq!(f.buffered(), 0);
        }
    }

    #[test]
    fn byte_by_byte() {
        let mut f = Framer::default();
        let mut got = Vec::new();
        for b in TWO {
            got.extend(f.feed(std::slice::from_ref(b)).unwrap());
        }
        assert_eq!(got.len(), 2);
    }

    #[test]
    fn two_messages_in_one_chunk_no_space() {
        let mut f = Framer::default();
        let got = f.feed(br#"{"a":1}{"b":[2,{"c":"\\"}]}{"#).unwrap();
        assert_eq!(got, vec![json!({"a":1}), json!({"b":[2,{"c":"\\"}]})]);
        assert_eq!(f.buffered(), 1);
    }

    #[test]
    fn many_messages_in_one_big_chunk() {
        let mut chunk = Vec::new();
        for i in 0..20000 {
            chunk.extend_from_slice(format!("{{\"id\":{i},\"result\":[\"}}\"]}}\n").as_bytes());
        }
        let mut f = Framer::default();
        let got = f.feed(&chunk).unwrap();
        assert_eq!(got.len(), 20000);
        assert_eq!(got[19999]["id"], json!(19999));
        assert_eq!(f.buffered(), 0);
    }

    #[test]
    fn size_limit() {
        let mut f = Framer::new(16);
        assert!(f.feed(br#"{"a":"0123"#).unwrap().is_empty());
        let e = f.feed(br#"456789abcdef"}"#).unwrap_err();
        assert_eq!(e, Error::MessageTooLarge { limit: 16 });
        assert!(e.to_string().contains("16-byte limit"));
        // Stays failed.
        assert!(f.feed(b"{}").is_err());
        f.reset();
        assert_eq!(f.feed(b"{}").unwrap(), vec![json!({})]);
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        let mut f = Framer::default();
        assert!(matches!(
            f.feed(b"  x"),
            Err(Error::BadFraming {
                offset: 2,
                byte: b'x'
            })
        ));
        let mut f = Framer::default();
        assert_eq!(f.feed(b"{\"a\":1}\n ").unwrap().len(), 1);
        assert!(matches!(
            f.feed(b"{}x"),
            Err(Error::BadFraming {
                offset: 11,
                byte: b'x'
            })
        ));
        let mut f = Framer::default();
        assert!(matches!(f.feed(b"{\"a\":tru}"), Err(Error::BadJson { .. })));
        let mut f = Framer::default();
        assert!(matches!(f.feed(b"{]"), Err(Error::BadJson { .. })));
        let mut f = Framer::default();
        assert!(matches!(
            f.feed(b"{\"a\":1}}"),
            Err(Error::BadFraming { .. })
        ));
        // Arbitrary bytes never panic.
        let mut f = Framer::new(64);
        let mut x: u32 = 12345;
        for _ in 0..20000 {
            x = x.wrapping_mul(1103515245).wrapping_add(12345);
            let b = [b"{}[]\"\\a:,1 "[(x >> 16) as usize % 11]];
            if f.feed(&b).is_err() {
                f.reset();
            }
        }
    }

    #[test]
    fn classify() {
        let m = Message::from_value(json!({"method":"echo","params":[],"id":"echo"})).unwrap();
        assert!(matches!(m, Message::Request { ref method, .. } if method == "echo"));
        let m = Message::from_value(json!({"method":"update2","params":[1,{}],"id":null})).unwrap();
        assert!(matches!(m, Message::Notification { .. }));
        let m =
            Message::from_value(json!({"result":null,"error":"unknown method","id":3})).unwrap();
        assert_eq!(
            m,
            Message::Reply {
                id: json!(3),
                result: Err(json!("unknown method"))
            }
        );
        assert!(Message::from_value(json!([1])).is_err());
        assert!(Message::from_value(json!({"id":1})).is_err());
        assert!(Message::from_value(json!({"method":1})).is_err());
        let mut out = Vec::new();
        Message::Reply {
            id: json!("echo"),
            result: Ok(json!([])),
        }
        .write(&mut out);
        let v: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v, json!({"result":[],"error":null,"id":"echo"}));
    }
}
