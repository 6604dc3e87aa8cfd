//! TCP_NODELAY on the sockets of this process's database connections.
//!
//! sqlx 0.9.0 stopped disabling Nagle's algorithm on its TCP sockets (sqlx
//! issue #4335; the fix, PR #4336, is merged but not in a release this
//! project can use). A statement whose message ends in a part-filled TCP
//! segment — the reconciler's batch statements carry whole arrays of
//! contents — then waits for the server's delayed ACK, about 40 ms, on every
//! such statement. On this machine that held the hub to 441 msg/s instead of
//! 1,852 (BENCHMARKS.md, "Nagle"). sqlx offers no hook on the socket, so
//! after each new connection the pools look through this process's open
//! sockets and set TCP_NODELAY on those connected to the database's port.
//! Remove this once sqlx sets it again.

use std::os::fd::{BorrowedFd, RawFd};

/// Set TCP_NODELAY on every TCP socket of this process whose peer port is
/// `port`; returns how many it set. Setting it again on a socket that has
/// it is harmless, and so is setting it on another connection to the same
/// port.
pub fn set_on_sockets_to(port: u16) -> usize {
    let Ok(entries) = std::fs::read_dir("/proc/self/fd") else {
        return 0;
    };
    let mut set = 0;
    for entry in entries.flatten() {
        let is_socket = std::fs::read_link(entry.path())
            .is_ok_and(|target| target.to_string_lossy().starts_with("socket:"));
        let Some(fd) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<RawFd>().ok())
        else {
            continue;
        };
        if !is_socket {
            continue;
        }
        // SAFETY: the descriptor is only borrowed for two syscalls
        // (getpeername, setsockopt) and never closed here. Should another
        // thread close it in between, they fail with EBADF; should the
        // number be reused meanwhile, they apply to that descriptor, where
        // TCP_NODELAY on a TCP socket to the database's port is what we want
        // and anything else fails (ENOTSOCK, ENOPROTOOPT) and is ignored.
        let borrowed = unsafe { BorrowedFd::borrow_raw(fd) };
        let socket = socket2::SockRef::from(&borrowed);
        let to_port = socket
            .peer_addr()
            .ok()
            .and_then(|a| a.as_socket())
            .is_some_and(|a| a.port() == port);
        if to_port && socket.set_tcp_nodelay(true).is_ok() {
            set += 1;
        }
    }
    set
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sets_nodelay_on_sockets_to_the_port_and_no_others() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let other = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let to_port = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        let elsewhere = std::net::TcpStream::connect(other.local_addr().unwrap()).unwrap();
        assert!(!to_port.nodelay().unwrap(), "Nagle is on by default");
        assert!(set_on_sockets_to(port) >= 1);
        assert!(to_port.nodelay().unwrap());
        assert!(
            !elsewhere.nodelay().unwrap(),
            "a socket to another port is left alone"
        );
    }
}
