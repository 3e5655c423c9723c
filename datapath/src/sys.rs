//! Thread and process syscalls the daemon needs, each wrapped once with its safety argument.

use std::io;

/// CPUs this process may run on.
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

/// Pins the calling thread to the given CPUs.
pub fn pin_current_thread(cpus: &[usize]) -> io::Result<()> {
    // SAFETY: builds a cpu_set_t from in-range CPU numbers and applies it to this thread.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        for &c in cpus {
            if c >= libc::CPU_SETSIZE as usize {
                return Err(io::Error::from_raw_os_error(libc::EINVAL));
            }
            libc::CPU_SET(c, &mut set);
        }
        if libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// Sets how late the kernel may wake this thread from a timed sleep (default 50 µs); PMD naps
/// of a few microseconds need it small.
pub fn set_timer_slack_ns(ns: u64) {
    // SAFETY: prctl with an integer argument; failure is harmless.
    unsafe { libc::prctl(libc::PR_SET_TIMERSLACK, ns as libc::c_ulong, 0, 0, 0) };
}

/// Sleeps for `us` microseconds.
pub fn nap_us(us: u64) {
    let ts = libc::timespec {
        tv_sec: (us / 1_000_000) as libc::time_t,
        tv_nsec: ((us % 1_000_000) * 1000) as libc::c_long,
    };
    // SAFETY: nanosleep with a valid timespec; an early wake-up is fine.
    unsafe { libc::nanosleep(&ts, std::ptr::null_mut()) };
}

/// Blocks until one of `fds` is readable or `timeout_ms` passes.
pub fn poll_readable(fds: &mut [libc::pollfd], timeout_ms: i32) -> i32 {
    for p in fds.iter_mut() {
        p.events = libc::POLLIN;
        p.revents = 0;
    }
    // SAFETY: poll over a live slice of pollfds.
    unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, timeout_ms) }
}

/// Blocks SIGINT, SIGTERM and SIGHUP in this thread (and the threads it spawns later) and returns
/// a signalfd that reads them, so shutdown is handled in the control loop, not in a handler.
pub fn termination_signalfd() -> io::Result<std::os::fd::OwnedFd> {
    // SAFETY: sigset manipulation on a local set; pthread_sigmask and signalfd with valid args;
    // the returned fd is owned right away.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGINT);
        libc::sigaddset(&mut set, libc::SIGTERM);
        libc::sigaddset(&mut set, libc::SIGHUP);
        if libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) != 0 {
            return Err(io::Error::last_os_error());
        }
        let fd = libc::signalfd(-1, &set, libc::SFD_NONBLOCK | libc::SFD_CLOEXEC);
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(std::os::fd::FromRawFd::from_raw_fd(fd))
    }
}

/// Reads one pending signal number from a signalfd, if any.
pub fn read_signal(fd: i32) -> Option<u32> {
    let mut info = [0u8; 128]; // struct signalfd_siginfo
                               // SAFETY: reads at most 128 bytes into a 128-byte buffer.
    let n = unsafe { libc::read(fd, info.as_mut_ptr() as *mut libc::c_void, 128) };
    (n == 128).then(|| u32::from_ne_bytes([info[0], info[1], info[2], info[3]]))
}

/// Ignores SIGPIPE so a peer closing a control connection mid-reply is an error, not death.
pub fn ignore_sigpipe() {
    // SAFETY: setting a standard disposition for SIGPIPE.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_IGN) };
}

/// Gives the heap's free pages back to the kernel (glibc `malloc_trim`). After a large
/// transient allocation — a 100k-flow bundle holds every decoded message until its commit —
/// the freed memory otherwise stays resident, counted as the daemon's for its whole life.
pub fn trim_heap() {
    // SAFETY: malloc_trim only walks glibc's own arenas; any argument is valid.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Asks the CPU to bring the cache line holding `*p` into L1 ahead of use (batched lookups:
/// the misses of a whole batch overlap instead of stalling one after the other).
#[inline(always)]
pub fn prefetch<T>(p: &T) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch never faults and has no architectural effect; `p` is a reference.
    unsafe {
        core::arch::x86_64::_mm_prefetch(
            p as *const T as *const i8,
            core::arch::x86_64::_MM_HINT_T0,
        )
    };
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn affinity_round_trip() {
        let cpus = allowed_cpus();
        assert!(!cpus.is_empty());
        let h = std::thread::spawn(move || {
            pin_current_thread(&cpus[..1]).unwrap();
            allowed_cpus()
        });
        assert_eq!(h.join().unwrap().len(), 1);
        assert!(pin_current_thread(&[usize::MAX]).is_err());
    }

    #[test]
    fn poll_times_out_on_nothing() {
        let mut fds: [libc::pollfd; 0] = [];
        assert_eq!(poll_readable(&mut fds, 1), 0);
        nap_us(1);
    }
}
