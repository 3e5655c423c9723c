//! The OVSDB session: xvswitchd configured through `ovsdb-server`, as ovs-vswitchd is.
//!
//! The protocol lives in the sans-IO `ovsdb` crate; this module owns the socket (registered
//! in the control loop's poller), reconnects with back-off, takes the `ovs_vswitchd` lock, and
//! turns the replica of the `Open_vSwitch` database into bridges and ports through the runtime
//! reconfiguration API ([`crate::reconf`]). It writes back what ovs-vswitchd writes and what
//! `ovs-vsctl` and ovn-controller wait for (`Interface.ofport`, `error`, link facts,
//! `Open_vSwitch.cur_cfg`, the type lists, the Datapath row's capabilities).
//!
//! Reconciliation is level-triggered: after any change in the database (and after every
//! reconnection), the whole desired configuration is compared with what runs, and only the
//! differences are applied, so a server restart or an unrelated change never disturbs a port
//! whose row did not change. The write-back is diffed against the replica the same way, so a
//! quiet database sees no transactions.
//!
//! The database is authoritative while connected: bridges it does not list are removed. A
//! daemon that has not (yet) got the lock changes nothing, as ovs-vswitchd.

mod desired;
mod writeback;

use std::collections::{BTreeMap, HashMap};
use std::io::{Read, Write};
use std::time::{Duration, Instant};

use ::ovsdb::{Backoff, Client, Event, RequestId};
use mio::{Interest, Token};
use tracing::{debug, info, warn};

use crate::daemon::State;
pub use desired::{Desired, DesiredBridge, DesiredIface};

/// The control loop's token for the database connection.
pub const TOKEN: Token = Token(3);
/// The lock every ovs-vswitchd takes, so two daemons never drive one database.
pub const LOCK: &str = "ovs_vswitchd";

/// What xvswitchd reads. Written columns are monitored too: the write-back compares with them.
const TABLES: &[(&str, &[&str])] = &[
    (
        "Open_vSwitch",
        &[
            "bridges",
            "next_cfg",
            "cur_cfg",
            "datapaths",
            "ovs_version",
            "db_version",
            "iface_types",
            "datapath_types",
            "other_config",
            "external_ids",
        ],
    ),
    (
        "Bridge",
        &[
            "name",
            "ports",
            "datapath_type",
            "fail_mode",
            "controller",
            "other_config",
            "datapath_id",
            "datapath_version",
        ],
    ),
    ("Port", &["name", "interfaces"]),
    (
        "Interface",
        &[
            "name",
            "type",
            "options",
            "ofport",
            "ofport_request",
            "admin_state",
            "link_state",
            "mac_in_use",
            "ifindex",
            "mtu",
            "status",
            "error",
            "external_ids",
        ],
    ),
    ("Controller", &["target", "is_connected"]),
    ("Datapath", &["capabilities", "datapath_version"]),
];

enum Stream {
    Unix(mio::net::UnixStream),
    Tcp(mio::net::TcpStream),
}

impl Stream {
    fn source(&mut self) -> &mut dyn mio::event::Source {
        match self {
            Stream::Unix(s) => s,
            Stream::Tcp(s) => s,
        }
    }
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Stream::Unix(s) => s.read(buf),
            Stream::Tcp(s) => s.read(buf),
        }
    }
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            Stream::Unix(s) => s.write(buf),
            Stream::Tcp(s) => s.write(buf),
        }
    }
}

/// What was applied for one interface, to tell a changed row from an unchanged one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Applied {
    pub bridge: String,
    pub itype: String,
    pub options: BTreeMap<String, String>,
    pub ofport_request: Option<u32>,
}

/// The database session and what it applied.
pub struct DbSession {
    pub remote: String,
    client: Client,
    stream: Option<Stream>,
    /// Bytes the socket did not take yet.
    out: Vec<u8>,
    backoff: Backoff,
    retry_at: Instant,
    /// The database changed since the last reconciliation.
    pub reconfigure: bool,
    /// Something the write-back reports may have changed.
    pub writeback: bool,
    txn: Option<RequestId>,
    /// Interfaces applied from the database, by name.
    pub applied: HashMap<String, Applied>,
    /// Interfaces that failed, by name: the `Interface.error` text.
    pub errors: HashMap<String, String>,
    /// The fail mode each bridge was last given.
    pub fail_modes: HashMap<String, crate::config::FailMode>,
    /// `next_cfg` of the configuration last applied: written back as `cur_cfg`.
    pub applied_cfg: Option<i64>,
    lock_waiting_logged: bool,
    /// Interface external_ids may have changed since they were last looked at.
    ids_changed: bool,
    /// Counters for `ovsdb/show`.
    pub stats: DbStats,
}

#[derive(Default, Debug, Clone)]
pub struct DbStats {
    pub connects: u64,
    pub reconfigurations: u64,
    pub transactions: u64,
    pub transaction_errors: u64,
}

impl DbSession {
    pub fn new(remote: &str) -> DbSession {
        let mut client = Client::new("Open_vSwitch", TABLES);
        client.lock(LOCK);
        DbSession {
            remote: remote.to_string(),
            client,
            stream: None,
            out: Vec::new(),
            backoff: Backoff::default(),
            retry_at: Instant::now(),
            reconfigure: false,
            writeback: false,
            txn: None,
            applied: HashMap::new(),
            errors: HashMap::new(),
            fail_modes: HashMap::new(),
            applied_cfg: None,
            lock_waiting_logged: false,
            ids_changed: true,
            stats: DbStats::default(),
        }
    }

    pub fn is_connected(&self) -> bool {
        self.stream.is_some()
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    fn connect(&mut self) -> std::io::Result<Stream> {
        if let Some(path) = self.remote.strip_prefix("unix:") {
            let s = std::os::unix::net::UnixStream::connect(path)?;
            s.set_nonblocking(true)?;
            Ok(Stream::Unix(mio::net::UnixStream::from_std(s)))
        } else if let Some(addr) = self.remote.strip_prefix("tcp:") {
            let addr: std::net::SocketAddr = addr.parse().map_err(|_| {
                std::io::Error::new(
                    std::io::ErrorKind::InvalidInput,
                    format!("bad address {addr:?} (tcp:IP:PORT)"),
                )
            })?;
            let s = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(1))?;
            s.set_nonblocking(true)?;
            let _ = s.set_nodelay(true);
            Ok(Stream::Tcp(mio::net::TcpStream::from_std(s)))
        } else {
            Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!(
                    "unsupported database remote {:?} (unix:PATH or tcp:IP:PORT)",
                    self.remote
                ),
            ))
        }
    }

    fn disconnect(&mut self, st_reg: Option<&mio::Registry>, why: &str) {
        if let Some(mut s) = self.stream.take() {
            if let Some(reg) = st_reg {
                let _ = reg.deregister(s.source());
            }
            warn!(remote = %self.remote, reason = why, "database connection lost; reconnecting");
        }
        self.client.on_disconnected();
        self.out.clear();
        self.txn = None;
        let d = self.backoff.next_delay();
        self.retry_at = Instant::now() + d;
    }

    fn flush(&mut self, reg: Option<&mio::Registry>) {
        self.out.extend(self.client.take_output());
        let mut failed = None;
        if let Some(s) = &mut self.stream {
            while !self.out.is_empty() {
                match s.write(&self.out) {
                    Ok(0) => {
                        failed = Some("connection closed".to_string());
                        break;
                    }
                    Ok(n) => {
                        self.out.drain(..n);
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(e) => {
                        failed = Some(e.to_string());
                        break;
                    }
                }
            }
            if failed.is_none() {
                if let Some(reg) = reg {
                    let i = if self.out.is_empty() {
                        Interest::READABLE
                    } else {
                        Interest::READABLE | Interest::WRITABLE
                    };
                    let _ = reg.reregister(s.source(), TOKEN, i);
                }
            }
        }
        if let Some(why) = failed {
            self.disconnect(reg, &why);
        }
    }
}

/// Connects when due, reconciles and writes back when needed. Called every control-loop round.
pub fn tick(st: &mut State) {
    let Some(mut db) = st.db.take() else {
        return;
    };
    let reg = st.registry.as_ref().and_then(|r| r.try_clone().ok());
    if db.stream.is_none() && Instant::now() >= db.retry_at {
        match db.connect() {
            Ok(mut s) => {
                let ok = reg
                    .as_ref()
                    .map(|r| r.register(s.source(), TOKEN, Interest::READABLE).is_ok())
                    .unwrap_or(false);
                if ok {
                    info!(remote = %db.remote, "connected to the database");
                    db.stats.connects += 1;
                    db.stream = Some(s);
                    let hello = db.client.on_connected();
                    db.out.extend(hello);
                } else {
                    db.retry_at = Instant::now() + db.backoff.next_delay();
                }
            }
            Err(e) => {
                let d = db.backoff.next_delay();
                if db.stats.connects == 0 && d <= Duration::from_secs(2) {
                    warn!(remote = %db.remote, error = %e, "cannot connect to the database; retrying");
                } else {
                    debug!(remote = %db.remote, error = %e, "database connect failed");
                }
                db.retry_at = Instant::now() + d;
            }
        }
    }
    if db.client.is_synced() && !db.client.has_lock() && !db.lock_waiting_logged {
        db.lock_waiting_logged = true;
        warn!(
            "another ovs-vswitchd (or xvswitchd) holds the database lock {LOCK:?}; \
             changing nothing until it goes away"
        );
    }
    if db.client.is_synced() && db.client.has_lock() {
        // which ports ovn-controller marks installed (live migration tells a released and
        // re-claimed binding from a re-written one by it)
        let ids_changed = std::mem::take(&mut db.ids_changed);
        if let Some(t) = db.client.db().table("Interface").filter(|_| ids_changed) {
            for row in t.values() {
                let Some(name) = row.get_str("name") else {
                    continue;
                };
                if st.ports.iter().any(|p| p.name == name) {
                    let installed = row.map_get("external_ids", "iface-id").is_none()
                        || row.map_get("external_ids", "ovn-installed").is_some();
                    st.migration.note_installed(name, installed);
                }
            }
        }
        if db.reconfigure {
            db.reconfigure = false;
            db.stats.reconfigurations += 1;
            let want = Desired::from_db(db.client.db());
            desired::reconcile(st, &mut db, &want);
            db.writeback = true;
        }
        if db.writeback && db.txn.is_none() {
            db.writeback = false;
            let ops = writeback::ops(st, &db);
            if !ops.is_empty() {
                debug!(ops = ops.len(), "database write-back");
                db.stats.transactions += 1;
                db.txn = Some(db.client.transact(ops));
            }
        }
    }
    db.flush(reg.as_ref());
    st.db = Some(db);
}

/// The database socket is ready.
pub fn on_event(st: &mut State, readable: bool) {
    let Some(mut db) = st.db.take() else {
        return;
    };
    let reg = st.registry.as_ref().and_then(|r| r.try_clone().ok());
    if readable {
        let mut buf = [0u8; 65536];
        while let Some(s) = &mut db.stream {
            match s.read(&mut buf) {
                Ok(0) => {
                    db.disconnect(reg.as_ref(), "closed by the server");
                    break;
                }
                Ok(n) => match db.client.receive(&buf[..n]) {
                    Ok(evs) => handle_events(&mut db, evs),
                    Err(e) => {
                        let evs = db.client.take_events();
                        handle_events(&mut db, evs);
                        db.disconnect(reg.as_ref(), &format!("protocol error: {e}"));
                        break;
                    }
                },
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => {
                    db.disconnect(reg.as_ref(), &e.to_string());
                    break;
                }
            }
        }
    }
    // disconnection events (transactions failed, lock lost)
    let evs = db.client.take_events();
    handle_events(&mut db, evs);
    db.flush(reg.as_ref());
    st.db = Some(db);
    // apply at once rather than after the poll timeout
    tick(st);
}

fn handle_events(db: &mut DbSession, evs: Vec<Event>) {
    for ev in evs {
        match ev {
            Event::Synced => {
                info!(
                    monitor = db.client.monitor_version(),
                    rows = db.client.db().len(),
                    "database replica synchronised"
                );
                db.backoff.reset();
                db.reconfigure = true;
                db.ids_changed = true;
            }
            Event::RowInserted { .. } | Event::RowDeleted { .. } => {
                db.reconfigure = true;
                db.ids_changed = true;
            }
            Event::RowModified { table, columns, .. } => {
                if table == "Interface" && columns.iter().any(|c| c == "external_ids") {
                    db.ids_changed = true;
                }
                // our own write-back comes back as modifications: only configuration
                // columns call for a reconciliation
                if columns.iter().any(|c| desired::is_config_column(&table, c)) {
                    db.reconfigure = true;
                }
            }
            Event::TransactDone { id, result } => {
                if db.txn == Some(id) {
                    db.txn = None;
                }
                match result {
                    Ok(res) => {
                        if let Some(err) = res.iter().find_map(|r| r.get("error")) {
                            db.stats.transaction_errors += 1;
                            warn!(error = %err, details = ?res, "database write-back refused");
                            db.writeback = true;
                        }
                    }
                    Err(e) => {
                        db.stats.transaction_errors += 1;
                        debug!(error = %e, "database write-back failed");
                        db.writeback = true;
                    }
                }
            }
            Event::LockAcquired { name } => {
                info!(lock = %name, "database lock acquired");
                db.lock_waiting_logged = false;
                db.reconfigure = true;
            }
            Event::LockLost { name } => {
                warn!(lock = %name, "database lock lost");
            }
            Event::Error(e) => warn!(error = %e, "database"),
        }
    }
}

/// `ovsdb/show`: the session's state.
pub fn show(st: &State) -> String {
    use std::fmt::Write;
    let Some(db) = &st.db else {
        return "no database (standalone configuration)\n".into();
    };
    let mut s = String::new();
    let c = &db.client;
    let _ = writeln!(s, "remote: {}", db.remote);
    let _ = writeln!(
        s,
        "state: {}",
        if db.stream.is_none() {
            "disconnected"
        } else if !c.is_synced() {
            "synchronising"
        } else if !c.has_lock() {
            "waiting for the ovs_vswitchd lock"
        } else {
            "active"
        }
    );
    let _ = writeln!(s, "monitor: v{}", c.monitor_version());
    let _ = writeln!(s, "rows: {}", c.db().len());
    let _ = writeln!(
        s,
        "applied cfg: {}",
        db.applied_cfg
            .map(|v| v.to_string())
            .unwrap_or_else(|| "-".into())
    );
    let _ = writeln!(
        s,
        "connects: {}  reconfigurations: {}  transactions: {}  transaction errors: {}",
        db.stats.connects,
        db.stats.reconfigurations,
        db.stats.transactions,
        db.stats.transaction_errors
    );
    let mut errs: Vec<_> = db.errors.iter().collect();
    errs.sort();
    for (i, e) in errs {
        let _ = writeln!(s, "interface {i}: error: {e}");
    }
    s
}
