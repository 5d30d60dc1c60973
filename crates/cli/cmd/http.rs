//! `iomux http`: serves a directory over HTTP/1.1 until SIGINT or SIGTERM. Builds the library's
//! [`Config`] and [`Options`] from the flags, prints the listening line and waits for the server.

use std::io::{self, Write};
use std::net::SocketAddr;

use anyhow::{Context, Result};
use iomux::http::{Config, Options, Server};

use crate::args::HttpArgs;

/// Runs the server the flags describe; returns after a graceful shutdown.
pub fn run(args: HttpArgs) -> Result<()> {
    // A server holds many descriptors: take all the process may have (the connection limit's
    // default follows from it).
    iomux::raise_nofile_limit().context("cannot raise the open-file limit (RLIMIT_NOFILE)")?;
    let address = SocketAddr::new(args.bind, args.port);
    let config = Config {
        listing: args.listing,
        follow_symlinks: args.follow_symlinks,
        show_hidden: args.show_hidden,
        sendfile: !args.no_sendfile,
        header_timeout: args.header_timeout,
        keepalive_timeout: args.keepalive_timeout,
        max_connections: args
            .max_connections
            .map(|max| usize::try_from(max).unwrap_or(usize::MAX)),
        shutdown_timeout: args.shutdown_timeout,
        quiet: args.quiet,
        ..Config::new(&args.root)
    };
    let options = Options {
        backend: args.backend,
        workers: args.workers,
        signals: true,
        ..Options::new(address)
    };
    let server = Server::bind(config, options).with_context(|| {
        format!(
            "cannot serve {} on {address} with the {} backend",
            args.root.display(),
            args.backend
        )
    })?;
    let (backend, workers) = (server.backend(), server.workers());
    // Held from before the workers start until the listening line is out: a worker writing its
    // access log waits for the lock, so the listening line is always the first line. (No worker
    // runs before `start` returns, so none can hold up a failing start.)
    let mut stdout = io::stdout().lock();
    let running = server
        .start()
        .context("cannot start the server's workers")?;
    writeln!(
        stdout,
        "iomux http: listening on http://{}/ (backend {backend}, workers {workers})",
        running.local_addr()
    )
    .and_then(|()| stdout.flush())
    .context("cannot write to stdout")?;
    drop(stdout);
    running.wait().context("the server failed")?;
    Ok(())
}
