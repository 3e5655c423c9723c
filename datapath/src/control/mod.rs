//! The control socket: ovs-appctl's JSON-RPC on a unix socket, served from the control thread's
//! mio loop. Connections are non-blocking; a slow or broken client can't stall the daemon.

pub mod commands;
pub mod migration;

use std::io::{Read, Write};
use std::os::unix::net::UnixStream as StdUnixStream;
use std::path::{Path, PathBuf};

use control::{encode_reply, Decoder, Request};
use mio::net::{UnixListener, UnixStream};
use mio::{Interest, Registry, Token};

/// One client connection.
pub struct Conn {
    pub stream: UnixStream,
    decoder: Decoder,
    out: Vec<u8>,
    pub closed: bool,
}

impl Conn {
    pub fn new(stream: UnixStream) -> Self {
        Conn {
            stream,
            decoder: Decoder::new(),
            out: Vec::new(),
            closed: false,
        }
    }

    /// Reads what is available and returns complete requests. Protocol errors close the
    /// connection (after logging), as OVS's jsonrpc does.
    pub fn read_requests(&mut self) -> Vec<Request> {
        let mut buf = [0u8; 16384];
        loop {
            match self.stream.read(&mut buf) {
                Ok(0) => {
                    self.closed = true;
                    break;
                }
                Ok(n) => self.decoder.feed(&buf[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(_) => {
                    self.closed = true;
                    break;
                }
            }
        }
        let mut reqs = Vec::new();
        loop {
            match self.decoder.next_request() {
                Ok(Some(r)) => reqs.push(r),
                Ok(None) => break,
                Err(e) => {
                    tracing::warn!(error = %e, "closing control connection");
                    self.closed = true;
                    break;
                }
            }
        }
        reqs
    }

    pub fn queue_reply(&mut self, req: &Request, reply: &Result<String, String>) {
        self.out.extend_from_slice(&encode_reply(&req.id, reply));
    }

    /// Writes queued output; returns whether some remains (wait for WRITABLE).
    pub fn flush(&mut self) -> bool {
        while !self.out.is_empty() {
            match self.stream.write(&self.out) {
                Ok(0) => {
                    self.closed = true;
                    return false;
                }
                Ok(n) => {
                    self.out.drain(..n);
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return true,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(_) => {
                    self.closed = true;
                    return false;
                }
            }
        }
        false
    }

    pub fn reregister(&mut self, reg: &Registry, tok: Token, want_write: bool) {
        let i = if want_write {
            Interest::READABLE | Interest::WRITABLE
        } else {
            Interest::READABLE
        };
        let _ = reg.reregister(&mut self.stream, tok, i);
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    #[error("control socket {path}: another xvswitchd is already listening there")]
    InUse { path: PathBuf },
    #[error("control socket {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// Fails if a live daemon answers on `path` (checked at start, before touching any port).
pub fn check_free(path: &Path) -> Result<(), ControlError> {
    if path.exists() && StdUnixStream::connect(path).is_ok() {
        return Err(ControlError::InUse {
            path: path.to_path_buf(),
        });
    }
    Ok(())
}

/// Binds the control socket, replacing a stale file a dead daemon left (but never a live one).
/// The daemon binds it last, when it forwards, so that its existence means "ready".
pub fn bind(path: &Path) -> Result<UnixListener, ControlError> {
    check_free(path)?;
    if path.exists() {
        let _ = std::fs::remove_file(path);
    }
    UnixListener::bind(path).map_err(|source| ControlError::Io {
        path: path.to_path_buf(),
        source,
    })
}
