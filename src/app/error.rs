//! Why coid could not be assembled or could not keep running, as a typed error, and
//! the process exit status each cause means (sysexits(3)). Both ends of the process
//! use it: the command line (`cli/`) and the service (`daemon/`), so systemd's
//! `RestartPreventExitStatus=78` sees the same code whichever path failed.

use crate::policy::PolicyError;
use crate::store::StoreError;

/// sysexits(3) codes.
pub mod exit {
    /// Success.
    pub const OK: u8 = 0;
    /// Command line usage error.
    pub const USAGE: u8 = 64;
    /// Input data was incorrect (permanent refusal).
    pub const DATAERR: u8 = 65;
    /// Addressee unknown.
    pub const NOUSER: u8 = 67;
    /// Internal software error.
    pub const SOFTWARE: u8 = 70;
    /// Temporary failure: try again later.
    pub const TEMPFAIL: u8 = 75;
    /// Configuration error.
    pub const CONFIG: u8 = 78;
}

/// A failure to assemble or run coid.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// The configuration is invalid (every problem, one per line).
    #[error("{0}")]
    Config(String),
    /// The Sieve policy does not compile.
    #[error(transparent)]
    Policy(#[from] PolicyError),
    /// The state store could not be opened or failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A file or directory coid needs could not be made or used.
    #[error("{0}")]
    Files(String),
    /// Sockets, the service account or signal handling: the host refused.
    #[error("{0}")]
    Host(String),
    /// A part coid builds itself (runtime, HTTP client) could not be built.
    #[error("{0}")]
    Internal(String),
}

impl AppError {
    /// The process exit status for this failure.
    pub fn exit_code(&self) -> u8 {
        match self {
            AppError::Config(_) | AppError::Policy(_) => exit::CONFIG,
            // Retrying cannot help: a later coid wrote the database (systemd must not
            // restart into the same refusal; RestartPreventExitStatus=78).
            AppError::Store(StoreError::SchemaTooNew { .. }) => exit::CONFIG,
            AppError::Store(_) | AppError::Files(_) => exit::TEMPFAIL,
            AppError::Host(_) | AppError::Internal(_) => exit::SOFTWARE,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_cause_has_its_exit_status() {
        let policy = PolicyError::Compile {
            path: "p".into(),
            message: "m".into(),
        };
        let cases = [
            (AppError::Config("c".into()), exit::CONFIG),
            (AppError::Policy(policy), exit::CONFIG),
            (AppError::Store(StoreError::Poisoned), exit::TEMPFAIL),
            (
                AppError::Store(StoreError::SchemaTooNew { found: 9, known: 8 }),
                exit::CONFIG,
            ),
            (AppError::Files("f".into()), exit::TEMPFAIL),
            (AppError::Host("h".into()), exit::SOFTWARE),
            (AppError::Internal("i".into()), exit::SOFTWARE),
        ];
        for (err, code) in cases {
            assert_eq!(err.exit_code(), code, "{err:?}");
        }
    }
}
