//! `iomux echo`: checks the flags, builds the library's echo [`Config`] and serves until `SIGINT` or
//! `SIGTERM`, printing the listening line first.

use std::io::{self, Write};

use anyhow::{Context, Result};
use clap::CommandFactory;
use clap::error::ErrorKind;
use iomux::echo::{self, Config, Mode, Model};
use iomux::selector::BackendKind;

use crate::args::{BackendChoice, Cli, EchoArgs, EchoMode, EchoModel};

/// Runs the echo server until a signal stops it.
pub fn run(args: EchoArgs) -> Result<()> {
    let model = match args.model {
        EchoModel::Callback => Model::Callback,
        EchoModel::Coroutine => Model::Coroutine,
        EchoModel::Threads => Model::Threads,
    };
    if model == Model::Threads {
        if let Some(backend) = args.backend {
            usage_error(&format!(
                "--model threads uses blocking sockets and no selector, so it takes no --backend \
                 (got {}); drop --backend or use --model callback or coroutine",
                choice_name(backend)
            ));
        }
        if args.workers != 1 {
            usage_error(&format!(
                "--model threads runs one thread per connection and takes no --workers (got {}); \
                 use --model callback or coroutine for worker threads",
                args.workers
            ));
        }
    }
    let config = Config {
        bind: args.bind,
        port: args.port,
        mode: match args.mode {
            EchoMode::Echo => Mode::Echo,
            EchoMode::Upper => Mode::Upper,
        },
        backend: args.backend.and_then(|choice| choice.kind()),
        model,
        workers: usize::from(args.workers),
        udp: args.udp,
    };
    // Servers hold many fds: use all the hard limit allows (a failure leaves the soft limit, which
    // the server copes with by pausing accepts).
    if let Err(error) = iomux::raise_nofile_limit() {
        let _ = writeln!(
            io::stderr(),
            "iomux echo: cannot raise the open-file limit: {error}"
        );
    }
    echo::serve(&config, |server| {
        let mut stdout = io::stdout().lock();
        writeln!(
            stdout,
            "iomux echo: listening on {}://{} (backend {}, model {}, workers {})",
            server.protocol(),
            server.local_addr(),
            backend_name(server.backend()),
            server.model(),
            server.workers()
        )?;
        stdout.flush()
    })
    .with_context(|| match (model, config.backend) {
        (Model::Threads, _) => "echo server (threads model)".to_owned(),
        (_, backend) => format!(
            "echo server ({model} model, {} backend)",
            backend.unwrap_or_else(BackendKind::best)
        ),
    })
}

/// The name the `--backend` flag was given.
fn choice_name(choice: BackendChoice) -> &'static str {
    match choice.kind() {
        Some(backend) => backend.name(),
        None => "auto",
    }
}

/// The backend's name as the listening line shows it: `none` for the threads model.
fn backend_name(backend: Option<BackendKind>) -> &'static str {
    backend.map_or("none", |backend| backend.name())
}

/// Prints a usage error for `iomux echo` and exits with status 2, as clap does for its own.
fn usage_error(message: &str) -> ! {
    let mut command = Cli::command();
    // Built first, so the usage line names the whole command (`iomux echo`).
    command.build();
    let echo = command
        .find_subcommand_mut("echo")
        .expect("the echo subcommand is declared in args.rs");
    echo.error(ErrorKind::ArgumentConflict, message).exit()
}
