//! Small helpers shared by the scenarios and the agents: errors, Ctrl-C handling, commands in
//! namespaces, child processes that die with us, CPU pinning, /proc readers, TSC, statistics.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Why something failed: interrupted by a signal (clean up and leave), or a message.
#[derive(Debug)]
pub enum Error {
    Interrupted,
    Msg(String),
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::Interrupted => f.write_str("interrupted"),
            Error::Msg(m) => f.write_str(m),
        }
    }
}

impl From<String> for Error {
    fn from(s: String) -> Self {
        Error::Msg(s)
    }
}

impl From<&str> for Error {
    fn from(s: &str) -> Self {
        Error::Msg(s.to_string())
    }
}

pub type Result<T> = std::result::Result<T, Error>;

/// `println!` that ignores a closed stdout (`xvs-perf p2p | head` must not abort a run).
#[macro_export]
macro_rules! say {
    () => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout());
    }};
    ($($t:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout(), $($t)*);
    }};
}

/// `Err(Error::Msg(format!(...)))`
#[macro_export]
macro_rules! bail {
    ($($t:tt)*) => { return Err($crate::util::Error::Msg(format!($($t)*))) };
}

// ------------------------------------------------------------------ signals

static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    STOP.store(true, Ordering::SeqCst);
}

/// SIGINT/SIGTERM/SIGHUP set a flag that every wait in the scenario checks, so a Ctrl-C unwinds
/// through the normal cleanup path.
pub fn install_signal_handlers() {
    for s in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
        // SAFETY: installs an async-signal-safe handler (one atomic store) for a catchable signal.
        unsafe { libc::signal(s, on_signal as *const () as libc::sighandler_t) };
    }
}

pub fn stopped() -> bool {
    STOP.load(Ordering::SeqCst)
}

pub fn check_stop() -> Result<()> {
    if stopped() {
        Err(Error::Interrupted)
    } else {
        Ok(())
    }
}

/// Sleeps, waking every 50 ms to honour Ctrl-C.
pub fn sleep(d: Duration) -> Result<()> {
    let end = Instant::now() + d;
    loop {
        check_stop()?;
        let now = Instant::now();
        if now >= end {
            return Ok(());
        }
        std::thread::sleep((end - now).min(Duration::from_millis(50)));
    }
}

/// Polls `f` every 50 ms until it returns `Some`, for at most `timeout`.
pub fn wait_for<T>(timeout: Duration, mut f: impl FnMut() -> Option<T>) -> Result<Option<T>> {
    let end = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return Ok(Some(v));
        }
        if Instant::now() >= end {
            return Ok(None);
        }
        sleep(Duration::from_millis(50))?;
    }
}

// ------------------------------------------------------------------ commands

/// `prog` run inside namespace `ns` (through `ip netns exec`, which also mounts that namespace's
/// sysfs), or directly when `ns` is `None`.
pub fn ns_cmd(ns: Option<&str>, prog: impl AsRef<std::ffi::OsStr>) -> Command {
    match ns {
        Some(n) => {
            let mut c = Command::new("ip");
            c.args(["netns", "exec", n]).arg(prog);
            c
        }
        None => Command::new(prog),
    }
}

/// Runs a command to completion; returns its stdout, or an error quoting its stderr. Refuses
/// to start anything after Ctrl-C (cleanup code uses [`run_always`]).
pub fn run(cmd: &mut Command) -> Result<String> {
    check_stop()?;
    run_always(cmd)
}

/// [`run`] even after Ctrl-C: for cleanup.
pub fn run_always(cmd: &mut Command) -> Result<String> {
    let desc = describe(cmd);
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run {desc}: {e}"))?;
    if !out.status.success() {
        bail!(
            "{desc} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Runs `sh -c script` in namespace `ns`.
pub fn sh(ns: Option<&str>, script: &str) -> Result<String> {
    run(ns_cmd(ns, "sh").args(["-c", script]))
}

/// `ip ARGS...`
pub fn ip(args: &[&str]) -> Result<String> {
    run(Command::new("ip").args(args))
}

pub fn describe(cmd: &Command) -> String {
    let mut s = cmd.get_program().to_string_lossy().into_owned();
    for a in cmd.get_args() {
        s.push(' ');
        s.push_str(&a.to_string_lossy());
    }
    s
}

/// Makes a spawned child die with us: its own process group (a Ctrl-C on the terminal reaches
/// only us, and we stop children in order) and a parent-death signal (if we are killed with
/// SIGKILL, no busy-polling child survives). Spawn from the main thread: the parent-death signal
/// fires when the *thread* that forked exits.
pub fn guard_child(cmd: &mut Command, death_signal: i32) -> &mut Command {
    let parent = std::process::id() as libc::pid_t;
    // SAFETY: the closure runs between fork and exec and calls only async-signal-safe functions
    // (setpgid, prctl, getppid, _exit).
    unsafe {
        cmd.pre_exec(move || {
            libc::setpgid(0, 0);
            libc::prctl(
                libc::PR_SET_PDEATHSIG,
                death_signal as libc::c_ulong,
                0,
                0,
                0,
            );
            if libc::getppid() != parent {
                libc::_exit(1);
            }
            Ok(())
        })
    }
}

/// Sends `sig` to `pid`.
pub fn kill(pid: i32, sig: i32) -> bool {
    // SAFETY: kill(2) on a pid we started; failure (already gone) is harmless.
    unsafe { libc::kill(pid, sig) == 0 }
}

/// Stops a child: SIGTERM (or `first`), then SIGKILL after `grace`; reaps it.
pub fn stop_child(child: &mut Child, first: i32, grace: Duration) {
    if let Ok(Some(_)) = child.try_wait() {
        return;
    }
    kill(child.id() as i32, first);
    let end = Instant::now() + grace;
    while Instant::now() < end {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// Waits for a child to exit by itself, at most `d`; true if it did.
pub fn wait_exit(child: &mut Child, d: Duration) -> bool {
    let end = Instant::now() + d;
    loop {
        if let Ok(Some(_)) = child.try_wait() {
            return true;
        }
        if Instant::now() >= end {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The last `n` lines of a log file (for error messages).
pub fn tail(path: &Path, n: usize) -> String {
    let s = std::fs::read_to_string(path).unwrap_or_default();
    let v: Vec<&str> = s.lines().collect();
    v[v.len().saturating_sub(n)..].join("\n")
}

// ------------------------------------------------------------------ line-protocol children

/// A child process we talk to by lines: commands on its stdin, replies on its stdout (read by a
/// thread so every wait has a timeout and honours Ctrl-C).
pub struct LineChild {
    pub name: String,
    pub child: Child,
    stdin: Option<ChildStdin>,
    lines: mpsc::Receiver<String>,
    pub log: PathBuf,
}

impl LineChild {
    pub fn spawn(name: &str, mut cmd: Command, log: PathBuf, death_signal: i32) -> Result<Self> {
        let errf = std::fs::File::create(&log)
            .map_err(|e| format!("cannot create {}: {e}", log.display()))?;
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(errf));
        guard_child(&mut cmd, death_signal);
        let desc = describe(&cmd);
        let mut child = cmd
            .spawn()
            .map_err(|e| format!("cannot start {desc}: {e}"))?;
        let stdout = child.stdout.take().expect("piped stdout");
        let stdin = child.stdin.take();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                match line {
                    Ok(l) => {
                        if tx.send(l).is_err() {
                            break;
                        }
                    }
                    Err(_) => break,
                }
            }
        });
        Ok(LineChild {
            name: name.to_string(),
            child,
            stdin,
            lines: rx,
            log,
        })
    }

    /// The next line starting with one of `prefixes` (other lines are skipped), within `timeout`.
    pub fn expect(&mut self, prefixes: &[&str], timeout: Duration) -> Result<String> {
        let end = Instant::now() + timeout;
        loop {
            check_stop()?;
            let now = Instant::now();
            if now >= end {
                bail!(
                    "{}: no reply within {:?}; its log:\n{}",
                    self.name,
                    timeout,
                    tail(&self.log, 15)
                );
            }
            match self
                .lines
                .recv_timeout((end - now).min(Duration::from_millis(50)))
            {
                Ok(l) => {
                    if prefixes.iter().any(|p| l.starts_with(p)) {
                        return Ok(l);
                    }
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    let _ = wait_exit(&mut self.child, Duration::from_millis(500));
                    bail!(
                        "{} exited ({}); its log:\n{}",
                        self.name,
                        self.child
                            .try_wait()
                            .ok()
                            .flatten()
                            .map(|s| s.to_string())
                            .unwrap_or_else(|| "still running".into()),
                        tail(&self.log, 15)
                    );
                }
            }
        }
    }

    pub fn send(&mut self, line: &str) -> Result<()> {
        let name = self.name.clone();
        let w = self
            .stdin
            .as_mut()
            .ok_or_else(|| format!("{name}: stdin closed"))?;
        writeln!(w, "{line}")
            .and_then(|_| w.flush())
            .map_err(|e| Error::Msg(format!("{name}: {e}")))
    }

    /// Closes stdin (the agent's signal to quit), waits a little, then kills.
    pub fn stop(&mut self, grace: Duration) {
        self.stdin.take();
        if !wait_exit(&mut self.child, grace) {
            stop_child(&mut self.child, libc::SIGTERM, Duration::from_secs(1));
        }
    }
}

impl Drop for LineChild {
    fn drop(&mut self) {
        self.stop(Duration::from_secs(3));
    }
}

// ------------------------------------------------------------------ CPUs and tasks

pub fn allowed_cpus() -> Vec<usize> {
    // SAFETY: zeroed cpu_set_t is a valid empty set; sched_getaffinity fills it.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        if libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) != 0 {
            return vec![0];
        }
        (0..libc::CPU_SETSIZE as usize)
            .filter(|&c| libc::CPU_ISSET(c, &set))
            .collect()
    }
}

/// Pins task `pid` (0 = the calling thread) to `cpus`.
pub fn set_affinity(pid: i32, cpus: &[usize]) -> Result<()> {
    // SAFETY: builds a cpu_set_t from in-range CPU numbers and applies it to one task.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        for &c in cpus {
            if c >= libc::CPU_SETSIZE as usize {
                bail!("CPU {c} out of range");
            }
            libc::CPU_SET(c, &mut set);
        }
        if libc::sched_setaffinity(pid, std::mem::size_of::<libc::cpu_set_t>(), &set) != 0 {
            bail!(
                "sched_setaffinity(pid {pid}, {cpus:?}): {}",
                std::io::Error::last_os_error()
            );
        }
    }
    Ok(())
}

/// SCHED_FIFO at `prio` for task `pid`.
pub fn set_fifo(pid: i32, prio: i32) -> Result<()> {
    let p = libc::sched_param {
        sched_priority: prio,
    };
    // SAFETY: sched_setscheduler with a valid sched_param for one task.
    if unsafe { libc::sched_setscheduler(pid, libc::SCHED_FIFO, &p) } != 0 {
        bail!(
            "sched_setscheduler(pid {pid}, FIFO {prio}): {}",
            std::io::Error::last_os_error()
        );
    }
    Ok(())
}

pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// Threaded-NAPI kthreads of interface `ifname` (named `napi/IF-ID`, truncated to 15 chars).
/// Interface names are per namespace but kthread names are global: scenario interfaces have
/// names of their own (`xp*`) for that reason.
pub fn napi_pids(ifname: &str) -> Vec<i32> {
    let full = format!("napi/{ifname}-");
    let prefix: String = full.chars().take(15).collect();
    let mut v = Vec::new();
    if let Ok(d) = std::fs::read_dir("/proc") {
        for e in d.flatten() {
            let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
                continue;
            };
            let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
            if comm.trim_end().starts_with(&prefix) {
                v.push(pid);
            }
        }
    }
    v.sort_unstable();
    v
}

/// CPU time a task has run, in ns (`/proc/PID/schedstat`, first field).
pub fn sched_runtime_ns(pid: i32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/schedstat"))
        .ok()
        .and_then(|s| s.split_whitespace().next().and_then(|x| x.parse().ok()))
        .unwrap_or(0)
}

/// Threads of process `pid` whose name starts with `prefix`, as (pid, tid).
pub fn threads_named(pid: i32, prefix: &str) -> Vec<(i32, i32)> {
    let mut v = Vec::new();
    if let Ok(d) = std::fs::read_dir(format!("/proc/{pid}/task")) {
        for e in d.flatten() {
            let Some(tid) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
                continue;
            };
            let comm =
                std::fs::read_to_string(format!("/proc/{pid}/task/{tid}/comm")).unwrap_or_default();
            if comm.starts_with(prefix) {
                v.push((pid, tid));
            }
        }
    }
    v.sort_unstable();
    v
}

/// Sum over threads of (ns on CPU, ns runnable but waiting for a CPU) from schedstat: the
/// second is how long something else held the switch core while the switch wanted it.
pub fn sched_run_wait_ns(threads: &[(i32, i32)]) -> (u64, u64) {
    let mut run = 0u64;
    let mut wait = 0u64;
    for (pid, tid) in threads {
        let s = std::fs::read_to_string(format!("/proc/{pid}/task/{tid}/schedstat"))
            .unwrap_or_default();
        let mut it = s.split_whitespace().map(|x| x.parse::<u64>().unwrap_or(0));
        run += it.next().unwrap_or(0);
        wait += it.next().unwrap_or(0);
    }
    (run, wait)
}

/// Per-CPU (busy, total) jiffies from /proc/stat; busy excludes idle and iowait.
pub fn cpu_ticks() -> HashMap<usize, (u64, u64)> {
    let mut m = HashMap::new();
    let s = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    for l in s.lines() {
        let mut it = l.split_whitespace();
        let Some(name) = it.next() else { continue };
        let Some(n) = name
            .strip_prefix("cpu")
            .and_then(|x| x.parse::<usize>().ok())
        else {
            continue;
        };
        let v: Vec<u64> = it.filter_map(|x| x.parse().ok()).collect();
        if v.len() < 5 {
            continue;
        }
        let total: u64 = v.iter().take(8).sum();
        let idle = v[3] + v[4];
        m.insert(n, (total - idle, total));
    }
    m
}

/// Busy percentage of each CPU between two `cpu_ticks` snapshots.
pub fn cpu_busy_pct(
    a: &HashMap<usize, (u64, u64)>,
    b: &HashMap<usize, (u64, u64)>,
) -> Vec<(usize, f64)> {
    let mut v: Vec<(usize, f64)> = b
        .iter()
        .filter_map(|(c, (bb, bt))| {
            let (ab, at) = a.get(c)?;
            let dt = bt.saturating_sub(*at);
            (dt > 0).then(|| (*c, bb.saturating_sub(*ab) as f64 * 100.0 / dt as f64))
        })
        .collect();
    v.sort_by_key(|x| x.0);
    v
}

/// CPU time of every process (all its threads), for spotting other load on the machine.
#[derive(Clone, Default)]
pub struct ProcSnap {
    at: Option<Instant>,
    procs: HashMap<i32, (String, u64)>,
}

pub fn clk_tck() -> f64 {
    // SAFETY: sysconf has no preconditions.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 {
        t as f64
    } else {
        100.0
    }
}

impl ProcSnap {
    pub fn take() -> Self {
        let mut procs = HashMap::new();
        if let Ok(d) = std::fs::read_dir("/proc") {
            for e in d.flatten() {
                let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
                    continue;
                };
                let Ok(s) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
                    continue;
                };
                // comm is in parentheses and may contain spaces
                let (Some(l), Some(r)) = (s.find('('), s.rfind(')')) else {
                    continue;
                };
                let comm = s[l + 1..r].to_string();
                let f: Vec<&str> = s[r + 2..].split_whitespace().collect();
                // fields after comm: state(0) ... utime(11) stime(12)
                if f.len() < 13 {
                    continue;
                }
                let t = f[11].parse::<u64>().unwrap_or(0) + f[12].parse::<u64>().unwrap_or(0);
                procs.insert(pid, (comm, t));
            }
        }
        ProcSnap {
            at: Some(Instant::now()),
            procs,
        }
    }

    /// Processes that used more than `min_pct` % of one CPU between `self` and `later`, most
    /// first, skipping `exclude` pids. Processes born in between count with all their time.
    pub fn busy_since(&self, later: &ProcSnap, min_pct: f64, exclude: &[i32]) -> Vec<Load> {
        let (Some(a), Some(b)) = (self.at, later.at) else {
            return Vec::new();
        };
        let dt = b.duration_since(a).as_secs_f64().max(1e-3);
        let tck = clk_tck();
        let mut v: Vec<Load> = later
            .procs
            .iter()
            .filter(|(pid, _)| !exclude.contains(pid))
            .filter_map(|(pid, (comm, t1))| {
                let t0 = self.procs.get(pid).map(|x| x.1).unwrap_or(0);
                let pct = t1.saturating_sub(t0) as f64 / tck / dt * 100.0;
                (pct >= min_pct).then(|| Load {
                    pid: *pid,
                    comm: comm.clone(),
                    cpu_pct: pct,
                })
            })
            .collect();
        v.sort_by(|x, y| y.cpu_pct.total_cmp(&x.cpu_pct));
        v
    }
}

#[derive(Clone, Debug)]
pub struct Load {
    pub pid: i32,
    pub comm: String,
    pub cpu_pct: f64,
}

pub fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

// ------------------------------------------------------------------ timed commands, memory

/// What [`run_timed`] saw.
#[derive(Clone, Debug, Default)]
pub struct Timed {
    /// From just before the spawn to the exit (reaped by a thread blocked in wait4).
    pub wall_s: f64,
    /// CPU time of the command itself (user + system, from wait4's rusage).
    pub cpu_s: f64,
    /// Lines of stdout containing the `count` pattern (0 when not counting).
    pub lines: u64,
    /// Bytes of stdout (0 when not counting).
    pub bytes: u64,
    pub success: bool,
    pub status: String,
    /// The first lines of stderr.
    pub stderr: String,
}

/// Runs `cmd` (a child that dies with us), timing it; stdout is discarded, or read and its lines
/// containing `count` counted. Gives up (SIGKILL) after `timeout`; honours Ctrl-C.
pub fn run_timed(
    cmd: &mut Command,
    timeout: Duration,
    count: Option<&str>,
    stderr_file: &Path,
) -> Result<Timed> {
    use std::io::Read;
    check_stop()?;
    let errf = std::fs::File::create(stderr_file)
        .map_err(|e| format!("cannot create {}: {e}", stderr_file.display()))?;
    cmd.stdin(Stdio::null())
        .stdout(if count.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stderr(Stdio::from(errf));
    guard_child(cmd, libc::SIGKILL);
    let desc = describe(cmd);
    let t0 = Instant::now();
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("cannot start {desc}: {e}"))?;
    let pid = child.id() as i32;
    let reader = child.stdout.take().map(|mut out| {
        let pat = count.unwrap_or("").as_bytes().to_vec();
        std::thread::spawn(move || {
            // count lines containing `pat` without building strings
            let mut lines = 0u64;
            let mut bytes = 0u64;
            let mut cur: Vec<u8> = Vec::with_capacity(512);
            let mut buf = vec![0u8; 1 << 16];
            let has = |l: &[u8]| pat.is_empty() || l.windows(pat.len()).any(|w| w == pat);
            loop {
                let n = match out.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => n,
                };
                bytes += n as u64;
                for &b in &buf[..n] {
                    if b == b'\n' {
                        if has(&cur) {
                            lines += 1;
                        }
                        cur.clear();
                    } else {
                        cur.push(b);
                    }
                }
            }
            if !cur.is_empty() && has(&cur) {
                lines += 1;
            }
            (lines, bytes)
        })
    });
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut status: libc::c_int = 0;
        // SAFETY: an all-zero rusage is a valid value of this plain C struct.
        let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
        // SAFETY: wait4 on our own child's pid, with valid pointers for both out-parameters.
        let r = unsafe { libc::wait4(pid, &mut status, 0, &mut ru) };
        let end = Instant::now();
        let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
        let _ = tx.send((r, status, end, tv(ru.ru_utime) + tv(ru.ru_stime)));
    });
    // the child is reaped by the thread above, never through `child` (dropping a Child neither
    // waits nor kills)
    drop(child);
    let deadline = t0 + timeout;
    let (r, status, end, cpu) = loop {
        match rx.recv_timeout(Duration::from_millis(50)) {
            Ok(v) => break v,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                if stopped() || Instant::now() >= deadline {
                    kill(pid, libc::SIGKILL);
                    let _ = rx.recv_timeout(Duration::from_secs(5));
                    if stopped() {
                        return Err(Error::Interrupted);
                    }
                    bail!("{desc}: no result within {timeout:?} (killed)");
                }
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => bail!("{desc}: waiter thread died"),
        }
    };
    let (lines, bytes) = reader.and_then(|h| h.join().ok()).unwrap_or((0, 0));
    if r != pid {
        bail!("{desc}: wait4 failed");
    }
    let success = libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0;
    let status_s = if libc::WIFEXITED(status) {
        format!("exit status {}", libc::WEXITSTATUS(status))
    } else if libc::WIFSIGNALED(status) {
        format!("signal {}", libc::WTERMSIG(status))
    } else {
        format!("status {status}")
    };
    Ok(Timed {
        wall_s: end.duration_since(t0).as_secs_f64(),
        cpu_s: cpu,
        lines,
        bytes,
        success,
        status: status_s,
        stderr: tail_head(stderr_file, 6),
    })
}

/// The first `n` lines of a file.
pub fn tail_head(path: &Path, n: usize) -> String {
    let s = std::fs::read_to_string(path).unwrap_or_default();
    s.lines().take(n).collect::<Vec<_>>().join("\n")
}

/// `VmRSS` and `VmHWM` (peak) of a process, in KiB.
pub fn rss_kib(pid: i32) -> Option<(u64, u64)> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let get = |k: &str| {
        s.lines()
            .find(|l| l.starts_with(k))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<u64>().ok())
    };
    Some((get("VmRSS:")?, get("VmHWM:").unwrap_or(0)))
}

/// CPU time (user + system, all threads) a process has used so far, in seconds.
pub fn proc_cpu_s(pid: i32) -> Option<f64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let r = s.rfind(')')?;
    let f: Vec<&str> = s[r + 2..].split_whitespace().collect();
    let t = f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?;
    Some(t as f64 / clk_tck())
}

/// The pid written in a pid file.
pub fn read_pidfile(p: &Path) -> Option<i32> {
    std::fs::read_to_string(p).ok()?.trim().parse().ok()
}

/// The cases of round `round` in the order they run: reversed every other round, so that no
/// switch always goes first.
pub fn round_order<C: Clone>(cases: &[C], round: u64) -> Vec<C> {
    let mut order = cases.to_vec();
    if round.is_multiple_of(2) {
        order.reverse();
    }
    order
}

/// What the interleaved rounds of a scenario produced.
pub struct Rounds<R> {
    pub runs: Vec<R>,
    /// `{"case", "round", "error"}` of each run that failed.
    pub failed: Vec<serde_json::Value>,
    /// Ctrl-C stopped the rounds.
    pub interrupted: bool,
    /// `--wait-quiet` waits, see [`quiet_before`].
    pub quiet_log: Vec<serde_json::Value>,
}

/// When no run completed: says so (and where the logs are) and gives the scenario's exit.
pub fn none_completed(
    n_runs: usize,
    interrupted: bool,
    logs: Option<&Path>,
) -> Option<Result<i32>> {
    if n_runs > 0 {
        return None;
    }
    crate::say!("no run completed: no results written");
    if let Some(l) = logs {
        crate::say!("logs: {}", l.display());
    }
    Some(if interrupted {
        Err(Error::Interrupted)
    } else {
        Ok(1)
    })
}

/// Runs `n` rounds of `cases`, the order alternating per round ([`round_order`]), each run
/// after a quiet second if asked ([`quiet_before`]): `run` measures one case in one round,
/// `show` prints a completed run. A failed run is printed and recorded, and the rounds go on;
/// Ctrl-C ends them.
#[allow(clippy::too_many_arguments)]
pub fn rounds<C: Clone, R>(
    n: usize,
    cases: &[C],
    name: impl Fn(&C) -> &'static str,
    wait_quiet: f64,
    quiet_pct: f64,
    mut run: impl FnMut(C, usize) -> Result<R>,
    mut show: impl FnMut(usize, &C, &R),
) -> Rounds<R> {
    let mut out = Rounds {
        runs: Vec::new(),
        failed: Vec::new(),
        interrupted: false,
        quiet_log: Vec::new(),
    };
    'rounds: for round in 1..=n {
        for c in round_order(cases, round as u64) {
            let case = name(&c);
            if quiet_before(
                wait_quiet,
                quiet_pct,
                case,
                round as u64,
                &mut out.quiet_log,
            )
            .is_err()
            {
                out.interrupted = true;
                break 'rounds;
            }
            match run(c.clone(), round) {
                Ok(r) => {
                    show(round, &c, &r);
                    out.runs.push(r);
                }
                Err(Error::Interrupted) => {
                    out.interrupted = true;
                    break 'rounds;
                }
                Err(Error::Msg(e)) => {
                    crate::say!("  round {round} {case:<4} FAILED: {e}");
                    out.failed
                        .push(serde_json::json!({"case": case, "round": round, "error": e}));
                }
            }
        }
    }
    out
}

/// `--wait-quiet` before one run (nothing when `max_s` is 0): waits for a quiet second and
/// records how long it took in `log`; `Err` when interrupted.
pub fn quiet_before(
    max_s: f64,
    pct: f64,
    case: &str,
    round: u64,
    log: &mut Vec<serde_json::Value>,
) -> Result<()> {
    if max_s > 0.0 {
        let (w, b) = wait_quiet(max_s, pct)?;
        log.push(
            serde_json::json!({"case": case, "round": round, "waited_s": w, "cpu_busy_pct": b}),
        );
    }
    Ok(())
}

/// Waits (at most `max_s` seconds) for a second in which the CPUs, all together, are busy less
/// than `pct` %. Returns (seconds waited, busy % of the last one-second sample).
pub fn wait_quiet(max_s: f64, pct: f64) -> Result<(f64, f64)> {
    let t = Instant::now();
    loop {
        let a = cpu_ticks();
        sleep(Duration::from_secs(1))?;
        let b = cpu_ticks();
        let v = cpu_busy_pct(&a, &b);
        let busy = v.iter().map(|x| x.1).sum::<f64>() / v.len().max(1) as f64;
        let waited = t.elapsed().as_secs_f64();
        if busy < pct || waited >= max_s {
            return Ok((waited, busy));
        }
    }
}

// ------------------------------------------------------------------ time

#[inline(always)]
pub fn rdtsc() -> u64 {
    #[cfg(target_arch = "x86_64")]
    {
        // SAFETY: RDTSC has no preconditions on x86_64; it only reads the time-stamp counter.
        unsafe { core::arch::x86_64::_rdtsc() }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        use std::sync::OnceLock;
        static START: OnceLock<Instant> = OnceLock::new();
        START.get_or_init(Instant::now).elapsed().as_nanos() as u64
    }
}

/// TSC ticks per second, measured against the monotonic clock over `d`.
pub fn tsc_hz(d: Duration) -> f64 {
    let t0 = Instant::now();
    let c0 = rdtsc();
    std::thread::sleep(d);
    let c1 = rdtsc();
    let dt = t0.elapsed().as_secs_f64();
    (c1.wrapping_sub(c0)) as f64 / dt
}

/// `YYYY-MM-DDTHH:MM:SSZ` and the compact `YYYYMMDDTHHMMSSZ` for now (UTC).
pub fn utc_now() -> (String, String) {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let days = (secs / 86400) as i64;
    let rem = secs % 86400;
    let (h, mi, s) = (rem / 3600, rem % 3600 / 60, rem % 60);
    // civil-from-days (H. Hinnant)
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let mut y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    if m <= 2 {
        y += 1;
    }
    (
        format!("{y:04}-{m:02}-{d:02}T{h:02}:{mi:02}:{s:02}Z"),
        format!("{y:04}{m:02}{d:02}T{h:02}{mi:02}{s:02}Z"),
    )
}

// ------------------------------------------------------------------ statistics

/// Median (mean of the two middle values for an even count), min and max.
pub fn summary(v: &[f64]) -> Option<(f64, f64, f64)> {
    let mut s: Vec<f64> = v.iter().copied().filter(|x| x.is_finite()).collect();
    if s.is_empty() {
        return None;
    }
    s.sort_by(|a, b| a.total_cmp(b));
    let n = s.len();
    let med = if n % 2 == 1 {
        s[n / 2]
    } else {
        (s[n / 2 - 1] + s[n / 2]) / 2.0
    };
    Some((med, s[0], s[n - 1]))
}

/// Parses `aa:bb:cc:dd:ee:ff`.
pub fn parse_mac(s: &str) -> Option<[u8; 6]> {
    let mut m = [0u8; 6];
    let mut it = s.trim().split(':');
    for b in m.iter_mut() {
        *b = u8::from_str_radix(it.next()?, 16).ok()?;
    }
    it.next().is_none().then_some(m)
}

pub fn fmt_mac(m: &[u8; 6]) -> String {
    m.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// Parses a CPU list such as `1`, `0,1`, `2-5,7`.
pub fn parse_cpu_list(s: &str) -> std::result::Result<Vec<usize>, String> {
    let mut v = Vec::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        if let Some((a, b)) = part.split_once('-') {
            let a: usize = a.parse().map_err(|_| format!("bad CPU list {s:?}"))?;
            let b: usize = b.parse().map_err(|_| format!("bad CPU list {s:?}"))?;
            if a > b || b - a > 1024 {
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
    v.sort_unstable();
    v.dedup();
    Ok(v)
}

/// Writes a scenario's JSON document to `explicit` or to perf/results/SCENARIO-STAMP.json and
/// says where; an unwritable file is reported, not fatal (the figures were already printed).
pub fn write_results(
    scenario: &str,
    stamp: &str,
    explicit: Option<&Path>,
    doc: &serde_json::Value,
) {
    let path = explicit.map(Path::to_path_buf).unwrap_or_else(|| {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("results")
            .join(format!("{scenario}-{stamp}.json"))
    });
    if let Some(dir) = path.parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    match serde_json::to_string_pretty(doc)
        .map_err(|e| e.to_string())
        .and_then(|t| std::fs::write(&path, t + "\n").map_err(|e| e.to_string()))
    {
        Ok(()) => say!("results: {}", path.display()),
        Err(e) => eprintln!("xvs-perf {scenario}: cannot write {}: {e}", path.display()),
    }
}

/// A scenario's command line: `--flag value` or `--flag=value`, one flag at a time.
pub struct Flags<'a> {
    it: std::slice::Iter<'a, String>,
    flag: String,
    inline: Option<String>,
}

impl<'a> Flags<'a> {
    pub fn new(args: &'a [String]) -> Flags<'a> {
        Flags {
            it: args.iter(),
            flag: String::new(),
            inline: None,
        }
    }

    /// The next flag (without its `=value`), or None at the end.
    pub fn next_flag(&mut self) -> Option<String> {
        let a = self.it.next()?;
        (self.flag, self.inline) = match a.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f.to_string(), Some(v.to_string())),
            _ => (a.clone(), None),
        };
        Some(self.flag.clone())
    }

    /// The current flag's value: after `=`, else the next argument.
    pub fn value(&mut self) -> std::result::Result<String, String> {
        match self.inline.take() {
            Some(v) => Ok(v),
            None => self
                .it
                .next()
                .cloned()
                .ok_or_else(|| format!("{} needs a value", self.flag)),
        }
    }
}

/// Parsed options, or the exit status after printing the usage (`-h`: the parser's empty
/// error, status 0) or the error and the usage (status 2).
pub fn parse_or_usage<O>(
    scenario: &str,
    usage: &str,
    parsed: std::result::Result<O, String>,
) -> std::result::Result<O, i32> {
    match parsed {
        Ok(o) => Ok(o),
        Err(e) if e.is_empty() => {
            print!("{usage}");
            Err(0)
        }
        Err(e) => {
            eprintln!("xvs-perf {scenario}: {e}\n\n{usage}");
            Err(2)
        }
    }
}

/// Runs a scenario with the signal handlers installed; its exit status (130 when interrupted).
pub fn run_scenario(scenario: &str, run: impl FnOnce() -> Result<i32>) -> i32 {
    install_signal_handlers();
    match run() {
        Ok(code) => code,
        Err(Error::Interrupted) => {
            eprintln!("xvs-perf {scenario}: interrupted; cleaned up");
            130
        }
        Err(Error::Msg(m)) => {
            eprintln!("xvs-perf {scenario}: {m}");
            1
        }
    }
}

#[test]
fn flags_take_inline_and_separate_values() {
    let args: Vec<String> = ["--runs=3", "--cases", "xvs", "--keep-logs", "--json"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let mut f = Flags::new(&args);
    assert_eq!(f.next_flag().as_deref(), Some("--runs"));
    assert_eq!(f.value(), Ok("3".to_string()));
    assert_eq!(f.next_flag().as_deref(), Some("--cases"));
    assert_eq!(f.value(), Ok("xvs".to_string()));
    assert_eq!(f.next_flag().as_deref(), Some("--keep-logs"));
    assert_eq!(f.next_flag().as_deref(), Some("--json"));
    assert_eq!(f.value(), Err("--json needs a value".to_string()));
    assert_eq!(f.next_flag(), None);
}

/// Environment variable `k`, or `d` when unset or empty.
pub fn env_or(k: &str, d: &str) -> String {
    std::env::var(k)
        .ok()
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| d.to_string())
}

/// (median, min, max) as JSON.
pub fn tri(v: Option<(f64, f64, f64)>) -> serde_json::Value {
    match v {
        Some((m, lo, hi)) => serde_json::json!({"median": m, "min": lo, "max": hi}),
        None => serde_json::Value::Null,
    }
}

/// (median, min, max) as "m (lo..hi)".
pub fn fmt3(v: Option<(f64, f64, f64)>, prec: usize) -> String {
    match v {
        Some((m, lo, hi)) => format!("{m:.prec$} ({lo:.prec$}..{hi:.prec$})"),
        None => "-".into(),
    }
}

#[cfg(test)]
mod tests {

    #[test]
    fn rounds_alternate_the_case_order() {
        assert_eq!(round_order(&["xvs", "ovs"], 1), ["xvs", "ovs"]);
        assert_eq!(round_order(&["xvs", "ovs"], 2), ["ovs", "xvs"]);
        let mut log = Vec::new();
        quiet_before(0.0, 25.0, "xvs", 1, &mut log).unwrap();
        assert!(log.is_empty(), "no wait asked, nothing logged");
    }

    use super::*;

    #[test]
    fn summary_is_median_min_max() {
        assert_eq!(summary(&[3.0, 1.0, 2.0]), Some((2.0, 1.0, 3.0)));
        assert_eq!(summary(&[4.0, 1.0, 2.0, 3.0]), Some((2.5, 1.0, 4.0)));
        assert_eq!(summary(&[]), None);
        assert_eq!(summary(&[f64::NAN, 5.0]), Some((5.0, 5.0, 5.0)));
    }

    #[test]
    fn macs_and_cpu_lists_parse() {
        assert_eq!(parse_mac("02:00:00:00:00:0a"), Some([2, 0, 0, 0, 0, 10]));
        assert_eq!(parse_mac("02:00:00:00:00"), None);
        assert_eq!(fmt_mac(&[2, 0, 0, 0, 0, 10]), "02:00:00:00:00:0a");
        assert_eq!(parse_cpu_list("1"), Ok(vec![1]));
        assert_eq!(parse_cpu_list("2-4,0"), Ok(vec![0, 2, 3, 4]));
        assert!(parse_cpu_list("").is_err());
        assert!(parse_cpu_list("3-1").is_err());
    }

    #[test]
    fn utc_timestamp_has_the_right_shape() {
        let (long, short) = utc_now();
        assert_eq!(long.len(), 20);
        assert!(long.ends_with('Z') && long.contains('T'));
        assert_eq!(short.len(), 16);
        assert!(short.starts_with("20"));
    }

    #[test]
    fn proc_snapshots_see_this_process() {
        let a = ProcSnap::take();
        let mut x = 0u64;
        let t = Instant::now();
        while t.elapsed() < Duration::from_millis(60) {
            x = x.wrapping_add(std::hint::black_box(1));
        }
        let b = ProcSnap::take();
        assert!(x > 0);
        let me = std::process::id() as i32;
        assert!(b.procs.contains_key(&me));
        let _ = a.busy_since(&b, 0.0, &[]);
        assert!(!cpu_ticks().is_empty());
    }
}
