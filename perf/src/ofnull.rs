//! A do-nothing OpenFlow server: the control-plane counterpart of `minfwd`. It negotiates the
//! version, answers echo, barrier and bundle-control requests at once, replies to every
//! multipart request with an empty last part, and throws flow mods away. What `ovs-ofctl`
//! takes against it is the floor for any switch on this machine with this client: the
//! client's own CPU plus its wake-ups (it waits for a barrier reply after every flow mod).
//!
//! Like xvswitchd's control loop it polls without blocking for a while after input (the
//! client answers within microseconds), so the floor has no server-side wake-up in it.
//! Message types from the OpenFlow 1.3-1.5 specifications (OFPT_BARRIER_REQUEST 20,
//! OFPT_MULTIPART_REQUEST 18, OFPT_BUNDLE_CONTROL 33) and 1.0 (barrier 18, stats 16).

use std::io::{ErrorKind, Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How long a connection polls without blocking after its last input.
const SPIN: Duration = Duration::from_millis(2);

pub struct NullServer {
    pub path: PathBuf,
    quit: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl NullServer {
    pub fn start(path: &Path) -> std::io::Result<NullServer> {
        let _ = std::fs::remove_file(path);
        let l = UnixListener::bind(path)?;
        let quit = Arc::new(AtomicBool::new(false));
        let q = quit.clone();
        let thread = std::thread::Builder::new()
            .name("ofnull".into())
            .spawn(move || {
                for s in l.incoming() {
                    if q.load(Ordering::SeqCst) {
                        break;
                    }
                    if let Ok(s) = s {
                        let q = q.clone();
                        let _ = std::thread::Builder::new()
                            .name("ofnull-conn".into())
                            .spawn(move || serve(s, &q));
                    }
                }
            })?;
        Ok(NullServer {
            path: path.to_path_buf(),
            quit,
            thread: Some(thread),
        })
    }
}

impl Drop for NullServer {
    fn drop(&mut self) {
        self.quit.store(true, Ordering::SeqCst);
        // wakes the accept loop so that it sees the flag
        let _ = UnixStream::connect(&self.path);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        let _ = std::fs::remove_file(&self.path);
    }
}

/// The reply to one message, if it needs one (appended to `out`).
fn reply(msg: &[u8], out: &mut Vec<u8>) {
    let (version, ty) = (msg[0], msg[1]);
    let xid = &msg[4..8];
    let mut put = |ty: u8, body: &[u8]| {
        let len = (8 + body.len()) as u16;
        out.extend_from_slice(&[version, ty]);
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(xid);
        out.extend_from_slice(body);
    };
    let of10 = version == 1;
    match ty {
        // HELLO: ours says the same version, which the peer accepts as the common one
        0 => put(0, &[]),
        // ECHO_REQUEST
        2 => put(3, &msg[8..]),
        // BARRIER_REQUEST
        18 if of10 => put(19, &[]),
        20 if !of10 => put(21, &[]),
        // MULTIPART/STATS_REQUEST: an empty last reply of the same type
        16 if of10 && msg.len() >= 10 => put(17, &[msg[8], msg[9], 0, 0]),
        // (table features: one table without properties; ovs-ofctl asks for the table
        // names and rejects a reply shorter than one ofp_table_features, 64 bytes)
        18 if !of10 && msg.len() >= 10 && msg[9] == 12 => {
            let mut b = vec![0u8; 8 + 64];
            b[1] = 12;
            b[8..10].copy_from_slice(&64u16.to_be_bytes());
            put(19, &b);
        }
        18 if !of10 && msg.len() >= 10 => put(19, &[msg[8], msg[9], 0, 0, 0, 0, 0, 0]),
        // BUNDLE_CONTROL: bundle id, type + 1 (open/close/commit/discard reply), flags
        33 if msg.len() >= 16 => {
            let t = u16::from_be_bytes([msg[12], msg[13]]) + 1;
            let mut b = msg[8..16].to_vec();
            b[4..6].copy_from_slice(&t.to_be_bytes());
            put(33, &b);
        }
        _ => {}
    }
}

fn serve(mut s: UnixStream, quit: &AtomicBool) {
    if s.set_nonblocking(true).is_err() {
        return;
    }
    let mut buf: Vec<u8> = Vec::with_capacity(1 << 16);
    let mut chunk = vec![0u8; 1 << 16];
    let mut out = Vec::with_capacity(1 << 12);
    let mut last = Instant::now();
    while !quit.load(Ordering::Relaxed) {
        match s.read(&mut chunk) {
            Ok(0) => return,
            Ok(n) => {
                last = Instant::now();
                buf.extend_from_slice(&chunk[..n]);
                let mut at = 0;
                while buf.len() - at >= 8 {
                    let len = u16::from_be_bytes([buf[at + 2], buf[at + 3]]) as usize;
                    if len < 8 {
                        return;
                    }
                    if buf.len() - at < len {
                        break;
                    }
                    reply(&buf[at..at + len], &mut out);
                    at += len;
                }
                buf.drain(..at);
                if !out.is_empty() {
                    let _ = s.set_nonblocking(false);
                    let r = s.write_all(&out);
                    let _ = s.set_nonblocking(true);
                    if r.is_err() {
                        return;
                    }
                    out.clear();
                }
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => {
                if last.elapsed() < SPIN {
                    std::hint::spin_loop();
                } else {
                    let mut p = libc::pollfd {
                        fd: s.as_raw_fd(),
                        events: libc::POLLIN,
                        revents: 0,
                    };
                    // SAFETY: one valid pollfd for the duration of the call.
                    unsafe { libc::poll(&mut p, 1, 100) };
                }
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(_) => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies() {
        let mut out = Vec::new();
        // OF1.5 barrier request, xid 7
        reply(&[6, 20, 0, 8, 0, 0, 0, 7], &mut out);
        assert_eq!(out, [6, 21, 0, 8, 0, 0, 0, 7]);
        out.clear();
        // flow mod: nothing
        reply(&[6, 14, 0, 8, 0, 0, 0, 7], &mut out);
        assert!(out.is_empty());
        // bundle commit (type 4) of bundle 9 -> commit reply (5)
        reply(
            &[6, 33, 0, 16, 0, 0, 0, 1, 0, 0, 0, 9, 0, 4, 0, 1],
            &mut out,
        );
        assert_eq!(out, [6, 33, 0, 16, 0, 0, 0, 1, 0, 0, 0, 9, 0, 5, 0, 1]);
        out.clear();
        // flow stats request -> empty reply of type 1
        reply(
            &[6, 18, 0, 16, 0, 0, 0, 2, 0, 1, 0, 0, 0, 0, 0, 0],
            &mut out,
        );
        assert_eq!(out, [6, 19, 0, 16, 0, 0, 0, 2, 0, 1, 0, 0, 0, 0, 0, 0]);
    }
}
