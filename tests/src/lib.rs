//! End-to-end test harness for `xvswitchd`.
//!
//! The tests in `tests/tests/*.rs` build real topologies (network namespaces, veth pairs, taps),
//! start the real daemon inside a namespace, push packets across it with the kernel's own stack
//! or with hand-built frames, and assert on what came out the other side and on the state read
//! back through the control socket. They need root.
//!
//! What the harness gives a test:
//!
//! * **Binaries** ([`bin`]): `xvswitchd`, `xvs-appctl` and `xvs-ofctl` from `$XVS_BIN_DIR`, else
//!   `<workspace>/target/release`, else `<workspace>/target/debug`. `cargo test -p xvs-tests`
//!   does not build other packages' binaries: build them first (`cargo build --release
//!   --workspace`) or point `XVS_BIN_DIR` at them.
//! * **Unique names** ([`unique`]): every namespace, interface and directory a test creates is
//!   named `xt` + the test process's pid and a counter (base 36), so tests can run side by side
//!   (cargo runs them in parallel threads) and next to other suites on the machine. Interface
//!   names stay within the kernel's 15 characters.
//! * **RAII guards** that clean up even when the test panics: [`Netns`] (`ip netns del`; the
//!   links inside die with it), [`Veth`], [`Tap`] (closing the fd removes the device),
//!   [`Daemon`] (SIGTERM, wait, then SIGKILL; its log is printed when the test fails),
//!   [`TempDir`], [`ChildGuard`] for helper processes such as an iperf3 server.
//! * **Running code in a namespace** from the test process: [`Netns::in_ns`] runs a closure on a
//!   fresh thread that has `setns()`-ed into the namespace, so sockets it opens (UDP sockets,
//!   `AF_PACKET` sockets, taps, BPF programs run with `BPF_PROG_RUN`) belong to that namespace and
//!   can then be used from any thread. Commands run with `ip netns exec` ([`Netns::cmd`]).
//! * **Polling, never timing**: [`wait_for`] / [`wait_until`] poll a condition with a generous
//!   deadline ([`WAIT`]) and report the last observed state when it never holds. No test asserts
//!   on how long something took.
//! * **Control socket**: [`Daemon::call`] goes through `control::client::call`, the same client
//!   `xvs-appctl` uses; [`stats`] parses `coverage/show`, `pmd/stats`, `dpif/show`, `fdb/show`.
//! * **Packets**: [`pkt`] builds and parses Ethernet/ARP/IPv4/UDP/ICMP frames; [`raw::RawSock`]
//!   is an `AF_PACKET` socket bound to one interface (send frames, receive and count them,
//!   telling incoming from outgoing); [`tap::Tap`] is a tap device whose fd the test holds to
//!   play a VM, optionally with `IFF_VNET_HDR`.
//! * **Topologies**: [`Lab`] is the common shape: one switch namespace holding the switch-side
//!   veth ends (the daemon's ports) and one namespace per host holding the other end, addressed
//!   `10.200.0.N/24` with MAC `02:00:00:00:00:0N`.
//! * **OpenFlow**: [`ofctl::Ofctl`] runs the real `ovs-ofctl` (or `xvs-ofctl`) against a switch's
//!   run directory in a chosen protocol version and parses flow dumps, port counters and
//!   `monitor` output ([`ofctl::Monitor`], with a probe-based [`sync`](ofctl::Monitor::sync) so
//!   a test knows what the monitor has seen without waiting for time to pass);
//!   [`ofraw::OfConn`] is a raw-bytes OpenFlow 1.3 client for what ovs-ofctl cannot do (a
//!   plain connection that never sets `miss_send_len`, messages ovs-ofctl refuses to build, the
//!   controller side of an active connection); [`ovs::OvsSwitch`] is a private real
//!   `ovs-vswitchd` (userspace datapath, own database and run directory) to compare with.
//! * **OVN**: [`ovn::OvnLab`] runs real OVN (central and chassis) over the switch under test or
//!   stock `ovs-vswitchd`; [`ovn_net`] builds logical topologies through `ovn-nbctl` (switches,
//!   port groups and ACLs, load balancers, routers, a gateway to an external namespace).
//! * **Services**: [`service`] runs tiny TCP/UDP servers in a namespace that name themselves
//!   and record the peer they saw (NAT is visible), and clients that tell an answered exchange
//!   from a refused or unanswered one.
//!
//! Running (as root, from the workspace):
//!
//! ```text
//! cargo build --release --workspace
//! XVS_BIN_DIR=$PWD/target/release cargo test --release -p xvs-tests -- --test-threads=2
//! ```
//!
//! Tools used besides the binaries under test: `ip` (iproute2), `ping`, `ss`, `ethtool`,
//! `iperf3`, `ovs-appctl`, `ovs-ofctl`, `ovs-vsctl`, `ovsdb-tool`, `ovsdb-server`, `ovs-vswitchd`
//! (openvswitch-switch), `cat`, `sysctl`. Every test leaves no namespace,
//! link, process or file behind, whether it passes or fails.

pub mod daemon;
pub mod netns;
pub mod ofctl;
pub mod ofraw;
pub mod ovn;
pub mod ovn_net;
pub mod ovs;
pub mod pkt;
pub mod raw;
pub mod service;
pub mod stats;
pub mod tap;
pub mod traffic;
pub mod vsdb;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

pub use daemon::Daemon;
pub use netns::{in_ns, Host, Lab, Netns, Veth};
pub use raw::RawSock;
pub use tap::Tap;

/// The generous deadline for anything a test waits on (a loaded 2-core CI machine is slow; a
/// deadline only bounds how long a *failing* test takes).
pub const WAIT: Duration = Duration::from_secs(30);

/// The workspace root (the parent of this crate).
pub fn workspace_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

/// Where the binaries under test are: `$XVS_BIN_DIR`, else `target/release`, else
/// `target/debug` (the first of the last two that holds `xvswitchd`).
pub fn bin_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("XVS_BIN_DIR").filter(|d| !d.is_empty()) {
        return PathBuf::from(d);
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_dir().join("target"));
    for profile in ["release", "debug"] {
        let d = target.join(profile);
        if d.join("xvswitchd").is_file() {
            return d;
        }
    }
    target.join("release")
}

/// The path of binary `name` (`xvswitchd`, `xvs-appctl`); panics with instructions if missing.
pub fn bin(name: &str) -> PathBuf {
    let p = bin_dir().join(name);
    if !p.is_file() {
        panic!(
            "{name} not found at {}: build the workspace first (`cargo build --release \
             --workspace`) or set XVS_BIN_DIR to the directory holding xvswitchd and xvs-appctl",
            p.display()
        );
    }
    p
}

/// Panics unless running as root (namespaces, XDP and taps need it).
pub fn require_root() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        panic!("the end-to-end tests need root (network namespaces, XDP, taps)");
    }
}

fn base36(mut n: u64) -> String {
    const D: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let mut v = Vec::new();
    loop {
        v.push(D[(n % 36) as usize]);
        n /= 36;
        if n == 0 {
            break;
        }
    }
    v.reverse();
    String::from_utf8(v).expect("ascii")
}

/// xorshift64*: a deterministic pseudo-random sequence for the hostile-input tests (a failing
/// seed replays exactly), no dependency.
pub struct Rng(pub u64);

impl Rng {
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// A number below `n` (0 when `n` is 0).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n.max(1) as u64) as usize
    }
}

/// A name unique to this process and call: `xt<pid><counter><tag>`, at most 15 bytes when `tag`
/// has at most 4 (interface names are limited to 15).
pub fn unique(tag: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    let s = format!(
        "xt{}{:0>2}{tag}",
        base36(std::process::id() as u64),
        base36(n as u64)
    );
    assert!(s.len() <= 15, "name {s:?} is too long for an interface");
    s
}

/// Polls `f` until it returns `Ok`, with back-off up to 100 ms, for at most `timeout`; panics
/// naming `what` and the last `Err` (the state observed) when time runs out.
pub fn wait_for<T>(what: &str, timeout: Duration, mut f: impl FnMut() -> Result<T, String>) -> T {
    let start = Instant::now();
    let mut delay = Duration::from_millis(2);
    loop {
        match f() {
            Ok(v) => return v,
            Err(last) => {
                if start.elapsed() >= timeout {
                    panic!("timed out after {timeout:?} waiting for {what}; last state: {last}");
                }
            }
        }
        std::thread::sleep(delay);
        delay = (delay * 2).min(Duration::from_millis(100));
    }
}

/// [`wait_for`] with a boolean condition.
pub fn wait_until(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    wait_for(what, timeout, || {
        if f() {
            Ok(())
        } else {
            Err("false".into())
        }
    })
}

/// A directory under the system temp dir, removed (recursively) on drop.
pub struct TempDir {
    path: PathBuf,
}

impl TempDir {
    pub fn new() -> TempDir {
        let path = std::env::temp_dir().join(format!("xvs-tests-{}", unique("")));
        std::fs::create_dir_all(&path)
            .unwrap_or_else(|e| panic!("cannot create {}: {e}", path.display()));
        TempDir { path }
    }
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Default for TempDir {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// A helper process killed (SIGTERM, then SIGKILL) and reaped on drop.
pub struct ChildGuard {
    pub child: Child,
    pub what: String,
}

impl ChildGuard {
    pub fn spawn(cmd: &mut Command, what: &str) -> ChildGuard {
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {what}: {e}"));
        ChildGuard {
            child,
            what: what.to_string(),
        }
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            signal(self.pid(), libc::SIGTERM);
            let deadline = Instant::now() + Duration::from_secs(5);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = self.child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Sends `sig` to `pid` (ignoring errors: the process may be gone).
pub fn signal(pid: i32, sig: i32) {
    // SAFETY: kill(2) on a pid we started; no memory is involved.
    unsafe {
        libc::kill(pid, sig);
    }
}

/// Waits for `child` at most `timeout`; `None` if it is still running.
pub fn wait_child(child: &mut Child, timeout: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Ok(Some(st)) = child.try_wait() {
            return Some(st);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Runs `cmd` to completion, capturing stdout and stderr, killing it after `timeout` (the output
/// then says so in stderr and the status is the kill's).
pub fn run_timeout(cmd: &mut Command, timeout: Duration) -> Output {
    let desc = format!("{cmd:?}");
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {desc}: {e}"));
    let mut out = child.stdout.take().expect("piped");
    let mut err = child.stderr.take().expect("piped");
    let to = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = out.read_to_end(&mut v);
        v
    });
    let te = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = err.read_to_end(&mut v);
        v
    });
    let status = match wait_child(&mut child, timeout) {
        Some(st) => st,
        None => {
            let _ = child.kill();
            child.wait().expect("wait after kill")
        }
    };
    let stdout = to.join().unwrap_or_default();
    let mut stderr = te.join().unwrap_or_default();
    if !status.success() && status.code().is_none() {
        stderr.extend_from_slice(format!("\n[killed after {timeout:?}]").as_bytes());
    }
    Output {
        status,
        stdout,
        stderr,
    }
}

/// Runs `argv` (no shell) and returns stdout; panics with stderr on failure.
pub fn must(argv: &[&str]) -> String {
    let out = run_timeout(Command::new(argv[0]).args(&argv[1..]), WAIT);
    if !out.status.success() {
        panic!(
            "{} failed ({}): {}{}",
            argv.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Whether a process with this pid exists (and is not a zombie).
pub fn process_alive(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(s) => s
            .rsplit_once(')')
            .map(|(_, rest)| !rest.trim_start().starts_with('Z'))
            .unwrap_or(false),
        Err(_) => false,
    }
}
