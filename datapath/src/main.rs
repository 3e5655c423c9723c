//! `xvswitchd`: see `xvswitchd --help` and the README.

use datapath::config::{Config, ConfigError, USAGE};
use datapath::{process, vlog};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "-V" || a == "--version") {
        println!("xvswitchd (xvswitch) {}", env!("CARGO_PKG_VERSION"));
        return;
    }
    let cfg = match Config::from_args(&args) {
        Ok(c) => c,
        Err(ConfigError::Usage(m)) if m.is_empty() => {
            print!("{USAGE}");
            return;
        }
        Err(e) => {
            eprintln!("xvswitchd: {e}");
            std::process::exit(2);
        }
    };
    if let Some(p) = &cfg.pidfile {
        if let Err(e) = process::check_pidfile(p, cfg.overwrite_pidfile) {
            eprintln!("xvswitchd: {e}");
            std::process::exit(1);
        }
    }
    init_logging(&cfg);
    // before any thread exists (daemon::run spawns the PMDs)
    if cfg.detach {
        if let Err(e) = process::detach(cfg.no_chdir) {
            fail(&format!("cannot detach: {e}"));
        }
    }
    for w in &cfg.warnings {
        tracing::warn!("{w}");
    }
    for s in &cfg.vlog {
        if let vlog::Spec::Ignored(w) = s {
            tracing::warn!("{w}");
        }
    }
    if cfg.mlockall {
        if let Err(e) = process::mlockall() {
            tracing::warn!("--mlockall: mlockall failed: {e}");
        }
    }
    if cfg.ovsdb.is_none() && cfg.bridges.iter().all(|b| b.ports.is_empty()) {
        tracing::warn!("no ports configured: the switch will forward nothing");
    }
    if let Err(e) = datapath::daemon::run(cfg) {
        fail(&e.to_string());
    }
}

/// Logs a fatal error, hands it to a waiting `--detach` parent (which prints it) or else
/// prints it, and exits 1.
fn fail(msg: &str) -> ! {
    tracing::error!("{msg}");
    if !process::notify_failure(msg) {
        eprintln!("xvswitchd: {msg}");
    }
    std::process::exit(1);
}

fn init_logging(cfg: &Config) {
    // validated by Config
    let base = vlog::Level::parse(&cfg.log_level).unwrap_or(vlog::Level::Info);
    let mut st = vlog::State::new(base, cfg.log_file.is_some());
    for s in &cfg.vlog {
        st.apply(s);
    }
    if let Err(e) = vlog::init(st, cfg.log_file.as_deref()) {
        eprintln!("xvswitchd: {e}");
        std::process::exit(2);
    }
}
