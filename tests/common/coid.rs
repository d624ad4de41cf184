//! Start the real `coid` binary for a test: a config file in a temp dir, `coid serve`
//! as a child process on a leased loopback port and a unix socket, stopped on drop.

use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use tempfile::TempDir;

use super::ports::{PortLease, lease_port};
use super::{make_run_dir, process, tail_file, wait_until};

/// How coid should be configured.
#[derive(Clone, Debug)]
pub struct CoidOpts {
    /// `[delivery]` backend: `dovecot` or `maildir`.
    pub backend: String,
    /// Dovecot's LMTP (socket path or host:port) for the dovecot backend.
    pub dovecot_lmtp: String,
    /// Hierarchy separator of the store.
    pub separator: String,
    /// Server-wide COI defaults.
    pub coi_enabled: bool,
    /// Server-wide message filter default.
    pub message_filter: String,
    /// Seconds coid waits for each store reply.
    pub reply_timeout_secs: u64,
    /// More `[lmtp]` keys, one `key = value` per line (e.g. `idle_timeout_secs = 1`).
    pub lmtp_extra: String,
    /// `[delivery.dovecot] transaction_timeout_secs`; `None`: coid's default.
    pub transaction_timeout_secs: Option<u64>,
    /// More `[delivery.dovecot]` keys, one `key = value` per line (e.g.
    /// `max_connections = 1`).
    pub dovecot_extra: String,
    /// `[service] shutdown_grace_secs` (5: tests that stop coid do not wait long).
    pub shutdown_grace_secs: u64,
    /// Appended to the generated TOML (may add whole tables).
    pub extra_toml: String,
    /// `COID_LOG` for the child: `debug` for tests, `info` (the default) for benchmarks.
    pub log_level: String,
    /// The dict proxy socket (`[dict] socket`, mode 0666 so Dovecot's mail user can
    /// connect); `None`: `dict.sock` in coid's temporary directory.
    pub dict_socket: Option<PathBuf>,
    /// `[service] user`: empty (the default) keeps coid running as root, as the
    /// other daemons in the tests run.
    pub service_user: String,
    /// `[policy] script`; empty: the built-in policy.
    pub policy_script: String,
    /// Extra environment for `coid serve` (e.g. `NOTIFY_SOCKET`); `@LOG_DEVINO@` in a
    /// value stands for the `device:inode` of coid's stderr (the log file).
    pub env: Vec<(String, String)>,
    /// A program (with arguments) that runs `coid serve …`, e.g.
    /// `systemd-socket-activate`; `@LMTP_ADDR@` in an argument stands for coid's
    /// TCP listener address. Empty: coid is started directly.
    pub wrapper: Vec<String>,
    /// `[state] dir` (the state store, the spool, the Maildir base); `None`: `state`
    /// in coid's temporary directory. Two coids given the same one share it.
    pub state_dir: Option<PathBuf>,
    /// `[state.postgresql] url` with `database = "postgresql"`; `None`: the suite's
    /// store (`COID_TEST_STORE`, see [`super::postgres`]): SQLite, or a PostgreSQL
    /// database per state directory.
    pub postgres_url: Option<String>,
}

impl CoidOpts {
    /// coid delivering to Dovecot at `lmtp`.
    pub fn dovecot(lmtp: &str) -> CoidOpts {
        CoidOpts {
            backend: "dovecot".into(),
            dovecot_lmtp: lmtp.into(),
            separator: "/".into(),
            coi_enabled: false,
            message_filter: "none".into(),
            reply_timeout_secs: 20,
            lmtp_extra: String::new(),
            transaction_timeout_secs: None,
            dovecot_extra: String::new(),
            shutdown_grace_secs: 5,
            extra_toml: String::new(),
            log_level: "debug".into(),
            dict_socket: None,
            service_user: String::new(),
            policy_script: String::new(),
            env: Vec::new(),
            wrapper: Vec::new(),
            state_dir: None,
            postgres_url: None,
        }
    }
}

/// `[deltachat] push = false` unless the test configures `[deltachat]` itself: coid's
/// default `notify_url` is Delta Chat's public service, which no test may contact.
fn quiet_deltachat(extra_toml: &str) -> &'static str {
    if extra_toml.contains("[deltachat]") {
        ""
    } else {
        "[deltachat]\npush = false\n"
    }
}

/// A running `coid serve`.
pub struct Coid {
    child: Option<Child>,
    dir: TempDir,
    port: PortLease,
    metrics_port: PortLease,
    log_level: String,
    dict_socket: PathBuf,
    state: PathBuf,
    env: Vec<(String, String)>,
    wrapper: Vec<String>,
}

impl Coid {
    /// Writes the config and starts coid; waits until it accepts connections.
    pub fn start(opts: CoidOpts) -> Coid {
        let dir = make_run_dir("coid-");
        let port = lease_port();
        let metrics_port = lease_port();
        let dict_socket = opts
            .dict_socket
            .clone()
            .unwrap_or_else(|| dir.path().join("dict.sock"));
        let state = opts
            .state_dir
            .clone()
            .unwrap_or_else(|| dir.path().join("state"));
        let postgres_url = opts.postgres_url.clone().or_else(|| {
            super::postgres::suite_on_postgres().then(|| super::postgres::url_for_state(&state))
        });
        let database = postgres_url
            .map(|url| format!("database = \"postgresql\"\n[state.postgresql]\nurl = \"{url}\"\n"))
            .unwrap_or_default();
        let config = format!(
            "[lmtp]\ntcp = [\"127.0.0.1:{port}\"]\nunix_socket = \"{sock}\"\nunix_socket_mode = \"0666\"\n{lmtp_extra}\
             [state]\ndir = \"{state}\"\n{database}[policy]\nscript = \"{policy}\"\n\
             [coi]\nenabled = {enabled}\nmessage_filter = \"{filter}\"\n\
             [delivery]\nbackend = \"{backend}\"\n\
             [delivery.dovecot]\nlmtp = \"{lmtp}\"\nhierarchy_separator = \"{sep}\"\nreply_timeout_secs = {timeout}\n{transaction}\
             [delivery.maildir]\nfsync = false\n\
             [dict]\nsocket = \"{dict}\"\nsocket_mode = \"0666\"\n\
             [service]\nuser = \"{user}\"\nshutdown_grace_secs = {grace}\n\
             [metrics]\nlisten = \"127.0.0.1:{metrics}\"\n{deltachat}{extra}",
            deltachat = quiet_deltachat(&opts.extra_toml),
            lmtp_extra = opts.lmtp_extra,
            metrics = metrics_port.port(),
            user = opts.service_user,
            grace = opts.shutdown_grace_secs,
            policy = opts.policy_script,
            port = port.port(),
            sock = dir.path().join("lmtp.sock").display(),
            state = state.display(),
            enabled = opts.coi_enabled,
            filter = opts.message_filter,
            backend = opts.backend,
            lmtp = opts.dovecot_lmtp,
            sep = opts.separator,
            timeout = opts.reply_timeout_secs,
            transaction = opts
                .transaction_timeout_secs
                .map(|t| format!("transaction_timeout_secs = {t}\n"))
                .unwrap_or_default()
                + &opts.dovecot_extra,
            dict = dict_socket.display(),
            extra = opts.extra_toml,
        );
        process::write_file(&dir.path().join("coid.toml"), config);
        let mut coid = Coid {
            child: None,
            dir,
            port,
            metrics_port,
            log_level: opts.log_level,
            dict_socket,
            state,
            env: opts.env,
            wrapper: opts.wrapper,
        };
        coid.spawn();
        coid
    }

    fn spawn(&mut self) {
        let served_before = self.serving_lines();
        let log = process::output_file(&self.log_path());
        let err = log.try_clone().expect("cloning the coid log handle");
        let meta = log.metadata().expect("the coid log's metadata");
        let devino = {
            use std::os::unix::fs::MetadataExt;
            format!("{}:{}", meta.dev(), meta.ino())
        };
        let coid = env!("CARGO_BIN_EXE_coid");
        let mut command = match self.wrapper.split_first() {
            Some((program, args)) => {
                let addr = self.lmtp_addr().to_string();
                let mut c = Command::new(program);
                c.args(args.iter().map(|a| a.replace("@LMTP_ADDR@", &addr)))
                    .arg(coid);
                c
            }
            None => Command::new(coid),
        };
        let child = command
            .args(["serve", "--config"])
            .arg(self.config_path())
            .envs(
                self.env
                    .iter()
                    .map(|(k, v)| (k, v.replace("@LOG_DEVINO@", &devino))),
            )
            .env("COID_LOG", &self.log_level)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(err)
            .spawn()
            .expect("starting coid");
        self.child = Some(child);
        let addr = self.lmtp_addr();
        if wait_until(Duration::from_secs(15), || TcpStream::connect(addr).ok()).is_none() {
            panic!(
                "coid did not listen on {addr}\n{}",
                tail_file(&self.log_path(), 40)
            );
        }
        // Its sockets listen before it serves (they are bound before its runtime
        // starts, and a wrapper may hold them): wait for its "coid serving" line, after
        // which `/health` says "ok".
        let serving = || (self.serving_lines() > served_before).then_some(());
        if wait_until(Duration::from_secs(15), serving).is_none() {
            panic!(
                "coid did not report serving\n{}",
                tail_file(&self.log_path(), 40)
            );
        }
    }

    /// How many times the log says "coid serving" (it is appended to across restarts).
    fn serving_lines(&self) -> usize {
        std::fs::read_to_string(self.log_path())
            .unwrap_or_default()
            .matches("coid serving")
            .count()
    }

    /// Starts coid again after [`Coid::stop`], same config and port.
    pub fn restart(&mut self) {
        self.stop();
        self.spawn();
    }

    /// Sends `signal` (`TERM`, `HUP`, ...) to the running coid.
    pub fn signal(&self, signal: &str) {
        let pid = self.pid().expect("coid is not running");
        assert!(process::send_signal(pid, signal), "kill -s {signal} {pid}");
    }

    /// Waits up to `timeout` for coid to exit; its exit code (`None`: still running,
    /// or killed by a signal: then -1).
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<i32> {
        let child = self.child.as_mut()?;
        let status = wait_until(timeout, || child.try_wait().ok().flatten())?;
        self.child = None;
        Some(status.code().unwrap_or(-1))
    }

    /// SIGTERM and wait.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            process::terminate(child.id(), "coid", Duration::from_secs(10));
            let _ = child.wait();
        }
    }

    /// The PID of the running `coid serve` (for /proc readings), if it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// The TCP listener.
    pub fn lmtp_addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port.port()))
    }

    /// The metrics and health listener (`[metrics] listen`).
    pub fn metrics_addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.metrics_port.port()))
    }

    /// Postfix transport for the TCP listener.
    pub fn transport_inet(&self) -> String {
        format!("lmtp:inet:127.0.0.1:{}", self.port.port())
    }

    /// The unix socket listener.
    pub fn socket_path(&self) -> PathBuf {
        self.dir.path().join("lmtp.sock")
    }

    /// The dict proxy socket (for Dovecot's `mail_attribute_dict = proxy:<it>:coid`).
    pub fn dict_socket_path(&self) -> &Path {
        &self.dict_socket
    }

    /// `[state] dir`.
    pub fn state_dir(&self) -> &Path {
        &self.state
    }

    /// The spool directory for large messages (`spool` under the state directory).
    pub fn spool_dir(&self) -> PathBuf {
        self.state.join("spool")
    }

    /// The config file.
    pub fn config_path(&self) -> PathBuf {
        self.dir.path().join("coid.toml")
    }

    /// coid's log (stderr).
    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("coid.log")
    }

    /// The whole log.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// The whole log without ANSI colours (tracing colours field names even in a
    /// file), so `name=value` fields can be searched for.
    pub fn plain_log(&self) -> String {
        strip_ansi(&self.log())
    }

    /// Runs a coid subcommand with this config; returns (exit code, stdout, stderr).
    pub fn cli(&self, args: &[&str], stdin: Option<&[u8]>) -> (i32, String, String) {
        run_cli(&self.config_path(), args, stdin)
    }

    /// `coid user set ADDR key=value...`, which must succeed.
    pub fn user_set(&self, address: &str, settings: &[&str]) {
        let mut args = vec!["user", "set", address];
        args.extend_from_slice(settings);
        let (code, out, err) = self.cli(&args, None);
        assert_eq!(code, 0, "coid user set failed: {out}{err}");
    }
}

/// Runs `coid SUBCOMMAND --config <config> REST...` for `args` = `[SUBCOMMAND, REST...]`;
/// returns (exit code, stdout, stderr).
pub fn run_cli(config: &Path, args: &[&str], stdin: Option<&[u8]>) -> (i32, String, String) {
    use std::io::Write;
    let (subcommand, rest) = args.split_first().expect("a coid subcommand");
    let mut child = Command::new(env!("CARGO_BIN_EXE_coid"))
        .arg(subcommand)
        .arg("--config")
        .arg(config)
        .args(rest)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("running coid");
    if let Some(mut pipe) = child.stdin.take() {
        pipe.write_all(stdin.unwrap_or_default())
            .expect("writing coid's stdin");
    }
    let out = child.wait_with_output().expect("waiting for coid");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `text` without ANSI escape sequences (`ESC [ ... letter`).
pub fn strip_ansi(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

impl Drop for Coid {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "[coid-test] coid log tail:\n{}",
                tail_file(&self.log_path(), 60)
            );
        }
        self.stop();
    }
}
