//! Rate limits over HTTP (SPEC §8): a brute-forced sign-in gets 429 RATE_LIMITED with a whole
//! `Retry-After`; the client is its account or key when authenticated, else its IP, and
//! `X-Forwarded-For` counts only from a trusted proxy; every group of §8 has its own limit, set
//! in `[rate_limit]`, where 0 turns it off.

use std::net::SocketAddr;

use actix_web::http::Method;
use actix_web::test::TestRequest;
use serde_json::{json, Value as Json};
use tabula::config::{Config, RateLimitSettings};

use crate::anonymous_service;
use crate::common::{demo_config, send_request, Reply, TestApp};

const STRANGER: &str = "203.0.113.9:40000";
const NEIGHBOUR: &str = "198.51.100.1:40000";
const PROXY: &str = "10.0.0.1:40000";

fn app_with(change: impl FnOnce(&mut Config)) -> TestApp {
    let directory = tempfile::tempdir().expect("a temporary directory");
    let mut config = demo_config(&directory.path().join("data"));
    change(&mut config);
    TestApp::with_config(config, directory)
}

fn from(peer: &str, request: TestRequest) -> TestRequest {
    request.peer_addr(peer.parse::<SocketAddr>().expect("an address"))
}

fn sign_in_request(peer: &str, password: &str) -> TestRequest {
    from(
        peer,
        TestRequest::post()
            .uri("/api/auth/sign-in/email")
            .set_json(json!({"email": "target@example.com", "password": password})),
    )
}

fn assert_limited(reply: &Reply, window_seconds: u64) {
    reply.assert_error(429, "RATE_LIMITED");
    let retry_after = reply.header("retry-after").expect("a Retry-After header");
    let seconds: u64 = retry_after
        .parse()
        .unwrap_or_else(|_| panic!("whole seconds, not {retry_after:?}"));
    assert!(
        (1..=window_seconds).contains(&seconds),
        "{seconds} s of a {window_seconds} s window"
    );
}

#[actix_web::test]
async fn brute_forcing_a_sign_in_is_stopped_per_client_ip() {
    let app = app_with(|config| config.rate_limit.sign_in = 3);
    let service = anonymous_service!(app);
    app.token_for("target@example.com", "member").await;
    for _ in 0..3 {
        let reply = send_request(&service, sign_in_request(STRANGER, "guess guess")).await;
        reply.assert_error(401, "UNAUTHORIZED");
    }
    // Every attempt counted: now even the right password is refused.
    let right = sign_in_request(STRANGER, crate::common::TEST_PASSWORD);
    assert_limited(&send_request(&service, right).await, 60);
    // Credentials sent along do not buy more guesses: sign-in is always counted by IP.
    let member = app.token_for("guesser@example.com", "member").await;
    let with_session = sign_in_request(STRANGER, "guess guess")
        .insert_header(("authorization", format!("Bearer {member}")));
    assert_limited(&send_request(&service, with_session).await, 60);
    // A spoofed X-Forwarded-For from a peer that is not a trusted proxy changes nothing.
    let spoofed =
        sign_in_request(STRANGER, "guess guess").insert_header(("x-forwarded-for", "192.0.2.77"));
    assert_limited(&send_request(&service, spoofed).await, 60);
    // Another address has its own budget.
    let neighbour = send_request(
        &service,
        sign_in_request(NEIGHBOUR, crate::common::TEST_PASSWORD),
    )
    .await;
    assert_eq!(neighbour.status.as_u16(), 200, "{:?}", neighbour.body);
    // Other groups are not affected.
    let health = send_request(
        &service,
        from(STRANGER, TestRequest::get().uri("/api/health")),
    )
    .await;
    assert_eq!(health.status.as_u16(), 200);
}

#[actix_web::test]
async fn a_trusted_proxy_passes_on_the_client_address() {
    let app = app_with(|config| {
        config.rate_limit.sign_in = 2;
        config.server.trusted_proxies = vec!["10.0.0.1".parse().expect("an ip")];
    });
    let service = anonymous_service!(app);
    let through_proxy = |client: &str| {
        sign_in_request(PROXY, "guess guess")
            .insert_header(("x-forwarded-for", format!("{client}, 10.0.0.1")))
    };
    for _ in 0..2 {
        send_request(&service, through_proxy("192.0.2.1"))
            .await
            .assert_error(401, "UNAUTHORIZED");
    }
    assert_limited(
        &send_request(&service, through_proxy("192.0.2.1")).await,
        60,
    );
    // A different client behind the same proxy is a different budget.
    send_request(&service, through_proxy("192.0.2.2"))
        .await
        .assert_error(401, "UNAUTHORIZED");
    // And the proxy's own requests (no header) are a third.
    send_request(&service, sign_in_request(PROXY, "guess guess"))
        .await
        .assert_error(401, "UNAUTHORIZED");
}

#[actix_web::test]
async fn authenticated_callers_are_limited_per_account_or_key() {
    let app = app_with(|config| config.rate_limit.tables_get = 2);
    let service = anonymous_service!(app);
    let first = app.token_for("first@example.com", "member").await;
    let second = app.token_for("second@example.com", "member").await;
    let key = send_request(
        &service,
        TestRequest::post()
            .uri("/api/auth/api-keys")
            .insert_header(("authorization", format!("Bearer {first}")))
            .set_json(json!({"name": "k", "scope": "read"})),
    )
    .await;
    let key = key.body["key"].as_str().expect("a key").to_owned();
    let list = |token: &str| {
        let request = from(
            STRANGER,
            TestRequest::get().uri("/api/tables/tasks/records"),
        );
        if token.is_empty() {
            request
        } else {
            request.insert_header(("authorization", format!("Bearer {token}")))
        }
    };
    for _ in 0..2 {
        assert_eq!(
            send_request(&service, list(&first)).await.status.as_u16(),
            200
        );
    }
    assert_limited(&send_request(&service, list(&first)).await, 60);
    // Same address, other identities: their own budgets.
    for token in [&second, &key] {
        let reply = send_request(&service, list(token)).await;
        assert_eq!(reply.status.as_u16(), 200, "{:?}", reply.body);
    }
    let anonymous = send_request(&service, list("")).await;
    anonymous.assert_error(401, "UNAUTHORIZED");
}

/// One request of each limited group, as `(label, window seconds, request)`.
fn one_of_each_group(member: &str, record_path: &str) -> Vec<(&'static str, u64, TestRequest)> {
    let bearer = ("authorization", format!("Bearer {member}"));
    let json_request = |method: Method, uri: &str, body: Json| {
        from(
            STRANGER,
            TestRequest::default()
                .method(method)
                .uri(uri)
                .insert_header(bearer.clone())
                .set_json(body),
        )
    };
    vec![
        (
            "sign-up",
            60,
            from(
                STRANGER,
                TestRequest::post()
                    .uri("/api/auth/sign-up/email")
                    .set_json(json!({"email": "x@example.com", "password": "long enough pw"})),
            ),
        ),
        (
            "sign-in",
            60,
            from(
                STRANGER,
                TestRequest::post()
                    .uri("/api/auth/sign-in/email")
                    .set_json(json!({"email": "x@example.com", "password": "nope nope"})),
            ),
        ),
        (
            "password",
            60,
            json_request(
                Method::POST,
                "/api/auth/change-password",
                json!({"currentPassword": "wrong wrong", "newPassword": "long enough pw"}),
            ),
        ),
        (
            "tables GET",
            60,
            from(
                STRANGER,
                TestRequest::get()
                    .uri("/api/tables")
                    .insert_header(bearer.clone()),
            ),
        ),
        (
            "tables write (PATCH)",
            60,
            json_request(Method::PATCH, record_path, json!({"status": "doing"})),
        ),
        (
            "activity GET",
            60,
            from(
                STRANGER,
                TestRequest::get()
                    .uri("/api/activity")
                    .insert_header(bearer.clone()),
            ),
        ),
        (
            "admin",
            1,
            from(
                STRANGER,
                TestRequest::post()
                    .uri("/api/admin/bootstrap/claim")
                    .set_json(json!({})),
            ),
        ),
        (
            "analytics collect",
            60,
            from(
                STRANGER,
                TestRequest::post()
                    .uri("/api/analytics/collect")
                    .set_json(json!({"p": "/"})),
            ),
        ),
    ]
}

#[actix_web::test]
async fn every_group_has_its_own_configurable_limit() {
    let app = app_with(|config| {
        config.rate_limit = RateLimitSettings {
            sign_in: 1,
            sign_up: 1,
            password: 1,
            tables_get: 1,
            tables_post: 1,
            activity_get: 1,
            admin_per_second: 1,
            analytics_collect: 1,
            ..RateLimitSettings::default()
        };
    });
    let service = anonymous_service!(app);
    let member = app.token_for("member@example.com", "member").await;
    // The record is made outside HTTP so that it spends no budget.
    let record = app
        .state
        .registry
        .resolve("tasks")
        .expect("tasks")
        .addr
        .send(tabula_actors::table::CreateRecord {
            fields: vec![("title".into(), tabula_storage::Value::Text("t".into()))],
            user_id: None,
        })
        .await
        .expect("answered")
        .expect("created");
    let record_path = format!("/api/tables/tasks/records/{}", record.id);
    let first = one_of_each_group(&member, &record_path);
    let second = one_of_each_group(&member, &record_path);
    for (label, _, request) in first {
        let reply = send_request(&service, request).await;
        assert_ne!(reply.status.as_u16(), 429, "{label}: {:?}", reply.body);
    }
    for (label, window, request) in second {
        let reply = send_request(&service, request).await;
        assert_eq!(reply.status.as_u16(), 429, "{label}: {:?}", reply.body);
        assert_limited(&reply, window);
    }
    // POST and DELETE share the write budget with PATCH.
    for method in [Method::POST, Method::DELETE] {
        let reply = send_request(
            &service,
            from(
                STRANGER,
                TestRequest::default()
                    .method(method.clone())
                    .uri(&record_path)
                    .insert_header(("authorization", format!("Bearer {member}"))),
            ),
        )
        .await;
        assert_eq!(reply.status.as_u16(), 429, "{method}");
    }
    // The admin limit is per second: a second later it admits again.
    actix_web::rt::time::sleep(std::time::Duration::from_millis(1100)).await;
    let again = send_request(
        &service,
        from(
            STRANGER,
            TestRequest::post()
                .uri("/api/admin/bootstrap/claim")
                .set_json(json!({})),
        ),
    )
    .await;
    assert_ne!(again.status.as_u16(), 429, "{:?}", again.body);
}

#[actix_web::test]
async fn a_limit_of_zero_is_off() {
    let app = app_with(|config| {
        config.rate_limit = RateLimitSettings {
            sign_in: 0,
            tables_get: 0,
            ..RateLimitSettings::default()
        };
    });
    let service = anonymous_service!(app);
    let member = app.token_for("member@example.com", "member").await;
    for _ in 0..30 {
        let reply = send_request(&service, sign_in_request(STRANGER, "guess guess")).await;
        reply.assert_error(401, "UNAUTHORIZED");
    }
    for _ in 0..150 {
        let reply = send_request(
            &service,
            from(
                STRANGER,
                TestRequest::get()
                    .uri("/api/tables")
                    .insert_header(("authorization", format!("Bearer {member}"))),
            ),
        )
        .await;
        assert_eq!(reply.status.as_u16(), 200);
    }
    // The defaults still hold where nothing was turned off: 20 sign-ups per window.
    for attempt in 0..21 {
        let reply = send_request(
            &service,
            from(
                STRANGER,
                TestRequest::post()
                    .uri("/api/auth/sign-up/email")
                    .set_json(json!({"email": format!("u{attempt}@example.com"),
                                     "password": "short"})),
            ),
        )
        .await;
        if attempt < 20 {
            reply.assert_error(400, "VALIDATION_ERROR");
        } else {
            assert_limited(&reply, 60);
        }
    }
}

#[actix_web::test]
async fn password_guesses_and_key_creation_are_counted_per_account() {
    let app = app_with(|config| {
        config.rate_limit.password = 3;
        config.rate_limit.api_keys = 4;
        config.auth.max_api_keys = 3;
    });
    let service = anonymous_service!(app);
    let session = app.token_for("guesser@example.com", "member").await;
    let request = |token: &str, path: &str, body: Json| {
        from(
            STRANGER,
            TestRequest::post()
                .uri(path)
                .insert_header(("Authorization", format!("Bearer {token}")))
                .set_json(body),
        )
    };
    let new_key = |token: &str, name: &str| {
        request(
            token,
            "/api/auth/api-keys",
            json!({"name": name, "scope": "all"}),
        )
    };
    let wrong_guess = |token: &str| {
        request(
            token,
            "/api/auth/change-password",
            json!({"currentPassword": "a wrong guess", "newPassword": "a new long password"}),
        )
    };
    // Three keys: each would once have had a budget of its own.
    let mut keys = Vec::new();
    for index in 0..3 {
        let created = send_request(&service, new_key(&session, &format!("k{index}"))).await;
        assert_eq!(created.status.as_u16(), 201, "{:?}", created.body);
        keys.push(created.body["key"].as_str().expect("key").to_owned());
    }
    // The account holds the most keys allowed: a 409 until one is deleted.
    let fourth = send_request(&service, new_key(&session, "k3")).await;
    fourth.assert_error(409, "CONFLICT");
    // A fifth creation in the window is refused whatever it would have done.
    let fifth = send_request(&service, new_key(&keys[0], "k4")).await;
    assert_limited(&fifth, 60);

    // Three wrong guesses through three different credentials spend the account's budget.
    for token in [&session, &keys[0], &keys[1]] {
        let reply = send_request(&service, wrong_guess(token)).await;
        reply.assert_error(400, "VALIDATION_ERROR");
    }
    let refused = send_request(&service, wrong_guess(&keys[2])).await;
    assert_limited(&refused, 60);
}
