//! The loopback "users service" the app starts for itself, and `/api/outbound`, which calls it through the
//! instrumented reqwest client so that profiles and traces contain CLIENT spans.
//!
//! `POST /api/outbound` with `{"userId": …}` (default `"user-123"`) makes two calls, one after the other:
//! `GET {upstream}/users/{userId}` and `POST {upstream}/audit` with `{"userId":…,"action":"lookup"}`, and answers
//! `{"user": <the upstream's user>, "audited": true, "timestamp": <ms>}`. An upstream failure answers 502 with the
//! reason.

use std::net::SocketAddr;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Json, Router, routing::get, routing::post};
use bytes::Bytes;
use serde_json::{Value, json};
use tokio::net::TcpListener;

use crate::endpoints::{fields, now_ms};
use crate::state::AppState;

pub(crate) fn routes() -> Router<AppState> {
    Router::new().route("/api/outbound", post(outbound))
}

async fn outbound(State(state): State<AppState>, body: Bytes) -> Response {
    let f = fields(&body);
    let user_id = match f.get("userId") {
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
        None => "user-123".to_owned(),
    };
    match call_upstream(&state, &user_id).await {
        Ok(user) => Json(json!({"user": user, "audited": true, "timestamp": now_ms()})).into_response(),
        Err(reason) => (StatusCode::BAD_GATEWAY, Json(json!({"error": reason}))).into_response(),
    }
}

async fn call_upstream(state: &AppState, user_id: &str) -> Result<Value, String> {
    let mut url = reqwest::Url::parse(&state.upstream).map_err(|e| format!("upstream URL: {e}"))?;
    url.path_segments_mut()
        .map_err(|()| "upstream URL cannot have a path".to_owned())?
        .extend(["users", user_id]);
    let user = state
        .client
        .get(url)
        .send()
        .await
        .and_then(|r| r.error_for_status().map_err(reqwest_middleware::Error::from))
        .map_err(|e| format!("GET /users: {e}"))?
        .bytes()
        .await
        .map_err(|e| format!("GET /users body: {e}"))?;
    let user: Value = serde_json::from_slice(&user).map_err(|e| format!("GET /users answered bad JSON: {e}"))?;
    let audit = json!({"userId": user_id, "action": "lookup"}).to_string();
    state
        .client
        .post(format!("{}/audit", state.upstream))
        .header("content-type", "application/json")
        .body(audit)
        .send()
        .await
        .and_then(|r| r.error_for_status().map_err(reqwest_middleware::Error::from))
        .map_err(|e| format!("POST /audit: {e}"))?;
    Ok(user)
}

/// The upstream users service: `GET /users/{id}` and `POST /audit`. Not instrumented: it stands for another
/// service.
pub(crate) fn users_service() -> Router {
    Router::new()
        .route(
            "/users/{id}",
            get(|Path(id): Path<String>| async move {
                Json(json!({"id": id, "name": format!("User {id}"), "email": format!("{id}@example.com"), "plan": "pro"}))
            }),
        )
        .route("/audit", post(|| async { Json(json!({"recorded": true})) }))
}

/// Binds the users service on 127.0.0.1 and returns its listener and address.
pub(crate) async fn bind_users_service() -> std::io::Result<(TcpListener, SocketAddr)> {
    let listener = TcpListener::bind((std::net::Ipv4Addr::LOCALHOST, 0)).await?;
    let addr = listener.local_addr()?;
    Ok((listener, addr))
}
