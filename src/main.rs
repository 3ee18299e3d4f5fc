//! The `foresight` binary; everything lives in the library.

fn main() -> std::process::ExitCode {
    foresight::cli::main()
}
