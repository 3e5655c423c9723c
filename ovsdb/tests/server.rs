//! Integration tests against a real `ovsdb-server` (Open vSwitch) on a fresh
//! `vswitch.ovsschema` database, driven by a blocking loop over a std socket.
//!
//! Skipped (with a message) when `ovsdb-server`, `ovsdb-tool` or `ovs-vsctl` is missing.

use ovsdb::{ops, Backoff, Client, Error, Event, Uuid};
use serde_json::json;
use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

const SCHEMA: &str = "/usr/share/openvswitch/vswitch.ovsschema";
const TIMEOUT: Duration = Duration::from_secs(10);

fn have_ovs() -> bool {
    let ok = ["ovsdb-server", "ovsdb-tool", "ovs-vsctl"].iter().all(|b| {
        Command::new(b)
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .map(|s| s.success())
            .unwrap_or(false)
    }) && Path::new(SCHEMA).exists();
    if !ok {
        eprintln!(
            "skipping: Open vSwitch (ovsdb-server, ovsdb-tool, ovs-vsctl, {SCHEMA}) not installed"
        );
    }
    ok
}

/// A temporary directory removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> TempDir {
        static N: AtomicUsize = AtomicUsize::new(0);
        let p = std::env::temp_dir().join(format!(
            "ovsdb-it-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// An `ovsdb-server` child process in the foreground, killed on drop.
struct Server {
    dir: TempDir,
    child: Option<Child>,
    tcp_port: Option<u16>,
}

impl Server {
    fn start() -> Server {
        Self::start_with(false)
    }

    fn start_with(tcp: bool) -> Server {
        let dir = TempDir::new();
        let db = dir.0.join("conf.db");
        let st = Command::new("ovsdb-tool")
            .arg("create")
            .arg(&db)
            .arg(SCHEMA)
            .status()
            .unwrap();
        assert!(st.success());
        let mut s = Server {
            dir,
            child: None,
            tcp_port: None,
        };
        if tcp {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            s.tcp_port = Some(l.local_addr().unwrap().port());
        }
        s.spawn();
        s.vsctl(&["init"]);
        s
    }

    fn sock(&self) -> PathBuf {
        self.dir.0.join("db.sock")
    }

    fn spawn(&mut self) {
        let d = &self.dir.0;
        let mut cmd = Command::new("ovsdb-server");
        cmd.arg(format!("--remote=punix:{}", self.sock().display()))
            .arg(format!(
                "--pidfile={}",
                d.join("ovsdb-server.pid").display()
            ))
            .arg(format!(
                "--unixctl={}",
                d.join("ovsdb-server.ctl").display()
            ))
            .arg(format!(
                "--log-file={}",
                d.join("ovsdb-server.log").display()
            ))
            .arg("-vconsole:off");
        if let Some(p) = self.tcp_port {
            cmd.arg(format!("--remote=ptcp:{p}:127.0.0.1"));
        }
        cmd.arg(d.join("conf.db"))
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        self.child = Some(cmd.spawn().unwrap());
        let t0 = Instant::now();
        while UnixStream::connect(self.sock()).is_err() {
            assert!(t0.elapsed() < TIMEOUT, "ovsdb-server did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = std::fs::remove_file(self.sock());
    }

    fn vsctl(&self, args: &[&str]) -> String {
        let out = Command::new("ovs-vsctl")
            .arg(format!("--db=unix:{}", self.sock().display()))
            .arg("--no-wait")
            .arg("--timeout=10")
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "ovs-vsctl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

trait Stream: Read + Write {
    fn set_timeout(&self, d: Duration);
}
impl Stream for UnixStream {
    fn set_timeout(&self, d: Duration) {
        self.set_read_timeout(Some(d)).unwrap();
    }
}
impl Stream for TcpStream {
    fn set_timeout(&self, d: Duration) {
        self.set_read_timeout(Some(d)).unwrap();
    }
}

/// A client on a blocking socket.
struct Conn {
    stream: Option<Box<dyn Stream>>,
    client: Client,
    events: Vec<Event>,
}

fn vswitch_client() -> Client {
    Client::new(
        "Open_vSwitch",
        &[
            ("Open_vSwitch", &[]),
            ("Bridge", &["name", "ports", "other_config"]),
            ("Port", &["name", "interfaces"]),
            ("Interface", &["name", "type", "ofport", "no_such_column"]),
            ("No_Such_Table", &[]),
        ],
    )
}

impl Conn {
    fn new(client: Client) -> Conn {
        Conn {
            stream: None,
            client,
            events: Vec::new(),
        }
    }

    fn connect(server: &Server, client: Client) -> Conn {
        let mut c = Conn::new(client);
        assert!(c.try_connect(&server.sock()));
        c
    }

    fn try_connect(&mut self, sock: &Path) -> bool {
        match UnixStream::connect(sock) {
            Ok(s) => {
                self.attach(Box::new(s));
                true
            }
            Err(_) => false,
        }
    }

    fn attach(&mut self, s: Box<dyn Stream>) {
        s.set_timeout(Duration::from_millis(20));
        self.stream = Some(s);
        let out = self.client.on_connected();
        self.write(&out);
    }

    fn write(&mut self, b: &[u8]) {
        if let Some(s) = &mut self.stream {
            s.write_all(b).unwrap();
        }
    }

    fn disconnect(&mut self) {
        self.stream = None;
        self.client.on_disconnected();
        let ev = self.client.take_events();
        self.events.extend(ev);
    }

    /// One read/feed/write round; returns false when the connection closed.
    fn pump(&mut self) -> bool {
        let out = self.client.take_output();
        self.write(&out);
        let Some(s) = &mut self.stream else {
            return false;
        };
        let mut buf = [0u8; 4096];
        let n = match s.read(&mut buf) {
            Ok(0) => {
                self.disconnect();
                return false;
            }
            Ok(n) => n,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => 0,
            Err(_) => {
                self.disconnect();
                return false;
            }
        };
        if n > 0 {
            let ev = self.client.receive(&buf[..n]).expect("framing");
            self.events.extend(ev);
        }
        let out = self.client.take_output();
        self.write(&out);
        true
    }

    /// Pumps until `done` holds for the collected events and the replica; returns (and
    /// clears) the events.
    fn until(&mut self, what: &str, mut done: impl FnMut(&[Event], &Client) -> bool) -> Vec<Event> {
        let t0 = Instant::now();
        loop {
            if done(&self.events, &self.client) {
                return std::mem::take(&mut self.events);
            }
            assert!(
                t0.elapsed() < TIMEOUT,
                "timeout waiting for {what}; events: {:?}",
                self.events
            );
            if !self.pump() {
                std::thread::sleep(Duration::from_millis(10));
            }
        }
    }

    fn synced(&mut self) -> Vec<Event> {
        self.until("Synced", |ev, _| ev.contains(&Event::Synced))
    }

    fn transact(
        &mut self,
        ops: Vec<serde_json::Value>,
    ) -> (Vec<Event>, Result<Vec<serde_json::Value>, Error>) {
        let id = self.client.transact(ops);
        let ev = self.until("transact reply", |ev, _| {
            ev.iter()
                .any(|e| matches!(e, Event::TransactDone { id: i, .. } if *i == id))
        });
        let res = ev
            .iter()
            .find_map(|e| match e {
                Event::TransactDone { id: i, result } if *i == id => Some(result.clone()),
                _ => None,
            })
            .unwrap();
        (ev, res)
    }
}

fn has_bridge_with_tap_port(c: &Client, br: &str, port: &str) -> bool {
    let db = c.db();
    let Some((_, b)) = db.find("Bridge", "name", br) else {
        return false;
    };
    let Some((pu, p)) = db.find("Port", "name", port) else {
        return false;
    };
    let Some((iu, i)) = db.find("Interface", "name", port) else {
        return false;
    };
    b.get_uuids("ports").contains(&pu)
        && p.get_uuids("interfaces") == vec![iu]
        && i.get_str("type") == Some("tap")
}

fn inserted(ev: &[Event], table: &str) -> usize {
    ev.iter()
        .filter(|e| matches!(e, Event::RowInserted { table: t, .. } if t == table))
        .count()
}

#[test]
fn monitor_follows_vsctl_add_and_del() {
    if !have_ovs() {
        return;
    }
    let server = Server::start();
    let mut conn = Conn::connect(&server, vswitch_client());
    let ev = conn.synced();
    assert_eq!(conn.client.monitor_version(), 2, "monitor_cond used");
    assert_eq!(inserted(&ev, "Open_vSwitch"), 1, "{ev:?}");
    assert!(conn.client.db().table("No_Such_Table").is_none());
    let (_, ovs) = conn
        .client
        .db()
        .table("Open_vSwitch")
        .unwrap()
        .iter()
        .next()
        .unwrap();
    assert!(
        ovs.get("bridges").is_some(),
        "all columns of Open_vSwitch monitored"
    );
    assert!(conn.client.db().table("Interface").unwrap().is_empty());

    server.vsctl(&[
        "add-br",
        "br0",
        "--",
        "add-port",
        "br0",
        "p1",
        "--",
        "set",
        "interface",
        "p1",
        "type=tap",
    ]);
    let ev = conn.until("br0/p1/tap", |_, c| {
        has_bridge_with_tap_port(c, "br0", "p1")
    });
    // add-br creates a Bridge, its local Port and Interface; add-port another pair.
    assert_eq!(inserted(&ev, "Bridge"), 1, "{ev:?}");
    assert_eq!(inserted(&ev, "Port"), 2, "{ev:?}");
    assert_eq!(inserted(&ev, "Interface"), 2, "{ev:?}");
    assert!(ev
        .iter()
        .any(|e| matches!(e, Event::RowModified { table, columns, .. }
        if table == "Open_vSwitch" && columns.contains(&"bridges".to_string()))));

    let (p1, _) = conn.client.db().find("Port", "name", "p1").unwrap();
    server.vsctl(&["del-port", "br0", "p1"]);
    let ev = conn.until("p1 deleted", |ev, _| {
        ev.iter()
            .any(|e| matches!(e, Event::RowDeleted { table, .. } if table == "Interface"))
    });
    assert!(
        ev.iter()
            .any(|e| matches!(e, Event::RowDeleted { table, uuid, old }
            if table == "Port" && *uuid == p1 && old.get_str("name") == Some("p1"))),
        "{ev:?}"
    );
    assert!(ev
        .iter()
        .any(|e| matches!(e, Event::RowModified { table, columns, .. }
        if table == "Bridge" && columns == &["ports"])));
    let db = conn.client.db();
    assert!(db.find("Port", "name", "p1").is_none());
    assert!(db.find("Interface", "name", "p1").is_none());
    let (_, br0) = db.find("Bridge", "name", "br0").unwrap();
    assert_eq!(br0.get_uuids("ports").len(), 1);
}

#[test]
fn plain_monitor_against_real_server() {
    if !have_ovs() {
        return;
    }
    let server = Server::start();
    let mut client = vswitch_client();
    client.set_monitor_cond(false);
    let mut conn = Conn::connect(&server, client);
    conn.synced();
    assert_eq!(conn.client.monitor_version(), 1);
    server.vsctl(&[
        "add-br",
        "br0",
        "--",
        "add-port",
        "br0",
        "p1",
        "--",
        "set",
        "interface",
        "p1",
        "type=tap",
    ]);
    conn.until("br0/p1/tap", |_, c| {
        has_bridge_with_tap_port(c, "br0", "p1")
    });
    server.vsctl(&[
        "set",
        "bridge",
        "br0",
        "other_config:a=1",
        "other_config:b=2",
    ]);
    server.vsctl(&["remove", "bridge", "br0", "other_config", "a"]);
    conn.until("other_config b only", |_, c| {
        let (_, b) = c.db().find("Bridge", "name", "br0").unwrap();
        b.get("other_config").unwrap().to_json() == json!(["map", [["b", "2"]]])
    });
    server.vsctl(&["del-br", "br0"]);
    conn.until("bridge gone", |_, c| {
        c.db().table("Bridge").unwrap().is_empty() && c.db().table("Interface").unwrap().is_empty()
    });
}

#[test]
fn transact_is_read_back_by_vsctl() {
    if !have_ovs() {
        return;
    }
    let server = Server::start();
    server.vsctl(&[
        "add-br",
        "br0",
        "--",
        "add-port",
        "br0",
        "p1",
        "--",
        "set",
        "interface",
        "p1",
        "type=tap",
    ]);
    server.vsctl(&["set", "open_vswitch", ".", "next_cfg=5"]);
    let mut conn = Conn::connect(&server, vswitch_client());
    conn.synced();
    let (ovs_uuid, ovs) = {
        let (u, r) = conn
            .client
            .db()
            .table("Open_vSwitch")
            .unwrap()
            .iter()
            .next()
            .unwrap();
        (*u, r.clone())
    };
    let next_cfg = ovs.get_int("next_cfg").unwrap();
    assert_eq!(next_cfg, 5);

    let (ev, res) = conn.transact(vec![
        ops::comment("xvswitch test"),
        ops::update(
            "Interface",
            vec![ops::eq("name", json!("p1"))],
            json!({"ofport": 7}),
        ),
        ops::update(
            "Open_vSwitch",
            vec![ops::uuid_is(ovs_uuid)],
            json!({"cur_cfg": next_cfg}),
        ),
        ops::mutate(
            "Open_vSwitch",
            vec![],
            vec![ops::mutation("next_cfg", "+=", json!(1))],
        ),
    ]);
    let res = res.unwrap();
    assert_eq!(res[1]["count"], json!(1));
    // ovsdb-server sends the update before the reply: the replica is current.
    let done = ev
        .iter()
        .position(|e| matches!(e, Event::TransactDone { .. }))
        .unwrap();
    assert!(
        ev[..done]
            .iter()
            .any(|e| matches!(e, Event::RowModified { table, columns, .. }
        if table == "Interface" && columns == &["ofport"])),
        "{ev:?}"
    );
    let (_, p1) = conn.client.db().find("Interface", "name", "p1").unwrap();
    assert_eq!(p1.get_int("ofport"), Some(7));
    let ovs = conn.client.db().row("Open_vSwitch", &ovs_uuid).unwrap();
    assert_eq!(ovs.get_int("cur_cfg"), Some(5));
    assert_eq!(ovs.get_int("next_cfg"), Some(6));

    assert_eq!(server.vsctl(&["get", "interface", "p1", "ofport"]), "7");
    assert_eq!(server.vsctl(&["get", "open_vswitch", ".", "cur_cfg"]), "5");

    // A failing operation is reported with its index.
    let (_, res) = conn.transact(vec![
        ops::comment("must fail"),
        ops::wait(
            "Interface",
            vec![ops::eq("name", json!("p1"))],
            &["ofport"],
            "==",
            vec![json!({"ofport": 8})],
            Some(0),
        ),
    ]);
    match res {
        Err(Error::TransactFailed {
            index: 1, error, ..
        }) => assert_eq!(error, "timed out"),
        other => panic!("{other:?}"),
    }
    // Insert with named-uuid, referenced in the same transaction.
    let (_, res) = conn.transact(vec![
        ops::insert("Bridge", json!({"name": "br9"}), Some("nb")),
        ops::mutate(
            "Open_vSwitch",
            vec![],
            vec![ops::mutation(
                "bridges",
                "insert",
                json!(["set", [["named-uuid", "nb"]]]),
            )],
        ),
    ]);
    let res = res.unwrap();
    let new = Uuid::parse(res[0]["uuid"][1].as_str().unwrap()).unwrap();
    assert_eq!(
        conn.client
            .db()
            .row("Bridge", &new)
            .unwrap()
            .get_str("name"),
        Some("br9")
    );
    assert!(server.vsctl(&["list-br"]).contains("br9"));
}

#[test]
fn lock_is_exclusive_until_holder_disconnects() {
    if !have_ovs() {
        return;
    }
    let server = Server::start();
    let mut a = Conn::connect(
        &server,
        Client::new("Open_vSwitch", &[("Open_vSwitch", &["cur_cfg"])]),
    );
    a.client.lock("ovs_vswitchd");
    a.until("a locked", |ev, _| {
        ev.iter().any(|e| matches!(e, Event::LockAcquired { .. }))
    });
    assert!(a.client.has_lock());
    // The lock can be asserted in a transaction.
    let (_, res) = a.transact(vec![ops::assert_lock("ovs_vswitchd")]);
    assert!(res.is_ok());

    let mut b = Conn::connect(
        &server,
        Client::new("Open_vSwitch", &[("Open_vSwitch", &["cur_cfg"])]),
    );
    b.client.lock("ovs_vswitchd");
    b.synced();
    let t0 = Instant::now();
    while t0.elapsed() < Duration::from_millis(300) {
        b.pump();
        a.pump();
    }
    assert!(!b.client.has_lock());
    assert!(!b
        .events
        .iter()
        .any(|e| matches!(e, Event::LockAcquired { .. })));
    let (_, res) = b.transact(vec![ops::assert_lock("ovs_vswitchd")]);
    assert!(
        matches!(res, Err(Error::TransactFailed { ref error, .. }) if error == "not owner"),
        "{res:?}"
    );

    a.disconnect();
    assert!(a.events.contains(&Event::LockLost {
        name: "ovs_vswitchd".into()
    }));
    b.until("b locked", |ev, _| {
        ev.contains(&Event::LockAcquired {
            name: "ovs_vswitchd".into(),
        })
    });
    assert!(b.client.has_lock());
}

#[test]
fn restart_of_server_resyncs_replica() {
    if !have_ovs() {
        return;
    }
    let mut server = Server::start();
    server.vsctl(&["add-br", "br0"]);
    let mut conn = Conn::connect(&server, vswitch_client());
    conn.synced();
    let (br0, _) = conn.client.db().find("Bridge", "name", "br0").unwrap();
    let id = conn.client.transact(vec![ops::comment("in flight")]);
    // Do not read the reply: the server dies first.
    let out = conn.client.take_output();
    conn.write(&out);
    server.kill();
    conn.until("EOF", |_, c| c.phase() == ovsdb::Phase::Disconnected);
    let ev = conn.client.take_events();
    let _ = ev;
    // While the client is away: br0 replaced by br1.
    server.spawn();
    server.vsctl(&["del-br", "br0", "--", "add-br", "br1"]);
    let mut backoff = Backoff::new(Duration::from_millis(10), Duration::from_millis(80));
    let t0 = Instant::now();
    while !conn.try_connect(&server.sock()) {
        assert!(t0.elapsed() < TIMEOUT);
        std::thread::sleep(backoff.next_delay());
    }
    let ev = conn.synced();
    backoff.reset();
    assert!(
        ev.iter().any(|e| matches!(e, Event::RowDeleted { table, uuid, .. } if table == "Bridge" && *uuid == br0)),
        "{ev:?}"
    );
    assert_eq!(inserted(&ev, "Bridge"), 1);
    assert!(ev
        .iter()
        .any(|e| matches!(e, Event::RowModified { table, columns, .. }
        if table == "Open_vSwitch" && columns.contains(&"bridges".to_string()))));
    assert!(conn.client.db().find("Bridge", "name", "br1").is_some());
    assert!(conn.client.db().find("Bridge", "name", "br0").is_none());
    let _ = id;
    // The session works after the resync.
    server.vsctl(&["add-port", "br1", "p2"]);
    conn.until("p2", |_, c| c.db().find("Port", "name", "p2").is_some());
}

#[test]
fn transaction_in_flight_fails_on_disconnect() {
    if !have_ovs() {
        return;
    }
    let mut server = Server::start();
    let mut conn = Conn::connect(&server, vswitch_client());
    conn.synced();
    // A wait that blocks in the server (until 10 s) is still outstanding when it dies.
    let id = conn.client.transact(vec![ops::wait(
        "Open_vSwitch",
        vec![],
        &["cur_cfg"],
        "==",
        vec![json!({"cur_cfg": 12345})],
        Some(10_000),
    )]);
    let out = conn.client.take_output();
    conn.write(&out);
    std::thread::sleep(Duration::from_millis(100));
    server.kill();
    let ev = conn.until("disconnect", |ev, _| !ev.is_empty());
    assert_eq!(
        ev,
        vec![Event::TransactDone {
            id,
            result: Err(Error::Disconnected)
        }]
    );
}

#[test]
fn server_echo_probes_are_answered() {
    if !have_ovs() {
        return;
    }
    // ovsdb-server probes TCP (not Unix) connections after 5 s of silence and drops them if
    // the echo is not answered within another 5 s.
    let server = Server::start_with(true);
    let s = TcpStream::connect(("127.0.0.1", server.tcp_port.unwrap())).unwrap();
    let mut conn = Conn::new(vswitch_client());
    conn.attach(Box::new(s));
    conn.synced();
    let t0 = Instant::now();
    while t0.elapsed() < Duration::from_secs(12) {
        assert!(conn.pump(), "server dropped the connection");
    }
    assert!(conn.client.echoes_answered() >= 1, "no echo request seen");
    let (_, res) = conn.transact(vec![ops::comment("still alive")]);
    assert!(res.is_ok());
}
