//! The `iomux` command: parses flags, builds a configuration and calls the library. Errors are printed
//! as `iomux: ` and their whole cause chain, exit status 1; usage errors exit 2 (clap); a closed stdout
//! (`iomux … | head`) ends the command quietly with status 0.
#![forbid(unsafe_code)]

mod args;
mod cmd;

use std::io;
use std::process::ExitCode;

use clap::Parser;

use crate::args::Cli;

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cmd::run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) if is_broken_pipe(&err) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("iomux: {err:#}");
            ExitCode::FAILURE
        }
    }
}

/// Whether the error comes from writing to a stdout whose reader has gone.
fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|cause| {
        cause
            .downcast_ref::<io::Error>()
            .is_some_and(|err| err.kind() == io::ErrorKind::BrokenPipe)
    })
}
