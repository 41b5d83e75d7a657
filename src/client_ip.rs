//! The client's address: the TCP peer, unless the peer is a trusted proxy, in which case the
//! address from the one header the operator's proxy writes (`CLIENT_IP_HEADER`).
//!
//! Only that header is read: proxies such as ingress-nginx append to `X-Forwarded-For` and pass
//! a client's own `Forwarded` or `X-Real-IP` through untouched, so believing any other header
//! would let a client pick its address. In the list headers the right-most hop that is not a
//! trusted proxy wins, never the left-most value: a client writes whatever it likes there, and
//! every proxy only appends. Every hop is checked; several header lines of one name are one
//! list, in order.

use std::net::IpAddr;
use std::sync::Arc;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{self, HeaderMap};
use actix_web::middleware::Next;
use actix_web::{HttpMessage as _, HttpRequest};

use crate::config::{Cidr, ClientIpHeader, ProxySettings, network_of};

/// What [`record`] resolved for a request, kept in its extensions.
#[derive(Clone, Copy, Debug)]
struct Client {
    ip: IpAddr,
    /// The TCP peer is a trusted proxy, so its forwarding headers are believed.
    via_proxy: bool,
    header: ClientIpHeader,
}

/// Resolves the client address of `req`, for [`of`] to read; the middleware that runs first,
/// so that every later layer (rate limits, sessions, mails, logs) sees the same address.
pub async fn record(
    proxies: Arc<ProxySettings>,
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    if let Some(peer) = req.peer_addr() {
        let peer = peer.ip().to_canonical();
        let client = Client {
            ip: resolve(peer, req.headers(), &proxies),
            via_proxy: is_trusted(&proxies.trusted, peer),
            header: proxies.client_ip_header,
        };
        req.extensions_mut().insert(client);
    }
    next.call(req).await
}

/// The client address [`record`] resolved; `None` without a peer address (test requests).
pub fn of(req: &HttpRequest) -> Option<IpAddr> {
    req.extensions().get::<Client>().map(|client| client.ip)
}

/// The key a client's rate limits are counted under: an IPv4 address, or the IPv6 network of
/// `ipv6_prefix` bits around it (one subscriber usually holds a whole /64).
pub fn rate_key(ip: IpAddr, ipv6_prefix: u8) -> IpAddr {
    match ip.to_canonical() {
        v6 @ IpAddr::V6(_) => network_of(v6, ipv6_prefix),
        v4 => v4,
    }
}

/// The scheme the browser used: what a trusted proxy says in `X-Forwarded-Proto` (`Forwarded:
/// proto=` when that is the configured header), else this connection's own. Only `http` or
/// `https`: a client talking to us directly cannot change it, and no header puts other text in
/// the spans and logs that carry it.
pub fn scheme(req: &HttpRequest) -> &'static str {
    let direct = if req.app_config().secure() { "https" } else { "http" };
    match proxy_says(req, "proto", "x-forwarded-proto") {
        Some(proto) if proto.eq_ignore_ascii_case("https") => "https",
        Some(proto) if proto.eq_ignore_ascii_case("http") => "http",
        _ => direct,
    }
}

/// The origin the browser addressed, `scheme://host`, lowercase: [`scheme`], and the host a
/// trusted proxy says in `X-Forwarded-Host` (`Forwarded: host=` when that is the configured
/// header), else this connection's `Host`. A client talking to us directly cannot move it with
/// forwarding headers.
pub fn own_origin(req: &HttpRequest) -> String {
    let direct_host = req
        .headers()
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .or_else(|| req.uri().authority().map(|a| a.as_str()))
        .unwrap_or_else(|| req.app_config().host());
    let host = proxy_says(req, "host", "x-forwarded-host").unwrap_or_else(|| direct_host.to_string());
    format!("{}://{host}", scheme(req)).to_ascii_lowercase()
}

/// What a trusted proxy forwards: the `Forwarded` parameter `param` when that is the configured
/// header, else the `x_header` (`X-Forwarded-…`); `None` from anyone else.
fn proxy_says(req: &HttpRequest, param: &str, x_header: &'static str) -> Option<String> {
    match req.extensions().get::<Client>().copied() {
        Some(Client {
            via_proxy: true,
            header: ClientIpHeader::Forwarded,
            ..
        }) => forwarded_param(req.headers(), param),
        Some(Client { via_proxy: true, .. }) => last_value(req.headers(), x_header),
        _ => None,
    }
}

fn is_trusted(trusted: &[Cidr], ip: IpAddr) -> bool {
    trusted.iter().any(|c| c.contains(ip))
}

/// The client address for a request from `peer` carrying `headers`.
pub fn resolve(peer: IpAddr, headers: &HeaderMap, proxies: &ProxySettings) -> IpAddr {
    let peer = peer.to_canonical();
    let trusted = &proxies.trusted;
    if !is_trusted(trusted, peer) {
        return peer;
    }
    let hops = match proxies.client_ip_header {
        ClientIpHeader::None => return peer,
        // One value the proxy overwrites: nothing to walk.
        ClientIpHeader::XRealIp => {
            return headers
                .get_all("x-real-ip")
                .last()
                .and_then(|v| v.to_str().ok())
                .and_then(|v| parse_ip(v.trim()))
                .map_or(peer, |ip| ip.to_canonical());
        }
        ClientIpHeader::XForwardedFor => list(headers, "x-forwarded-for")
            .map(|hop| parse_ip(hop.trim()))
            .collect::<Vec<_>>(),
        ClientIpHeader::Forwarded => list(headers, "forwarded")
            .map(|element| param(element, "for").and_then(|v| parse_ip(&v)))
            .collect(),
    };
    let mut client = peer;
    for hop in hops.into_iter().rev() {
        match hop.map(|ip| ip.to_canonical()) {
            Some(ip) if is_trusted(trusted, ip) => client = ip,
            Some(ip) => return ip,
            // An unparsable hop: nothing left of it can be believed.
            None => return client,
        }
    }
    client
}

/// The comma-separated elements of every line of header `name`, in order.
fn list<'a>(headers: &'a HeaderMap, name: &'static str) -> impl Iterator<Item = &'a str> {
    headers
        .get_all(name)
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
}

/// The right-most element of header `name`: what the nearest proxy wrote.
fn last_value(headers: &HeaderMap, name: &'static str) -> Option<String> {
    list(headers, name)
        .last()
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
}

/// Parameter `key` of the right-most `Forwarded` element.
fn forwarded_param(headers: &HeaderMap, key: &str) -> Option<String> {
    list(headers, "forwarded")
        .last()
        .and_then(|element| param(element, key))
}

/// Parameter `key` of one `Forwarded` element (`for=…;proto=…`), unquoted.
fn param(element: &str, key: &str) -> Option<String> {
    element
        .split(';')
        .filter_map(|pair| pair.split_once('='))
        .find(|(k, _)| k.trim().eq_ignore_ascii_case(key))
        .map(|(_, v)| v.trim().trim_matches('"').to_string())
}

/// `1.2.3.4`, `1.2.3.4:567`, `[::1]` or `[::1]:567`.
fn parse_ip(raw: &str) -> Option<IpAddr> {
    if let Ok(ip) = raw.parse() {
        return Some(ip);
    }
    if let Some(rest) = raw.strip_prefix('[') {
        return rest.split(']').next()?.parse().ok();
    }
    raw.rsplit_once(':').and_then(|(ip, _port)| ip.parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::http::header::{HeaderName, HeaderValue};

    /// A request as [`record`] leaves it: from a trusted proxy or not, with these headers.
    fn recorded(via_proxy: bool, header: ClientIpHeader, pairs: &[(&str, &str)]) -> HttpRequest {
        let mut request = actix_web::test::TestRequest::default();
        for &pair in pairs {
            request = request.insert_header(pair);
        }
        let request = request.to_http_request();
        request.extensions_mut().insert(Client {
            ip: IpAddr::from([192, 0, 2, 1]),
            via_proxy,
            header,
        });
        request
    }

    #[test]
    fn the_scheme_is_a_trusted_proxys_word_and_only_http_or_https() {
        use ClientIpHeader::{Forwarded, XForwardedFor};
        type Case<'a> = (bool, ClientIpHeader, &'a [(&'a str, &'a str)], &'a str, &'a str);
        let cases: [Case<'_>; 7] = [
            (
                false,
                XForwardedFor,
                &[("x-forwarded-proto", "https")],
                "http",
                "a direct client is not believed",
            ),
            (
                true,
                XForwardedFor,
                &[("x-forwarded-proto", "https")],
                "https",
                "a trusted proxy is",
            ),
            (
                true,
                XForwardedFor,
                &[("x-forwarded-proto", "http, HTTPS")],
                "https",
                "the right-most, any case",
            ),
            (
                true,
                XForwardedFor,
                &[("x-forwarded-proto", "javascript")],
                "http",
                "nothing but http or https",
            ),
            (
                true,
                Forwarded,
                &[("forwarded", "for=192.0.2.9;proto=https")],
                "https",
                "Forwarded when configured",
            ),
            (
                true,
                Forwarded,
                &[("x-forwarded-proto", "https")],
                "http",
                "only the configured header",
            ),
            (
                false,
                Forwarded,
                &[("forwarded", "proto=https")],
                "http",
                "a direct client's Forwarded",
            ),
        ];
        for (via_proxy, header, pairs, expected, why) in cases {
            assert_eq!(scheme(&recorded(via_proxy, header, pairs)), expected, "{why}");
        }
        let direct = recorded(
            false,
            XForwardedFor,
            &[("host", "API.example.com"), ("x-forwarded-host", "evil.example")],
        );
        assert_eq!(own_origin(&direct), "http://api.example.com");
        let proxied = recorded(
            true,
            XForwardedFor,
            &[
                ("host", "10.0.0.5"),
                ("x-forwarded-host", "auth.example.com"),
                ("x-forwarded-proto", "https"),
            ],
        );
        assert_eq!(own_origin(&proxied), "https://auth.example.com");
    }

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (k, v) in pairs {
            map.append(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        map
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn forged_headers_table() {
        use ClientIpHeader::{Forwarded as Fwd, None as NoHeader, XForwardedFor as Xff, XRealIp as Real};
        let trusted: Vec<Cidr> = ["10.0.0.0/8", "fd00::/8"].iter().map(|c| c.parse().unwrap()).collect();
        // (header mode, peer, headers, expected client, what it proves)
        type Case<'a> = (ClientIpHeader, &'a str, &'a [(&'a str, &'a str)], &'a str, &'a str);
        let cases: &[Case] = &[
            (
                Xff,
                "203.0.113.9",
                &[("x-forwarded-for", "1.1.1.1")],
                "203.0.113.9",
                "untrusted peer: headers ignored",
            ),
            (Xff, "10.0.0.2", &[], "10.0.0.2", "trusted peer, no header: the peer"),
            (
                Xff,
                "10.0.0.2",
                &[("x-forwarded-for", "198.51.100.7")],
                "198.51.100.7",
                "one proxy",
            ),
            (
                Xff,
                "10.0.0.2",
                &[("x-forwarded-for", "6.6.6.6, 198.51.100.7")],
                "198.51.100.7",
                "forged left-most value ignored",
            ),
            (
                Xff,
                "10.0.0.2",
                &[("x-forwarded-for", "6.6.6.6, 198.51.100.7, 10.0.0.5")],
                "198.51.100.7",
                "two trusted hops skipped",
            ),
            (
                Xff,
                "10.0.0.2",
                &[("x-forwarded-for", "6.6.6.6"), ("x-forwarded-for", "198.51.100.7")],
                "198.51.100.7",
                "header repeated: one list, in order",
            ),
            (
                Xff,
                "10.0.0.2",
                &[("x-forwarded-for", "garbage, 198.51.100.7")],
                "198.51.100.7",
                "junk left of the real hop",
            ),
            (
                Xff,
                "10.0.0.2",
                &[("x-forwarded-for", "198.51.100.7, garbage")],
                "10.0.0.2",
                "junk at the right: stop",
            ),
            (
                Xff,
                "10.0.0.2",
                &[("forwarded", "for=6.6.6.6"), ("x-forwarded-for", "198.51.100.7")],
                "198.51.100.7",
                "a client's Forwarded is not the configured header",
            ),
            (
                Xff,
                "10.0.0.2",
                &[("x-real-ip", "6.6.6.6"), ("x-forwarded-for", "198.51.100.7")],
                "198.51.100.7",
                "a client's X-Real-IP is not the configured header",
            ),
            (
                Xff,
                "::ffff:10.0.0.2",
                &[("x-forwarded-for", "::ffff:198.51.100.7")],
                "198.51.100.7",
                "IPv4-mapped peer and hop are IPv4",
            ),
            (
                Fwd,
                "10.0.0.2",
                &[("forwarded", "for=6.6.6.6, for=\"[2001:db8::1]:443\";proto=https")],
                "2001:db8::1",
                "RFC 7239",
            ),
            (
                Fwd,
                "10.0.0.2",
                &[("forwarded", "for=198.51.100.7"), ("x-forwarded-for", "6.6.6.6")],
                "198.51.100.7",
                "forwarded mode ignores X-Forwarded-For",
            ),
            (
                Fwd,
                "10.0.0.2",
                &[
                    ("forwarded", "for=6.6.6.6"),
                    ("forwarded", "for=198.51.100.7;proto=https"),
                ],
                "198.51.100.7",
                "Forwarded lines are one list",
            ),
            (
                Real,
                "10.0.0.2",
                &[("x-real-ip", "198.51.100.7"), ("x-forwarded-for", "6.6.6.6")],
                "198.51.100.7",
                "x-real-ip mode",
            ),
            (
                Real,
                "203.0.113.9",
                &[("x-real-ip", "6.6.6.6")],
                "203.0.113.9",
                "untrusted X-Real-IP",
            ),
            (
                NoHeader,
                "10.0.0.2",
                &[
                    ("x-forwarded-for", "6.6.6.6"),
                    ("forwarded", "for=6.6.6.6"),
                    ("x-real-ip", "6.6.6.6"),
                ],
                "10.0.0.2",
                "none: always the peer",
            ),
        ];
        for (header, peer, hdrs, expected, why) in cases {
            let proxies = ProxySettings {
                trusted: trusted.clone(),
                client_ip_header: *header,
            };
            assert_eq!(resolve(ip(peer), &headers(hdrs), &proxies), ip(expected), "{why}");
        }
    }

    #[test]
    fn rate_keys_group_an_ipv6_network_and_fold_mapped_ipv4() {
        let key = |s: &str, prefix| rate_key(ip(s), prefix);
        assert_eq!(
            key("2001:db8:1:2:aaaa::1", 64),
            key("2001:db8:1:2:bbbb::9", 64),
            "one /64"
        );
        assert_ne!(key("2001:db8:1:2::1", 64), key("2001:db8:1:3::1", 64), "another /64");
        assert_ne!(
            key("2001:db8:1:2:aaaa::1", 128),
            key("2001:db8:1:2:bbbb::9", 128),
            "per address at /128"
        );
        assert_eq!(
            key("::ffff:198.51.100.9", 64),
            ip("198.51.100.9"),
            "IPv4-mapped is IPv4"
        );
        assert_ne!(key("198.51.100.9", 64), key("198.51.100.10", 64), "IPv4 per address");
    }

    #[test]
    fn cidr_parsing_and_matching() {
        assert!("10.0.0.0/8".parse::<Cidr>().unwrap().contains(ip("10.255.1.1")));
        assert!(!"10.0.0.0/8".parse::<Cidr>().unwrap().contains(ip("11.0.0.1")));
        assert!("192.168.1.7".parse::<Cidr>().unwrap().contains(ip("192.168.1.7")));
        assert!("0.0.0.0/0".parse::<Cidr>().unwrap().contains(ip("8.8.8.8")));
        assert!("10.0.0.0/33".parse::<Cidr>().is_err());
        assert!("nonsense".parse::<Cidr>().is_err());
    }
}
