//! What does the server offer? One SMB2 NEGOTIATE exchange over plain TCP: the dialect it
//! picks, whether it offers SMB3 encryption and whether it requires signing.
//!
//! libsmbclient 4.17 asked for `required` encryption against a server that does not offer it
//! prints "Encryption required and server doesn't support SMB3 encryption - failing connect"
//! and then carries on unencrypted (measured: a file was created), and it does not say how a
//! session is protected. So the libsmbclient client reads this answer first: a server whose
//! NEGOTIATE answer offers no cipher (SMB 3.1.1 encryption context) or no encryption
//! capability (SMB 3.0.x) is refused before libsmbclient connects. The smb2 client reads it
//! to explain a refused session (a server that offers encryption and refuses an unencrypted
//! session requires encryption).

use std::io::{self, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

const DIALECTS: [u16; 5] = [0x0202, 0x0210, 0x0300, 0x0302, 0x0311];
const CAP_LARGE_MTU: u32 = 0x04;
const CAP_ENCRYPTION: u32 = 0x40;
const SIGNING_REQUIRED: u16 = 0x02;
const PREAUTH_CONTEXT: u16 = 0x0001;
const ENCRYPTION_CONTEXT: u16 = 0x0002;
/// AES-128-GCM, AES-128-CCM, AES-256-GCM, AES-256-CCM.
const CIPHERS: [u16; 4] = [0x0002, 0x0001, 0x0004, 0x0003];

/// What the server answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Negotiated {
    /// The dialect chosen (`0x0311` for SMB 3.1.1).
    pub dialect: u16,
    /// The server offers encryption for this dialect.
    pub encryption: bool,
    /// The server requires every message to be signed.
    pub signing_required: bool,
}

/// `SMB 3.1.1` for `0x0311`, as users know the dialects.
pub fn dialect_name(dialect: u16) -> String {
    match dialect {
        0x0202 => "SMB 2.0.2".into(),
        0x0210 => "SMB 2.1".into(),
        0x0300 => "SMB 3.0".into(),
        0x0302 => "SMB 3.0.2".into(),
        0x0311 => "SMB 3.1.1".into(),
        0 => "SMB1".into(),
        other => format!("SMB dialect {other:#06x}"),
    }
}

/// Sends one NEGOTIATE to `server:port` and reads the answer, within `timeout` per step. A
/// server that does not answer in time is a `TimedOut` error.
pub fn negotiate(server: &str, port: u16, timeout: Duration) -> io::Result<Negotiated> {
    exchange(server, port, timeout).map_err(|e| match e.kind() {
        // What a socket's read or write timeout returns on Unix.
        io::ErrorKind::WouldBlock => io::Error::new(
            io::ErrorKind::TimedOut,
            format!("no answer to NEGOTIATE within {timeout:?}"),
        ),
        _ => e,
    })
}

fn exchange(server: &str, port: u16, timeout: Duration) -> io::Result<Negotiated> {
    let addrs = (server, port).to_socket_addrs()?;
    let mut last = io::Error::new(io::ErrorKind::NotFound, "the server name has no address");
    for addr in addrs {
        match TcpStream::connect_timeout(&addr, timeout) {
            Ok(mut stream) => {
                stream.set_read_timeout(Some(timeout))?;
                stream.set_write_timeout(Some(timeout))?;
                stream.set_nodelay(true)?;
                stream.write_all(&request())?;
                let mut header = [0u8; 4];
                stream.read_exact(&mut header)?;
                let length = u32::from_be_bytes(header) as usize & 0x00ff_ffff;
                if length > 1 << 20 {
                    return Err(bad("the NEGOTIATE answer is too large"));
                }
                let mut answer = vec![0u8; length];
                stream.read_exact(&mut answer)?;
                return parse(&answer);
            }
            Err(e) => last = e,
        }
    }
    Err(last)
}

fn bad(message: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message.to_owned())
}

fn u16_at(b: &[u8], at: usize) -> io::Result<u16> {
    b.get(at..at + 2)
        .map(|s| u16::from_le_bytes([s[0], s[1]]))
        .ok_or_else(|| bad("the NEGOTIATE answer is truncated"))
}

fn u32_at(b: &[u8], at: usize) -> io::Result<u32> {
    b.get(at..at + 4)
        .map(|s| u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
        .ok_or_else(|| bad("the NEGOTIATE answer is truncated"))
}

/// The NEGOTIATE request with its NetBIOS session header.
fn request() -> Vec<u8> {
    let mut m = Vec::with_capacity(192);
    // SMB2 header: protocol id, structure size 64, command NEGOTIATE, one credit asked.
    m.extend_from_slice(b"\xfeSMB");
    m.extend_from_slice(&64u16.to_le_bytes());
    m.extend_from_slice(&[0; 6]); // credit charge, status
    m.extend_from_slice(&0u16.to_le_bytes()); // command
    m.extend_from_slice(&1u16.to_le_bytes()); // credits requested
    m.extend_from_slice(&[0; 48]); // flags .. signature
    // NEGOTIATE request: structure size 36.
    m.extend_from_slice(&36u16.to_le_bytes());
    m.extend_from_slice(&(DIALECTS.len() as u16).to_le_bytes());
    m.extend_from_slice(&1u16.to_le_bytes()); // signing enabled
    m.extend_from_slice(&0u16.to_le_bytes());
    m.extend_from_slice(&(CAP_LARGE_MTU | CAP_ENCRYPTION).to_le_bytes());
    let mut guid = [0u8; 16];
    let _ = getrandom::fill(&mut guid);
    m.extend_from_slice(&guid);
    let contexts_at = (64 + 36 + 2 * DIALECTS.len()).next_multiple_of(8);
    m.extend_from_slice(&(contexts_at as u32).to_le_bytes());
    m.extend_from_slice(&2u16.to_le_bytes()); // context count
    m.extend_from_slice(&0u16.to_le_bytes());
    for d in DIALECTS {
        m.extend_from_slice(&d.to_le_bytes());
    }
    m.resize(contexts_at, 0);
    // Pre-authentication integrity: SHA-512 with a 32-byte salt.
    let mut salt = [0u8; 32];
    let _ = getrandom::fill(&mut salt);
    m.extend_from_slice(&PREAUTH_CONTEXT.to_le_bytes());
    m.extend_from_slice(&(6u16 + 32).to_le_bytes());
    m.extend_from_slice(&[0; 4]);
    m.extend_from_slice(&1u16.to_le_bytes());
    m.extend_from_slice(&32u16.to_le_bytes());
    m.extend_from_slice(&1u16.to_le_bytes());
    m.extend_from_slice(&salt);
    m.resize(m.len().next_multiple_of(8), 0);
    m.extend_from_slice(&ENCRYPTION_CONTEXT.to_le_bytes());
    m.extend_from_slice(&(2 + 2 * CIPHERS.len() as u16).to_le_bytes());
    m.extend_from_slice(&[0; 4]);
    m.extend_from_slice(&(CIPHERS.len() as u16).to_le_bytes());
    for c in CIPHERS {
        m.extend_from_slice(&c.to_le_bytes());
    }
    let mut framed = (m.len() as u32).to_be_bytes().to_vec();
    framed.extend_from_slice(&m);
    framed
}

/// Reads the dialect and whether encryption is offered from a NEGOTIATE answer.
fn parse(answer: &[u8]) -> io::Result<Negotiated> {
    if answer.get(..4) != Some(b"\xfeSMB") {
        // An SMB1-only server (or something else): no SMB3, no encryption.
        return Ok(Negotiated {
            dialect: 0,
            encryption: false,
            signing_required: false,
        });
    }
    let status = u32_at(answer, 8)?;
    if status != 0 {
        return Err(bad(&format!(
            "the server refused NEGOTIATE (status {status:#010x})"
        )));
    }
    let signing_required = u16_at(answer, 64 + 2)? & SIGNING_REQUIRED != 0;
    let dialect = u16_at(answer, 64 + 4)?;
    let encryption = match dialect {
        0x0300 | 0x0302 => u32_at(answer, 64 + 24)? & CAP_ENCRYPTION != 0,
        0x0311 => {
            let count = u16_at(answer, 64 + 6)?;
            let mut at = u32_at(answer, 64 + 60)? as usize;
            let mut offered = false;
            for _ in 0..count {
                let kind = u16_at(answer, at)?;
                let length = u16_at(answer, at + 2)? as usize;
                if kind == ENCRYPTION_CONTEXT {
                    let ciphers = u16_at(answer, at + 8)?;
                    offered = ciphers > 0 && u16_at(answer, at + 10)? != 0;
                }
                at = (at + 8 + length).next_multiple_of(8);
            }
            offered
        }
        _ => false,
    };
    Ok(Negotiated {
        dialect,
        encryption,
        signing_required,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn the_request_is_well_formed() {
        let r = request();
        assert_eq!(
            u32::from_be_bytes([r[0], r[1], r[2], r[3]]) as usize,
            r.len() - 4
        );
        let m = &r[4..];
        assert_eq!(&m[..4], b"\xfeSMB");
        assert_eq!(u16_at(m, 64).unwrap(), 36);
        assert_eq!(u32_at(m, 64 + 28).unwrap() as usize % 8, 0);
        assert_eq!(u16_at(m, 112).unwrap(), PREAUTH_CONTEXT);
        assert_eq!(u16_at(m, 160).unwrap(), ENCRYPTION_CONTEXT);
    }

    #[test]
    fn answers_are_read_defensively() {
        assert!(!parse(b"\xffSMB-smb1").unwrap().encryption);
        assert!(parse(b"\xfeSMB").is_err());
        let mut answer = vec![0u8; 64 + 65];
        answer[..4].copy_from_slice(b"\xfeSMB");
        answer[68..70].copy_from_slice(&0x0302u16.to_le_bytes());
        assert!(!parse(&answer).unwrap().encryption);
        assert!(!parse(&answer).unwrap().signing_required);
        answer[66] = SIGNING_REQUIRED as u8;
        assert!(parse(&answer).unwrap().signing_required);
        assert_eq!(dialect_name(parse(&answer).unwrap().dialect), "SMB 3.0.2");
        answer[88] = CAP_ENCRYPTION as u8;
        assert!(parse(&answer).unwrap().encryption);
        // 3.1.1 with a context list pointing past the end: an error, not a panic.
        answer[68..70].copy_from_slice(&0x0311u16.to_le_bytes());
        answer[70] = 1;
        answer[124] = 0xf0;
        assert!(parse(&answer).is_err());
    }
}
