//! What the benchmarks print about the machine they ran on, and the quick switch:
//! `COID_BENCH_QUICK=1` runs a tenth of the work (a smoke run; its figures are noisy).

/// 10 with `COID_BENCH_QUICK` set (and not `0`), else 1: divide the work by it.
pub fn scale() -> usize {
    let quick = std::env::var_os("COID_BENCH_QUICK").is_some_and(|v| !v.is_empty() && v != "0");
    if quick { 10 } else { 1 }
}

/// CPUs, Postfix and Dovecot versions and the load average, for the header line.
pub fn environment() -> String {
    let run = |cmd: &str, args: &[&str]| {
        std::process::Command::new(cmd)
            .args(args)
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
            .unwrap_or_default()
    };
    let cpus = std::thread::available_parallelism().map_or(0, usize::from);
    format!(
        "{cpus} CPUs, Postfix {}, Dovecot {}, load average {}",
        run("postconf", &["-d", "-h", "mail_version"]),
        run("dovecot", &["--version"]),
        load_average()
    )
}

/// The 1, 5 and 15 minute load averages: other work on the machine skews the figures.
pub fn load_average() -> String {
    let loadavg = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    loadavg
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}
