//! Frame accounting under load: a million frames injected with BPF_PROG_RUN live frames.

use std::net::Ipv4Addr;
use std::os::fd::AsRawFd;

use afxdp::{asm, bpf, sys};
use xvs_tests::pkt::{self, UdpCsum};
use xvs_tests::{wait_for, Daemon, Lab, WAIT};

const FRAMES: u64 = 1_000_000;

/// Proves: after at least 1,000,000 frames crossed the switch (unicast to a learned MAC), every
/// UMEM frame is accounted for once traffic stops: nothing left in TX, `unaccounted 0`, and
/// free + fill == total; the port's RX count covers everything the generator injected minus what
/// the kernel itself reports dropping; every frame the switch says it sent reached the sink.
#[test]
fn a_million_frames_leave_every_umem_frame_accounted_for() {
    let lab = Lab::new(2);
    let (g, s) = (&lab.hosts[0], &lab.hosts[1]);
    let d = Daemon::start(&lab.sw, &lab.daemon_args());
    g.ns.assert_ping(s.ip, 1); // both MACs learned
    wait_for("the sink's MAC in the fdb", WAIT, || {
        let f = d.fdb("br0");
        if f.iter()
            .any(|e| e.mac == pkt::mac_str(&s.mac) && e.port == "2")
        {
            Ok(())
        } else {
            Err(format!("{f:?}"))
        }
    });
    // the sink counts and drops in XDP, so its kernel stack does no per-frame work
    let sink_if = s.ns.ifindex(&s.ifname);
    let (counter, _sink_prog, _sink_link) = s.ns.in_ns(|| {
        let c = bpf::PerCpuCounters::new("xt_sink", 1).expect("counter map");
        let p = bpf::prog_load_xdp(&asm::count_drop(c.fd()), "xt_sink").expect("sink prog");
        let l = bpf::link_create_xdp(p.as_raw_fd(), sink_if, sys::XDP_FLAGS_DRV_MODE)
            .expect("attach sink");
        (c, p, l)
    });
    let frame = pkt::udp_frame(
        s.mac,
        g.mac,
        Ipv4Addr::new(198, 18, 0, 1),
        Ipv4Addr::new(198, 19, 0, 1),
        9,
        9,
        &[0u8; 18],
        UdpCsum::Full,
    );
    assert_eq!(frame.len(), 60);
    // frames the generator's veth could not hand to the switch port's XDP ring (it holds 256):
    // the kernel drops and counts them before the switch can see them
    let veth_drops = || -> u64 {
        g.ns.run(&format!("ethtool -S {}", g.ifname))
            .lines()
            .filter_map(|l| l.trim().split_once(':'))
            .filter(|(k, _)| k.ends_with("xdp_xmit_errors"))
            .filter_map(|(_, v)| v.trim().parse::<u64>().ok())
            .sum()
    };
    let vd0 = veth_drops();
    let p0 = d.port(&g.port);
    let out0 = d.port(&s.port);
    let gen_if = g.ns.ifindex(&g.ifname);
    // BPF_PROG_RUN has a fixed cost of tens of ms per call here, so the generator cannot pace
    // itself burst by burst: it offers big bursts (more than the switch can take; the kernel
    // drops and counts the excess at the AF_XDP socket, or already at the veth) until the switch
    // has received FRAMES.
    const BURST: u32 = 1 << 18;
    let base = p0.rx_packets + p0.kernel_dropped + p0.kernel_ring_full;
    let sent = g.ns.in_ns(|| {
        let prog = bpf::prog_load_xdp(&asm::ifindex_redirect(gen_if), "xt_gen").expect("gen prog");
        let mut sent = 0u64;
        while d.port(&g.port).rx_packets - p0.rx_packets < FRAMES {
            assert!(
                sent < 40 * FRAMES,
                "the switch received too little of {sent} frames: {:?}",
                d.port(&g.port)
            );
            bpf::prog_test_run_live(prog.as_raw_fd(), &frame, BURST, 64)
                .expect("BPF_PROG_RUN live frames");
            sent += BURST as u64;
        }
        sent
    });
    wait_for("the switch to take every frame", WAIT, || {
        let p = d.port(&g.port);
        let taken = p.rx_packets + p.kernel_dropped + p.kernel_ring_full - base;
        let vd = veth_drops() - vd0;
        if taken + vd >= sent {
            Ok(())
        } else {
            Err(format!(
                "{taken} of {sent} taken, {vd} dropped by the veth: {p:?}"
            ))
        }
    });
    let u = wait_for("the PMD to finish transmitting", WAIT, || {
        let u = d.umem();
        if u.iter().all(|u| u.tx == 0) {
            Ok(u)
        } else {
            Err(format!("{u:?}"))
        }
    });
    let p = d.port(&g.port);
    let out = d.port(&s.port);
    let sink = counter.total(0);
    let veth_tx_dropped = lab.sw.link_stat(&s.port, "tx_dropped");
    let vd = veth_drops() - vd0;
    let report = format!(
        "generator sent {sent}, its veth dropped {vd}\nin: {p:?}\nout: {out:?}\numem: {u:?}\n\
         sink counted {sink}, switch veth tx_dropped {veth_tx_dropped}"
    );
    eprintln!("{report}");
    // every UMEM frame is somewhere known
    for (i, u) in u.iter().enumerate() {
        assert_eq!(u.unaccounted, 0, "PMD {i} lost track of frames\n{report}");
        assert_eq!(u.free + u.fill, u.total, "PMD {i}\n{report}");
    }
    // everything injected was received by the switch or counted dropped by the kernel (at the
    // switch's AF_XDP socket: dpif/show's kernel counters; or before it, at the veth)
    let rx = p.rx_packets - p0.rx_packets;
    let kdrops = p.kernel_dropped + p.kernel_ring_full - p0.kernel_dropped - p0.kernel_ring_full;
    assert!(rx >= FRAMES, "{report}");
    assert!(rx + kdrops + vd >= sent, "{report}");
    // everything received went out of the sink's port (unicast, learned), and arrived there
    let tx = out.tx_packets - out0.tx_packets;
    let tx_dropped = out.tx_dropped - out0.tx_dropped;
    let rx_dropped = p.rx_dropped - p0.rx_dropped;
    assert_eq!(tx + tx_dropped, rx - rx_dropped, "{report}");
    assert_eq!(sink + veth_tx_dropped, tx, "{report}");
}
