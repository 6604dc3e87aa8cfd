//! Outage or defect, decided in one place by where a failure happened.
//!
//! An *outage* is the world, not the message: the database or broker cannot
//! be reached, refuses the login, is not accepting connections, is shutting
//! down or out of resources, is read-only during a failover, or the
//! transaction lost a race. It is waited out with backoff and never rejects
//! a message. A *defect* is a statement that failed on its data over a
//! healthy connection: only that counts towards `poison`. A *configuration*
//! fault (TLS, certificates, a malformed URL) cannot heal by waiting: the
//! process stops with one clear line.

use std::error::Error as StdError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    Outage,
    Defect,
    Configuration,
}

/// SQLSTATE classes and codes that say the database, not the statement,
/// is at fault. Checked in this order: a code, then its two-letter class.
const OUTAGE_SQLSTATES: [&str; 10] = [
    "08",    // connection exception
    "28",    // invalid authorization: the login is refused
    "3D000", // invalid catalog name: the database is not there (yet)
    "53",    // insufficient resources: disk full, out of memory, too many connections
    "55000", // object not in prerequisite state: "database does not allow connections"
    "57",    // operator intervention: admin or crash shutdown, cannot connect now
    "58",    // system error outside PostgreSQL: I/O error
    "25006", // read-only transaction: a standby during a failover
    "40001", // serialization failure
    "40P01", // deadlock detected
];

/// What a SQLSTATE says about where the failure was.
pub fn sqlstate(code: &str) -> Fault {
    let outage = OUTAGE_SQLSTATES.iter().any(|known| {
        if known.len() == 2 {
            code.starts_with(known)
        } else {
            code == *known
        }
    });
    if outage { Fault::Outage } else { Fault::Defect }
}

/// What a database error says about where the failure was.
pub fn database(e: &sqlx::Error) -> Fault {
    match e {
        // The handshake runs inside the socket's I/O: rustls's verdict
        // arrives as an I/O error.
        sqlx::Error::Io(io) if is_tls_failure(io) => Fault::Configuration,
        // Something answered the SSLRequest that is not PostgreSQL.
        sqlx::Error::Protocol(what) if what.contains("SSLRequest") => Fault::Configuration,
        sqlx::Error::Io(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed
        | sqlx::Error::BeginFailed
        | sqlx::Error::Protocol(_) => Fault::Outage,
        sqlx::Error::Tls(_) | sqlx::Error::Configuration(_) => Fault::Configuration,
        sqlx::Error::Database(db) => db.code().map_or(Fault::Defect, |code| sqlstate(&code)),
        sqlx::Error::Migrate(m) => match m.as_ref() {
            sqlx::migrate::MigrateError::Execute(e)
            | sqlx::migrate::MigrateError::ExecuteMigration(e, _) => database(e),
            _ => Fault::Defect,
        },
        _ => Fault::Defect,
    }
}

/// Worth waiting for, never the message's fault: the database, not the
/// statement, failed. A configuration fault met by a running process (a
/// certificate replaced under it) is waited for too, loudly: the start
/// refuses it with exit 2, but a message must never be rejected for it.
pub fn is_transient(e: &sqlx::Error) -> bool {
    database(e) != Fault::Defect
}

/// Any broker error is an outage — the broker is away, restarting, or closed
/// the connection — except a TLS or certificate failure, which is configuration.
pub fn broker(e: &lapin::Error) -> Fault {
    if is_tls_failure(e) {
        Fault::Configuration
    } else {
        Fault::Outage
    }
}

/// Whether `e` or any of its causes is a TLS or certificate failure: an
/// error of rustls itself (an unknown issuer, a name the certificate does
/// not cover, a server that does not speak TLS, a refused handshake), also
/// when it travels inside an I/O error, as sqlx and lapin both carry it.
pub fn is_tls_failure(e: &(dyn StdError + 'static)) -> bool {
    let mut cause: Option<&(dyn StdError + 'static)> = Some(e);
    while let Some(e) = cause {
        if e.is::<rustls::Error>() {
            return true;
        }
        // `io::Error::source` skips the error it wraps; look at it directly.
        if let Some(inner) = e
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
            && is_tls_failure(inner)
        {
            return true;
        }
        cause = e.source();
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlstates_are_told_apart_by_where_they_failed() {
        let table = [
            ("08006", Fault::Outage, "connection failure"),
            ("08001", Fault::Outage, "cannot establish a connection"),
            ("28P01", Fault::Outage, "password authentication failed"),
            ("28000", Fault::Outage, "invalid authorization"),
            ("3D000", Fault::Outage, "database does not exist"),
            (
                "55000",
                Fault::Outage,
                "database does not allow connections",
            ),
            ("53300", Fault::Outage, "too many connections"),
            ("53100", Fault::Outage, "disk full"),
            ("57P01", Fault::Outage, "admin shutdown"),
            ("57P03", Fault::Outage, "cannot connect now"),
            ("57014", Fault::Outage, "query cancelled"),
            ("58030", Fault::Outage, "I/O error"),
            ("25006", Fault::Outage, "read-only transaction"),
            ("40001", Fault::Outage, "serialization failure"),
            ("40P01", Fault::Outage, "deadlock"),
            ("23505", Fault::Defect, "unique violation"),
            ("23502", Fault::Defect, "not null violation"),
            ("22P02", Fault::Defect, "invalid text representation"),
            ("22003", Fault::Defect, "numeric value out of range"),
            ("42P01", Fault::Defect, "undefined table"),
            ("42703", Fault::Defect, "undefined column"),
            ("25P02", Fault::Defect, "in failed transaction"),
            ("40002", Fault::Defect, "integrity constraint violation"),
            ("55P03", Fault::Defect, "lock not available"),
            ("XX000", Fault::Defect, "internal error"),
        ];
        for (code, fault, what) in table {
            assert_eq!(sqlstate(code), fault, "{code} ({what})");
        }
    }

    #[test]
    fn errors_without_a_sqlstate_are_told_apart_by_kind() {
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
        let table = [
            (sqlx::Error::Io(io), Fault::Outage),
            (sqlx::Error::PoolTimedOut, Fault::Outage),
            (sqlx::Error::PoolClosed, Fault::Outage),
            (sqlx::Error::WorkerCrashed, Fault::Outage),
            (
                sqlx::Error::Protocol("unexpected eof".into()),
                Fault::Outage,
            ),
            (
                sqlx::Error::Tls("unknown issuer".into()),
                Fault::Configuration,
            ),
            (
                sqlx::Error::Configuration("bad url".into()),
                Fault::Configuration,
            ),
            (
                sqlx::Error::Io(tls_in_io(unknown_issuer())),
                Fault::Configuration,
            ),
            (sqlx::Error::Io(tls_in_io(not_tls())), Fault::Configuration),
            (
                sqlx::Error::Tls("server does not support TLS".into()),
                Fault::Configuration,
            ),
            (
                sqlx::Error::Protocol("unexpected response from SSLRequest: 0x41".into()),
                Fault::Configuration,
            ),
            (sqlx::Error::RowNotFound, Fault::Defect),
            (sqlx::Error::ColumnNotFound("x".into()), Fault::Defect),
            (sqlx::Error::Decode("bad".into()), Fault::Defect),
        ];
        for (e, fault) in table {
            assert_eq!(database(&e), fault, "{e}");
        }
    }

    #[test]
    fn broker_errors_are_outages_unless_tls_failed() {
        let refused = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
        let reset = std::io::Error::new(std::io::ErrorKind::ConnectionReset, "reset by peer");
        // Words alone are not a TLS failure: only rustls's own error is.
        let words = std::io::Error::other("certificate tls");
        let name = rustls::Error::InvalidCertificate(rustls::CertificateError::NotValidForName);
        let table = [
            (lapin::Error::from(refused), Fault::Outage),
            (lapin::Error::from(reset), Fault::Outage),
            (lapin::Error::from(words), Fault::Outage),
            (
                lapin::Error::from(tls_in_io(unknown_issuer())),
                Fault::Configuration,
            ),
            (lapin::Error::from(tls_in_io(name)), Fault::Configuration),
            (
                lapin::Error::from(tls_in_io(not_tls())),
                Fault::Configuration,
            ),
        ];
        for (e, fault) in table {
            assert_eq!(broker(&e), fault, "{e}");
        }
    }

    #[test]
    fn a_configuration_fault_met_while_running_is_waited_for_never_a_defect() {
        assert!(is_transient(&sqlx::Error::Io(tls_in_io(unknown_issuer()))));
        assert!(is_transient(&sqlx::Error::PoolTimedOut));
        assert!(!is_transient(&sqlx::Error::RowNotFound));
    }

    fn unknown_issuer() -> rustls::Error {
        rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer)
    }

    /// What rustls says when the server answers a ClientHello with plain bytes.
    fn not_tls() -> rustls::Error {
        rustls::Error::InvalidMessage(rustls::InvalidMessage::InvalidContentType)
    }

    /// How sqlx and lapin (through rustls's `complete_io`) carry it.
    fn tls_in_io(e: rustls::Error) -> std::io::Error {
        std::io::Error::new(std::io::ErrorKind::InvalidData, e)
    }
}
