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
/// since: every packet received after the clear was either a hit (exact-match or megaflow) or
/// an upcall, so once the PMD is idle again emc hits + megaflow hits + upcalls == packets
/// received.
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
            let hits = pmd_counter(&t, "megaflow hits") + pmd_counter(&t, "emc hits");
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

/// Proves: the exact-match cache answers repeated packets of one flow, and turning it off
/// (`dpif-netdev/emc off`) sends them to the megaflow cache instead, with forwarding unchanged
/// either way: pings whose keys repeat (same ICMP id) show "emc hits" with the EMC on and
/// none, only megaflow hits, with it off.
#[test]
fn exact_match_cache_serves_repeated_keys_and_can_be_turned_off() {
    let lab = Lab::new(2);
    let (a, b) = (&lab.hosts[0], &lab.hosts[1]);
    let d = Daemon::start(&lab.sw, &lab.daemon_args());
    assert!(d.appctl("dpif-netdev/emc", &[]).contains("on"));
    a.ns.assert_ping(b.ip, 6);
    let t = d.appctl("pmd/stats", &[]);
    assert!(pmd_counter(&t, "emc hits") > 0, "{t}");
    assert!(d.appctl("dpif-netdev/emc", &["off"]).contains("off"));
    clear_and_wait(&d);
    a.ns.assert_ping(b.ip, 6);
    let t = d.appctl("pmd/stats", &[]);
    assert_eq!(pmd_counter(&t, "emc hits"), 0, "{t}");
    assert!(pmd_counter(&t, "megaflow hits") > 0, "{t}");
    let bad = d
        .call("dpif-netdev/emc", &["maybe"])
        .unwrap_err()
        .to_string();
    assert!(bad.contains("on or off"), "{bad}");
}
