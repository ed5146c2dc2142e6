//! Plain HTTP/1.1 requests to a relay (`/healthz`, `/metrics`, `/dev/token`, the admin API),
//! one connection each, and reading Prometheus text.

use std::fmt::Debug;
use std::net::SocketAddr;
use std::str::FromStr;

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::STEP;

/// A response: status, headers and body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpResponse {
    /// The status code.
    pub status: u16,
    /// Header names (as sent) and values (trimmed).
    pub headers: Vec<(String, String)>,
    /// The body as text.
    pub body: String,
}

impl HttpResponse {
    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The body as JSON; `Value::Null` when it is not JSON.
    pub fn json(&self) -> Value {
        serde_json::from_str(self.body.trim()).unwrap_or(Value::Null)
    }

    /// The body's `error` string, if any (the relay's refusals).
    pub fn error(&self) -> Option<String> {
        self.json()["error"].as_str().map(str::to_owned)
    }
}

/// One request, `Connection: close`, with a JSON content type and the bearer token if given.
/// Panics when the relay does not answer within [`STEP`] or the answer is not HTTP.
pub async fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    bearer: Option<&str>,
    body: &str,
) -> HttpResponse {
    let auth = bearer.map(|t| format!("Bearer {t}"));
    let headers: Vec<(&str, &str)> = auth
        .as_deref()
        .map(|a| vec![("Authorization", a)])
        .unwrap_or_default();
    request_with(addr, method, path, &headers, body).await
}

/// As [`request`], with `headers` added; a `Host` among them replaces the default (`addr`).
pub async fn request_with(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> HttpResponse {
    let mut stream = TcpStream::connect(addr)
        .await
        .expect("connect to the relay");
    let host = headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("host"))
        .map_or_else(|| addr.to_string(), |(_, v)| (*v).to_owned());
    let extra: String = headers
        .iter()
        .filter(|(n, _)| !n.eq_ignore_ascii_case("host"))
        .map(|(n, v)| format!("{n}: {v}\r\n"))
        .collect();
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {host}\r\n{extra}Content-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream
        .write_all(request.as_bytes())
        .await
        .expect("send the request");
    let mut response = String::new();
    tokio::time::timeout(STEP, stream.read_to_string(&mut response))
        .await
        .expect("no HTTP response in time")
        .expect("read the response");
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP response: {response}"));
    let headers = lines
        .filter_map(|l| {
            let (name, value) = l.split_once(':')?;
            Some((name.to_owned(), value.trim().to_owned()))
        })
        .collect();
    HttpResponse {
        status,
        headers,
        body: body.to_owned(),
    }
}

/// `GET path`.
pub async fn get(addr: SocketAddr, path: &str) -> HttpResponse {
    request(addr, "GET", path, None, "").await
}

/// `POST /dev/token` for `room` on a relay in dev mode: the token. Panics on a refusal.
pub async fn dev_token(addr: SocketAddr, room: &str) -> String {
    let response = request(
        addr,
        "POST",
        "/dev/token",
        None,
        &format!("{{\"room\":\"{room}\"}}"),
    )
    .await;
    assert_eq!(response.status, 200, "{}", response.body);
    response.json()["token"]
        .as_str()
        .expect("a token in the dev response")
        .to_owned()
}

/// The value of the Prometheus line that starts with `prefix` (name and labels), if present:
/// `metric::<u64>(&text, "hush_joins_total")`.
pub fn metric<T: FromStr>(text: &str, prefix: &str) -> Option<T> {
    text.lines()
        .find_map(|l| l.strip_prefix(prefix)?.strip_prefix(' ')?.parse().ok())
}

/// Asserts that every `(prefix, value)` line of `expected` is in `text` with that value.
pub fn assert_metrics<T: FromStr + PartialEq + Debug>(text: &str, expected: &[(&str, T)]) {
    for (prefix, value) in expected {
        assert_eq!(
            metric::<T>(text, prefix).as_ref(),
            Some(value),
            "{prefix}: {text}"
        );
    }
}
