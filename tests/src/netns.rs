//! Network namespaces, veth pairs and the common switch topology.

use std::net::Ipv4Addr;
use std::os::fd::AsRawFd;
use std::process::{Command, Output};
use std::time::Duration;

use crate::pkt::Mac;
use crate::{require_root, run_timeout, unique, WAIT};

/// Runs `f` on a fresh thread that has entered network namespace `ns` (a name under
/// `/var/run/netns`) and returns its result. Sockets, taps and BPF objects created by `f` belong
/// to that namespace and stay usable from any thread afterwards. A panic in `f` propagates.
pub fn in_ns<T: Send, F: FnOnce() -> T + Send>(ns: &str, f: F) -> T {
    let path = format!("/var/run/netns/{ns}");
    std::thread::scope(|s| {
        let h = s.spawn(|| {
            let file = std::fs::File::open(&path)
                .unwrap_or_else(|e| panic!("cannot open namespace {path}: {e}"));
            // SAFETY: setns(2) on an fd we own; it only changes this thread's network namespace,
            // and this thread ends right after `f`.
            let r = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
            if r != 0 {
                panic!("setns({path}): {}", std::io::Error::last_os_error());
            }
            f()
        });
        match h.join() {
            Ok(v) => v,
            Err(p) => std::panic::resume_unwind(p),
        }
    })
}

/// A network namespace, deleted on drop (with every link still inside it). IPv6 is disabled in
/// it so that the kernel sends nothing on its own (no router solicitations, no MLD reports):
/// counting frames stays deterministic.
pub struct Netns {
    name: String,
}

impl Netns {
    /// Creates `xt<pid><n><tag>` with `lo` up and IPv6 off.
    pub fn new(tag: &str) -> Netns {
        require_root();
        let name = unique(tag);
        let out = run_timeout(Command::new("ip").args(["netns", "add", &name]), WAIT);
        if !out.status.success() {
            panic!(
                "ip netns add {name}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let ns = Netns { name };
        ns.ip("link set lo up");
        for k in ["all", "default"] {
            ns.run(&format!("sysctl -qw net.ipv6.conf.{k}.disable_ipv6=1"));
        }
        ns
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// `ip netns exec NAME prog` (a new mount namespace with this namespace's /sys).
    pub fn cmd(&self, prog: &str) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.name, prog]);
        c
    }

    /// Runs a command line (split on whitespace, no shell) in the namespace with a deadline.
    pub fn exec(&self, line: &str) -> Output {
        let mut it = line.split_whitespace();
        let prog = it.next().expect("empty command line");
        run_timeout(self.cmd(prog).args(it), WAIT)
    }

    /// Like [`exec`](Self::exec) but returns stdout, or `Err` with status and stderr.
    pub fn try_run(&self, line: &str) -> Result<String, String> {
        let out = self.exec(line);
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(format!(
                "`{line}` in {} failed ({}): {}{}",
                self.name,
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ))
        }
    }

    /// Like [`try_run`](Self::try_run), panicking on failure.
    pub fn run(&self, line: &str) -> String {
        self.try_run(line).unwrap_or_else(|e| panic!("{e}"))
    }

    /// `ip -n NAME <args>`, panicking on failure.
    pub fn ip(&self, args: &str) -> String {
        let out = run_timeout(
            Command::new("ip")
                .args(["-n", &self.name])
                .args(args.split_whitespace()),
            WAIT,
        );
        if !out.status.success() {
            panic!(
                "ip -n {} {args}: {}",
                self.name,
                String::from_utf8_lossy(&out.stderr)
            );
        }
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Runs `f` inside this namespace (see [`in_ns`]).
    pub fn in_ns<T: Send, F: FnOnce() -> T + Send>(&self, f: F) -> T {
        in_ns(&self.name, f)
    }

    /// The ifindex of `ifname` in this namespace.
    pub fn ifindex(&self, ifname: &str) -> u32 {
        let n = ifname.to_string();
        self.in_ns(move || afxdp::netdev::ifindex(&n))
            .unwrap_or_else(|e| panic!("{ifname} in {}: {e}", self.name))
    }

    /// `ping -c count -i 0.2 -W 2 dst`: (transmitted, received).
    pub fn ping(&self, dst: Ipv4Addr, count: u32) -> (u32, u32) {
        let out = run_timeout(
            self.cmd("ping").args([
                "-n",
                "-q",
                "-c",
                &count.to_string(),
                "-i",
                "0.2",
                "-W",
                "2",
                &dst.to_string(),
            ]),
            Duration::from_secs(10 + 3 * count as u64),
        );
        let text = String::from_utf8_lossy(&out.stdout);
        parse_ping(&text).unwrap_or((count, 0))
    }

    /// Waits until one ping gets through (the first may wait for ARP), then asserts that
    /// `count` more all get answered.
    pub fn assert_ping(&self, dst: Ipv4Addr, count: u32) {
        crate::wait_for(
            &format!("a ping from {} to {dst}", self.name),
            WAIT,
            || match self.ping(dst, 1) {
                (_, 1) => Ok(()),
                r => Err(format!("{r:?}")),
            },
        );
        let (tx, rx) = self.ping(dst, count);
        assert_eq!(
            (tx, rx),
            (count, count),
            "ping {} -> {dst}: transmitted/received",
            self.name
        );
    }

    /// A counter from `/proc/net/snmp` in this namespace, e.g. ("Udp", "InCsumErrors").
    pub fn snmp(&self, proto: &str, field: &str) -> u64 {
        let text = self.run("cat /proc/net/snmp");
        parse_snmp(&text, proto, field)
            .unwrap_or_else(|| panic!("no {proto}:{field} in /proc/net/snmp:\n{text}"))
    }

    /// An interface's kernel counter from sysfs (`statistics/NAME`), read inside the namespace.
    pub fn link_stat(&self, ifname: &str, stat: &str) -> u64 {
        self.run(&format!("cat /sys/class/net/{ifname}/statistics/{stat}"))
            .trim()
            .parse()
            .unwrap_or_else(|e| panic!("{ifname} {stat}: {e}"))
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = run_timeout(Command::new("ip").args(["netns", "del", &self.name]), WAIT);
    }
}

/// Parses ping's summary line: "N packets transmitted, M received".
pub fn parse_ping(text: &str) -> Option<(u32, u32)> {
    let line = text.lines().find(|l| l.contains("packets transmitted"))?;
    let mut nums = line
        .split(',')
        .filter_map(|p| p.split_whitespace().next()?.parse::<u32>().ok());
    Some((nums.next()?, nums.next()?))
}

/// Looks up `proto`:`field` in the two-line-per-protocol format of `/proc/net/snmp`.
pub fn parse_snmp(text: &str, proto: &str, field: &str) -> Option<u64> {
    let prefix = format!("{proto}:");
    let mut lines = text.lines().filter(|l| l.starts_with(&prefix));
    let names: Vec<&str> = lines.next()?.split_whitespace().skip(1).collect();
    let vals: Vec<&str> = lines.next()?.split_whitespace().skip(1).collect();
    let i = names.iter().position(|n| *n == field)?;
    vals.get(i)?.parse().ok()
}

/// A veth pair `a` (in namespace `ns_a`) — `b` (in `ns_b`), created directly in the namespaces
/// and deleted on drop (deleting either namespace deletes it too).
pub struct Veth {
    pub a: String,
    pub b: String,
    ns_a: String,
}

impl Veth {
    pub fn new(a: &str, ns_a: &Netns, b: &str, ns_b: &Netns) -> Veth {
        let out = run_timeout(
            Command::new("ip").args([
                "link",
                "add",
                a,
                "netns",
                ns_a.name(),
                "type",
                "veth",
                "peer",
                "name",
                b,
                "netns",
                ns_b.name(),
            ]),
            WAIT,
        );
        if !out.status.success() {
            panic!(
                "creating veth {a}/{b}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Veth {
            a: a.to_string(),
            b: b.to_string(),
            ns_a: ns_a.name().to_string(),
        }
    }
}

impl Drop for Veth {
    fn drop(&mut self) {
        let _ = run_timeout(
            Command::new("ip").args(["-n", &self.ns_a, "link", "del", &self.a]),
            WAIT,
        );
    }
}

/// One host of a [`Lab`]: a namespace with one veth end, addressed and up.
pub struct Host {
    pub ns: Netns,
    /// The host's interface (in `ns`).
    pub ifname: String,
    /// The switch-side peer (in the lab's switch namespace): the daemon's port.
    pub port: String,
    pub mac: Mac,
    pub ip: Ipv4Addr,
}

/// The common topology: a switch namespace `sw` holding one veth end per host (the daemon's
/// ports, all up, no addresses) and `n` host namespaces, host `i` (0-based) at
/// `10.200.0.(i+1)/24` with MAC `02:00:00:00:00:(0a+i)`. Veths are at their default offload
/// settings (TX checksum offload on).
pub struct Lab {
    // dropped first: links, then hosts, then the switch namespace
    veths: Vec<Veth>,
    pub hosts: Vec<Host>,
    pub sw: Netns,
}

impl Lab {
    pub fn new(n: usize) -> Lab {
        let sw = Netns::new("s");
        let mut hosts = Vec::new();
        let mut veths = Vec::new();
        for i in 0..n {
            let ns = Netns::new(&format!("h{i}"));
            let base = unique("");
            let ifname = format!("{base}h");
            let port = format!("{base}p");
            veths.push(Veth::new(&ifname, &ns, &port, &sw));
            let mac: Mac = [2, 0, 0, 0, 0, 0x0a + i as u8];
            let ip = Ipv4Addr::new(10, 200, 0, i as u8 + 1);
            ns.ip(&format!(
                "link set {ifname} address {}",
                crate::pkt::mac_str(&mac)
            ));
            ns.ip(&format!("addr add {ip}/24 dev {ifname}"));
            ns.ip(&format!("link set {ifname} up"));
            sw.ip(&format!("link set {port} up"));
            hosts.push(Host {
                ns,
                ifname,
                port,
                mac,
                ip,
            });
        }
        Lab { veths, hosts, sw }
    }

    /// The switch-side port names in host order.
    pub fn ports(&self) -> Vec<String> {
        self.hosts.iter().map(|h| h.port.clone()).collect()
    }

    /// `--bridge br0 --port P1 --port P2 ...` (host order) plus `--pmd-idle sleep`.
    pub fn daemon_args(&self) -> Vec<String> {
        let mut v: Vec<String> = vec!["--bridge".into(), "br0".into()];
        for p in self.ports() {
            v.push("--port".into());
            v.push(p);
        }
        v.push("--pmd-idle".into());
        v.push("sleep".into());
        v
    }

    /// Number of veth pairs (for sanity checks).
    pub fn links(&self) -> usize {
        self.veths.len()
    }
}
