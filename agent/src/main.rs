//! The `lifeboat` binary: everything lives in the library; this only maps the result to an exit code.

fn main() -> std::process::ExitCode {
    lifeboat::cli::main()
}
