//! Where the shared test servers are, and unique names on them.

use std::net::{SocketAddr, ToSocketAddrs};

use url::Url;

/// Server URL (any database on it; tests get their own database from
/// [`fresh_database`](crate::fresh_database)).
pub const PG_URL_VAR: &str = "DYNZERO_TEST_PG_URL";
pub const DEFAULT_PG_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

pub const AMQP_URL_VAR: &str = "DYNZERO_TEST_AMQP_URL";
pub const DEFAULT_AMQP_URL: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";

/// `<prefix>` plus 16 random hex digits, e.g. `t.households.3f9a…`, so that
/// tests running at the same time on the same broker never share a queue
/// or exchange.
pub fn unique_name(prefix: &str) -> String {
    format!("t.{prefix}.{}", random_hex())
}

pub(crate) fn random_hex() -> String {
    format!("{:016x}", rand::random::<u64>())
}

/// The PostgreSQL server URL (`DYNZERO_TEST_PG_URL`, else the local server).
pub fn pg_server_url() -> String {
    from_env(PG_URL_VAR, DEFAULT_PG_URL)
}

/// The PostgreSQL server's socket address, the target for a
/// [`TcpProxy`](crate::TcpProxy).
pub fn pg_addr() -> SocketAddr {
    socket_addr_of(&pg_server_url(), 5432)
}

/// The RabbitMQ URL (`DYNZERO_TEST_AMQP_URL`, else the local broker as guest).
pub fn amqp_url() -> String {
    from_env(AMQP_URL_VAR, DEFAULT_AMQP_URL)
}

/// [`amqp_url`] with its host and port replaced by `127.0.0.1:<port>`, for
/// reaching the broker through a [`TcpProxy`](crate::TcpProxy).
pub fn amqp_url_via(port: u16) -> String {
    via(&amqp_url(), port)
}

/// The RabbitMQ broker's socket address, the target for a
/// [`TcpProxy`](crate::TcpProxy).
pub fn amqp_addr() -> SocketAddr {
    socket_addr_of(&amqp_url(), 5672)
}

fn from_env(var: &str, default: &str) -> String {
    match std::env::var(var) {
        Ok(value) if !value.trim().is_empty() => value,
        _ => default.to_owned(),
    }
}

pub(crate) fn parse(url: &str) -> Url {
    Url::parse(url)
        .unwrap_or_else(|e| panic!("test server URL {:?} is not a URL: {e}", redact(url)))
}

/// The same URL, reached through a local proxy port.
pub(crate) fn via(url: &str, port: u16) -> String {
    let mut url = parse(url);
    url.set_host(Some("127.0.0.1"))
        .unwrap_or_else(|e| panic!("cannot set host on {}: {e}", redact(url.as_str())));
    url.set_port(Some(port))
        .unwrap_or_else(|()| panic!("cannot set port on {}", redact(url.as_str())));
    url.into()
}

fn socket_addr_of(url: &str, default_port: u16) -> SocketAddr {
    let parsed = parse(url);
    let host = parsed
        .host_str()
        .unwrap_or_else(|| panic!("test server URL {} has no host", redact(url)));
    // `host_str` keeps the brackets of an IPv6 literal; `to_socket_addrs`
    // wants them off.
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let port = parsed.port().unwrap_or(default_port);
    (host, port)
        .to_socket_addrs()
        .unwrap_or_else(|e| panic!("cannot resolve {host}:{port}: {e}"))
        .next()
        .unwrap_or_else(|| panic!("{host}:{port} resolves to no address"))
}

/// The URL with any password hidden, for panic messages.
pub(crate) fn redact(url: &str) -> String {
    match Url::parse(url) {
        Ok(mut parsed) if parsed.password().is_some() => {
            let _ = parsed.set_password(Some("***"));
            parsed.into()
        }
        Ok(parsed) => parsed.into(),
        Err(_) => "<unparsable URL>".to_owned(),
    }
}
