//! `xvs-appctl`: send a command to xvswitchd's control socket, like `ovs-appctl`.
//!
//! Usage: xvs-appctl [-t|--target SOCKET] [-T|--timeout SECS] COMMAND [ARG...]
//! Without -t it uses $XVS_RUNDIR/xvswitchd.ctl (default /var/run/xvswitch/xvswitchd.ctl).

use std::path::PathBuf;
use std::time::Duration;

fn usage() -> ! {
    eprintln!(
        "usage: xvs-appctl [-t|--target SOCKET] [-T|--timeout SECS] COMMAND [ARG...]\n\
         Sends COMMAND to xvswitchd's control socket. `xvs-appctl list-commands` lists them."
    );
    std::process::exit(2)
}

fn main() {
    let mut args = std::env::args().skip(1).peekable();
    let rundir = std::env::var("XVS_RUNDIR").unwrap_or_else(|_| "/var/run/xvswitch".to_string());
    let mut target = PathBuf::from(rundir).join("xvswitchd.ctl");
    let mut timeout = Some(Duration::from_secs(30));
    let mut rest = Vec::new();
    while let Some(a) = args.next() {
        match a.as_str() {
            "-t" | "--target" => target = PathBuf::from(args.next().unwrap_or_else(|| usage())),
            "-T" | "--timeout" => {
                let s = args.next().unwrap_or_else(|| usage());
                let secs: u64 = s.parse().unwrap_or_else(|_| usage());
                timeout = if secs == 0 {
                    None
                } else {
                    Some(Duration::from_secs(secs))
                };
            }
            "-h" | "--help" => usage(),
            "-V" | "--version" => {
                println!("xvs-appctl {}", env!("CARGO_PKG_VERSION"));
                return;
            }
            _ if a.starts_with("--target=") => target = PathBuf::from(&a["--target=".len()..]),
            _ if a.starts_with("--timeout=") => {
                let secs: u64 = a["--timeout=".len()..].parse().unwrap_or_else(|_| usage());
                timeout = if secs == 0 {
                    None
                } else {
                    Some(Duration::from_secs(secs))
                };
            }
            _ => {
                rest.push(a);
                rest.extend(args.by_ref());
                break;
            }
        }
    }
    if rest.is_empty() {
        usage();
    }
    // like ovs-appctl: a target without a slash names a daemon in the run directory
    let t = target.to_string_lossy().to_string();
    if let Some(p) = t.strip_prefix("unix:") {
        target = PathBuf::from(p);
    }
    let method = rest.remove(0);
    match control::client::call(&target, &method, &rest, timeout) {
        Ok(out) => print!("{out}"),
        Err(control::client::ClientError::Remote(e)) => {
            eprint!("{e}");
            if !e.ends_with('\n') {
                eprintln!();
            }
            eprintln!(
                "xvs-appctl: {} : server returned an error",
                target.display()
            );
            std::process::exit(2);
        }
        Err(e) => {
            eprintln!("xvs-appctl: {e}");
            std::process::exit(1);
        }
    }
}
