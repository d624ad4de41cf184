//! `coid serve`: the daemon itself lives in [`crate::daemon`]; this is its entry from
//! the command line.

use std::path::Path;

/// Runs the daemon; returns the exit code.
pub fn run(config_path: &Path) -> u8 {
    crate::daemon::run(config_path)
}
