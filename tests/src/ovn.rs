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

/// Stops `old` (the server of database `name` in `dir`) and serves the same file again.
fn ovsdb_restart(
    dir: &std::path::Path,
    name: &str,
    old: Option<ChildGuard>,
) -> (ChildGuard, String) {
    drop(old);
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
            .arg(dir.join(format!("{name}.db")))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null()),
        &format!("ovsdb-server {name}"),
    );
    let remote = format!("unix:{}", sock.display());
    wait_for("the restarted database", WAIT, || {
        let o = run_timeout(
            Command::new("ovs-vsctl")
                .arg(format!("--db={remote}"))
                .args(["--no-wait", "show"]),
            WAIT,
        );
        if o.status.success() {
            Ok(())
        } else {
            Err(String::from_utf8_lossy(&o.stderr).into_owned())
        }
    });
    (g, remote)
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
    controller: std::cell::RefCell<Option<ChildGuard>>,
    /// How many times ovn-controller died on its own and was restarted (see
    /// [`Chassis::revive_controller`]).
    pub controller_crashes: std::cell::Cell<u32>,
    switch: Option<ChildGuard>,
    db: Option<ChildGuard>,
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
                    // the tests' own SIGTERM when they restart it, and the start-up crashes
                    // counted in `controller_crashes` (see `revive_controller`)
                    && !l.contains("|fatal_signal")
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
                    .arg(format!("--unixctl={}", run.join("xvswitchd.ctl").display()))
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

    fn start_controller(&self) {
        let d = self.dir.path();
        let mut cmd = self.ns.cmd("ovn-controller");
        cmd.arg(&self.db_remote)
            .args(["--no-chdir", "-vconsole:off", "-vsyslog:off"])
            .args(
                std::env::var("XVS_OVN_CONTROLLER_ARGS")
                    .ok()
                    .iter()
                    .flat_map(|v| v.split_whitespace().map(str::to_string).collect::<Vec<_>>()),
            )
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
            .env("OVN_SYSCONFDIR", d.join("etc"))
            .env("OVS_SYSCONFDIR", d.join("etc"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        *self.controller.borrow_mut() = Some(ChildGuard::spawn(&mut cmd, "ovn-controller"));
    }

    /// Restarts ovn-controller if it died on its own, as `ovn-ctl`'s `--monitor` or systemd
    /// would on a node. ovn-controller 23.03 sometimes dies of SIGSEGV in its first engine
    /// run on this machine, with stock ovs-vswitchd as with xvswitchd (a core dump shows the
    /// main thread in ovn-controller's own code); the crash count is reported, not hidden.
    pub fn revive_controller(&self) {
        let dead = match self.controller.borrow_mut().as_mut() {
            Some(g) => matches!(g.child.try_wait(), Ok(Some(_))),
            None => false,
        };
        if dead {
            self.controller_crashes
                .set(self.controller_crashes.get() + 1);
            eprintln!(
                "{}: ovn-controller died on its own (crash {}); restarting it",
                self.name,
                self.controller_crashes.get()
            );
            self.start_controller();
        }
    }

    /// Stops and restarts the switch daemon (ovn-controller keeps running).
    pub fn restart_switch(&mut self) {
        self.switch = None;
        self.start_switch();
    }

    /// Stops and restarts ovn-controller.
    pub fn restart_controller(&mut self) {
        *self.controller.borrow_mut() = None;
        self.start_controller();
    }

    /// Stops ovn-controller (SIGTERM, as a crash or an upgrade would: it does not clean up).
    pub fn stop_controller(&mut self) {
        *self.controller.borrow_mut() = None;
    }

    /// Starts ovn-controller after [`stop_controller`](Self::stop_controller).
    pub fn start_controller_again(&mut self) {
        self.start_controller();
    }

    /// Stops the chassis' ovsdb-server and starts it again on the same database file.
    pub fn restart_db(&mut self) {
        let (g, _) = ovsdb_restart(self.dir.path(), "conf", self.db.take());
        self.db = Some(g);
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
                    self.revive_controller();
                    Err(format!(
                        "{ids}; ovn-controller crashes so far: {}",
                        self.controller_crashes.get()
                    ))
                }
            },
        );
    }

    /// The switch's connection tracking table, read with `ovs-appctl dpctl/dump-conntrack`.
    pub fn conntrack(&self) -> Vec<crate::stats::CtEntry> {
        crate::stats::parse_conntrack(&self.appctl(&["dpctl/dump-conntrack"]))
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
            for sub in ["run", "log", "ovnrun", "etc"] {
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
                controller: std::cell::RefCell::new(None),
                controller_crashes: std::cell::Cell::new(0),
                switch: None,
                db: Some(db),
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
            // br-int exists (with its management socket) before ovn-controller starts, as
            // CNIs set nodes up: when ovn-controller 23.03's first connection attempt fails
            // it may wait forever for its meter-features probe's reply (seen with stock
            // ovs-vswitchd and xvswitchd alike: nothing is claimed)
            c.vsctl(&[
                "--may-exist",
                "add-br",
                "br-int",
                "--",
                "set",
                "bridge",
                "br-int",
                "datapath_type=netdev",
                "fail_mode=secure",
                "other_config:disable-in-band=true",
            ]);
            let mgmt = c.rundir().join("br-int.mgmt");
            wait_for("br-int.mgmt", WAIT, || {
                if mgmt.exists() {
                    Ok(())
                } else {
                    Err(c.switch_log())
                }
            });
            // the Geneve option mapping OVN uses, already in place: ovn-controller 23.03 adds
            // it itself when missing, but may crash (SIGSEGV right after "OVN Geneve option
            // not found", with stock ovs-vswitchd as with xvswitchd) when its engine runs
            // before the switch acknowledged the mapping
            c.ofctl(
                "add-tlv-map",
                &["{class=0x0102,type=0x80,len=4}->tun_metadata0"],
            );
            c.start_controller();
            chassis.push(c);
        }
        // every chassis has its tunnels (with OpenFlow numbers) before ports are bound: a port
        // bound earlier makes ovn-controller warn "Failed to locate tunnel" until they appear
        for c in &chassis {
            wait_for(
                &format!("{}: tunnels to the other chassis", c.name),
                WAIT,
                || {
                    c.revive_controller();
                    let ports = c.vsctl(&["--no-wait", "list-ports", "br-int"]);
                    let tunnels: Vec<&str> =
                        ports.lines().filter(|p| p.starts_with("ovn-")).collect();
                    let numbered = tunnels.iter().all(|t| {
                        c.vsctl(&["--no-wait", "get", "interface", t, "ofport"])
                            .parse::<i64>()
                            .is_ok_and(|o| o > 0)
                    });
                    if tunnels.len() + 1 >= n && numbered {
                        Ok(())
                    } else {
                        Err(ports)
                    }
                },
            );
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
        for c in &self.chassis {
            c.revive_controller();
        }
        self.central.nbctl(&["--wait=hv", "sync"]);
    }

    /// Panics unless every chassis is clean: ovn-controller logged no warning, error,
    /// "unsupported" or "failed" line ([`Chassis::controller_problems`]) and xvswitchd sent no
    /// OpenFlow error (its `ofproto_errors_sent` coverage counter).
    pub fn assert_clean(&self) {
        for c in &self.chassis {
            let problems = c.controller_problems();
            assert!(
                problems.is_empty(),
                "{}: ovn-controller complained:\n{}",
                c.name,
                problems.join("\n")
            );
            if c.kind == SwitchKind::Xvs {
                let cov = c.appctl(&["coverage/show"]);
                assert!(
                    !cov.contains("ofproto_errors_sent"),
                    "{}: the switch sent OpenFlow errors:\n{cov}",
                    c.name
                );
            }
        }
    }

    /// Prints the logs of every component (for failing tests).
    pub fn dump_logs(&self) {
        let d = self.central.dir();
        eprintln!(
            "----- ovn-northd log -----\n{}",
            std::fs::read_to_string(d.join("northd.log")).unwrap_or_default()
        );
        if let Ok(o) = Command::new("ovn-sbctl")
            .arg(format!("--db={}", self.central.sb))
            .args(["--timeout=5", "show"])
            .output()
        {
            eprintln!(
                "----- ovn-sbctl show -----\n{}",
                String::from_utf8_lossy(&o.stdout)
            );
        }
        for c in &self.chassis {
            // where packets died: xvswitchd's drop counters (drop_recirc_lost,
            // drop_resubmit_limit, ...) and the datapath flows that sent them there
            for cmd in ["coverage/show", "dpctl/dump-flows"] {
                if let Ok(o) = Command::new("ovs-appctl")
                    .arg("-t")
                    .arg(c.ctl())
                    .arg("--timeout=5")
                    .arg(cmd)
                    .output()
                {
                    eprintln!(
                        "----- {} {cmd} -----\n{}",
                        c.name,
                        String::from_utf8_lossy(&o.stdout)
                    );
                }
            }
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
