//! The `coid` binary: everything lives in the library; see `coid --help`.

fn main() -> std::process::ExitCode {
    coid::cli::main()
}
