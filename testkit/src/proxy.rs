//! A fault-injecting HTTP proxy on loopback, in front of the test S3 server.
//!
//! Each request is read whole (head and `Content-Length` body), matched against
//! the rules in order, and then either forwarded on a fresh upstream connection
//! or answered with a fault. A rule fires `times` times, then is spent.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// What to do with a matching request.
#[derive(Clone, Copy, Debug)]
pub enum Fault {
    /// Answer with this status; the server never sees the request.
    Status(u16),
    /// Forward the request, then answer 500 instead of the server's reply: the
    /// request took effect but the client cannot know.
    LoseResponse,
    /// Hold the request without answering until the proxy is dropped.
    Hang,
    /// Forward the request without this header (e.g. `if-none-match`: a
    /// server that ignores conditional writes).
    DropHeader(&'static str),
}

struct Rule {
    method: String,
    path_contains: String,
    /// Empty: any body.
    body_contains: String,
    fault: Fault,
    times: usize,
}

#[derive(Default)]
struct State {
    rules: Mutex<Vec<Rule>>,
    injected: AtomicUsize,
    requests: Mutex<Vec<String>>,
    authorizations: Mutex<Vec<String>>,
    stop: AtomicBool,
}

pub struct FaultProxy {
    pub endpoint: String,
    state: Arc<State>,
}

impl FaultProxy {
    /// Starts a proxy to `upstream` (`http://127.0.0.1:PORT`).
    pub fn start(upstream: &str) -> FaultProxy {
        let upstream = upstream
            .strip_prefix("http://")
            .expect("http upstream")
            .to_owned();
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind proxy");
        let endpoint = format!("http://{}", listener.local_addr().expect("addr"));
        let state = Arc::new(State::default());
        let shared = Arc::clone(&state);
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { continue };
                if shared.stop.load(Ordering::SeqCst) {
                    break;
                }
                let (state, upstream) = (Arc::clone(&shared), upstream.clone());
                std::thread::spawn(move || serve(client, &upstream, &state));
            }
        });
        FaultProxy { endpoint, state }
    }

    /// Injects `fault` into the next `times` requests with this method whose
    /// path and query contain `path_contains`.
    pub fn inject(&self, method: &str, path_contains: &str, fault: Fault, times: usize) {
        self.inject_if_body(method, path_contains, "", fault, times);
    }

    /// As [`FaultProxy::inject`], for requests whose body also contains
    /// `body_contains` (e.g. a bulk delete, `POST ?delete`, naming a key).
    pub fn inject_if_body(
        &self,
        method: &str,
        path_contains: &str,
        body_contains: &str,
        fault: Fault,
        times: usize,
    ) {
        self.state.rules.lock().expect("rules").push(Rule {
            method: method.to_owned(),
            path_contains: path_contains.to_owned(),
            body_contains: body_contains.to_owned(),
            fault,
            times,
        });
    }

    /// Faults injected so far.
    pub fn injected(&self) -> usize {
        self.state.injected.load(Ordering::SeqCst)
    }

    /// Every request line seen (`METHOD target`), in arrival order.
    pub fn requests(&self) -> Vec<String> {
        self.state.requests.lock().expect("requests").clone()
    }

    /// Every request's `Authorization` header (empty when it had none), in
    /// arrival order: which key signed it (`Credential=KEY/…`).
    pub fn authorizations(&self) -> Vec<String> {
        self.state
            .authorizations
            .lock()
            .expect("authorizations")
            .clone()
    }

    /// Drops all rules.
    pub fn clear(&self) {
        self.state.rules.lock().expect("rules").clear();
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.state.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop.
        let _ = TcpStream::connect(self.endpoint.trim_start_matches("http://"));
    }
}

/// One client connection: requests one after another (keep-alive).
fn serve(client: TcpStream, upstream: &str, state: &State) {
    let _ = client.set_read_timeout(Some(Duration::from_secs(60)));
    let mut reader = BufReader::new(client.try_clone().expect("clone"));
    let mut client = client;
    loop {
        let Some((line, head, body)) = read_request(&mut reader) else {
            return;
        };
        state.requests.lock().expect("requests").push(line.clone());
        let authorization = String::from_utf8_lossy(&head)
            .lines()
            .find_map(|l| {
                l.split_once(':')
                    .filter(|(n, _)| n.trim().eq_ignore_ascii_case("authorization"))
                    .map(|(_, v)| v.trim().to_owned())
            })
            .unwrap_or_default();
        state
            .authorizations
            .lock()
            .expect("authorizations")
            .push(authorization);
        let mut parts = line.split(' ');
        let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
        let fault = {
            let mut rules = state.rules.lock().expect("rules");
            let text = String::from_utf8_lossy(&body);
            let hit = rules.iter_mut().find(|r| {
                r.times > 0
                    && r.method == method
                    && target.contains(&r.path_contains)
                    && text.contains(&r.body_contains)
            });
            hit.map(|r| {
                r.times -= 1;
                r.fault
            })
        };
        if fault.is_some() {
            state.injected.fetch_add(1, Ordering::SeqCst);
        }
        let reply = match fault {
            Some(Fault::Status(code)) => status_reply(code),
            Some(Fault::Hang) => {
                while !state.stop.load(Ordering::SeqCst) {
                    std::thread::sleep(Duration::from_millis(50));
                }
                return;
            }
            Some(Fault::LoseResponse) => {
                let _ = forward(upstream, &head, &body);
                status_reply(500)
            }
            Some(Fault::DropHeader(name)) => {
                let kept: Vec<u8> = head
                    .split_inclusive(|&b| b == b'\n')
                    .filter(|line| {
                        let text = String::from_utf8_lossy(line);
                        !text
                            .split_once(':')
                            .is_some_and(|(n, _)| n.trim().eq_ignore_ascii_case(name))
                    })
                    .flatten()
                    .copied()
                    .collect();
                forward(upstream, &kept, &body).unwrap_or_else(|| status_reply(502))
            }
            None => match forward(upstream, &head, &body) {
                Some(reply) => reply,
                None => status_reply(502),
            },
        };
        if client.write_all(&reply).is_err() {
            return;
        }
    }
}

fn status_reply(code: u16) -> Vec<u8> {
    let body = format!("<Error><Code>Injected</Code><Message>fault {code}</Message></Error>");
    format!(
        "HTTP/1.1 {code} Injected\r\nContent-Type: application/xml\r\nContent-Length: {}\r\nRetry-After: 0\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// Reads one request: its first line, the raw head and the body.
fn read_request(reader: &mut impl BufRead) -> Option<(String, Vec<u8>, Vec<u8>)> {
    let mut head = Vec::new();
    let mut length = 0usize;
    let mut first = String::new();
    loop {
        let mut line = Vec::new();
        if reader.read_until(b'\n', &mut line).ok()? == 0 {
            return None;
        }
        let text = String::from_utf8_lossy(&line).trim_end().to_owned();
        if first.is_empty() {
            first.clone_from(&text);
        }
        if let Some((name, value)) = text.split_once(':')
            && name.eq_ignore_ascii_case("content-length")
        {
            length = value.trim().parse().ok()?;
        }
        head.extend_from_slice(&line);
        if text.is_empty() {
            break;
        }
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body).ok()?;
    Some((first, head, body))
}

/// Sends one request upstream on a fresh connection and reads the whole reply
/// (the upstream closes after it: the write side is shut down).
fn forward(upstream: &str, head: &[u8], body: &[u8]) -> Option<Vec<u8>> {
    let mut conn = TcpStream::connect(upstream).ok()?;
    conn.write_all(head).ok()?;
    conn.write_all(body).ok()?;
    conn.shutdown(Shutdown::Write).ok()?;
    let mut reply = Vec::new();
    conn.read_to_end(&mut reply).ok()?;
    Some(reply)
}
