//! `coid serve`: the daemon itself lives in [`crate::daemon`]; this is its entry from
//! the command line.

use std::path::Path;

/// Runs the daemon; returns the exit code, after saying why it failed.
pub fn run(config_path: &Path) -> u8 {
    match crate::daemon::run(config_path) {
        Ok(()) => super::exit::OK,
        Err(err) => {
            super::logging::print_error(&err.to_string());
            err.exit_code()
        }
    }
}
