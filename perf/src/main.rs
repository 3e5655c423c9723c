//! `xvs-perf`: the performance suite. See perf/README.md.
//!
//! ```text
//! xvs-perf p2p [OPTIONS]          generator -> switch -> sink, xvswitchd vs OVS vs the kernel
//! xvs-perf agent KIND [ARGS]      (internal) helpers the scenarios start in namespaces
//! ```

mod agent;
mod minfwd;
mod ovs;
mod p2p;
mod util;
mod xvs;

const USAGE: &str = "\
usage: xvs-perf SCENARIO [OPTIONS]

Scenarios:
  p2p     64-byte frames port 1 -> port 2 through one switch core: the kernel's XDP_REDIRECT,
          a minimal AF_XDP forwarder, xvswitchd and OVS 3.1 afxdp side by side
          (xvs-perf p2p --help)

Results go to perf/results/ as JSON; see perf/README.md.
";

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("p2p") => std::process::exit(p2p::main(&args[1..])),
        Some("agent") if args.len() >= 2 => agent::main(&args[1], &args[2..]),
        Some("-h") | Some("--help") | None => print!("{USAGE}"),
        Some("-V") | Some("--version") => println!("xvs-perf {}", env!("CARGO_PKG_VERSION")),
        Some(other) => {
            eprintln!("xvs-perf: unknown scenario {other:?}\n\n{USAGE}");
            std::process::exit(2);
        }
    }
}
