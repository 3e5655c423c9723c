//! A blocking client for the control socket (what `xvs-appctl` and the tests use).

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

use serde_json::Value;

use crate::{encode_request, Decoder, MAX_REPLY};

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot connect to {path}: {source}")]
    Connect {
        path: String,
        source: std::io::Error,
    },
    #[error("control connection: {0}")]
    Io(#[from] std::io::Error),
    #[error("control connection closed before a reply")]
    Closed,
    #[error("bad reply: {0}")]
    BadReply(String),
    /// The daemon answered with an error text.
    #[error("{0}")]
    Remote(String),
}

/// Sends one command and waits for its reply (with a timeout, so a wedged daemon cannot hang a
/// script forever). Returns the result text.
pub fn call(
    path: &Path,
    method: &str,
    params: &[String],
    timeout: Option<Duration>,
) -> Result<String, ClientError> {
    let mut s = UnixStream::connect(path).map_err(|source| ClientError::Connect {
        path: path.display().to_string(),
        source,
    })?;
    s.set_read_timeout(timeout)?;
    s.write_all(&encode_request(method, params, 0))?;
    let mut d = Decoder::with_limit(MAX_REPLY);
    let mut buf = [0u8; 65536];
    loop {
        if let Some(v) = d
            .next_value()
            .map_err(|e| ClientError::BadReply(e.to_string()))?
        {
            return interpret(v);
        }
        let n = s.read(&mut buf)?;
        if n == 0 {
            return Err(ClientError::Closed);
        }
        d.feed(&buf[..n]);
    }
}

fn interpret(v: Value) -> Result<String, ClientError> {
    if let Some(e) = v.get("error").filter(|e| !e.is_null()) {
        return Err(ClientError::Remote(match e {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        }));
    }
    match v.get("result") {
        Some(Value::String(s)) => Ok(s.clone()),
        Some(Value::Null) | None => Ok(String::new()),
        Some(other) => Ok(other.to_string()),
    }
}
