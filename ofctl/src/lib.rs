//! The text layer of `xvs-ofctl`: ovs-ofctl's flow, match and action syntax, parsed into the
//! `openflow` codec's messages and printed back exactly as `ovs-ofctl` prints them.
//!
//! It is a library so that `xvswitchd` (e.g. `ofproto/trace` and its own dumps) can speak
//! the same syntax as the CLI.
//!
//! - [`field`]: the match-field table (names, widths, headers per OpenFlow version) and
//!   ovs-ofctl's protocol ("flow format") bits;
//! - [`value`]: value syntax (integers, addresses, flags, ports);
//! - [`flowmatch`]: a match as OVS holds it, with OVS's field order for encoding and printing;
//! - [`actions`]: every action/instruction of ovs-actions(7) the codec can carry: parse,
//!   check, format, and encode/decode per OpenFlow version (OVS's encoding choices);
//! - [`flow`]: whole flow lines (`add-flow`/`dump-flows` syntax) ↔ flow mods and flow stats;
//! - [`groups`], [`tlv`], [`monitor`], [`packet`]: group mods, TLV maps, flow monitors, and
//!   packet summaries as ovs-ofctl prints them;
//! - [`mod@print`]: `ofp-print` for received messages (the text ovs-ofctl shows);
//! - [`conn`]: a vconn-like client connection (hello negotiation, echo, barriers, bundles).
//!
//! Nothing here panics on bad input: flow text gets an error naming the offending token as
//! ovs-ofctl words it, malformed messages print as `***decode error***`.

pub mod actions;
pub mod conn;
mod errnames;
pub mod field;
pub mod flow;
pub mod flowmatch;
pub mod groups;
pub mod monitor;
pub mod packet;
pub mod print;
pub mod tlv;
pub mod value;
