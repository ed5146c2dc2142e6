//! CPU time and resident memory of a process, from `/proc` (Linux): how the load tool weighs the
//! relay, the reference forwarders and itself in the same run.

use std::io;

/// Clock ticks per second of `/proc/<pid>/stat` times (`USER_HZ`: 100 on every Linux ABI the
/// tool runs on).
const TICKS_PER_SEC: f64 = 100.0;

/// One reading of a process.
#[derive(Clone, Copy, Debug, Default, PartialEq, serde::Serialize)]
pub struct Sample {
    /// User plus system CPU time so far, all threads, in seconds (10 ms resolution).
    pub cpu_secs: f64,
    /// Resident memory now, in KiB.
    pub rss_kb: u64,
}

/// Reads process `pid` (`None`: this process).
pub fn sample(pid: Option<u32>) -> io::Result<Sample> {
    let dir = pid.map_or_else(|| "/proc/self".to_owned(), |p| format!("/proc/{p}"));
    let stat = std::fs::read_to_string(format!("{dir}/stat"))?;
    let status = std::fs::read_to_string(format!("{dir}/status"))?;
    parse(&stat, &status).ok_or_else(|| io::Error::other(format!("{dir}: unreadable stat")))
}

/// `utime` and `stime` (fields 14 and 15 of `stat`, counted after the parenthesised command
/// name, which may hold spaces) and `VmRSS` of `status`.
fn parse(stat: &str, status: &str) -> Option<Sample> {
    let after_name = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    // After the name: field 3 (state) is index 0, so utime (14) is index 11, stime index 12.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    let rss_kb = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())?;
    Some(Sample {
        cpu_secs: (utime + stime) as f64 / TICKS_PER_SEC,
        rss_kb,
    })
}

/// How many CPUs this machine has (for "share of the machine" figures).
pub fn cpus() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_are_read_after_the_name_even_with_spaces_in_it() {
        let stat = "4242 (hush relay) S 1 4242 4242 0 -1 4194560 100 0 0 0 250 75 0 0 20 0 9 0";
        let status = "Name:\thush-relay\nVmRSS:\t   30160 kB\nThreads:\t9\n";
        let s = parse(stat, status).unwrap();
        assert!((s.cpu_secs - 3.25).abs() < 1e-9, "{s:?}");
        assert_eq!(s.rss_kb, 30160);
        assert_eq!(parse("garbage", status), None);
    }

    #[test]
    fn this_process_can_be_read() {
        let s = sample(None).unwrap();
        assert!(s.rss_kb > 0);
    }
}
