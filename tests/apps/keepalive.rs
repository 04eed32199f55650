//! A test app that behaves like a real web app behind the router, where busybox `httpd`
//! does not: HTTP/1.1 keep-alive, a delay per request, a slow streaming response, request
//! bodies, and a graceful SIGTERM (stop accepting, finish what is in flight, close idle
//! connections, exit). The e2e tests compile it with `rustc` alone (the standard library
//! and no crates, linked with `crt-static`) into an image built offline on busybox.
//!
//! Usage: `keepalive BODY_FILE` on `$PORT` (8080). Every response carries `X-Body` (the
//! first line of BODY_FILE: which release answered) and, once SIGTERM arrived,
//! `X-Stopping: 1`.
//! - `GET /` answers BODY_FILE (500 when `$BROKEN` is set: a release that never gets healthy);
//! - `GET /delay?ms=N` answers after N ms;
//! - `GET /fail` answers 503;
//! - `POST /…` reads the body and answers its length;
//! - `GET /stream?chunks=N&ms=M` sends N chunks, one every M ms;
//! - `GET /ws` is a websocket (RFC 6455) that echoes each text or binary message prefixed
//!   with `X-Body`'s line and `: `, answers pings and closes; on SIGTERM it sends a close
//!   frame with code 1001 (going away).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

static STOPPING: AtomicBool = AtomicBool::new(false);

extern "C" fn on_sigterm(_: i32) {
    STOPPING.store(true, Ordering::SeqCst);
}

unsafe extern "C" {
    fn signal(signum: i32, handler: extern "C" fn(i32)) -> usize;
}

const SIGTERM: i32 = 15;

fn main() {
    let body_file = std::env::args().nth(1).unwrap_or_else(|| "/body.txt".to_owned());
    let body = std::fs::read(&body_file).unwrap_or_else(|_| b"ok\n".to_vec());
    let broken = std::env::var_os("BROKEN").is_some();
    let port = std::env::var("PORT").unwrap_or_else(|_| "8080".to_owned());
    // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
    unsafe { signal(SIGTERM, on_sigterm) };
    let listener = TcpListener::bind(format!("0.0.0.0:{port}")).expect("bind");
    listener.set_nonblocking(true).expect("nonblocking");
    let app = Arc::new(App { body, broken, open: AtomicUsize::new(0) });
    eprintln!("keepalive listening on {port}");
    while !STOPPING.load(Ordering::SeqCst) {
        match listener.accept() {
            Ok((stream, _)) => {
                let app = app.clone();
                app.open.fetch_add(1, Ordering::SeqCst);
                thread::spawn(move || {
                    let _ = serve(&app, stream);
                    app.open.fetch_sub(1, Ordering::SeqCst);
                });
            }
            Err(_) => thread::sleep(Duration::from_millis(2)),
        }
    }
    // Stop accepting; let the connections finish what they are doing.
    drop(listener);
    eprintln!("keepalive: SIGTERM, finishing {} connection(s)", app.open.load(Ordering::SeqCst));
    let deadline = Instant::now() + Duration::from_secs(30);
    while app.open.load(Ordering::SeqCst) > 0 && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(5));
    }
    eprintln!("keepalive: stopped");
}

struct App {
    body: Vec<u8>,
    broken: bool,
    open: AtomicUsize,
}

/// Serves one connection's requests until the client closes it, or SIGTERM arrived
/// while it was idle.
fn serve(app: &App, stream: TcpStream) -> std::io::Result<()> {
    stream.set_nodelay(true)?;
    // Short reads, so an idle connection notices SIGTERM.
    stream.set_read_timeout(Some(Duration::from_millis(20)))?;
    let mut writer = stream.try_clone()?;
    let mut reader = BufReader::new(stream);
    loop {
        let Some(head) = read_head(&mut reader)? else { return Ok(()) };
        let mut lines = head.lines();
        let request_line = lines.next().unwrap_or_default().to_owned();
        let mut parts = request_line.split_whitespace();
        let (method, target) = (parts.next().unwrap_or_default(), parts.next().unwrap_or("/"));
        let mut length = 0usize;
        let mut close = false;
        let mut websocket_key = None;
        for line in lines {
            let Some((name, value)) = line.split_once(':') else { continue };
            let (name, value) = (name.trim().to_ascii_lowercase(), value.trim());
            if name == "content-length" {
                length = value.parse().unwrap_or(0);
            } else if name == "connection" && value.eq_ignore_ascii_case("close") {
                close = true;
            } else if name == "sec-websocket-key" {
                websocket_key = Some(value.to_owned());
            }
        }
        let mut body = vec![0u8; length];
        read_exact_patiently(&mut reader, &mut body)?;
        let (path, query) = target.split_once('?').unwrap_or((target, ""));
        let param = |key: &str| -> u64 {
            query.split('&').filter_map(|kv| kv.split_once('=')).find(|(k, _)| *k == key).and_then(|(_, v)| v.parse().ok()).unwrap_or(0)
        };
        if let (Some(key), "GET", "/ws") = (&websocket_key, method, path) {
            return websocket(app, &mut reader, &mut writer, key);
        }
        if method == "GET" && path == "/stream" {
            stream_chunks(app, &mut writer, param("chunks"), param("ms"))?;
        } else {
            let (status, answer) = match (method, path) {
                ("GET", "/") if app.broken => ("500 Internal Server Error", b"broken\n".to_vec()),
                ("GET", "/fail") => ("503 Service Unavailable", b"failing on purpose\n".to_vec()),
                ("GET", "/delay") => {
                    thread::sleep(Duration::from_millis(param("ms")));
                    ("200 OK", app.body.clone())
                }
                ("POST", _) | ("PUT", _) => ("200 OK", format!("got {} bytes\n", body.len()).into_bytes()),
                ("GET", _) | ("HEAD", _) => ("200 OK", app.body.clone()),
                _ => ("405 Method Not Allowed", b"no\n".to_vec()),
            };
            let stopping = STOPPING.load(Ordering::SeqCst);
            let mut response = format!(
                "HTTP/1.1 {status}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nX-Body: {}\r\n",
                answer.len(),
                first_line(&app.body)
            )
            .into_bytes();
            if stopping {
                response.extend_from_slice(b"X-Stopping: 1\r\nConnection: close\r\n");
            }
            response.extend_from_slice(b"\r\n");
            if method != "HEAD" {
                response.extend_from_slice(&answer);
            }
            writer.write_all(&response)?;
            if stopping {
                return Ok(());
            }
        }
        if close {
            return Ok(());
        }
    }
}

fn first_line(body: &[u8]) -> String {
    String::from_utf8_lossy(body).lines().next().unwrap_or_default().to_owned()
}

/// Reads a request's head (up to the blank line); `None` when the client closed the
/// connection, or SIGTERM arrived while no request had begun. A line cut by the short
/// read timeout is completed by the next read, never taken for a whole one.
fn read_head(reader: &mut BufReader<TcpStream>) -> std::io::Result<Option<String>> {
    let mut head = String::new();
    let mut line = String::new();
    loop {
        match reader.read_line(&mut line) {
            Ok(0) => return Ok(None),
            Ok(_) if !line.ends_with('\n') => {}
            Ok(_) => {
                let blank = line == "\r\n" || line == "\n";
                head.push_str(&line);
                line.clear();
                if blank {
                    if head.trim().is_empty() {
                        head.clear();
                        continue;
                    }
                    return Ok(Some(head));
                }
            }
            // `read_line` keeps what it read in `line` on a timeout.
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {
                if head.is_empty() && line.is_empty() && STOPPING.load(Ordering::SeqCst) {
                    return Ok(None);
                }
            }
            Err(e) => return Err(e),
        }
    }
}

fn read_exact_patiently(reader: &mut BufReader<TcpStream>, mut buf: &mut [u8]) -> std::io::Result<()> {
    while !buf.is_empty() {
        match reader.read(buf) {
            Ok(0) => return Err(std::io::ErrorKind::UnexpectedEof.into()),
            Ok(n) => buf = &mut buf[n..],
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

fn stream_chunks(app: &App, writer: &mut TcpStream, chunks: u64, ms: u64) -> std::io::Result<()> {
    let head = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\nX-Body: {}\r\n\r\n",
        first_line(&app.body)
    );
    writer.write_all(head.as_bytes())?;
    for n in 0..chunks {
        let chunk = format!("chunk {n}\n");
        writer.write_all(format!("{:x}\r\n{chunk}\r\n", chunk.len()).as_bytes())?;
        writer.flush()?;
        thread::sleep(Duration::from_millis(ms));
    }
    writer.write_all(b"0\r\n\r\n")
}

/// One websocket connection after its handshake: echoes messages until the client closes
/// it, or closes it itself (1001) once SIGTERM arrived.
fn websocket(app: &App, reader: &mut BufReader<TcpStream>, writer: &mut TcpStream, key: &str) -> std::io::Result<()> {
    let accept = base64(&sha1(format!("{key}258EAFA5-E914-47DA-95CA-C5AB0DC85B11").as_bytes()));
    let head = format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Accept: {accept}\r\nX-Body: {}\r\n\r\n",
        first_line(&app.body)
    );
    writer.write_all(head.as_bytes())?;
    loop {
        let mut head = [0u8; 2];
        match reader.read(&mut head[..1]) {
            Ok(0) => return Ok(()),
            Ok(_) => {}
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {
                if STOPPING.load(Ordering::SeqCst) {
                    let mut close = 1001u16.to_be_bytes().to_vec();
                    close.extend_from_slice(b"going away");
                    return write_frame(writer, 0x8, &close);
                }
                continue;
            }
            Err(e) => return Err(e),
        }
        read_exact_patiently(reader, &mut head[1..])?;
        let opcode = head[0] & 0x0f;
        let mut len = u64::from(head[1] & 0x7f);
        if len == 126 {
            let mut b = [0u8; 2];
            read_exact_patiently(reader, &mut b)?;
            len = u64::from(u16::from_be_bytes(b));
        } else if len == 127 {
            let mut b = [0u8; 8];
            read_exact_patiently(reader, &mut b)?;
            len = u64::from_be_bytes(b);
        }
        if len > 1 << 20 {
            return Err(std::io::ErrorKind::InvalidData.into());
        }
        let mut mask = [0u8; 4];
        if head[1] & 0x80 != 0 {
            read_exact_patiently(reader, &mut mask)?;
        }
        let mut payload = vec![0u8; len as usize];
        read_exact_patiently(reader, &mut payload)?;
        for (i, b) in payload.iter_mut().enumerate() {
            *b ^= mask[i % 4];
        }
        match opcode {
            0x8 => return write_frame(writer, 0x8, &payload),
            0x9 => write_frame(writer, 0xA, &payload)?,
            0x1 | 0x2 => {
                let echo = [first_line(&app.body).as_bytes(), b": ", &payload].concat();
                write_frame(writer, opcode, &echo)?;
            }
            _ => {}
        }
    }
}

/// A final, unmasked frame (as a server sends them).
fn write_frame(writer: &mut TcpStream, opcode: u8, payload: &[u8]) -> std::io::Result<()> {
    let mut frame = vec![0x80 | opcode];
    match payload.len() {
        n @ 0..=125 => frame.push(n as u8),
        n @ 126..=65535 => {
            frame.push(126);
            frame.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            frame.push(127);
            frame.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    frame.extend_from_slice(payload);
    writer.write_all(&frame)
}

/// SHA-1 (FIPS 180-4), which the websocket handshake needs; this app has no crates.
fn sha1(data: &[u8]) -> [u8; 20] {
    let mut h: [u32; 5] = [0x67452301, 0xEFCDAB89, 0x98BADCFE, 0x10325476, 0xC3D2E1F0];
    let mut message = data.to_vec();
    message.push(0x80);
    while message.len() % 64 != 56 {
        message.push(0);
    }
    message.extend_from_slice(&((data.len() as u64) * 8).to_be_bytes());
    for block in message.chunks(64) {
        let mut w = [0u32; 80];
        for i in 0..16 {
            w[i] = u32::from_be_bytes([block[4 * i], block[4 * i + 1], block[4 * i + 2], block[4 * i + 3]]);
        }
        for i in 16..80 {
            w[i] = (w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16]).rotate_left(1);
        }
        let [mut a, mut b, mut c, mut d, mut e] = h;
        for (i, wi) in w.iter().enumerate() {
            let (f, k) = match i {
                0..=19 => ((b & c) | (!b & d), 0x5A827999),
                20..=39 => (b ^ c ^ d, 0x6ED9EBA1),
                40..=59 => ((b & c) | (b & d) | (c & d), 0x8F1BBCDC),
                _ => (b ^ c ^ d, 0xCA62C1D6),
            };
            let t = a.rotate_left(5).wrapping_add(f).wrapping_add(e).wrapping_add(k).wrapping_add(*wi);
            e = d;
            d = c;
            c = b.rotate_left(30);
            b = a;
            a = t;
        }
        for (hi, v) in h.iter_mut().zip([a, b, c, d, e]) {
            *hi = hi.wrapping_add(v);
        }
    }
    let mut out = [0u8; 20];
    for (i, v) in h.iter().enumerate() {
        out[4 * i..4 * i + 4].copy_from_slice(&v.to_be_bytes());
    }
    out
}

fn base64(data: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in data.chunks(3) {
        let n = (u32::from(chunk[0]) << 16)
            | (u32::from(*chunk.get(1).unwrap_or(&0)) << 8)
            | u32::from(*chunk.get(2).unwrap_or(&0));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i)) as usize & 63] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}
