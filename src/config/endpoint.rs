//! `host:port` endpoints as the collector writes them: `collector:4317`,
//! `10.0.0.1:4317`, `[::1]:4317`, and for listeners `:4317` (all interfaces).

use std::fmt;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};

/// Why a `host:port` could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("\"{text}\": {reason}")]
pub struct EndpointError {
    /// The text as written.
    pub text: String,
    /// What is wrong with it.
    pub reason: String,
}

/// A backend or listen address: a host and a port, parsed once.
///
/// The ring hashes an endpoint's text, so every replica of the proxy must
/// write the same endpoint the same way, whichever resolver found it:
/// [`Endpoint::new`] is the one place that normalises (hostnames in lower
/// case without a trailing dot, IP addresses in their canonical form) and
/// [`Display`] the one place that formats (`host:port`, `[v6]:port`).
///
/// [`Display`]: fmt::Display
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Endpoint {
    /// A hostname, an IPv4 address or an IPv6 address (no brackets). Empty
    /// only for a listen address written `:PORT`, meaning all interfaces.
    host: String,
    port: u16,
}

impl Endpoint {
    /// The endpoint for `host` (a name, an IPv4 address, or an IPv6 address
    /// with or without brackets) and `port`, normalised.
    pub fn new(host: &str, port: u16) -> Endpoint {
        let bare = host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(host);
        let host = match bare.parse::<IpAddr>() {
            Ok(ip) => ip.to_string(),
            Err(_) => bare.trim_end_matches('.').to_ascii_lowercase(),
        };
        Endpoint { host, port }
    }

    /// The endpoint of a socket address.
    pub fn from_socket_addr(addr: SocketAddr) -> Endpoint {
        Endpoint {
            host: addr.ip().to_string(),
            port: addr.port(),
        }
    }

    /// The host, without IPv6 brackets; empty for "all interfaces".
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The TCP port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Parses `host:port`; the host is required.
    pub fn parse(text: &str) -> Result<Endpoint, EndpointError> {
        let ep = Self::parse_inner(text, None)?;
        if ep.host.is_empty() {
            return Err(error(text, "missing host (expected host:port)"));
        }
        Ok(ep)
    }

    /// Parses a listen address: `host:port`, or `:port` for all interfaces.
    pub fn parse_listen(text: &str) -> Result<Endpoint, EndpointError> {
        Self::parse_inner(text, None)
    }

    /// Parses `host:port` or a bare `host`, which gets `default_port`.
    pub fn parse_with_default_port(
        text: &str,
        default_port: u16,
    ) -> Result<Endpoint, EndpointError> {
        let ep = Self::parse_inner(text, Some(default_port))?;
        if ep.host.is_empty() {
            return Err(error(text, "missing host"));
        }
        Ok(ep)
    }

    fn parse_inner(text: &str, default_port: Option<u16>) -> Result<Endpoint, EndpointError> {
        let expected = if default_port.is_some() {
            "host or host:port"
        } else {
            "host:port"
        };
        let bad = |why: &str| error(text, &format!("{why} (expected {expected})"));
        if text.contains("://") {
            return Err(bad("a URL is not an endpoint"));
        }
        let (host, port) = if let Some(rest) = text.strip_prefix('[') {
            let (host, after) = rest.split_once(']').ok_or_else(|| bad("unclosed \"[\""))?;
            if host.parse::<Ipv6Addr>().is_err() {
                return Err(bad("not an IPv6 address inside []"));
            }
            match after.strip_prefix(':') {
                Some(port) => (host, Some(port)),
                None if after.is_empty() => (host, None),
                None => return Err(bad("unexpected text after \"]\"")),
            }
        } else {
            match text.rsplit_once(':') {
                Some((host, _)) if host.contains(':') => {
                    return Err(bad("an IPv6 address needs brackets, as in [::1]:4317"));
                }
                Some((host, port)) => (host, Some(port)),
                None => (text, None),
            }
        };
        if !host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | ':' | '%'))
        {
            return Err(bad("invalid character in host"));
        }
        let port = match (port, default_port) {
            (Some(port), _) => port
                .parse::<u16>()
                .map_err(|_| bad(&format!("invalid port \"{port}\"")))?,
            (None, Some(port)) => port,
            (None, None) => return Err(bad("missing port")),
        };
        Ok(Endpoint::new(host, port))
    }
}

fn error(text: &str, reason: &str) -> EndpointError {
    EndpointError {
        text: text.to_owned(),
        reason: reason.to_owned(),
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

/// Checks an `http://` or `https://` URL with a host, as the `otlphttp`
/// exporter takes; returns it with any trailing `/` removed.
pub fn parse_http_url(text: &str) -> Result<&str, EndpointError> {
    let rest = text
        .strip_prefix("http://")
        .or_else(|| text.strip_prefix("https://"))
        .ok_or_else(|| error(text, "expected an http:// or https:// URL"))?;
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    if authority.is_empty() {
        return Err(error(text, "missing host"));
    }
    // The scheme's port stands in when none is written; only the check needs one.
    Endpoint::parse_with_default_port(authority, 80).map_err(|e| error(text, &e.to_string()))?;
    if text.chars().any(char::is_whitespace) {
        return Err(error(text, "contains whitespace"));
    }
    Ok(text.trim_end_matches('/'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hp(host: &str, port: u16) -> Endpoint {
        Endpoint::new(host, port)
    }

    fn err(text: &str) -> Result<Endpoint, String> {
        Endpoint::parse(text).map_err(|e| e.to_string())
    }

    #[test]
    fn every_resolver_spelling_formats_the_same() {
        assert_eq!(
            hp("Collector-1.NS.svc.", 4317).to_string(),
            "collector-1.ns.svc:4317"
        );
        assert_eq!(hp("0:0:0:0:0:0:0:1", 4317).to_string(), "[::1]:4317");
        assert_eq!(hp("[::1]", 4317), hp("::1", 4317));
        assert_eq!(
            Endpoint::from_socket_addr("[::1]:9".parse().unwrap()),
            Endpoint::parse("[0::1]:9").unwrap()
        );
        assert_eq!(Endpoint::parse("10.0.0.1:1").unwrap().host(), "10.0.0.1");
    }

    #[test]
    fn parses_host_port_forms() {
        assert_eq!(Endpoint::parse("collector:4317"), Ok(hp("collector", 4317)));
        assert_eq!(Endpoint::parse("10.0.0.1:1"), Ok(hp("10.0.0.1", 1)));
        assert_eq!(Endpoint::parse("[::1]:4317"), Ok(hp("::1", 4317)));
        assert_eq!(Endpoint::parse_listen(":4317"), Ok(hp("", 4317)));
        assert_eq!(hp("::1", 4317).to_string(), "[::1]:4317");
        assert_eq!(hp("a.b", 80).to_string(), "a.b:80");
    }

    #[test]
    fn default_port_applies_only_when_missing() {
        let p = |s| Endpoint::parse_with_default_port(s, 4317);
        assert_eq!(p("collector-3"), Ok(hp("collector-3", 4317)));
        assert_eq!(p("collector-3:5317"), Ok(hp("collector-3", 5317)));
        assert_eq!(p("[::1]"), Ok(hp("::1", 4317)));
        assert!(p("").is_err());
    }

    #[test]
    fn refuses_malformed_endpoints() {
        assert_eq!(
            err("collector"),
            Err("\"collector\": missing port (expected host:port)".into())
        );
        assert_eq!(
            err(":4317"),
            Err("\":4317\": missing host (expected host:port)".into())
        );
        assert_eq!(
            err("a:99999"),
            Err("\"a:99999\": invalid port \"99999\" (expected host:port)".into())
        );
        assert_eq!(
            err("::1:4317"),
            Err(
                "\"::1:4317\": an IPv6 address needs brackets, as in [::1]:4317 \
                 (expected host:port)"
                    .into()
            )
        );
        assert!(Endpoint::parse("http://a:4317").is_err());
        assert!(Endpoint::parse("[zz]:1").is_err());
        assert!(Endpoint::parse("a b:1").is_err());
    }

    #[test]
    fn http_urls() {
        assert_eq!(
            parse_http_url("http://backend:4318/"),
            Ok("http://backend:4318")
        );
        assert_eq!(parse_http_url("https://x/otlp"), Ok("https://x/otlp"));
        assert!(parse_http_url("backend:4318").is_err());
        assert!(parse_http_url("http://").is_err());
        assert!(parse_http_url("http://a:port").is_err());
    }
}
