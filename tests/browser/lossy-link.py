#!/usr/bin/env python3
"""Random packet loss for tests, in userspace (this kernel has no netem).

Run inside a gateway network namespace that forwards between a client side (`--iif`) and the
rest: packets arriving on the client side are routed into a TUN device (policy routing), read
here, dropped with probability `--loss` when they are UDP from source port `--sport` (or every
UDP packet without it), and written back into the kernel, which forwards them on. Counts go to
`--stats` (JSON) once a second and at exit. Python's standard library only; ends on SIGTERM and
removes its routing rule.
"""
import argparse
import fcntl
import json
import os
import random
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
    parser.add_argument("--sport", type=int, default=0, help="UDP source port to hit (0: all UDP)")
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

    last = 0.0
    os.set_blocking(fd, False)
    import select

    while running:
        ready, _, _ = select.select([fd], [], [], 0.2)
        if ready:
            while True:
                try:
                    packet = os.read(fd, 65535)
                except BlockingIOError:
                    break
                stats["seen"] += 1
                if len(packet) >= 20 and packet[0] >> 4 == 4 and packet[9] == 17:
                    ihl = (packet[0] & 0x0F) * 4
                    sport = int.from_bytes(packet[ihl : ihl + 2], "big") if len(packet) >= ihl + 8 else -1
                    if args.sport in (0, sport):
                        stats["hit"] += 1
                        if rng.random() < args.loss:
                            stats["dropped"] += 1
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
