//! OVSDB client core for xvswitch (RFC 7047 plus Open vSwitch's `monitor_cond`/`update2`).
//!
//! `ovs-vswitchd` reads its configuration (bridges, ports, interfaces, ...) from
//! `ovsdb-server` and writes back status; this crate is the protocol half of doing the same
//! in xvswitchd.
//!
//! # Design: sans-IO
//!
//! [`Client`] never touches a socket, a clock or a thread.  The caller owns the connection
//! (a mio `UnixStream` in the daemon's single-threaded event loop, a blocking std stream in
//! tests) and moves bytes in and out:
//!
//! ```text
//! connect ──► client.on_connected()  ─► bytes to write
//! readable ─► client.receive(bytes)  ─► Vec<Event>   (+ client.take_output() to write)
//! client.transact(ops) / lock(name)  ─► RequestId    (+ client.take_output() to write)
//! EOF/error ► client.on_disconnected(); wait Backoff::next_delay(); reconnect
//! ```
//!
//! Why: the daemon's event loop is mio-based and must never block, and it already has one
//! poller; an async runtime or a helper thread would be a second source of scheduling and
//! locking.  Being pure state, the client is also trivially testable: unit tests feed it byte
//! vectors (split anywhere), integration tests drive it over a real `ovsdb-server`.
//!
//! # What it does
//!
//! - [`json::Framer`]: splits the undelimited stream of JSON objects, whatever the read
//!   boundaries, with a size limit.
//! - Session: `get_schema`, then `monitor_cond` (falling back to `monitor` if refused) on the
//!   requested tables/columns (unknown ones are dropped), answers the server's `echo`
//!   requests, applies `update2`/`update` notifications to the replica ([`Db`]) and reports
//!   [`Event`]s per row (inserted / modified with the changed columns / deleted with the old
//!   row).
//! - Reconnection: after [`Client::on_disconnected`] and a new [`Client::on_connected`], the
//!   fresh snapshot replaces the replica and the differences are reported as row events, so
//!   the caller sees rows that changed or vanished while disconnected; then [`Event::Synced`].
//! - [`Client::transact`] with the [`ops`] builders, results as [`Event::TransactDone`].
//! - [`Client::lock`] (`"ovs_vswitchd"` for a vswitchd), [`Event::LockAcquired`] /
//!   [`Event::LockLost`], re-requested after reconnection.
//! - [`Backoff`]: 1 s doubling to 8 s between reconnection attempts.
//!
//! Data is typed by the schema: [`Datum`] values are canonical for their column type and
//! columns omitted by the server hold their default, so [`Row`] accessors can be used
//! without caring whether the server sent an atom or a one-element set.
//!
//! No input panics: malformed JSON is a framing [`Error`] (fatal for the connection),
//! malformed or ill-typed data is an [`Event::Error`] and the offending row/column is
//! skipped; unknown tables, columns and notification kinds are ignored.

pub mod client;
pub mod datum;
pub mod error;
pub mod json;
pub mod ops;
pub mod replica;
pub mod schema;

#[cfg(test)]
mod client_tests;

pub use client::{Backoff, Client, Event, Phase, RequestId};
pub use datum::{Atom, Datum, Uuid};
pub use error::Error;
pub use replica::{Db, Row, Table};
pub use schema::{AtomicType, BaseType, ColumnType, Schema, TableSchema};
