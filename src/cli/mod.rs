//! Command-line interface. Clap types live here; each subcommand has its own
//! file. This is the only module that uses `anyhow`: below it, every layer
//! has its own typed errors, and here they become a readable error chain.

mod args;
mod backtest;
mod eval;
mod explain;
mod forecast;
mod incidents;
mod inspect;
mod outputs;
mod restart;
mod rollback;
mod serve;

use std::process::ExitCode;

use clap::Parser;

pub use args::{
    BacktestArgs, BacktestFormat, Cli, Command, DuplicatesArg, EvalArgs, ExplainArgs, InputFormat,
    ServeArgs, SignalArg,
};

/// Prints `text` on stdout. A reader that closed the pipe early (`| head`)
/// is not a failure: `print!` panicked on it.
fn print_out(text: &str) -> anyhow::Result<()> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
            Err(anyhow::Error::new(e).context("cannot write to stdout"))
        }
        _ => Ok(()),
    }
}

/// Parses the command line, runs the subcommand, and prints any error with
/// its causes.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve(args) => serve::run(args),
        Command::Eval(args) => eval::run(args),
        Command::Explain(args) => explain::run(args),
        Command::Backtest(args) => backtest::run(args),
        Command::Forecast(args) => forecast::run(args),
        Command::Rollback(args) => rollback::run(args),
        Command::Restart(args) => restart::run(args),
        Command::Incidents(args) => incidents::run(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            for cause in e.chain().skip(1) {
                eprintln!("  caused by: {cause}");
            }
            ExitCode::FAILURE
        }
    }
}

/// Runs one series' work: its error, or a panic anywhere inside it, becomes
/// a message naming `what` panicked, so one bad series cannot stop a run of
/// many (the forecaster already turns augurs' panics into errors; this is
/// for anything else).
pub(crate) fn per_series<T, E: std::fmt::Display>(
    what: &str,
    work: impl FnOnce() -> Result<T, E>,
) -> Result<T, String> {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(work)) {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(e.to_string()),
        Err(payload) => Err(format!(
            "{what} panicked: {}",
            payload
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "non-string panic payload".into())
        )),
    }
}

/// A per-series progress bar on a terminal, hidden otherwise (logs and CI
/// output stay clean). Shared by the commands that fit many series.
pub(crate) fn series_progress(len: usize) -> indicatif::ProgressBar {
    if !std::io::IsTerminal::is_terminal(&std::io::stderr()) {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::new(len as u64);
    if let Ok(style) = indicatif::ProgressStyle::with_template(
        "{bar:40} {pos}/{len} series, {elapsed} elapsed, ~{eta} left",
    ) {
        bar.set_style(style);
    }
    bar
}
