//! The error envelope on every kind of failure (SPEC §2.1).

use actix_web::http::Method;
use actix_web::test::TestRequest;
use serde_json::json;

use crate::common::{get, send, send_request, TestApp};
use crate::service;

#[actix_web::test]
async fn unknown_route_is_a_404_envelope() {
    let app = TestApp::demo();
    let service = service!(app);
    let reply = get(&service, "/api/no/such/route").await;
    reply.assert_error(404, "NOT_FOUND");
    let reply = get(&service, "/nothing-here").await;
    reply.assert_error(404, "NOT_FOUND");
}

#[actix_web::test]
async fn malformed_json_names_the_body() {
    let app = TestApp::demo();
    let service = service!(app);
    let request = TestRequest::post()
        .uri("/api/tables/tasks/records")
        .insert_header(("content-type", "application/json"))
        .set_payload("{\"title\": ");
    let reply = send_request(&service, request).await;
    reply.assert_error(400, "VALIDATION_ERROR");
    assert_eq!(reply.error_fields(), vec!["body".to_string()]);
    // Nothing was written.
    let list = get(&service, "/api/tables/tasks/records").await;
    assert_eq!(list.body["pagination"]["total"], json!(0));
}

#[actix_web::test]
async fn wrong_method_is_405_with_allow() {
    let app = TestApp::demo();
    let service = service!(app);
    let reply = send(&service, Method::PUT, "/api/tables/tasks/records", None).await;
    assert_eq!(reply.status.as_u16(), 405);
    assert_eq!(reply.body["code"], json!("VALIDATION_ERROR"));
    assert_eq!(reply.body["message"], json!("Method not allowed"));
    let allow = reply.header("allow").expect("an Allow header");
    assert!(allow.contains("GET") && allow.contains("POST"), "{allow}");
    let reply = send(&service, Method::DELETE, "/api/health", None).await;
    assert_eq!(reply.status.as_u16(), 405);
    assert_eq!(reply.header("allow").as_deref(), Some("GET"));
}

#[actix_web::test]
async fn oversized_body_is_413_envelope() {
    let directory = tempfile::tempdir().expect("a temporary directory");
    let mut config = crate::common::demo_config(&directory.path().join("data"));
    config.server.max_body_bytes = 1024;
    let app = TestApp::with_config(config, directory);
    let service = service!(app);
    let big = "x".repeat(4096);
    let request = TestRequest::post()
        .uri("/api/tables/tasks/records")
        .insert_header(("content-type", "application/json"))
        .set_payload(format!("{{\"title\":\"{big}\"}}"));
    let reply = send_request(&service, request).await;
    reply.assert_error(413, "PAYLOAD_TOO_LARGE");
}

#[actix_web::test]
async fn every_response_carries_a_request_id() {
    let app = TestApp::demo();
    let service = service!(app);
    let ok = get(&service, "/api/health").await;
    assert_eq!(ok.status.as_u16(), 200);
    assert!(ok.header("x-request-id").is_some_and(|id| !id.is_empty()));
    let missing = get(&service, "/api/tables/nope").await;
    assert!(missing.header("x-request-id").is_some());
    let request = TestRequest::get()
        .uri("/api/health")
        .insert_header(("x-request-id", "trace-me-123"));
    let echoed = send_request(&service, request).await;
    assert_eq!(
        echoed.header("x-request-id").as_deref(),
        Some("trace-me-123")
    );
}

#[actix_web::test]
async fn health_reports_status_time_and_version() {
    let app = TestApp::demo();
    let service = service!(app);
    let reply = get(&service, "/api/health").await;
    assert_eq!(reply.status.as_u16(), 200);
    assert_eq!(reply.body["status"], json!("ok"));
    assert_eq!(reply.body["version"], json!(env!("CARGO_PKG_VERSION")));
    let timestamp = reply.body["timestamp"].as_str().expect("a timestamp");
    assert_eq!(
        timestamp.len(),
        "2026-11-22T10:00:00.000Z".len(),
        "{timestamp}"
    );
    assert!(timestamp.ends_with('Z'));
}
