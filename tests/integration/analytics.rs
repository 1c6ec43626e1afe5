//! Analytics over HTTP (SPEC §7): collect (204, no cookie, CORS and preflight, 400s, DNT,
//! excluded paths, trusted proxies, load shedding), the five report shapes and their parameter
//! errors, the tracker script, counts across a restart, no raw IP on disk — and the tracker in a
//! real headless Chromium against the running binary.

use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpListener};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use actix_web::http::{Method, StatusCode};
use actix_web::test::TestRequest;
use serde_json::{json, Value as Json};

use crate::common::{get, send_request, TestApp};
use crate::service;

const CHROME_UA: &str = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36";
const IPHONE_UA: &str = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.0 Mobile/15E148 Safari/604.1";

fn peer(ip: &str) -> SocketAddr {
    SocketAddr::new(ip.parse().unwrap(), 40_000)
}

fn collect_request(body: &str, ip: &str, user_agent: &str) -> TestRequest {
    TestRequest::post()
        .uri("/api/analytics/collect")
        .peer_addr(peer(ip))
        .insert_header(("user-agent", user_agent))
        .insert_header(("content-type", "text/plain;charset=UTF-8"))
        .set_payload(body.to_owned())
}

/// A browser's CORS preflight of a collect POST from `origin`.
fn preflight_request(origin: &str) -> TestRequest {
    TestRequest::default()
        .method(Method::OPTIONS)
        .uri("/api/analytics/collect")
        .insert_header(("origin", origin.to_owned()))
        .insert_header(("access-control-request-method", "POST"))
}

fn today() -> String {
    chrono::Utc::now().format("%Y-%m-%d").to_string()
}

fn range() -> String {
    let today = today();
    format!("from={today}&to={today}")
}

fn analytics_app(extra: &str) -> TestApp {
    TestApp::from_toml(&format!("[analytics]\nflush_interval_ms = 200\n{extra}"))
}

#[actix_web::test]
async fn collect_answers_204_with_no_body_and_no_cookie() {
    let app = analytics_app("");
    let service = service!(app);
    let request = collect_request(
        r#"{"p":"/hello","t":"Hello","sw":1920,"sh":1080}"#,
        "203.0.113.5",
        CHROME_UA,
    )
    .insert_header(("cookie", "tabula_session=whatever"))
    .insert_header(("authorization", "Bearer not-a-token"))
    .insert_header(("origin", "https://blog.example"));
    let reply = send_request(&service, request).await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT);
    assert!(reply.raw.is_empty());
    assert!(reply.header("set-cookie").is_none());
    assert_eq!(
        reply.header("access-control-allow-origin").as_deref(),
        Some("*")
    );
    assert!(reply.header("access-control-allow-credentials").is_none());

    let pages = get(&service, &format!("/api/analytics/pages?{}", range())).await;
    assert_eq!(pages.status, StatusCode::OK, "{:?}", pages.body);
    assert_eq!(
        pages.body,
        json!({"pages": [{"path": "/hello", "pageViews": 1, "uniqueVisitors": 1}], "total": 1})
    );
}

#[actix_web::test]
async fn preflight_is_answered_for_any_origin() {
    let app = analytics_app("");
    let service = service!(app);
    let request = preflight_request("https://shop.example")
        .insert_header(("access-control-request-headers", "content-type"));
    let reply = send_request(&service, request).await;
    assert!(reply.status.is_success(), "{:?}", reply.status);
    assert_eq!(
        reply.header("access-control-allow-origin").as_deref(),
        Some("*")
    );
    assert!(reply
        .header("access-control-allow-methods")
        .unwrap_or_default()
        .contains("POST"));
    assert!(reply
        .header("access-control-allow-headers")
        .unwrap_or_default()
        .to_lowercase()
        .contains("content-type"));
    // Other methods on the collect path: 405 with Allow, in the envelope.
    let reply = send_request(&service, TestRequest::get().uri("/api/analytics/collect")).await;
    reply.assert_error(405, "VALIDATION_ERROR");
    assert_eq!(reply.header("allow").as_deref(), Some("POST"));
}

/// A fresh request id: 16 lower-case hex digits.
fn assert_fresh_request_id(reply: &crate::common::Reply, what: &str) {
    let id = reply.header("x-request-id").unwrap_or_default();
    assert!(
        id.len() == 16
            && id
                .bytes()
                .all(|byte| byte.is_ascii_digit() || (b'a'..=b'f').contains(&byte)),
        "{what}: x-request-id {id:?}"
    );
}

/// The collect path has its own middleware (in front of the shared stack): every outcome still
/// carries `x-request-id` (a sane incoming one echoed), the CORS headers for a cross-origin
/// caller, and framework errors in the envelope.
#[actix_web::test]
async fn every_collect_outcome_carries_a_request_id_and_cors() {
    let app = analytics_app("");
    let service = service!(app);
    let origin = ("origin", "https://blog.example");

    let accepted = send_request(
        &service,
        collect_request(r#"{"p":"/a"}"#, "203.0.113.5", CHROME_UA).insert_header(origin),
    )
    .await;
    assert_eq!(accepted.status, StatusCode::NO_CONTENT);
    assert_fresh_request_id(&accepted, "204");
    assert_eq!(
        accepted.header("access-control-allow-origin").as_deref(),
        Some("*")
    );

    let echoed = send_request(
        &service,
        collect_request(r#"{"p":"/a"}"#, "203.0.113.5", CHROME_UA)
            .insert_header(("x-request-id", "beacon-42")),
    )
    .await;
    assert_eq!(echoed.status, StatusCode::NO_CONTENT);
    assert_eq!(echoed.header("x-request-id").as_deref(), Some("beacon-42"));

    let bad = send_request(
        &service,
        collect_request(r#"{"p":""}"#, "203.0.113.5", CHROME_UA).insert_header(origin),
    )
    .await;
    bad.assert_error(400, "VALIDATION_ERROR");
    assert_fresh_request_id(&bad, "400");
    assert_eq!(
        bad.header("access-control-allow-origin").as_deref(),
        Some("*")
    );

    // Over the collect body limit (16 KiB): actix's own error, rewritten into the envelope.
    let huge = json!({"p": "/x", "t": "t".repeat(20_000)}).to_string();
    let too_large = send_request(
        &service,
        collect_request(&huge, "203.0.113.5", CHROME_UA).insert_header(origin),
    )
    .await;
    too_large.assert_error(413, "PAYLOAD_TOO_LARGE");
    assert_fresh_request_id(&too_large, "413");

    let preflight = send_request(&service, preflight_request(origin.1)).await;
    assert!(preflight.status.is_success(), "{:?}", preflight.status);
    assert_fresh_request_id(&preflight, "preflight");

    let wrong_method =
        send_request(&service, TestRequest::get().uri("/api/analytics/collect")).await;
    wrong_method.assert_error(405, "VALIDATION_ERROR");
    assert_fresh_request_id(&wrong_method, "405");

    // Only the two accepted views were counted.
    let overview = get(&service, &format!("/api/analytics/overview?{}", range())).await;
    assert_eq!(overview.body["summary"]["pageViews"], json!(2));
    // The report routes still go through the shared stack (request id there too).
    assert_fresh_request_id(&overview, "report");
}

/// The CORS headers of the collect path are those `actix-cors` (any origin, wildcard, no
/// credentials) gives an actual request: `Access-Control-Allow-Origin: *` only when the request
/// has an `Origin`, the `Vary` list on every outcome, nothing else — on 204, 400, 405 and 413
/// alike — and a preflight still gets its full answer.
#[actix_web::test]
async fn collect_outcomes_carry_the_cors_headers_of_an_actual_request() {
    const VARY: &str = "Origin, Access-Control-Request-Method, Access-Control-Request-Headers";
    let app = analytics_app("");
    let service = service!(app);
    let origin = ("origin", "https://blog.example");
    let huge = json!({"p": "/x", "t": "t".repeat(20_000)}).to_string();
    let cases = [
        (
            collect_request(r#"{"p":"/v"}"#, "203.0.113.5", CHROME_UA),
            204,
        ),
        (
            collect_request(r#"{"p":""}"#, "203.0.113.5", CHROME_UA),
            400,
        ),
        (collect_request("not json", "203.0.113.5", CHROME_UA), 400),
        (collect_request(&huge, "203.0.113.5", CHROME_UA), 413),
        (TestRequest::get().uri("/api/analytics/collect"), 405),
        (TestRequest::put().uri("/api/analytics/collect"), 405),
    ];
    for (request, status) in cases {
        let reply = send_request(&service, request.insert_header(origin)).await;
        assert_eq!(reply.status.as_u16(), status, "{:?}", reply.body);
        assert_eq!(
            reply.header("access-control-allow-origin").as_deref(),
            Some("*"),
            "{status}"
        );
        assert_eq!(reply.header("vary").as_deref(), Some(VARY), "{status}");
        for absent in [
            "access-control-allow-credentials",
            "access-control-expose-headers",
            "access-control-allow-methods",
        ] {
            assert!(reply.header(absent).is_none(), "{status}: {absent}");
        }
        if status != 204 {
            assert_eq!(
                reply.header("content-type").as_deref(),
                Some("application/json")
            );
        }
    }
    // Without an Origin: no Allow-Origin, the Vary list all the same.
    let plain = send_request(
        &service,
        collect_request(r#"{"p":"/v"}"#, "203.0.113.5", CHROME_UA),
    )
    .await;
    assert_eq!(plain.status, StatusCode::NO_CONTENT);
    assert!(plain.header("access-control-allow-origin").is_none());
    assert_eq!(plain.header("vary").as_deref(), Some(VARY));
    // The preflight: actix-cors's own answer.
    let preflight = send_request(&service, preflight_request(origin.1)).await;
    assert_eq!(preflight.status, StatusCode::OK);
    assert_eq!(
        preflight.header("access-control-max-age").as_deref(),
        Some("86400")
    );
    assert_eq!(preflight.header("vary").as_deref(), Some(VARY));
    assert_fresh_request_id(&preflight, "preflight");
    // A path that only decodes to the collect path is not it (as before): 404.
    let encoded = send_request(
        &service,
        collect_request(r#"{"p":"/v"}"#, "203.0.113.5", CHROME_UA).uri("/api/analytics/%63ollect"),
    )
    .await;
    assert_eq!(encoded.status, StatusCode::NOT_FOUND);
    let overview = get(&service, &format!("/api/analytics/overview?{}", range())).await;
    assert_eq!(overview.body["summary"]["pageViews"], json!(2));
}

/// `rate_limit.analytics_collect` applies to the collect path (per client IP): 429 with
/// `Retry-After` and a request id; other clients are unaffected.
#[actix_web::test]
async fn the_collect_rate_limit_applies_when_set() {
    let directory = tempfile::tempdir().expect("a temporary directory");
    let mut config = crate::common::config_from_toml(directory.path(), "");
    config.rate_limit.analytics_collect = 2;
    let app = TestApp::with_config(config, directory);
    let service = service!(app);
    for _ in 0..2 {
        let reply = send_request(
            &service,
            collect_request(r#"{"p":"/r"}"#, "203.0.113.8", CHROME_UA),
        )
        .await;
        assert_eq!(reply.status, StatusCode::NO_CONTENT);
    }
    let limited = send_request(
        &service,
        collect_request(r#"{"p":"/r"}"#, "203.0.113.8", CHROME_UA),
    )
    .await;
    limited.assert_error(429, "RATE_LIMITED");
    assert!(limited.header("retry-after").is_some());
    assert_fresh_request_id(&limited, "429");
    // The limiter answers before CORS (as the shared stack's limiter does).
    assert!(limited.header("vary").is_none());
    let other = send_request(
        &service,
        collect_request(r#"{"p":"/r"}"#, "198.51.100.2", CHROME_UA),
    )
    .await;
    assert_eq!(other.status, StatusCode::NO_CONTENT);
    let overview = get(&service, &format!("/api/analytics/overview?{}", range())).await;
    assert_eq!(overview.body["summary"]["pageViews"], json!(3));
}

#[actix_web::test]
async fn a_bad_path_or_body_is_a_400_envelope() {
    let app = analytics_app("");
    let service = service!(app);
    for body in [
        r#"{}"#,
        r#"{"p":""}"#,
        r#"{"p":42}"#,
        r#"{"p":null}"#,
        r#"{"p":["/"]}"#,
        r#"{"t":"no path"}"#,
    ] {
        let reply = send_request(&service, collect_request(body, "203.0.113.5", CHROME_UA)).await;
        reply.assert_error(400, "VALIDATION_ERROR");
        assert_eq!(reply.error_fields(), vec!["p"], "{body}");
    }
    for body in ["", "not json", r#"{"p":"/x""#] {
        let reply = send_request(&service, collect_request(body, "203.0.113.5", CHROME_UA)).await;
        reply.assert_error(400, "VALIDATION_ERROR");
        assert_eq!(reply.error_fields(), vec!["body"], "{body:?}");
    }
    let overview = get(&service, &format!("/api/analytics/overview?{}", range())).await;
    assert_eq!(overview.body["summary"]["pageViews"], json!(0));
}

#[actix_web::test]
async fn dnt_and_excluded_paths_are_204_and_not_counted() {
    let app = analytics_app("excluded_paths = [\"/admin/*\", \"/health\"]\n");
    let service = service!(app);
    let dnt = collect_request(r#"{"p":"/private"}"#, "203.0.113.5", CHROME_UA)
        .insert_header(("dnt", "1"));
    assert_eq!(
        send_request(&service, dnt).await.status,
        StatusCode::NO_CONTENT
    );
    for path in ["/admin/users", "/admin/", "/health"] {
        let body = json!({"p": path}).to_string();
        let reply = send_request(&service, collect_request(&body, "203.0.113.5", CHROME_UA)).await;
        assert_eq!(reply.status, StatusCode::NO_CONTENT);
    }
    let counted =
        collect_request(r#"{"p":"/public"}"#, "203.0.113.5", CHROME_UA).insert_header(("dnt", "0"));
    assert_eq!(
        send_request(&service, counted).await.status,
        StatusCode::NO_CONTENT
    );
    let pages = get(&service, &format!("/api/analytics/pages?{}", range())).await;
    assert_eq!(pages.body["total"], json!(1));
    assert_eq!(pages.body["pages"][0]["path"], json!("/public"));
}

#[actix_web::test]
async fn dnt_is_counted_when_not_respected() {
    let app = analytics_app("respect_dnt = false\n");
    let service = service!(app);
    let dnt =
        collect_request(r#"{"p":"/x"}"#, "203.0.113.5", CHROME_UA).insert_header(("dnt", "1"));
    assert_eq!(
        send_request(&service, dnt).await.status,
        StatusCode::NO_CONTENT
    );
    let overview = get(&service, &format!("/api/analytics/overview?{}", range())).await;
    assert_eq!(overview.body["summary"]["pageViews"], json!(1));
}

#[actix_web::test]
async fn forwarded_for_is_believed_only_from_trusted_proxies() {
    let app = TestApp::from_toml("[server]\ntrusted_proxies = [\"10.0.0.2\"]\n");
    let service = service!(app);
    for client in ["198.51.100.1", "198.51.100.2", "198.51.100.3"] {
        // Through the trusted proxy: each client is its own visitor.
        let request = collect_request(r#"{"p":"/via-proxy"}"#, "10.0.0.2", CHROME_UA)
            .insert_header(("x-forwarded-for", format!("{client}, 10.0.0.2")));
        assert_eq!(
            send_request(&service, request).await.status,
            StatusCode::NO_CONTENT
        );
        // Straight from an untrusted peer: the header is ignored, one visitor.
        let request = collect_request(r#"{"p":"/direct"}"#, "192.0.2.50", CHROME_UA)
            .insert_header(("x-forwarded-for", client));
        assert_eq!(
            send_request(&service, request).await.status,
            StatusCode::NO_CONTENT
        );
    }
    let pages = get(&service, &format!("/api/analytics/pages?{}", range())).await;
    let visitors = |path: &str| {
        pages.body["pages"]
            .as_array()
            .unwrap()
            .iter()
            .find(|row| row["path"] == json!(path))
            .unwrap()["uniqueVisitors"]
            .clone()
    };
    assert_eq!(visitors("/via-proxy"), json!(3));
    assert_eq!(visitors("/direct"), json!(1));
}

#[actix_web::test]
async fn reports_have_the_shapes_of_the_spec() {
    let app = analytics_app("");
    let service = service!(app);
    let views = [
        (
            r#"{"p":"/","r":"https://www.google.com/search?q=tabula","us":"newsletter","um":"email","uc":"launch"}"#,
            "198.51.100.1",
            CHROME_UA,
        ),
        (
            r#"{"p":"/pricing","r":"https://www.google.com/"}"#,
            "198.51.100.1",
            CHROME_UA,
        ),
        (r#"{"p":"/"}"#, "198.51.100.2", IPHONE_UA),
        (
            r#"{"p":"/docs","r":"https://news.ycombinator.com/item?id=1"}"#,
            "198.51.100.3",
            CHROME_UA,
        ),
    ];
    for (body, ip, user_agent) in views {
        assert_eq!(
            send_request(&service, collect_request(body, ip, user_agent))
                .await
                .status,
            StatusCode::NO_CONTENT
        );
    }
    let overview = get(
        &service,
        &format!("/api/analytics/overview?{}&granularity=hour", range()),
    )
    .await;
    assert_eq!(overview.status, StatusCode::OK);
    let summary = &overview.body["summary"];
    assert_eq!(summary["pageViews"], json!(4));
    assert_eq!(summary["uniqueVisitors"], json!(3));
    assert_eq!(summary["sessions"], json!(3));
    assert_eq!(summary["bounceRate"], json!(66.67));
    assert!(summary["avgSessionSeconds"].is_number());
    let series = overview.body["timeSeries"].as_array().unwrap();
    assert_eq!(series.len(), 24, "every hour of the day, empty ones as 0");
    assert_eq!(
        series
            .iter()
            .map(|period| period["pageViews"].as_u64().unwrap())
            .sum::<u64>(),
        4
    );
    assert!(series[0]["period"]
        .as_str()
        .unwrap()
        .ends_with("T00:00:00.000Z"));
    assert!(series
        .windows(2)
        .all(|pair| pair[0]["period"].as_str() < pair[1]["period"].as_str()));

    let pages = get(
        &service,
        &format!("/api/analytics/pages?{}&limit=1", range()),
    )
    .await;
    assert_eq!(
        pages.body,
        json!({"pages": [{"path": "/", "pageViews": 2, "uniqueVisitors": 2}], "total": 3})
    );

    let referrers = get(&service, &format!("/api/analytics/referrers?{}", range())).await;
    assert_eq!(
        referrers.body,
        json!({"referrers": [
        {"domain": "google.com", "pageViews": 2, "uniqueVisitors": 1},
        {"domain": null, "pageViews": 1, "uniqueVisitors": 1},
        {"domain": "news.ycombinator.com", "pageViews": 1, "uniqueVisitors": 1},
    ], "total": 3})
    );

    let devices = get(&service, &format!("/api/analytics/devices?{}", range())).await;
    assert_eq!(
        devices.body["deviceTypes"],
        json!([
            {"name": "desktop", "count": 3, "percentage": 75.0},
            {"name": "mobile", "count": 1, "percentage": 25.0},
        ])
    );
    assert_eq!(
        devices.body["browsers"][0],
        json!({"name": "Chrome", "count": 3, "percentage": 75.0})
    );
    assert_eq!(
        devices.body["operatingSystems"],
        json!([
            {"name": "Linux", "count": 3, "percentage": 75.0},
            {"name": "iOS", "count": 1, "percentage": 25.0},
        ]),
        "an iPhone runs iOS"
    );

    let campaigns = get(&service, &format!("/api/analytics/campaigns?{}", range())).await;
    assert_eq!(
        campaigns.body,
        json!({"campaigns": [
        {"source": "newsletter", "medium": "email", "campaign": "launch", "pageViews": 1, "uniqueVisitors": 1},
    ], "total": 1})
    );
}

#[actix_web::test]
async fn report_parameters_are_checked() {
    let app = analytics_app("");
    let service = service!(app);
    for report in ["overview", "pages", "referrers", "devices", "campaigns"] {
        let reply = get(&service, &format!("/api/analytics/{report}")).await;
        reply.assert_error(400, "VALIDATION_ERROR");
        assert_eq!(reply.error_fields(), vec!["from", "to"], "{report}");
    }
    let reply = get(&service, "/api/analytics/overview?from=2026-01-01").await;
    assert_eq!(reply.error_fields(), vec!["to"]);
    let reply = get(
        &service,
        "/api/analytics/overview?from=soon&to=2026-01-01&granularity=year&limit=-1",
    )
    .await;
    assert_eq!(reply.error_fields(), vec!["from", "granularity", "limit"]);
    let reply = get(
        &service,
        "/api/analytics/overview?from=2026-02-01&to=2026-01-01",
    )
    .await;
    assert_eq!(reply.error_fields(), vec!["to"]);
    let reply = get(
        &service,
        "/api/analytics/overview?from=2026-01-01&to=2026-03-31&granularity=month",
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK);
    let months: Vec<&str> = reply.body["timeSeries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|period| period["period"].as_str().unwrap())
        .collect();
    assert_eq!(
        months,
        vec![
            "2026-01-01T00:00:00.000Z",
            "2026-02-01T00:00:00.000Z",
            "2026-03-01T00:00:00.000Z"
        ]
    );
    assert_eq!(
        reply.body["summary"],
        json!({"pageViews": 0, "uniqueVisitors": 0, "sessions": 0, "bounceRate": 0.0, "avgSessionSeconds": 0.0})
    );
}

#[actix_web::test]
async fn the_tracker_script_is_small_javascript() {
    let app = analytics_app("");
    let service = service!(app);
    let reply = get(&service, "/api/analytics/script.js").await;
    assert_eq!(reply.status, StatusCode::OK);
    assert!(reply
        .header("content-type")
        .unwrap()
        .starts_with("application/javascript"));
    assert!(reply.raw.len() <= 2048, "{} bytes", reply.raw.len());
    let script = String::from_utf8(reply.raw).unwrap();
    for needle in [
        "sendBeacon",
        "keepalive",
        "pushState",
        "replaceState",
        "popstate",
    ] {
        assert!(script.contains(needle), "{needle}");
    }
}

#[actix_web::test]
async fn a_saturated_queue_sheds_with_503_and_counts_what_it_accepted() {
    let app = analytics_app("queue_capacity = 2\n");
    let service = service!(app);
    let mut accepted = 0u64;
    for index in 0..3000 {
        let body = json!({"p": format!("/p{}", index % 7)}).to_string();
        let reply = send_request(&service, collect_request(&body, "203.0.113.9", CHROME_UA)).await;
        if reply.status == StatusCode::NO_CONTENT {
            accepted += 1;
        } else {
            reply.assert_error(503, "SERVICE_UNAVAILABLE");
            assert_eq!(reply.header("retry-after").as_deref(), Some("1"));
            assert_fresh_request_id(&reply, "503");
        }
    }
    let overview = get(&service, &format!("/api/analytics/overview?{}", range())).await;
    assert_eq!(overview.body["summary"]["pageViews"], json!(accepted));
}

#[actix_web::test]
async fn counts_survive_a_restart_and_no_raw_ip_is_stored() {
    let app = analytics_app("");
    {
        let service = service!(app);
        for path in ["/a", "/b", "/a"] {
            let body = json!({"p": path}).to_string();
            let reply =
                send_request(&service, collect_request(&body, "203.0.113.77", CHROME_UA)).await;
            assert_eq!(reply.status, StatusCode::NO_CONTENT);
        }
    }
    let app = app.restart().await;
    let service = service!(app);
    let reply = send_request(
        &service,
        collect_request(r#"{"p":"/b"}"#, "203.0.113.77", CHROME_UA),
    )
    .await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT);
    let overview = get(&service, &format!("/api/analytics/overview?{}", range())).await;
    assert_eq!(overview.body["summary"]["pageViews"], json!(4));
    assert_eq!(
        overview.body["summary"]["uniqueVisitors"],
        json!(1),
        "same visitor after the restart"
    );
    assert_eq!(
        overview.body["summary"]["sessions"],
        json!(1),
        "the session goes on"
    );

    // The rollups live in the analytics store (a companion of the tables' store).
    let tree = app
        .state
        .store
        .companion(
            tabula_actors::analytics::COMPANION,
            tabula_actors::analytics::DEFAULT_CACHE_BYTES,
        )
        .unwrap()
        .system_tree("analytics")
        .unwrap();
    assert!(!tree.is_empty(), "the rollups are where this test looks");
    let ip: IpAddr = "203.0.113.77".parse().unwrap();
    let IpAddr::V4(v4) = ip else { unreachable!() };
    let needles: Vec<Vec<u8>> = vec![
        b"203.0.113.77".to_vec(),
        v4.octets().to_vec(),
        v4.to_ipv6_mapped().octets().to_vec(),
    ];
    for entry in tree.iter() {
        let (key, value) = entry.unwrap();
        for needle in &needles {
            for haystack in [&key[..], &value[..]] {
                assert!(
                    !haystack
                        .windows(needle.len())
                        .any(|window| window == needle.as_slice()),
                    "an IP form is stored"
                );
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The tracker in a real browser against the running binary

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|address| address.port())
        .expect("a free port")
}

/// Serves `page` for every request on `listener` until the test ends.
fn serve_page(listener: TcpListener, page: String) {
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut buffer = [0u8; 4096];
            let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
            let _ = stream.read(&mut buffer);
            let response = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: text/html; charset=utf-8\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{page}",
                page.len()
            );
            let _ = stream.write_all(response.as_bytes());
        }
    });
}

fn chromium_binary() -> String {
    for candidate in ["chromium", "chromium-browser", "google-chrome"] {
        let found = Command::new("sh")
            .args(["-c", &format!("command -v {candidate}")])
            .output();
        if let Ok(output) = found {
            if output.status.success() {
                return String::from_utf8_lossy(&output.stdout).trim().to_owned();
            }
        }
    }
    panic!("chromium is not installed: scripts/test installs Debian's `chromium` (apt-get install -y chromium); this test never passes without a real browser");
}

#[test]
fn browser_page_view_is_counted() {
    let chromium = chromium_binary();
    let working = tempfile::tempdir().unwrap();
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let mut server = Command::new(env!("CARGO_BIN_EXE_tabula"))
        .current_dir(working.path())
        .args(["serve", "--port", &port.to_string(), "--data-dir"])
        .arg(working.path().join("data"))
        .env_remove("TABULA_CONFIG")
        .env("TABULA_LOG", "warn")
        // The reports are for admins (SPEC §7): the first admin comes from the environment.
        .env("TABULA_ADMIN_EMAIL", "admin@example.com")
        .env("TABULA_ADMIN_PASSWORD", "analytics-admin")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("the binary starts");
    let client = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while client
        .get(format!("{base}/api/health"))
        .send()
        .map(|reply| reply.status().as_u16())
        .ok()
        != Some(200)
    {
        assert!(
            Instant::now() < deadline,
            "the server did not become healthy"
        );
        std::thread::sleep(Duration::from_millis(50));
    }

    let page = include_str!("../browser/tracker_page.html").replace("{{TABULA}}", &base);
    let page_listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let page_port = page_listener.local_addr().unwrap().port();
    serve_page(page_listener, page);

    let profile = tempfile::tempdir().unwrap();
    let mut browser = Command::new(&chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-dev-shm-usage",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg(format!(
            "http://127.0.0.1:{page_port}/landing?utm_source=browser-test&utm_medium=test"
        ))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("chromium starts");

    let admin_token: String = client
        .post(format!("{base}/api/auth/sign-in/email"))
        .json(&json!({"email": "admin@example.com", "password": "analytics-admin"}))
        .send()
        .and_then(|reply| reply.json::<Json>())
        .map(|body| body["token"].as_str().unwrap_or_default().to_owned())
        .expect("the admin signs in");
    let today = today();
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut last = Json::Null;
    let counted = loop {
        if let Ok(reply) = client
            .get(format!(
                "{base}/api/analytics/pages?from={today}&to={today}"
            ))
            .bearer_auth(&admin_token)
            .send()
        {
            last = reply.json().unwrap_or(Json::Null);
            let paths: Vec<&str> = last["pages"]
                .as_array()
                .map(|rows| rows.iter().filter_map(|row| row["path"].as_str()).collect())
                .unwrap_or_default();
            if paths.contains(&"/landing") && paths.contains(&"/spa/next") {
                break true;
            }
        }
        if Instant::now() > deadline {
            break false;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let campaigns: Json = client
        .get(format!(
            "{base}/api/analytics/campaigns?from={today}&to={today}"
        ))
        .bearer_auth(&admin_token)
        .send()
        .unwrap()
        .json()
        .unwrap();
    let _ = browser.kill();
    let _ = browser.wait();
    let _ = server.kill();
    let _ = server.wait();
    assert!(counted, "the browser's page views were not counted: {last}");
    assert_eq!(campaigns["campaigns"][0]["source"], json!("browser-test"));
}
