//! The `/metrics` endpoint (`--metrics ADDR`, `[metrics] listen`): a small HTTP/1.1 server
//! on the run's async runtime. It answers `GET /metrics` with the Prometheus text format,
//! `GET /health` with `ok`, and closes every connection after one response: a scraper needs
//! no more, and there is no state to keep per client. Requests are bounded (8 KiB head,
//! 10 s to send it), so a slow or hostile client costs one task and nothing else.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::Registry;

const MAX_HEAD: usize = 8 * 1024;
const READ_TIMEOUT: Duration = Duration::from_secs(10);

/// A bound listening socket, made before the run starts so that a wrong or busy address is
/// an error at once, not after the input was read.
pub struct Listener {
    inner: std::net::TcpListener,
    addr: SocketAddr,
}

impl Listener {
    /// Binds `addr` (`HOST:PORT`; port 0 picks a free one).
    pub fn bind(addr: &str) -> Result<Listener> {
        let inner = std::net::TcpListener::bind(addr).with_context(|| {
            format!("metrics: cannot listen on {addr} (HOST:PORT, e.g. 127.0.0.1:9898)")
        })?;
        inner
            .set_nonblocking(true)
            .context("metrics: cannot set the socket non-blocking")?;
        let addr = inner.local_addr().context("metrics: no local address")?;
        Ok(Listener { inner, addr })
    }

    /// The address bound (the real port when 0 was asked for).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }
}

/// Serves `registry` on `listener` until the runtime ends. Call inside the runtime.
pub fn serve(listener: Listener, registry: Arc<Registry>) -> Result<()> {
    let listener = tokio::net::TcpListener::from_std(listener.inner)
        .context("metrics: cannot register the socket")?;
    tokio::spawn(async move {
        loop {
            let (conn, _) = match listener.accept().await {
                Ok(c) => c,
                // Out of file descriptors and the like: wait, do not spin.
                Err(_) => {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            let registry = Arc::clone(&registry);
            tokio::spawn(async move {
                let _ = answer(conn, &registry).await;
            });
        }
    });
    Ok(())
}

async fn answer(mut conn: tokio::net::TcpStream, registry: &Registry) -> std::io::Result<()> {
    let mut head = Vec::with_capacity(1024);
    let mut buf = [0u8; 1024];
    let complete = tokio::time::timeout(READ_TIMEOUT, async {
        loop {
            if head.windows(4).any(|w| w == b"\r\n\r\n") || head.windows(2).any(|w| w == b"\n\n") {
                return true;
            }
            if head.len() > MAX_HEAD {
                return false;
            }
            match conn.read(&mut buf).await {
                Ok(0) | Err(_) => return false,
                Ok(n) => head.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await
    .unwrap_or(false);
    let response = if complete {
        respond(&head, registry)
    } else if head.len() > MAX_HEAD {
        plain(
            431,
            "Request Header Fields Too Large",
            "request head too large\n",
        )
    } else {
        return Ok(());
    };
    conn.write_all(&response).await?;
    conn.shutdown().await
}

/// The response to a request head.
fn respond(head: &[u8], registry: &Registry) -> Vec<u8> {
    let line = head.split(|&b| b == b'\n').next().unwrap_or_default();
    let line = String::from_utf8_lossy(line);
    let mut parts = line.split_whitespace();
    let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let path = target.split('?').next().unwrap_or("");
    if method != "GET" && method != "HEAD" {
        return plain(405, "Method Not Allowed", "only GET and HEAD\n");
    }
    let mut r = match path {
        "/metrics" => http(
            200,
            "OK",
            "text/plain; version=0.0.4; charset=utf-8",
            registry.render().as_bytes(),
        ),
        "/health" | "/healthz" => plain(200, "OK", "ok\n"),
        "/" => plain(
            200,
            "OK",
            "logveil: metrics at /metrics, health at /health\n",
        ),
        _ => plain(404, "Not Found", "not found: try /metrics\n"),
    };
    if method == "HEAD" {
        let end = r
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .map_or(r.len(), |p| p + 4);
        r.truncate(end);
    }
    r
}

fn plain(code: u16, reason: &str, body: &str) -> Vec<u8> {
    http(code, reason, "text/plain; charset=utf-8", body.as_bytes())
}

fn http(code: u16, reason: &str, content_type: &str, body: &[u8]) -> Vec<u8> {
    let mut r = format!(
        "HTTP/1.1 {code} {reason}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    r.extend_from_slice(body);
    r
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::{Probes, SharedStats};

    fn registry() -> Registry {
        Registry::new(
            SharedStats::new(1),
            Probes::default(),
            vec!["r".into()],
            "stdin",
            "stdout",
        )
    }

    fn status(r: &[u8]) -> String {
        String::from_utf8_lossy(r)
            .lines()
            .next()
            .unwrap()
            .to_string()
    }

    #[test]
    fn routes() {
        let reg = registry();
        let r = respond(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n", &reg);
        assert_eq!(status(&r), "HTTP/1.1 200 OK");
        let text = String::from_utf8(r).unwrap();
        assert!(
            text.contains("version=0.0.4") && text.contains("logveil_findings_total{rule=\"r\"} 0")
        );
        assert_eq!(
            status(&respond(b"GET /health HTTP/1.0\r\n\r\n", &reg)),
            "HTTP/1.1 200 OK"
        );
        assert_eq!(
            status(&respond(b"GET /nope HTTP/1.1\r\n\r\n", &reg)),
            "HTTP/1.1 404 Not Found"
        );
        assert_eq!(
            status(&respond(b"POST /metrics HTTP/1.1\r\n\r\n", &reg)),
            "HTTP/1.1 405 Method Not Allowed"
        );
        let head = respond(b"HEAD /metrics HTTP/1.1\r\n\r\n", &reg);
        assert!(head.ends_with(b"\r\n\r\n"), "HEAD has no body");
    }

    #[test]
    fn serves_over_tcp_and_refuses_a_busy_address() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let l = Listener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr();
        let e = Listener::bind(&addr.to_string())
            .err()
            .expect("port in use");
        assert!(format!("{e:#}").contains("cannot listen on"), "{e:#}");
        let body = rt.block_on(async {
            serve(l, Arc::new(registry())).unwrap();
            let mut c = tokio::net::TcpStream::connect(addr).await.unwrap();
            c.write_all(b"GET /metrics HTTP/1.1\r\nHost: t\r\n\r\n")
                .await
                .unwrap();
            let mut out = String::new();
            c.read_to_string(&mut out).await.unwrap();
            out
        });
        assert!(body.starts_with("HTTP/1.1 200 OK"), "{body}");
        assert!(body.contains("# TYPE logveil_component_received_events_total counter"));
    }
}
