//! The demo app: the Python SDK benchmark server's endpoints (drift-format.md §15.1) behind drift-sdk's layer, an
//! endpoint that calls a loopback upstream through the SDK's reqwest middleware, a CPU calibration endpoint, and
//! the in-process profiler of the build's cargo feature.
//!
//! `main` parses the flags, starts the profiler, builds a [`drift_sdk::Drift`], then [`DemoApp::bind`] and
//! [`DemoApp::serve`]; on SIGINT or SIGTERM it drains, shuts the SDK down and writes the profiler's files. Tests
//! build the same app around their own `Drift`.
//!
//! # Feature flags (mutually exclusive)
//!
//! - `pprof`: CPU samples of the whole run (`cpu.folded`, `cpu.pb`, `pprof.json`), or on demand at an opt-in,
//!   loopback-only `/debug/pprof/profile?seconds=N` (drift-sdk's `pprof_endpoint` router, feature
//!   `pprof-endpoint`).
//! - `dhat-heap`: dhat's allocator and heap profiler (`dhat-heap.json`).
//! - `timeline`: a tracing-chrome layer over the SDK's stage spans and the request spans (`timeline.json`).

mod calibrate;
pub mod cli;
pub mod discard;
mod endpoints;
pub mod profiler;
mod state;
mod upstream;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::Router;
use drift_sdk::Drift;
use tokio::net::TcpListener;
use tokio::sync::watch;

pub use calibrate::{
    CalibrationClocks, CalibrationTime, DEFAULT_RATIO, DEFAULT_SYSCALL_UNITS, DEFAULT_UNITS, SYSCALL_THREAD,
    calibrate_sixty, calibrate_syscalls, calibrate_ten, calibrate_thirty,
};
pub use endpoints::{LARGE, MEDIUM, SMALL};
pub use state::RequestCounter;

/// How the app serves, beyond its listen address.
#[derive(Clone, Debug)]
pub struct ServeOptions {
    /// How long shutdown waits for in-flight requests. By default, 10 s.
    pub drain_timeout: Duration,
    /// Serve `/debug/pprof/profile` at this sampling frequency (pprof builds only). By default, off.
    pub pprof_endpoint_hz: Option<i32>,
}

impl Default for ServeOptions {
    fn default() -> Self {
        ServeOptions {
            drain_timeout: Duration::from_secs(10),
            pprof_endpoint_hz: None,
        }
    }
}

/// The app with its listeners bound, ready to serve.
#[derive(Debug)]
pub struct DemoApp {
    listener: TcpListener,
    upstream: TcpListener,
    router: Router,
    requests: RequestCounter,
    calibration: Arc<CalibrationClocks>,
    drain_timeout: Duration,
}

/// How serving ended.
#[derive(Clone, Debug, PartialEq)]
pub struct Served {
    /// Requests the instrumented routes received.
    pub requests: u64,
    /// Whether every in-flight request finished before the drain timeout.
    pub drained: bool,
    /// The calibration functions that ran, with their CPU seconds by their threads' own clocks.
    pub calibration: Vec<CalibrationTime>,
}

impl DemoApp {
    /// Binds the app on `addr` and its upstream users service on 127.0.0.1, and wires the router: the seed's
    /// endpoints, `/api/outbound` and `/api/calibrate` behind `drift`'s layer; `/debug/pprof/profile` outside it
    /// when asked for.
    pub async fn bind(addr: SocketAddr, drift: &Drift, options: &ServeOptions) -> anyhow::Result<DemoApp> {
        let listener = TcpListener::bind(addr)
            .await
            .with_context(|| format!("binding {addr}"))?;
        let (upstream, upstream_addr) = upstream::bind_users_service()
            .await
            .context("binding the upstream users service on 127.0.0.1")?;
        let client = reqwest::Client::builder()
            .no_proxy()
            .build()
            .context("building the HTTP client")?;
        let client = reqwest_middleware::ClientBuilder::new(client)
            .with(drift.client_middleware())
            .build();
        let requests = RequestCounter::default();
        let calibration = Arc::new(CalibrationClocks::default());
        let state = state::AppState::new(client, format!("http://{upstream_addr}"), calibration.clone());
        let counter = requests.clone();
        let app = Router::new()
            .merge(endpoints::routes())
            .merge(upstream::routes())
            .merge(calibrate::routes())
            .with_state(state)
            .layer(drift.layer());
        #[cfg(feature = "timeline")]
        let app = app.layer(axum::middleware::from_fn_with_state(
            std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0)),
            request_span,
        ));
        let app = app.layer(tower::util::MapRequestLayer::new(move |req| {
            counter.add_one();
            req
        }));
        let router = match options.pprof_endpoint_hz {
            #[cfg(feature = "pprof")]
            Some(hz) => app.merge(profiler::pprof::endpoint_routes(hz, requests.clone(), drift)?),
            #[cfg(not(feature = "pprof"))]
            Some(_) => anyhow::bail!("the profiling endpoint needs a build with the `pprof` feature"),
            None => app,
        };
        Ok(DemoApp {
            listener,
            upstream,
            router,
            requests,
            calibration,
            drain_timeout: options.drain_timeout,
        })
    }

    /// The address the app listens on.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// The upstream users service's address.
    pub fn upstream_addr(&self) -> std::io::Result<SocketAddr> {
        self.upstream.local_addr()
    }

    /// Counts the requests the instrumented routes receive.
    pub fn requests(&self) -> RequestCounter {
        self.requests.clone()
    }

    /// Serves until `shutdown` completes, then stops accepting and waits up to the drain timeout for in-flight
    /// requests, then stops the upstream. The SDK is not shut down here: that is the caller's next step.
    pub async fn serve(self, shutdown: impl Future<Output = ()> + Send + 'static) -> anyhow::Result<Served> {
        let (stop_app, app_stopping) = watch::channel(false);
        let (stop_upstream, upstream_stopping) = watch::channel(false);
        let upstream = tokio::spawn(
            axum::serve(self.upstream, upstream::users_service())
                .with_graceful_shutdown(stopped(upstream_stopping))
                .into_future(),
        );
        let mut app = tokio::spawn(
            axum::serve(
                self.listener,
                self.router.into_make_service_with_connect_info::<SocketAddr>(),
            )
            .with_graceful_shutdown(stopped(app_stopping))
            .into_future(),
        );
        tokio::select! {
            ended = &mut app => {
                let _ = stop_upstream.send(true);
                return match ended {
                    Ok(Ok(())) => Err(anyhow::anyhow!("the server stopped by itself")),
                    Ok(Err(e)) => Err(e).context("serving"),
                    Err(e) => Err(e).context("the server task failed"),
                };
            }
            () = shutdown => {}
        }
        let _ = stop_app.send(true);
        let drained = match tokio::time::timeout(self.drain_timeout, &mut app).await {
            Ok(Ok(result)) => {
                result.context("serving while draining")?;
                true
            }
            Ok(Err(e)) => return Err(e).context("the server task failed while draining"),
            Err(_elapsed) => {
                tracing::warn!(
                    timeout = ?self.drain_timeout,
                    "in-flight requests did not finish before the drain timeout; closing their connections"
                );
                app.abort();
                false
            }
        };
        let _ = stop_upstream.send(true);
        match tokio::time::timeout(Duration::from_secs(1), upstream).await {
            Ok(Ok(Ok(()))) => {}
            Ok(Ok(Err(e))) => tracing::warn!(error = %e, "the upstream users service failed"),
            Ok(Err(e)) => tracing::warn!(error = %e, "the upstream users service task failed"),
            Err(_elapsed) => {}
        }
        Ok(Served {
            requests: self.requests.get(),
            drained,
            calibration: self.calibration.seconds(),
        })
    }
}

async fn stopped(mut stop: watch::Receiver<bool>) {
    let _ = stop.wait_for(|stop| *stop).await;
}

/// The `request` span the timeline shows around each request, with the SDK's capture inside it.
///
/// The threaded Chrome trace draws one slice per poll of the request's future (a request can move between
/// threads between polls); the `seq` argument, the request's number, tells slices of one request from the next.
#[cfg(feature = "timeline")]
async fn request_span(
    axum::extract::State(seq): axum::extract::State<std::sync::Arc<std::sync::atomic::AtomicU64>>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use tracing::Instrument;
    let seq = seq.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let span = tracing::info_span!("request", seq, method = %request.method(), path = %request.uri().path());
    next.run(request).instrument(span).await
}
