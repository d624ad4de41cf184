//! A private Postfix 3.7 instance per test, started with `postfix -c <dir>`.
//!
//! It accepts mail by SMTP on a loopback port for the virtual mailbox
//! addresses it is given and hands it to one LMTP next hop (Dovecot
//! directly, or coid), like the production setup. Nothing can leave: local,
//! relay and default transports are `error:`. Config, queue, data directory
//! and log file all live in one temporary directory.
//!
//! Needed in a container without systemd or syslog (see the shared harness
//! README, "Pitfalls"): an ABSOLUTE `-c` path, a `data_directory` owned by
//! `postfix`, `maillog_file` plus a `postlog` service, and `chroot = n` on
//! every master.cf line. Retries are fast (3 s backoff instead of 300 s), so
//! a test that makes the next hop fail briefly does not stall for minutes.
//! Not 1 s: qmgr treats a deferred file as due when its mtime is at most one
//! second ahead, so a 1 s backoff lets it grab the file again while the lmtp
//! agent still holds its lock; qmgr then logs "skipped, still being
//! delivered" and leaves the file in `active` until it restarts (seen in CI).
//! Postfix must run as root; otherwise the start panics (never a skip).
//!
//! The generated files are dated back a minute: Postfix waits up to ~2 s
//! before reading a main.cf or table that changed within the last second,
//! and every Postfix command run by `postfix start` would do so. With that,
//! a start (queue creation and checks included) takes about 0.15 s.
//!
//! On drop, the master (found by its `master.pid`) gets SIGTERM, which is
//! what `postfix stop` sends, and is then polled for until gone (SIGKILL
//! after a grace period). `postfix stop` itself polls only once per second.

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

use super::ports::{LaunchFailure, PortLease, lease_port, start_with_retries};
use super::process;
use super::{DOMAIN, make_run_dir, release_run_dir, tail_file, wait_until};

/// How long Postfix gets to stop after SIGTERM before SIGKILL.
const STOP_GRACE: Duration = Duration::from_secs(10);

/// What kind of Postfix to start.
#[derive(Clone, Debug)]
pub struct PostfixOpts {
    /// `virtual_transport`, e.g. `lmtp:inet:127.0.0.1:12345` or `lmtp:unix:/path`.
    pub next_hop: String,
    /// Addresses accepted at RCPT; default alice, bob, carol, dave @example.org
    /// (dave is not a Dovecot user: LMTP refuses him).
    pub mailboxes: Vec<String>,
    /// Appended verbatim to main.cf (later settings win).
    pub extra_main_cf: String,
}

impl PostfixOpts {
    /// Deliver to `next_hop`, accepting the default mailboxes.
    pub fn new(next_hop: &str) -> Self {
        PostfixOpts {
            next_hop: next_hop.to_owned(),
            mailboxes: ["alice", "bob", "carol", "dave"]
                .iter()
                .map(|name| format!("{name}@{DOMAIN}"))
                .collect(),
            extra_main_cf: String::new(),
        }
    }
}

/// A running Postfix instance; stopped when dropped.
pub struct Postfix {
    dir: Option<TempDir>,
    smtp: PortLease,
    master_pid: u32,
    startup: Duration,
}

impl Postfix {
    /// Configure and start Postfix; panics with the log tail if it fails.
    pub fn start(opts: PostfixOpts) -> Postfix {
        process::require_root("Postfix");
        let began = Instant::now();
        let ids = process::existing_user_ids("postfix");
        let mut postfix = start_with_retries("Postfix", || launch(&opts, ids));
        postfix.startup = began.elapsed();
        postfix
    }

    /// The smtpd port on 127.0.0.1.
    pub fn smtp_port(&self) -> u16 {
        self.smtp.port()
    }

    /// The instance's temporary directory.
    pub fn dir(&self) -> &Path {
        self.dir
            .as_ref()
            .map(TempDir::path)
            .expect("Postfix directory is present until drop")
    }

    /// The configuration directory (`postfix -c` argument).
    pub fn config_dir(&self) -> PathBuf {
        self.dir().join("etc")
    }

    /// The maillog file.
    pub fn log_path(&self) -> PathBuf {
        self.dir().join("log/postfix.log")
    }

    /// The whole log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// How long `start` took.
    pub fn startup_time(&self) -> Duration {
        self.startup
    }

    /// Queue IDs of all messages in the queue (`postqueue -p`).
    pub fn queue_ids(&self) -> Vec<String> {
        parse_queue_ids(&self.postqueue("-p"))
    }

    /// Whether the queue is empty.
    pub fn queue_is_empty(&self) -> bool {
        self.queue_ids().is_empty()
    }

    /// The `postqueue -p` listing (with deferral reasons).
    pub fn queue_listing(&self) -> String {
        self.postqueue("-p")
    }

    /// Wait until the queue is empty; `Err` lists what is left, with the log tail.
    pub fn wait_for_empty_queue(&self, timeout: Duration) -> Result<(), String> {
        match wait_until(timeout, || self.queue_is_empty().then_some(())) {
            Some(()) => Ok(()),
            None => Err(format!(
                "Postfix queue not empty after {timeout:?}:\n{}\nlog tail:\n{}",
                self.queue_listing(),
                tail_file(&self.log_path(), 20)
            )),
        }
    }

    fn postqueue(&self, flag: &str) -> String {
        let out = process::run_checked(
            Command::new("postqueue")
                .arg("-c")
                .arg(self.config_dir())
                .arg(flag),
            "postqueue",
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn stop(&mut self) -> Duration {
        process::terminate(self.master_pid, "Postfix master", STOP_GRACE)
    }
}

impl Drop for Postfix {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "[coid-test] Postfix log tail ({}):\n{}",
                self.log_path().display(),
                tail_file(&self.log_path(), 40)
            );
        }
        self.stop();
        if let Some(dir) = self.dir.take() {
            release_run_dir(dir, "Postfix");
        }
    }
}

/// Queue IDs from `postqueue -p`: the first word of each entry's first
/// line, without the `*` (active) or `!` (held) marker.
pub fn parse_queue_ids(listing: &str) -> Vec<String> {
    listing
        .lines()
        .filter(|l| !l.starts_with(['-', ' ', '\t', '(']) && !l.is_empty())
        .filter_map(|l| l.split_whitespace().next())
        .map(|id| id.trim_end_matches(['*', '!']))
        .filter(|id| !id.is_empty() && id.chars().all(|c| c.is_ascii_alphanumeric()))
        .filter(|id| *id != "Mail")
        .map(str::to_owned)
        .collect()
}

/// One start attempt in a fresh directory with a fresh port.
fn launch(opts: &PostfixOpts, postfix_ids: (u32, u32)) -> Result<Postfix, LaunchFailure> {
    let dir = make_run_dir("coid-postfix-");
    let smtp = lease_port();
    let root = dir.path();
    prepare_files(root, opts, smtp.port(), postfix_ids);

    let out_path = root.join("log/postfix.out");
    let stdout = process::output_file(&out_path);
    let stderr = stdout
        .try_clone()
        .expect("duplicating the handle of postfix.out");
    // `postfix start` creates the queue directories and runs its integrity
    // checks, then `master -w`, which returns once the master is initialised
    // and listening.
    let status = Command::new("postfix")
        .arg("-c")
        .arg(root.join("etc"))
        .arg("start")
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(stderr)
        .status()
        .map_err(|e| LaunchFailure {
            message: format!("cannot run `postfix` (is postfix installed?): {e}"),
        })?;
    let pid = process::read_pid_file(&root.join("queue/pid/master.pid"));
    let listening = TcpStream::connect(("127.0.0.1", smtp.port())).is_ok();
    match pid {
        Some(master_pid) if status.success() && listening => Ok(Postfix {
            dir: Some(dir),
            smtp,
            master_pid,
            startup: Duration::ZERO,
        }),
        _ => {
            if let Some(pid) = pid {
                process::terminate(pid, "half-started Postfix master", STOP_GRACE);
            }
            let log = tail_file(&root.join("log/postfix.log"), 20);
            Err(LaunchFailure {
                message: format!(
                    "`postfix start` exited with {status}, smtpd listening: {listening}\n\
                     --- postfix.out ---\n{}\n--- postfix.log ---\n{log}\n\
                     (postfix prints fatal errors only to a tty or the maillog)",
                    tail_file(&out_path, 20)
                ),
            })
        }
    }
}

/// Write main.cf, master.cf and the mailbox map; create the directories.
fn prepare_files(root: &Path, opts: &PostfixOpts, smtp_port: u16, (uid, gid): (u32, u32)) {
    for sub in ["etc", "queue", "log"] {
        process::mkdir(&root.join(sub));
    }
    // master.lock lives here and is opened by the unprivileged master child.
    let data = root.join("data");
    process::mkdir(&data);
    process::chown(&data, uid, gid);
    process::chmod(&data, 0o700);

    let etc = root.join("etc");
    let mailboxes: String = opts.mailboxes.iter().map(|a| format!("{a} OK\n")).collect();
    process::write_settled_file(&etc.join("vmailbox"), mailboxes);
    process::write_settled_file(&etc.join("main.cf"), main_cf(root, opts));
    process::write_settled_file(&etc.join("master.cf"), master_cf(smtp_port));
    process::write_file(&root.join("log/postfix.log"), "");
}

/// The domains of the given mailboxes, for `virtual_mailbox_domains`.
fn domains(mailboxes: &[String]) -> String {
    let mut domains: Vec<&str> = mailboxes
        .iter()
        .filter_map(|a| a.rsplit_once('@').map(|(_, d)| d))
        .collect();
    domains.sort_unstable();
    domains.dedup();
    if domains.is_empty() {
        DOMAIN.to_owned()
    } else {
        domains.join(", ")
    }
}

fn main_cf(root: &Path, opts: &PostfixOpts) -> String {
    let root = root.display();
    format!(
        "# Generated by coid's integration tests.\n\
         compatibility_level = 3.6\n\
         queue_directory = {root}/queue\n\
         data_directory = {root}/data\n\
         mail_owner = postfix\n\
         setgid_group = postdrop\n\
         # no syslog here: log to a file through the postlog service\n\
         maillog_file = {root}/log/postfix.log\n\
         maillog_file_prefixes = {root}/log\n\
         myhostname = mx.{DOMAIN}\n\
         mydomain = {DOMAIN}\n\
         myorigin = $mydomain\n\
         mydestination =\n\
         inet_interfaces = loopback-only\n\
         inet_protocols = ipv4\n\
         mynetworks = 127.0.0.0/8\n\
         smtp_dns_support_level = disabled\n\
         lmtp_host_lookup = native\n\
         biff = no\n\
         append_dot_mydomain = no\n\
         alias_maps =\n\
         alias_database =\n\
         virtual_mailbox_domains = {domains}\n\
         virtual_mailbox_maps = texthash:{root}/etc/vmailbox\n\
         virtual_transport = {next_hop}\n\
         recipient_delimiter = +\n\
         local_transport = error:5.1.1 local delivery disabled in coid tests\n\
         relay_transport = error:5.7.1 relaying disabled in coid tests\n\
         default_transport = error:5.7.1 outbound mail disabled in coid tests\n\
         smtpd_tls_security_level = none\n\
         smtp_tls_security_level = none\n\
         lmtp_tls_security_level = none\n\
         smtpd_relay_restrictions = permit_mynetworks reject_unauth_destination\n\
         smtpd_recipient_restrictions =\n\
         # fast retries: the defaults would stall a test for minutes\n\
         in_flow_delay = 0\n\
         smtpd_error_sleep_time = 0\n\
         queue_run_delay = 1s\n\
         minimal_backoff_time = 3s\n\
         maximal_backoff_time = 6s\n\
         maximal_queue_lifetime = 1h\n\
         bounce_queue_lifetime = 1h\n\
         lmtp_connect_timeout = 5s\n\
         {extra}\n",
        domains = domains(&opts.mailboxes),
        next_hop = opts.next_hop,
        extra = opts.extra_main_cf,
    )
}

/// master.cf without chroot (column 5 = n); smtpd only on 127.0.0.1:port.
fn master_cf(smtp_port: u16) -> String {
    let services = [
        ("pickup", "unix", "n", "-", "60", "1", "pickup"),
        ("cleanup", "unix", "n", "-", "-", "0", "cleanup"),
        ("qmgr", "unix", "n", "-", "300", "1", "qmgr"),
        ("rewrite", "unix", "-", "-", "-", "-", "trivial-rewrite"),
        ("bounce", "unix", "-", "-", "-", "0", "bounce"),
        ("defer", "unix", "-", "-", "-", "0", "bounce"),
        ("trace", "unix", "-", "-", "-", "0", "bounce"),
        ("verify", "unix", "-", "-", "-", "1", "verify"),
        ("flush", "unix", "n", "-", "1000?", "0", "flush"),
        ("proxymap", "unix", "-", "-", "-", "-", "proxymap"),
        ("proxywrite", "unix", "-", "-", "-", "1", "proxymap"),
        ("smtp", "unix", "-", "-", "-", "-", "smtp"),
        ("relay", "unix", "-", "-", "-", "-", "smtp"),
        ("showq", "unix", "n", "-", "-", "-", "showq"),
        ("error", "unix", "-", "-", "-", "-", "error"),
        ("retry", "unix", "-", "-", "-", "-", "error"),
        ("discard", "unix", "-", "-", "-", "-", "discard"),
        ("local", "unix", "-", "n", "-", "-", "local"),
        ("virtual", "unix", "-", "n", "-", "-", "virtual"),
        ("lmtp", "unix", "-", "-", "-", "-", "lmtp"),
        ("anvil", "unix", "-", "-", "-", "1", "anvil"),
        ("scache", "unix", "-", "-", "-", "1", "scache"),
        ("postlog", "unix-dgram", "n", "-", "-", "1", "postlogd"),
    ];
    let mut conf = String::from(
        "# service type private unpriv chroot wakeup maxproc command\n\
         # Generated by coid's integration tests: no chroot anywhere.\n",
    );
    conf += &format!("127.0.0.1:{smtp_port} inet n - n - - smtpd\n");
    for (name, kind, private, unpriv, wakeup, maxproc, command) in services {
        conf += &format!("{name} {kind} {private} {unpriv} n {wakeup} {maxproc} {command}\n");
    }
    conf
}
