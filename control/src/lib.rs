//! The control socket protocol, as ovs-appctl speaks it: JSON-RPC 1.0 objects written back to back
//! on a unix stream socket (no framing beyond JSON itself). A request is
//! `{"method": CMD, "params": [ARG, ...], "id": N}`; the reply is `{"result": TEXT, "error": null,
//! "id": N}` or `{"result": null, "error": TEXT, "id": N}`. ovs-appctl prints the result to stdout
//! or the error to stderr (exit status 2). See OVS's lib/unixctl.c and lib/jsonrpc.c.
//!
//! This crate knows nothing of the daemon: it decodes and encodes messages and keeps a registry of
//! commands with their argument counts, so the daemon's control loop stays small.

use std::collections::BTreeMap;

use serde_json::Value;

pub mod client;

/// A decoded request.
#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    pub method: String,
    pub params: Vec<String>,
    pub id: Value,
}

/// Protocol errors on one connection.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ProtocolError {
    #[error("invalid JSON on control connection: {0}")]
    Json(String),
    #[error("JSON-RPC message is not a request object: {0}")]
    NotRequest(String),
    #[error("control message larger than {0} bytes")]
    TooLarge(usize),
}

/// Largest request the daemon buffers before giving up on a peer (requests are a command and
/// a few arguments).
pub const MAX_MESSAGE: usize = 1 << 20;

/// Largest reply a client accepts: replies are whole dumps (`dpctl/dump-conntrack` of 100,000
/// connections is ~20 MB, `dpctl/dump-flows` of as many megaflows more), so the limit only
/// guards against a runaway peer.
pub const MAX_REPLY: usize = 1 << 30;

/// Accumulates bytes from a stream and yields complete JSON values.
pub struct Decoder {
    buf: Vec<u8>,
    limit: usize,
    /// Whether a `}` or `]` arrived since the last parse attempt that found the buffer
    /// incomplete. A JSON-RPC message ends with one, so without it there is nothing new to
    /// parse: a large reply arriving in 64 KiB reads is parsed once, not once per read (which
    /// made receiving N bytes cost O(N²)).
    maybe_complete: bool,
}

impl Default for Decoder {
    fn default() -> Self {
        Decoder::with_limit(MAX_MESSAGE)
    }
}

impl Decoder {
    /// A decoder for requests (limit [`MAX_MESSAGE`]).
    pub fn new() -> Self {
        Self::default()
    }

    /// A decoder that gives up once `limit` bytes are buffered without a complete message.
    pub fn with_limit(limit: usize) -> Self {
        Decoder {
            buf: Vec::new(),
            limit,
            maybe_complete: false,
        }
    }

    /// Appends received bytes.
    pub fn feed(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
        if bytes.iter().any(|&b| b == b'}' || b == b']') {
            self.maybe_complete = true;
        }
    }

    /// The next complete request, `Ok(None)` when more bytes are needed.
    pub fn next_request(&mut self) -> Result<Option<Request>, ProtocolError> {
        match self.next_value()? {
            None => Ok(None),
            Some(v) => parse_request(v).map(Some),
        }
    }

    /// The next complete JSON value (used by the client for replies).
    pub fn next_value(&mut self) -> Result<Option<Value>, ProtocolError> {
        let start = self
            .buf
            .iter()
            .position(|b| !b.is_ascii_whitespace())
            .unwrap_or(self.buf.len());
        if start == self.buf.len() {
            self.buf.clear();
            return Ok(None);
        }
        if !self.maybe_complete {
            return self.incomplete();
        }
        let mut it = serde_json::Deserializer::from_slice(&self.buf[start..]).into_iter::<Value>();
        match it.next() {
            Some(Ok(v)) => {
                let used = start + it.byte_offset();
                self.buf.drain(..used);
                Ok(Some(v))
            }
            Some(Err(e)) if e.is_eof() => {
                self.maybe_complete = false;
                self.incomplete()
            }
            Some(Err(e)) => Err(ProtocolError::Json(e.to_string())),
            None => Ok(None),
        }
    }

    fn incomplete(&self) -> Result<Option<Value>, ProtocolError> {
        if self.buf.len() > self.limit {
            Err(ProtocolError::TooLarge(self.limit))
        } else {
            Ok(None)
        }
    }
}

fn parse_request(v: Value) -> Result<Request, ProtocolError> {
    let obj = v
        .as_object()
        .ok_or_else(|| ProtocolError::NotRequest(v.to_string()))?;
    let method = obj
        .get("method")
        .and_then(Value::as_str)
        .ok_or_else(|| ProtocolError::NotRequest(v.to_string()))?
        .to_string();
    let params = match obj.get("params") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(a)) => a
            .iter()
            .map(|p| match p {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            })
            .collect(),
        Some(other) => return Err(ProtocolError::NotRequest(other.to_string())),
    };
    Ok(Request {
        method,
        params,
        id: obj.get("id").cloned().unwrap_or(Value::Null),
    })
}

/// Encodes a reply: `Ok(text)` as a result, `Err(text)` as an error.
/// A non-empty body gets a trailing newline when it lacks one, as ovs-vswitchd's
/// (unixctl_command_reply__) so ovs-appctl's output ends where it should.
pub fn encode_reply(id: &Value, reply: &Result<String, String>) -> Vec<u8> {
    let nl = |s: &str| {
        if s.is_empty() || s.ends_with('\n') {
            s.to_string()
        } else {
            format!("{s}\n")
        }
    };
    let v = match reply {
        Ok(r) => serde_json::json!({"id": id, "result": nl(r), "error": null}),
        Err(e) => serde_json::json!({"id": id, "result": null, "error": nl(e)}),
    };
    serde_json::to_vec(&v).unwrap_or_default()
}

/// Encodes a request (for the client).
pub fn encode_request(method: &str, params: &[String], id: u64) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({"id": id, "method": method, "params": params}))
        .unwrap_or_default()
}

/// One registered command: its argument bounds and usage text.
#[derive(Clone, Debug)]
pub struct CommandSpec {
    pub usage: String,
    pub min_args: usize,
    pub max_args: usize,
}

/// Command names with argument bounds; validates requests the way unixctl does, with the same
/// error texts, so scripts see what they see with OVS.
#[derive(Default, Clone, Debug)]
pub struct Registry {
    cmds: BTreeMap<String, CommandSpec>,
}

impl Registry {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn register(&mut self, name: &str, usage: &str, min_args: usize, max_args: usize) {
        self.cmds.insert(
            name.to_string(),
            CommandSpec {
                usage: usage.to_string(),
                min_args,
                max_args,
            },
        );
    }

    pub fn contains(&self, name: &str) -> bool {
        self.cmds.contains_key(name)
    }

    /// Checks the command exists and takes this many arguments.
    pub fn validate(&self, req: &Request) -> Result<(), String> {
        let Some(spec) = self.cmds.get(&req.method) else {
            return Err(format!(
                "\"{}\" is not a valid command (use \"list-commands\" to see a list of valid commands)",
                req.method
            ));
        };
        let n = req.params.len();
        if n < spec.min_args {
            return Err(format!(
                "\"{}\" command requires at least {} arguments",
                req.method, spec.min_args
            ));
        }
        if n > spec.max_args {
            return Err(format!(
                "\"{}\" command takes at most {} arguments",
                req.method, spec.max_args
            ));
        }
        Ok(())
    }

    /// The `list-commands` text, formatted as OVS formats it.
    pub fn list_commands(&self) -> String {
        let mut s = String::from("The available commands are:\n");
        for (name, spec) in &self.cmds {
            if spec.usage.is_empty() {
                s.push_str(&format!("  {name}\n"));
            } else {
                s.push_str(&format!("  {:<23} {}\n", name, spec.usage));
            }
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_back_to_back_and_split_messages() {
        let mut d = Decoder::new();
        let a = encode_request("version", &[], 0);
        let b = encode_request("fdb/show", &["br0".to_string()], 1);
        let mut all = a.clone();
        all.extend_from_slice(&b);
        // feed in two arbitrary pieces
        d.feed(&all[..5]);
        assert_eq!(d.next_request().unwrap(), None);
        d.feed(&all[5..]);
        let r1 = d.next_request().unwrap().unwrap();
        assert_eq!(r1.method, "version");
        assert!(r1.params.is_empty());
        let r2 = d.next_request().unwrap().unwrap();
        assert_eq!(r2.method, "fdb/show");
        assert_eq!(r2.params, vec!["br0"]);
        assert_eq!(r2.id, serde_json::json!(1));
        assert_eq!(d.next_request().unwrap(), None);
    }

    #[test]
    fn the_exact_bytes_ovs_appctl_sends_are_understood() {
        // captured from ovs-appctl 3.1: `ovs-appctl -t SOCK fdb/show br0`
        let raw = br#"{"id":0,"method":"fdb/show","params":["br0"]}"#;
        let mut d = Decoder::new();
        d.feed(raw);
        let r = d.next_request().unwrap().unwrap();
        assert_eq!(r.method, "fdb/show");
        assert_eq!(r.params, vec!["br0"]);
    }

    #[test]
    fn a_reply_larger_than_a_request_may_be_is_decoded_by_a_client_decoder() {
        let text = "x".repeat(3 * MAX_MESSAGE);
        let reply = encode_reply(&serde_json::json!(0), &Ok(text.clone()));
        let mut small = Decoder::new();
        let mut big = Decoder::with_limit(MAX_REPLY);
        let mut small_err = None;
        for chunk in reply.chunks(65536) {
            small.feed(chunk);
            if let Err(e) = small.next_value() {
                small_err.get_or_insert(e);
            }
            big.feed(chunk);
            if let Some(v) = big.next_value().unwrap() {
                assert_eq!(v["result"], serde_json::json!(format!("{text}\n")));
                assert!(small_err.is_some(), "the request limit still applies");
                return;
            }
        }
        panic!("reply never decoded");
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        let mut d = Decoder::new();
        d.feed(b"{\"id\":1,]");
        assert!(matches!(d.next_request(), Err(ProtocolError::Json(_))));
        let mut d = Decoder::new();
        d.feed(b"[1,2,3]");
        assert!(matches!(
            d.next_request(),
            Err(ProtocolError::NotRequest(_))
        ));
        let mut d = Decoder::new();
        d.feed(br#"{"id":1,"method":"x","params":"notarray"}"#);
        assert!(d.next_request().is_err());
    }

    #[test]
    fn registry_validates_like_unixctl() {
        let mut r = Registry::new();
        r.register("fdb/show", "bridge", 1, 1);
        r.register("version", "", 0, 0);
        let req = |m: &str, p: &[&str]| Request {
            method: m.into(),
            params: p.iter().map(|s| s.to_string()).collect(),
            id: Value::Null,
        };
        assert!(r.validate(&req("version", &[])).is_ok());
        assert!(r
            .validate(&req("nope", &[]))
            .unwrap_err()
            .contains("not a valid command"));
        assert!(r
            .validate(&req("fdb/show", &[]))
            .unwrap_err()
            .contains("requires at least 1 arguments"));
        assert!(r
            .validate(&req("fdb/show", &["a", "b"]))
            .unwrap_err()
            .contains("takes at most 1 arguments"));
        let l = r.list_commands();
        assert!(l.starts_with("The available commands are:\n"));
        assert!(l.contains("  fdb/show"));
    }

    #[test]
    fn replies_round_trip() {
        let ok = encode_reply(&serde_json::json!(3), &Ok("hello\n".into()));
        let v: Value = serde_json::from_slice(&ok).unwrap();
        assert_eq!(v["result"], "hello\n");
        assert!(v["error"].is_null());
        let err = encode_reply(&serde_json::json!(3), &Err("bad".into()));
        let v: Value = serde_json::from_slice(&err).unwrap();
        // a newline is added, as by ovs-vswitchd
        assert_eq!(v["error"], "bad\n");
        assert!(v["result"].is_null());
    }
}
