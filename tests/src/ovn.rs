//! Real OVN on one machine: the central (NB and SB `ovsdb-server`, `ovn-northd`) and chassis,
//! each with its own `ovsdb-server`, switch daemon and unchanged `ovn-controller` in its own
//! network namespace and directories, VM-like ports in namespaces bound with
//! `external_ids:iface-id`. The switch daemon is xvswitchd or, to compare, the stock
//! `ovs-vswitchd` ([`SwitchKind`]; `XVS_OVN_SWITCH=ovs` makes [`SwitchKind::from_env`] choose
//! it).
//!
//! Underlay, as OVS's userspace tunnelling wants it (and as `../shared/lab/ovn-lab.sh` does):
//! each chassis has a bridge `br-phy` holding its underlay interface, and the encap IP
//! (`192.168.50.N/24`) on `br-phy`'s internal port; the chassis' underlay interfaces meet in a
//! kernel bridge in an "underlay" namespace.

use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

use crate::netns::{Netns, Veth};
use crate::pkt::{mac_str, Mac};
use crate::{run_timeout, unique, wait_for, ChildGuard, TempDir, WAIT};

const VS_SCHEMA: &str = "/usr/share/openvswitch/vswitch.ovsschema";
const NB_SCHEMA: &str = "/usr/share/ovn/ovn-nb.ovsschema";
const SB_SCHEMA: &str = "/usr/share/ovn/ovn-sb.ovsschema";

/// Which switch daemon runs on the chassis.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SwitchKind {
    Xvs,
    Ovs,
}

impl SwitchKind {
    /// `XVS_OVN_SWITCH=ovs` selects stock ovs-vswitchd; anything else xvswitchd.
    pub fn from_env() -> SwitchKind {
        match std::env::var("XVS_OVN_SWITCH").as_deref() {
            Ok("ovs") => SwitchKind::Ovs,
            _ => SwitchKind::Xvs,
        }
    }
}

/// Why OVN cannot run here, if it cannot.
pub fn unavailable() -> Option<String> {
    for b in ["ovn-northd", "ovn-controller", "ovn-nbctl", "ovsdb-server"] {
        let ok = Command::new("sh")
            .args(["-c", &format!("command -v {b}")])
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false);
        if !ok {
            return Some(format!("{b} is not installed"));
        }
    }
    None
}

fn ovsdb_server(dir: &std::path::Path, name: &str, schema: &str) -> (ChildGuard, String) {
    let db = dir.join(format!("{name}.db"));
    let out = run_timeout(
        Command::new("ovsdb-tool")
            .arg("create")
            .arg(&db)
            .arg(schema),
        WAIT,
    );
    assert!(out.status.success(), "ovsdb-tool create {name}: {out:?}");
    let sock = dir.join(format!("{name}.sock"));
    let g = ChildGuard::spawn(
        Command::new("ovsdb-server")
            .args(["--no-chdir", "-vconsole:off", "-vsyslog:off"])
            .arg(format!(
                "--log-file={}",
                dir.join(format!("{name}.log")).display()
            ))
            .arg(format!(
                "--unixctl={}",
                dir.join(format!("{name}.ctl")).display()
            ))
            .arg(format!("--remote=punix:{}", sock.display()))
            .arg(&db)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null()),
        &format!("ovsdb-server {name}"),
    );
    (g, format!("unix:{}", sock.display()))
}

fn check(o: Output, what: &str) -> String {
    assert!(
        o.status.success(),
        "{what} failed: {}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).trim().to_string()
}

/// The OVN central: NB and SB databases and ovn-northd, in the root namespace, reached over
/// unix sockets in a private directory.
pub struct Central {
    _northd: ChildGuard,
    _sb: ChildGuard,
    _nb: ChildGuard,
    dir: TempDir,
    pub nb: String,
    pub sb: String,
}

impl Central {
    pub fn start() -> Central {
        if let Some(why) = unavailable() {
            panic!("cannot run OVN: {why}");
        }
        let dir = TempDir::new();
        let (nbg, nb) = ovsdb_server(dir.path(), "nb", NB_SCHEMA);
        let (sbg, sb) = ovsdb_server(dir.path(), "sb", SB_SCHEMA);
        let d = dir.path();
        let northd = ChildGuard::spawn(
            Command::new("ovn-northd")
                .args(["--no-chdir", "-vconsole:off", "-vsyslog:off"])
                .arg(format!("--log-file={}", d.join("northd.log").display()))
                .arg(format!("--unixctl={}", d.join("northd.ctl").display()))
                .arg(format!("--ovnnb-db={nb}"))
                .arg(format!("--ovnsb-db={sb}"))
                .env("OVN_RUNDIR", d)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null()),
            "ovn-northd",
        );
        let c = Central {
            _northd: northd,
            _sb: sbg,
            _nb: nbg,
            dir,
            nb,
            sb,
        };
        wait_for("the NB database", WAIT, || {
            let o = c.nbctl_raw(&["init"]);
            if o.status.success() {
                Ok(())
            } else {
                Err(String::from_utf8_lossy(&o.stderr).into_owned())
            }
        });
        c
    }

    fn nbctl_raw(&self, args: &[&str]) -> Output {
        run_timeout(
            Command::new("ovn-nbctl")
                .arg(format!("--db={}", self.nb))
                .arg("--timeout=30")
                .args(args),
            WAIT,
        )
    }

    /// `ovn-nbctl ARGS`, panicking on failure; stdout trimmed.
    pub fn nbctl(&self, args: &[&str]) -> String {
        check(self.nbctl_raw(args), &format!("ovn-nbctl {args:?}"))
    }

    /// `ovn-sbctl ARGS`, panicking on failure; stdout trimmed.
    pub fn sbctl(&self, args: &[&str]) -> String {
        check(
            run_timeout(
                Command::new("ovn-sbctl")
                    .arg(format!("--db={}", self.sb))
                    .arg("--timeout=30")
                    .args(args),
                WAIT,
            ),
            &format!("ovn-sbctl {args:?}"),
        )
    }

    pub fn dir(&self) -> PathBuf {
        self.dir.path().to_path_buf()
    }
}

/// A VM-like port: a namespace with one interface whose peer is a br-int port of a chassis.
pub struct Vif {
    _veth: Veth,
    pub ns: Netns,
    /// The interface in `ns`.
    pub ifname: String,
    /// The br-int port (in the chassis namespace).
    pub port: String,
    pub mac: Mac,
    pub ip: Ipv4Addr,
    pub iface_id: String,
}

/// One chassis: namespace, database, switch daemon, ovn-controller.
pub struct Chassis {
    // dropped in this order: controller, switch, database, namespace, directory
    controller: Option<ChildGuard>,
    switch: Option<ChildGuard>,
    _db: ChildGuard,
    pub ns: Netns,
    dir: TempDir,
    pub name: String,
    pub kind: SwitchKind,
    pub encap_ip: Ipv4Addr,
    /// The chassis' underlay interface (a port of br-phy).
    pub underlay: String,
    db_remote: String,
}

impl Chassis {
    fn rundir(&self) -> PathBuf {
        self.dir.path().join("run")
    }

    /// The switch's control socket.
    pub fn ctl(&self) -> PathBuf {
        match self.kind {
            SwitchKind::Xvs => self.rundir().join("xvswitchd.ctl"),
            SwitchKind::Ovs => self.rundir().join("ovs-vswitchd.ctl"),
        }
    }

    /// `ovs-vsctl --db=... ARGS` (waits for the switch unless `--no-wait` is given).
    pub fn vsctl(&self, args: &[&str]) -> String {
        check(
            run_timeout(
                Command::new("ovs-vsctl")
                    .arg(format!("--db={}", self.db_remote))
                    .arg("--timeout=30")
                    .args(args),
                WAIT,
            ),
            &format!("{}: ovs-vsctl {args:?}", self.name),
        )
    }

    /// `ovs-ofctl -O OpenFlow15 CMD unix:RUNDIR/br-int.mgmt ARGS`.
    pub fn ofctl(&self, cmd: &str, args: &[&str]) -> String {
        let mgmt = format!("unix:{}", self.rundir().join("br-int.mgmt").display());
        check(
            run_timeout(
                Command::new("ovs-ofctl")
                    .args(["-O", "OpenFlow15", cmd, &mgmt])
                    .args(args),
                WAIT,
            ),
            &format!("{}: ovs-ofctl {cmd}", self.name),
        )
    }

    /// `ovs-appctl -t CTL ARGS` against the switch daemon.
    pub fn appctl(&self, args: &[&str]) -> String {
        check(
            run_timeout(
                Command::new("ovs-appctl")
                    .arg("-t")
                    .arg(self.ctl())
                    .args(args),
                WAIT,
            ),
            &format!("{}: ovs-appctl {args:?}", self.name),
        )
    }

    pub fn controller_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("log/ovn-controller.log")).unwrap_or_default()
    }

    pub fn switch_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("log/switch.log")).unwrap_or_default()
    }

    /// Lines of ovn-controller's log at warning level or worse, or mentioning an OpenFlow
    /// error, "unsupported" or "failed", except the ones stock OVN prints on any machine.
    pub fn controller_problems(&self) -> Vec<String> {
        self.controller_log()
            .lines()
            .filter(|l| {
                let lower = l.to_lowercase();
                (l.contains("|WARN|")
                    || l.contains("|ERR|")
                    || l.contains("|EMER|")
                    || lower.contains("unsupported")
                    || lower.contains("failed")
                    || lower.contains("ofpt_error"))
                    // no hardware representors here (stock OVN says the same)
                    && !l.contains("vif_plug_provider")
            })
            .map(str::to_string)
            .collect()
    }

    fn start_switch(&mut self) {
        let d = self.dir.path();
        let run = self.rundir();
        let mut cmd = match self.kind {
            SwitchKind::Xvs => {
                let mut c = self
                    .ns
                    .cmd(crate::bin("xvswitchd").to_str().expect("utf-8"));
                c.arg("--ovsdb")
                    .arg(&self.db_remote)
                    .arg("--rundir")
                    .arg(&run)
                    .args(["--pmd-idle", "sleep"])
                    .arg("--log-file")
                    .arg(d.join("log/switch.log"));
                c
            }
            SwitchKind::Ovs => {
                let mut c = self.ns.cmd("ovs-vswitchd");
                c.arg(&self.db_remote)
                    .args(["--no-chdir", "-vconsole:off", "-vsyslog:off"])
                    .arg(format!("--log-file={}", d.join("log/switch.log").display()))
                    .arg(format!(
                        "--unixctl={}",
                        run.join("ovs-vswitchd.ctl").display()
                    ))
                    .arg(format!(
                        "--pidfile={}",
                        run.join("ovs-vswitchd.pid").display()
                    ));
                c
            }
        };
        cmd.env("OVS_RUNDIR", &run)
            .env("OVS_LOGDIR", d.join("log"))
            .env("OVS_DBDIR", d)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        self.switch = Some(ChildGuard::spawn(&mut cmd, "switch daemon"));
        let ctl = self.ctl();
        wait_for("the switch's control socket", WAIT, || {
            let o = run_timeout(
                Command::new("ovs-appctl")
                    .arg("-t")
                    .arg(&ctl)
                    .arg("version"),
                WAIT,
            );
            if o.status.success() {
                Ok(())
            } else {
                Err(self.switch_log())
            }
        });
    }

    fn start_controller(&mut self) {
        let d = self.dir.path();
        let mut cmd = self.ns.cmd("ovn-controller");
        cmd.arg(&self.db_remote)
            .args(["--no-chdir", "-vconsole:off", "-vsyslog:off"])
            .arg(format!(
                "--log-file={}",
                d.join("log/ovn-controller.log").display()
            ))
            .arg(format!(
                "--pidfile={}",
                d.join("ovnrun/ovn-controller.pid").display()
            ))
            .env("OVS_RUNDIR", self.rundir())
            .env("OVN_RUNDIR", d.join("ovnrun"))
            .env("OVN_LOGDIR", d.join("log"))
            .env("OVN_DBDIR", d)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        self.controller = Some(ChildGuard::spawn(&mut cmd, "ovn-controller"));
    }

    /// Stops and restarts the switch daemon (ovn-controller keeps running).
    pub fn restart_switch(&mut self) {
        self.switch = None;
        self.start_switch();
    }

    /// Stops and restarts ovn-controller.
    pub fn restart_controller(&mut self) {
        self.controller = None;
        self.start_controller();
    }

    /// Adds a VM-like port bound to logical port `iface_id`, at `mac`/`ip` (/24), and waits
    /// until ovn-controller marks it installed (`external_ids:ovn-installed=true`), when the
    /// logical port exists.
    pub fn add_vif(&self, iface_id: &str, mac: Mac, ip: Ipv4Addr) -> Vif {
        let ns = Netns::new("v");
        let base = unique("");
        let ifname = format!("{base}i");
        let port = format!("{base}o");
        let veth = Veth::new(&ifname, &ns, &port, &self.ns);
        ns.ip(&format!(
            "link set {ifname} address {} mtu 1400",
            mac_str(&mac)
        ));
        ns.ip(&format!("addr add {ip}/24 dev {ifname}"));
        ns.ip(&format!("link set {ifname} up"));
        // stock OVS forwards partial checksums unfixed; xvswitchd completes them. Off for both,
        // so the comparison is like for like.
        let _ = ns.try_run(&format!("ethtool -K {ifname} tx off"));
        self.ns.ip(&format!("link set {port} mtu 1400 up"));
        self.vsctl(&[
            "add-port",
            "br-int",
            &port,
            "--",
            "set",
            "interface",
            &port,
            &format!("external_ids:iface-id={iface_id}"),
        ]);
        Vif {
            _veth: veth,
            ns,
            ifname,
            port,
            mac,
            ip,
            iface_id: iface_id.to_string(),
        }
    }

    /// Waits until ovn-controller has installed `vif`'s flows.
    pub fn wait_installed(&self, vif: &Vif) {
        wait_for(
            &format!("{}: ovn-installed on {}", self.name, vif.port),
            WAIT,
            || {
                let ids = self.vsctl(&["--no-wait", "get", "interface", &vif.port, "external_ids"]);
                if ids.contains("ovn-installed=\"true\"") {
                    Ok(())
                } else {
                    Err(ids)
                }
            },
        );
    }

    /// Number of flows on br-int.
    pub fn flow_count(&self) -> usize {
        self.ofctl("dump-flows", &["--no-stats"])
            .lines()
            .filter(|l| l.contains("priority="))
            .count()
    }
}

/// The central, the chassis and their underlay.
pub struct OvnLab {
    pub chassis: Vec<Chassis>,
    _underlay: Vec<Veth>,
    pub underlay_ns: Netns,
    pub central: Central,
}

impl OvnLab {
    /// Starts the central and `n` chassis (`ch1`, `ch2`, ...) running `kind`, each with br-phy
    /// on the underlay and ovn-controller's br-int created.
    pub fn start(n: usize, kind: SwitchKind) -> OvnLab {
        let central = Central::start();
        let underlay_ns = Netns::new("u");
        underlay_ns.ip("link add ub type bridge");
        underlay_ns.ip("link set ub up");
        let mut chassis = Vec::new();
        let mut underlay = Vec::new();
        for i in 0..n {
            let name = format!("ch{}", i + 1);
            let ns = Netns::new("c");
            let dir = TempDir::new();
            for sub in ["run", "log", "ovnrun"] {
                std::fs::create_dir_all(dir.path().join(sub)).expect("mkdir");
            }
            let (db, db_remote) = ovsdb_server(dir.path(), "conf", VS_SCHEMA);
            let base = unique("");
            let (u, peer) = (format!("{base}u"), format!("{base}b"));
            underlay.push(Veth::new(&u, &ns, &peer, &underlay_ns));
            underlay_ns.ip(&format!("link set {peer} master ub up"));
            ns.ip(&format!("link set {u} mtu 1600 arp off up"));
            let encap_ip = Ipv4Addr::new(192, 168, 50, i as u8 + 1);
            let mut c = Chassis {
                controller: None,
                switch: None,
                _db: db,
                ns,
                dir,
                name: name.clone(),
                kind,
                encap_ip,
                underlay: u.clone(),
                db_remote,
            };
            wait_for("the chassis database", WAIT, || {
                let o = run_timeout(
                    Command::new("ovs-vsctl")
                        .arg(format!("--db={}", c.db_remote))
                        .args(["--no-wait", "init"]),
                    WAIT,
                );
                if o.status.success() {
                    Ok(())
                } else {
                    Err(String::from_utf8_lossy(&o.stderr).into_owned())
                }
            });
            c.vsctl(&[
                "--no-wait",
                "set",
                "Open_vSwitch",
                ".",
                &format!("external_ids:system-id={name}"),
                &format!("external_ids:hostname={name}"),
                &format!("external_ids:ovn-remote={}", central.sb),
                "external_ids:ovn-encap-type=geneve",
                &format!("external_ids:ovn-encap-ip={encap_ip}"),
                "external_ids:ovn-bridge=br-int",
                "external_ids:ovn-bridge-datapath-type=netdev",
            ]);
            c.start_switch();
            c.vsctl(&[
                "--may-exist",
                "add-br",
                "br-phy",
                "--",
                "set",
                "bridge",
                "br-phy",
                "datapath_type=netdev",
                "--",
                "--may-exist",
                "add-port",
                "br-phy",
                &u,
            ]);
            wait_for("br-phy's internal interface", WAIT, || {
                c.ns.try_run("ip link show br-phy")
            });
            c.ns.ip("link set br-phy up");
            c.ns.ip(&format!("addr replace {encap_ip}/24 dev br-phy"));
            c.start_controller();
            wait_for(
                &format!("{name}: ovn-controller to create br-int"),
                WAIT,
                || {
                    c.ns.try_run("true")?;
                    let o = run_timeout(
                        Command::new("ovs-vsctl")
                            .arg(format!("--db={}", c.db_remote))
                            .args(["br-exists", "br-int"]),
                        WAIT,
                    );
                    if o.status.success() {
                        Ok(())
                    } else {
                        Err(c.controller_log())
                    }
                },
            );
            chassis.push(c);
        }
        OvnLab {
            chassis,
            _underlay: underlay,
            underlay_ns,
            central,
        }
    }

    /// `ovn-nbctl --wait=hv sync`: every chassis has caught up with the NB database.
    pub fn sync(&self) {
        self.central.nbctl(&["--wait=hv", "sync"]);
    }

    /// Prints the logs of every component (for failing tests).
    pub fn dump_logs(&self) {
        for c in &self.chassis {
            eprintln!(
                "----- {} switch log -----\n{}\n----- {} ovn-controller log -----\n{}",
                c.name,
                c.switch_log(),
                c.name,
                c.controller_log()
            );
        }
    }
}

impl Drop for OvnLab {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.dump_logs();
        }
    }
}
