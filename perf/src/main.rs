//! `xvs-perf`: the performance suite. See perf/README.md.
//!
//! ```text
//! xvs-perf p2p [OPTIONS]          generator -> switch -> sink, xvswitchd vs OVS vs the kernel
//! xvs-perf flowmod [OPTIONS]      100k OVN-shaped flows: add/dump/del with ovs-ofctl, vs OVS
//! xvs-perf miss [OPTIONS]         cost of a megaflow miss through a 10-table chain, vs OVS
//! xvs-perf ovn [OPTIONS]          OVN-scale pipeline: cache hits with 1 and 1000 flows, misses, RSS
//! xvs-perf ct [OPTIONS]           64-byte UDP through a stateful ACL, 10k established conns, vs OVS
//! xvs-perf agent KIND [ARGS]      (internal) helpers the scenarios start in namespaces
//! xvs-perf labtool send|recv|rarp  (internal) paced UDP stream and RARPs for perf/migration.sh
//! ```

mod agent;
mod ct;
mod flowmod;
mod flows;
mod labtool;
mod minfwd;
mod miss;
mod ofnull;
mod ovn;
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
  flowmod ovs-ofctl add-flows (plain and --bundle), dump-flows and del-flows of 100,000
          OVN-shaped flows into xvswitchd and OVS 3.1; seconds, daemon CPU, resident memory
          (xvs-perf flowmod --help)
  miss    first-packet cost: a stream of packets that each miss the megaflow cache and go
          through a 10-table resubmit chain; upcall microseconds in xvswitchd and OVS 3.1
          (xvs-perf miss --help)
  ovn     flow caching at OVN scale: ~25,000 OVN-shaped flows over 44 tables; cache-hit
          ns/packet and rate with 1 and 1000 concurrent flows, upcall cost, resident memory;
          xvswitchd vs OVS 3.1 afxdp (xvs-perf ovn --help)
  ct      connection tracking: 64-byte UDP through a stateful ACL (ct, commit, established)
          over 10,000 connections primed both ways; switch-core ns/packet and rate, connections
          tracked; xvswitchd vs OVS 3.1 afxdp (xvs-perf ct --help)

Results go to perf/results/ as JSON; see perf/README.md.
";

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("p2p") => std::process::exit(p2p::main(&args[1..])),
        Some("flowmod") => std::process::exit(flowmod::main(&args[1..])),
        Some("miss") => std::process::exit(miss::main(&args[1..])),
        Some("ovn") => std::process::exit(ovn::main(&args[1..])),
        Some("ct") => std::process::exit(ct::main(&args[1..])),
        Some("labtool") => std::process::exit(labtool::main(&args[1..])),
        Some("agent") if args.len() >= 2 => agent::main(&args[1], &args[2..]),
        Some("-h") | Some("--help") | None => print!("{USAGE}"),
        Some("-V") | Some("--version") => println!("xvs-perf {}", env!("CARGO_PKG_VERSION")),
        Some(other) => {
            eprintln!("xvs-perf: unknown scenario {other:?}\n\n{USAGE}");
            std::process::exit(2);
        }
    }
}
