//! `auth-api healthcheck`: asks the running service's readiness route, for container
//! HEALTHCHECKs, without shipping curl in the image.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// Whether `GET /health/ready` on `addr` answers 200 within `timeout`.
pub fn check(addr: SocketAddr, timeout: Duration) -> Result<(), String> {
    // A server bound to 0.0.0.0 / [::] is reached through loopback.
    let target = match addr {
        SocketAddr::V4(a) if a.ip().is_unspecified() => SocketAddr::from(([127, 0, 0, 1], a.port())),
        SocketAddr::V6(a) if a.ip().is_unspecified() => SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, a.port())),
        other => other,
    };
    let mut stream =
        TcpStream::connect_timeout(&target, timeout).map_err(|e| format!("cannot connect to {target}: {e}"))?;
    stream
        .set_read_timeout(Some(timeout))
        .and_then(|_| stream.set_write_timeout(Some(timeout)))
        .map_err(|e| e.to_string())?;
    write!(
        stream,
        "GET /health/ready HTTP/1.1\r\nHost: {target}\r\nConnection: close\r\n\r\n"
    )
    .map_err(|e| e.to_string())?;
    let mut head = [0u8; 12];
    stream
        .read_exact(&mut head)
        .map_err(|e| format!("no answer from {target}: {e}"))?;
    match &head {
        [b'H', b'T', b'T', b'P', b'/', _, _, _, b' ', b'2', b'0', b'0'] => Ok(()),
        _ => Err(format!("not ready: {}", String::from_utf8_lossy(&head[9..]))),
    }
}
