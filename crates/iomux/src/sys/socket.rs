//! Receiving and sending on a connected socket with the bare system calls, for the servers' per-message
//! path. Part of the OS boundary (`sys`).
//!
//! glibc's `recv` and `send` are cancellation points: in a process with more than one thread, each
//! call brackets the system call with `__pthread_enable_asynccancel` and
//! `__pthread_disable_asynccancel` — two atomic compare-and-swaps and some sixty instructions, a tenth
//! of what the callback echo server spends per message. Rust never cancels a thread, so on Linux these
//! go through `syscall(2)`, which is not a cancellation point; elsewhere they are libc's `recv` and
//! `send`. The kernel does the same work either way (`recvfrom(2)`, `sendto(2)`).

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};
#[cfg(any(target_os = "linux", target_os = "android"))]
use std::ptr;

use super::fd::cvt;

/// `send` flags: never raise `SIGPIPE` on a connection the peer closed (`EPIPE` is returned instead).
#[cfg(not(target_vendor = "apple"))]
const SEND_FLAGS: libc::c_int = libc::MSG_NOSIGNAL;
/// `send` flags: Apple has no `MSG_NOSIGNAL`; `socket2` sets `SO_NOSIGPIPE` on the sockets it makes.
#[cfg(target_vendor = "apple")]
const SEND_FLAGS: libc::c_int = 0;

/// Reads what the socket has into `buffer`, as `recv(2)` with no flags: the number of bytes read, 0 at
/// end of stream (or for an empty `buffer`), `WouldBlock` on a non-blocking socket with nothing to read.
#[cfg(any(target_os = "linux", target_os = "android"))]
pub(crate) fn recv(fd: BorrowedFd<'_>, buffer: &mut [u8]) -> io::Result<usize> {
    // SAFETY: `buffer` is valid for writes of `buffer.len()` bytes during the call; the null address
    // and length pointers ask for no sender address, as recvfrom(2) allows.
    let read = unsafe {
        libc::syscall(
            libc::SYS_recvfrom,
            fd.as_raw_fd(),
            buffer.as_mut_ptr(),
            buffer.len(),
            0,
            ptr::null_mut::<libc::sockaddr>(),
            ptr::null_mut::<libc::socklen_t>(),
        )
    };
    Ok(cvt(read)? as usize)
}

/// Reads what the socket has into `buffer`, as `recv(2)` with no flags.
#[cfg(not(any(target_os = "linux", target_os = "android")))]
pub(crate) fn recv(fd: BorrowedFd<'_>, buffer: &mut [u8]) -> io::Result<usize> {
    // SAFETY: `buffer` is valid for writes of `buffer.len()` bytes during the call.
    let read = unsafe { libc::recv(fd.as_raw_fd(), buffer.as_mut_ptr().cast(), buffer.len(), 0) };
    Ok(cvt(read)? as usize)
}

/// Writes as much of `buffer` as the socket takes, as `send(2)`, never raising `SIGPIPE`: the number of
/// bytes written, `WouldBlock` on a non-blocking socket whose send buffer is full.
#[cfg(any(target_os = "linux", target_os = "android"))]
pub(crate) fn send(fd: BorrowedFd<'_>, buffer: &[u8]) -> io::Result<usize> {
    // SAFETY: `buffer` is valid for reads of `buffer.len()` bytes during the call; a null destination
    // with length 0 sends on the connected peer, as sendto(2) allows.
    let written = unsafe {
        libc::syscall(
            libc::SYS_sendto,
            fd.as_raw_fd(),
            buffer.as_ptr(),
            buffer.len(),
            SEND_FLAGS,
            ptr::null::<libc::sockaddr>(),
            0 as libc::socklen_t,
        )
    };
    Ok(cvt(written)? as usize)
}

/// Writes as much of `buffer` as the socket takes, as `send(2)`, never raising `SIGPIPE`.
#[cfg(not(any(target_os = "linux", target_os = "android")))]
pub(crate) fn send(fd: BorrowedFd<'_>, buffer: &[u8]) -> io::Result<usize> {
    // SAFETY: `buffer` is valid for reads of `buffer.len()` bytes during the call.
    let written = unsafe {
        libc::send(
            fd.as_raw_fd(),
            buffer.as_ptr().cast(),
            buffer.len(),
            SEND_FLAGS,
        )
    };
    Ok(cvt(written)? as usize)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::net::{Shutdown, TcpListener, TcpStream};
    use std::os::fd::AsFd;

    fn pair() -> (TcpStream, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (server, _) = listener.accept().unwrap();
        (client, server)
    }

    #[test]
    fn send_and_recv_move_bytes_and_report_would_block_and_end_of_stream() {
        let (mut client, server) = pair();
        server.set_nonblocking(true).unwrap();
        let mut buffer = [0; 16];
        let empty = recv(server.as_fd(), &mut buffer).unwrap_err();
        assert_eq!(empty.kind(), io::ErrorKind::WouldBlock);

        client.write_all(b"hello").unwrap();
        server.set_nonblocking(false).unwrap();
        assert_eq!(recv(server.as_fd(), &mut buffer).unwrap(), 5);
        assert_eq!(&buffer[..5], b"hello");

        assert_eq!(send(server.as_fd(), b"back").unwrap(), 4);
        let mut reply = [0; 4];
        client.read_exact(&mut reply).unwrap();
        assert_eq!(&reply, b"back");

        client.shutdown(Shutdown::Write).unwrap();
        assert_eq!(recv(server.as_fd(), &mut buffer).unwrap(), 0);
    }

    #[test]
    fn send_to_a_closed_peer_fails() {
        let (client, server) = pair();
        drop(client);
        // The first send may still be accepted (the reset is not back yet); a later one fails with
        // EPIPE or ECONNRESET.
        let failed = (0..100).find_map(|_| {
            std::thread::sleep(std::time::Duration::from_millis(1));
            send(server.as_fd(), b"x").err()
        });
        let error = failed.expect("sending to a closed peer fails");
        assert!(
            matches!(
                error.kind(),
                io::ErrorKind::BrokenPipe | io::ErrorKind::ConnectionReset
            ),
            "{error:?}"
        );
    }
}
