//! `xvswitchd`: see `xvswitchd --help` and the README.

use datapath::config::{Config, ConfigError, USAGE};

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
    init_logging(&cfg);
    if cfg.bridges.iter().all(|b| b.ports.is_empty()) {
        tracing::warn!("no ports configured: the switch will forward nothing");
    }
    if let Err(e) = datapath::daemon::run(cfg) {
        tracing::error!("{e}");
        eprintln!("xvswitchd: {e}");
        std::process::exit(1);
    }
}

fn init_logging(cfg: &Config) {
    use tracing_subscriber::EnvFilter;
    let filter =
        EnvFilter::try_from_env("XVS_LOG").unwrap_or_else(|_| EnvFilter::new(&cfg.log_level));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false);
    match &cfg.log_file {
        Some(p) => match std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(p)
        {
            Ok(f) => builder
                .with_ansi(false)
                .with_writer(std::sync::Mutex::new(f))
                .init(),
            Err(e) => {
                eprintln!("xvswitchd: cannot open log file {}: {e}", p.display());
                std::process::exit(2);
            }
        },
        None => builder.with_writer(std::io::stderr).init(),
    }
}
