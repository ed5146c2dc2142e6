#!/usr/bin/env python3
"""Random packet loss and delay for tests, in userspace (this kernel has no netem).

Run inside a gateway network namespace that forwards between its interfaces: packets arriving
on `--iif` are routed into a TUN device (policy routing), read here, and written back into the
kernel, which forwards them on. UDP packets from source port `--sport` or to destination port
`--dport` (every UDP packet when neither is given) are dropped with probability `--loss` and
held back `--delay-ms` first. Counts go to `--stats` (JSON) once a second and at exit. Python's
standard library only; ends on SIGTERM and removes its routing rule.
"""
import argparse
import collections
import fcntl
import json
import os
import random
import select
import signal
import struct
import subprocess
import sys
import time

TUNSETIFF = 0x400454CA
IFF_TUN = 0x0001
IFF_NO_PI = 0x1000
TABLE = "100"


def sh(*args):
    subprocess.run(args, check=True)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--iif", required=True, help="client-side interface")
    parser.add_argument("--loss", type=float, required=True)
    parser.add_argument("--sport", type=int, default=0, help="UDP source port to hit")
    parser.add_argument("--dport", type=int, default=0, help="UDP destination port to hit")
    parser.add_argument("--delay-ms", type=float, default=0.0)
    parser.add_argument("--stats", required=True)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--dev", default="lossy0")
    args = parser.parse_args()
    rng = random.Random(args.seed)

    fd = os.open("/dev/net/tun", os.O_RDWR)
    fcntl.ioctl(fd, TUNSETIFF, struct.pack("16sH", args.dev.encode(), IFF_TUN | IFF_NO_PI))
    sh("ip", "link", "set", args.dev, "up")
    for name in ("all", "default", args.dev):
        sh("sysctl", "-qw", f"net.ipv4.conf.{name}.rp_filter=0")
    sh("sysctl", "-qw", "net.ipv4.ip_forward=1")
    sh("ip", "route", "replace", "default", "dev", args.dev, "table", TABLE)
    sh("ip", "rule", "add", "iif", args.iif, "lookup", TABLE)

    stats = {"seen": 0, "hit": 0, "dropped": 0, "passed": 0}
    running = True

    def stop(*_):
        nonlocal running
        running = False

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)

    def dump():
        with open(args.stats + ".tmp", "w") as f:
            json.dump(stats, f)
        os.replace(args.stats + ".tmp", args.stats)

    def hits(packet):
        if len(packet) < 20 or packet[0] >> 4 != 4 or packet[9] != 17:
            return False
        ihl = (packet[0] & 0x0F) * 4
        if len(packet) < ihl + 8:
            return False
        sport = int.from_bytes(packet[ihl : ihl + 2], "big")
        dport = int.from_bytes(packet[ihl + 2 : ihl + 4], "big")
        if args.sport or args.dport:
            return sport == args.sport or dport == args.dport
        return True

    last = 0.0
    held = collections.deque()  # (due, packet), in arrival order: one delay for all
    os.set_blocking(fd, False)

    while running:
        now = time.monotonic()
        while held and held[0][0] <= now:
            os.write(fd, held.popleft()[1])
            stats["passed"] += 1
        timeout = 0.2 if not held else max(0.0, min(0.2, held[0][0] - now))
        ready, _, _ = select.select([fd], [], [], timeout)
        if ready:
            while True:
                try:
                    packet = os.read(fd, 65535)
                except BlockingIOError:
                    break
                stats["seen"] += 1
                if hits(packet):
                    stats["hit"] += 1
                    if rng.random() < args.loss:
                        stats["dropped"] += 1
                        continue
                    if args.delay_ms > 0:
                        held.append((time.monotonic() + args.delay_ms / 1000.0, packet))
                        continue
                os.write(fd, packet)
                stats["passed"] += 1
        now = time.monotonic()
        if now - last >= 1.0:
            dump()
            last = now
    subprocess.run(["ip", "rule", "del", "iif", args.iif, "lookup", TABLE])
    dump()
    return 0


if __name__ == "__main__":
    sys.exit(main())
