//! The request client of `sightline gateway-bench`'s concurrency-1 and open-loop loads: one
//! prepared HTTP/1.1 request written whole onto a kept-alive connection, and its response read
//! back, with no request building, URL parsing, header maps or connection task in between.
//!
//! The load generator shares the machine with the mock provider and the proxy it measures, so
//! every microsecond it spends per request is taken from them; a general-purpose client spends
//! several times what this one does. Responses are read by `Content-Length` or chunked
//! encoding, and a connection goes back to the pool only after its response was read whole.

use std::sync::Mutex;
use std::time::Instant;

use anyhow::{bail, Context};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// One request, sent again and again to one `host:port`.
pub struct Target {
    host: String,
    request: Vec<u8>,
    idle: Mutex<Vec<TcpStream>>,
}

/// How a response's body is delimited.
enum Framing {
    Length(usize),
    Chunked,
}

impl Target {
    /// A `POST` of `body` (JSON) to `url` (`http://host:port/path`), with `headers`.
    pub fn post_json(url: &str, body: &str, headers: &[(&str, &str)]) -> anyhow::Result<Self> {
        let rest = url
            .strip_prefix("http://")
            .with_context(|| format!("{url}: only http:// URLs are supported"))?;
        let (host, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        let mut request = format!(
            "POST {path} HTTP/1.1\r\nhost: {host}\r\ncontent-type: application/json\r\n\
             content-length: {}\r\n",
            body.len()
        );
        for (name, value) in headers {
            request.push_str(&format!("{name}: {value}\r\n"));
        }
        request.push_str("\r\n");
        request.push_str(body);
        Ok(Self {
            host: host.to_string(),
            request: request.into_bytes(),
            idle: Mutex::new(Vec::new()),
        })
    }

    /// Sends the request and reads the whole response; the round trip in nanoseconds, or why
    /// it failed (a status other than 2xx included).
    pub async fn send(&self) -> Result<u64, String> {
        let start = Instant::now();
        let idle = self.idle.lock().ok().and_then(|mut idle| idle.pop());
        let mut conn = match idle {
            Some(c) => c,
            None => {
                let c = TcpStream::connect(&self.host)
                    .await
                    .map_err(|e| format!("connect {}: {e}", self.host))?;
                c.set_nodelay(true).map_err(|e| e.to_string())?;
                c
            }
        };
        let status = exchange(&mut conn, &self.request)
            .await
            .map_err(|e| e.to_string())?;
        let elapsed = start.elapsed().as_nanos() as u64;
        if let Ok(mut idle) = self.idle.lock() {
            idle.push(conn);
        }
        if !(200..300).contains(&status) {
            return Err(format!("status {status}"));
        }
        Ok(elapsed)
    }
}

/// Writes `request` and reads one whole response; its status.
async fn exchange(conn: &mut TcpStream, request: &[u8]) -> anyhow::Result<u16> {
    conn.write_all(request).await?;
    let mut buf: Vec<u8> = Vec::with_capacity(4096);
    let (status, head_len, framing) = loop {
        read_more(conn, &mut buf).await?;
        let mut headers = [httparse::EMPTY_HEADER; 64];
        let mut response = httparse::Response::new(&mut headers);
        if let httparse::Status::Complete(head_len) = response.parse(&buf)? {
            let status = response.code.unwrap_or(0);
            let mut framing = None;
            for h in response.headers.iter() {
                if h.name.eq_ignore_ascii_case("content-length") {
                    let n = std::str::from_utf8(h.value)?.trim().parse()?;
                    framing = Some(Framing::Length(n));
                } else if h.name.eq_ignore_ascii_case("transfer-encoding")
                    && h.value.eq_ignore_ascii_case(b"chunked")
                {
                    framing = Some(Framing::Chunked);
                }
            }
            match framing {
                Some(f) => break (status, head_len, f),
                None => bail!("a response without Content-Length or chunked encoding"),
            }
        }
    };
    match framing {
        Framing::Length(n) => {
            while buf.len() < head_len + n {
                read_more(conn, &mut buf).await?;
            }
        }
        Framing::Chunked => {
            let mut at = head_len;
            loop {
                // `<hex size>[;ext]\r\n<data>\r\n`, until a chunk of size 0 and its blank line.
                let line_end = loop {
                    if let Some(i) = buf[at..].windows(2).position(|w| w == b"\r\n") {
                        break at + i;
                    }
                    read_more(conn, &mut buf).await?;
                };
                let line = std::str::from_utf8(&buf[at..line_end])?;
                let size = usize::from_str_radix(line.split(';').next().unwrap_or("").trim(), 16)?;
                let end = line_end + 2 + size + 2;
                while buf.len() < end {
                    read_more(conn, &mut buf).await?;
                }
                at = end;
                if size == 0 {
                    break;
                }
            }
        }
    }
    Ok(status)
}

async fn read_more(conn: &mut TcpStream, buf: &mut Vec<u8>) -> anyhow::Result<()> {
    if buf.capacity() - buf.len() < 1024 {
        buf.reserve(8192);
    }
    if conn.read_buf(buf).await? == 0 {
        bail!("the connection closed mid-response");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::net::TcpListener;

    /// A server that answers each request on a connection with the next of `answers`.
    async fn serve(answers: Vec<&'static [u8]>) -> String {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut conn, _) = listener.accept().await.unwrap();
            let mut buf = vec![0u8; 4096];
            for answer in answers {
                let _ = conn.read(&mut buf).await.unwrap();
                // Split, as a network may.
                let (a, b) = answer.split_at(answer.len() / 2);
                conn.write_all(a).await.unwrap();
                conn.flush().await.unwrap();
                tokio::time::sleep(std::time::Duration::from_millis(5)).await;
                conn.write_all(b).await.unwrap();
            }
        });
        format!("http://{addr}/v1/chat/completions")
    }

    #[tokio::test]
    async fn responses_are_read_whole_and_connections_kept() {
        let url = serve(vec![
            b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nhello",
            b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n2;x=y\r\nde\r\n0\r\n\r\n",
            b"HTTP/1.1 429 Too Many Requests\r\ncontent-length: 2\r\n\r\n{}",
        ])
        .await;
        let target = Target::post_json(&url, "{}", &[("authorization", "Bearer k")]).unwrap();
        assert!(target.send().await.is_ok());
        assert!(target.send().await.is_ok());
        assert_eq!(target.send().await.unwrap_err(), "status 429");
        // One connection served all three.
        assert_eq!(target.idle.lock().unwrap().len(), 1);
    }

    #[test]
    fn the_request_is_prepared_once() {
        let t = Target::post_json("http://127.0.0.1:9/a/b", "{\"x\":1}", &[("k", "v")]).unwrap();
        let text = String::from_utf8(t.request).unwrap();
        assert!(text.starts_with("POST /a/b HTTP/1.1\r\nhost: 127.0.0.1:9\r\n"));
        assert!(text.contains("content-length: 7\r\nk: v\r\n\r\n{\"x\":1}"));
        assert!(Target::post_json("https://x/y", "", &[]).is_err());
    }
}
