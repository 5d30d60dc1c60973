//! End-to-end tests of `iomux http`: the built command on loopback port 0, driven over real sockets by
//! a raw HTTP/1.1 client (hostile bytes included), curl and Python's `http.client`. One module per
//! topic; `backends` runs a core subset on select, poll and epoll. No speed is asserted: time bounds
//! are lower bounds on timeouts and generous hang guards.

#[path = "../support/mod.rs"]
mod support;

mod backends;
mod clients;
mod connections;
mod hostile;
mod protocol;
mod regression;
mod shutdown;
