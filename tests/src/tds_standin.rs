//! A TDS stand-in: a small hand-written responder that speaks just enough of the TDS protocol
//! (PRELOGIN answering ENCRYPTION=NOT_SUP, LOGIN7, LOGINACK, ERROR and DONE tokens, one
//! NVARCHAR result column) for tiberius to log in and get answers. It is **not a T-SQL engine**:
//! it understands no SQL and answers from a script. Tests against it are protocol-level tests
//! (login and its failures, the encryption settings, how errors map, retries, what reaches a
//! log) and are named `tds_standin_*`; the store's T-SQL is tested only against real engines
//! (`SSTORE_TEST_MSSQL_URL`).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How the stand-in answers one request (after the login and the session settings).
#[derive(Debug, Clone)]
pub enum Answer {
    /// An empty, successful result.
    Done,
    /// One NVARCHAR column named `value` with these rows.
    Rows(Vec<String>),
    /// One INT column with one row.
    Int(i32),
    /// A server error (ERROR token, then DONE with the error bit).
    Error { code: u32, message: String },
    /// Never answer (the client's timeout has to fire).
    Hang,
    /// Close the connection.
    Drop,
}

/// How one connection goes.
#[derive(Debug, Clone)]
pub enum Login {
    /// Accept the login when the password is this one, else answer error 18456.
    Password(String),
    /// Refuse with this server error (e.g. 4060, database missing).
    Refuse { code: u32, message: String },
    /// Accept the TCP connection and never answer the prelogin.
    Hang,
}

/// The script of one connection: its login, then the answers in order (then `Done`).
#[derive(Debug, Clone)]
pub struct Script {
    pub login: Login,
    pub answers: Vec<Answer>,
}

impl Script {
    pub fn accept(password: &str, answers: Vec<Answer>) -> Self {
        Self {
            login: Login::Password(password.into()),
            answers,
        }
    }
}

/// What the stand-in saw, for assertions.
#[derive(Debug, Clone, Default)]
pub struct Seen {
    pub connections: usize,
    /// (user, password as decoded from LOGIN7, database) of every login.
    pub logins: Vec<(String, String, String)>,
    /// The text of every SQL batch, and `rpc` for every RPC request.
    pub requests: Vec<String>,
}

/// A running stand-in on 127.0.0.1; stops when dropped.
pub struct TdsStandIn {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    seen: Arc<Mutex<Seen>>,
}

impl TdsStandIn {
    /// Serves connection `i` with `scripts[i]` (the last script for every later one).
    pub fn start(scripts: Vec<Script>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the TDS stand-in");
        let addr = listener.local_addr().expect("stand-in address");
        let stop = Arc::new(AtomicBool::new(false));
        let seen = Arc::new(Mutex::new(Seen::default()));
        let (stop2, seen2) = (stop.clone(), seen.clone());
        std::thread::spawn(move || {
            for (i, stream) in listener.incoming().enumerate() {
                if stop2.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(stream) = stream else { continue };
                let script = scripts
                    .get(i)
                    .or(scripts.last())
                    .cloned()
                    .unwrap_or_else(|| Script::accept("", Vec::new()));
                seen2.lock().unwrap_or_else(|p| p.into_inner()).connections += 1;
                let (stop3, seen3) = (stop2.clone(), seen2.clone());
                std::thread::spawn(move || {
                    let _ = serve(stream, script, &stop3, &seen3);
                });
            }
        });
        Self { addr, stop, seen }
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    pub fn seen(&self) -> Seen {
        self.seen.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

impl Drop for TdsStandIn {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(self.addr);
    }
}

const PRELOGIN: u8 = 0x12;
const LOGIN7: u8 = 0x10;
const SQL_BATCH: u8 = 0x01;
const RPC: u8 = 0x03;
const REPLY: u8 = 0x04;

fn serve(
    mut stream: TcpStream,
    script: Script,
    stop: &AtomicBool,
    seen: &Mutex<Seen>,
) -> std::io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_millis(200)))?;
    let hang = |stop: &AtomicBool| {
        for _ in 0..300 {
            if stop.load(Ordering::SeqCst) {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    let Some((kind, _)) = read_message(&mut stream, stop)? else {
        return Ok(());
    };
    if kind != PRELOGIN {
        return Ok(());
    }
    if matches!(script.login, Login::Hang) {
        hang(stop);
        return Ok(());
    }
    write_message(&mut stream, &prelogin_reply())?;
    let Some((kind, login)) = read_message(&mut stream, stop)? else {
        return Ok(());
    };
    if kind != LOGIN7 {
        return Ok(());
    }
    let (user, password, database) = parse_login7(&login);
    seen.lock().unwrap_or_else(|p| p.into_inner()).logins.push((
        user.clone(),
        password.clone(),
        database,
    ));
    match &script.login {
        Login::Password(expected) if *expected == password => {
            let mut reply = login_ack();
            reply.extend(done(0, 0));
            write_message(&mut stream, &reply)?;
        }
        Login::Password(_) => {
            let mut reply = error(18456, 14, &format!("Login failed for user '{user}'."));
            reply.extend(done(0x0002, 0));
            write_message(&mut stream, &reply)?;
            return Ok(());
        }
        Login::Refuse { code, message } => {
            let mut reply = error(*code, 16, message);
            reply.extend(done(0x0002, 0));
            write_message(&mut stream, &reply)?;
            return Ok(());
        }
        Login::Hang => unreachable!("handled above"),
    }
    let mut answers = script.answers.into_iter();
    while let Some((kind, body)) = read_message(&mut stream, stop)? {
        let text = match kind {
            SQL_BATCH => batch_text(&body),
            RPC => "rpc".to_owned(),
            _ => continue,
        };
        seen.lock()
            .unwrap_or_else(|p| p.into_inner())
            .requests
            .push(text.clone());
        // Session settings and rollbacks are answered without using up the script.
        let answer = if text.starts_with("SET XACT_ABORT") || text.starts_with("IF @@TRANCOUNT") {
            Answer::Done
        } else {
            answers.next().unwrap_or(Answer::Done)
        };
        match answer {
            Answer::Done => write_message(&mut stream, &done(0, 0))?,
            Answer::Rows(values) => write_message(&mut stream, &rows(&values))?,
            Answer::Int(value) => write_message(&mut stream, &int_row(value))?,
            Answer::Error { code, message } => {
                let mut reply = error(code, 16, &message);
                reply.extend(done(0x0002, 0));
                write_message(&mut stream, &reply)?;
            }
            Answer::Hang => {
                hang(stop);
                return Ok(());
            }
            Answer::Drop => return Ok(()),
        }
    }
    Ok(())
}

/// Reads one message (packets until end-of-message); `None` when the client closed.
fn read_message(
    stream: &mut TcpStream,
    stop: &AtomicBool,
) -> std::io::Result<Option<(u8, Vec<u8>)>> {
    let mut body = Vec::new();
    loop {
        let mut header = [0u8; 8];
        if !read_exact_or_stop(stream, &mut header, stop)? {
            return Ok(None);
        }
        let length = u16::from_be_bytes([header[2], header[3]]) as usize;
        let mut payload = vec![0u8; length.saturating_sub(8)];
        if !read_exact_or_stop(stream, &mut payload, stop)? {
            return Ok(None);
        }
        body.extend_from_slice(&payload);
        if header[1] & 0x01 != 0 {
            return Ok(Some((header[0], body)));
        }
    }
}

fn read_exact_or_stop(
    stream: &mut TcpStream,
    buf: &mut [u8],
    stop: &AtomicBool,
) -> std::io::Result<bool> {
    let mut filled = 0;
    while filled < buf.len() {
        if stop.load(Ordering::SeqCst) {
            return Ok(false);
        }
        match stream.read(&mut buf[filled..]) {
            Ok(0) => return Ok(false),
            Ok(n) => filled += n,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(true)
}

/// Sends `body` as one reply message, in packets of at most 4096 bytes.
fn write_message(stream: &mut TcpStream, body: &[u8]) -> std::io::Result<()> {
    let chunks: Vec<&[u8]> = if body.is_empty() {
        vec![&[]]
    } else {
        body.chunks(4096 - 8).collect()
    };
    for (i, chunk) in chunks.iter().enumerate() {
        let last = i + 1 == chunks.len();
        let length = (chunk.len() + 8) as u16;
        let mut packet = vec![REPLY, u8::from(last), 0, 0, 0, 0, (i + 1) as u8, 0];
        packet[2..4].copy_from_slice(&length.to_be_bytes());
        packet.extend_from_slice(chunk);
        stream.write_all(&packet)?;
    }
    stream.flush()
}

fn prelogin_reply() -> Vec<u8> {
    // VERSION (6 bytes at 11), ENCRYPTION (1 byte at 17): NOT_SUP; terminator.
    let mut out = vec![0x00, 0, 11, 0, 6, 0x01, 0, 17, 0, 1, 0xFF];
    out.extend_from_slice(&[16, 0, 0x10, 0x00, 0, 0]);
    out.push(0x02);
    out
}

fn utf16(text: &str) -> Vec<u8> {
    text.encode_utf16().flat_map(u16::to_le_bytes).collect()
}

fn b_varchar(text: &str) -> Vec<u8> {
    let mut out = vec![text.encode_utf16().count() as u8];
    out.extend(utf16(text));
    out
}

fn login_ack() -> Vec<u8> {
    let mut body = vec![0x01];
    body.extend_from_slice(&0x7400_0004u32.to_be_bytes());
    body.extend(b_varchar("TDS stand-in"));
    body.extend_from_slice(&[16, 0, 0, 0]);
    let mut out = vec![0xAD];
    out.extend_from_slice(&(body.len() as u16).to_le_bytes());
    out.extend(body);
    out
}

fn done(status: u16, count: u64) -> Vec<u8> {
    let mut out = vec![0xFD];
    out.extend_from_slice(&status.to_le_bytes());
    out.extend_from_slice(&0u16.to_le_bytes());
    out.extend_from_slice(&count.to_le_bytes());
    out
}

fn error(code: u32, state: u8, message: &str) -> Vec<u8> {
    let mut body = Vec::new();
    body.extend_from_slice(&code.to_le_bytes());
    body.push(state);
    body.push(16);
    body.extend_from_slice(&(message.encode_utf16().count() as u16).to_le_bytes());
    body.extend(utf16(message));
    body.extend(b_varchar("standin"));
    body.extend(b_varchar(""));
    body.extend_from_slice(&1u32.to_le_bytes());
    let mut out = vec![0xAA];
    out.extend_from_slice(&(body.len() as u16).to_le_bytes());
    out.extend(body);
    out
}

/// One NVARCHAR(4000) column named `value`, the rows, and DONE with the count.
fn rows(values: &[String]) -> Vec<u8> {
    let mut out = vec![0x81];
    out.extend_from_slice(&1u16.to_le_bytes());
    out.extend_from_slice(&0u32.to_le_bytes()); // user type
    out.extend_from_slice(&0x0001u16.to_le_bytes()); // nullable
    out.push(0xE7); // NVARCHARTYPE
    out.extend_from_slice(&8000u16.to_le_bytes());
    out.extend_from_slice(&[0x09, 0x04, 0xD0, 0x00, 0x34]); // collation (Latin1_General_CI_AS)
    out.extend(b_varchar("value"));
    for value in values {
        out.push(0xD1);
        let bytes = utf16(value);
        out.extend_from_slice(&(bytes.len() as u16).to_le_bytes());
        out.extend(bytes);
    }
    out.extend(done(0x0010, values.len() as u64));
    out
}

/// One INT column (INTN, 4 bytes) named `value` with one row, and DONE.
fn int_row(value: i32) -> Vec<u8> {
    let mut out = vec![0x81];
    out.extend_from_slice(&1u16.to_le_bytes());
    out.extend_from_slice(&0u32.to_le_bytes());
    out.extend_from_slice(&0x0001u16.to_le_bytes());
    out.extend_from_slice(&[0x26, 4]);
    out.extend(b_varchar("value"));
    out.push(0xD1);
    out.push(4);
    out.extend_from_slice(&value.to_le_bytes());
    out.extend(done(0x0010, 1));
    out
}

/// The SQL text of a batch, after its ALL_HEADERS.
fn batch_text(body: &[u8]) -> String {
    let skip = body
        .get(..4)
        .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize)
        .filter(|n| *n <= body.len())
        .unwrap_or(0);
    let units: Vec<u16> = body[skip..]
        .chunks_exact(2)
        .map(|c| u16::from_le_bytes([c[0], c[1]]))
        .collect();
    String::from_utf16_lossy(&units)
}

/// User, password (de-obfuscated) and database of a LOGIN7 message.
fn parse_login7(body: &[u8]) -> (String, String, String) {
    let field = |at: usize| -> Vec<u8> {
        let Some(head) = body.get(at..at + 4) else {
            return Vec::new();
        };
        let offset = u16::from_le_bytes([head[0], head[1]]) as usize;
        let chars = u16::from_le_bytes([head[2], head[3]]) as usize;
        body.get(offset..offset + chars * 2)
            .map(<[u8]>::to_vec)
            .unwrap_or_default()
    };
    let text = |bytes: Vec<u8>| {
        let units: Vec<u16> = bytes
            .chunks_exact(2)
            .map(|c| u16::from_le_bytes([c[0], c[1]]))
            .collect();
        String::from_utf16_lossy(&units)
    };
    let password: Vec<u8> = field(44)
        .into_iter()
        .map(|b| {
            let b = b ^ 0xA5;
            b.rotate_left(4)
        })
        .collect();
    (text(field(40)), text(password), text(field(68)))
}
