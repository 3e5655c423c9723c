//! TCP state tracking, after OVS's conntrack-tcp.c (itself after pf), with the sequence-window
//! checks left out on purpose: a live-migrated VM's connections reach the destination switch
//! mid-stream, and a tracker that insists on seeing the window from the start marks them
//! invalid. What is kept is the per-peer state machine that decides NEW/ESTABLISHED, closing,
//! re-opening after TIME_WAIT, and the timeouts.

use super::parse::tcpf::*;
use super::timeouts as tm;
use super::Update;

/// Per-peer states, numbered as OVS's CT_DPIF_TCPS_* (the order matters: comparisons).
pub mod state {
    pub const CLOSED: u8 = 0;
    pub const LISTEN: u8 = 1;
    pub const SYN_SENT: u8 = 2;
    pub const SYN_RECV: u8 = 3;
    pub const ESTABLISHED: u8 = 4;
    pub const CLOSE_WAIT: u8 = 5;
    pub const FIN_WAIT_1: u8 = 6;
    pub const CLOSING: u8 = 7;
    pub const LAST_ACK: u8 = 8;
    pub const FIN_WAIT_2: u8 = 9;
    pub const TIME_WAIT: u8 = 10;
}
use state::*;

/// State names as `dpctl/dump-conntrack` prints them.
pub const STATE_NAMES: [&str; 11] = [
    "CLOSED",
    "LISTEN",
    "SYN_SENT",
    "SYN_RECV",
    "ESTABLISHED",
    "CLOSE_WAIT",
    "FIN_WAIT_1",
    "CLOSING",
    "LAST_ACK",
    "FIN_WAIT_2",
    "TIME_WAIT",
];

/// The one state `dpctl/dump-conntrack` shows for the two peers (OVS: the greater one, with
/// FIN_WAIT_2 shown as TIME_WAIT and SYN_RECV as ESTABLISHED, as the kernel would).
pub fn display_state(peers: [u8; 2]) -> u8 {
    match peers[0].max(peers[1]) {
        FIN_WAIT_2 => TIME_WAIT,
        SYN_RECV => ESTABLISHED,
        s => s,
    }
}

/// Flag combinations no stack sends (OVS's tcp_invalid_flags).
pub fn invalid_flags(f: u16) -> bool {
    if f & SYN != 0 {
        if f & (RST | FIN) != 0 {
            return true;
        }
    } else if f & (ACK | RST) == 0 {
        return true;
    }
    f & ACK == 0 && f & (FIN | PSH | URG) != 0
}

/// Whether a first packet may open a connection: any valid packet but a SYN+ACK (a totally new
/// connection or one picked up mid-stream, not a half-open one).
pub fn valid_new(f: u16) -> bool {
    !invalid_flags(f) && f & (SYN | ACK) != SYN | ACK
}

/// Peer states of a connection opened by a packet with flags `f`, and its timeout.
pub fn new_conn(_f: u16) -> ([u8; 2], u64) {
    ([SYN_SENT, CLOSED], tm::TCP_FIRST_PACKET)
}

/// Updates `peers` for a packet with flags `f` (`reply`: sent by the responder). Returns the
/// verdict and, unless invalid, the new timeout.
pub fn update(peers: &mut [u8; 2], reply: bool, f: u16) -> (Update, u64) {
    if invalid_flags(f) {
        return (Update::Invalid, 0);
    }
    let (s, d) = if reply { (1, 0) } else { (0, 1) };
    if f & (SYN | ACK) == SYN {
        if peers[d] >= FIN_WAIT_2 && peers[s] >= FIN_WAIT_2 {
            // a SYN on a closed connection: the old one goes, a new one may be created
            *peers = [CLOSED, CLOSED];
            return (Update::New, 0);
        } else if peers[s] <= SYN_SENT {
            peers[s] = SYN_SENT;
            return (Update::ValidNew, tm::TCP_FIRST_PACKET);
        }
    }
    if peers[s] < SYN_SENT {
        peers[s] = SYN_SENT; // first packet from this end
    }
    if f & FIN != 0 && peers[s] < CLOSING {
        peers[s] = CLOSING;
    }
    if f & ACK != 0 {
        if peers[d] == SYN_SENT {
            peers[d] = ESTABLISHED;
        } else if peers[d] == CLOSING {
            peers[d] = FIN_WAIT_2;
        }
    }
    if f & RST != 0 {
        *peers = [TIME_WAIT, TIME_WAIT];
    }
    let (ps, pd) = (peers[s], peers[d]);
    let t = if ps >= FIN_WAIT_2 && pd >= FIN_WAIT_2 {
        tm::TCP_CLOSED
    } else if ps >= CLOSING && pd >= CLOSING {
        tm::TCP_FIN_WAIT
    } else if ps < ESTABLISHED || pd < ESTABLISHED {
        tm::TCP_OPENING
    } else if ps >= CLOSING || pd >= CLOSING {
        tm::TCP_CLOSING
    } else {
        tm::TCP_ESTABLISHED
    };
    (Update::Valid, t)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handshake_and_close() {
        let (mut p, _) = new_conn(SYN);
        assert_eq!(p, [SYN_SENT, CLOSED]);
        assert_eq!(update(&mut p, true, SYN | ACK).0, Update::Valid);
        assert_eq!(p, [ESTABLISHED, SYN_SENT]);
        assert_eq!(
            update(&mut p, false, ACK),
            (Update::Valid, tm::TCP_ESTABLISHED)
        );
        assert_eq!(p, [ESTABLISHED, ESTABLISHED]);
        assert_eq!(update(&mut p, false, ACK).1, tm::TCP_ESTABLISHED);
        update(&mut p, false, FIN | ACK);
        assert_eq!(p, [CLOSING, ESTABLISHED]);
        assert_eq!(update(&mut p, true, FIN | ACK).1, tm::TCP_FIN_WAIT);
        assert_eq!(p, [FIN_WAIT_2, CLOSING]);
        assert_eq!(update(&mut p, false, ACK).1, tm::TCP_CLOSED);
        assert_eq!(p, [FIN_WAIT_2, FIN_WAIT_2]);
        assert_eq!(display_state(p), TIME_WAIT);
        assert_eq!(update(&mut p, false, SYN).0, Update::New);
    }

    #[test]
    fn flags() {
        assert!(invalid_flags(SYN | FIN));
        assert!(invalid_flags(0));
        assert!(invalid_flags(FIN));
        assert!(!invalid_flags(RST));
        assert!(!valid_new(SYN | ACK));
        assert!(valid_new(ACK));
        assert!(valid_new(SYN));
    }
}
