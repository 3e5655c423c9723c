//! Configuration, from the command line or a TOML file. Two modes:
//!
//! * **standalone**: bridges and ports from flags or the file, the embedded default
//!   configuration (a MAC-learning bridge):
//!   ```text
//!   xvswitchd --rundir DIR --bridge br0 --port IF1 --port IF2[,xdp-mode=generic] \
//!             [--pmd-cpus 1,2] [--pmd-idle busy|sleep] [--batch 32] [--config FILE]
//!   ```
//! * **drop-in** for ovs-vswitchd: the configuration comes from an OVSDB server
//!   ([`Config::ovsdb`]), invoked as init scripts and `ovs-ctl` invoke ovs-vswitchd:
//!   ```text
//!   xvswitchd [unix:DBSOCK] [--pidfile[=F]] [--detach] [--no-chdir] [--log-file[=F]]
//!             [--unixctl=SOCK] [-vMODULE:DEST:LEVEL ...] [--mlockall]
//!   ```
//!   with OVS's defaults from `OVS_RUNDIR` and `OVS_LOGDIR`. ovs-vswitchd options xvswitchd
//!   does not implement are accepted with a warning ([`Config::warnings`]).
//!
//! Ports get OpenFlow port numbers 1, 2, ... in the order given (per bridge). The TOML form:
//! ```toml
//! rundir = "/var/run/xvswitch"
//! [pmd]
//! cpus = [1]
//! idle = "sleep"
//! [[bridge]]
//! name = "br0"
//! ports = ["veth0", { name = "tap0", xdp_mode = "generic" }]
//! ```

use std::path::PathBuf;

use serde::Deserialize;

/// How a PMD waits when its queues are empty.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum IdlePolicy {
    /// Spin: lowest latency, one core at 100 % (production).
    #[default]
    Busy,
    /// Spin briefly, then nap for microseconds with back-off, then block in poll() on the
    /// sockets: for tests and small machines.
    Sleep,
}

impl std::str::FromStr for IdlePolicy {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "busy" => Ok(IdlePolicy::Busy),
            "sleep" => Ok(IdlePolicy::Sleep),
            _ => Err(format!("--pmd-idle must be busy or sleep, not {s:?}")),
        }
    }
}

/// OVS's `options:xdp-mode` values.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum XdpMode {
    /// Native with zero-copy if possible, else native copy, else generic.
    #[default]
    BestEffort,
    NativeWithZerocopy,
    Native,
    Generic,
}

impl std::str::FromStr for XdpMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "best-effort" => Ok(XdpMode::BestEffort),
            "native-with-zerocopy" => Ok(XdpMode::NativeWithZerocopy),
            "native" | "drv" => Ok(XdpMode::Native),
            "generic" | "skb" => Ok(XdpMode::Generic),
            _ => Err(format!(
                "xdp-mode must be best-effort, native-with-zerocopy, native or generic, not {s:?}"
            )),
        }
    }
}

impl std::fmt::Display for XdpMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            XdpMode::BestEffort => "best-effort",
            XdpMode::NativeWithZerocopy => "native-with-zerocopy",
            XdpMode::Native => "native",
            XdpMode::Generic => "generic",
        })
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct PortConfig {
    pub name: String,
    pub xdp_mode: XdpMode,
    /// Complete partial TCP/UDP checksums on receive; default: on for virtual devices.
    pub csum_complete: Option<bool>,
    /// A tunnel vport (`type=geneve,remote_ip=...`): no interface, no socket.
    pub tunnel: Option<(crate::port::TunnelKind, crate::port::TunnelConfig)>,
    /// A patch port (`type=patch,peer=IFACE`): no interface, no socket; output to it continues
    /// in the peer's bridge.
    pub patch: Option<String>,
}

/// What a bridge does without a controller (OVS's fail_mode).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum FailMode {
    /// Starts with `priority=0 actions=NORMAL`: a learning switch until a controller decides
    /// otherwise.
    #[default]
    Standalone,
    /// Starts empty: forwards nothing until a controller installs flows, and keeps them when
    /// the controller disconnects.
    Secure,
}

impl std::str::FromStr for FailMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "standalone" => Ok(FailMode::Standalone),
            "secure" => Ok(FailMode::Secure),
            _ => Err(format!("fail mode must be standalone or secure, not {s:?}")),
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct BridgeConfig {
    pub name: String,
    pub ports: Vec<PortConfig>,
    /// Seconds before an idle MAC entry is forgotten (OVS default 300).
    pub mac_aging: u32,
    pub fail_mode: FailMode,
    /// Passive OpenFlow listeners besides RUNDIR/BRIDGE.mgmt: `ptcp:PORT[:IP]`.
    pub listen: Vec<String>,
    /// Active controller connections: `tcp:IP:PORT`.
    pub controllers: Vec<String>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Config {
    pub rundir: PathBuf,
    pub bridges: Vec<BridgeConfig>,
    pub pmd_cpus: Vec<usize>,
    pub pmd_idle: IdlePolicy,
    /// Exact-match cache in front of each PMD's megaflow cache (`--emc on|off`).
    pub emc: bool,
    pub batch: u32,
    pub ring_size: u32,
    pub frame_size: u32,
    pub log_file: Option<PathBuf>,
    pub log_level: String,
    pub pidfile: Option<PathBuf>,
    /// Give every bridge its LOCAL port: an interface named like the bridge, as OVS does (see
    /// `port::local`). Off with `--no-local-port`, for setups where that name is taken.
    pub local_port: bool,
    /// The OVSDB remote the configuration comes from (`unix:PATH`, `tcp:IP:PORT`, `ssl:...`):
    /// set in drop-in mode, `None` in standalone mode.
    pub ovsdb: Option<String>,
    /// The control socket; `None`: the mode's default (see [`Config::ctl_path`]).
    pub unixctl: Option<PathBuf>,
    /// `--detach`: run in the background once started (see `process::detach`).
    pub detach: bool,
    /// `--no-chdir`: a detached daemon stays in the current directory instead of `/`.
    pub no_chdir: bool,
    /// `--overwrite-pidfile`: start even if the pid file names a running daemon.
    pub overwrite_pidfile: bool,
    /// `--mlockall`: lock the daemon's memory.
    pub mlockall: bool,
    /// `-v SPEC`/`--verbose=SPEC` settings, in order (see `vlog`).
    pub vlog: Vec<crate::vlog::Spec>,
    /// Accepted options that do nothing here, to be logged once logging is up.
    pub warnings: Vec<String>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            rundir: PathBuf::from("/var/run/xvswitch"),
            bridges: Vec::new(),
            pmd_cpus: Vec::new(),
            pmd_idle: IdlePolicy::Busy,
            emc: true,
            batch: 32,
            ring_size: 2048,
            frame_size: 4096,
            log_file: None,
            log_level: "info".to_string(),
            pidfile: None,
            local_port: true,
            ovsdb: None,
            unixctl: None,
            detach: false,
            no_chdir: false,
            overwrite_pidfile: false,
            mlockall: false,
            vlog: Vec::new(),
            warnings: Vec::new(),
        }
    }
}

/// OVS's run directory when `OVS_RUNDIR` is not set (the Debian/Ubuntu packages' RUNDIR).
pub const OVS_RUNDIR_DEFAULT: &str = "/var/run/openvswitch";
/// OVS's log directory when `OVS_LOGDIR` is not set.
pub const OVS_LOGDIR_DEFAULT: &str = "/var/log/openvswitch";

/// Where ovs-vswitchd's files go, from the environment as OVS reads it (lib/dirs.c).
struct OvsDirs {
    rundir: PathBuf,
    logdir: PathBuf,
}

impl OvsDirs {
    fn from_env(env: &dyn Fn(&str) -> Option<String>) -> OvsDirs {
        let dir = |var: &str, default: &str| {
            PathBuf::from(
                env(var)
                    .filter(|v| !v.is_empty())
                    .unwrap_or_else(|| default.to_string()),
            )
        };
        OvsDirs {
            rundir: dir("OVS_RUNDIR", OVS_RUNDIR_DEFAULT),
            logdir: dir("OVS_LOGDIR", OVS_LOGDIR_DEFAULT),
        }
    }
}

/// Whether a command-line argument is a database remote rather than an option's value.
fn is_remote(s: &str) -> bool {
    ["unix:", "tcp:", "ssl:"].iter().any(|p| s.starts_with(p))
}

/// ovs-vswitchd options xvswitchd accepts without acting on them: (name, takes a value).
/// `--dpdk` and `--enable-dummy` take an optional `=VALUE` only.
const OVS_IGNORED: &[(&str, bool)] = &[
    ("--monitor", false),
    ("--no-self-confinement", false),
    ("--disable-system", false),
    ("--disable-system-route", false),
    ("--hw-rawio-access", false),
    ("--dpdk", false),
    ("--enable-dummy", false),
    ("--user", true),
    ("--syslog-method", true),
    ("--syslog-target", true),
    ("--private-key", true),
    ("--certificate", true),
    ("--ca-cert", true),
    ("--peer-ca-cert", true),
    ("--bootstrap-ca-cert", true),
    ("--ssl-protocols", true),
    ("--ssl-ciphers", true),
    ("--ssl-ciphersuites", true),
    ("--ssl-server-name", true),
    ("--dummy-numa", true),
];

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ConfigError {
    #[error("{0}")]
    Usage(String),
    #[error("{file}:{line}: {msg}")]
    File {
        file: String,
        line: usize,
        msg: String,
    },
    #[error("cannot read {file}: {msg}")]
    Read { file: String, msg: String },
}

pub const USAGE: &str = "\
usage: xvswitchd --rundir DIR --bridge BR --port IF[,OPT=VAL...] [--port ...] [OPTIONS]
       xvswitchd --config FILE [OPTIONS]
       xvswitchd [DATABASE] [OPTIONS]

Standalone mode (--bridge or --config): a switch with an embedded default configuration, a
MAC-learning bridge (OVS's NORMAL) over AF_XDP ports. Ports get OpenFlow numbers 1, 2, ... in
the order given.

Drop-in mode (neither): a replacement for ovs-vswitchd, taking its configuration from the
OVSDB server at DATABASE (unix:PATH, tcp:IP:PORT or ssl:...; default unix:$OVS_RUNDIR/db.sock),
invoked the way init scripts and ovs-ctl invoke ovs-vswitchd. Reading the database is not
implemented yet: the daemon starts with no bridges and says so in its log.

Standalone options:
  --rundir DIR          BRIDGE.mgmt sockets and the control socket DIR/xvswitchd.ctl (default
                        /var/run/xvswitch; in drop-in mode $OVS_RUNDIR)
  --bridge NAME         start a bridge; following --port options belong to it
  --port IF[,OPTS]      add interface IF; OPTS: xdp-mode=best-effort|native-with-zerocopy|
                        native|generic, csum-complete=true|false
  --pmd-cpus LIST       one poll-mode thread pinned per listed core, e.g. 1 or 0,1 or 2-3
                        (default: one unpinned thread)
  --pmd-idle busy|sleep busy-poll (default) or sleep when idle (tests, small machines)
  --emc on|off          exact-match cache in front of the megaflow cache (default on)
  --batch N             packets per RX/TX burst (default 32, max 256)
  --ring-size N         AF_XDP ring size per queue (default 2048)
  --frame-size N        UMEM frame size, 2048 or 4096 (default 4096; frames up to N-256 bytes)
  --mac-aging SECS      MAC aging time of the following bridges (default 300)
  --fail-mode MODE      standalone (default: start with priority=0 actions=NORMAL) or secure
                        (start empty, forward nothing until a controller adds flows)
  --listen ptcp:PORT[:IP]  also accept OpenFlow connections on TCP (for the last --bridge);
                        RUNDIR/BRIDGE.mgmt is always there
  --controller tcp:IP:PORT connect to a controller (for the last --bridge)
  --no-local-port       no LOCAL port: by default each bridge gets an interface named like
                        the bridge (OpenFlow port LOCAL), as in Open vSwitch
  --config FILE         read a TOML configuration (flags given after it override it)

Daemon options (both modes, spelled as for ovs-vswitchd):
  --ovsdb DATABASE      the database (same as the DATABASE argument)
  --unixctl SOCKET      control socket (default: standalone RUNDIR/xvswitchd.ctl, drop-in
                        $OVS_RUNDIR/ovs-vswitchd.PID.ctl, which ovs-appctl -t ovs-vswitchd
                        finds through the pid file); relative to $OVS_RUNDIR
  --pidfile[=FILE]      write the pid once ready, remove it at exit (default
                        $OVS_RUNDIR/ovs-vswitchd.pid; relative to $OVS_RUNDIR); refuse to start
                        while it names a running daemon
  --overwrite-pidfile   start even so
  --detach              run in the background; the command returns once the switch is ready
                        (exit 0) or failed (its error on stderr, exit 1)
  --no-chdir            a detached daemon stays in the current directory (default: /)
  --log-file[=FILE]     log there (default $OVS_LOGDIR/ovs-vswitchd.log) instead of stderr
  -v[SPEC], --verbose[=SPEC]  log levels as for OVS: SPEC is [MODULE][:DEST][:LEVEL], DEST
                        console (stderr), file or syslog (accepted, not written), LEVEL emer,
                        err, warn, info, dbg or off; -vconsole:LEVEL keeps stderr with a log
                        file. Without SPEC: debug everywhere; -vv trace. vlog/set changes levels
                        at run time. XVS_LOG (tracing filter syntax) overrides all of it
  --mlockall            lock all memory (a warning if not permitted)
  -h, --help            this text
  -V, --version         version

Accepted with a warning and otherwise ignored, for ovs-vswitchd command lines: --monitor,
--user, --no-self-confinement, --disable-system, --disable-system-route, --hw-rawio-access,
--dpdk, --enable-dummy, --dummy-numa, --syslog-method, --syslog-target, the SSL options
(--private-key, --certificate, --ca-cert, --peer-ca-cert, --bootstrap-ca-cert, --ssl-*).
Environment: OVS_RUNDIR (default /var/run/openvswitch), OVS_LOGDIR (default
/var/log/openvswitch); OVS_DBDIR and OVS_SYSCONFDIR are not used by the switch daemon.
";

/// Parses a CPU list such as `1`, `0,1`, `2-5,7`.
pub fn parse_cpu_list(s: &str) -> Result<Vec<usize>, String> {
    let mut v = Vec::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        if let Some((a, b)) = part.split_once('-') {
            let a: usize = a.parse().map_err(|_| format!("bad CPU list {s:?}"))?;
            let b: usize = b.parse().map_err(|_| format!("bad CPU list {s:?}"))?;
            if a > b || b - a > 4096 {
                return Err(format!("bad CPU range {part:?}"));
            }
            v.extend(a..=b);
        } else {
            v.push(part.parse().map_err(|_| format!("bad CPU list {s:?}"))?);
        }
    }
    if v.is_empty() {
        return Err(format!("empty CPU list {s:?}"));
    }
    let mut seen = std::collections::BTreeSet::new();
    for c in &v {
        if !seen.insert(*c) {
            return Err(format!("CPU {c} listed twice in {s:?}"));
        }
    }
    Ok(v)
}

pub fn parse_port(spec: &str) -> Result<PortConfig, String> {
    let mut parts = spec.split(',');
    let name = parts.next().unwrap_or("").trim().to_string();
    validate_ifname(&name)?;
    let mut p = PortConfig {
        name,
        xdp_mode: XdpMode::default(),
        csum_complete: None,
        tunnel: None,
        patch: None,
    };
    let mut patch: Option<Option<String>> = None;
    let mut tunnel: Option<(crate::port::TunnelKind, std::collections::BTreeMap<_, _>)> = None;
    for opt in parts {
        let (k, v) = opt
            .split_once('=')
            .ok_or_else(|| format!("port option {opt:?} is not KEY=VALUE"))?;
        if let Some((_, m)) = tunnel.as_mut() {
            m.insert(k.trim().to_string(), v.trim().to_string());
            continue;
        }
        if let Some(peer) = patch.as_mut() {
            match k.trim() {
                "peer" => *peer = Some(v.trim().to_string()),
                other => {
                    return Err(format!(
                        "{spec:?}: patch type takes only a 'peer' argument, not {other:?}"
                    ))
                }
            }
            continue;
        }
        match k.trim() {
            "type" if v.trim() == "patch" => patch = Some(None),
            "type" => match crate::port::TunnelKind::from_type(v.trim()) {
                Some(kind) => tunnel = Some((kind, Default::default())),
                None => {
                    return Err(format!(
                        "port type {v:?} is not supported (geneve and patch are)"
                    ))
                }
            },
            "xdp-mode" => p.xdp_mode = v.trim().parse()?,
            "csum-complete" => p.csum_complete = Some(parse_bool(v.trim())?),
            other => return Err(format!("unknown port option {other:?} in {spec:?}")),
        }
    }
    if let Some((kind, m)) = tunnel {
        let c =
            crate::port::TunnelConfig::from_options(&m).map_err(|e| format!("{spec:?}: {e}"))?;
        p.tunnel = Some((kind, c));
    }
    if let Some(peer) = patch {
        p.patch = Some(check_patch_peer(&p.name, peer.as_deref())?);
    }
    Ok(p)
}

/// A patch port's peer, checked as OVS checks it (netdev-vport's set_patch_config): present,
/// a valid interface name, not the port itself. The error is the Interface.error text.
pub fn check_patch_peer(name: &str, peer: Option<&str>) -> Result<String, String> {
    let peer = match peer {
        Some(p) if !p.is_empty() => p,
        _ => return Err(format!("{name}: patch type requires valid 'peer' argument")),
    };
    if peer == name {
        return Err(format!("{name}: patch peer must not be self"));
    }
    validate_vport_name(peer).map_err(|e| format!("{name}: patch peer: {e}"))?;
    Ok(peer.to_string())
}

/// A port that is no kernel interface (patch, tunnel) may have a longer name than IFNAMSIZ
/// allows: ovn-controller names its patch ports `patch-br-int-to-<localnet port>`.
fn validate_vport_name(n: &str) -> Result<(), String> {
    if n.is_empty() || n.len() > 255 || n.contains('/') || n.contains(char::is_whitespace) {
        return Err(format!("{n:?} is not a valid port name"));
    }
    Ok(())
}

fn parse_bool(s: &str) -> Result<bool, String> {
    match s {
        "true" | "on" | "yes" => Ok(true),
        "false" | "off" | "no" => Ok(false),
        _ => Err(format!("expected true or false, not {s:?}")),
    }
}

fn validate_ifname(n: &str) -> Result<(), String> {
    if n.is_empty() || n.len() > 15 || n.contains('/') || n.contains(char::is_whitespace) {
        return Err(format!("{n:?} is not a valid interface name"));
    }
    Ok(())
}

/// A bridge name names its LOCAL port interface and its `BRIDGE.mgmt` socket, so it must be a
/// valid interface name: 1 to 15 bytes (IFNAMSIZ - 1), no '/' or whitespace.
fn validate_bridge_name(n: &str) -> Result<(), String> {
    if n.is_empty() || n.len() > 15 {
        return Err(format!(
            "bridge name {n:?} must have 1 to 15 bytes (IFNAMSIZ - 1): it names the bridge's \
             LOCAL port interface"
        ));
    }
    validate_ifname(n).map_err(|_| format!("bridge name {n:?} is not a valid interface name"))
}

impl Config {
    /// Parses the command line (without argv[0]), with `OVS_RUNDIR`/`OVS_LOGDIR` from the
    /// process environment.
    pub fn from_args(args: &[String]) -> Result<Config, ConfigError> {
        Config::from_args_env(args, &|k| std::env::var(k).ok())
    }

    /// [`from_args`](Self::from_args) with the environment looked up through `env`.
    pub fn from_args_env(
        args: &[String],
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Config, ConfigError> {
        let dirs = OvsDirs::from_env(env);
        let mut cfg = Config::default();
        let mut it = args.iter().peekable();
        let mut aging = 300u32;
        let mut fail_mode = FailMode::Standalone;
        let usage = |m: String| ConfigError::Usage(m);
        // daemon options apply after the loop, so a later --config file does not undo them
        let mut rundir: Option<PathBuf> = None;
        let mut remote: Option<String> = None;
        let mut pidfile: Option<PathBuf> = None;
        let mut log_file: Option<PathBuf> = None;
        let mut log_level: Option<&str> = None;
        let mut had_config = false;
        let mut set_remote = |r: String| -> Result<(), ConfigError> {
            if !is_remote(&r) {
                return Err(ConfigError::Usage(format!(
                    "{r:?} is not a database remote (unix:PATH, tcp:IP:PORT or ssl:IP:PORT)"
                )));
            }
            if remote.replace(r).is_some() {
                return Err(ConfigError::Usage(
                    "at most one database remote accepted".into(),
                ));
            }
            Ok(())
        };
        while let Some(a) = it.next() {
            // OVS's short options with an attached argument: -vSPEC, -pFILE, -cFILE, -CFILE
            if let Some(spec) = a.strip_prefix("-v").filter(|s| !s.is_empty() && *s != "v") {
                cfg.vlog.push(crate::vlog::parse_spec(spec).map_err(usage)?);
                continue;
            }
            if let Some(short) = ["-p", "-c", "-C"].iter().find(|s| a.starts_with(**s)) {
                if a.len() == 2 && it.next().is_none() {
                    return Err(usage(format!("{a} needs a value")));
                }
                cfg.warnings.push(format!(
                    "option {short} (SSL) is not implemented by xvswitchd; ignored"
                ));
                continue;
            }
            if !a.starts_with('-') {
                set_remote(a.clone())?;
                continue;
            }
            let (flag, inline) = match a.split_once('=') {
                Some((f, v)) if f.starts_with("--") => (f, Some(v.to_string())),
                _ => (a.as_str(), None),
            };
            // `--pidfile`, `--log-file`: OVS takes `=VALUE` or nothing; `--pidfile FILE` (a
            // separate word that is neither an option nor a remote) is xvswitchd's older form
            let mut optional = || -> Option<String> {
                inline.clone().or_else(|| {
                    it.next_if(|n| !n.starts_with('-') && !is_remote(n))
                        .cloned()
                })
            };
            if let Some((_, takes_value)) = OVS_IGNORED.iter().find(|(n, _)| *n == flag) {
                if *takes_value && inline.is_none() && it.next().is_none() {
                    return Err(usage(format!("{flag} needs a value")));
                }
                cfg.warnings.push(format!(
                    "option {flag} is not implemented by xvswitchd; ignored"
                ));
                continue;
            }
            match flag {
                "--pidfile" => {
                    let f = optional().unwrap_or_else(|| "ovs-vswitchd.pid".into());
                    pidfile = Some(dirs.rundir.join(f));
                    continue;
                }
                "--log-file" => {
                    log_file = Some(match optional() {
                        Some(f) => PathBuf::from(f),
                        None => dirs.logdir.join("ovs-vswitchd.log"),
                    });
                    continue;
                }
                "--verbose" => {
                    match &inline {
                        Some(spec) => cfg.vlog.push(crate::vlog::parse_spec(spec).map_err(usage)?),
                        None => log_level = Some("debug"),
                    }
                    continue;
                }
                _ => {}
            }
            let mut val = |name: &str| -> Result<String, ConfigError> {
                match &inline {
                    Some(v) => Ok(v.clone()),
                    None => it
                        .next()
                        .cloned()
                        .ok_or_else(|| ConfigError::Usage(format!("{name} needs a value"))),
                }
            };
            match flag {
                "--rundir" => rundir = Some(PathBuf::from(val(flag)?)),
                "--ovsdb" => set_remote(val(flag)?)?,
                "--unixctl" => cfg.unixctl = Some(dirs.rundir.join(val(flag)?)),
                "--detach" => cfg.detach = true,
                "--no-chdir" => cfg.no_chdir = true,
                "--overwrite-pidfile" => cfg.overwrite_pidfile = true,
                "--mlockall" => cfg.mlockall = true,
                "--bridge" => {
                    let name = val(flag)?;
                    validate_bridge_name(&name).map_err(usage)?;
                    if cfg.bridges.iter().any(|b| b.name == name) {
                        return Err(usage(format!("bridge {name} given twice")));
                    }
                    cfg.bridges.push(BridgeConfig {
                        name,
                        ports: Vec::new(),
                        mac_aging: aging,
                        fail_mode,
                        listen: Vec::new(),
                        controllers: Vec::new(),
                    });
                }
                "--port" => {
                    let spec = val(flag)?;
                    let p = parse_port(&spec).map_err(usage)?;
                    let Some(b) = cfg.bridges.last_mut() else {
                        return Err(usage(format!("--port {spec} comes before any --bridge")));
                    };
                    b.ports.push(p);
                }
                "--fail-mode" => {
                    fail_mode = val(flag)?.parse().map_err(usage)?;
                    for b in cfg.bridges.iter_mut() {
                        b.fail_mode = fail_mode;
                    }
                }
                "--listen" | "--controller" => {
                    let target = val(flag)?;
                    let ok = if flag == "--listen" {
                        target.starts_with("ptcp:")
                    } else {
                        target.starts_with("tcp:")
                    };
                    if !ok {
                        return Err(usage(format!(
                            "{flag} takes {}, not {target:?}",
                            if flag == "--listen" {
                                "ptcp:PORT[:IP]"
                            } else {
                                "tcp:IP:PORT"
                            }
                        )));
                    }
                    let Some(b) = cfg.bridges.last_mut() else {
                        return Err(usage(format!("{flag} comes before any --bridge")));
                    };
                    if flag == "--listen" {
                        b.listen.push(target);
                    } else {
                        b.controllers.push(target);
                    }
                }
                "--pmd-cpus" => cfg.pmd_cpus = parse_cpu_list(&val(flag)?).map_err(usage)?,
                "--pmd-idle" => cfg.pmd_idle = val(flag)?.parse().map_err(usage)?,
                "--emc" => {
                    cfg.emc = match val(flag)?.as_str() {
                        "on" => true,
                        "off" => false,
                        o => return Err(usage(format!("--emc must be on or off, not {o:?}"))),
                    }
                }
                "--batch" => cfg.batch = parse_num(flag, &val(flag)?, 1, 256)?,
                "--ring-size" => cfg.ring_size = parse_num(flag, &val(flag)?, 64, 16384)?,
                "--frame-size" => cfg.frame_size = parse_num(flag, &val(flag)?, 2048, 4096)?,
                "--mac-aging" => {
                    aging = parse_num(flag, &val(flag)?, 1, 1_000_000)?;
                    if let Some(b) = cfg.bridges.last_mut() {
                        if b.ports.is_empty() {
                            b.mac_aging = aging;
                        }
                    }
                }
                "--config" => {
                    let path = val(flag)?;
                    let text = std::fs::read_to_string(&path).map_err(|e| ConfigError::Read {
                        file: path.clone(),
                        msg: e.to_string(),
                    })?;
                    let file_cfg = Config::from_toml(&text, &path)?;
                    had_config = true;
                    // flags before --config are kept unless the file sets them
                    let keep_bridges = std::mem::take(&mut cfg.bridges);
                    cfg = Config {
                        bridges: if file_cfg.bridges.is_empty() {
                            keep_bridges
                        } else {
                            file_cfg.bridges.clone()
                        },
                        unixctl: cfg.unixctl.take(),
                        detach: cfg.detach,
                        no_chdir: cfg.no_chdir,
                        overwrite_pidfile: cfg.overwrite_pidfile,
                        mlockall: cfg.mlockall,
                        vlog: std::mem::take(&mut cfg.vlog),
                        warnings: std::mem::take(&mut cfg.warnings),
                        ..file_cfg
                    };
                }
                "--no-local-port" => cfg.local_port = false,
                "-v" => log_level = Some("debug"),
                "-vv" => log_level = Some("trace"),
                "-h" | "--help" => return Err(ConfigError::Usage(String::new())),
                other => return Err(usage(format!("unknown option {other:?} (see --help)"))),
            }
        }
        if let Some(l) = log_level {
            cfg.log_level = l.into();
        }
        if pidfile.is_some() {
            cfg.pidfile = pidfile;
        }
        if log_file.is_some() {
            cfg.log_file = log_file;
        }
        // drop-in mode: a database, given or OVS's default when nothing else configures the
        // switch
        let standalone = !cfg.bridges.is_empty() || had_config;
        match (remote, standalone) {
            (Some(r), true) => {
                return Err(usage(format!(
                    "database {r} given with --bridge or --config: in drop-in mode the \
                     database is the whole configuration"
                )))
            }
            (Some(r), false) => cfg.ovsdb = Some(r),
            (None, false) => {
                cfg.ovsdb = Some(format!("unix:{}", dirs.rundir.join("db.sock").display()))
            }
            (None, true) => {}
        }
        if let Some(r) = rundir {
            cfg.rundir = r;
        } else if cfg.ovsdb.is_some() {
            cfg.rundir = dirs.rundir.clone();
        }
        cfg.validate().map_err(usage)?;
        Ok(cfg)
    }

    /// The control socket: `--unixctl`, else `RUNDIR/ovs-vswitchd.PID.ctl` in drop-in mode
    /// (OVS's name, so `ovs-appctl -t ovs-vswitchd` finds it through the pid file; PID is the
    /// calling process's, so call it in the daemon, after `--detach`), else
    /// `RUNDIR/xvswitchd.ctl`.
    pub fn ctl_path(&self) -> PathBuf {
        match &self.unixctl {
            Some(p) => p.clone(),
            None if self.ovsdb.is_some() => self
                .rundir
                .join(format!("ovs-vswitchd.{}.ctl", std::process::id())),
            None => self.rundir.join("xvswitchd.ctl"),
        }
    }

    /// Parses a TOML configuration; errors name the file and line.
    pub fn from_toml(text: &str, file: &str) -> Result<Config, ConfigError> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct FileCfg {
            rundir: Option<PathBuf>,
            #[serde(default)]
            pmd: PmdCfg,
            #[serde(default)]
            bridge: Vec<BrCfg>,
            log_file: Option<PathBuf>,
            log_level: Option<String>,
            pidfile: Option<PathBuf>,
            local_port: Option<bool>,
        }
        #[derive(Deserialize, Default)]
        #[serde(deny_unknown_fields)]
        struct PmdCfg {
            #[serde(default)]
            cpus: Vec<usize>,
            idle: Option<IdlePolicy>,
            batch: Option<u32>,
            ring_size: Option<u32>,
            frame_size: Option<u32>,
        }
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct BrCfg {
            name: String,
            #[serde(default)]
            ports: Vec<PortEntry>,
            mac_aging: Option<u32>,
            #[serde(default)]
            fail_mode: FailMode,
            #[serde(default)]
            listen: Vec<String>,
            #[serde(default)]
            controllers: Vec<String>,
        }
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum PortEntry {
            Name(String),
            Full(PortFull),
        }
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct PortFull {
            name: String,
            #[serde(default)]
            xdp_mode: XdpMode,
            csum_complete: Option<bool>,
        }
        let line_of = |span: Option<std::ops::Range<usize>>| -> usize {
            span.map(|s| text[..s.start.min(text.len())].matches('\n').count() + 1)
                .unwrap_or(0)
        };
        let f: FileCfg = toml::from_str(text).map_err(|e| ConfigError::File {
            file: file.to_string(),
            line: line_of(e.span()),
            msg: e.message().to_string(),
        })?;
        let d = Config::default();
        let mut bridges = Vec::new();
        for b in f.bridge {
            let mut ports = Vec::new();
            for p in b.ports {
                let pc = match p {
                    PortEntry::Name(n) => PortConfig {
                        name: n,
                        xdp_mode: XdpMode::default(),
                        csum_complete: None,
                        tunnel: None,
                        patch: None,
                    },
                    PortEntry::Full(p) => PortConfig {
                        name: p.name,
                        xdp_mode: p.xdp_mode,
                        csum_complete: p.csum_complete,
                        tunnel: None,
                        patch: None,
                    },
                };
                ports.push(pc);
            }
            bridges.push(BridgeConfig {
                name: b.name,
                ports,
                mac_aging: b.mac_aging.unwrap_or(300),
                fail_mode: b.fail_mode,
                listen: b.listen,
                controllers: b.controllers,
            });
        }
        let cfg = Config {
            rundir: f.rundir.unwrap_or(d.rundir),
            bridges,
            pmd_cpus: f.pmd.cpus,
            pmd_idle: f.pmd.idle.unwrap_or_default(),
            emc: d.emc,
            batch: f.pmd.batch.unwrap_or(d.batch),
            ring_size: f.pmd.ring_size.unwrap_or(d.ring_size),
            frame_size: f.pmd.frame_size.unwrap_or(d.frame_size),
            log_file: f.log_file,
            log_level: f.log_level.unwrap_or(d.log_level),
            pidfile: f.pidfile,
            ovsdb: None,
            local_port: f.local_port.unwrap_or(d.local_port),
            ..Config::default()
        };
        // semantic errors: point at the line that names the offending value
        cfg.validate().map_err(|msg| {
            let needle = msg.split('"').nth(1).unwrap_or("");
            let quoted = format!("\"{needle}\"");
            let line = if needle.is_empty() {
                0
            } else {
                text.lines()
                    .position(|l| l.contains(&quoted))
                    .map(|i| i + 1)
                    .unwrap_or(0)
            };
            ConfigError::File {
                file: file.to_string(),
                line,
                msg,
            }
        })?;
        Ok(cfg)
    }

    fn validate(&self) -> Result<(), String> {
        if crate::vlog::Level::parse(&self.log_level).is_none() {
            return Err(format!(
                "log level \"{}\" must be one of off, emer, err, warn, info, dbg (debug), trace",
                self.log_level
            ));
        }
        let mut names = std::collections::BTreeSet::new();
        for b in &self.bridges {
            validate_bridge_name(&b.name)?;
            for p in &b.ports {
                if self.local_port && self.bridges.iter().any(|x| x.name == p.name) {
                    return Err(format!(
                        "port \"{}\" has the name of a bridge, whose LOCAL port interface it \
                         is (use --no-local-port to attach an existing interface of that name)",
                        p.name
                    ));
                }
                validate_ifname(&p.name)?;
                if !names.insert(p.name.clone()) {
                    return Err(format!("port \"{}\" is given twice", p.name));
                }
            }
        }
        if !(1..=256).contains(&self.batch) {
            return Err(format!("batch {} is not within 1..=256", self.batch));
        }
        if self.frame_size != 2048 && self.frame_size != 4096 {
            return Err(format!(
                "frame size {} must be 2048 or 4096",
                self.frame_size
            ));
        }
        if !self.ring_size.is_power_of_two() || !(64..=16384).contains(&self.ring_size) {
            return Err(format!(
                "ring size {} must be a power of two in 64..=16384",
                self.ring_size
            ));
        }
        Ok(())
    }
}

fn parse_num(flag: &str, s: &str, lo: u32, hi: u32) -> Result<u32, ConfigError> {
    let n: u32 = s
        .parse()
        .map_err(|_| ConfigError::Usage(format!("{flag} needs a number, not {s:?}")))?;
    if n < lo || n > hi {
        return Err(ConfigError::Usage(format!(
            "{flag} {n} is not within {lo}..={hi}"
        )));
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }

    #[test]
    fn standalone_flags() {
        let c = Config::from_args(&args(
            "--rundir /tmp/x --bridge br0 --port a --port b,xdp-mode=generic --pmd-cpus 0,1 --pmd-idle sleep",
        ))
        .unwrap();
        assert_eq!(c.rundir, PathBuf::from("/tmp/x"));
        assert_eq!(c.bridges.len(), 1);
        assert_eq!(c.bridges[0].ports[0].name, "a");
        assert_eq!(c.bridges[0].ports[1].xdp_mode, XdpMode::Generic);
        assert_eq!(c.pmd_cpus, vec![0, 1]);
        assert_eq!(c.pmd_idle, IdlePolicy::Sleep);
    }

    #[test]
    fn patch_ports_take_exactly_a_peer() {
        // ovn-controller's patch names exceed IFNAMSIZ: not kernel interfaces, accepted
        assert_eq!(
            check_patch_peer("patch-ext-ln-to-br-int", Some("patch-br-int-to-ext-ln")).unwrap(),
            "patch-br-int-to-ext-ln"
        );
        let p = parse_port("patch-a,type=patch,peer=patch-b").unwrap();
        assert_eq!(p.patch.as_deref(), Some("patch-b"));
        assert!(p.tunnel.is_none());
        let e = |s: &str| parse_port(s).unwrap_err();
        assert!(e("patch-a,type=patch").contains("requires valid 'peer'"));
        assert!(e("patch-a,type=patch,peer=patch-a").contains("must not be self"));
        assert!(e("patch-a,type=patch,peer=b,key=1").contains("only a 'peer'"));
        assert!(e("x,type=vxlan").contains("not supported"));
    }

    #[test]
    fn bad_flags_are_clear_errors() {
        let e = |s: &str| Config::from_args(&args(s)).unwrap_err().to_string();
        assert!(e("--port a").contains("before any --bridge"));
        assert!(e("--bridge b --port a --port a").contains("given twice"));
        assert!(e("--pmd-idle lazy").contains("busy or sleep"));
        assert!(e("--emc maybe").contains("on or off"));
        assert!(e("--pmd-cpus 1,x").contains("bad CPU list"));
        assert!(e("--bridge b --port a,zz=1").contains("unknown port option"));
        assert!(e("--batch 0").contains("not within"));
        assert!(e("--frobnicate").contains("unknown option"));
        assert!(e("--rundir").contains("needs a value"));
    }

    #[test]
    fn local_port_switch_and_bridge_names() {
        let c = Config::from_args(&args("--bridge br0 --port a")).unwrap();
        assert!(c.local_port, "the LOCAL port is on by default, as in OVS");
        let c = Config::from_args(&args("--no-local-port --bridge br0 --port a")).unwrap();
        assert!(!c.local_port);
        let e = |s: &str| Config::from_args(&args(s)).unwrap_err().to_string();
        assert!(e("--bridge a-sixteen-bytes!").contains("1 to 15 bytes"));
        assert!(e("--bridge a/b").contains("not a valid interface name"));
        assert!(e("--bridge br0 --port br0").contains("LOCAL port"));
        // an existing interface named like the bridge can be a port without the LOCAL port
        assert!(Config::from_args(&args("--no-local-port --bridge br0 --port br0")).is_ok());
        let t = "local_port = false\n[[bridge]]\nname = \"br0\"\nports = [\"a\"]\n";
        assert!(!Config::from_toml(t, "x.toml").unwrap().local_port);
        let t = "[[bridge]]\nname = \"a-sixteen-bytes!\"\n";
        let e = Config::from_toml(t, "x.toml").unwrap_err().to_string();
        assert!(
            e.contains("x.toml:2:") && e.contains("1 to 15 bytes"),
            "{e}"
        );
    }

    /// The environment of the drop-in tests: OVS_RUNDIR and OVS_LOGDIR set, nothing else.
    fn ovs_env(k: &str) -> Option<String> {
        match k {
            "OVS_RUNDIR" => Some("/r".into()),
            "OVS_LOGDIR" => Some("/l".into()),
            _ => None,
        }
    }

    fn no_env(_: &str) -> Option<String> {
        None
    }

    fn parse(s: &str) -> Config {
        Config::from_args_env(&args(s), &ovs_env).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn ovs_lab_command_line() {
        // as ovn-lab.sh and ovs-ctl start ovs-vswitchd
        let c = parse(
            "unix:/d/run/db.sock --detach --no-chdir -vconsole:off -vsyslog:off \
             --pidfile=/d/run/ovs-vswitchd.pid --log-file=/d/log/ovs-vswitchd.log \
             --unixctl=/d/run/ovs-vswitchd.ctl --mlockall",
        );
        assert_eq!(c.ovsdb.as_deref(), Some("unix:/d/run/db.sock"));
        assert!(c.detach && c.no_chdir && c.mlockall && !c.overwrite_pidfile);
        assert_eq!(c.pidfile, Some(PathBuf::from("/d/run/ovs-vswitchd.pid")));
        assert_eq!(c.log_file, Some(PathBuf::from("/d/log/ovs-vswitchd.log")));
        assert_eq!(c.unixctl, Some(PathBuf::from("/d/run/ovs-vswitchd.ctl")));
        assert_eq!(c.ctl_path(), PathBuf::from("/d/run/ovs-vswitchd.ctl"));
        assert_eq!(
            c.rundir,
            PathBuf::from("/r"),
            "drop-in: rundir is OVS_RUNDIR"
        );
        assert!(c.bridges.is_empty());
        use crate::vlog::{Dest, Level, Spec};
        assert_eq!(
            c.vlog,
            vec![
                Spec::Set {
                    target: None,
                    dest: Some(Dest::Console),
                    level: Level::Off
                },
                Spec::Set {
                    target: None,
                    dest: Some(Dest::Syslog),
                    level: Level::Off
                },
            ]
        );
        assert!(c.warnings.is_empty());
    }

    #[test]
    fn drop_in_defaults_follow_the_environment() {
        let c = parse("--pidfile --log-file");
        assert_eq!(c.ovsdb.as_deref(), Some("unix:/r/db.sock"));
        assert_eq!(c.pidfile, Some(PathBuf::from("/r/ovs-vswitchd.pid")));
        assert_eq!(c.log_file, Some(PathBuf::from("/l/ovs-vswitchd.log")));
        assert_eq!(c.unixctl, None);
        assert_eq!(
            c.ctl_path(),
            PathBuf::from(format!("/r/ovs-vswitchd.{}.ctl", std::process::id()))
        );
        // without the variables: OVS's packaged directories
        let c = Config::from_args_env(&args("--pidfile --log-file"), &no_env).unwrap();
        assert_eq!(
            c.ovsdb.as_deref(),
            Some("unix:/var/run/openvswitch/db.sock")
        );
        assert_eq!(c.rundir, PathBuf::from("/var/run/openvswitch"));
        assert_eq!(
            c.pidfile,
            Some(PathBuf::from("/var/run/openvswitch/ovs-vswitchd.pid"))
        );
        assert_eq!(
            c.log_file,
            Some(PathBuf::from("/var/log/openvswitch/ovs-vswitchd.log"))
        );
        // nothing at all: drop-in mode with OVS's database
        let c = Config::from_args_env(&[], &ovs_env).unwrap();
        assert_eq!(c.ovsdb.as_deref(), Some("unix:/r/db.sock"));
        assert_eq!(c.pidfile, None);
        // relative names are relative to OVS_RUNDIR, as in OVS; --rundir still wins
        let c = parse("--pidfile=x.pid --unixctl=x.ctl --rundir /elsewhere tcp:127.0.0.1:6640");
        assert_eq!(c.pidfile, Some(PathBuf::from("/r/x.pid")));
        assert_eq!(c.unixctl, Some(PathBuf::from("/r/x.ctl")));
        assert_eq!(c.rundir, PathBuf::from("/elsewhere"));
        assert_eq!(c.ovsdb.as_deref(), Some("tcp:127.0.0.1:6640"));
        let c = parse("--ovsdb ssl:10.0.0.1:6640 --unixctl /abs.ctl");
        assert_eq!(c.ovsdb.as_deref(), Some("ssl:10.0.0.1:6640"));
        assert_eq!(c.unixctl, Some(PathBuf::from("/abs.ctl")));
    }

    #[test]
    fn pidfile_and_log_file_forms() {
        // space-separated (xvswitchd's older form), =FILE, bare
        let c = parse("--bridge b --pidfile /p/x.pid --log-file /p/x.log");
        assert_eq!(c.pidfile, Some(PathBuf::from("/p/x.pid")));
        assert_eq!(c.log_file, Some(PathBuf::from("/p/x.log")));
        assert_eq!(c.ovsdb, None, "--bridge: standalone");
        let c = parse("--bridge b --pidfile=/p/y.pid --log-file=/p/y.log");
        assert_eq!(c.pidfile, Some(PathBuf::from("/p/y.pid")));
        assert_eq!(c.log_file, Some(PathBuf::from("/p/y.log")));
        let c = parse("--pidfile --log-file --detach");
        assert_eq!(c.pidfile, Some(PathBuf::from("/r/ovs-vswitchd.pid")));
        assert_eq!(c.log_file, Some(PathBuf::from("/l/ovs-vswitchd.log")));
        assert!(c.detach);
        // a bare --pidfile before the database does not swallow it
        let c = parse("--pidfile unix:/db.sock --log-file");
        assert_eq!(c.pidfile, Some(PathBuf::from("/r/ovs-vswitchd.pid")));
        assert_eq!(c.ovsdb.as_deref(), Some("unix:/db.sock"));
        // standalone keeps its control socket name and run directory default
        let c = parse("--bridge b --port p");
        assert_eq!(c.rundir, PathBuf::from("/var/run/xvswitch"));
        assert_eq!(
            c.ctl_path(),
            PathBuf::from("/var/run/xvswitch/xvswitchd.ctl")
        );
        let c = parse("--rundir /x --bridge b --unixctl=/s.ctl");
        assert_eq!(c.ctl_path(), PathBuf::from("/s.ctl"));
    }

    #[test]
    fn verbosity_forms() {
        use crate::vlog::{Dest, Level, Spec};
        let c = parse("--bridge b -v");
        assert_eq!(c.log_level, "debug");
        let c = parse("--bridge b --verbose");
        assert_eq!(c.log_level, "debug");
        let c = parse("--bridge b -vv");
        assert_eq!(c.log_level, "trace");
        let c = parse("-vdbg --verbose=file:warn -vpmd:console:info -vbridge:file:dbg");
        assert_eq!(c.log_level, "info");
        assert_eq!(c.vlog.len(), 4);
        assert_eq!(
            c.vlog[0],
            Spec::Set {
                target: None,
                dest: None,
                level: Level::Dbg
            }
        );
        assert_eq!(
            c.vlog[1],
            Spec::Set {
                target: None,
                dest: Some(Dest::File),
                level: Level::Warn
            }
        );
        assert_eq!(
            c.vlog[2],
            Spec::Set {
                target: Some("datapath::pmd"),
                dest: Some(Dest::Console),
                level: Level::Info
            }
        );
        // an OVS module with no counterpart is accepted (warned about at start-up)
        let c = parse("-vofproto_dpif_upcall:file:dbg");
        assert!(matches!(c.vlog[0], Spec::Ignored(_)));
        let e = Config::from_args_env(&args("-vfile:console"), &ovs_env).unwrap_err();
        assert!(e.to_string().contains("multiple destinations"), "{e}");
        let e = Config::from_args_env(&args("--bridge b --verbose=dbg:info"), &ovs_env);
        assert!(e.unwrap_err().to_string().contains("multiple levels"));
    }

    #[test]
    fn unimplemented_ovs_options_are_accepted_with_warnings() {
        let c = parse(
            "--disable-system --monitor --user openvswitch:hugetlbfs --no-self-confinement \
             --dpdk --enable-dummy=override --private-key=db:x --certificate db:y -C z \
             --bootstrap-ca-cert=/c --syslog-target=127.0.0.1:514 --hw-rawio-access \
             --overwrite-pidfile unix:/db.sock",
        );
        assert_eq!(c.warnings.len(), 12, "{:?}", c.warnings);
        assert!(c.warnings[0].contains("--disable-system"));
        assert!(c.warnings[2].contains("--user"));
        assert!(c.overwrite_pidfile);
        assert_eq!(
            c.ovsdb.as_deref(),
            Some("unix:/db.sock"),
            "values are not remotes"
        );
        let e = |s: &str| {
            Config::from_args_env(&args(s), &ovs_env)
                .unwrap_err()
                .to_string()
        };
        assert!(e("--user").contains("needs a value"));
        assert!(e("--frobnicate").contains("unknown option"));
        assert!(e("unix:/a unix:/b").contains("at most one"));
        assert!(e("db.sock").contains("not a database remote"));
        assert!(e("--bridge b unix:/a").contains("drop-in mode"));
        assert!(e("--log-level-typo").contains("unknown option"));
    }

    #[test]
    fn cpu_lists() {
        assert_eq!(parse_cpu_list("2-4,7").unwrap(), vec![2, 3, 4, 7]);
        assert!(parse_cpu_list("1,1").is_err());
        assert!(parse_cpu_list("").is_err());
        assert!(parse_cpu_list("5-2").is_err());
    }

    #[test]
    fn toml_form() {
        let t = r#"
rundir = "/tmp/r"
[pmd]
cpus = [1]
idle = "sleep"
[[bridge]]
name = "br0"
ports = ["veth0", { name = "tap0", xdp_mode = "generic" }]
"#;
        let c = Config::from_toml(t, "x.toml").unwrap();
        assert_eq!(c.pmd_cpus, vec![1]);
        assert_eq!(c.bridges[0].ports[1].xdp_mode, XdpMode::Generic);
        assert_eq!(c.bridges[0].mac_aging, 300);
    }

    #[test]
    fn toml_errors_name_the_line() {
        let t = "rundir = \"/tmp/r\"\n[pmd]\nidle = \"lazy\"\n";
        match Config::from_toml(t, "x.toml").unwrap_err() {
            ConfigError::File { line, file, .. } => {
                assert_eq!(line, 3);
                assert_eq!(file, "x.toml");
            }
            e => panic!("{e}"),
        }
        let t = "rundir = \"/tmp/r\"\n\n[[bridge]]\nname = \"b\"\nportz = []\n";
        let e = Config::from_toml(t, "y.toml").unwrap_err();
        assert!(matches!(e, ConfigError::File { line: 5, .. }), "{e}");
        let t = "[[bridge]]\nname = \"b\"\nports = [\"a\",\n \"a\"]\n";
        let e = Config::from_toml(t, "z.toml").unwrap_err();
        assert!(e.to_string().contains("z.toml:3"), "{e}");
    }
}
