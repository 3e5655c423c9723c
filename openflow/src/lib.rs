//! OpenFlow wire codec for xvswitch: typed messages, no I/O.
//!
//! This crate turns bytes from an OpenFlow connection into [`Message`] values and back, for
//! the dialects that `ovn-controller` (OVN 23.03) and `ovs-ofctl` (Open vSwitch 3.1) speak to
//! `ovs-vswitchd`: OpenFlow 1.0, 1.3, 1.4 and 1.5 plus the Nicira (NXM/NXAST/NXT/NXST) and ONF
//! extensions.  It is the switch side: everything a controller or tool sends is decoded, and
//! everything the switch must send can be encoded.
//!
//! # Use
//!
//! - [`decode`] one complete message into `(Header, Message)`;
//! - [`Framer`] extracts complete messages from a byte stream (partial reads welcome);
//! - [`encode`] a [`Message`] for a version and xid;
//! - on a decode [`Error`], answer with [`ErrorMsg::for_request`]: `Error::kind` is the
//!   [`OfpErr`] that ovs-vswitchd would send, and [`OfpErr::code`] numbers it for the
//!   negotiated version.
//!
//! # Promises
//!
//! - **No panic on any input.**  All reads go through a bounds-checked cursor; nesting
//!   (`clone`, `ct` inside `clone`, bundled messages) is depth-limited.  A fuzz target
//!   (`openflow/fuzz`) and a mutation test exercise this.
//! - **Byte-exact round trip** for everything Open vSwitch emits:
//!   `encode(h.version, h.xid, &decode(x)?.1) == x`.  Representations are wire-faithful
//!   (e.g. `set_field`, `NXAST_REG_LOAD` and `NXAST_REG_LOAD2` are distinct [`Action`]s; a match
//!   entry remembers whether it used the NXM or the OXM code).  The test-suite checks this on
//!   ~10 000 messages captured between real `ovs-ofctl` and `ovs-vswitchd` (see
//!   `tests/vectors/`).
//! - **Validation like OVS's decoder** where it matters for interoperability: lengths,
//!   padding, duplicate and unknown match fields, mask on unmaskable fields, prerequisites
//!   (in OVS's order-dependent way), action lengths and vendors, instruction duplicates.
//!   Semantic checks that need switch state (does the port/group/table exist, does the action
//!   fit the match) belong to the switch.
//!
//! # Coverage
//!
//! | message | 1.0 | 1.3 | 1.4 | 1.5 | notes |
//! |---|---|---|---|---|---|
//! | HELLO (version bitmap), ERROR (echo), ECHO | ✓ | ✓ | ✓ | ✓ | any version number for these |
//! | FEATURES, GET/SET_CONFIG, BARRIER | ✓ | ✓ | ✓ | ✓ | |
//! | FLOW_MOD | ✓ + NXT_FLOW_MOD | ✓ | ✓ | ✓ | all commands, cookie/mask, out_port/group, flags, importance |
//! | PACKET_IN | ✓ + NXT_PACKET_IN | ✓ | ✓ | ✓ | NXT_PACKET_IN2 / NXT_RESUME in all versions, continuation opaque |
//! | PACKET_OUT | ✓ | ✓ | ✓ | ✓ (match) | |
//! | FLOW_REMOVED | ✓ + NXT | ✓ | ✓ | ✓ (OXS) | |
//! | PORT_STATUS, PORT_MOD | ✓ | ✓ | ✓ (props) | ✓ | |
//! | GROUP_MOD | – | ✓ | ✓ | ✓ (bucket ids, props, selection method) | |
//! | METER_MOD | – | ✓ | ✓ | ✓ | bands drop / dscp_remark / experimenter |
//! | TABLE_MOD | – | ✓ | ✓ (props raw) | ✓ | |
//! | ROLE | NXT | ✓ | ✓ | ✓ | |
//! | BUNDLE_CONTROL / ADD_MESSAGE | – | ONF ext | ✓ | ✓ | inner message decoded |
//! | MULTIPART desc, flow, aggregate, port desc, port stats, queue stats, table stats | ✓/NXST | ✓ | ✓ | ✓ (OXS) | [`multipart`], [`stats`]: 1.0 table stats with name/wildcards/max_entries; 1.4+ port stats with Ethernet/optical/experimenter properties |
//! | MULTIPART group stats | NXST | ✓ | ✓ | ✓ | with bucket counters |
//! | MULTIPART group desc, group features, meter, meter config, meter features, table features | – | ✓ | ✓ | ✓ | band counters; table-feature properties (experimenter ones verbatim) |
//! | MULTIPART table desc | – | – | ✓ | ✓ | eviction/vacancy properties |
//! | Flow monitor request / updates | NXST | ONFST | OFPMP | OFPMP | [`monitor`] (the form OVS uses there; NXST and ONFST also decode in other versions): full updates with match and actions/instructions, abbreviated, paused/resumed |
//! | MULTIPART queue desc, NXST_GROUP_DESC, other experimenter multiparts | raw | raw | raw | raw | kept verbatim, round-trips |
//! | NXT_SET_FLOW_FORMAT, FLOW_MOD_TABLE_ID, SET_PACKET_IN_FORMAT, SET_CONTROLLER_ID, TLV_TABLE_MOD/REQUEST/REPLY, CT_FLUSH_ZONE, CT_FLUSH, FLOW_MONITOR_CANCEL/PAUSED/RESUMED | ✓ | ✓ | ✓ | ✓ | |
//!
//! OpenFlow 1.5 statistics ([`stats::OxsStats`], in flow stats, aggregate replies and
//! FLOW_REMOVED): duration, idle_time, flow_count, packet_count and byte_count are typed;
//! other OXS entries (experimenter class, unknown fields) are kept verbatim in order.
//!
//! OpenFlow 1.1 and 1.2 are refused with `OFPBRC_BAD_VERSION` (outside HELLO/ERROR/ECHO):
//! neither OVN nor `ovs-ofctl` needs them against us.
//!
//! Matches ([`oxm`]): every OVS field in the spec list (in_port, metadata, reg0–15,
//! xreg0–7, xxreg0–3, tun_id/src/dst/ipv6/flags/gbp, tun_metadata0–63, pkt_mark, ct_*,
//! conj_id, dp_hash, recirc_id, actset_output, packet_type, eth/vlan/mpls, arp, ipv4/6, ND,
//! ip_frag/ttl/ecn/dscp, tcp/udp/sctp, tcp_flags, icmp/icmpv6, NSH, ERSPAN, GTP-U) with
//! masks and prerequisites; OF1.0's `ofp_match` is kept verbatim and converts with
//! [`Of10Match::to_match`].
//!
//! Actions ([`action`]): all standard actions of 1.0 and 1.1–1.5, instructions, and the
//! Nicira actions resubmit(_table)(_ct), set_tunnel(64), reg_move, reg_load, reg_load2, note,
//! multipath, bundle(_load), output_reg(2), learn/learn2, exit, fin_timeout, controller,
//! controller2 (max_len, id, reason, userdata, pause, meter), dec_ttl_cnt_ids,
//! write_metadata, stack push/pop, sample 1–3, conjunction, ct (+nested exec), nat,
//! clone, ct_clear, check_pkt_larger and the OF1.0 Nicira forms of MPLS/queue/group/dec_ttl.
//! **Parsed-and-carried verbatim** (not interpreted; the switch may reject them):
//! `encap`, `decap`, `dec_nsh_ttl`, `output_trunc`, `delete_field`, `sample` v4, debug
//! actions, ONF copy_field (1.3) and OF1.5 copy_field headers.

pub mod action;
mod buf;
pub mod compat;
pub mod error;
pub mod message;
pub mod monitor;
pub mod multipart;
pub mod oxm;
pub mod stats;
pub mod types;

pub use action::{Action, Instruction};
pub use error::{Error, ErrorCode, OfpErr, Result};
pub use message::{decode, encode, ErrorMsg, Header, Message};
pub use multipart::{MpReply, MpRequest, MultipartReply, MultipartRequest};
pub use oxm::{Field, Match, MatchField, Of10Match, OxmHeader};
pub use types::MatchRepr;

/// Nicira's vendor/experimenter ID.
pub const NX_VENDOR_ID: u32 = 0x0000_2320;
/// The Open Networking Foundation's experimenter ID.
pub const ONF_VENDOR_ID: u32 = 0x4f4e_4600;

/// Splits a byte stream into complete OpenFlow messages.
///
/// Feed it whatever a socket read returned; [`Framer::next_message`] yields each complete
/// message's bytes (header included) in order.  A header whose length is below 8 is a framing
/// error: the stream cannot be resynchronised and the connection must be closed (OVS does the
/// same), so it is reported once and the buffer is dropped.
#[derive(Debug, Default)]
pub struct Framer {
    buf: Vec<u8>,
    start: usize,
}

impl Framer {
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends received bytes.
    pub fn push(&mut self, bytes: &[u8]) {
        if self.start > 0 && self.start == self.buf.len() {
            self.buf.clear();
            self.start = 0;
        }
        self.buf.extend_from_slice(bytes);
    }

    /// Bytes buffered but not yet returned.
    pub fn pending(&self) -> usize {
        self.buf.len() - self.start
    }

    /// The next complete message, `Ok(None)` if more bytes are needed, or an error for a
    /// header with an impossible length.
    pub fn next_message(&mut self) -> Result<Option<Vec<u8>>> {
        let avail = &self.buf[self.start..];
        let Some(h) = Header::parse(avail) else {
            return Ok(None);
        };
        let len = h.length as usize;
        if len < Header::LEN {
            self.buf.clear();
            self.start = 0;
            return Err(Error::new(
                OfpErr::OFPBRC_BAD_LEN,
                "framing: length below header size",
            ));
        }
        if avail.len() < len {
            return Ok(None);
        }
        let msg = avail[..len].to_vec();
        self.start += len;
        if self.start > 65536 && self.start * 2 > self.buf.len() {
            self.buf.drain(..self.start);
            self.start = 0;
        }
        Ok(Some(msg))
    }
}
