//! A private `ovsdb-server` with a fresh `Open_vSwitch` database, for xvswitchd in its
//! ovs-vswitchd role (`--ovsdb unix:PATH`), driven with the real `ovs-vsctl`.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use crate::{run_timeout, wait_for, ChildGuard, TempDir, WAIT};

const SCHEMA: &str = "/usr/share/openvswitch/vswitch.ovsschema";

/// The database server, killed on drop (with its directory).
pub struct VsDb {
    server: Option<ChildGuard>,
    dir: TempDir,
    /// `unix:DIR/db.sock`.
    pub remote: String,
}

impl VsDb {
    /// Creates the database and starts the server; `ovs-vsctl --no-wait init` has run.
    pub fn start() -> VsDb {
        let dir = TempDir::new();
        let db = dir.path().join("conf.db");
        let out = run_timeout(
            Command::new("ovsdb-tool")
                .arg("create")
                .arg(&db)
                .arg(SCHEMA),
            WAIT,
        );
        assert!(out.status.success(), "ovsdb-tool create: {out:?}");
        let remote = format!("unix:{}", dir.path().join("db.sock").display());
        let mut v = VsDb {
            server: None,
            dir,
            remote,
        };
        v.start_server();
        v.vsctl_ok(&["--no-wait", "init"]);
        v
    }

    fn start_server(&mut self) {
        let d = self.dir.path();
        self.server = Some(ChildGuard::spawn(
            Command::new("ovsdb-server")
                .args(["--no-chdir", "-vconsole:off", "-vsyslog:off"])
                .arg(format!(
                    "--log-file={}",
                    d.join("ovsdb-server.log").display()
                ))
                .arg(format!(
                    "--unixctl={}",
                    d.join("ovsdb-server.ctl").display()
                ))
                .arg(format!("--remote=p{}", self.remote))
                .arg(d.join("conf.db"))
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null()),
            "ovsdb-server",
        ));
        wait_for("ovsdb-server to answer", WAIT, || {
            let o = self.vsctl(&["--no-wait", "show"]);
            if o.status.success() {
                Ok(())
            } else {
                Err(String::from_utf8_lossy(&o.stderr).into_owned())
            }
        });
    }

    /// Stops the server (SIGTERM) and starts it again on the same database file.
    pub fn restart(&mut self) {
        self.server = None;
        self.start_server();
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Where the server's log is.
    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("ovsdb-server.log")
    }

    /// `ovs-vsctl --db=REMOTE --timeout=20 ARGS`. Without `--no-wait`, ovs-vsctl returns
    /// only once the switch has applied the change (`cur_cfg` caught up with `next_cfg`).
    pub fn vsctl(&self, args: &[&str]) -> Output {
        run_timeout(
            Command::new("ovs-vsctl")
                .arg(format!("--db={}", self.remote))
                .arg("--timeout=20")
                .args(args),
            WAIT,
        )
    }

    /// [`vsctl`](Self::vsctl), panicking on failure; returns stdout, trimmed.
    pub fn vsctl_ok(&self, args: &[&str]) -> String {
        let o = self.vsctl(args);
        assert!(
            o.status.success(),
            "ovs-vsctl {args:?} failed: {}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8_lossy(&o.stdout).trim().to_string()
    }

    /// `ovs-vsctl get TABLE RECORD COLUMN`, trimmed (strings keep their quotes if ovs-vsctl
    /// prints them).
    pub fn get(&self, table: &str, record: &str, column: &str) -> String {
        self.vsctl_ok(&["--no-wait", "get", table, record, column])
    }
}
