//! The layer on a plain hyper service whose request body is hyper's own `Incoming` (no axum): the request is
//! answered unchanged and recorded, with the peer address from the `RemoteAddr` extension.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use base64::Engine as _;
use bytes::Bytes;
use drift_sdk::{RemoteAddr, RequestBody};
use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tower_service::Service;

/// Echoes the request body.
#[derive(Clone)]
struct Echo;

impl Service<Request<RequestBody<Incoming>>> for Echo {
    type Response = Response<Full<Bytes>>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response<Full<Bytes>>, Infallible>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<RequestBody<Incoming>>) -> Self::Future {
        Box::pin(async move {
            let body = req
                .into_body()
                .collect()
                .await
                .map(|c| c.to_bytes())
                .unwrap_or_default();
            Ok(Response::builder()
                .header("content-type", "text/plain")
                .body(Full::new(body))
                .unwrap())
        })
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plain_hyper_service_is_recorded() {
    let (drift, spans) = crate::support::record_in_memory();
    let svc = tower_layer::Layer::layer(&drift.layer(), Echo);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        let (stream, peer) = listener.accept().await.unwrap();
        let conn = hyper::service::service_fn(move |mut req: Request<Incoming>| {
            req.extensions_mut().insert(RemoteAddr(peer));
            let mut svc = svc.clone();
            async move { svc.call(req).await }
        });
        hyper::server::conn::http1::Builder::new()
            .serve_connection(TokioIo::new(stream), conn)
            .await
            .unwrap();
    });
    let client = reqwest::Client::new();
    let answer = client
        .post(format!("http://{addr}/echo"))
        .body("hello")
        .send()
        .await
        .unwrap();
    assert_eq!(answer.bytes().await.unwrap(), Bytes::from_static(b"hello"));
    drop(client);
    tokio::time::timeout(std::time::Duration::from_secs(10), server)
        .await
        .unwrap()
        .unwrap();
    drift.shutdown();

    let all = spans.all();
    assert_eq!(all.len(), 1);
    let input = all[0].input_value.as_object().unwrap();
    let body = input.get("body").unwrap().as_str().unwrap();
    assert_eq!(
        base64::engine::general_purpose::STANDARD.decode(body).unwrap(),
        b"hello"
    );
    assert_eq!(input.get("remoteAddress").unwrap().as_str(), Some("127.0.0.1"));
    assert_eq!(all[0].name, "POST /echo");
}
