//! The client's address: the TCP peer, unless the peer is a trusted proxy, in which case the
//! right-most address in `X-Forwarded-For` / `Forwarded` that is not itself a trusted proxy.
//!
//! Never the left-most value: a client writes whatever it likes there, and every proxy only
//! appends. Walking from the right and stopping at the first untrusted hop yields the address
//! the nearest trusted proxy actually saw.

use std::net::IpAddr;
use std::rc::Rc;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::HeaderMap;
use actix_web::middleware::Next;
use actix_web::{HttpMessage as _, HttpRequest};

use crate::config::Cidr;

/// The client address of a request, resolved once by [`record`] and kept in its extensions.
#[derive(Clone, Copy, Debug)]
struct ClientAddr(IpAddr);

/// Resolves the client address of `req` with the `trusted` proxies, for [`of`] to read; the
/// middleware that runs first, so that every later layer sees the same address.
pub async fn record(
    trusted: Rc<[Cidr]>,
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    if let Some(peer) = req.peer_addr() {
        let client = resolve(peer.ip(), req.headers(), &trusted);
        req.extensions_mut().insert(ClientAddr(client));
    }
    next.call(req).await
}

/// The client address [`record`] resolved; `None` without a peer address (test requests).
pub fn of(req: &HttpRequest) -> Option<IpAddr> {
    req.extensions().get::<ClientAddr>().map(|client| client.0)
}

/// The client address for a request from `peer` carrying `headers`.
pub fn resolve(peer: IpAddr, headers: &HeaderMap, trusted: &[Cidr]) -> IpAddr {
    let is_trusted = |ip: IpAddr| trusted.iter().any(|c| c.contains(ip));
    if !is_trusted(peer) {
        return peer;
    }
    // Hops in the order they were appended; RFC 7239 `Forwarded` wins when present.
    let hops = forwarded_hops(headers).unwrap_or_else(|| x_forwarded_for(headers));
    let mut client = peer;
    for hop in hops.into_iter().rev() {
        match hop {
            Some(ip) if is_trusted(ip) => client = ip,
            Some(ip) => return ip,
            // An unparsable hop: nothing left of it can be believed.
            None => return client,
        }
    }
    client
}

fn x_forwarded_for(headers: &HeaderMap) -> Vec<Option<IpAddr>> {
    headers
        .get_all("x-forwarded-for")
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|hop| parse_ip(hop.trim()))
        .collect()
}

fn forwarded_hops(headers: &HeaderMap) -> Option<Vec<Option<IpAddr>>> {
    let values: Vec<&str> = headers.get_all("forwarded").filter_map(|v| v.to_str().ok()).collect();
    if values.is_empty() {
        return None;
    }
    let hops = values
        .iter()
        .flat_map(|v| v.split(','))
        .map(|element| {
            element
                .split(';')
                .filter_map(|pair| pair.split_once('='))
                .find(|(k, _)| k.trim().eq_ignore_ascii_case("for"))
                .and_then(|(_, v)| parse_ip(v.trim().trim_matches('"')))
        })
        .collect();
    Some(hops)
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
        let trusted: Vec<Cidr> = ["10.0.0.0/8", "fd00::/8"].iter().map(|c| c.parse().unwrap()).collect();
        // (peer, headers, expected client, what it proves)
        type Case<'a> = (&'a str, &'a [(&'a str, &'a str)], &'a str, &'a str);
        let cases: &[Case] = &[
            (
                "203.0.113.9",
                &[("x-forwarded-for", "1.1.1.1")],
                "203.0.113.9",
                "untrusted peer: headers ignored",
            ),
            ("10.0.0.2", &[], "10.0.0.2", "trusted peer, no header: the peer"),
            (
                "10.0.0.2",
                &[("x-forwarded-for", "198.51.100.7")],
                "198.51.100.7",
                "one proxy",
            ),
            (
                "10.0.0.2",
                &[("x-forwarded-for", "6.6.6.6, 198.51.100.7")],
                "198.51.100.7",
                "forged left-most value ignored",
            ),
            (
                "10.0.0.2",
                &[("x-forwarded-for", "6.6.6.6, 198.51.100.7, 10.0.0.5")],
                "198.51.100.7",
                "two trusted hops skipped",
            ),
            (
                "10.0.0.2",
                &[("x-forwarded-for", "6.6.6.6"), ("x-forwarded-for", "198.51.100.7")],
                "198.51.100.7",
                "header repeated",
            ),
            (
                "10.0.0.2",
                &[("x-forwarded-for", "garbage, 198.51.100.7")],
                "198.51.100.7",
                "junk left of the real hop",
            ),
            (
                "10.0.0.2",
                &[("x-forwarded-for", "198.51.100.7, garbage")],
                "10.0.0.2",
                "junk at the right: stop",
            ),
            (
                "10.0.0.2",
                &[("forwarded", "for=6.6.6.6, for=\"[2001:db8::1]:443\";proto=https")],
                "2001:db8::1",
                "RFC 7239",
            ),
            (
                "10.0.0.2",
                &[("forwarded", "for=198.51.100.7"), ("x-forwarded-for", "6.6.6.6")],
                "198.51.100.7",
                "Forwarded wins",
            ),
            (
                "::ffff:10.0.0.2",
                &[("x-forwarded-for", "198.51.100.7")],
                "198.51.100.7",
                "IPv4-mapped peer",
            ),
        ];
        for (peer, hdrs, expected, why) in cases {
            assert_eq!(resolve(ip(peer), &headers(hdrs), &trusted), ip(expected), "{why}");
        }
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
