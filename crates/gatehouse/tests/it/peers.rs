//! Real peers started inside the tests: an upstream API that echoes what it
//! received and counts requests, and a foreign OIDC issuer with its own keys,
//! discovery document and JWKS.

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, Uri};
use axum::routing::get;
use gatehouse_jose::keys::{Alg, SigningKey};
use serde_json::{Value, json};
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Serves `app` on a loopback port; its base URL.
pub async fn serve(app: Router) -> String {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = l.local_addr().expect("addr");
    tokio::spawn(async move {
        let _ = axum::serve(l, app).await;
    });
    format!("http://{addr}")
}

/// An upstream that answers every request with its method, path, query and
/// headers, and counts the requests that reached it.
pub struct Upstream {
    pub url: String,
    pub hits: Arc<AtomicUsize>,
}

impl Upstream {
    pub fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }
}

async fn echo(
    State(hits): State<Arc<AtomicUsize>>,
    uri: Uri,
    headers: HeaderMap,
) -> axum::Json<Value> {
    hits.fetch_add(1, Ordering::SeqCst);
    // A name sent twice shows as a list of its values, so that a test
    // sees a duplicate (a forged header left beside the real one).
    let mut h = serde_json::Map::new();
    for k in headers.keys() {
        let values: Vec<Value> = headers
            .get_all(k)
            .iter()
            .map(|v| json!(v.to_str().unwrap_or("<binary>")))
            .collect();
        let v = match <[Value; 1]>::try_from(values) {
            Ok([one]) => one,
            Err(all) => Value::Array(all),
        };
        h.insert(k.as_str().to_owned(), v);
    }
    axum::Json(json!({"path": uri.path(), "query": uri.query(), "headers": h}))
}

async fn slow(State(hits): State<Arc<AtomicUsize>>) -> &'static str {
    hits.fetch_add(1, Ordering::SeqCst);
    tokio::time::sleep(std::time::Duration::from_secs(5)).await;
    "late"
}

/// Reads the whole body before it answers (with the body's length), as
/// most upstreams that take uploads do.
async fn count(State(hits): State<Arc<AtomicUsize>>, body: axum::body::Bytes) -> String {
    hits.fetch_add(1, Ordering::SeqCst);
    body.len().to_string()
}

pub async fn upstream() -> Upstream {
    let hits = Arc::new(AtomicUsize::new(0));
    let app = Router::new()
        .route("/slow", get(slow))
        .route("/count", axum::routing::post(count))
        .fallback(echo)
        .with_state(hits.clone());
    Upstream {
        url: serve(app).await,
        hits,
    }
}

/// A foreign issuer (think Okta or Entra ID) with an RS256 key.
pub struct Issuer {
    pub url: String,
    pub key: SigningKey,
}

impl Issuer {
    pub fn sign(&self, claims: &Value) -> String {
        gatehouse_jose::sign::sign(&self.key, claims).expect("sign")
    }

    /// Standard claims for this issuer, audience `orders-api`, valid 5 min.
    pub fn claims(&self, extra: Value) -> Value {
        let now = gatehouse_core::time::now();
        let mut c = json!({"iss": self.url, "sub": "user-1", "aud": "orders-api", "exp": now + 300,
            "iat": now, "preferred_username": "carol", "azp": "cli", "scope": "orders:read", "groups": ["sales"]});
        if let (Some(o), Some(e)) = (c.as_object_mut(), extra.as_object()) {
            for (k, v) in e {
                o.insert(k.clone(), v.clone());
            }
        }
        c
    }
}

pub async fn issuer() -> Issuer {
    gatehouse_jose::install_crypto_provider();
    let (key, _) = SigningKey::generate(Alg::RS256).expect("key");
    let jwks = gatehouse_jose::jwks::document([key.public_jwk()]);
    let l = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}", l.local_addr().expect("addr"));
    let discovery = json!({"issuer": url, "jwks_uri": format!("{url}/keys")});
    let app = Router::new()
        .route(
            "/.well-known/openid-configuration",
            get(move || async move { axum::Json(discovery) }),
        )
        .route("/keys", get(move || async move { axum::Json(jwks) }));
    tokio::spawn(async move {
        let _ = axum::serve(l, app).await;
    });
    Issuer { url, key }
}

/// An upstream that accepts `Upgrade: echo` with 101 and then echoes every
/// byte on the upgraded connection (what a WebSocket server does, minus
/// the framing).
pub async fn upgrade_upstream() -> String {
    use hyper::service::service_fn;
    let l = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}", l.local_addr().expect("addr"));
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = l.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let svc = service_fn(
                    |mut req: hyper::Request<hyper::body::Incoming>| async move {
                        let upgraded = hyper::upgrade::on(&mut req);
                        tokio::spawn(async move {
                            if let Ok(io) = upgraded.await {
                                let mut io = hyper_util::rt::TokioIo::new(io);
                                let (mut r, mut w) = tokio::io::split(&mut io);
                                let _ = tokio::io::copy(&mut r, &mut w).await;
                            }
                        });
                        let resp = hyper::Response::builder()
                            .status(101)
                            .header("connection", "upgrade")
                            .header("upgrade", "echo")
                            .body(http_body_util::Empty::<bytes::Bytes>::new())
                            .expect("response");
                        Ok::<_, std::convert::Infallible>(resp)
                    },
                );
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), svc)
                    .with_upgrades()
                    .await;
            });
        }
    });
    url
}

/// A gRPC-shaped HTTP/2 (h2c) upstream: requires `te: trailers`, echoes
/// the request body and ends with `grpc-status`/`grpc-message` trailers.
pub async fn grpc_upstream() -> String {
    use http_body_util::BodyExt;
    use hyper::body::Frame;
    use hyper::service::service_fn;
    let l = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}", l.local_addr().expect("addr"));
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = l.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let svc = service_fn(|req: hyper::Request<hyper::body::Incoming>| async move {
                    let te_ok = req.headers().get("te").is_some_and(|v| v == "trailers");
                    let path = req.uri().path().to_owned();
                    let body = req
                        .into_body()
                        .collect()
                        .await
                        .map(|c| c.to_bytes())
                        .unwrap_or_default();
                    let mut trailers = http::HeaderMap::new();
                    let (status, msg) = if te_ok {
                        ("0", "ok")
                    } else {
                        ("13", "te trailers missing")
                    };
                    trailers.insert("grpc-status", status.parse().expect("h"));
                    trailers.insert("grpc-message", msg.parse().expect("h"));
                    let frames = Frames(
                        [
                            Frame::data(bytes::Bytes::from(format!(
                                "{path}:{}",
                                String::from_utf8_lossy(&body)
                            ))),
                            Frame::trailers(trailers),
                        ]
                        .into(),
                    );
                    let resp = hyper::Response::builder()
                        .header("content-type", "application/grpc")
                        .body(frames)
                        .expect("response");
                    Ok::<_, std::convert::Infallible>(resp)
                });
                let _ =
                    hyper::server::conn::http2::Builder::new(hyper_util::rt::TokioExecutor::new())
                        .serve_connection(hyper_util::rt::TokioIo::new(stream), svc)
                        .await;
            });
        }
    });
    url
}

/// A response body made of a fixed list of frames (data, then trailers).
pub struct Frames(pub std::collections::VecDeque<hyper::body::Frame<bytes::Bytes>>);

impl hyper::body::Body for Frames {
    type Data = bytes::Bytes;
    type Error = std::convert::Infallible;
    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<bytes::Bytes>, Self::Error>>> {
        std::task::Poll::Ready(self.0.pop_front().map(Ok))
    }
}

/// An upstream that reads request bodies to the end without keeping them
/// and answers with the number of bytes it received.
pub async fn sink_upstream() -> String {
    use http_body_util::BodyExt;
    use hyper::service::service_fn;
    let l = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}", l.local_addr().expect("addr"));
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = l.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let svc = service_fn(|req: hyper::Request<hyper::body::Incoming>| async move {
                    let mut body = req.into_body();
                    let mut n: u64 = 0;
                    while let Some(Ok(f)) = body.frame().await {
                        if let Some(d) = f.data_ref() {
                            n += d.len() as u64;
                        }
                    }
                    Ok::<_, std::convert::Infallible>(hyper::Response::new(
                        http_body_util::Full::new(bytes::Bytes::from(n.to_string())),
                    ))
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    url
}

/// An upstream that counts the TCP connections it accepted. `/close`
/// answers with `Connection: close`; `/big` streams 8 MiB slowly enough
/// that a client can walk away halfway; anything else answers `ok`.
pub struct ConnCounting {
    pub url: String,
    pub connections: Arc<AtomicUsize>,
}

pub async fn conn_counting_upstream() -> ConnCounting {
    use hyper::service::service_fn;
    let l = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}", l.local_addr().expect("addr"));
    let connections = Arc::new(AtomicUsize::new(0));
    let count = connections.clone();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = l.accept().await else {
                return;
            };
            count.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                let svc = service_fn(|req: hyper::Request<hyper::body::Incoming>| async move {
                    // `/wait/{ms}`: answers "ok" that much later.
                    let wait = req.uri().path().strip_prefix("/wait/");
                    if let Some(ms) = wait.and_then(|m| m.parse::<u64>().ok()) {
                        tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
                    }
                    let resp = match req.uri().path() {
                        "/close" => hyper::Response::builder()
                            .header("connection", "close")
                            .body(http_body_util::Either::Left(http_body_util::Full::new(
                                bytes::Bytes::from_static(b"bye"),
                            ))),
                        "/big" => {
                            let chunks = SlowChunks {
                                left: 128,
                                size: 64 * 1024,
                                tick: None,
                            };
                            hyper::Response::builder().body(http_body_util::Either::Right(chunks))
                        }
                        _ => hyper::Response::builder().body(http_body_util::Either::Left(
                            http_body_util::Full::new(bytes::Bytes::from_static(b"ok")),
                        )),
                    };
                    Ok::<_, std::convert::Infallible>(resp.expect("response"))
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    ConnCounting { url, connections }
}

/// A body of `left` chunks of `size` bytes, one per millisecond.
pub struct SlowChunks {
    left: usize,
    size: usize,
    tick: Option<std::pin::Pin<Box<tokio::time::Sleep>>>,
}

impl hyper::body::Body for SlowChunks {
    type Data = bytes::Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<bytes::Bytes>, Self::Error>>> {
        if self.left == 0 {
            return std::task::Poll::Ready(None);
        }
        let tick = self.tick.get_or_insert_with(|| {
            Box::pin(tokio::time::sleep(std::time::Duration::from_millis(1)))
        });
        if tick.as_mut().poll(cx).is_pending() {
            return std::task::Poll::Pending;
        }
        self.tick = None;
        self.left -= 1;
        let chunk = bytes::Bytes::from(vec![b'x'; self.size]);
        std::task::Poll::Ready(Some(Ok(hyper::body::Frame::data(chunk))))
    }
}

/// A relying party's back-channel logout endpoint: keeps every
/// `logout_token` posted to it; `/fail` answers 500 (a broken RP).
pub struct LogoutReceiver {
    pub url: String,
    pub tokens: Arc<std::sync::Mutex<Vec<String>>>,
}

impl LogoutReceiver {
    pub fn received(&self) -> Vec<String> {
        self.tokens.lock().expect("lock").clone()
    }
}

pub async fn logout_receiver() -> LogoutReceiver {
    type Kept = Arc<std::sync::Mutex<Vec<String>>>;
    async fn keep(
        State(kept): State<Kept>,
        uri: Uri,
        headers: HeaderMap,
        body: axum::body::Bytes,
    ) -> axum::http::StatusCode {
        let form_body = headers
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
        let token = url::form_urlencoded::parse(&body)
            .find(|(k, _)| k == "logout_token")
            .map(|(_, v)| v.into_owned());
        match token {
            Some(t) if form_body => kept.lock().expect("lock").push(t),
            _ => return axum::http::StatusCode::BAD_REQUEST,
        }
        if uri.path() == "/fail" {
            axum::http::StatusCode::INTERNAL_SERVER_ERROR
        } else {
            axum::http::StatusCode::OK
        }
    }
    let tokens: Kept = Default::default();
    let app = Router::new()
        .fallback(axum::routing::post(keep))
        .with_state(tokens.clone());
    LogoutReceiver {
        url: serve(app).await,
        tokens,
    }
}
