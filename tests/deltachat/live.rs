//! Support for `tests/deltachat_live.rs`: the stack Delta Chat needs, the checks
//! before a client may start, and running `dc_scenario.py` with its JSON summary.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use serde::Deserialize;
use tempfile::TempDir;

use crate::common::metadata::socket_dir;
use crate::common::ports::{PortLease, lease_port};
use crate::common::stack::{Stack, dovecot_opts, with_coid_metadata};
use crate::common::{self, Dovecot, DovecotUser, PASSWORD};

/// Where `tests/run.sh` puts the path of the venv python with deltachat-rpc-*.
pub const PYTHON_ENV: &str = "COID_DC_PYTHON";
const SCENARIO: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/deltachat/dc_scenario.py"
);
/// The scenario's own watchdog; the test kills it a little later than that.
const SCENARIO_TIMEOUT_SECS: u64 = 150;
/// The Delta Chat clients, in dc_scenario.py's order (alice, bob, carol).
pub const CLIENTS: [&str; 3] = ["alice", "bob", "carol"];
/// Runs no client; Postfix sends it a copy of every message (`always_bcc`).
pub const OBSERVER: &str = "dave";

/// `alice` → `alice@example.org`.
pub fn addr(user: &str) -> String {
    format!("{user}@{}", common::DOMAIN)
}

/// The running stack and what must live as long as it.
pub struct LiveStack {
    /// Postfix → coid → Dovecot.
    pub stack: Stack,
    _sasl: PortLease,
    _dict: TempDir,
}

/// Postfix → coid → Dovecot ([`Stack`]) with coid's shipped METADATA snippet (so Delta
/// Chat sees METADATA and XDELTAPUSH and reads the server entries through coid), plus
/// SMTP AUTH through Dovecot (Delta Chat always logs in) on a leased port, and
/// `always_bcc` to [`OBSERVER`].
pub fn start_stack() -> LiveStack {
    let sasl = lease_port();
    let (dict, socket) = socket_dir();
    let mut opts = dovecot_opts("/").with_user(DovecotUser::new(&addr(OBSERVER)));
    opts.extra_conf = format!(
        "service auth {{\n  inet_listener sasl {{\n    address = 127.0.0.1\n    \
         port = {}\n  }}\n}}\n",
        sasl.port()
    );
    let opts = with_coid_metadata(opts, &socket);
    let stack = Stack::start_full(
        Dovecot::start(opts),
        |_, coid| coid.dict_socket = Some(socket.clone()),
        |_, postfix| {
            postfix.extra_main_cf = format!(
                "smtpd_sasl_auth_enable = yes\nsmtpd_sasl_type = dovecot\n\
                 smtpd_sasl_path = inet:127.0.0.1:{}\nalways_bcc = {}\n",
                sasl.port(),
                addr(OBSERVER)
            );
        },
    );
    LiveStack {
        stack,
        _sasl: sasl,
        _dict: dict,
    }
}

/// The parts of dc_scenario.py's JSON summary the test reads.
#[derive(Debug, Deserialize)]
pub struct Summary {
    pub ok: bool,
    pub steps: Vec<Step>,
    pub errors: Vec<String>,
    pub versions: serde_json::Value,
}

#[derive(Debug, Deserialize)]
pub struct Step {
    pub name: String,
    pub ok: bool,
    pub sent: Vec<Sent>,
}

/// A message a client sent; `rfc724_mid` is its Message-ID without `<>`.
#[derive(Debug, Deserialize)]
pub struct Sent {
    pub account: String,
    pub rfc724_mid: Option<String>,
}

/// One message a client sent: the step, the sender, the Message-ID.
#[derive(Debug)]
pub struct SentMessage {
    pub step: String,
    pub sender: String,
    pub message_id: String,
}

impl Summary {
    /// The Message-ID of the (first) message sent in `step`.
    pub fn message_id(&self, step: &str) -> String {
        let found = self.steps.iter().find(|s| s.name == step);
        found
            .and_then(|s| s.sent.first())
            .and_then(|m| m.rfc724_mid.clone())
            .unwrap_or_else(|| panic!("no Message-ID for step {step}: {found:?}"))
    }

    /// Every message the clients reported sending.
    pub fn all_sent(&self) -> Vec<SentMessage> {
        let one = |step: &Step, sent: &Sent| SentMessage {
            step: step.name.clone(),
            sender: sent.account.clone(),
            message_id: sent
                .rfc724_mid
                .clone()
                .unwrap_or_else(|| panic!("{}: sent without a Message-ID", step.name)),
        };
        let all = self
            .steps
            .iter()
            .flat_map(|s| s.sent.iter().map(|m| one(s, m)));
        all.collect()
    }

    /// The Delta Chat core version the clients reported.
    pub fn core_version(&self) -> String {
        self.versions["deltachat_core_version"].to_string()
    }
}

/// Panics unless `lo` is the only network interface of this network namespace
/// (`/proc/net/dev` is per namespace; `/sys/class/net` need not be).
pub fn require_loopback_only() {
    let dev = std::fs::read_to_string("/proc/net/dev").expect("reading /proc/net/dev");
    let others: Vec<&str> = dev
        .lines()
        .skip(2)
        .filter_map(|l| l.split(':').next().map(str::trim))
        .filter(|name| !name.is_empty() && *name != "lo")
        .collect();
    assert!(
        others.is_empty(),
        "refusing to run Delta Chat: network interfaces other than lo exist ({others:?}); \
         run it through tests/run.sh, which uses a loopback-only network namespace"
    );
}

/// The python from [`PYTHON_ENV`]; panics (never skips) if it is not there.
pub fn dc_python() -> PathBuf {
    let python = std::env::var_os(PYTHON_ENV).map(PathBuf::from);
    let python = python.unwrap_or_else(|| {
        panic!(
            "{PYTHON_ENV} is not set: it must name a python with deltachat-rpc-server and \
             deltachat-rpc-client 2.65.0; tests/run.sh creates that venv and sets it"
        )
    });
    let server = python.with_file_name("deltachat-rpc-server");
    assert!(
        python.is_file() && server.is_file(),
        "{PYTHON_ENV}={}: the python or deltachat-rpc-server next to it is missing",
        python.display()
    );
    python
}

/// Runs the whole client scenario against the stack; panics if any step fails.
/// `dir` gets the accounts, `summary.json` and `scenario.log`.
pub fn run_scenario(stack: &Stack, python: &Path, dir: &Path) -> Summary {
    let (summary, log) = (dir.join("summary.json"), dir.join("scenario.log"));
    let mut cmd = Command::new(python);
    cmd.arg(SCENARIO)
        .args(["--imap-port", &stack.dovecot.imap_port().to_string()])
        .args(["--smtp-port", &stack.postfix.smtp_port().to_string()]);
    for user in CLIENTS {
        cmd.args(["--account", &addr(user)]);
    }
    cmd.args(["--password", PASSWORD, "--output"])
        .arg(&summary)
        .arg("--accounts-dir")
        .arg(dir.join("accounts"))
        .arg("--rpc-server")
        .arg(python.with_file_name("deltachat-rpc-server"))
        // Multi-device mode: in single-device mode Delta Chat 2.65 deletes encrypted
        // messages from a non-chatmail server right after download, and the test
        // looks at the receivers' copies.
        .args([
            "--bcc-self",
            "1",
            "--step-timeout",
            "30",
            "--mdn-timeout",
            "30",
        ])
        .args(["--total-timeout", &SCENARIO_TIMEOUT_SECS.to_string()]);
    let out = common::process::output_file(&log);
    let err = out.try_clone().expect("cloning the scenario log handle");
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .spawn()
        .expect("starting dc_scenario.py");
    let limit = Duration::from_secs(SCENARIO_TIMEOUT_SECS + 30);
    let status = common::wait_until(limit, || child.try_wait().expect("polling dc_scenario.py"));
    let status = status.unwrap_or_else(|| {
        let _ = child.kill();
        let _ = child.wait();
        panic!(
            "dc_scenario.py hung, killed:\n{}",
            common::tail_file(&log, 40)
        )
    });
    let text = std::fs::read_to_string(&summary).unwrap_or_default();
    let parsed: Option<Summary> = serde_json::from_str(&text).ok();
    match parsed {
        Some(s) if status.success() && s.ok && s.steps.iter().all(|step| step.ok) => s,
        _ => panic!(
            "Delta Chat scenario failed ({status}); errors: {:?}\nlog tail:\n{}",
            parsed.map(|s| s.errors),
            common::tail_file(&log, 60)
        ),
    }
}
