//! Logging levels the way Open vSwitch spells them (`-vconsole:off`, `-vfile:info`,
//! `-vMODULE:DEST:LEVEL`, `vlog/set`, `vlog/list`), mapped onto `tracing`.
//!
//! OVS has three destinations (console, syslog, file) and per-module levels (emer, err, warn,
//! info, dbg, off). Here the console is stderr, the file is `--log-file`, and syslog is accepted
//! but not written (xvswitchd has no syslog writer). A module is a part of xvswitchd (`pmd`,
//! `ofproto`, `port`, ...), a sibling crate (`afxdp`, `openflow`, ...) or one of a few OVS module
//! names mapped to the closest part (`dpif_netdev` is `pmd`); other OVS module names are
//! accepted and change nothing, so init scripts written for ovs-vswitchd keep working. Each
//! destination gets its own `EnvFilter` behind a reload handle, so `vlog/set` takes effect at
//! once without restarting.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;
use std::sync::{Mutex, OnceLock};

/// OVS's log levels, plus `trace` (below `dbg`) for `-vv`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Off,
    Emer,
    Err,
    Warn,
    Info,
    Dbg,
    Trace,
}

impl Level {
    /// OVS's names (any case) and tracing's (`error`, `debug`...).
    pub fn parse(s: &str) -> Option<Level> {
        Some(match s.to_ascii_lowercase().as_str() {
            "off" => Level::Off,
            "emer" => Level::Emer,
            "err" | "error" => Level::Err,
            "warn" | "warning" => Level::Warn,
            "info" => Level::Info,
            "dbg" | "debug" => Level::Dbg,
            "trace" => Level::Trace,
            _ => return None,
        })
    }

    /// The `tracing` level name of a filter directive. tracing has nothing above `error`, so
    /// `emer` logs errors too.
    fn directive(self) -> &'static str {
        match self {
            Level::Off => "off",
            Level::Emer | Level::Err => "error",
            Level::Warn => "warn",
            Level::Info => "info",
            Level::Dbg => "debug",
            Level::Trace => "trace",
        }
    }

    /// As `vlog/list` shows it.
    fn name(self) -> &'static str {
        match self {
            Level::Off => "OFF",
            Level::Emer => "EMER",
            Level::Err => "ERR",
            Level::Warn => "WARN",
            Level::Info => "INFO",
            Level::Dbg => "DBG",
            Level::Trace => "TRACE",
        }
    }
}

/// Where log lines go.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dest {
    /// stderr (gone once `--detach` has detached).
    Console,
    /// Accepted, never written.
    Syslog,
    /// The `--log-file`.
    File,
}

const DESTS: [Dest; 3] = [Dest::Console, Dest::Syslog, Dest::File];

impl Dest {
    fn parse(s: &str) -> Option<Dest> {
        Some(match s.to_ascii_lowercase().as_str() {
            "console" => Dest::Console,
            "syslog" => Dest::Syslog,
            "file" => Dest::File,
            _ => return None,
        })
    }
}

/// The modules `vlog/list` shows and `-vMODULE:...` can name: (name, tracing target).
const MODULES: &[(&str, &str)] = &[
    ("cache", "datapath::cache"),
    ("config", "datapath::config"),
    ("control", "datapath::control"),
    ("daemon", "datapath::daemon"),
    ("ofproto", "datapath::ofproto"),
    ("pipeline", "datapath::pipeline"),
    ("pmd", "datapath::pmd"),
    ("port", "datapath::port"),
    ("reconf", "datapath::reconf"),
    ("afxdp", "afxdp"),
    ("openflow", "openflow"),
    ("classifier", "classifier"),
    ("ovsdb", "ovsdb"),
];

/// OVS module names with a close counterpart here.
const OVS_ALIASES: &[(&str, &str)] = &[
    ("dpif_netdev", "pmd"),
    ("netdev_afxdp", "port"),
    ("netdev_linux", "port"),
    ("ofproto_dpif", "ofproto"),
    ("ofproto_dpif_xlate", "pipeline"),
    ("connmgr", "ofproto"),
    ("rconn", "ofproto"),
    ("vconn", "ofproto"),
    ("bridge", "daemon"),
    ("vswitchd", "daemon"),
    ("unixctl", "control"),
    ("ovsdb_idl", "ovsdb"),
    ("reconnect", "ovsdb"),
];

fn module_target(m: &str) -> Option<&'static str> {
    let m = m.to_ascii_lowercase();
    let name = OVS_ALIASES
        .iter()
        .find(|(a, _)| *a == m)
        .map(|(_, n)| *n)
        .unwrap_or(m.as_str());
    MODULES.iter().find(|(n, _)| *n == name).map(|(_, t)| *t)
}

/// One `-v`/`--verbose`/`vlog/set` setting: a level for one module (or all) at one destination
/// (or all).
#[derive(Clone, Debug, PartialEq)]
pub enum Spec {
    Set {
        /// The tracing target; `None`: every module.
        target: Option<&'static str>,
        dest: Option<Dest>,
        level: Level,
    },
    /// Valid for OVS, no effect here (an unknown module, `PATTERN:...`, `FACILITY:...`):
    /// carries the warning to log.
    Ignored(String),
}

/// Parses a spec as OVS does (`vlog_set_levels_from_string`): words separated by `:`, `,`,
/// spaces or tabs, each a destination, a level or a module, at most one of each; `ANY` skips;
/// no level means `dbg`.
pub fn parse_spec(s: &str) -> Result<Spec, String> {
    let mut words = s
        .split([' ', ',', ':', '\t'])
        .filter(|w| !w.is_empty())
        .peekable();
    if let Some(w) = words.peek() {
        let w = w.to_ascii_lowercase();
        if w == "pattern" || w == "facility" {
            return Ok(Spec::Ignored(format!(
                "log setting {s:?}: xvswitchd has a fixed log format and no syslog; ignored"
            )));
        }
    }
    let (mut dest, mut level, mut module) = (None, None, None);
    for w in words {
        if w.eq_ignore_ascii_case("any") {
            continue;
        } else if let Some(d) = Dest::parse(w) {
            if dest.replace(d).is_some() {
                return Err(format!("{s:?}: cannot specify multiple destinations"));
            }
        } else if let Some(l) = Level::parse(w) {
            if level.replace(l).is_some() {
                return Err(format!("{s:?}: cannot specify multiple levels"));
            }
        } else if module.replace(w.to_string()).is_some() {
            return Err(format!("{s:?}: cannot specify multiple modules"));
        }
    }
    let target = match &module {
        None => None,
        Some(m) => match module_target(m) {
            Some(t) => Some(t),
            None => {
                return Ok(Spec::Ignored(format!(
                    "log setting {s:?}: no module {m:?} in xvswitchd; ignored"
                )))
            }
        },
    };
    Ok(Spec::Set {
        target,
        dest,
        level: level.unwrap_or(Level::Dbg),
    })
}

/// One destination's levels: the default and per-module exceptions.
#[derive(Clone, Debug, PartialEq)]
struct Levels {
    default: Level,
    modules: BTreeMap<&'static str, Level>,
}

impl Levels {
    fn new(default: Level) -> Self {
        Levels {
            default,
            modules: BTreeMap::new(),
        }
    }

    /// The `EnvFilter` directives.
    fn directives(&self) -> String {
        let mut s = self.default.directive().to_string();
        for (t, l) in &self.modules {
            let _ = write!(s, ",{t}={}", l.directive());
        }
        s
    }

    fn of(&self, target: &str) -> Level {
        self.modules.get(target).copied().unwrap_or(self.default)
    }
}

/// The levels of the three destinations.
#[derive(Clone, Debug, PartialEq)]
pub struct State {
    levels: [Levels; 3],
}

impl State {
    /// The start-up levels: `base` everywhere a line can go: the console unless a log file
    /// takes its place (xvswitchd's behaviour since before `-vconsole:LEVEL`, which turns it
    /// back on), the file when there is one; syslog off.
    pub fn new(base: Level, log_file: bool) -> State {
        State {
            levels: [
                Levels::new(if log_file { Level::Off } else { base }),
                Levels::new(Level::Off),
                Levels::new(if log_file { base } else { Level::Off }),
            ],
        }
    }

    /// Applies one spec; as in OVS a setting for every module overrides earlier per-module
    /// ones.
    pub fn apply(&mut self, spec: &Spec) {
        let Spec::Set {
            target,
            dest,
            level,
        } = spec
        else {
            return;
        };
        for (i, d) in DESTS.iter().enumerate() {
            if dest.is_some_and(|x| x != *d) {
                continue;
            }
            let l = &mut self.levels[i];
            match target {
                None => {
                    l.default = *level;
                    l.modules.clear();
                }
                Some(t) => {
                    l.modules.insert(t, *level);
                }
            }
        }
    }

    /// The filter directives of a destination.
    pub fn directives(&self, d: Dest) -> String {
        self.levels[d as usize].directives()
    }

    /// `vlog/list`: one line per module, as ovs-appctl shows it.
    pub fn list(&self) -> String {
        let mut s = String::from(
            "                 console    syslog    file\n                 -------    ------    ------\n",
        );
        for (name, t) in MODULES {
            let _ = writeln!(
                s,
                "{name:<16} {:>7}    {:>6}    {:>6}",
                self.levels[0].of(t).name(),
                self.levels[1].of(t).name(),
                self.levels[2].of(t).name()
            );
        }
        s
    }
}

type Reload = Box<dyn Fn(&str) -> Result<(), String> + Send + Sync>;

/// The log file, reopened by `vlog/reopen` (after logrotate moved it, as OVS's logrotate
/// configuration asks ovs-vswitchd to).
struct LogFile {
    path: std::path::PathBuf,
    file: Mutex<std::fs::File>,
}

impl LogFile {
    fn open(path: &Path) -> Result<std::fs::File, String> {
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|e| format!("cannot open log file {}: {e}", path.display()))
    }
}

#[derive(Clone)]
struct FileWriter(std::sync::Arc<LogFile>);

struct FileGuard<'a>(std::sync::MutexGuard<'a, std::fs::File>);

impl std::io::Write for FileGuard<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.write(buf)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.0.flush()
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for FileWriter {
    type Writer = FileGuard<'a>;
    fn make_writer(&'a self) -> FileGuard<'a> {
        FileGuard(self.0.file.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

struct Runtime {
    state: State,
    console: Reload,
    file: Option<(Reload, std::sync::Arc<LogFile>)>,
}

static RUNTIME: OnceLock<Mutex<Runtime>> = OnceLock::new();

/// Installs the global subscriber: stderr and, with `log_file`, the file (opened for append
/// here, so before `--detach` changes directory). `XVS_LOG` (tracing's directive syntax), when
/// set, replaces the start-up filters of both destinations.
pub fn init(state: State, log_file: Option<&Path>) -> Result<(), String> {
    use tracing_subscriber::prelude::*;
    use tracing_subscriber::{fmt, reload, EnvFilter};
    let env = std::env::var("XVS_LOG").ok();
    let filter = |d: Dest| EnvFilter::new(env.clone().unwrap_or_else(|| state.directives(d)));
    let file = match log_file {
        Some(p) => Some(std::sync::Arc::new(LogFile {
            path: p.to_path_buf(),
            file: Mutex::new(LogFile::open(p)?),
        })),
        None => None,
    };
    let (console_filter, console_handle) = reload::Layer::new(filter(Dest::Console));
    let console_layer = fmt::layer()
        .with_target(false)
        .with_writer(std::io::stderr)
        .with_filter(console_filter);
    let (file_layer, file_reload) = match file {
        Some(f) => {
            let (ff, fh) = reload::Layer::new(filter(Dest::File));
            let layer = fmt::layer()
                .with_target(false)
                .with_ansi(false)
                .with_writer(FileWriter(f.clone()))
                .with_filter(ff);
            let r: Reload =
                Box::new(move |d: &str| fh.reload(EnvFilter::new(d)).map_err(|e| e.to_string()));
            (Some(layer), Some((r, f)))
        }
        None => (None, None),
    };
    tracing_subscriber::registry()
        .with(console_layer)
        .with(file_layer)
        .try_init()
        .map_err(|e| e.to_string())?;
    let console: Reload = Box::new(move |d: &str| {
        console_handle
            .reload(EnvFilter::new(d))
            .map_err(|e| e.to_string())
    });
    let _ = RUNTIME.set(Mutex::new(Runtime {
        state,
        console,
        file: file_reload,
    }));
    Ok(())
}

/// `vlog/set SPEC`: changes the levels at once.
pub fn set(spec: &str) -> Result<String, String> {
    let spec = parse_spec(spec)?;
    if let Spec::Ignored(w) = &spec {
        return Ok(format!("{w}\n"));
    }
    let Some(rt) = RUNTIME.get() else {
        return Err("logging is not initialised".into());
    };
    let mut rt = rt.lock().unwrap_or_else(|e| e.into_inner());
    rt.state.apply(&spec);
    (rt.console)(&rt.state.directives(Dest::Console))?;
    if let Some((f, _)) = &rt.file {
        f(&rt.state.directives(Dest::File))?;
    }
    Ok(String::new())
}

/// `vlog/reopen`: opens the log file again by name.
pub fn reopen() -> Result<String, String> {
    let lf = RUNTIME.get().and_then(|rt| {
        let rt = rt.lock().unwrap_or_else(|e| e.into_inner());
        rt.file.as_ref().map(|(_, lf)| lf.clone())
    });
    let Some(lf) = lf else {
        return Err("Logging to file not configured".into());
    };
    let f = LogFile::open(&lf.path)?;
    *lf.file.lock().unwrap_or_else(|e| e.into_inner()) = f;
    Ok(String::new())
}

/// `vlog/list`.
pub fn list() -> String {
    match RUNTIME.get() {
        Some(rt) => rt.lock().unwrap_or_else(|e| e.into_inner()).state.list(),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ovs_specs() {
        let set = |t, d, l| Spec::Set {
            target: t,
            dest: d,
            level: l,
        };
        assert_eq!(
            parse_spec("console:off").unwrap(),
            set(None, Some(Dest::Console), Level::Off)
        );
        assert_eq!(
            parse_spec("file:info").unwrap(),
            set(None, Some(Dest::File), Level::Info)
        );
        assert_eq!(parse_spec("dbg").unwrap(), set(None, None, Level::Dbg));
        assert_eq!(
            parse_spec("ANY:ANY:WARN").unwrap(),
            set(None, None, Level::Warn)
        );
        assert_eq!(
            parse_spec("pmd:file:dbg").unwrap(),
            set(Some("datapath::pmd"), Some(Dest::File), Level::Dbg)
        );
        assert_eq!(
            parse_spec("dpif_netdev").unwrap(),
            set(Some("datapath::pmd"), None, Level::Dbg)
        );
        assert!(matches!(
            parse_spec("ofproto_dpif_upcall:file:dbg").unwrap(),
            Spec::Ignored(_)
        ));
        assert!(matches!(
            parse_spec("PATTERN:file:%D %m").unwrap(),
            Spec::Ignored(_)
        ));
        assert!(parse_spec("console:file:dbg")
            .unwrap_err()
            .contains("multiple destinations"));
        assert!(parse_spec("info:dbg")
            .unwrap_err()
            .contains("multiple levels"));
    }

    #[test]
    fn destinations_and_modules() {
        let mut st = State::new(Level::Info, true);
        assert!(st.directives(Dest::Console).starts_with("off"));
        assert!(st.directives(Dest::File).starts_with("info"));
        st.apply(&parse_spec("console:warn").unwrap());
        assert!(st.directives(Dest::Console).starts_with("warn"));
        st.apply(&parse_spec("pmd:file:dbg").unwrap());
        assert!(st.directives(Dest::File).contains("datapath::pmd=debug"));
        assert!(st
            .list()
            .contains("pmd                 WARN       OFF       DBG"));
        // a setting for every module overrides per-module ones
        st.apply(&parse_spec("file:err").unwrap());
        assert!(!st.directives(Dest::File).contains("datapath::pmd"));
        let st = State::new(Level::Info, false);
        assert!(st.directives(Dest::Console).starts_with("info"));
        assert!(st.directives(Dest::File).starts_with("off"));
    }
}
