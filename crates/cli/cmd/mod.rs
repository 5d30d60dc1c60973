//! The subcommands of `iomux`, one module each; [`run`] dispatches the parsed command line to them.

mod bench;
mod client;
mod echo;
mod http;
mod load;

use crate::args::{Cli, Command};

/// Runs the subcommand the command line names.
pub fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Bench(args) => bench::run(args),
        Command::Client(args) => client::run(args),
        Command::Load(args) => load::run(args),
        Command::Http(args) => http::run(args),
        Command::Echo(args) => echo::run(args),
    }
}
