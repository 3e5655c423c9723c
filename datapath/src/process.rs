//! Process-level chores of a system daemon, as ovs-vswitchd does them (lib/daemon-unix.c):
//! `--detach` (fork, the parent waiting until the child is ready), pid files and
//! `--mlockall`.
//!
//! Detaching: the parent forks and then only reads a pipe. The child carries on starting the
//! switch; once the control socket is bound and the pid file written it calls
//! [`notify_ready`], which sends one byte, closes the pipe and points stdout/stderr at
//! /dev/null; the parent sees the byte and exits 0, so `xvswitchd --detach && ovs-appctl ...`
//! works. If the child fails first it sends its error text instead ([`notify_failure`]) and the
//! parent prints it and exits 1; if it dies without a word, the parent reports how it died.

use std::io;
use std::path::Path;
use std::sync::atomic::{AtomicI32, Ordering};

/// The child's end of the readiness pipe while it is detaching; -1 otherwise.
static READY_FD: AtomicI32 = AtomicI32::new(-1);

fn cvt(r: libc::c_int) -> io::Result<libc::c_int> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

/// Points `fd` at /dev/null.
fn to_dev_null(fd: libc::c_int, write: bool) -> io::Result<()> {
    let flags = if write {
        libc::O_WRONLY
    } else {
        libc::O_RDONLY
    };
    // SAFETY: open of a NUL-terminated constant path; the fd is ours until closed below.
    let null = cvt(unsafe { libc::open(c"/dev/null".as_ptr(), flags | libc::O_CLOEXEC) })?;
    // SAFETY: dup2 onto a standard fd (the new fd is not close-on-exec, as stdio should be);
    // `null` is a valid fd we own and close once duplicated.
    let r = unsafe { libc::dup2(null, fd) };
    // SAFETY: closes the fd opened above, which nothing else refers to.
    unsafe { libc::close(null) };
    cvt(r).map(|_| ())
}

/// Forks into the background. Returns in the child (now a session leader, in `/` unless
/// `no_chdir`, stdin on /dev/null); the parent never returns: it waits for the child's
/// [`notify_ready`] or failure and exits accordingly.
///
/// Must be called before any thread is spawned: only the calling thread survives a fork.
pub fn detach(no_chdir: bool) -> io::Result<()> {
    let mut fds = [0 as libc::c_int; 2];
    // SAFETY: pipe2 writes two fds into the two-element array.
    cvt(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) })?;
    let (rd, wr) = (fds[0], fds[1]);
    // SAFETY: the process has a single thread (the caller's contract), so the child gets a
    // consistent copy of every lock and allocation; both sides only continue with ordinary
    // code.
    let pid = cvt(unsafe { libc::fork() })?;
    if pid > 0 {
        // SAFETY: the parent does not write to the pipe; closing its copy of the write end
        // lets it see end-of-file when the child closes (or dies).
        unsafe { libc::close(wr) };
        wait_for_child(rd, pid);
    }
    // SAFETY: the child does not read the pipe.
    unsafe { libc::close(rd) };
    READY_FD.store(wr, Ordering::SeqCst);
    // SAFETY: setsid has no memory arguments; a fresh child is never a group leader.
    cvt(unsafe { libc::setsid() })?;
    if !no_chdir {
        std::env::set_current_dir("/")?;
    }
    to_dev_null(libc::STDIN_FILENO, false)?;
    Ok(())
}

/// The parent's side: exits 0 when the child reports ready, 1 otherwise.
fn wait_for_child(rd: libc::c_int, pid: libc::pid_t) -> ! {
    use std::io::Read as _;
    use std::os::fd::FromRawFd as _;
    // SAFETY: `rd` is the pipe's read end, owned by nothing else in the parent.
    let mut pipe = unsafe { std::fs::File::from_raw_fd(rd) };
    let mut msg = Vec::new();
    let _ = pipe.read_to_end(&mut msg);
    if msg == [0] {
        std::process::exit(0);
    }
    if !msg.is_empty() {
        eprintln!("xvswitchd: {}", String::from_utf8_lossy(&msg).trim_end());
        std::process::exit(1);
    }
    let mut status = 0;
    // SAFETY: waits for our own child; `status` is a valid out-pointer.
    let r = unsafe { libc::waitpid(pid, &mut status, 0) };
    if r == pid && libc::WIFSIGNALED(status) {
        eprintln!(
            "xvswitchd: the detached process was killed by signal {} while starting",
            libc::WTERMSIG(status)
        );
    } else if r == pid && libc::WIFEXITED(status) {
        eprintln!(
            "xvswitchd: the detached process exited with status {} while starting",
            libc::WEXITSTATUS(status)
        );
    } else {
        eprintln!("xvswitchd: the detached process stopped before it was ready");
    }
    std::process::exit(1);
}

/// Tells a waiting parent that the daemon is ready (no-op unless detaching), then sends
/// stdout and stderr to /dev/null: from now on the log file is the only log.
pub fn notify_ready() {
    let fd = READY_FD.swap(-1, Ordering::SeqCst);
    if fd < 0 {
        return;
    }
    // SAFETY: writes one byte from a live buffer to the pipe this module owns, then closes it.
    unsafe {
        libc::write(fd, [0u8].as_ptr().cast(), 1);
        libc::close(fd);
    }
    let _ = to_dev_null(libc::STDOUT_FILENO, true);
    let _ = to_dev_null(libc::STDERR_FILENO, true);
}

/// Sends a start-up error to a waiting parent, which prints it. Returns false when there is
/// no parent waiting (not detaching, or already ready): then the caller prints it.
pub fn notify_failure(msg: &str) -> bool {
    let fd = READY_FD.swap(-1, Ordering::SeqCst);
    if fd < 0 {
        return false;
    }
    let text = if msg.is_empty() {
        "start-up failed"
    } else {
        msg
    };
    use std::io::Write as _;
    use std::os::fd::FromRawFd as _;
    // SAFETY: `fd` is the pipe's write end, taken out of READY_FD so nothing else uses it; the
    // File closes it.
    let mut f = unsafe { std::fs::File::from_raw_fd(fd) };
    let _ = f.write_all(text.as_bytes());
    true
}

/// A whole-file write lock request (or query, with F_GETLK).
fn lock_request(fd: libc::c_int, cmd: libc::c_int) -> io::Result<libc::flock> {
    // SAFETY: a zeroed flock is a valid value; the fields that matter are set below.
    let mut l: libc::flock = unsafe { std::mem::zeroed() };
    l.l_type = libc::F_WRLCK as libc::c_short;
    l.l_whence = libc::SEEK_SET as libc::c_short;
    l.l_start = 0;
    l.l_len = 0;
    // SAFETY: fcntl with a record-lock command on an open fd and a valid flock pointer.
    cvt(unsafe { libc::fcntl(fd, cmd, &mut l) })?;
    Ok(l)
}

/// The pid file of a running daemon: written once ready, removed when dropped. Like
/// ovs-vswitchd's, it is write-locked (fcntl) for as long as the daemon runs: `ovs-appctl`
/// and `ovs-ctl` take a pid file nobody holds a lock on for stale, so the lock is what makes
/// `ovs-appctl -t ovs-vswitchd` work. The open file holds the lock, so it stays open.
pub struct Pidfile {
    path: std::path::PathBuf,
    _file: std::fs::File,
}

impl Pidfile {
    /// Writes our pid to `path` through a locked temporary file renamed into place, so a
    /// reader never sees a partial file or an unlocked one.
    pub fn create(path: &Path) -> io::Result<Pidfile> {
        use std::io::Write as _;
        use std::os::fd::AsRawFd as _;
        let mut tmp = path.as_os_str().to_owned();
        tmp.push(format!(".tmp{}", std::process::id()));
        let tmp = std::path::PathBuf::from(tmp);
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .truncate(true)
            .write(true)
            .open(&tmp)?;
        let done = lock_request(f.as_raw_fd(), libc::F_SETLK)
            .and_then(|_| f.write_all(format!("{}\n", std::process::id()).as_bytes()))
            .and_then(|_| std::fs::rename(&tmp, path));
        if let Err(e) = done {
            let _ = std::fs::remove_file(&tmp);
            return Err(e);
        }
        Ok(Pidfile {
            path: path.to_path_buf(),
            _file: f,
        })
    }
}

impl Drop for Pidfile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// The pid of the process holding the lock on the pid file at `path`, if any.
fn pidfile_holder(path: &Path) -> Option<libc::pid_t> {
    use std::os::fd::AsRawFd as _;
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .ok()?;
    let l = lock_request(f.as_raw_fd(), libc::F_GETLK).ok()?;
    (l.l_type != libc::F_UNLCK as libc::c_short).then_some(l.l_pid)
}

/// Whether the pid file at `path` belongs to a running switch daemon, which then must not be
/// replaced (ovs-vswitchd refuses the same unless `--overwrite-pidfile`): its lock is held, or,
/// unlocked, it names a live process called like a switch daemon. A pid that is gone, or reused
/// by another program, is stale.
pub fn check_pidfile(path: &Path, overwrite: bool) -> Result<(), String> {
    if overwrite {
        return Ok(());
    }
    if let Some(pid) = pidfile_holder(path) {
        return Err(format!(
            "{}: already running as pid {pid}, aborting (--overwrite-pidfile to start anyway)",
            path.display()
        ));
    }
    // an unlocked file may still come from a live daemon that does not lock (older
    // xvswitchd): judge by the pid
    let Ok(text) = std::fs::read_to_string(path) else {
        return Ok(());
    };
    let Ok(pid) = text.trim().parse::<libc::pid_t>() else {
        return Ok(());
    };
    if pid <= 0 || pid as u32 == std::process::id() {
        return Ok(());
    }
    // SAFETY: signal 0 only checks that the process exists and may be signalled.
    let alive = unsafe { libc::kill(pid, 0) } == 0
        || io::Error::last_os_error().raw_os_error() == Some(libc::EPERM);
    let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
    if alive && (comm.is_empty() || comm.contains("vswitchd")) {
        return Err(format!(
            "{}: already running as pid {pid}, aborting (--overwrite-pidfile to start anyway)",
            path.display()
        ));
    }
    Ok(())
}

/// Locks all current and future pages in memory (`--mlockall`): page faults would stall PMDs.
pub fn mlockall() -> io::Result<()> {
    // SAFETY: mlockall takes only flags.
    cvt(unsafe { libc::mlockall(libc::MCL_CURRENT | libc::MCL_FUTURE) }).map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pidfile_of_a_live_switch_is_refused() {
        let dir = std::env::temp_dir().join(format!("xvs-pidfile-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("x.pid");
        // missing, garbage, a dead pid: stale
        assert!(check_pidfile(&p, false).is_ok());
        std::fs::write(&p, "garbage\n").unwrap();
        assert!(check_pidfile(&p, false).is_ok());
        std::fs::write(&p, "999999999\n").unwrap();
        assert!(check_pidfile(&p, false).is_ok());
        // pid 1 lives but is not a switch daemon (and holds no lock)
        std::fs::write(&p, "1\n").unwrap();
        assert!(check_pidfile(&p, false).is_ok());
        // ours: the pid, in place (the lock is checked end to end with ovs-appctl)
        let held = Pidfile::create(&p).unwrap();
        assert_eq!(
            std::fs::read_to_string(&p).unwrap(),
            format!("{}\n", std::process::id())
        );
        drop(held);
        assert!(!p.exists(), "dropping the pid file removes it");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
