//! A blocking client for the control socket (what `xvs-appctl` and the tests use).

use std::io::{ErrorKind, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::{Duration, Instant};

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
    let deadline = timeout.map(|t| Instant::now() + t);
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
        let n = match s.read(&mut buf) {
            Ok(n) => n,
            // EINTR: on Linux a read with SO_RCVTIMEO fails so after the process was stopped
            // and continued (signal(7)) even without a handler; retry within the deadline
            Err(e) if e.kind() == ErrorKind::Interrupted => {
                if let Some(d) = deadline {
                    let left = d.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        return Err(ClientError::Io(ErrorKind::TimedOut.into()));
                    }
                    s.set_read_timeout(Some(left))?;
                }
                continue;
            }
            Err(e) => return Err(e.into()),
        };
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::net::UnixListener;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    static SIGNALS: AtomicUsize = AtomicUsize::new(0);

    extern "C" fn count(_: libc::c_int) {
        SIGNALS.fetch_add(1, Ordering::SeqCst);
    }

    /// A signal caught while the client waits for the reply (a handler installed without
    /// SA_RESTART, so the blocked read fails with EINTR) must not turn into an error: the
    /// client reads again and gets the reply.
    #[test]
    fn a_signal_during_the_wait_is_not_an_error() {
        let dir = std::env::temp_dir().join(format!("xvs-ctl-eintr-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("ctl");
        let listener = UnixListener::bind(&path).unwrap();
        // SAFETY: installs a handler that only touches an atomic; sa_flags has no SA_RESTART
        // so the client's blocked read is interrupted.
        unsafe {
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = count as *const () as usize;
            libc::sigemptyset(&mut sa.sa_mask);
            sa.sa_flags = 0;
            assert_eq!(libc::sigaction(libc::SIGUSR2, &sa, std::ptr::null_mut()), 0);
        }
        let done = Arc::new(AtomicUsize::new(0));
        let (tx, rx) = std::sync::mpsc::channel();
        let d = done.clone();
        let client = std::thread::spawn(move || {
            // SAFETY: pthread_self has no preconditions.
            tx.send(unsafe { libc::pthread_self() } as usize).unwrap();
            let r = call(&path, "version", &[], Some(Duration::from_secs(30)));
            d.store(1, Ordering::SeqCst);
            r
        });
        let thread = rx.recv().unwrap() as libc::pthread_t;
        let (mut conn, _) = listener.accept().unwrap();
        let mut req = [0u8; 256];
        let _ = conn.read(&mut req).unwrap();
        // interrupt the waiting client several times before answering
        let start = SIGNALS.load(Ordering::SeqCst);
        while SIGNALS.load(Ordering::SeqCst) < start + 3 && done.load(Ordering::SeqCst) == 0 {
            // SAFETY: the client thread is alive until `done` is set (it is joined below).
            unsafe { libc::pthread_kill(thread, libc::SIGUSR2) };
            std::thread::sleep(Duration::from_millis(10));
        }
        conn.write_all(&crate::encode_reply(&Value::from(0), &Ok("v1".into())))
            .unwrap();
        let r = client.join().unwrap();
        let _ = std::fs::remove_dir_all(&dir);
        assert_eq!(r.unwrap().trim_end(), "v1");
    }
}
