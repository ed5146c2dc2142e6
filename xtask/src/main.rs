//! Project tasks, run as `cargo xtask <task>`:
//!
//! - `dev`: runs the product (the relay with the demo page on localhost).
//! - `test`: runs every test: the workspace's Rust tests (unit, integration, property, doc,
//!   benches in test mode), the `wasm32-unknown-unknown` build of the browser crates, and the
//!   browser tests in headless Chromium.
//! - `web`: builds the browser side only (wasm, wasm-bindgen glue, TypeScript).
//!
//! Each task prints the commands it runs, installs what a fresh machine lacks (a rustup
//! target), and stops at the first failure with that command's exit status.

use std::process::{Command, ExitCode};

/// Crates that must build for the browser.
const WASM_CRATES: &[&str] = &["hush-frame", "hush-keys", "hush-wasm"];

/// The wasm-bindgen CLI must match the `wasm-bindgen` crate exactly.
const WASM_BINDGEN: &str = "0.2.130";

/// Gzipped size budget of the wasm module, in bytes. The frame layer alone is about 58 KB; the
/// key exchange (HPKE, X25519, Ed25519, the session, JSON parsing of relay events) brings the
/// module to about 181 KB with the `wasm` profile (opt-level z, fat LTO, the ciphers at
/// opt-level 3 for speed); `joined.ice_servers` (TURN) added 1 KB, as the Worker decodes
/// `joined` with hush-proto's types; binding epochs to the roster digest (envelopes, ratchet)
/// and its event 0.7 KB (188,143 to 188,864 bytes); sha2's `zeroize` (the hash states HMAC and
/// HKDF keep wiped on drop) and freeing replaced send keys 0.25 KB (189,389 to 189,638). The
/// budget leaves room for fixes, not for a new dependency tree.
const WASM_GZIP_BUDGET: u64 = 186 * 1024;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("test") => test(),
        Some("dev") => dev(),
        Some("web") => web(),
        _ => {
            eprintln!("usage: cargo xtask <dev|test|web>");
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(code) => ExitCode::from(code),
    }
}

/// Runs `program args`, echoing it; `Err(status)` when it fails.
fn run(program: &str, args: &[&str]) -> Result<(), u8> {
    eprintln!("+ {program} {}", args.join(" "));
    let status = Command::new(program).args(args).status().map_err(|e| {
        eprintln!("cannot start {program}: {e}");
        127u8
    })?;
    if status.success() {
        Ok(())
    } else {
        Err(status
            .code()
            .and_then(|c| u8::try_from(c).ok())
            .unwrap_or(1))
    }
}

/// Installs Debian's `package` with apt unless `path` (a file it installs) is there.
fn apt_install(path: &str, package: &str) -> Result<(), u8> {
    if std::path::Path::new(path).exists() {
        return Ok(());
    }
    sh(&format!(
        "apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq {package}"
    ))
}

/// Whether rustup has `target` installed.
fn has_target(target: &str) -> bool {
    Command::new("rustup")
        .args(["target", "list", "--installed"])
        .output()
        .map(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .any(|l| l.trim() == target)
        })
        .unwrap_or(false)
}

fn test() -> Result<(), u8> {
    // Debian's ffmpeg (with ffprobe): the recording tests make real VP8 and Opus with it and
    // check that what `hush-record` opens decodes.
    apt_install("/usr/bin/ffprobe", "ffmpeg")?;
    // Debian's redis-server: server/tests/token_store.rs shares used token ids between two
    // relays through it (started by the test on a free loopback port).
    apt_install("/usr/bin/redis-server", "redis-server")?;
    // Debian's coturn: crates/hush-client/tests/turn.rs calls through it (and the browser
    // tests, below).
    apt_install("/usr/bin/turnserver", "coturn")?;
    run("cargo", &["test", "--workspace", "--all-targets"])?;
    run("cargo", &["test", "--workspace", "--doc"])?;
    if !has_target("wasm32-unknown-unknown") {
        run("rustup", &["target", "add", "wasm32-unknown-unknown"])?;
    }
    for krate in WASM_CRATES {
        run(
            "cargo",
            &[
                "build",
                "-p",
                krate,
                "--target",
                "wasm32-unknown-unknown",
                "--release",
            ],
        )?;
    }
    web()?;
    browser_tests()?;
    eprintln!("xtask test: all passed");
    Ok(())
}

/// Runs a shell command line (for pipes and redirections), echoing it.
fn sh(line: &str) -> Result<(), u8> {
    run("sh", &["-c", line])
}

/// Output of a command, if it ran and succeeded.
fn output(program: &str, args: &[&str]) -> Option<String> {
    let o = Command::new(program).args(args).output().ok()?;
    o.status
        .success()
        .then(|| String::from_utf8_lossy(&o.stdout).into_owned())
}

/// Builds hush-wasm, its JavaScript glue (wasm-bindgen, pinned) and the TypeScript.
fn web() -> Result<(), u8> {
    if !has_target("wasm32-unknown-unknown") {
        run("rustup", &["target", "add", "wasm32-unknown-unknown"])?;
    }
    run(
        "cargo",
        &[
            "build",
            "-p",
            "hush-wasm",
            "--target",
            "wasm32-unknown-unknown",
            "--profile",
            "wasm",
        ],
    )?;
    let have = output("wasm-bindgen", &["--version"]).unwrap_or_default();
    if !have.contains(WASM_BINDGEN) {
        // Without --locked: with it, resolution fails on some registry mirrors.
        run(
            "cargo",
            &["install", "wasm-bindgen-cli", "--version", WASM_BINDGEN],
        )?;
    }
    let target_dir = std::env::var("CARGO_TARGET_DIR").unwrap_or_else(|_| "target".into());
    let module = format!("{target_dir}/wasm32-unknown-unknown/wasm/hush_wasm.wasm");
    // No wasm-opt: measured on this module (binaryen 132 from npm, -Oz/-Os/-O2), it cuts the raw
    // size by 11-13% but grows the gzipped size, which is what pages download, by 5%.
    run(
        "wasm-bindgen",
        &[
            "--target",
            "web",
            "--remove-name-section",
            "--remove-producers-section",
            "--out-dir",
            "web/wasm",
            &module,
        ],
    )?;
    let gz = output(
        "sh",
        &["-c", "gzip -9 -c web/wasm/hush_wasm_bg.wasm | wc -c"],
    )
    .and_then(|s| s.trim().parse::<u64>().ok())
    .ok_or(1u8)?;
    eprintln!("hush_wasm_bg.wasm: {gz} bytes gzipped (budget {WASM_GZIP_BUDGET})");
    if gz > WASM_GZIP_BUDGET {
        eprintln!("wasm size budget exceeded");
        return Err(1);
    }
    // npm writes node_modules/.package-lock.json on install: reinstall when the lock file is
    // newer (a dependency was added since), not only when node_modules is missing.
    let modified = |p: &str| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    let installed = modified("web/node_modules/.package-lock.json");
    if installed.is_none() || installed < modified("web/package-lock.json") {
        run("npm", &["ci", "--prefix", "web", "--no-audit", "--no-fund"])?;
    }
    run(
        "npx",
        &["--prefix", "web", "tsc", "-p", "web/tsconfig.worker.json"],
    )?;
    // The frame-crypto bench page's Worker (run with `node tests/browser/bench.mjs`).
    run(
        "npx",
        &["--prefix", "web", "tsc", "-p", "web/bench/tsconfig.json"],
    )?;
    web_api()
}

/// Builds the main-thread TypeScript (browser API, relay client, demo page) into web/dist and
/// the npm package in pkg/ from web/dist and web/wasm.
fn web_api() -> Result<(), u8> {
    run(
        "npx",
        &["--prefix", "web", "tsc", "-p", "web/tsconfig.api.json"],
    )?;
    run("node", &["pkg/build.mjs"])
}

/// Runs the headless-browser tests: `tests/browser/run.mjs`, then every
/// `tests/browser/*.test.mjs` in name order, in a loopback-only network namespace where possible.
/// A `NAME.prepare.mjs` runs first, outside the namespace, for steps that need the npm registry.
/// `HUSH_BROWSER_TESTS=a,b` runs only the scripts whose names contain one of the words.
fn browser_tests() -> Result<(), u8> {
    apt_install("/usr/bin/chromium", "chromium")?;
    // Firefox ESR for tests/browser/firefox.test.mjs (driven over WebDriver BiDi).
    apt_install("/usr/bin/firefox-esr", "firefox-esr")?;
    // Debian's coturn for tests/browser/net-turn.test.mjs (a real TURN server).
    apt_install("/usr/bin/turnserver", "coturn")?;
    // Debian's libnss3-tools (certutil) for tests/browser/net-deploy.test.mjs: each browser
    // trusts the test's own CA through its NSS database, as a user's browser trusts a real one.
    apt_install("/usr/bin/certutil", "libnss3-tools")?;
    // Python's standard library for tests/browser/lossy-link.py (loss and delay on a TUN
    // device: this kernel has no netem).
    apt_install("/usr/bin/python3", "python3")?;
    let filter: Vec<String> = std::env::var("HUSH_BROWSER_TESTS")
        .unwrap_or_default()
        .split(',')
        .filter(|w| !w.is_empty())
        .map(str::to_owned)
        .collect();
    let wanted = |name: &str| filter.is_empty() || filter.iter().any(|w| name.contains(w.as_str()));
    let mut scripts: Vec<String> = std::fs::read_dir("tests/browser")
        .map_err(|e| {
            eprintln!("tests/browser: {e}");
            1u8
        })?
        .filter_map(|entry| entry.ok()?.file_name().into_string().ok())
        .filter(|name| name.ends_with(".test.mjs") || name.ends_with(".prepare.mjs"))
        .collect();
    scripts.sort();
    for prepare in scripts
        .iter()
        .filter(|n| n.ends_with(".prepare.mjs") && wanted(n))
    {
        run("node", &[&format!("tests/browser/{prepare}")])?;
    }
    let mut tests = vec!["run.mjs".to_owned()];
    tests.extend(scripts.into_iter().filter(|n| n.ends_with(".test.mjs")));
    let isolated = Command::new("unshare")
        .args(["--net", "true"])
        .status()
        .is_ok_and(|s| s.success());
    for test in tests.iter().filter(|n| wanted(n)) {
        eprintln!("== browser test {test}");
        if isolated {
            sh(&format!(
                "unshare --net sh -c 'ip link set lo up && node tests/browser/{test}'"
            ))?;
        } else {
            eprintln!("unshare --net unavailable: the browser tests bind 127.0.0.1 only");
            run("node", &[&format!("tests/browser/{test}")])?;
        }
    }
    Ok(())
}

/// Builds the web assets and the relay, then runs the relay in dev mode on 127.0.0.1:8080
/// serving the demo (`web/demo`, `web/dist`, `web/wasm`) until Ctrl-C.
fn dev() -> Result<(), u8> {
    web()?;
    run("cargo", &["build", "--release", "-p", "hush-relay"])?;
    let target = std::env::var("CARGO_TARGET_DIR").unwrap_or_else(|_| "target".to_owned());
    let relay = format!("{target}/release/hush-relay");
    eprintln!("== open http://127.0.0.1:8080/r/demo in two tabs (Ctrl-C stops the relay)");
    eprintln!(
        "== recordings: {target}/recordings (open one with `cargo run -p hush-record -- decrypt \
         --key {target}/recordings/dev-recorder.key RECORDING -o OUT`)"
    );
    run(
        &relay,
        &[
            "serve",
            "--dev",
            "--bind",
            "127.0.0.1:8080",
            "--static-dir",
            "web",
            // The dev keys survive a restart: open calls rejoin (reconnect) and stay vouched.
            "--dev-key-file",
            &format!("{target}/hush-dev.key"),
            // Ctrl-C: participants are told and the relay exits 2 s later.
            "--drain-secs",
            "2",
            // The demo's record button: recordings (and, dev only, the dev recorder's key for
            // `hush-record decrypt --key`) go here.
            "--recording-dir",
            &format!("{target}/recordings"),
        ],
    )
}
