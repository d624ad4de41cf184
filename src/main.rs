//! The `coid` binary: everything lives in the library; see `coid --help`.

#![forbid(unsafe_code)]

fn main() -> std::process::ExitCode {
    coid::cli::main()
}
