//! Traffic with exact bookkeeping: every datagram numbered, every arrival checked.

use std::net::UdpSocket;
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use crate::netns::Host;
use crate::pkt::{check_payload, pattern_payload};
use crate::raw::set_int_opt;
use crate::WAIT;

/// What a [`udp_stream`] saw at the receiver.
#[derive(Debug)]
pub struct UdpReport {
    pub sent: usize,
    /// Arrivals per sequence number.
    pub arrivals: Vec<u32>,
    /// Datagrams whose payload did not match its pattern or whose length was wrong.
    pub corrupt: Vec<String>,
}

impl UdpReport {
    /// Panics unless every datagram arrived exactly once, intact.
    pub fn assert_all_once(&self) {
        let missing: Vec<usize> = (0..self.sent).filter(|&i| self.arrivals[i] == 0).collect();
        let dup: Vec<usize> = (0..self.sent).filter(|&i| self.arrivals[i] > 1).collect();
        assert!(
            missing.is_empty() && dup.is_empty() && self.corrupt.is_empty(),
            "of {} datagrams: {} missing (first: {:?}), {} duplicated (first: {:?}), {} corrupt \
             (first: {:?})",
            self.sent,
            missing.len(),
            &missing[..missing.len().min(10)],
            dup.len(),
            &dup[..dup.len().min(10)],
            self.corrupt.len(),
            &self.corrupt[..self.corrupt.len().min(5)]
        );
    }
}

/// The IP packet size of datagram `i` of `n`: spread evenly over 60..=1500 bytes.
pub fn ip_size(i: usize, n: usize) -> usize {
    if n <= 1 {
        return 60;
    }
    60 + i * (1500 - 60) / (n - 1)
}

/// Sends `n` numbered UDP datagrams from `src` to `dst:port` through the kernel stack (so the
/// sender's offload settings apply), IP sizes spread over 60..=1500 bytes, each payload a
/// [`pattern_payload`] of its sequence number. At most `window` datagrams are in flight (sent but
/// not yet received), so neither the switch's rings nor the receiver's backlog can overflow: a
/// missing datagram is a loss, not congestion. Returns once everything arrived or nothing arrived
/// for [`WAIT`].
pub fn udp_stream(src: &Host, dst: &Host, port: u16, n: usize, window: usize) -> UdpReport {
    let dst_ip = dst.ip;
    let rx = dst
        .ns
        .in_ns(|| UdpSocket::bind((dst_ip, port)).expect("bind receiver"));
    let src_ip = src.ip;
    let tx = src
        .ns
        .in_ns(|| UdpSocket::bind((src_ip, 0)).expect("bind sender"));
    set_int_opt(
        rx.as_raw_fd(),
        libc::SOL_SOCKET,
        libc::SO_RCVBUFFORCE,
        32 << 20,
    );
    rx.set_read_timeout(Some(Duration::from_millis(50)))
        .expect("timeout");
    tx.connect((dst_ip, port)).expect("connect");
    stream_on(&tx, &rx, n, window)
}

fn stream_on(tx: &UdpSocket, rx: &UdpSocket, n: usize, window: usize) -> UdpReport {
    let mut rep = UdpReport {
        sent: n,
        arrivals: vec![0; n],
        corrupt: Vec::new(),
    };
    let mut next = 0usize;
    let mut received = 0usize;
    let mut last_progress = Instant::now();
    let mut buf = vec![0u8; 65536];
    let mut distinct = 0usize;
    while distinct < n {
        while next < n && next - received.min(next) < window {
            let len = ip_size(next, n) - 28;
            let p = pattern_payload(next as u32, len);
            tx.send(&p).expect("send datagram");
            next += 1;
        }
        match rx.recv(&mut buf) {
            Ok(len) => {
                received += 1;
                last_progress = Instant::now();
                let p = &buf[..len];
                match check_payload(p) {
                    Some(seq) if (seq as usize) < n && ip_size(seq as usize, n) - 28 == len => {
                        if rep.arrivals[seq as usize] == 0 {
                            distinct += 1;
                        }
                        rep.arrivals[seq as usize] += 1;
                    }
                    Some(seq) => rep.corrupt.push(format!("seq {seq} with {len} bytes")),
                    None => rep
                        .corrupt
                        .push(format!("{len} bytes starting {:02x?}", &p[..len.min(8)])),
                }
            }
            Err(e)
                if e.kind() == std::io::ErrorKind::WouldBlock
                    || e.kind() == std::io::ErrorKind::TimedOut =>
            {
                if last_progress.elapsed() > WAIT {
                    break;
                }
            }
            Err(e) => panic!("recv: {e}"),
        }
    }
    rep
}
