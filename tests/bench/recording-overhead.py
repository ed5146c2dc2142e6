#!/usr/bin/env python3
"""Encrypted recording's cost on the relay, measured (issue 12's figures), in one run:

1. the relay's CPU per forwarded packet without recording and with it (the same load, twice:
   `hush-load` clients publishing Opus and VP8 into one room),
2. bytes on disk per minute per track against the media's own bytes (frame payloads),
3. `hush-record decrypt` throughput on the recording just made.

Needs the release binaries: `cargo build --release -p hush-relay -p hush-load -p hush-record`
(CARGO_TARGET_DIR is honoured). Binds 127.0.0.1 only; stops by itself. Usage:

    python3 tests/bench/recording-overhead.py [--clients 4] [--seconds 15]
"""
import argparse, base64, json, os, re, secrets, signal, socket, subprocess, sys, tempfile, time
import urllib.request

target = os.environ.get("CARGO_TARGET_DIR", "target")
BIN = {n: os.path.join(target, "release", n) for n in ("hush-relay", "hush-load", "hush-record")}
ADMIN = "bench-admin-token-0123456789-abcdefghijklmn"
TICK = os.sysconf("SC_CLK_TCK")


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK  # utime + stime


def http(base, method, path, body=None, admin=False):
    req = urllib.request.Request(base + path, method=method, data=None if body is None else json.dumps(body).encode())
    req.add_header("Content-Type", "application/json")
    if admin:
        req.add_header("Authorization", f"Bearer {ADMIN}")
    with urllib.request.urlopen(req, timeout=10) as r:
        return r.read().decode()


def forwarded(base):
    text = http(base, "GET", "/metrics")
    m = re.search(r"^hush_forwarded_packets_total (\d+)", text, re.M)
    return int(m.group(1)) if m else 0


def run_load(base, ws, work, key_file, clients, seconds, phase):
    tokens = os.path.join(work, f"tokens-{phase}.txt")
    with open(tokens, "w") as f:
        for i in range(clients):
            out = subprocess.run([BIN["hush-relay"], "token", "--room", "bench", "--sub", f"{phase}-{i}",
                                  "--publish", "--subscribe", "--key-file", key_file, "--kid", "bench",
                                  "--ttl", "600"], capture_output=True, text=True, check=True)
            f.write(out.stdout.strip() + "\n")
    load = subprocess.Popen([BIN["hush-load"], "run", "--url", ws, "--tokens", tokens, "--per-room", str(clients),
                             "--seconds", str(seconds), "--warmup", "0", "--video-kbps", "250"],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    return load


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--clients", type=int, default=4)
    ap.add_argument("--seconds", type=int, default=15)
    args = ap.parse_args()
    for n, p in BIN.items():
        if not os.path.exists(p):
            sys.exit(f"{p} missing: cargo build --release -p hush-relay -p hush-load -p hush-record")
    work = tempfile.mkdtemp(prefix="hush-rec-bench-")
    key_file = os.path.join(work, "hs256.key")
    with open(key_file, "wb") as f:
        f.write(secrets.token_bytes(32))
    with open(os.path.join(work, "admin.token"), "w") as f:
        f.write(ADMIN)
    config = os.path.join(work, "relay.toml")
    with open(config, "w") as f:
        f.write(f'admin_token_file = "{work}/admin.token"\n\n[[keys]]\nkid = "bench"\nalg = "HS256"\nsecret_file = "{key_file}"\n')
    rec_dir = os.path.join(work, "recordings")
    port = free_port()
    base, ws = f"http://127.0.0.1:{port}", f"ws://127.0.0.1:{port}/v1/rtc"
    relay = subprocess.Popen([BIN["hush-relay"], "serve", "--config", config, "--bind", f"127.0.0.1:{port}",
                              "--static-dir", "/nonexistent", "--recording-dir", rec_dir, "--drain-secs", "0"],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env={**os.environ, "RUST_LOG": "warn"})
    try:
        for _ in range(100):
            try:
                http(base, "GET", "/healthz")
                break
            except Exception:
                time.sleep(0.1)
        rec_key = os.path.join(work, "recorder.key")
        public = subprocess.run([BIN["hush-record"], "keygen", "--out", rec_key], capture_output=True, text=True, check=True).stdout.strip()
        # hush-load's clients admit unattested members, so the recorder goes without one here.
        http(base, "PUT", "/v1/admin/rooms/bench/recorder", {"participant": "recorder", "identity_key": public}, admin=True)

        results = {}
        for phase in ("plain", "recorded"):
            load = run_load(base, ws, work, key_file, args.clients, args.seconds, phase)
            time.sleep(3)  # joins and negotiation
            if phase == "recorded":
                http(base, "POST", "/v1/admin/rooms/bench/recording", {"recording": True}, admin=True)
                time.sleep(2)  # the recorder's epoch, its first keyframes
            cpu0, fwd0, t0 = cpu_seconds(relay.pid), forwarded(base), time.time()
            window = max(3, args.seconds - 8)
            time.sleep(window)
            cpu1, fwd1, t1 = cpu_seconds(relay.pid), forwarded(base), time.time()
            if phase == "recorded":
                http(base, "POST", "/v1/admin/rooms/bench/recording", {"recording": False}, admin=True)
            load.wait(timeout=args.seconds + 60)
            packets = fwd1 - fwd0
            results[phase] = {"cpu_s": round(cpu1 - cpu0, 3), "forwarded": packets, "seconds": round(t1 - t0, 2),
                              "us_per_packet": round((cpu1 - cpu0) * 1e6 / max(packets, 1), 2),
                              "packets_per_s": round(packets / (t1 - t0))}
            time.sleep(2)  # everyone left: the next phase starts from an empty room
        # The same load in both windows: the CPU ratio is recording's cost. Per packet, the
        # recorded window's "forwarded" counts the recorder's sink too (one more subscriber per
        # track), so it is also given per packet forwarded to participants only.
        cpu_ratio = results["recorded"]["cpu_s"] / max(results["plain"]["cpu_s"], 1e-9)
        n = args.clients
        to_participants = results["recorded"]["forwarded"] * (n - 1) / n
        ratio = (results["recorded"]["cpu_s"] / max(to_participants, 1)) / (results["plain"]["cpu_s"] / max(results["plain"]["forwarded"], 1))

        recs = [os.path.join(rec_dir, d) for d in sorted(os.listdir(rec_dir)) if os.path.isdir(os.path.join(rec_dir, d))]
        rec = recs[-1]
        manifest = json.load(open(os.path.join(rec, "manifest.json")))
        duration = (manifest["stopped_at_ms"] - manifest["started_at_ms"]) / 1000
        inspect = subprocess.run([BIN["hush-record"], "inspect", rec], capture_output=True, text=True, check=True).stdout
        tracks = []
        for t in manifest["tracks"]:
            row = next(l for l in inspect.splitlines() if l.startswith(t["file"]))
            frames, payload = int(row.split()[4]), int(row.split()[5])
            on_disk = os.path.getsize(os.path.join(rec, t["file"]))
            tracks.append({"kind": t["kind"], "frames": frames, "payload_bytes": payload, "disk_bytes": on_disk,
                           "disk_bytes_per_min": round(on_disk / duration * 60),
                           "media_bytes_per_min": round(payload / duration * 60),
                           "overhead": round(on_disk / max(payload, 1), 3)})
        t0 = time.time()
        out = subprocess.run([BIN["hush-record"], "decrypt", "--quiet", "--key", rec_key, rec, "-o", os.path.join(work, "out")],
                             capture_output=True, text=True)
        took = time.time() - t0
        last = [l for l in out.stdout.splitlines() if "frames/s" in l]
        rows = [l.split() for l in out.stdout.splitlines()[1:]]
        written = sum(int(r[4]) for r in rows if len(r) > 4 and r[3].isdigit() and r[4].isdigit())
        figures = {"clients": args.clients, "plain": results["plain"], "recorded": results["recorded"],
                   "cpu_ratio_same_load": round(cpu_ratio, 3),
                   "cpu_per_participant_packet_ratio": round(ratio, 3), "recording_seconds": duration,
                   "tracks": tracks, "decrypt_exit": out.returncode, "decrypt_written": written, "decrypt_wall_s": round(took, 2),
                   "decrypt": last[0] if last else out.stderr[-300:]}
        print("figures " + json.dumps(figures))
    finally:
        relay.send_signal(signal.SIGTERM)
        try:
            relay.wait(timeout=10)
        except subprocess.TimeoutExpired:
            relay.kill()


if __name__ == "__main__":
    main()
