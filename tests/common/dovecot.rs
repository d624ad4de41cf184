//! A private Dovecot 2.3 instance per test: LMTP (TCP and unix socket), IMAP
//! with METADATA, Pigeonhole Sieve and maildir quota.
//!
//! Everything lives in one temporary directory: the generated `dovecot.conf`
//! (it does not include `/etc/dovecot`), the passwd-file with the test users,
//! `base_dir` (sockets, `master.pid`), `state_dir`, the log file, the Sieve
//! "before" script and the users' Maildirs. `instance_name` is unique per
//! stack, and ports come from [`super::ports`], so stacks never collide.
//!
//! The master runs in the foreground (`dovecot -F`) as a child of the test
//! process, so stopping it also reaps it (no zombies). It is stopped on drop
//! by the PID in its `master.pid`: SIGTERM, wait until its service processes
//! are gone, then SIGKILL (see [`Dovecot::stop`] for why).
//!
//! Running as root needs a few things the packaged configuration does not do
//! (see the shared harness README, "Pitfalls"): a mail user (`vmail`, created
//! on demand), a passwd-file readable by group `dovecot` (the auth process runs
//! as that user), `chroot =` on the services, no anvil auth penalty and no
//! auth failure delay (tests log in a lot), and a precompiled Sieve script
//! (the mail uid cannot write the `.svbin` next to a root-owned script).
//!
//! The quota plugin is loaded for all protocols (LMTP adds `sieve`, IMAP adds
//! `imap_quota`), so delivery and IMAP see the same quota.

use std::net::{SocketAddr, TcpStream};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

use super::imap::{Imap, StoredMessage};
use super::ports::{LaunchFailure, PortLease, lease_port, start_with_retries};
use super::process;
use super::{DOMAIN, PASSWORD, make_run_dir, release_run_dir, tail_file, wait_until};

/// System user that owns the Maildirs.
const MAIL_USER: &str = "vmail";
/// How long Dovecot may take to open its listeners.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(15);
/// How long Dovecot gets to stop after SIGTERM before SIGKILL.
const STOP_GRACE: Duration = Duration::from_secs(10);

/// A Sieve script given either as a file or as text.
#[derive(Clone, Debug)]
pub enum SieveScript {
    /// Path to an existing `.sieve` file (copied into the instance).
    File(PathBuf),
    /// The script itself.
    Inline(String),
}

impl SieveScript {
    fn text(&self) -> String {
        match self {
            SieveScript::Inline(text) => text.clone(),
            SieveScript::File(path) => std::fs::read_to_string(path)
                .unwrap_or_else(|e| panic!("reading Sieve script {}: {e}", path.display())),
        }
    }
}

/// One mail account in the passwd-file.
#[derive(Clone, Debug)]
pub struct DovecotUser {
    /// Full address, also the login name, e.g. `alice@example.org`.
    pub address: String,
    pub password: String,
    /// Storage quota for the `User quota` root (userdb field `quota_rule`),
    /// e.g. `"1K"` or `"10M"`; `None` means unlimited.
    pub quota_storage: Option<String>,
    /// Bytes of mail to put into the INBOX before Dovecot starts (one
    /// message). With a small quota this makes the user already over quota.
    pub prefill_bytes: usize,
}

impl DovecotUser {
    /// A user with the default password and no quota.
    pub fn new(address: &str) -> Self {
        DovecotUser {
            address: address.to_owned(),
            password: PASSWORD.to_owned(),
            quota_storage: None,
            prefill_bytes: 0,
        }
    }

    /// Set the storage quota, e.g. `"1K"`.
    pub fn with_quota(mut self, storage: &str) -> Self {
        self.quota_storage = Some(storage.to_owned());
        self
    }

    /// Put `bytes` of mail into the INBOX before start.
    pub fn with_prefill(mut self, bytes: usize) -> Self {
        self.prefill_bytes = bytes;
        self
    }

    /// A 1 KiB quota with 4 KiB already stored: every delivery exceeds it.
    pub fn over_quota(self) -> Self {
        self.with_quota("1K").with_prefill(4096)
    }

    fn split(&self) -> (&str, &str) {
        self.address
            .rsplit_once('@')
            .unwrap_or_else(|| panic!("test user `{}` needs a domain", self.address))
    }
}

/// What kind of Dovecot to start. `Default` gives the plain setup.
#[derive(Clone, Debug)]
pub struct DovecotOpts {
    /// Hierarchy separator of the INBOX namespace: `"/"` (default) or `"."`.
    pub separator: String,
    /// Global Sieve script run before any user script (`sieve_before`).
    pub sieve_before: Option<SieveScript>,
    /// `sieve_global_extensions`, e.g. `"+editheader"`.
    pub sieve_global_extensions: Option<String>,
    /// The accounts; default alice, bob, carol @example.org with password "secret".
    pub users: Vec<DovecotUser>,
    pub lda_mailbox_autocreate: bool,
    pub lda_mailbox_autosubscribe: bool,
    pub lmtp_rcpt_check_quota: bool,
    /// `mail_debug = yes` (verbose log, useful when a test misbehaves).
    pub mail_debug: bool,
    /// Appended to the generated dovecot.conf, with `@SIEVE_GLOBAL@` replaced by the
    /// directory holding `global_sieve`.
    pub extra_conf: String,
    /// Admin Sieve scripts (file name, text), installed and precompiled there.
    pub global_sieve: Vec<(String, String)>,
    /// Executables (path under that directory, text with `@DOVECOT_CONF@` replaced
    /// by this instance's config file), mode 0755.
    pub global_programs: Vec<(String, String)>,
}

impl Default for DovecotOpts {
    fn default() -> Self {
        DovecotOpts {
            separator: "/".to_owned(),
            sieve_before: None,
            sieve_global_extensions: None,
            users: ["alice", "bob", "carol"]
                .iter()
                .map(|name| DovecotUser::new(&format!("{name}@{DOMAIN}")))
                .collect(),
            lda_mailbox_autocreate: false,
            lda_mailbox_autosubscribe: false,
            lmtp_rcpt_check_quota: false,
            mail_debug: false,
            extra_conf: String::new(),
            global_sieve: Vec::new(),
            global_programs: Vec::new(),
        }
    }
}

impl DovecotOpts {
    /// Replace the user with the same address, or add it.
    pub fn with_user(mut self, user: DovecotUser) -> Self {
        match self.users.iter_mut().find(|u| u.address == user.address) {
            Some(existing) => *existing = user,
            None => self.users.push(user),
        }
        self
    }

    /// Use this Sieve text as the `sieve_before` script.
    pub fn with_sieve_before(mut self, script: &str) -> Self {
        self.sieve_before = Some(SieveScript::Inline(script.to_owned()));
        self
    }
}

/// A running Dovecot instance; stopped when dropped.
pub struct Dovecot {
    child: Child,
    dir: Option<TempDir>,
    lmtp: PortLease,
    imap: PortLease,
    users: Vec<DovecotUser>,
    separator: String,
    startup: Duration,
}

impl Dovecot {
    /// Configure and start Dovecot; panics with the log tail if it fails.
    pub fn start(opts: DovecotOpts) -> Dovecot {
        process::require_root("Dovecot");
        let began = Instant::now();
        let ids = SystemIds::get();
        let mut dovecot = start_with_retries("Dovecot", || launch(&opts, &ids));
        dovecot.startup = began.elapsed();
        dovecot
    }

    /// Dovecot's LMTP TCP listener.
    pub fn lmtp_tcp(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.lmtp.port()))
    }

    /// Dovecot's LMTP unix socket.
    pub fn lmtp_socket(&self) -> PathBuf {
        self.dir().join("run/lmtp")
    }

    /// Postfix transport for the LMTP TCP listener, e.g. `lmtp:inet:127.0.0.1:24024`.
    pub fn lmtp_transport_inet(&self) -> String {
        format!("lmtp:inet:127.0.0.1:{}", self.lmtp.port())
    }

    /// Postfix transport for the LMTP unix socket.
    pub fn lmtp_transport_unix(&self) -> String {
        format!("lmtp:unix:{}", self.lmtp_socket().display())
    }

    /// IMAP port (plaintext, on 127.0.0.1).
    pub fn imap_port(&self) -> u16 {
        self.imap.port()
    }

    /// Dovecot's log file (all processes log there).
    pub fn log_path(&self) -> PathBuf {
        self.dir().join("dovecot.log")
    }

    /// The whole log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// Panics, listing them, if the log has `Error:`, `Fatal:` or `Panic:` lines.
    pub fn assert_no_log_errors(&self) {
        let errors = self.log_errors();
        assert!(errors.is_empty(), "{errors:?}");
    }

    /// Log lines with `Error:`, `Fatal:` or `Panic:`.
    pub fn log_errors(&self) -> Vec<String> {
        self.log()
            .lines()
            .filter(|l| {
                ["Error: ", "Fatal: ", "Panic: "]
                    .iter()
                    .any(|k| l.contains(k))
            })
            .map(str::to_owned)
            .collect()
    }

    /// The instance's temporary directory (config, sockets, log, mail).
    pub fn dir(&self) -> &Path {
        self.dir
            .as_ref()
            .map(TempDir::path)
            .expect("Dovecot directory is present until drop")
    }

    /// The generated configuration file.
    pub fn config_path(&self) -> PathBuf {
        self.dir().join("dovecot.conf")
    }

    /// The INBOX namespace's hierarchy separator.
    pub fn separator(&self) -> &str {
        &self.separator
    }

    /// Join mailbox name parts with this instance's separator: `["COI", "Chats"]`.
    pub fn mailbox_name(&self, parts: &[&str]) -> String {
        parts.join(&self.separator)
    }

    /// How long `start` took.
    pub fn startup_time(&self) -> Duration {
        self.startup
    }

    /// The password of a configured user (`alice` or `alice@example.org`).
    pub fn password(&self, user: &str) -> &str {
        let address = full_address(user);
        self.users
            .iter()
            .find(|u| u.address == address)
            .map(|u| u.password.as_str())
            .unwrap_or_else(|| panic!("`{address}` is not a user of this Dovecot"))
    }

    /// Log in over IMAP as a configured user.
    pub fn imap(&self, user: &str) -> Imap {
        let address = full_address(user);
        Imap::login(self.imap_port(), &address, self.password(&address))
            .unwrap_or_else(|e| panic!("IMAP login as {address}: {e}"))
    }

    /// Poll IMAP until a message with this Message-ID is in any mailbox of
    /// `user`; panics (with the log tail) after `timeout`.
    pub fn wait_for_message(
        &self,
        user: &str,
        message_id: &str,
        timeout: Duration,
    ) -> StoredMessage {
        let mut imap = self.imap(user);
        wait_until(timeout, || imap.find_message(message_id)).unwrap_or_else(|| {
            panic!(
                "message {message_id} did not reach {user} within {timeout:?}\n\
                 mailboxes: {:?}\nDovecot log tail:\n{}",
                imap.list()
                    .iter()
                    .map(|m| m.name.clone())
                    .collect::<Vec<_>>(),
                tail_file(&self.log_path(), 30)
            )
        })
    }

    /// How many copies of the message `user` has, over all mailboxes.
    pub fn count_message(&self, user: &str, message_id: &str) -> usize {
        self.imap(user).count_message(message_id)
    }

    /// Run `doveadm` against this instance, e.g. `["quota", "get", "-u", "carol@example.org"]`.
    pub fn doveadm(&self, args: &[&str]) -> String {
        let out = process::run_checked(
            Command::new("doveadm")
                .arg("-c")
                .arg(self.config_path())
                .args(args),
            "doveadm",
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// SIGTERM the master, wait for its service processes to exit, then
    /// SIGKILL the master if it is still there.
    ///
    /// After SIGTERM, Dovecot's master tells its children to quit, sends
    /// SIGQUIT to those still alive and then always sleeps a fixed second
    /// before it closes the log pipes and exits (`services_monitor_wait_and_kill`).
    /// Once every service process but `log` is gone there is nothing left to
    /// clean up, so that pause is cut short with SIGKILL; `log` then sees its
    /// pipes close and exits by itself. This saves about 1 s per stack.
    fn stop(&mut self) -> Duration {
        let began = Instant::now();
        if matches!(self.child.try_wait(), Ok(Some(_))) {
            return began.elapsed();
        }
        let pid = process::read_pid_file(&self.dir().join("run/master.pid"))
            .filter(|&pid| pid == self.child.id())
            .unwrap_or_else(|| self.child.id());
        process::send_signal(pid, "TERM");
        let mut log_processes = Vec::new();
        let settled = wait_until(STOP_GRACE, || {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return Some(());
            }
            let (log, workers): (Vec<u32>, Vec<u32>) = process::live_children(pid)
                .into_iter()
                .partition(|&child| process::cmdline(child).ends_with("/log"));
            log_processes = log;
            workers.is_empty().then_some(())
        });
        if settled.is_none() {
            eprintln!("[coid-test] Dovecot (pid {pid}) did not stop within {STOP_GRACE:?}");
        }
        if !matches!(self.child.try_wait(), Ok(Some(_))) {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
        for log in log_processes {
            process::wait_for_exit(log, Duration::from_secs(2));
        }
        began.elapsed()
    }
}

impl Drop for Dovecot {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "[coid-test] Dovecot log tail ({}):\n{}",
                self.log_path().display(),
                tail_file(&self.log_path(), 40)
            );
        }
        self.stop();
        if let Some(dir) = self.dir.take() {
            release_run_dir(dir, "Dovecot");
        }
    }
}

/// `alice` -> `alice@example.org`; full addresses are kept.
fn full_address(user: &str) -> String {
    if user.contains('@') {
        user.to_owned()
    } else {
        format!("{user}@{DOMAIN}")
    }
}

/// uids and gids of the system users the configuration refers to.
struct SystemIds {
    mail_uid: u32,
    mail_gid: u32,
    /// Group of `default_internal_user`; the auth process reads the passwd-file with it.
    internal_gid: u32,
}

impl SystemIds {
    fn get() -> SystemIds {
        let (mail_uid, mail_gid) = process::ensure_system_user(MAIL_USER);
        let (_, internal_gid) = process::existing_user_ids("dovecot");
        process::existing_user_ids("dovenull");
        SystemIds {
            mail_uid,
            mail_gid,
            internal_gid,
        }
    }
}

/// One start attempt in a fresh directory with fresh ports.
fn launch(opts: &DovecotOpts, ids: &SystemIds) -> Result<Dovecot, LaunchFailure> {
    let dir = make_run_dir("coid-dovecot-");
    let (lmtp, imap) = (lease_port(), lease_port());
    let root = dir.path();
    prepare_files(root, opts, ids, lmtp.port(), imap.port());

    let out_path = root.join("dovecot.out");
    let stdout = process::output_file(&out_path);
    let stderr = stdout
        .try_clone()
        .expect("duplicating the handle of dovecot.out");
    let mut child = Command::new("dovecot")
        .arg("-F")
        .arg("-c")
        .arg(root.join("dovecot.conf"))
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(stderr)
        .spawn()
        .expect("spawning `dovecot -F` (is dovecot-core installed?)");

    let socket = root.join("run/lmtp");
    let ready = wait_until(STARTUP_TIMEOUT, || {
        if let Ok(Some(status)) = child.try_wait() {
            return Some(Err(format!("dovecot exited early with {status}")));
        }
        let up = tcp_listening(lmtp.port())
            && tcp_listening(imap.port())
            && UnixStream::connect(&socket).is_ok();
        up.then_some(Ok(()))
    });
    let problem = match ready {
        Some(Ok(())) => None,
        Some(Err(e)) => Some(e),
        None => Some(format!("listeners not up after {STARTUP_TIMEOUT:?}")),
    };
    if let Some(problem) = problem {
        let _ = child.kill();
        let _ = child.wait();
        let message = format!(
            "{problem}\n--- dovecot.out ---\n{}\n--- dovecot.log ---\n{}",
            tail_file(&out_path, 20),
            tail_file(&root.join("dovecot.log"), 30)
        );
        return Err(LaunchFailure { message });
    }
    Ok(Dovecot {
        child,
        dir: Some(dir),
        lmtp,
        imap,
        users: opts.users.clone(),
        separator: opts.separator.clone(),
        startup: Duration::ZERO,
    })
}

fn tcp_listening(port: u16) -> bool {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok()
}

/// Write config, users, mail homes and the Sieve script.
fn prepare_files(root: &Path, opts: &DovecotOpts, ids: &SystemIds, lmtp_port: u16, imap_port: u16) {
    let mail_root = root.join("mail");
    process::mkdir(&mail_root);
    process::chown(&mail_root, ids.mail_uid, ids.mail_gid);

    let users_file = root.join("users");
    process::write_file(&users_file, passwd_file(&opts.users));
    process::chown(&users_file, 0, ids.internal_gid);
    process::chmod(&users_file, 0o640);

    for user in opts.users.iter().filter(|u| u.prefill_bytes > 0) {
        prefill_inbox(&mail_root, user, ids);
    }

    let sieve_dir = root.join("sieve-before.d");
    let params = ConfigParams {
        root,
        ids,
        lmtp_port,
        imap_port,
        sieve_before_dir: opts.sieve_before.as_ref().map(|_| sieve_dir.as_path()),
        opts,
    };
    let config = root.join("dovecot.conf");
    process::write_file(&config, render_config(&params));

    if let Some(script) = &opts.sieve_before {
        install_sieve_before(&config, &sieve_dir, script);
    }
    let global_dir = root.join(GLOBAL_SIEVE_DIR);
    for (name, text) in &opts.global_programs {
        let path = global_dir.join(name);
        if let Some(parent) = path.parent() {
            process::mkdir(parent);
        }
        let conf = config.display().to_string();
        process::write_file(&path, text.replace("@DOVECOT_CONF@", &conf));
        process::chmod(&path, 0o755);
    }
    for (name, text) in &opts.global_sieve {
        process::mkdir(&global_dir);
        let path = global_dir.join(name);
        process::write_file(&path, text);
        process::run_checked(
            Command::new("sievec").arg("-c").arg(&config).arg(&path),
            "precompiling a global Sieve script",
        );
    }
}

/// Where [`DovecotOpts::global_sieve`] scripts go, under the instance directory.
const GLOBAL_SIEVE_DIR: &str = "sieve-global";

/// passwd-file lines: `user:{PLAIN}pass:uid:gid:gecos:home:shell:extra_fields`.
fn passwd_file(users: &[DovecotUser]) -> String {
    users
        .iter()
        .map(|u| {
            let extra = u
                .quota_storage
                .as_ref()
                .map(|q| format!("userdb_quota_rule=*:storage={q}"))
                .unwrap_or_default();
            format!("{}:{{PLAIN}}{}::::::{extra}\n", u.address, u.password)
        })
        .collect()
}

/// Put one message of about `prefill_bytes` into the user's INBOX (`cur`).
fn prefill_inbox(mail_root: &Path, user: &DovecotUser, ids: &SystemIds) {
    let (local, domain) = user.split();
    let domain_dir = mail_root.join(domain);
    let home = domain_dir.join(local);
    let maildir = home.join("Maildir");
    for sub in ["cur", "new", "tmp"] {
        process::mkdir(&maildir.join(sub));
    }
    let header = format!(
        "From: filler@example.net\r\nTo: {}\r\nSubject: prefill\r\n\
         Message-ID: <prefill.{local}@coid.test>\r\n\r\n",
        user.address
    );
    let mut body = header.into_bytes();
    while body.len() < user.prefill_bytes {
        body.extend_from_slice(b"x".repeat(76).as_slice());
        body.extend_from_slice(b"\r\n");
    }
    process::write_file(&maildir.join("cur/1000000000.prefill.coid:2,S"), body);
    for path in [&domain_dir, &home, &maildir] {
        process::chown(path, ids.mail_uid, ids.mail_gid);
    }
    for sub in ["cur", "new", "tmp", "cur/1000000000.prefill.coid:2,S"] {
        process::chown(&maildir.join(sub), ids.mail_uid, ids.mail_gid);
    }
}

/// Copy the script into `sieve_before` and precompile it with `sievec`.
fn install_sieve_before(config: &Path, sieve_dir: &Path, script: &SieveScript) {
    process::mkdir(sieve_dir);
    let path = sieve_dir.join("00-before.sieve");
    process::write_file(&path, script.text());
    process::run_checked(
        Command::new("sievec").arg("-c").arg(config).arg(&path),
        "precompiling the sieve_before script",
    );
}

struct ConfigParams<'a> {
    root: &'a Path,
    ids: &'a SystemIds,
    lmtp_port: u16,
    imap_port: u16,
    sieve_before_dir: Option<&'a Path>,
    opts: &'a DovecotOpts,
}

fn yes_no(value: bool) -> &'static str {
    if value { "yes" } else { "no" }
}

fn instance_name() -> String {
    static COUNTER: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!("coid-test-{}-{n}", std::process::id())
}

/// The complete dovecot.conf for one instance.
fn render_config(p: &ConfigParams<'_>) -> String {
    [
        core_config(p),
        auth_config(p),
        mail_config(p),
        delivery_config(p),
        service_config(p),
        p.opts.extra_conf.replace(
            "@SIEVE_GLOBAL@",
            &p.root.join(GLOBAL_SIEVE_DIR).display().to_string(),
        ),
    ]
    .join("\n")
}

fn core_config(p: &ConfigParams<'_>) -> String {
    let root = p.root.display();
    format!(
        "# Generated by coid's integration tests; does not include /etc/dovecot.\n\
         instance_name = {instance}\n\
         base_dir = {root}/run\n\
         state_dir = {root}/state\n\
         log_path = {root}/dovecot.log\n\
         mail_debug = {debug}\n\
         protocols = imap lmtp\n\
         listen = 127.0.0.1\n\
         hostname = mx.{DOMAIN}\n\
         postmaster_address = postmaster@{DOMAIN}\n\
         ssl = no\n",
        instance = instance_name(),
        debug = yes_no(p.opts.mail_debug),
    )
}

fn auth_config(p: &ConfigParams<'_>) -> String {
    let root = p.root.display();
    format!(
        "disable_plaintext_auth = no\n\
         auth_mechanisms = plain login\n\
         auth_verbose = yes\n\
         # tests log in a lot and fail on purpose: no failure delay\n\
         auth_failure_delay = 0\n\
         default_login_user = dovenull\n\
         default_internal_user = dovecot\n\
         default_internal_group = dovecot\n\
         first_valid_uid = {uid}\n\
         first_valid_gid = {gid}\n\
         passdb {{\n  driver = passwd-file\n  args = scheme=PLAIN username_format=%u {root}/users\n}}\n\
         userdb {{\n  driver = passwd-file\n  args = username_format=%u {root}/users\n\
         \x20 default_fields = uid={uid} gid={gid} home={root}/mail/%d/%n\n}}\n",
        uid = p.ids.mail_uid,
        gid = p.ids.mail_gid,
    )
}

fn mail_config(p: &ConfigParams<'_>) -> String {
    format!(
        "mail_location = maildir:~/Maildir\n\
         namespace inbox {{\n  inbox = yes\n  separator = {sep}\n}}\n\
         mail_plugins = $mail_plugins quota\n\
         mail_attribute_dict = file:%h/dovecot-attributes\n\
         protocol imap {{\n  imap_metadata = yes\n  mail_plugins = $mail_plugins imap_quota\n}}\n",
        sep = p.opts.separator,
    )
}

fn delivery_config(p: &ConfigParams<'_>) -> String {
    let mut plugin = String::from(
        "plugin {\n  quota = maildir:User quota\n  sieve = file:~/sieve;active=~/.dovecot.sieve\n",
    );
    if let Some(dir) = p.sieve_before_dir {
        plugin += &format!("  sieve_before = {}\n", dir.display());
    }
    if let Some(ext) = &p.opts.sieve_global_extensions {
        plugin += &format!("  sieve_global_extensions = {ext}\n");
    }
    plugin += "}\n";
    format!(
        "recipient_delimiter = +\n\
         lda_mailbox_autocreate = {create}\n\
         lda_mailbox_autosubscribe = {subscribe}\n\
         lmtp_rcpt_check_quota = {quota}\n\
         protocol lmtp {{\n  mail_plugins = $mail_plugins sieve\n}}\n{plugin}",
        create = yes_no(p.opts.lda_mailbox_autocreate),
        subscribe = yes_no(p.opts.lda_mailbox_autosubscribe),
        quota = yes_no(p.opts.lmtp_rcpt_check_quota),
    )
}

fn service_config(p: &ConfigParams<'_>) -> String {
    let mut conf = format!(
        "service lmtp {{\n\
         \x20 inet_listener lmtp {{\n    address = 127.0.0.1\n    port = {lmtp}\n  }}\n\
         \x20 unix_listener lmtp {{\n    mode = 0666\n  }}\n}}\n\
         service imap-login {{\n  chroot =\n\
         \x20 inet_listener imap {{\n    address = 127.0.0.1\n    port = {imap}\n  }}\n\
         \x20 inet_listener imaps {{\n    port = 0\n  }}\n}}\n\
         # no auth penalty: it delays every later login from 127.0.0.1\n\
         service anvil {{\n  chroot =\n  unix_listener anvil-auth-penalty {{\n    mode = 0\n  }}\n}}\n",
        lmtp = p.lmtp_port,
        imap = p.imap_port,
    );
    for service in [
        "pop3-login",
        "submission-login",
        "managesieve-login",
        "imap-urlauth-login",
        "ipc",
        "old-stats",
    ] {
        conf += &format!("service {service} {{\n  chroot =\n}}\n");
    }
    conf
}
