#!/usr/bin/env python3
"""TCP connection migration between network namespaces with TCP_REPAIR (as CRIU does), to
stand in for a live-migrated VM's kernel: `serve` accepts one connection and echoes every
line upper-cased; on SIGUSR1 it checkpoints the connection to a JSON file (sequence numbers,
queues, options, window, timestamp) and exits without a FIN or RST; `restore` (run in the
destination namespace with the same address) rebuilds the socket from the file and goes on
echoing. `client` sends a numbered line every few ms and checks every echo."""
import json, os, signal, socket, struct, sys, time

TCP_REPAIR, TCP_REPAIR_QUEUE, TCP_QUEUE_SEQ, TCP_REPAIR_OPTIONS = 19, 20, 21, 22
TCP_REPAIR_WINDOW, TCP_TIMESTAMP = 29, 24
TCP_RECV_QUEUE, TCP_SEND_QUEUE = 1, 2
TCPOPT_MSS, TCPOPT_WINDOW, TCPOPT_SACK_PERM, TCPOPT_TIMESTAMP = 2, 3, 4, 8


def echo(c, first=b""):
    buf = first
    while True:
        while b"\n" in buf:
            line, buf = buf.split(b"\n", 1)
            c.sendall(line.upper() + b"\n")
        d = c.recv(4096)
        if not d:
            return
        buf += d


def checkpoint(c, path):
    c.setsockopt(socket.IPPROTO_TCP, TCP_REPAIR, 1)
    st = {}
    for name, q in (("recv", TCP_RECV_QUEUE), ("send", TCP_SEND_QUEUE)):
        c.setsockopt(socket.IPPROTO_TCP, TCP_REPAIR_QUEUE, q)
        st[name + "_seq"] = c.getsockopt(socket.IPPROTO_TCP, TCP_QUEUE_SEQ)
        try:
            data = c.recv(1 << 20, socket.MSG_PEEK | socket.MSG_DONTWAIT)
        except BlockingIOError:
            data = b""
        st[name + "_data"] = data.hex()
    info = c.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 104)
    # struct tcp_info: u8 state, ca_state, retransmits, probes, backoff, options, wscale(4|4)
    st["options"], wscale = info[5], info[6]
    st["snd_wscale"], st["rcv_wscale"] = wscale & 0xF, wscale >> 4
    st["mss"] = c.getsockopt(socket.IPPROTO_TCP, socket.TCP_MAXSEG)
    st["window"] = list(struct.unpack("5I", c.getsockopt(socket.IPPROTO_TCP, TCP_REPAIR_WINDOW, 20)))
    st["timestamp"] = c.getsockopt(socket.IPPROTO_TCP, TCP_TIMESTAMP)
    st["local"], st["peer"] = c.getsockname(), c.getpeername()
    with open(path + ".tmp", "w") as f:
        json.dump(st, f)
    os.rename(path + ".tmp", path)
    # closing in repair mode sends nothing: the peer keeps its connection
    c.close()


def u32(v):
    """A sequence number or timestamp as the kernel's u32 option value. Python's int form of
    setsockopt takes a C int, so values >= 2**31 (half of all random ISNs) must go as bytes."""
    return struct.pack("I", v & 0xFFFFFFFF)


def restore(path):
    st = json.load(open(path))
    c = socket.socket()
    c.setsockopt(socket.IPPROTO_TCP, TCP_REPAIR, 1)
    c.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    c.bind(tuple(st["local"]))
    # the receive queue's bytes go straight to the application, so rcv_nxt stays; the send
    # queue's unacknowledged bytes are queued again from where they started
    unsent = len(bytes.fromhex(st["send_data"]))
    c.setsockopt(socket.IPPROTO_TCP, TCP_REPAIR_QUEUE, TCP_RECV_QUEUE)
    c.setsockopt(socket.IPPROTO_TCP, TCP_QUEUE_SEQ, u32(st["recv_seq"]))
    c.setsockopt(socket.IPPROTO_TCP, TCP_REPAIR_QUEUE, TCP_SEND_QUEUE)
    c.setsockopt(socket.IPPROTO_TCP, TCP_QUEUE_SEQ, u32(st["send_seq"] - unsent))
    c.connect(tuple(st["peer"]))
    opts = struct.pack("II", TCPOPT_MSS, st["mss"])
    o = st["options"]
    if o & 4:  # TCPI_OPT_WSCALE
        opts += struct.pack("II", TCPOPT_WINDOW, st["snd_wscale"] | (st["rcv_wscale"] << 16))
    if o & 2:  # TCPI_OPT_SACK
        opts += struct.pack("II", TCPOPT_SACK_PERM, 0)
    if o & 1:  # TCPI_OPT_TIMESTAMPS
        opts += struct.pack("II", TCPOPT_TIMESTAMP, 0)
    c.setsockopt(socket.IPPROTO_TCP, TCP_REPAIR_OPTIONS, opts)
    c.setsockopt(socket.IPPROTO_TCP, TCP_TIMESTAMP, u32(st["timestamp"]))
    # queued data: the send queue is re-queued in repair mode; the receive queue is handed to
    # the echo loop directly
    c.setsockopt(socket.IPPROTO_TCP, TCP_REPAIR_QUEUE, TCP_SEND_QUEUE)
    if st["send_data"]:
        c.send(bytes.fromhex(st["send_data"]))
    c.setsockopt(socket.IPPROTO_TCP, TCP_REPAIR_WINDOW, struct.pack("5I", *st["window"]))
    c.setsockopt(socket.IPPROTO_TCP, TCP_REPAIR, 0)
    return c, bytes.fromhex(st["recv_data"])


def main():
    cmd = sys.argv[1]
    if cmd == "serve":
        ip, port, path = sys.argv[2], int(sys.argv[3]), sys.argv[4]
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((ip, port))
        s.listen(1)
        print("listening", flush=True)
        c, _ = s.accept()
        signal.signal(signal.SIGUSR1, lambda *_: (checkpoint(c, path), os._exit(0)))
        echo(c)
    elif cmd == "restore":
        path = sys.argv[2]
        while not os.path.exists(path):
            time.sleep(0.01)
        c, pending = restore(path)
        print("restored", flush=True)
        echo(c, pending)
    elif cmd == "client":
        ip, port, secs, out = sys.argv[2], int(sys.argv[3]), float(sys.argv[4]), sys.argv[5]
        c = socket.create_connection((ip, port), timeout=10)
        c.settimeout(10)
        f = c.makefile("rb")
        n, t_end, err = 0, time.time() + secs, ""
        try:
            while time.time() < t_end:
                c.sendall(b"line%d\n" % n)
                got = f.readline()
                if got != b"LINE%d\n" % n:
                    err = "bad echo %r for %d" % (got, n)
                    break
                n += 1
                time.sleep(0.005)
        except Exception as e:
            err = "%s: %s" % (type(e).__name__, e)
        with open(out, "w") as o:
            o.write("%d %s\n" % (n, err or "ok"))
        print(n, err or "ok", flush=True)


main()
