//! The sans-IO OVSDB client session.

use crate::datum::Uuid;
use crate::error::Error;
use crate::json::{Framer, Message};
use crate::replica::{monitor_spec, Db, MonitorSpec, Row};
use crate::schema::Schema;
use serde_json::{json, Map, Value};
use std::collections::HashMap;
use std::time::Duration;

/// Identifies a request this client sent (the JSON-RPC `id`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RequestId(pub u64);

/// Something the caller may want to react to.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// The monitor's initial contents have been applied: the replica is complete and current.
    /// Emitted after every (re)connection, after the row events of the resynchronisation.
    Synced,
    RowInserted {
        table: String,
        uuid: Uuid,
    },
    /// `columns`: the monitored columns whose value changed.
    RowModified {
        table: String,
        uuid: Uuid,
        columns: Vec<String>,
    },
    /// `old`: the row as it was last known.
    RowDeleted {
        table: String,
        uuid: Uuid,
        old: Row,
    },
    /// Outcome of [`Client::transact`]: the per-operation results, or why it failed.  The
    /// replica already reflects the transaction's changes when this arrives (ovsdb-server
    /// sends the updates before the reply).
    TransactDone {
        id: RequestId,
        result: Result<Vec<Value>, Error>,
    },
    LockAcquired {
        name: String,
    },
    /// The lock was stolen, released with [`Client::unlock`], or the connection was lost.
    LockLost {
        name: String,
    },
    /// A non-fatal problem with one message (it was skipped or partly applied).
    Error(Error),
}

/// Where the session stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// No connection ([`Client::on_connected`] not called, or after
    /// [`Client::on_disconnected`]).
    Disconnected,
    /// `get_schema` sent.
    SchemaRequested,
    /// `monitor_cond` (or `monitor`) sent, waiting for the initial contents.
    MonitorRequested,
    /// Replica complete; applying update notifications.
    Monitoring,
}

#[derive(Debug, Clone)]
enum Pending {
    Schema,
    Monitor(u8),
    Transact,
    Lock(String),
    Other,
}

/// Sans-IO OVSDB client: replicates tables, runs transactions, holds a lock.
///
/// Feed it what the socket reads ([`Client::receive`]) and write what it produces
/// ([`Client::take_output`]); tell it about connection changes ([`Client::on_connected`],
/// [`Client::on_disconnected`]).  It never blocks and never does I/O.
#[derive(Debug)]
pub struct Client {
    db: String,
    wanted: Vec<(String, Vec<String>)>,
    max_monitor_version: u8,
    framer: Framer,
    out: Vec<u8>,
    next_id: u64,
    pending: HashMap<u64, Pending>,
    phase: Phase,
    schema: Option<Schema>,
    spec: MonitorSpec,
    replica: Db,
    monitor_version: u8,
    monitor_id: Value,
    monitor_gen: u64,
    lock_name: Option<String>,
    has_lock: bool,
    events: Vec<Event>,
    echoes_answered: u64,
}

impl Client {
    /// A client for database `db` monitoring `tables`: `(table, columns)` pairs, where an
    /// empty column list means every column and an empty table list every table.  Tables and
    /// columns the server's schema lacks are ignored.
    pub fn new(db: &str, tables: &[(&str, &[&str])]) -> Client {
        Client {
            db: db.to_string(),
            wanted: tables
                .iter()
                .map(|(t, c)| (t.to_string(), c.iter().map(|c| c.to_string()).collect()))
                .collect(),
            max_monitor_version: 2,
            framer: Framer::default(),
            out: Vec::new(),
            next_id: 1,
            pending: HashMap::new(),
            phase: Phase::Disconnected,
            schema: None,
            spec: MonitorSpec::new(),
            replica: Db::default(),
            monitor_version: 0,
            monitor_id: Value::Null,
            monitor_gen: 0,
            lock_name: None,
            has_lock: false,
            events: Vec::new(),
            echoes_answered: 0,
        }
    }

    /// Use plain RFC 7047 `monitor` only (`false`) instead of trying `monitor_cond` first.
    pub fn set_monitor_cond(&mut self, enable: bool) {
        self.max_monitor_version = if enable { 2 } else { 1 };
    }

    /// Replaces the framer's message size limit (default [`crate::json::DEFAULT_MAX_MESSAGE`]).
    pub fn set_max_message(&mut self, bytes: usize) {
        self.framer = Framer::new(bytes);
    }

    /// The connection is up: returns the first bytes to send (`get_schema`, and `lock` if a
    /// lock is wanted).  Any previous session state is dropped; the replica is kept until the
    /// new snapshot arrives and replaces it.
    pub fn on_connected(&mut self) -> Vec<u8> {
        self.reset_session();
        self.request_schema();
        if let Some(name) = self.lock_name.clone() {
            self.send_lock(&name);
        }
        self.take_output()
    }

    /// The connection is gone: outstanding transactions complete with
    /// [`Error::Disconnected`], a held lock is reported lost.  These events are returned by
    /// the next [`Client::receive`] or by [`Client::take_events`].
    pub fn on_disconnected(&mut self) {
        let mut ids: Vec<u64> = self
            .pending
            .iter()
            .filter(|(_, p)| matches!(p, Pending::Transact))
            .map(|(id, _)| *id)
            .collect();
        ids.sort();
        for id in ids {
            self.events.push(Event::TransactDone {
                id: RequestId(id),
                result: Err(Error::Disconnected),
            });
        }
        if self.has_lock {
            self.has_lock = false;
            if let Some(name) = self.lock_name.clone() {
                self.events.push(Event::LockLost { name });
            }
        }
        self.reset_session();
        self.phase = Phase::Disconnected;
    }

    fn reset_session(&mut self) {
        self.framer.reset();
        self.out.clear();
        self.pending.clear();
        self.has_lock = false;
        self.monitor_version = 0;
        self.monitor_id = Value::Null;
    }

    /// Processes bytes read from the connection.  Returns the resulting events (including
    /// any queued since the last call).
    ///
    /// An `Err` is a framing error: the stream is unusable and the caller must close the
    /// connection and call [`Client::on_disconnected`].  Events from the messages before the
    /// error are kept for [`Client::take_events`].
    pub fn receive(&mut self, bytes: &[u8]) -> Result<Vec<Event>, Error> {
        self.framer.push(bytes);
        while let Some(v) = self.framer.next_value()? {
            self.handle(v);
        }
        Ok(self.take_events())
    }

    /// Events queued but not yet returned.
    pub fn take_events(&mut self) -> Vec<Event> {
        std::mem::take(&mut self.events)
    }

    /// Bytes to write to the connection (empties the output buffer).
    pub fn take_output(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.out)
    }

    /// True if [`Client::take_output`] has something.
    pub fn wants_write(&self) -> bool {
        !self.out.is_empty()
    }

    /// Sends a `transact` of `ops` (see [`crate::ops`]).  The outcome arrives as
    /// [`Event::TransactDone`] with the returned id; if not connected, that event is queued
    /// at once with [`Error::NotConnected`].
    pub fn transact(&mut self, ops: Vec<Value>) -> RequestId {
        let id = self.alloc_id();
        if self.phase == Phase::Disconnected {
            self.events.push(Event::TransactDone {
                id,
                result: Err(Error::NotConnected),
            });
            return id;
        }
        let mut params = Vec::with_capacity(ops.len() + 1);
        params.push(json!(self.db));
        params.extend(ops);
        self.send_request(id, "transact", params, Pending::Transact);
        id
    }

    /// Asks for lock `name` (ovs-vswitchd uses `"ovs_vswitchd"`) now and after every
    /// reconnection.  [`Event::LockAcquired`] reports success (possibly much later).
    pub fn lock(&mut self, name: &str) {
        if self.lock_name.as_deref() == Some(name) {
            return;
        }
        if let Some(old) = self.lock_name.clone() {
            self.unlock(&old);
        }
        self.lock_name = Some(name.to_string());
        if self.phase != Phase::Disconnected {
            self.send_lock(name);
        }
    }

    /// Releases (or stops waiting for) lock `name`.
    pub fn unlock(&mut self, name: &str) {
        if self.lock_name.as_deref() != Some(name) {
            return;
        }
        self.lock_name = None;
        if self.phase != Phase::Disconnected {
            let id = self.alloc_id();
            self.send_request(id, "unlock", vec![json!(name)], Pending::Other);
        }
        if self.has_lock {
            self.has_lock = false;
            self.events.push(Event::LockLost {
                name: name.to_string(),
            });
        }
    }

    /// Sends an `echo` request (a keepalive probe); the reply is consumed silently.
    pub fn echo(&mut self) -> Option<RequestId> {
        if self.phase == Phase::Disconnected {
            return None;
        }
        let id = self.alloc_id();
        self.send_request(id, "echo", vec![], Pending::Other);
        Some(id)
    }

    /// The replica of the monitored tables.
    pub fn db(&self) -> &Db {
        &self.replica
    }

    /// The schema from the last `get_schema`.
    pub fn schema(&self) -> Option<&Schema> {
        self.schema.as_ref()
    }

    pub fn phase(&self) -> Phase {
        self.phase
    }

    /// True once the replica is complete on the current connection.
    pub fn is_synced(&self) -> bool {
        self.phase == Phase::Monitoring
    }

    pub fn has_lock(&self) -> bool {
        self.has_lock
    }

    /// 2 for `monitor_cond`/`update2`, 1 for `monitor`/`update`, 0 before the monitor reply.
    pub fn monitor_version(&self) -> u8 {
        self.monitor_version
    }

    /// Number of `echo` requests from the server answered so far.
    pub fn echoes_answered(&self) -> u64 {
        self.echoes_answered
    }

    // ---- internals ----

    fn alloc_id(&mut self) -> RequestId {
        let id = self.next_id;
        self.next_id += 1;
        RequestId(id)
    }

    fn send_request(&mut self, id: RequestId, method: &str, params: Vec<Value>, p: Pending) {
        Message::Request {
            method: method.to_string(),
            params,
            id: json!(id.0),
        }
        .write(&mut self.out);
        self.pending.insert(id.0, p);
    }

    fn request_schema(&mut self) {
        self.phase = Phase::SchemaRequested;
        let id = self.alloc_id();
        self.send_request(id, "get_schema", vec![json!(self.db)], Pending::Schema);
    }

    fn send_lock(&mut self, name: &str) {
        let id = self.alloc_id();
        self.send_request(
            id,
            "lock",
            vec![json!(name)],
            Pending::Lock(name.to_string()),
        );
    }

    fn send_monitor(&mut self, version: u8) {
        self.monitor_gen += 1;
        self.monitor_id = json!(format!("xvswitch-{}-{}", self.db, self.monitor_gen));
        let mut reqs = Map::new();
        for (table, cols) in &self.spec {
            let cols: Vec<&String> = cols.keys().collect();
            let req = json!({"columns": cols});
            reqs.insert(table.clone(), if version >= 2 { json!([req]) } else { req });
        }
        let method = if version >= 2 {
            "monitor_cond"
        } else {
            "monitor"
        };
        let params = vec![json!(self.db), self.monitor_id.clone(), Value::Object(reqs)];
        let id = self.alloc_id();
        self.send_request(id, method, params, Pending::Monitor(version));
        self.phase = Phase::MonitorRequested;
    }

    fn handle(&mut self, v: Value) {
        let msg = match Message::from_value(v) {
            Ok(m) => m,
            Err(e) => {
                tracing::warn!("ovsdb: {e}");
                self.events.push(Event::Error(e));
                return;
            }
        };
        match msg {
            Message::Request { method, params, id } => {
                let result = if method == "echo" {
                    self.echoes_answered += 1;
                    Ok(Value::Array(params))
                } else {
                    Err(json!("unknown method"))
                };
                Message::Reply { id, result }.write(&mut self.out);
            }
            Message::Notification { method, params } => self.notification(&method, params),
            Message::Reply { id, result } => {
                let pending = id.as_u64().and_then(|n| self.pending.remove(&n));
                match pending {
                    Some(p) => self.reply(RequestId(id.as_u64().unwrap_or(0)), p, result),
                    None => tracing::debug!(%id, "ovsdb: reply to unknown request"),
                }
            }
        }
    }

    fn notification(&mut self, method: &str, params: Vec<Value>) {
        match method {
            "update" | "update2" => {
                let [monid, updates] = &params[..] else {
                    self.bad_message(format!("{method} with {} params", params.len()));
                    return;
                };
                if *monid != self.monitor_id || self.phase != Phase::Monitoring {
                    tracing::debug!(%monid, "ovsdb: update for another monitor ignored");
                    return;
                }
                let mut ev = std::mem::take(&mut self.events);
                if method == "update2" {
                    self.replica.apply_update2(&self.spec, updates, &mut ev);
                } else {
                    self.replica.apply_update(&self.spec, updates, &mut ev);
                }
                self.events = ev;
            }
            "locked" | "stolen" => {
                let name = params.first().and_then(Value::as_str).unwrap_or_default();
                if self.lock_name.as_deref() != Some(name) {
                    return;
                }
                let acquired = method == "locked";
                if acquired != self.has_lock {
                    self.has_lock = acquired;
                    let name = name.to_string();
                    self.events.push(if acquired {
                        Event::LockAcquired { name }
                    } else {
                        Event::LockLost { name }
                    });
                }
            }
            "monitor_canceled" => {
                if params.first() == Some(&self.monitor_id) {
                    // The database went away or changed: start over from the schema.
                    self.request_schema();
                }
            }
            _ => tracing::debug!(method, "ovsdb: unknown notification ignored"),
        }
    }

    fn bad_message(&mut self, msg: String) {
        tracing::warn!("ovsdb: {msg}");
        self.events.push(Event::Error(Error::BadMessage(msg)));
    }

    fn reply(&mut self, id: RequestId, p: Pending, result: Result<Value, Value>) {
        match p {
            Pending::Schema => match result.map_err(|error| Error::Rpc {
                method: "get_schema".into(),
                error,
            }) {
                Ok(v) => match Schema::from_json(&v) {
                    Ok(s) => {
                        self.spec = monitor_spec(&s, &self.wanted);
                        self.schema = Some(s);
                        self.send_monitor(self.max_monitor_version);
                    }
                    Err(e) => self.events.push(Event::Error(e)),
                },
                Err(e) => self.events.push(Event::Error(e)),
            },
            Pending::Monitor(version) => match result {
                Err(error) if version >= 2 => {
                    tracing::info!(%error, "ovsdb: monitor_cond refused, falling back to monitor");
                    self.send_monitor(1);
                }
                Err(error) => self.events.push(Event::Error(Error::Rpc {
                    method: "monitor".into(),
                    error,
                })),
                Ok(snapshot) => {
                    let mut fresh = Db::with_tables(&self.spec);
                    let mut scratch = Vec::new();
                    if version >= 2 {
                        fresh.apply_update2(&self.spec, &snapshot, &mut scratch);
                    } else {
                        fresh.apply_update(&self.spec, &snapshot, &mut scratch);
                    }
                    self.events
                        .extend(scratch.into_iter().filter(|e| matches!(e, Event::Error(_))));
                    let mut ev = std::mem::take(&mut self.events);
                    self.replica.replace_with(fresh, &mut ev);
                    ev.push(Event::Synced);
                    self.events = ev;
                    self.monitor_version = version;
                    self.phase = Phase::Monitoring;
                }
            },
            Pending::Transact => {
                let result = match result {
                    Err(error) => Err(Error::Rpc {
                        method: "transact".into(),
                        error,
                    }),
                    Ok(Value::Array(results)) => transact_outcome(results),
                    Ok(other) => Err(Error::BadMessage(format!(
                        "transact result is not an array: {other}"
                    ))),
                };
                self.events.push(Event::TransactDone { id, result });
            }
            Pending::Lock(name) => match result {
                Ok(v) => {
                    let locked = v.get("locked").and_then(Value::as_bool).unwrap_or(false);
                    if locked && self.lock_name.as_deref() == Some(&name) && !self.has_lock {
                        self.has_lock = true;
                        self.events.push(Event::LockAcquired { name });
                    }
                }
                Err(error) => self.events.push(Event::Error(Error::Rpc {
                    method: "lock".into(),
                    error,
                })),
            },
            Pending::Other => {
                if let Err(error) = result {
                    tracing::debug!(%error, "ovsdb: request failed");
                }
            }
        }
    }
}

/// RFC 7047 §4.1.3: an operation failed if its result has an `"error"` member; an extra
/// trailing result reports a commit failure.
fn transact_outcome(results: Vec<Value>) -> Result<Vec<Value>, Error> {
    let failed = results.iter().enumerate().find_map(|(i, r)| {
        r.get("error")
            .filter(|e| !e.is_null())
            .map(|e| (i, e.as_str().unwrap_or("error").to_string(), r))
    });
    match failed {
        None => Ok(results),
        Some((index, error, r)) => {
            let details = r.get("details").and_then(Value::as_str).map(String::from);
            Err(Error::TransactFailed {
                index,
                error,
                details,
                results,
            })
        }
    }
}

/// Reconnection delays: 1 s, doubling up to 8 s; [`Backoff::reset`] after a success.
#[derive(Debug, Clone)]
pub struct Backoff {
    min: Duration,
    max: Duration,
    next: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff::new(Duration::from_secs(1), Duration::from_secs(8))
    }
}

impl Backoff {
    pub fn new(min: Duration, max: Duration) -> Backoff {
        let max = max.max(min);
        Backoff {
            min,
            max,
            next: min,
        }
    }

    /// The delay before the next attempt (grows for the one after).
    pub fn next_delay(&mut self) -> Duration {
        let d = self.next;
        self.next = (self.next * 2).min(self.max);
        d
    }

    /// A connection succeeded (call on [`Event::Synced`]).
    pub fn reset(&mut self) {
        self.next = self.min;
    }
}
