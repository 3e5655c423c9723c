//! Forwarding through xvswitchd between namespaces joined by veth pairs: ICMP both ways, UDP with
//! the senders' checksum offload on (partial checksums), TCP with iperf3, and the same over two
//! PMDs where forwarding crosses the PMD handoff ring.

use std::process::Stdio;
use std::time::Duration;

use xvs_tests::traffic::udp_stream;
use xvs_tests::{run_timeout, wait_for, ChildGuard, Daemon, Lab, WAIT};

/// Proves: the switch forwards both ways between two ports (ARP, ICMP echo and replies), and its
/// port counters saw the packets.
#[test]
fn ping_both_ways_between_two_namespaces() {
    let lab = Lab::new(2);
    let d = Daemon::start(&lab.sw, &lab.daemon_args());
    let (a, b) = (&lab.hosts[0], &lab.hosts[1]);
    a.ns.assert_ping(b.ip, 3);
    b.ns.assert_ping(a.ip, 3);
    for h in [a, b] {
        let p = d.port(&h.port);
        assert!(
            p.rx_packets >= 4 && p.tx_packets >= 4,
            "port {} counters do not show the pings: {p:?}",
            h.port
        );
    }
}

/// Proves: with the veths at their default offload settings (TX checksum offload on, so the
/// sender's kernel hands over CHECKSUM_PARTIAL packets whose UDP checksum field holds only the
/// pseudo-header sum), 1,000 datagrams of IP sizes 60..1500 each arrive exactly once with an
/// intact payload: the switch completed every checksum (the receiving kernel would have dropped
/// the datagram and counted UdpInCsumErrors otherwise).
#[test]
fn udp_with_partial_checksums_arrives_complete_and_intact() {
    const N: usize = 1000;
    let lab = Lab::new(2);
    let (a, b) = (&lab.hosts[0], &lab.hosts[1]);
    let features = a.ns.run(&format!("ethtool -k {}", a.ifname));
    assert!(
        features.contains("tx-checksumming: on"),
        "the sender's veth should have TX checksum offload on by default:\n{features}"
    );
    let d = Daemon::start(&lab.sw, &lab.daemon_args());
    a.ns.assert_ping(b.ip, 1); // resolve ARP first
    let csum_errors = b.ns.snmp("Udp", "InCsumErrors");
    let rep = udp_stream(a, b, 9000, N, 64);
    rep.assert_all_once();
    assert_eq!(
        b.ns.snmp("Udp", "InCsumErrors"),
        csum_errors,
        "the receiver counted UDP checksum errors"
    );
    let cov = d.coverage();
    assert!(
        cov.get("csum_partial_completed") >= N as u64,
        "every datagram carried a partial checksum the switch had to complete: {cov:?}"
    );
}

/// Proves: a TCP stream (iperf3, a few seconds, offload on, segments up to the MTU) crosses the
/// switch and completes with data delivered. No throughput threshold: that is perf's job.
#[test]
fn tcp_iperf3_completes_through_the_switch() {
    let lab = Lab::new(2);
    let (a, b) = (&lab.hosts[0], &lab.hosts[1]);
    let _d = Daemon::start(&lab.sw, &lab.daemon_args());
    a.ns.assert_ping(b.ip, 1);
    let _server = ChildGuard::spawn(
        b.ns.cmd("iperf3")
            .args(["-s", "-1", "-p", "5201", "-B", &b.ip.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null()),
        "iperf3 server",
    );
    wait_for("the iperf3 server to listen", WAIT, || {
        let s = b.ns.run("ss -Hltn");
        if s.contains(":5201") {
            Ok(())
        } else {
            Err(s)
        }
    });
    let out = run_timeout(
        a.ns.cmd("iperf3").args([
            "-c",
            &b.ip.to_string(),
            "-p",
            "5201",
            "-t",
            "3",
            "-J",
            "--connect-timeout",
            "10000",
        ]),
        Duration::from_secs(60),
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "iperf3 -c failed ({}): {text}{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let j: serde_json::Value = serde_json::from_str(&text).expect("iperf3 -J output is JSON");
    assert!(
        j.get("error").is_none(),
        "iperf3 reported an error: {}",
        j["error"]
    );
    let sent = j["end"]["sum_sent"]["bytes"].as_u64().unwrap_or(0);
    let received = j["end"]["sum_received"]["bytes"].as_u64().unwrap_or(0);
    assert!(
        sent > 0 && received > 0,
        "iperf3 moved no data: sent {sent}, received {received}"
    );
}

/// Proves: with two PMDs (`--pmd-cpus 0,1`) and single-queue veths, each PMD owns one port, so
/// every forwarded packet crosses the PMD handoff ring; ping works both ways and 1,000 UDP
/// datagrams all arrive, intact, exactly once.
#[test]
fn two_pmds_forward_across_the_handoff_ring() {
    const N: usize = 1000;
    let lab = Lab::new(2);
    let (a, b) = (&lab.hosts[0], &lab.hosts[1]);
    let mut args = lab.daemon_args();
    args.extend(["--pmd-cpus".to_string(), "0,1".to_string()]);
    let d = Daemon::start(&lab.sw, &args);
    let stats = d.appctl("pmd/stats", &[]);
    let rxq: Vec<&str> = stats
        .lines()
        .filter(|l| l.trim_start().starts_with("rx queues:"))
        .collect();
    assert_eq!(rxq.len(), 2, "two PMDs expected:\n{stats}");
    assert!(
        rxq[0].contains(&a.port) != rxq[1].contains(&a.port)
            && rxq[0].contains(&b.port) != rxq[1].contains(&b.port)
            && rxq[0].contains(&a.port) != rxq[0].contains(&b.port),
        "each PMD should own exactly one of the two ports:\n{stats}"
    );
    a.ns.assert_ping(b.ip, 3);
    b.ns.assert_ping(a.ip, 3);
    udp_stream(a, b, 9001, N, 64).assert_all_once();
    let cov = d.coverage();
    assert!(
        cov.get("pmd_handoff_sent") >= N as u64 && cov.get("pmd_handoff_received") >= N as u64,
        "forwarding should have crossed the handoff ring: {cov:?}"
    );
    assert_eq!(cov.get("drop_pmd_handoff_full"), 0, "{cov:?}");
}
