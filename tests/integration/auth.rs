//! Accounts over HTTP (SPEC §8, §1): sign-up, sign-in, the session cookie, get-session,
//! sign-out, the 7-day sliding expiry, change-password, the admin's user management (bans and
//! removals end sessions and keys at once), API key expiry and scope, the bootstrap claim.

use actix_web::http::Method;
use actix_web::test::TestRequest;
use serde_json::json;

use crate::anonymous_service;
use crate::common::{send, send_as, send_request, Reply, TestApp};

const DAY_MS: i64 = 24 * 3_600_000;

async fn sign_up<S, B>(service: &S, email: &str, password: &str) -> Reply
where
    S: actix_web::dev::Service<
        actix_http::Request,
        Response = actix_web::dev::ServiceResponse<B>,
        Error = actix_web::Error,
    >,
    B: actix_web::body::MessageBody,
{
    send(
        service,
        Method::POST,
        "/api/auth/sign-up/email",
        Some(json!({"email": email, "password": password, "name": "Someone"})),
    )
    .await
}

async fn sign_in<S, B>(service: &S, email: &str, password: &str) -> Reply
where
    S: actix_web::dev::Service<
        actix_http::Request,
        Response = actix_web::dev::ServiceResponse<B>,
        Error = actix_web::Error,
    >,
    B: actix_web::body::MessageBody,
{
    send(
        service,
        Method::POST,
        "/api/auth/sign-in/email",
        Some(json!({"email": email, "password": password})),
    )
    .await
}

fn token_of(reply: &Reply) -> String {
    reply.body["token"]
        .as_str()
        .unwrap_or_else(|| panic!("a token in {:?}", reply.body))
        .to_owned()
}

#[actix_web::test]
async fn sign_up_and_sign_in_issue_a_session_as_token_and_cookie() {
    let app = TestApp::demo();
    let service = anonymous_service!(app);
    let signed_up = sign_up(&service, "  New@Example.com ", "long enough pw").await;
    assert_eq!(signed_up.status.as_u16(), 200, "{:?}", signed_up.body);
    let user = &signed_up.body["user"];
    assert_eq!(user["email"], json!("new@example.com"));
    assert_eq!(user["role"], json!("member"), "auth.default_role");
    assert!(user.get("password").is_none() && user.get("passwordHash").is_none());
    let cookie = signed_up.header("set-cookie").expect("a session cookie");
    let token = token_of(&signed_up);
    assert!(
        cookie.starts_with(&format!("tabula_session={token}")),
        "{cookie}"
    );
    for attribute in ["HttpOnly", "SameSite=Lax", "Path=/", "Max-Age=604800"] {
        assert!(cookie.contains(attribute), "{attribute} in {cookie}");
    }
    assert!(!cookie.contains("Secure"), "auth.secure_cookies is off");

    // The cookie alone authenticates.
    let by_cookie = send_request(
        &service,
        TestRequest::get()
            .uri("/api/tables/tasks/records")
            .insert_header(("cookie", format!("tabula_session={token}"))),
    )
    .await;
    assert_eq!(by_cookie.status.as_u16(), 200, "{:?}", by_cookie.body);

    let session = send_as(&service, &token, Method::GET, "/api/auth/get-session", None).await;
    assert_eq!(session.status.as_u16(), 200);
    assert!(session.body["session"]["id"].is_string());
    assert_ne!(
        session.body["session"]["id"],
        json!(token),
        "the id is not the token"
    );
    assert!(session.body["session"]["expiresAt"]
        .as_str()
        .is_some_and(|at| at.ends_with('Z')));
    assert_eq!(session.body["user"]["email"], json!("new@example.com"));

    let signed_in = sign_in(&service, "NEW@example.com", "long enough pw").await;
    assert_eq!(signed_in.status.as_u16(), 200, "{:?}", signed_in.body);
    assert_ne!(token_of(&signed_in), token, "a new session");
    assert!(signed_in.header("set-cookie").is_some());

    // Problems.
    sign_up(&service, "short@example.com", "1234567")
        .await
        .assert_error(400, "VALIDATION_ERROR");
    let bad_email = sign_up(&service, "not-an-email", "long enough pw").await;
    bad_email.assert_error(400, "VALIDATION_ERROR");
    assert_eq!(bad_email.error_fields(), vec!["email"]);
    let taken = sign_up(&service, "new@example.com", "another long pw").await;
    taken.assert_error(409, "CONFLICT");
    assert!(!taken.body.to_string().contains("new@example.com"));
    let wrong_password = sign_in(&service, "new@example.com", "wrong password").await;
    let unknown_email = sign_in(&service, "nobody@example.com", "long enough pw").await;
    wrong_password.assert_error(401, "UNAUTHORIZED");
    assert_eq!(
        wrong_password.body, unknown_email.body,
        "a wrong email reveals no more than a wrong password"
    );
    send(&service, Method::GET, "/api/auth/get-session", None)
        .await
        .assert_error(401, "UNAUTHORIZED");
    send_as(
        &service,
        "forged",
        Method::GET,
        "/api/auth/get-session",
        None,
    )
    .await
    .assert_error(401, "UNAUTHORIZED");
    send(
        &service,
        Method::POST,
        "/api/auth/sign-in/email",
        Some(json!({"email": "new@example.com"})),
    )
    .await
    .assert_error(400, "VALIDATION_ERROR");
}

#[actix_web::test]
async fn sign_up_can_be_switched_off() {
    let directory = tempfile::tempdir().expect("a temporary directory");
    let mut config = crate::common::demo_config(&directory.path().join("data"));
    config.auth.allow_sign_up = false;
    config.auth.secure_cookies = true;
    let app = TestApp::with_config(config, directory);
    let service = anonymous_service!(app);
    sign_up(&service, "new@example.com", "long enough pw")
        .await
        .assert_error(403, "FORBIDDEN");
    app.token_for("member@example.com", "member").await;
    let signed_in = sign_in(&service, "member@example.com", crate::common::TEST_PASSWORD).await;
    assert_eq!(signed_in.status.as_u16(), 200);
    let cookie = signed_in.header("set-cookie").expect("a cookie");
    assert!(cookie.contains("Secure"), "{cookie}");
}

#[actix_web::test]
async fn sign_out_ends_the_session_and_removes_the_cookie() {
    let app = TestApp::demo();
    let service = anonymous_service!(app);
    let token = token_of(&sign_up(&service, "out@example.com", "long enough pw").await);
    let other = token_of(&sign_in(&service, "out@example.com", "long enough pw").await);
    let signed_out = send_as(&service, &token, Method::POST, "/api/auth/sign-out", None).await;
    assert_eq!(signed_out.status.as_u16(), 200);
    assert_eq!(signed_out.body, json!({"success": true}));
    let cookie = signed_out.header("set-cookie").expect("a removal cookie");
    assert!(cookie.starts_with("tabula_session=;"), "{cookie}");
    for path in ["/api/auth/get-session", "/api/tables/tasks/records"] {
        send_as(&service, &token, Method::GET, path, None)
            .await
            .assert_error(401, "UNAUTHORIZED");
    }
    let still = send_as(&service, &other, Method::GET, "/api/auth/get-session", None).await;
    assert_eq!(still.status.as_u16(), 200, "only that session ended");
    // Signing out without a session is fine.
    let anonymous = send(&service, Method::POST, "/api/auth/sign-out", None).await;
    assert_eq!(anonymous.status.as_u16(), 200);
}

#[actix_web::test]
async fn sessions_last_seven_days_from_their_last_use_and_survive_a_restart() {
    let app = TestApp::demo();
    let token = {
        let service = anonymous_service!(app);
        let token = token_of(&sign_up(&service, "slide@example.com", "long enough pw").await);
        let idle = token_of(&sign_in(&service, "slide@example.com", "long enough pw").await);
        let clock = app.state.accounts.clock().clone();
        let expires = |reply: &Reply| {
            reply.body["session"]["expiresAt"]
                .as_str()
                .expect("expiresAt")
                .to_owned()
        };
        let first = send_as(&service, &token, Method::GET, "/api/auth/get-session", None).await;
        // Used every six days, the session lives on well past seven days.
        for _ in 0..3 {
            clock.advance(6 * DAY_MS);
            let reply = send_as(
                &service,
                &token,
                Method::GET,
                "/api/tables/tasks/records",
                None,
            )
            .await;
            assert_eq!(reply.status.as_u16(), 200, "{:?}", reply.body);
        }
        let later = send_as(&service, &token, Method::GET, "/api/auth/get-session", None).await;
        assert!(expires(&later) > expires(&first), "the expiry slid forward");
        // The one never used since sign-in expired after seven days.
        send_as(&service, &idle, Method::GET, "/api/auth/get-session", None)
            .await
            .assert_error(401, "UNAUTHORIZED");
        send_as(
            &service,
            &idle,
            Method::GET,
            "/api/tables/tasks/records",
            None,
        )
        .await
        .assert_error(401, "UNAUTHORIZED");
        token
    };
    let app = app.restart().await;
    let service = anonymous_service!(app);
    let reply = send_as(&service, &token, Method::GET, "/api/auth/get-session", None).await;
    assert_eq!(reply.status.as_u16(), 200, "a session survives a restart");
    // The restarted clock is the wall clock again, 18 days behind the one the session was
    // last used at: the stored expiry kept the renewals (at most an hour's step behind).
    let expires_at = chrono::DateTime::parse_from_rfc3339(
        reply.body["session"]["expiresAt"]
            .as_str()
            .expect("expiresAt"),
    )
    .expect("RFC 3339");
    let left = expires_at.timestamp_millis() - chrono::Utc::now().timestamp_millis();
    assert!(left > 25 * DAY_MS - 3_600_000 - 60_000, "{left} ms left");
    app.state.accounts.clock().advance(25 * DAY_MS + 1);
    send_as(&service, &token, Method::GET, "/api/auth/get-session", None)
        .await
        .assert_error(401, "UNAUTHORIZED");
}

#[actix_web::test]
async fn changing_the_password_ends_every_other_session() {
    let app = TestApp::demo();
    let service = anonymous_service!(app);
    let current = token_of(&sign_up(&service, "pw@example.com", "first password").await);
    let other = token_of(&sign_in(&service, "pw@example.com", "first password").await);
    let change = |current_password: &str, new_password: &str| {
        Some(json!({"currentPassword": current_password, "newPassword": new_password}))
    };
    let wrong = send_as(
        &service,
        &current,
        Method::POST,
        "/api/auth/change-password",
        change("not it at all", "second password"),
    )
    .await;
    wrong.assert_error(400, "VALIDATION_ERROR");
    assert_eq!(wrong.error_fields(), vec!["currentPassword"]);
    let short = send_as(
        &service,
        &current,
        Method::POST,
        "/api/auth/change-password",
        change("first password", "short"),
    )
    .await;
    short.assert_error(400, "VALIDATION_ERROR");
    assert_eq!(short.error_fields(), vec!["newPassword"]);
    send(
        &service,
        Method::POST,
        "/api/auth/change-password",
        change("first password", "second password"),
    )
    .await
    .assert_error(401, "UNAUTHORIZED");
    let changed = send_as(
        &service,
        &current,
        Method::POST,
        "/api/auth/change-password",
        change("first password", "second password"),
    )
    .await;
    assert_eq!(changed.status.as_u16(), 200, "{:?}", changed.body);
    assert_eq!(changed.body["success"], json!(true));
    let kept = send_as(
        &service,
        &current,
        Method::GET,
        "/api/auth/get-session",
        None,
    )
    .await;
    assert_eq!(kept.status.as_u16(), 200, "the current session stays");
    send_as(&service, &other, Method::GET, "/api/auth/get-session", None)
        .await
        .assert_error(401, "UNAUTHORIZED");
    sign_in(&service, "pw@example.com", "first password")
        .await
        .assert_error(401, "UNAUTHORIZED");
    assert_eq!(
        sign_in(&service, "pw@example.com", "second password")
            .await
            .status
            .as_u16(),
        200
    );
}

/// A member with a session and a write key, for the admin tests.
async fn member_with_key<S, B>(app: &TestApp, service: &S, email: &str) -> (String, String, String)
where
    S: actix_web::dev::Service<
        actix_http::Request,
        Response = actix_web::dev::ServiceResponse<B>,
        Error = actix_web::Error,
    >,
    B: actix_web::body::MessageBody,
{
    let token = app.token_for(email, "member").await;
    let key = send_as(
        service,
        &token,
        Method::POST,
        "/api/auth/api-keys",
        Some(json!({"name": "k", "scope": "write"})),
    )
    .await;
    assert_eq!(key.status.as_u16(), 201, "{:?}", key.body);
    let key = key.body["key"].as_str().expect("a key").to_owned();
    (token, key, app.user_id(email))
}

#[actix_web::test]
async fn banned_and_removed_users_lose_their_sessions_and_keys_at_once() {
    let app = TestApp::demo();
    let service = anonymous_service!(app);
    let admin = app.admin_token().await;
    let (banned_token, banned_key, banned_id) =
        member_with_key(&app, &service, "banned@example.com").await;
    let (removed_token, removed_key, removed_id) =
        member_with_key(&app, &service, "removed@example.com").await;
    for credential in [&banned_token, &banned_key, &removed_token, &removed_key] {
        let reply = send_as(
            &service,
            credential,
            Method::GET,
            "/api/tables/tasks/records",
            None,
        )
        .await;
        assert_eq!(reply.status.as_u16(), 200);
    }
    let member = app.token_for("plain@example.com", "member").await;
    send_as(
        &service,
        &member,
        Method::POST,
        "/api/auth/admin/ban-user",
        Some(json!({"userId": banned_id})),
    )
    .await
    .assert_error(403, "FORBIDDEN");

    let banned = send_as(
        &service,
        &admin,
        Method::POST,
        "/api/auth/admin/ban-user",
        Some(json!({"userId": banned_id})),
    )
    .await;
    assert_eq!(banned.status.as_u16(), 200, "{:?}", banned.body);
    assert_eq!(banned.body["user"]["banned"], json!(true));
    for credential in [&banned_token, &banned_key] {
        send_as(
            &service,
            credential,
            Method::GET,
            "/api/tables/tasks/records",
            None,
        )
        .await
        .assert_error(401, "UNAUTHORIZED");
    }
    sign_in(&service, "banned@example.com", crate::common::TEST_PASSWORD)
        .await
        .assert_error(403, "FORBIDDEN");

    let removed = send_as(
        &service,
        &admin,
        Method::POST,
        "/api/auth/admin/remove-user",
        Some(json!({"userId": removed_id})),
    )
    .await;
    assert_eq!(removed.status.as_u16(), 200, "{:?}", removed.body);
    assert_eq!(removed.body, json!({"success": true}));
    for credential in [&removed_token, &removed_key] {
        send_as(
            &service,
            credential,
            Method::GET,
            "/api/tables/tasks/records",
            None,
        )
        .await
        .assert_error(401, "UNAUTHORIZED");
    }
    sign_in(
        &service,
        "removed@example.com",
        crate::common::TEST_PASSWORD,
    )
    .await
    .assert_error(401, "UNAUTHORIZED");
    send_as(
        &service,
        &admin,
        Method::POST,
        "/api/auth/admin/remove-user",
        Some(json!({"userId": removed_id})),
    )
    .await
    .assert_error(404, "NOT_FOUND");

    // Both stay out after a restart (nothing was only in a cache).
    drop(service);
    let app = app.restart().await;
    let service = anonymous_service!(app);
    for credential in [&banned_token, &banned_key, &removed_token, &removed_key] {
        send_as(
            &service,
            credential,
            Method::GET,
            "/api/tables/tasks/records",
            None,
        )
        .await
        .assert_error(401, "UNAUTHORIZED");
    }
    let listed = send_as(
        &service,
        &admin,
        Method::GET,
        "/api/auth/admin/list-users",
        None,
    )
    .await;
    let users = listed.body["users"].as_array().expect("users");
    assert!(users.iter().all(|user| user["id"] != json!(removed_id)));
    assert!(users
        .iter()
        .any(|user| user["id"] == json!(banned_id) && user["banned"] == json!(true)));
}

#[actix_web::test]
async fn the_admin_manages_users_and_the_last_admin_stays() {
    let app = TestApp::demo();
    let service = anonymous_service!(app);
    let admin = app.admin_token().await;
    let admin_id = app.user_id(crate::common::ADMIN_EMAIL);
    let created = send_as(
        &service,
        &admin,
        Method::POST,
        "/api/auth/admin/create-user",
        Some(
            json!({"email": "viewer@example.com", "password": "viewer password",
                    "name": "Vi", "role": "viewer"}),
        ),
    )
    .await;
    assert_eq!(created.status.as_u16(), 201, "{:?}", created.body);
    assert_eq!(created.body["user"]["role"], json!("viewer"));
    let viewer_id = created.body["user"]["id"].as_str().expect("id").to_owned();
    send_as(
        &service,
        &admin,
        Method::POST,
        "/api/auth/admin/create-user",
        Some(json!({"email": "viewer@example.com", "password": "viewer password"})),
    )
    .await
    .assert_error(409, "CONFLICT");
    let viewer = token_of(&sign_in(&service, "viewer@example.com", "viewer password").await);
    send_as(
        &service,
        &viewer,
        Method::POST,
        "/api/tables/tasks/records",
        Some(json!({"title": "no"})),
    )
    .await
    .assert_error(403, "FORBIDDEN");
    send_as(
        &service,
        &viewer,
        Method::GET,
        "/api/auth/admin/list-users",
        None,
    )
    .await
    .assert_error(403, "FORBIDDEN");

    // A new role takes effect on the next request of an existing session.
    let promoted = send_as(
        &service,
        &admin,
        Method::POST,
        "/api/auth/admin/set-role",
        Some(json!({"userId": viewer_id, "role": "member"})),
    )
    .await;
    assert_eq!(promoted.status.as_u16(), 200, "{:?}", promoted.body);
    assert_eq!(promoted.body["user"]["role"], json!("member"));
    let created = send_as(
        &service,
        &viewer,
        Method::POST,
        "/api/tables/tasks/records",
        Some(json!({"title": "now yes"})),
    )
    .await;
    assert_eq!(created.status.as_u16(), 201, "{:?}", created.body);
    send_as(
        &service,
        &admin,
        Method::POST,
        "/api/auth/admin/set-role",
        Some(json!({"userId": viewer_id, "role": "Not A Role"})),
    )
    .await
    .assert_error(400, "VALIDATION_ERROR");
    send_as(
        &service,
        &admin,
        Method::POST,
        "/api/auth/admin/set-role",
        Some(json!({"userId": "nosuchuser", "role": "member"})),
    )
    .await
    .assert_error(404, "NOT_FOUND");

    // The only admin cannot demote, ban or remove itself.
    for (path, body) in [
        (
            "/api/auth/admin/set-role",
            json!({"userId": admin_id, "role": "member"}),
        ),
        ("/api/auth/admin/ban-user", json!({"userId": admin_id})),
        ("/api/auth/admin/remove-user", json!({"userId": admin_id})),
    ] {
        send_as(&service, &admin, Method::POST, path, Some(body))
            .await
            .assert_error(409, "CONFLICT");
    }
    let listed = send_as(
        &service,
        &admin,
        Method::GET,
        "/api/auth/admin/list-users",
        None,
    )
    .await;
    assert_eq!(listed.status.as_u16(), 200);
    assert_eq!(listed.body["total"], json!(2));
}

#[actix_web::test]
async fn api_keys_expire_and_are_narrowed_by_their_scope() {
    let app = TestApp::demo();
    let service = anonymous_service!(app);
    let member = app.token_for("keys@example.com", "member").await;
    let in_an_hour = chrono::Utc::now() + chrono::Duration::hours(1);
    let created = send_as(
        &service,
        &member,
        Method::POST,
        "/api/auth/api-keys",
        Some(json!({"name": "hourly", "scope": "read",
                    "expiresAt": in_an_hour.to_rfc3339()})),
    )
    .await;
    assert_eq!(created.status.as_u16(), 201, "{:?}", created.body);
    let key = created.body["key"].as_str().expect("key").to_owned();
    assert!(key.starts_with("tab_"));
    assert!(key.starts_with(created.body["prefix"].as_str().expect("prefix")));
    assert_eq!(created.body["scope"], json!("read"));
    let read = send_as(
        &service,
        &key,
        Method::GET,
        "/api/tables/tasks/records",
        None,
    )
    .await;
    assert_eq!(read.status.as_u16(), 200);
    send_as(
        &service,
        &key,
        Method::POST,
        "/api/tables/tasks/records",
        Some(json!({"title": "by a read key"})),
    )
    .await
    .assert_error(403, "FORBIDDEN");
    // A key cannot manage keys or passwords (only a session can).
    let nested = send_as(
        &service,
        &key,
        Method::POST,
        "/api/auth/api-keys",
        Some(json!({"name": "child", "scope": "all"})),
    )
    .await;
    nested.assert_error(403, "FORBIDDEN");

    app.state.accounts.clock().advance(3_600_000 + 1);
    send_as(
        &service,
        &key,
        Method::GET,
        "/api/tables/tasks/records",
        None,
    )
    .await
    .assert_error(401, "UNAUTHORIZED");
    let listed = send_as(&service, &member, Method::GET, "/api/auth/api-keys", None).await;
    assert_eq!(listed.body["apiKeys"][0]["name"], json!("hourly"));
    assert!(listed.body["apiKeys"][0].get("key").is_none());

    for (body, field) in [
        (json!({"name": "x", "scope": "everything"}), "scope"),
        (json!({"scope": "read"}), "name"),
        (
            json!({"name": "x", "scope": "read", "expiresAt": "2001-01-01T00:00:00Z"}),
            "expiresAt",
        ),
        (
            json!({"name": "x", "scope": "read", "tables": "tasks"}),
            "tables",
        ),
    ] {
        let reply = send_as(
            &service,
            &member,
            Method::POST,
            "/api/auth/api-keys",
            Some(body),
        )
        .await;
        reply.assert_error(400, "VALIDATION_ERROR");
        assert_eq!(
            reply.error_fields(),
            vec![field.to_owned()],
            "{:?}",
            reply.body
        );
    }
    send(
        &service,
        Method::POST,
        "/api/auth/api-keys",
        Some(json!({"name": "x", "scope": "read"})),
    )
    .await
    .assert_error(401, "UNAUTHORIZED");
    let other = app.token_for("other@example.com", "member").await;
    let id = listed.body["apiKeys"][0]["id"].as_str().expect("id");
    send_as(
        &service,
        &other,
        Method::DELETE,
        &format!("/api/auth/api-keys/{id}"),
        None,
    )
    .await
    .assert_error(404, "NOT_FOUND");
}

#[actix_web::test]
async fn the_bootstrap_claim_needs_the_fresh_token_and_only_works_while_no_account_exists() {
    let app = TestApp::demo();
    let service = anonymous_service!(app);
    let claim = |token: Option<&str>| {
        let mut request = TestRequest::post()
            .uri("/api/admin/bootstrap/claim")
            .set_json(
                json!({"email": "root@example.com", "password": "root password",
                             "name": "Root"}),
            );
        if let Some(token) = token {
            request = request.insert_header(("authorization", format!("Bearer {token}")));
        }
        request
    };
    let stale = app
        .state
        .accounts
        .issue_bootstrap_token()
        .expect("issued")
        .expect("no account yet");
    let token = app
        .state
        .accounts
        .issue_bootstrap_token()
        .expect("issued")
        .expect("no account yet");
    send_request(&service, claim(None))
        .await
        .assert_error(401, "UNAUTHORIZED");
    send_request(&service, claim(Some(&stale)))
        .await
        .assert_error(401, "UNAUTHORIZED");
    let bad_body = send_request(
        &service,
        TestRequest::post()
            .uri("/api/admin/bootstrap/claim")
            .insert_header(("authorization", format!("Bearer {token}")))
            .set_json(json!({"email": "root@example.com", "password": "short"})),
    )
    .await;
    bad_body.assert_error(400, "VALIDATION_ERROR");

    app.state.accounts.clock().advance(3_600_000);
    send_request(&service, claim(Some(&token)))
        .await
        .assert_error(401, "UNAUTHORIZED");
    let fresh = app
        .state
        .accounts
        .issue_bootstrap_token()
        .expect("issued")
        .expect("no account yet");
    let claimed = send_request(&service, claim(Some(&fresh))).await;
    assert_eq!(claimed.status.as_u16(), 201, "{:?}", claimed.body);
    assert_eq!(claimed.body["user"]["role"], json!("admin"));
    assert!(claimed.header("set-cookie").is_some());
    let session = token_of(&claimed);
    let users = send_as(
        &service,
        &session,
        Method::GET,
        "/api/auth/admin/list-users",
        None,
    )
    .await;
    assert_eq!(users.status.as_u16(), 200);
    send_request(&service, claim(Some(&fresh)))
        .await
        .assert_error(404, "NOT_FOUND");
    assert!(app
        .state
        .accounts
        .issue_bootstrap_token()
        .expect("answered")
        .is_none());
}

#[actix_web::test]
async fn the_bootstrap_claim_stays_open_while_no_admin_exists() {
    let app = TestApp::demo();
    let service = anonymous_service!(app);
    // A public sign-up before anyone claimed the first admin.
    let member = sign_up(&service, "early@example.com", "early bird password").await;
    assert_eq!(member.status.as_u16(), 200, "{:?}", member.body);
    assert_eq!(member.body["user"]["role"], json!("member"));
    let token = app
        .state
        .accounts
        .issue_bootstrap_token()
        .expect("issued")
        .expect("no admin yet, so a token is still issued");
    let claim = || {
        TestRequest::post()
            .uri("/api/admin/bootstrap/claim")
            .insert_header(("authorization", format!("Bearer {token}")))
            .set_json(
                json!({"email": "root@example.com", "password": "root password", "name": "Root"}),
            )
    };
    let claimed = send_request(&service, claim()).await;
    assert_eq!(claimed.status.as_u16(), 201, "{:?}", claimed.body);
    assert_eq!(claimed.body["user"]["role"], json!("admin"));
    let closed = send_request(&service, claim()).await;
    closed.assert_error(404, "NOT_FOUND");
    assert_ne!(
        closed.body["message"],
        json!("Route not found"),
        "the route exists"
    );
    assert!(app
        .state
        .accounts
        .issue_bootstrap_token()
        .expect("answered")
        .is_none());
}
