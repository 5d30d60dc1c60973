//! The tokio peer of `iomux echo`: the idiomatic tokio echo server (tokio's own `examples/echo.rs`: accept,
//! spawn a task per connection, read into a buffer, `write_all` it back) with a 16 KiB buffer and a SOMAXCONN
//! listen backlog, and nothing tuned beyond that. The first stdout line is
//! `tokio echo: listening on tcp://ADDR:PORT (flavor F)` so scripts can start it with `--port 0`.

#![forbid(unsafe_code)]

use std::io;
use std::net::{IpAddr, SocketAddr};

use iomux_bench_peers::Args;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpSocket;

const USAGE: &str = "usage: tokio_echo [--flavor current_thread|multi_thread] [--workers N] [--bind 127.0.0.1] [--port 0]

  --flavor    tokio runtime flavor (default current_thread)
  --workers   worker threads of the multi_thread flavor (default: tokio's, one per core)
  --bind      address to listen on (default 127.0.0.1)
  --port      port to listen on; 0 picks a free one (default 0)";

/// Size of each connection's read buffer.
const BUFFER_BYTES: usize = 16 * 1024;

fn main() -> io::Result<()> {
    let mut args = Args::from_env(USAGE);
    let flavor: String = args
        .value(&["--flavor"])
        .unwrap_or_else(|| "current_thread".into());
    let workers: Option<usize> = args.value(&["--workers"]);
    let bind: IpAddr = args
        .value(&["--bind"])
        .unwrap_or(IpAddr::from([127, 0, 0, 1]));
    let port: u16 = args.value(&["--port"]).unwrap_or(0);
    let runtime = match flavor.as_str() {
        "current_thread" => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?,
        "multi_thread" => {
            let mut builder = tokio::runtime::Builder::new_multi_thread();
            if let Some(workers) = workers {
                builder.worker_threads(workers);
            }
            builder.enable_all().build()?
        }
        other => args.fail(&format!("unknown flavor {other:?}")),
    };
    args.finish();
    runtime.block_on(serve(SocketAddr::new(bind, port), &flavor))
}

async fn serve(addr: SocketAddr, flavor: &str) -> io::Result<()> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    let listener = socket.listen(libc::SOMAXCONN as u32)?;
    println!(
        "tokio echo: listening on tcp://{} (flavor {flavor})",
        listener.local_addr()?
    );

    loop {
        let (mut socket, _) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                // EMFILE and friends: say so and back off instead of spinning.
                eprintln!("tokio echo: accept: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                continue;
            }
        };
        tokio::spawn(async move {
            let mut buf = vec![0; BUFFER_BYTES];
            loop {
                let n = match socket.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => n,
                };
                if socket.write_all(&buf[..n]).await.is_err() {
                    return;
                }
            }
        });
    }
}
