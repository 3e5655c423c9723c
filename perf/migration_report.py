#!/usr/bin/env python3
"""The report of perf/migration.sh: reads a results directory (OUT/SWITCH/mN/...), writes
OUT.json and prints the median/worst table. Can be re-run on an existing directory:

    perf/migration_report.py perf/results/migration-TS RUNS INTERVAL_S
"""
import glob, json, os, statistics, sys
out, runs, iv = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])

def veth_times(path):
    """(first RARP leaving the destination VM, first stream frame reaching it after that),
    kernel timestamps (s, wall clock) of the capture on the VM's interface."""
    t_rarp = None
    try:
        for line in open(path):
            p = line.split(None, 2)
            if len(p) < 3:
                continue
            t = float(p[0])
            if t_rarp is None:
                if "Reverse Request" in p[2] or "RARP" in p[2] or "ethertype Reverse" in p[2]:
                    t_rarp = t
            elif ".9999:" in p[2] and "UDP" in p[2]:
                return t_rarp, t
    except FileNotFoundError:
        pass
    return t_rarp, None

def switch_times(path):
    """xvswitchd's own timestamps (s, wall clock, read by the PMD): the activation (when it
    handled the first RARP) and the first packet it handed to the port after it."""
    try:
        v = json.load(open(path))
        g = v[0]["gates"][0]
        return g["activation"]["at_ns"] / 1e9, g["first_delivered"]["at_ns"] / 1e9
    except Exception:
        return None, None

def stream(run):
    """Send times by sequence number and the set of sequence numbers received anywhere."""
    sent, got = {}, set()
    try:
        for line in open(f"{run}/sent.txt"):
            p = line.split()
            if len(p) >= 2:
                sent[int(p[0])] = float(p[1])
        for f in ("recv-src.txt", "recv-dst.txt"):
            for line in open(f"{run}/{f}"):
                p = line.split()
                if p:
                    got.add(int(p[0]))
    except (FileNotFoundError, ValueError):
        pass
    return sent, got

def lost_sent_after(sent, got, t, until=None):
    """Datagrams sent at or after `t` (and before `until`; the sender shares the switches'
    wall clock) and received nowhere. After the first RARP the source is down: the
    destination must take every one of them."""
    if t is None or not sent:
        return None
    return sum(1 for q, ts in sent.items()
               if ts >= t and (until is None or ts < until) and q not in got)

def event(run, key):
    """A time from the lab's events.txt (t_stop: the source VM's interface went down;
    t_final: requested-chassis reduced to the destination)."""
    try:
        for line in open(f"{run}/events.txt"):
            k, v = line.split()
            if k == key:
                return float(v)
    except (FileNotFoundError, ValueError):
        pass
    return None

def t_final(run):
    return event(run, "t_final")

def recv_times(run):
    """Kernel receive timestamps (s) of the stream at the source and at the destination VM."""
    out = {}
    for side in ("src", "dst"):
        v = []
        try:
            for line in open(f"{run}/recv-{side}.txt"):
                p = line.split()
                if len(p) >= 2:
                    v.append(float(p[1]))
        except (FileNotFoundError, ValueError):
            pass
        out[side] = sorted(v)
    return out

def e2e_gaps(run):
    """The end-to-end gap with an instant source stop (the source VM's interface goes down and
    the destination sends its first RARP ~20-30 us later), from both receivers' kernel
    timestamps: (switchover, longest) in us. switchover = the last datagram at the source ->
    the first at the destination after the stop (the stop, the activation and the wait for the
    next datagram); longest = the longest interval without a stream datagram at either VM from
    0.5 s before the stop to the finalize step (the switchover or any hiccup of the path)."""
    t0, t1 = event(run, "t_stop"), event(run, "t_final")
    if t0 is None or t1 is None:
        return None, None
    r = recv_times(run)
    last_src = max((t for t in r["src"] if t <= t1), default=None)
    first_dst = min((t for t in r["dst"] if t >= t0 - 0.5), default=None)
    sw = us(last_src, first_dst)
    ts = sorted(t for t in r["src"] + r["dst"] if t0 - 0.5 <= t <= t1)
    if len(ts) < 2:
        return sw, None
    return sw, round(max(b - a for a, b in zip(ts, ts[1:])) * 1e6, 1)

def steady_latency_us(run):
    """One-way latency of the stream (sender's clock -> the source VM's kernel receive
    timestamp) over the last second before the source stop: median and 99th percentile. Far
    above the ~20 us of an idle path, it says the path was queueing (PMDs behind: CPU), so the
    activation figures carry that queue too."""
    t_stop = event(run, "t_stop")
    v = []
    try:
        for line in open(f"{run}/recv-src.txt"):
            p = line.split()
            if len(p) >= 3 and t_stop is not None and t_stop - 1.0 <= float(p[1]) < t_stop:
                v.append((float(p[1]) - float(p[2])) * 1e6)
    except (FileNotFoundError, ValueError):
        pass
    if not v:
        return None, None
    v.sort()
    return round(v[len(v) // 2], 1), round(v[min(len(v) - 1, int(len(v) * 0.99))], 1)

def stop_to_rarp_us(run):
    """Source interface down -> first RARP sent (the announcer's own log)."""
    t_stop = event(run, "t_stop")
    try:
        for line in open(f"{run}/rarp.txt"):
            p = line.split()
            if p and p[0] == "0":
                return us(t_stop, float(p[1]))
    except (FileNotFoundError, ValueError):
        pass
    return None

def us(a, b):
    return round((b - a) * 1e6, 1) if a is not None and b is not None else None

def coverage_delta(m, ch):
    def load(p):
        d = {}
        try:
            for line in open(p):
                p2 = line.split()
                if len(p2) < 2:
                    continue
                if "total:" in line:
                    d[p2[0]] = int(line.rsplit("total:", 1)[1].split()[0])
                elif p2[-1].isdigit():
                    d[p2[0].rstrip(":")] = int(p2[-1])
        except FileNotFoundError:
            pass
        return d
    a, b = load(f"{m}/coverage-{ch}-before.txt"), load(f"{m}/coverage-{ch}-after.txt")
    return {k: b[k] - a.get(k, 0) for k in b if b[k] != a.get(k, 0) and ("drop" in k or "gate" in k)}

res = {"runs": runs, "interval_s": iv, "daemons_nice": os.environ.get("NICE"),
       "order": "interleaved", "switches": {}}
for sw in ("ovs", "xvs"):
    rows = []
    for m in sorted(glob.glob(f"{out}/{sw}/m*"), key=lambda p: int(p.rsplit("m", 1)[1])):
        try:
            r = json.load(open(f"{m}/run1/result.txt"))
        except Exception:
            r = {"run": os.path.basename(m), "error": "no result"}
        r["run"] = os.path.basename(m)
        v_rarp, v_first = veth_times(f"{m}/dst.txt")
        r["veth_rarp_to_first_us"] = us(v_rarp, v_first)
        sent, got = stream(f"{m}/run1")
        r["lost_sent_after_rarp"] = lost_sent_after(sent, got, v_rarp)
        # the activation window alone: from the RARP to the finalize step
        r["lost_rarp_to_final"] = lost_sent_after(sent, got, v_rarp, t_final(f"{m}/run1"))
        # how long after the RARP the sender sent its next datagram (the paced sender: at
        # most one interval unless it was preempted)
        nxt = min((t for t in sent.values() if v_rarp is not None and t >= v_rarp), default=None)
        r["sender_wait_after_rarp_us"] = us(v_rarp, nxt)
        if sw == "xvs":
            # the same wall clock: the RARP on the VM's veth -> the PMD handling it (kernel
            # delivery to the AF_XDP socket and PMD wake-up) -> the first packet the PMD
            # hands to the port (the switch) -> that frame on the VM's veth (kernel)
            s_act, s_first = switch_times(f"{m}/port-state.json")
            r["switch_first_delivery_us"] = us(s_act, s_first)
            r["veth_rarp_to_activation_us"] = us(v_rarp, s_act)
            r["delivery_to_veth_us"] = us(s_first, v_first)
            r["lost_sent_after_activation"] = lost_sent_after(sent, got, s_act)
            nxt = min((t for t in sent.values() if s_act is not None and t >= s_act), default=None)
            r["sender_wait_after_activation_us"] = us(s_act, nxt)
        r["switchover_gap_us"], r["longest_gap_us"] = e2e_gaps(f"{m}/run1")
        r["stop_to_rarp_us"] = stop_to_rarp_us(f"{m}/run1")
        r["steady_latency_med_us"], r["steady_latency_p99_us"] = steady_latency_us(f"{m}/run1")
        r["coverage_drops_ch1"] = coverage_delta(m, "ch1")
        r["coverage_drops_ch2"] = coverage_delta(m, "ch2")
        rows.append(r)
    res["switches"][sw] = rows
keys = ["switch_first_delivery_us", "sender_wait_after_activation_us",
        "lost_sent_after_activation", "veth_rarp_to_activation_us", "delivery_to_veth_us",
        "veth_rarp_to_first_us", "sender_wait_after_rarp_us", "lost_rarp_to_final",
        "lost_sent_after_rarp", "switchover_gap_us", "longest_gap_us", "stop_to_rarp_us", "steady_latency_med_us", "steady_latency_p99_us", "rarp0_to_first_dst_ms",
        "downtime_ms", "lost_total", "lost_after_final", "dst_before_stop", "final_reblock_ms",
        "rarp0_to_flowdel_ms"]
summary = {}
print(f"migrations per switch: {runs}, stream interval {iv*1e6:.1f} us ({1/iv/1e3:.0f} kpps)")
print(f"{'metric':<32} {'ovs median':>11} {'ovs worst':>10} {'xvs median':>11} {'xvs worst':>10} {'n ovs/xvs':>10}")
for k in keys:
    vals = {sw: [r[k] for r in rows if isinstance(r.get(k), (int, float))] for sw, rows in res["switches"].items()}
    cells, ns = [], []
    for sw in ("ovs", "xvs"):
        v = vals.get(sw, [])
        ns.append(str(len(v)))
        cells += [f"{statistics.median(v):.2f}" if v else "-", f"{max(v):.2f}" if v else "-"]
        if v:
            summary.setdefault(sw, {})[k] = {"median": statistics.median(v), "worst": max(v), "n": len(v)}
    print(f"{k:<32} {cells[0]:>11} {cells[1]:>10} {cells[2]:>11} {cells[3]:>10} {'/'.join(ns):>10}")
res["summary"] = summary
for sw, rows in res["switches"].items():
    for r in rows:
        if r.get("lost_after_final"):
            print(f"{sw} {r['run']}: {r['lost_after_final']} lost after finalize; drops ch1 {r['coverage_drops_ch1']} ch2 {r['coverage_drops_ch2']}")
json.dump(res, open(out + ".json", "w"), indent=1)
print("results:", out + ".json")
