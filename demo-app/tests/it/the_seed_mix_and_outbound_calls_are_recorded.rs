//! Under the layer, every request of the seed mix is one SERVER span, and each `/api/outbound` request adds the
//! CLIENT spans of its two upstream calls, in the same trace, children of its SERVER span.

use std::collections::BTreeMap;

use drift_sdk::clean_span::kind;

use crate::support::{InProcess, record_in_memory};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_seed_mix_and_outbound_calls_are_recorded() {
    let (drift, spans) = record_in_memory();
    let app = InProcess::start(&drift).await;
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    for i in 0..30 {
        let request = match i % 3 {
            0 => http.get(format!("{}/api/simple", app.url)),
            1 => http
                .post(format!("{}/api/echo", app.url))
                .body(format!(r#"{{"data":"test","iteration":{i}}}"#)),
            _ => http
                .post(format!("{}/api/auth/login", app.url))
                .body(r#"{"email":"test@example.com","password":"secret123"}"#),
        };
        let response = request.header("content-type", "application/json").send().await.unwrap();
        assert_eq!(response.status(), 200);
        response.bytes().await.unwrap();
    }
    for i in 0..3 {
        let response = http
            .post(format!("{}/api/outbound", app.url))
            .body(format!(r#"{{"userId":"user-{i}"}}"#))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        response.bytes().await.unwrap();
    }
    let served = app.stop().await;
    drift.shutdown();
    assert_eq!(served.requests, 33);

    let mut names: BTreeMap<String, usize> = BTreeMap::new();
    for span in spans.by_kind(kind::SERVER) {
        *names.entry(span.name.clone()).or_default() += 1;
    }
    assert_eq!(
        names,
        BTreeMap::from([
            ("GET /api/simple".to_owned(), 10),
            ("POST /api/auth/login".to_owned(), 10),
            ("POST /api/echo".to_owned(), 10),
            ("POST /api/outbound".to_owned(), 3),
        ])
    );

    let servers = spans.by_kind(kind::SERVER);
    let clients = spans.by_kind(kind::CLIENT);
    assert_eq!(clients.len(), 6, "two upstream calls per outbound request");
    for outbound in servers.iter().filter(|s| s.name == "POST /api/outbound") {
        let children: Vec<&str> = clients
            .iter()
            .filter(|c| c.trace_id == outbound.trace_id)
            .inspect(|c| assert_eq!(c.parent_span_id, Some(outbound.span_id)))
            .map(|c| c.name.split(' ').next().unwrap_or(""))
            .collect();
        assert_eq!(children, ["GET", "POST"], "the user lookup, then the audit");
    }
    let stats = drift.stats();
    assert_eq!(
        (stats.recorded, stats.exported, stats.dropped),
        (39, 39, 0),
        "{stats:?}"
    );
}
