//! Assembling coid from a config file: config → state store, policy, backend, pipeline.
//! Shared by `serve`, `deliver`, `explain` and `check-config`, so all of them see the
//! same problems the same way.

use std::path::Path;
use std::sync::Arc;

use super::exit;
use crate::config::Config;
use crate::delivery::Backend;
use crate::delivery::dovecot::DovecotLmtp;
use crate::delivery::maildir::Maildir;
use crate::pipeline::Pipeline;
use crate::policy::Policy;
use crate::store::Store;

/// Loads the config, or prints every problem and returns the exit code (78).
pub fn load_config(path: &Path) -> Result<Config, u8> {
    Config::load(path).map_err(|err| {
        eprintln!("coid: {err}");
        exit::CONFIG
    })
}

/// Builds the pipeline from a valid config.
///
/// # Errors
/// The exit code after printing why (policy 78, state store 75).
pub fn build_pipeline(config: &Config) -> Result<(Arc<Pipeline>, Store), u8> {
    let policy = Policy::load(&config.policy.script, config.policy.cpu_limit).map_err(|err| {
        eprintln!("coid: {err}");
        exit::CONFIG
    })?;
    let store = Store::open(&config.database_path()).map_err(|err| {
        eprintln!("coid: {err}");
        exit::TEMPFAIL
    })?;
    let backend: Arc<dyn Backend> = match config.delivery.backend.as_str() {
        "dovecot" => Arc::new(DovecotLmtp::new(&config.delivery.dovecot)),
        _ => Arc::new(Maildir::new(&config.delivery.maildir, &config.state.dir)),
    };
    let pipeline = Pipeline::new(config, Arc::new(policy), store.clone(), backend);
    Ok((Arc::new(pipeline), store))
}

/// `coid check-config`: every problem in the config and the policy script at once.
pub fn check_config(path: &Path) -> u8 {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(err) => {
            eprintln!("coid: cannot read {}: {err}", path.display());
            return exit::CONFIG;
        }
    };
    let config = match Config::parse(&text, path) {
        Ok(config) => config,
        Err(err) => {
            eprintln!("coid: {err}");
            return exit::CONFIG;
        }
    };
    let mut problems = config.validate().err().map(|p| p.0).unwrap_or_default();
    if let Err(err) = Policy::load(&config.policy.script, config.policy.cpu_limit) {
        problems.push(err.to_string());
    }
    if problems.is_empty() {
        println!("{}: OK", path.display());
        return exit::OK;
    }
    for problem in &problems {
        eprintln!("coid: {}: {problem}", path.display());
    }
    exit::CONFIG
}
