//! A real HTTP/1.1 server on loopback for tests, scripted per request, that can
//! also misbehave on purpose: cut a body short, stall, answer 500.
//!
//! It binds port 0, serves each connection on its own thread (one request per
//! connection, `Connection: close`) and stops when dropped.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

/// One request as the server saw it.
#[derive(Clone, Debug)]
pub struct Request {
    pub method: String,
    pub path: String,
    pub headers: Vec<(String, String)>,
    /// The body, when the request announced one with `Content-Length`.
    pub body: Vec<u8>,
}

impl Request {
    /// The value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// How to answer.
pub enum Reply {
    /// A whole response.
    Full {
        status: u16,
        headers: Vec<(String, String)>,
        body: Vec<u8>,
    },
    /// Announces `body.len()` bytes, sends `sent` of them, closes the connection.
    Truncated { body: Vec<u8>, sent: usize },
    /// Sends the head (and `prefix` of the body), then sends nothing for `stall`.
    Stall { prefix: Vec<u8>, stall: Duration },
    /// Streams `len` bytes from `chunk` repeated, with Content-Length.
    Stream { chunk: Arc<Vec<u8>>, len: u64 },
    /// Sends `body[..split]`, pauses for `pause`, then sends the rest.
    Paused {
        body: Vec<u8>,
        split: usize,
        pause: Duration,
    },
}

impl Reply {
    /// `200 OK` with `body` and extra headers.
    pub fn ok(body: impl Into<Vec<u8>>, headers: &[(&str, &str)]) -> Reply {
        Reply::Full {
            status: 200,
            headers: headers
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            body: body.into(),
        }
    }

    /// A response with no body.
    pub fn status(status: u16) -> Reply {
        Reply::Full {
            status,
            headers: Vec::new(),
            body: Vec::new(),
        }
    }

    /// Whether the response sends any body bytes (what [`Server::bodies_sent`]
    /// counts).
    fn has_body(&self) -> bool {
        match self {
            Reply::Full { body, .. } => !body.is_empty(),
            _ => true,
        }
    }
}

type Handler = dyn Fn(&Request, usize) -> Reply + Send + Sync;

pub struct Server {
    addr: SocketAddr,
    requests: Arc<Mutex<Vec<Request>>>,
    bodies: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
}

impl Server {
    /// Starts a server; `handler` gets each request and how many came before it.
    pub fn start(handler: impl Fn(&Request, usize) -> Reply + Send + Sync + 'static) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind loopback");
        let addr = listener.local_addr().expect("local addr");
        listener.set_nonblocking(true).expect("nonblocking");
        let requests = Arc::new(Mutex::new(Vec::new()));
        let bodies = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let handler: Arc<Handler> = Arc::new(handler);
        {
            let (requests, bodies, stop) = (requests.clone(), bodies.clone(), stop.clone());
            thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    match listener.accept() {
                        Ok((stream, _)) => {
                            let (handler, requests, bodies) =
                                (handler.clone(), requests.clone(), bodies.clone());
                            thread::spawn(move || serve(stream, &*handler, &requests, &bodies));
                        }
                        Err(_) => thread::sleep(Duration::from_millis(5)),
                    }
                }
            });
        }
        Server {
            addr,
            requests,
            bodies,
            stop,
        }
    }

    /// `http://127.0.0.1:PORT{path}`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Every request so far.
    pub fn requests(&self) -> Vec<Request> {
        self.requests.lock().expect("not poisoned").clone()
    }

    /// How many responses carried a body (of any length > 0).
    pub fn bodies_sent(&self) -> usize {
        self.bodies.load(Ordering::SeqCst)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn serve(
    stream: TcpStream,
    handler: &Handler,
    requests: &Mutex<Vec<Request>>,
    bodies: &AtomicUsize,
) {
    stream.set_nonblocking(false).expect("blocking");
    let mut reader = BufReader::new(stream.try_clone().expect("clone"));
    let Some(request) = read_request(&mut reader) else {
        return;
    };
    let n = {
        let mut all = requests.lock().expect("not poisoned");
        all.push(request.clone());
        all.len() - 1
    };
    let mut out = stream;
    let reply = handler(&request, n);
    if reply.has_body() {
        bodies.fetch_add(1, Ordering::SeqCst);
    }
    // Write errors mean the client went away, which some tests cause on purpose.
    let _ = write_reply(&mut out, reply);
    let _ = out.flush();
    // Drain what the client still sends so close() does not reset the connection.
    let _ = out.shutdown(std::net::Shutdown::Write);
    let mut sink = [0u8; 1024];
    let _ = out.set_read_timeout(Some(Duration::from_millis(200)));
    while matches!(reader.read(&mut sink), Ok(n) if n > 0) {}
}

/// Reads the request line, the headers and a `Content-Length` body (up to
/// 1 MiB); `None` when the client closed before sending anything.
fn read_request(reader: &mut impl BufRead) -> Option<Request> {
    let mut line = String::new();
    if reader.read_line(&mut line).unwrap_or(0) == 0 {
        return None;
    }
    let mut parts = line.split_whitespace();
    let method = parts.next().unwrap_or_default().to_owned();
    let path = parts.next().unwrap_or_default().to_owned();
    let mut headers = Vec::new();
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h).unwrap_or(0) == 0 || h == "\r\n" || h == "\n" {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            headers.push((k.trim().to_owned(), v.trim().to_owned()));
        }
    }
    let length: usize = headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0; length.min(1 << 20)];
    if reader.read_exact(&mut body).is_err() {
        body.clear();
    }
    Some(Request {
        method,
        path,
        headers,
        body,
    })
}

/// A response head announcing `len` body bytes, closing the connection after.
fn head(status: u16, headers: &[(String, String)], len: u64) -> Vec<u8> {
    let mut h = format!("HTTP/1.1 {status} {}\r\n", reason(status));
    for (k, v) in headers {
        h.push_str(&format!("{k}: {v}\r\n"));
    }
    h.push_str(&format!(
        "Content-Length: {len}\r\nConnection: close\r\n\r\n"
    ));
    h.into_bytes()
}

/// Sends `reply`, misbehaving as it says.
fn write_reply(out: &mut TcpStream, reply: Reply) -> std::io::Result<()> {
    match reply {
        Reply::Full {
            status,
            headers,
            body,
        } => out
            .write_all(&head(status, &headers, body.len() as u64))
            .and_then(|()| out.write_all(&body)),
        Reply::Truncated { body, sent } => out
            .write_all(&head(200, &[], body.len() as u64))
            .and_then(|()| out.write_all(&body[..sent])),
        Reply::Stall { prefix, stall } => {
            let r = out
                .write_all(&head(200, &[], prefix.len() as u64 + 1_000_000))
                .and_then(|()| out.write_all(&prefix))
                .and_then(|()| out.flush());
            thread::sleep(stall);
            r
        }
        Reply::Paused { body, split, pause } => {
            let r = out
                .write_all(&head(200, &[], body.len() as u64))
                .and_then(|()| out.write_all(&body[..split]))
                .and_then(|()| out.flush());
            thread::sleep(pause);
            r.and_then(|()| out.write_all(&body[split..]))
        }
        Reply::Stream { chunk, len } => {
            let mut r = out.write_all(&head(200, &[], len));
            let mut left = len;
            while r.is_ok() && left > 0 {
                let n = left.min(chunk.len() as u64) as usize;
                r = out.write_all(&chunk[..n]);
                left -= n as u64;
            }
            r
        }
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        304 => "Not Modified",
        404 => "Not Found",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "Whatever",
    }
}
