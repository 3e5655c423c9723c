#!/usr/bin/env python3
"""Draws a migration timeline as a PNG with the standard library only (zlib + struct).

    timeline_png.py OUT.png TITLE RUNDIR [RUNDIR...]

Per run (one horizontal band each): every datagram received by the source VM (blue) and by the
destination VM (red), placed by its receive time relative to the first RARP (x, -20..+20 ms),
the RARPs (black ticks) and the moment the source stopped (grey tick). Reads the lab's
recv-src.txt, recv-dst.txt and rarp.txt (seq, recv time, send time / index, time).
"""
import struct
import sys
import zlib

W, H_BAND, MARGIN = 1000, 40, 30
X0, X1 = -20.0, 20.0  # ms around the first RARP

# 5x7 font for digits, '-', 'm', 's', ' ' (enough for axis labels)
FONT = {
    "0": "01110100011001110101110011000101110", "1": "00100011000010000100001000010001110",
    "2": "01110100010000100010001000100011111", "3": "11110000010000101110000010000111110",
    "4": "00010001100101010010111110001000010", "5": "11111100001111000001000011000101110",
    "6": "00110010001000011110100011000101110", "7": "11111000010001000100010000100001000",
    "8": "01110100011000101110100011000101110", "9": "01110100011000101111000010001001100",
    "-": "00000000000000011111000000000000000", " ": "0" * 35,
    "m": "00000000001101010101101011000110001", "s": "00000000000111110000011100000111110",
}


def load(path, cols):
    out = []
    try:
        for line in open(path):
            p = line.split()
            if len(p) >= cols:
                out.append(p)
    except FileNotFoundError:
        pass
    return out


def main():
    out, title, runs = sys.argv[1], sys.argv[2], sys.argv[3:]
    h = MARGIN * 2 + H_BAND * len(runs)
    px = bytearray(b"\xff" * (W * h * 3))

    def dot(x, y, c):
        if 0 <= x < W and 0 <= y < h:
            i = (y * W + x) * 3
            px[i:i + 3] = bytes(c)

    def text(x, y, s):
        for k, ch in enumerate(s):
            g = FONT.get(ch, FONT[" "])
            for j in range(35):
                if g[j] == "1":
                    dot(x + k * 6 + j % 5, y + j // 5, (0, 0, 0))

    def xpos(ms):
        return int((ms - X0) / (X1 - X0) * (W - 1))

    for ms in range(int(X0), int(X1) + 1, 5):
        x = xpos(ms)
        for y in range(MARGIN - 5, h - MARGIN + 5):
            dot(x, y, (220, 220, 220) if ms else (120, 120, 120))
        text(x - 6, h - MARGIN + 8, f"{ms}")
    text(W - 40, h - MARGIN + 18, "ms")
    for i, r in enumerate(runs):
        rarps = [float(p[1]) for p in load(f"{r}/rarp.txt", 2) if p[0] != "stop"]
        stop = [float(p[1]) for p in load(f"{r}/rarp.txt", 2) if p[0] == "stop"]
        if not rarps:
            continue
        t0 = rarps[0]
        y0 = MARGIN + i * H_BAND
        for t in rarps:
            for y in range(y0, y0 + H_BAND - 4):
                dot(xpos((t - t0) * 1000), y, (0, 0, 0))
        for t in stop:
            for y in range(y0, y0 + 8):
                dot(xpos((t - t0) * 1000), y, (150, 150, 150))
        for name, yoff, col in (("src", 10, (30, 80, 220)), ("dst", 24, (220, 40, 40))):
            for p in load(f"{r}/recv-{name}.txt", 2):
                x = xpos((float(p[1]) - t0) * 1000)
                for dy in range(6):
                    dot(x, y0 + yoff + dy, col)
    del title  # the file name carries it; the font has no letters
    raw = b"".join(b"\x00" + bytes(px[y * W * 3:(y + 1) * W * 3]) for y in range(h))

    def chunk(tag, data):
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))

    png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", W, h, 8, 2, 0, 0, 0))
    png += chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b"")
    open(out, "wb").write(png)


if __name__ == "__main__":
    main()
