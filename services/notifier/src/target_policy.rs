//! Subscriptions that cannot leak: which targets the notifier may send to.
//!
//! - `https://` only, unless `notifier.allow_insecure_targets`;
//! - no loopback, private, link-local, metadata, unspecified or CGNAT
//!   address — checked on a literal address when a subscription is added or
//!   sent to, and on every address a host name resolves to at send time
//!   ([`GuardedResolver`]) — unless `notifier.allowed_targets` lists it;
//! - WeCom robots only on `qyapi.weixin.qq.com`, DingTalk robots only on
//!   `oapi.dingtalk.com`, over https (an allow-listed target excepted: a
//!   test's receiver, or a proxy the operator runs).
//!
//! Redirects are never followed (see [`crate::send`]).

use crate::subscription::{Target, TargetKind, redact_url};
use dynzero_runtime::config::ConfigError;
use ipnet::IpNet;
use reqwest::Url;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

pub const WECOM_HOST: &str = "qyapi.weixin.qq.com";
pub const DINGTALK_HOST: &str = "oapi.dingtalk.com";

/// One entry of `notifier.allowed_targets`.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Allowed {
    Host(String),
    HostPort(String, u16),
    Net(IpNet),
}

impl Allowed {
    fn parse(entry: &str) -> Result<Self, String> {
        let entry = entry.trim().to_ascii_lowercase();
        if let Ok(net) = entry.parse::<IpNet>() {
            return Ok(Allowed::Net(net));
        }
        if let Ok(ip) = entry.parse::<IpAddr>() {
            return Ok(Allowed::Net(IpNet::from(ip)));
        }
        if let Ok(addr) = entry.parse::<SocketAddr>() {
            return Ok(Allowed::HostPort(addr.ip().to_string(), addr.port()));
        }
        let valid_host = |h: &str| {
            !h.is_empty()
                && h.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
        };
        match entry.rsplit_once(':') {
            Some((host, port)) if valid_host(host) => port
                .parse()
                .map(|port| Allowed::HostPort(host.to_string(), port))
                .map_err(|_| format!("{entry:?}: the port is not a number")),
            None if valid_host(&entry) => Ok(Allowed::Host(entry)),
            _ => Err(format!("{entry:?} is not a host, host:port or CIDR")),
        }
    }
}

/// Why a target is refused.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum PolicyError {
    #[error("target URL {0} cannot be parsed")]
    Url(String),
    #[error("target URL {0} is not https (http only with notifier.allow_insecure_targets = true)")]
    Insecure(String),
    #[error("target URL {url}: {host} is a {why} address (allow it in notifier.allowed_targets)")]
    Address {
        url: String,
        host: String,
        why: &'static str,
    },
    #[error("{kind} robots are reached only at https://{official}/, not {url}")]
    BotHost {
        kind: &'static str,
        official: &'static str,
        url: String,
    },
}

/// How a target is reached once it passed: through the guarded resolver,
/// or, allow-listed, as it resolves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    Public,
    Listed,
}

#[derive(Debug, Clone, Default)]
pub struct TargetPolicy {
    allow_insecure: bool,
    allowed: Vec<Allowed>,
}

impl TargetPolicy {
    pub fn new(allow_insecure: bool, allowed_targets: &[String]) -> Result<Self, ConfigError> {
        let allowed = allowed_targets
            .iter()
            .map(|entry| Allowed::parse(entry))
            .collect::<Result<_, _>>()
            .map_err(|e| ConfigError::new("notifier.allowed_targets", &e))?;
        Ok(Self {
            allow_insecure,
            allowed,
        })
    }

    /// Whether a target may be sent to, and how.
    pub fn check(&self, target: &Target) -> Result<Route, PolicyError> {
        match target.url() {
            Some(url) => self.check_url(target.kind(), url),
            None => Ok(Route::Listed),
        }
    }

    pub fn check_url(&self, kind: TargetKind, url: &str) -> Result<Route, PolicyError> {
        let shown = redact_url(url);
        let parsed = Url::parse(url).map_err(|_| PolicyError::Url(shown.clone()))?;
        let host = match parsed.host_str() {
            Some(h) => {
                let bare = h.trim_start_matches('[').trim_end_matches(']');
                match bare.parse::<IpAddr>() {
                    Ok(ip) => Host::Ip(ip),
                    Err(_) => Host::Name(h.to_ascii_lowercase()),
                }
            }
            None => return Err(PolicyError::Url(shown)),
        };
        let port = parsed.port_or_known_default().unwrap_or_default();
        let listed = self.lists(&host, port);
        match parsed.scheme() {
            "https" => {}
            "http" if self.allow_insecure => {}
            _ => return Err(PolicyError::Insecure(shown)),
        }
        let official = match kind {
            TargetKind::Wecom => Some(WECOM_HOST),
            TargetKind::Dingtalk => Some(DINGTALK_HOST),
            TargetKind::Webhook | TargetKind::Amqp => None,
        };
        if let Some(official) = official
            && !listed
            && (parsed.scheme() != "https" || host != Host::Name(official.to_string()))
        {
            return Err(PolicyError::BotHost {
                kind: kind.as_str(),
                official,
                url: shown,
            });
        }
        if listed {
            return Ok(Route::Listed);
        }
        if let Host::Ip(ip) = host
            && let Some(why) = forbidden(ip)
        {
            return Err(PolicyError::Address {
                url: shown,
                host: ip.to_string(),
                why,
            });
        }
        Ok(Route::Public)
    }

    fn lists(&self, host: &Host, port: u16) -> bool {
        self.allowed.iter().any(|entry| match (entry, host) {
            (Allowed::Host(h), Host::Name(name)) => h == name,
            (Allowed::Host(h), Host::Ip(ip)) => h == &ip.to_string(),
            (Allowed::HostPort(h, p), Host::Name(name)) => h == name && *p == port,
            (Allowed::HostPort(h, p), Host::Ip(ip)) => h == &ip.to_string() && *p == port,
            (Allowed::Net(net), Host::Ip(ip)) => net.contains(ip),
            (Allowed::Net(_), Host::Name(_)) => false,
        })
    }

    /// Whether an address a public host name resolved to may be connected to.
    pub fn address_allowed(&self, ip: IpAddr) -> bool {
        forbidden(ip).is_none()
            || self.allowed.iter().any(|entry| match entry {
                Allowed::Net(net) => net.contains(&ip),
                _ => false,
            })
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Host {
    Name(String),
    Ip(IpAddr),
}

/// What kind of address the notifier never sends to unless allow-listed,
/// or `None` for a public one.
pub fn forbidden(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => forbidden_v4(v4),
        IpAddr::V6(v6) => {
            if let Some(v4) = embedded_v4(v6) {
                return forbidden_v4(v4);
            }
            let s = v6.segments();
            if v6 == Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254) {
                Some("metadata")
            } else if v6.is_unspecified() {
                Some("unspecified")
            } else if v6.is_loopback() {
                Some("loopback")
            } else if s[0] & 0xfe00 == 0xfc00 {
                Some("private")
            } else if s[0] & 0xffc0 == 0xfe80 {
                Some("link-local")
            } else if s[0] & 0xff00 == 0xff00 {
                Some("multicast")
            } else {
                None
            }
        }
    }
}

fn forbidden_v4(ip: Ipv4Addr) -> Option<&'static str> {
    let [a, b, ..] = ip.octets();
    if ip == Ipv4Addr::new(169, 254, 169, 254) {
        Some("metadata")
    } else if a == 0 {
        Some("unspecified")
    } else if ip.is_loopback() {
        Some("loopback")
    } else if ip.is_private() {
        Some("private")
    } else if ip.is_link_local() {
        Some("link-local")
    } else if a == 100 && (64..128).contains(&b) {
        Some("CGNAT")
    } else if a >= 224 {
        Some("multicast or reserved")
    } else {
        None
    }
}

/// The IPv4 address inside an IPv4-mapped (`::ffff:a.b.c.d`) or NAT64
/// (`64:ff9b::a.b.c.d`) address: judged as that address.
fn embedded_v4(v6: Ipv6Addr) -> Option<Ipv4Addr> {
    if let Some(v4) = v6.to_ipv4_mapped() {
        return Some(v4);
    }
    let s = v6.segments();
    (s[..6] == [0x64, 0xff9b, 0, 0, 0, 0]).then(|| {
        let [.., a, b, c, d] = v6.octets();
        Ipv4Addr::new(a, b, c, d)
    })
}

/// A host name that resolved only to addresses the policy refuses.
#[derive(Debug, thiserror::Error)]
#[error("{host} resolves only to refused addresses ({why}); allow it in notifier.allowed_targets")]
pub struct RefusedAddress {
    pub host: String,
    pub why: String,
}

/// The DNS resolver of the notifier's HTTP client: the addresses a name
/// resolves to, less those the policy refuses, so the connection goes
/// exactly where was checked (no second lookup to rebind).
pub struct GuardedResolver {
    pub policy: Arc<TargetPolicy>,
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let policy = self.policy.clone();
        Box::pin(async move {
            let host = name.as_str().to_string();
            let all: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let (allowed, refused): (Vec<SocketAddr>, Vec<SocketAddr>) = all
                .into_iter()
                .partition(|addr| policy.address_allowed(addr.ip()));
            if allowed.is_empty() {
                let why = refused
                    .iter()
                    .map(|a| format!("{} is {}", a.ip(), forbidden(a.ip()).unwrap_or("refused")))
                    .collect::<Vec<_>>()
                    .join(", ");
                return Err(Box::new(RefusedAddress { host, why }) as _);
            }
            Ok(Box::new(allowed.into_iter()) as Addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(insecure: bool, allowed: &[&str]) -> TargetPolicy {
        let allowed: Vec<String> = allowed.iter().map(|s| s.to_string()).collect();
        TargetPolicy::new(insecure, &allowed).unwrap()
    }

    #[test]
    fn addresses_are_told_apart() {
        let table = [
            ("127.0.0.1", Some("loopback")),
            ("127.8.9.10", Some("loopback")),
            ("10.1.2.3", Some("private")),
            ("172.16.0.1", Some("private")),
            ("172.31.255.255", Some("private")),
            ("192.168.1.1", Some("private")),
            ("169.254.169.254", Some("metadata")),
            ("169.254.1.1", Some("link-local")),
            ("0.0.0.0", Some("unspecified")),
            ("100.64.0.1", Some("CGNAT")),
            ("100.127.255.255", Some("CGNAT")),
            ("224.0.0.1", Some("multicast or reserved")),
            ("255.255.255.255", Some("multicast or reserved")),
            ("::1", Some("loopback")),
            ("::", Some("unspecified")),
            ("fc00::1", Some("private")),
            ("fd12:3456::1", Some("private")),
            ("fd00:ec2::254", Some("metadata")),
            ("fe80::1", Some("link-local")),
            ("ff02::1", Some("multicast")),
            ("::ffff:127.0.0.1", Some("loopback")),
            ("::ffff:169.254.169.254", Some("metadata")),
            ("64:ff9b::a00:1", Some("private")),
            ("8.8.8.8", None),
            ("172.32.0.1", None),
            ("100.128.0.1", None),
            ("203.0.113.7", None),
            ("2001:4860:4860::8888", None),
            ("::ffff:8.8.8.8", None),
        ];
        for (ip, want) in table {
            assert_eq!(forbidden(ip.parse().unwrap()), want, "{ip}");
        }
    }

    #[test]
    fn urls_are_checked_by_scheme_address_and_bot_host() {
        use TargetKind::{Dingtalk, Webhook, Wecom};
        let strict = policy(false, &[]);
        let tests = policy(true, &["127.0.0.1", "localhost:8080", "10.9.0.0/16"]);
        let wecom = "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=K";
        let ding = "https://oapi.dingtalk.com/robot/send?access_token=T";
        let table: Vec<(&TargetPolicy, TargetKind, &str, Result<Route, &str>)> = vec![
            (
                &strict,
                Webhook,
                "https://cases.example.cn/hook",
                Ok(Route::Public),
            ),
            (
                &strict,
                Webhook,
                "http://cases.example.cn/hook",
                Err("not https"),
            ),
            (
                &strict,
                Webhook,
                "ftp://cases.example.cn/hook",
                Err("not https"),
            ),
            (
                &strict,
                Webhook,
                "https://169.254.169.254/latest",
                Err("metadata"),
            ),
            (
                &strict,
                Webhook,
                "https://127.0.0.1:9000/hook",
                Err("loopback"),
            ),
            (&strict, Webhook, "https://[::1]/hook", Err("loopback")),
            (
                &strict,
                Webhook,
                "https://[fd00:ec2::254]/",
                Err("metadata"),
            ),
            (&strict, Webhook, "https://10.0.0.5/hook", Err("private")),
            (&strict, Webhook, "https://100.100.100.200/", Err("CGNAT")),
            (&strict, Webhook, "https://0.0.0.0/", Err("unspecified")),
            (&strict, Webhook, "not a url", Err("cannot be parsed")),
            (&strict, Wecom, wecom, Ok(Route::Public)),
            (&strict, Dingtalk, ding, Ok(Route::Public)),
            (&strict, Wecom, ding, Err("wecom robots")),
            (
                &strict,
                Dingtalk,
                "https://evil.example/robot/send?access_token=T",
                Err("dingtalk robots"),
            ),
            (
                &tests,
                Wecom,
                "http://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=K",
                Err("wecom robots"),
            ),
            (
                &tests,
                Webhook,
                "http://127.0.0.1:3000/hook",
                Ok(Route::Listed),
            ),
            (
                &tests,
                Wecom,
                "http://127.0.0.1:3000/bot?key=K",
                Ok(Route::Listed),
            ),
            (
                &tests,
                Webhook,
                "http://localhost:8080/hook",
                Ok(Route::Listed),
            ),
            (
                &tests,
                Webhook,
                "http://localhost:8081/hook",
                Ok(Route::Public),
            ),
            (&tests, Webhook, "http://10.9.3.4/hook", Ok(Route::Listed)),
            (&tests, Webhook, "http://10.8.3.4/hook", Err("private")),
            (&tests, Webhook, "http://169.254.169.254/", Err("metadata")),
        ];
        for (policy, kind, url, want) in table {
            let got = policy.check_url(kind, url);
            match (want, got) {
                (Ok(route), Ok(got)) => assert_eq!(got, route, "{url}"),
                (Err(words), Err(e)) => {
                    let text = e.to_string();
                    assert!(text.contains(words), "{url}: {text}");
                    assert!(
                        !text.contains("key=K") && !text.contains("token=T"),
                        "{text}"
                    );
                }
                (want, got) => panic!("{url}: wanted {want:?}, got {got:?}"),
            }
        }
    }

    #[test]
    fn resolved_addresses_pass_unless_refused_or_listed() {
        let p = policy(true, &["10.9.0.0/16", "localhost"]);
        assert!(p.address_allowed("8.8.8.8".parse().unwrap()));
        assert!(p.address_allowed("10.9.1.1".parse().unwrap()));
        assert!(
            !p.address_allowed("127.0.0.1".parse().unwrap()),
            "a host entry is not an address"
        );
        assert!(!p.address_allowed("169.254.169.254".parse().unwrap()));
    }

    #[test]
    fn allow_list_entries_are_parsed() {
        let table = [
            ("localhost", Some(Allowed::Host("localhost".into()))),
            (
                "Hooks.Example.cn:8443",
                Some(Allowed::HostPort("hooks.example.cn".into(), 8443)),
            ),
            (
                "127.0.0.1:3000",
                Some(Allowed::HostPort("127.0.0.1".into(), 3000)),
            ),
            (
                "10.0.0.0/8",
                Some(Allowed::Net("10.0.0.0/8".parse().unwrap())),
            ),
            ("::1", Some(Allowed::Net("::1/128".parse().unwrap()))),
            ("host:port", None),
            ("a b", None),
            ("", None),
        ];
        for (entry, want) in table {
            assert_eq!(Allowed::parse(entry).ok(), want, "{entry}");
        }
        assert!(TargetPolicy::new(false, &["a b".into()]).is_err());
    }
}
