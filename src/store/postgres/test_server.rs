//! A real PostgreSQL server for tests (no fakes): one per test process, started on
//! first use, with one fresh database per test so tests run in parallel.
//!
//! The server is our own instance: `initdb` and `pg_ctl` of the highest PostgreSQL
//! under `/usr/lib/postgresql/*/bin`, a data directory in a new temporary directory
//! owned by the `postgres` user (PostgreSQL refuses to run as root; commands run
//! through `runuser -u postgres --` when the tests run as root), listening on
//! 127.0.0.1 on a free high port and on a unix socket in that directory, with trust
//! authentication (loopback and the socket only), and TLS offered with a certificate
//! for 127.0.0.1 issued by a throwaway CA ([`TestServer::ca_file`]; made with the
//! `openssl` command). A small watchdog shell, started
//! with the server, waits for the test process to end, then stops the server
//! (`pg_ctl stop -m fast` on its data directory) and removes the directory, so
//! nothing is left behind even when a test panics.
//!
//! Missing binaries or a server that will not start fail the test loudly: these tests
//! are never skipped.
//!
//! Self-contained (std, `postgres`, `nix`) so integration tests can include it with
//! `#[path]`.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};

/// The running server.
pub struct TestServer {
    /// 127.0.0.1's port.
    pub port: u16,
    /// The directory holding the data directory, the socket and the log.
    pub dir: PathBuf,
}

static SERVER: OnceLock<TestServer> = OnceLock::new();
static NEXT_DB: AtomicUsize = AtomicUsize::new(0);

/// The process's server, started on first use.
///
/// # Panics
/// PostgreSQL is not installed or does not start.
pub fn server() -> &'static TestServer {
    SERVER.get_or_init(start)
}

/// A new, empty database on the process's server; a config that connects to it over
/// TCP on 127.0.0.1 as the superuser `postgres`.
///
/// # Panics
/// The server cannot be started or the database cannot be created.
pub fn fresh_database() -> postgres::Config {
    server().new_database()
}

impl TestServer {
    /// The CA that issued the server's certificate (PEM).
    pub fn ca_file(&self) -> PathBuf {
        self.dir.join("ca.pem")
    }

    /// A config for `dbname` over the unix socket.
    pub fn socket_config(&self, dbname: &str) -> postgres::Config {
        let mut config = postgres::Config::new();
        config
            .host_path(&self.dir)
            .port(self.port)
            .user("postgres")
            .dbname(dbname);
        config
    }

    /// A config for `dbname` over TCP.
    pub fn config(&self, dbname: &str) -> postgres::Config {
        let mut config = postgres::Config::new();
        config
            .host("127.0.0.1")
            .port(self.port)
            .user("postgres")
            .dbname(dbname);
        config
    }
}

/// The `bin` directory of the highest PostgreSQL installed.
fn bin_dir() -> PathBuf {
    let root = Path::new("/usr/lib/postgresql");
    let entries = std::fs::read_dir(root).unwrap_or_else(|err| {
        panic!(
            "PostgreSQL is not installed ({}: {err}); tests/install-packages.sh installs it",
            root.display()
        )
    });
    let highest = entries
        .filter_map(Result::ok)
        .filter_map(|e| {
            let version: u32 = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            (bin.join("initdb").is_file() && bin.join("pg_ctl").is_file()).then_some((version, bin))
        })
        .max();
    match highest {
        Some((_, bin)) => bin,
        None => panic!(
            "no initdb and pg_ctl under {}/*/bin; tests/install-packages.sh installs PostgreSQL",
            root.display()
        ),
    }
}

/// A command run as the `postgres` user (through runuser when we are root).
fn as_postgres(program: &Path) -> Command {
    if nix::unistd::geteuid().is_root() {
        let mut cmd = Command::new("runuser");
        cmd.args(["-u", "postgres", "--"]).arg(program);
        cmd
    } else {
        Command::new(program)
    }
}

fn run(mut cmd: Command, what: &str) {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|err| panic!("cannot run {what}: {err}"));
    assert!(
        out.status.success(),
        "{what} failed ({}):\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A port nobody listens on now (the kernel's pick).
fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    listener.local_addr().expect("local address").port()
}

fn start() -> TestServer {
    let bin = bin_dir();
    let dir = tempfile::Builder::new()
        .prefix("coid-pg-")
        .tempdir()
        .expect("temp dir")
        .keep();
    if nix::unistd::geteuid().is_root() {
        let user = nix::unistd::User::from_name("postgres")
            .expect("look up user postgres")
            .expect("no user postgres: install the postgresql package");
        nix::unistd::chown(&dir, Some(user.uid), Some(user.gid)).expect("chown the temp dir");
    }
    let data = dir.join("data");
    let mut initdb = as_postgres(&bin.join("initdb"));
    initdb
        .arg("-D")
        .arg(&data)
        .args(["-U", "postgres", "-A", "trust", "-E", "UTF8", "--no-sync"]);
    run(initdb, "initdb");
    make_certificates(&dir);
    let server = TestServer {
        port: free_port(),
        dir,
    };
    server.start_again();
    watch(&bin, &server.dir, &data);
    server
}

impl TestServer {
    /// A server of the caller's own, not the process's shared one: for a test that
    /// stops it. Stopped and removed when the process ends, like the shared one.
    ///
    /// # Panics
    /// PostgreSQL is not installed or does not start.
    #[allow(dead_code)] // for tests/multinode.rs, which includes this file
    pub fn start_own() -> TestServer {
        start()
    }

    /// Stops the server (`pg_ctl stop -m fast`: open connections are cut), keeping its
    /// data, as a restart of the database or a crash of its host would.
    ///
    /// # Panics
    /// `pg_ctl` failed.
    #[allow(dead_code)] // for tests/multinode.rs, which includes this file
    pub fn stop(&self) {
        let mut pg_ctl = as_postgres(&bin_dir().join("pg_ctl"));
        pg_ctl
            .arg("-D")
            .arg(self.dir.join("data"))
            .args(["-m", "fast", "-w", "-t", "60", "stop"]);
        run(pg_ctl, "pg_ctl stop");
    }

    /// Starts the server on its data directory and port: the first start, or again
    /// after [`TestServer::stop`].
    ///
    /// # Panics
    /// `pg_ctl` failed.
    pub fn start_again(&self) {
        let options = format!(
            "-h 127.0.0.1 -p {port} -k {dir} -c fsync=off -c synchronous_commit=off \
             -c full_page_writes=off -c max_connections=200 -c ssl=on \
             -c ssl_cert_file={dir}/server.pem -c ssl_key_file={dir}/server.key",
            port = self.port,
            dir = self.dir.display()
        );
        let mut pg_ctl = as_postgres(&bin_dir().join("pg_ctl"));
        pg_ctl
            .arg("-D")
            .arg(self.dir.join("data"))
            .arg("-l")
            .arg(self.dir.join("log"))
            .args(["-o", &options, "-w", "-t", "60", "start"]);
        run(pg_ctl, "pg_ctl start");
    }

    /// A new, empty database on this server; a config that connects to it over TCP on
    /// 127.0.0.1 as the superuser `postgres`.
    ///
    /// # Panics
    /// The database cannot be created.
    pub fn new_database(&self) -> postgres::Config {
        let name = format!(
            "coid_test_{}_{}",
            std::process::id(),
            NEXT_DB.fetch_add(1, Ordering::Relaxed)
        );
        let mut admin = self
            .socket_config("postgres")
            .connect(postgres::NoTls)
            .expect("connect to the test server");
        admin
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .expect("create a test database");
        self.config(&name)
    }
}

/// A CA (`ca.pem`) and a server certificate for IP 127.0.0.1 it issued
/// (`server.pem`, `server.key`), in `dir`, owned by the server's user.
fn make_certificates(dir: &Path) {
    std::fs::write(
        dir.join("server.ext"),
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n",
    )
    .expect("write server.ext");
    let steps: [&[&str]; 3] = [
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-days",
            "2",
            "-subj",
            "/CN=coid test CA",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        ],
        &[
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
            "-subj",
            "/CN=127.0.0.1",
        ],
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "server.pem",
            "-days",
            "2",
            "-extfile",
            "server.ext",
        ],
    ];
    for args in steps {
        let mut openssl = as_postgres(Path::new("/usr/bin/openssl"));
        openssl.args(args).current_dir(dir);
        run(openssl, "openssl (test certificates)");
    }
    let mut chmod = as_postgres(Path::new("/bin/chmod"));
    chmod.args(["600", "server.key"]).current_dir(dir);
    run(chmod, "chmod server.key");
}

/// Starts the watchdog that stops the server and removes `dir` once this process
/// has ended.
fn watch(bin: &Path, dir: &Path, data: &Path) {
    let runuser = if nix::unistd::geteuid().is_root() {
        "runuser -u postgres -- "
    } else {
        ""
    };
    let script = format!(
        "while kill -0 {pid} 2>/dev/null; do sleep 1; done; \
         {runuser}'{pg_ctl}' -D '{data}' -m fast -w stop >/dev/null 2>&1; rm -rf '{dir}'",
        pid = std::process::id(),
        pg_ctl = bin.join("pg_ctl").display(),
        data = data.display(),
        dir = dir.display(),
    );
    // In the background of a shell that ends at once: nothing to wait for here, and
    // the watchdog outlives this process.
    let status = Command::new("sh")
        .args(["-c", &format!("( {script} ) >/dev/null 2>&1 </dev/null &")])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("start the test server's watchdog");
    assert!(status.success(), "the test server's watchdog did not start");
}
