//! `coid doctor`: checks the whole path on a live host and prints, for each problem,
//! what is wrong and the line to change. The checks are `crate::doctor`'s (pure); this
//! module only gathers what they read: `postconf -x`, the transport tables,
//! `doveconf -n`, coid's files and database (read only), `GET /health`. Run it as root
//! (doveconf and the database need it). Exit 0 all ok, 1 warnings, 2 errors.
//!
//! `--network` also connects to the push services (it sends traffic, so it is asked
//! for); `--send-test ADDR` delivers one message through Postfix and finds it in
//! Dovecot, then removes it (`roundtrip`).

mod gather;
mod network;
mod roundtrip;

use std::path::Path;

use clap::Args;

use crate::config::Config;
use crate::doctor::{Area, Finding, Report};

/// `coid doctor`'s options.
#[derive(Debug, Args)]
pub struct DoctorArgs {
    /// Print the findings as one JSON object (for scripts).
    #[arg(long)]
    json: bool,
    /// Also connect to the push services coid sends to (sends traffic).
    #[arg(long)]
    network: bool,
    /// Deliver a test message to ADDR through Postfix's sendmail, find it in Dovecot
    /// (doveadm, as root) and remove it.
    #[arg(long, value_name = "ADDR")]
    send_test: Option<String>,
}

/// Runs `coid doctor`; returns 0, 1 or 2.
pub fn run(config_path: &Path, args: &DoctorArgs) -> u8 {
    let report = Report {
        findings: findings(config_path, args),
    };
    if args.json {
        println!("{}", report.json());
    } else {
        print!("{}", report.human());
    }
    report.exit_code()
}

fn findings(config_path: &Path, args: &DoctorArgs) -> Vec<Finding> {
    let config = match Config::load(config_path) {
        Ok(config) => config,
        Err(err) => {
            return vec![Finding::error(
                Area::Coid,
                format!("coid.toml: {err}"),
                format!("coid check-config --config {}", config_path.display()),
            )];
        }
    };
    let mut out = vec![Finding::ok(
        Area::Coid,
        format!("{}: valid", config_path.display()),
    )];
    let postconf = gather::postconf();
    out.extend(gather::postfix(&config, postconf.as_deref()));
    out.extend(gather::dovecot(&config, postconf.as_deref()));
    out.extend(crate::doctor::coid::check(&gather::coid(&config)));
    if args.network {
        out.extend(network::check(&config));
    }
    if let Some(addr) = &args.send_test {
        out.push(roundtrip::run(&config, addr));
    }
    out
}
