//! xvswitchd, the userspace AF_XDP virtual switch daemon.
//!
//! Layering, top to bottom (as in Open vSwitch): the control plane ([`daemon`], [`control`]) owns
//! configuration and talks to clients; translation ([`pipeline`]) turns a packet's flow key into
//! a datapath flow; the fast path ([`pmd`]) runs cached flows ([`cache`]) on packets it reads
//! through port backends ([`port`]); [`tunnel`] does Geneve encap and decap
//! natively; [`packet`] holds the wire views everything parses with.
//! The control plane never touches a packet ring; the fast path never touches a socket to a
//! client.

pub mod cache;
pub mod config;
pub mod conntrack;
pub mod control;
pub mod daemon;
pub mod migration;
pub mod ofproto;
pub mod packet;
pub mod pipeline;
pub mod pmd;
pub mod port;
pub mod process;
pub mod reconf;
pub mod stats;
pub mod sys;
pub mod tunnel;
pub mod vlog;
pub mod vswitchdb;
