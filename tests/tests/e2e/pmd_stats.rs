//! `pmd/stats` and `pmd/stats-clear` as an operator uses them.

use xvs_tests::stats::{parse_umem, pmd_counter};
use xvs_tests::{wait_for, Daemon, Lab, WAIT};

/// Waits until a `pmd/stats-clear` has been applied by every PMD (their "packets received"
/// read 0) and returns the `pmd/stats` text then.
fn clear_and_wait(d: &Daemon) -> String {
    d.appctl("pmd/stats-clear", &[]);
    wait_for("pmd/stats-clear to take effect", WAIT, || {
        let t = d.appctl("pmd/stats", &[]);
        if pmd_counter(&t, "packets received") == 0 {
            Ok(t)
        } else {
            Err(t)
        }
    })
}

/// Proves: `pmd/stats-clear` resets counters but not gauges: right after a clear, an idle PMD
/// still reports where its UMEM frames are (same total, free + fill == total).
#[test]
fn pmd_stats_clear_keeps_the_umem_gauges() {
    let lab = Lab::new(2);
    let (a, b) = (&lab.hosts[0], &lab.hosts[1]);
    let d = Daemon::start(&lab.sw, &lab.daemon_args());
    a.ns.assert_ping(b.ip, 2);
    let before = wait_for("no frames in TX", WAIT, || {
        let u = d.umem();
        if u.iter().all(|u| u.tx == 0) {
            Ok(u)
        } else {
            Err(format!("{u:?}"))
        }
    });
    let text = clear_and_wait(&d);
    let after = parse_umem(&text);
    assert_eq!(after.len(), before.len());
    for (i, (b, u)) in before.iter().zip(&after).enumerate() {
        assert_eq!(
            u.total, b.total,
            "PMD {i}: UMEM total changed by a stats clear:\n{text}"
        );
        assert_eq!(u.free + u.fill + u.tx, u.total, "PMD {i}:\n{text}");
    }
}

/// Proves: after `pmd/stats-clear`, "megaflow hits" and "upcalls" count only what happened
/// since: every packet received after the clear was either a hit or an upcall, so once the PMD
/// is idle again hits + upcalls == packets received.
#[test]
fn pmd_stats_clear_resets_megaflow_hits_and_upcalls() {
    let lab = Lab::new(2);
    let (a, b) = (&lab.hosts[0], &lab.hosts[1]);
    let d = Daemon::start(&lab.sw, &lab.daemon_args());
    a.ns.assert_ping(b.ip, 5);
    clear_and_wait(&d);
    a.ns.assert_ping(b.ip, 2);
    wait_for(
        "hits + upcalls to match the packets since the clear",
        WAIT,
        || {
            let t = d.appctl("pmd/stats", &[]);
            let rx = pmd_counter(&t, "packets received");
            let hits = pmd_counter(&t, "megaflow hits");
            let upcalls = pmd_counter(&t, "upcalls");
            if rx > 0 && hits + upcalls == rx {
                Ok(())
            } else {
                Err(format!(
                    "received {rx}, megaflow hits {hits}, upcalls {upcalls}:\n{t}"
                ))
            }
        },
    );
}
