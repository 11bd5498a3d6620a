//! `host:port` endpoints as the collector writes them: `collector:4317`,
//! `10.0.0.1:4317`, `[::1]:4317`, and for listeners `:4317` (all interfaces).

use std::fmt;
use std::net::Ipv6Addr;

/// A parsed `host:port`. `host` is stored without IPv6 brackets; [`Display`]
/// puts them back.
///
/// [`Display`]: fmt::Display
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct HostPort {
    /// A hostname, an IPv4 address or an IPv6 address (no brackets). Empty
    /// only for a listen address written `:PORT`, meaning all interfaces.
    pub host: String,
    /// The TCP port.
    pub port: u16,
}

impl HostPort {
    /// Parses `host:port`; the host is required.
    pub fn parse(text: &str) -> Result<HostPort, String> {
        let hp = Self::parse_inner(text, None)?;
        if hp.host.is_empty() {
            return Err(format!("\"{text}\": missing host (expected host:port)"));
        }
        Ok(hp)
    }

    /// Parses a listen address: `host:port`, or `:port` for all interfaces.
    pub fn parse_listen(text: &str) -> Result<HostPort, String> {
        Self::parse_inner(text, None)
    }

    /// Parses `host:port` or a bare `host`, which gets `default_port`.
    pub fn parse_with_default_port(text: &str, default_port: u16) -> Result<HostPort, String> {
        let hp = Self::parse_inner(text, Some(default_port))?;
        if hp.host.is_empty() {
            return Err(format!("\"{text}\": missing host"));
        }
        Ok(hp)
    }

    fn parse_inner(text: &str, default_port: Option<u16>) -> Result<HostPort, String> {
        let expected = if default_port.is_some() {
            "host or host:port"
        } else {
            "host:port"
        };
        let bad = |why: &str| format!("\"{text}\": {why} (expected {expected})");
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
        Ok(HostPort {
            host: host.to_owned(),
            port,
        })
    }
}

impl fmt::Display for HostPort {
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
pub fn parse_http_url(text: &str) -> Result<&str, String> {
    let rest = text
        .strip_prefix("http://")
        .or_else(|| text.strip_prefix("https://"))
        .ok_or_else(|| format!("\"{text}\": expected an http:// or https:// URL"))?;
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    if authority.is_empty() {
        return Err(format!("\"{text}\": missing host"));
    }
    // The scheme's port stands in when none is written; only the check needs one.
    HostPort::parse_with_default_port(authority, 80).map_err(|e| format!("\"{text}\": {e}"))?;
    if text.chars().any(char::is_whitespace) {
        return Err(format!("\"{text}\": contains whitespace"));
    }
    Ok(text.trim_end_matches('/'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hp(host: &str, port: u16) -> HostPort {
        HostPort {
            host: host.into(),
            port,
        }
    }

    #[test]
    fn parses_host_port_forms() {
        assert_eq!(HostPort::parse("collector:4317"), Ok(hp("collector", 4317)));
        assert_eq!(HostPort::parse("10.0.0.1:1"), Ok(hp("10.0.0.1", 1)));
        assert_eq!(HostPort::parse("[::1]:4317"), Ok(hp("::1", 4317)));
        assert_eq!(HostPort::parse_listen(":4317"), Ok(hp("", 4317)));
        assert_eq!(hp("::1", 4317).to_string(), "[::1]:4317");
        assert_eq!(hp("a.b", 80).to_string(), "a.b:80");
    }

    #[test]
    fn default_port_applies_only_when_missing() {
        let p = |s| HostPort::parse_with_default_port(s, 4317);
        assert_eq!(p("collector-3"), Ok(hp("collector-3", 4317)));
        assert_eq!(p("collector-3:5317"), Ok(hp("collector-3", 5317)));
        assert_eq!(p("[::1]"), Ok(hp("::1", 4317)));
        assert!(p("").is_err());
    }

    #[test]
    fn refuses_malformed_endpoints() {
        assert_eq!(
            HostPort::parse("collector"),
            Err("\"collector\": missing port (expected host:port)".into())
        );
        assert_eq!(
            HostPort::parse(":4317"),
            Err("\":4317\": missing host (expected host:port)".into())
        );
        assert_eq!(
            HostPort::parse("a:99999"),
            Err("\"a:99999\": invalid port \"99999\" (expected host:port)".into())
        );
        assert_eq!(
            HostPort::parse("::1:4317"),
            Err(
                "\"::1:4317\": an IPv6 address needs brackets, as in [::1]:4317 \
                 (expected host:port)"
                    .into()
            )
        );
        assert!(HostPort::parse("http://a:4317").is_err());
        assert!(HostPort::parse("[zz]:1").is_err());
        assert!(HostPort::parse("a b:1").is_err());
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
