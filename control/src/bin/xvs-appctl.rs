//! `xvs-appctl`: send a command to xvswitchd's control socket, like `ovs-appctl`.
//!
//! Usage: xvs-appctl [-t|--target SOCKET] [-T|--timeout SECS] COMMAND [ARG...]
//! Without -t it uses $XVS_RUNDIR/xvswitchd.ctl (default /var/run/xvswitch/xvswitchd.ctl).
//! A target without a slash names a daemon, as for ovs-appctl: `-t ovs-vswitchd` is
//! `$OVS_RUNDIR/ovs-vswitchd.PID.ctl` with PID from `$OVS_RUNDIR/ovs-vswitchd.pid` (how a
//! drop-in xvswitchd names its socket), else `$XVS_RUNDIR/NAME.ctl` (`-t xvswitchd`).

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
    let t = target.to_string_lossy().to_string();
    if let Some(p) = t.strip_prefix("unix:") {
        target = PathBuf::from(p);
    } else if !t.contains('/') {
        target = daemon_socket(&t, &|k| std::env::var(k).ok());
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

/// The control socket of the daemon called `name` (see the module docs).
fn daemon_socket(name: &str, env: &dyn Fn(&str) -> Option<String>) -> PathBuf {
    let dir = |var: &str, default: &str| {
        PathBuf::from(
            env(var)
                .filter(|v| !v.is_empty())
                .unwrap_or_else(|| default.to_string()),
        )
    };
    let ovs = dir("OVS_RUNDIR", "/var/run/openvswitch");
    let pid = std::fs::read_to_string(ovs.join(format!("{name}.pid")))
        .ok()
        .and_then(|t| t.trim().parse::<u32>().ok());
    match pid {
        Some(pid) => ovs.join(format!("{name}.{pid}.ctl")),
        None => dir("XVS_RUNDIR", "/var/run/xvswitch").join(format!("{name}.ctl")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn daemon_names() {
        let d = std::env::temp_dir().join(format!("xvs-appctl-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join("ovs-vswitchd.pid"), "4242\n").unwrap();
        let ds = d.to_str().unwrap().to_string();
        let env = move |k: &str| match k {
            "OVS_RUNDIR" => Some(ds.clone()),
            "XVS_RUNDIR" => Some("/x".to_string()),
            _ => None,
        };
        assert_eq!(
            daemon_socket("ovs-vswitchd", &env),
            d.join("ovs-vswitchd.4242.ctl")
        );
        assert_eq!(
            daemon_socket("xvswitchd", &env),
            PathBuf::from("/x/xvswitchd.ctl")
        );
        std::fs::remove_dir_all(&d).unwrap();
    }
}
