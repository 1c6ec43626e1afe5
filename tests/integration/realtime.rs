//! Realtime and webhooks (SPEC §11): the SSE stream read as a client reads it (`connected`, then
//! `change` events with their ids and payloads), permissions applied per event, `Last-Event-ID`
//! replay, one event per record of a batch; webhooks signed with HMAC-SHA256, retried after a
//! failing receiver, and logged for admins.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::pin::Pin;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use actix_web::body::MessageBody;
use actix_web::http::Method;
use actix_web::test;
use hmac::{Hmac, Mac};
use serde_json::{json, Value as Json};
use sha2::Sha256;

use crate::anonymous_service;
use crate::common::{get, send, send_as, TestApp};
use crate::dialects::{MEMBER, SCHEMA};
use crate::service;

/// One parsed Server-Sent Event.
#[derive(Debug, Clone)]
struct Event {
    id: Option<String>,
    event: String,
    data: Json,
}

/// The body of an SSE response, read frame by frame.
struct EventStream {
    body: Pin<Box<dyn MessageBody<Error = Box<dyn std::error::Error>>>>,
    buffer: String,
}

impl EventStream {
    async fn open<S, B>(service: &S, request: test::TestRequest) -> Result<EventStream, u16>
    where
        S: actix_web::dev::Service<
            actix_http::Request,
            Response = actix_web::dev::ServiceResponse<B>,
            Error = actix_web::Error,
        >,
        B: MessageBody + 'static,
    {
        let response = test::call_service(service, request.to_request()).await;
        if response.status() != 200 {
            return Err(response.status().as_u16());
        }
        let content_type = response
            .headers()
            .get("content-type")
            .and_then(|value| value.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        assert_eq!(content_type, "text/event-stream");
        let body = response.into_body().boxed();
        Ok(EventStream {
            body: Box::pin(MapErr(body)),
            buffer: String::new(),
        })
    }

    /// The next event (comments skipped), or `None` after `wait` without one.
    async fn next(&mut self, wait: Duration) -> Option<Event> {
        let deadline = Instant::now() + wait;
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let frame: String = self.buffer.drain(..end + 2).collect();
                if let Some(event) = parse_frame(&frame) {
                    return Some(event);
                }
                continue;
            }
            let remaining = deadline.checked_duration_since(Instant::now())?;
            let chunk = actix_web::rt::time::timeout(
                remaining,
                std::future::poll_fn(|context| self.body.as_mut().poll_next(context)),
            )
            .await
            .ok()??
            .ok()?;
            self.buffer.push_str(&String::from_utf8_lossy(&chunk));
        }
    }

    /// The next `change` event; panics after two seconds without one.
    async fn change(&mut self) -> Event {
        let event = self
            .next(Duration::from_secs(2))
            .await
            .expect("a change event");
        assert_eq!(event.event, "change", "{event:?}");
        event
    }
}

/// Erases the body's error type so that any service's body fits one field.
struct MapErr(actix_web::body::BoxBody);

impl MessageBody for MapErr {
    type Error = Box<dyn std::error::Error>;

    fn size(&self) -> actix_web::body::BodySize {
        self.0.size()
    }

    fn poll_next(
        mut self: Pin<&mut Self>,
        context: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<actix_web::web::Bytes, Self::Error>>> {
        Pin::new(&mut self.0).poll_next(context)
    }
}

fn parse_frame(frame: &str) -> Option<Event> {
    let mut id = None;
    let mut event = "message".to_owned();
    let mut data = String::new();
    for line in frame.lines() {
        if let Some(value) = line.strip_prefix("id: ") {
            id = Some(value.to_owned());
        } else if let Some(value) = line.strip_prefix("event: ") {
            event = value.to_owned();
        } else if let Some(value) = line.strip_prefix("data: ") {
            data.push_str(value);
        }
    }
    if data.is_empty() {
        return None;
    }
    Some(Event {
        id,
        event,
        data: serde_json::from_str(&data).expect("event data is JSON"),
    })
}

fn stream_request(path: &str, token: &str) -> test::TestRequest {
    test::TestRequest::get()
        .uri(path)
        .insert_header(("Authorization", format!("Bearer {token}")))
}

#[actix_web::test]
async fn a_client_sees_connected_then_each_committed_change() {
    let app = TestApp::from_toml(SCHEMA);
    let admin = service!(app);
    let member = app.token_for(MEMBER, "member").await;
    let mut stream = EventStream::open(
        &admin,
        stream_request("/api/realtime?tables=posts", &member),
    )
    .await
    .expect("the stream opens");
    let connected = stream
        .next(Duration::from_secs(2))
        .await
        .expect("connected");
    assert_eq!(connected.event, "connected");
    assert_eq!(connected.data["tables"], json!(["posts"]));

    let created = send(
        &admin,
        Method::POST,
        "/api/tables/posts/records",
        Some(json!({"title": "Live", "secret": "admin only"})),
    )
    .await;
    let id = created.body["id"].as_str().expect("id").to_owned();
    let event = stream.change().await;
    assert_eq!(event.data["action"], "create");
    assert_eq!(event.data["table"], "posts");
    assert_eq!(event.data["record"]["id"], id.as_str());
    assert_eq!(event.data["record"]["fields"]["title"], "Live");
    assert!(
        event.data["record"]["fields"].get("secret").is_none(),
        "a field the subscriber may not read is stripped: {event:?}"
    );
    let first_id: u64 = event
        .id
        .as_deref()
        .expect("an id")
        .parse()
        .expect("numeric");

    send(
        &admin,
        Method::PATCH,
        &format!("/api/tables/posts/records/{id}"),
        Some(json!({"status": "published"})),
    )
    .await;
    let updated = stream.change().await;
    assert_eq!(updated.data["action"], "update");
    assert_eq!(updated.data["record"]["fields"]["status"], "published");
    let second_id: u64 = updated.id.as_deref().expect("id").parse().expect("numeric");
    assert!(second_id > first_id);

    send(
        &admin,
        Method::DELETE,
        &format!("/api/tables/posts/records/{id}"),
        None,
    )
    .await;
    assert_eq!(stream.change().await.data["action"], "delete");
    send(
        &admin,
        Method::POST,
        &format!("/api/tables/posts/records/{id}/restore"),
        None,
    )
    .await;
    assert_eq!(stream.change().await.data["action"], "restore");
    send(
        &admin,
        Method::DELETE,
        &format!("/api/tables/posts/records/{id}?permanent=true"),
        None,
    )
    .await;
    let removed = stream.change().await;
    assert_eq!(removed.data["action"], "permanent_delete");
    assert_eq!(removed.data["record"]["id"], id.as_str());

    // A failed write publishes nothing.
    let invalid = send(
        &admin,
        Method::POST,
        "/api/tables/posts/records",
        Some(json!({"status": "nope"})),
    )
    .await;
    assert_eq!(invalid.status, 400);
    assert!(stream.next(Duration::from_millis(300)).await.is_none());
}

#[actix_web::test]
async fn a_batch_publishes_one_event_per_record() {
    let app = TestApp::from_toml(SCHEMA);
    let admin = service!(app);
    let token = app.admin_token().await;
    let mut stream = EventStream::open(&admin, stream_request("/api/realtime", &token))
        .await
        .expect("the stream opens");
    assert_eq!(
        stream
            .next(Duration::from_secs(2))
            .await
            .expect("connected")
            .event,
        "connected"
    );
    let reply = send(
        &admin,
        Method::POST,
        "/api/collections/posts/batch",
        Some(json!({"operations": [
            {"method": "create", "body": {"title": "A"}},
            {"method": "create", "body": {"title": "B"}},
            {"method": "create", "body": {"title": "C"}},
        ]})),
    )
    .await;
    assert_eq!(reply.status, 200);
    let mut ids = Vec::new();
    let mut titles = Vec::new();
    for _ in 0..3 {
        let event = stream.change().await;
        ids.push(event.id.expect("id").parse::<u64>().expect("numeric"));
        titles.push(event.data["record"]["fields"]["title"].clone());
    }
    assert_eq!(titles, vec![json!("A"), json!("B"), json!("C")]);
    assert!(ids.windows(2).all(|pair| pair[1] == pair[0] + 1), "{ids:?}");
    assert!(stream.next(Duration::from_millis(200)).await.is_none());
}

#[actix_web::test]
async fn unreadable_tables_are_refused_and_their_events_never_delivered() {
    let app = TestApp::from_toml(SCHEMA);
    let admin = service!(app);
    let anonymous = anonymous_service!(app);
    let member = app.token_for(MEMBER, "member").await;
    for path in ["/api/realtime?tables=posts", "/api/realtime?tables=nosuch"] {
        let reply = get(&anonymous, path).await;
        reply.assert_error(401, "UNAUTHORIZED");
    }
    for path in [
        "/api/realtime?tables=vault",
        "/api/realtime?tables=nosuch",
        "/api/realtime?tables=posts,vault",
    ] {
        let reply = send_as(&anonymous, &member, Method::GET, path, None).await;
        reply.assert_error(404, "NOT_FOUND");
    }

    // Subscribed to everything it may read: the vault's changes never reach it.
    let mut stream = EventStream::open(&admin, stream_request("/api/realtime", &member))
        .await
        .expect("the stream opens");
    stream
        .next(Duration::from_secs(2))
        .await
        .expect("connected");
    let vault = send(
        &admin,
        Method::POST,
        "/api/tables/vault/records",
        Some(json!({"title": "classified"})),
    )
    .await;
    assert_eq!(vault.status, 201);
    send(
        &admin,
        Method::POST,
        "/api/tables/posts/records",
        Some(json!({"title": "public news"})),
    )
    .await;
    let event = stream.change().await;
    assert_eq!(event.data["table"], "posts");
    assert!(stream.next(Duration::from_millis(200)).await.is_none());

    // The admin, asking for the vault, sees it.
    let token = app.admin_token().await;
    let mut admin_stream =
        EventStream::open(&admin, stream_request("/api/realtime?tables=vault", &token))
            .await
            .expect("the stream opens");
    admin_stream
        .next(Duration::from_secs(2))
        .await
        .expect("connected");
    send(
        &admin,
        Method::POST,
        "/api/tables/vault/records",
        Some(json!({"title": "second"})),
    )
    .await;
    assert_eq!(admin_stream.change().await.data["table"], "vault");
}

#[actix_web::test]
async fn last_event_id_replays_the_missed_events() {
    let app = TestApp::from_toml(SCHEMA);
    let admin = service!(app);
    let token = app.admin_token().await;
    let mut stream =
        EventStream::open(&admin, stream_request("/api/realtime?tables=posts", &token))
            .await
            .expect("the stream opens");
    stream
        .next(Duration::from_secs(2))
        .await
        .expect("connected");
    for title in ["one", "two", "three"] {
        send(
            &admin,
            Method::POST,
            "/api/tables/posts/records",
            Some(json!({ "title": title })),
        )
        .await;
    }
    let first = stream.change().await;
    let first_id = first.id.clone().expect("id");
    drop(stream);

    let resumed = stream_request("/api/realtime?tables=posts", &token)
        .insert_header(("Last-Event-ID", first_id.as_str()));
    let mut stream = EventStream::open(&admin, resumed).await.expect("reopens");
    assert_eq!(
        stream
            .next(Duration::from_secs(2))
            .await
            .expect("connected")
            .event,
        "connected"
    );
    let replayed: Vec<Json> = [stream.change().await, stream.change().await]
        .iter()
        .map(|event| event.data["record"]["fields"]["title"].clone())
        .collect();
    assert_eq!(replayed, vec![json!("two"), json!("three")]);
    // Then live events follow, without repeats.
    send(
        &admin,
        Method::POST,
        "/api/tables/posts/records",
        Some(json!({"title": "four"})),
    )
    .await;
    assert_eq!(
        stream.change().await.data["record"]["fields"]["title"],
        "four"
    );
    assert!(stream.next(Duration::from_millis(200)).await.is_none());
}

/// One request the receiver got.
pub(crate) struct Received {
    pub(crate) headers: HashMap<String, String>,
    pub(crate) body: Vec<u8>,
}

/// A tiny HTTP receiver on a free port: answers each request with the next status of
/// `statuses` (then 200) and hands what it received to the returned channel.
pub(crate) fn receiver(statuses: Vec<u16>) -> (String, mpsc::Receiver<Received>) {
    let mut statuses = statuses.into_iter();
    receiver_answering(move || {
        let status = statuses.next().unwrap_or(200);
        format!("HTTP/1.1 {status} Status\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
    })
}

/// A tiny HTTP receiver on a free port of 127.0.0.1 (its URL ends in `/hook`): answers each
/// request with the head `answer` makes (a whole response without a body) and hands what it
/// received to the returned channel.
pub(crate) fn receiver_answering(
    mut answer: impl FnMut() -> String + Send + 'static,
) -> (String, mpsc::Receiver<Received>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("http://{}/hook", listener.local_addr().expect("address"));
    let (sender, received) = mpsc::channel();
    std::thread::spawn(move || {
        for connection in listener.incoming() {
            let Ok(mut connection) = connection else {
                continue;
            };
            let mut reader = BufReader::new(connection.try_clone().expect("clone"));
            let mut headers = HashMap::new();
            let mut line = String::new();
            loop {
                line.clear();
                if reader.read_line(&mut line).unwrap_or(0) == 0 {
                    break;
                }
                let trimmed = line.trim_end();
                if trimmed.is_empty() {
                    break;
                }
                if let Some((name, value)) = trimmed.split_once(':') {
                    headers.insert(name.trim().to_ascii_lowercase(), value.trim().to_owned());
                }
            }
            let length: usize = headers
                .get("content-length")
                .and_then(|value| value.parse().ok())
                .unwrap_or(0);
            let mut body = vec![0; length];
            if reader.read_exact(&mut body).is_err() {
                continue;
            }
            let _ = connection.write_all(answer().as_bytes());
            if sender.send(Received { headers, body }).is_err() {
                return;
            }
        }
    });
    (url, received)
}

/// Waits (yielding to the app's tasks) for the receiver's next request.
pub(crate) async fn next_request(
    received: &mpsc::Receiver<Received>,
    wait: Duration,
) -> Option<Received> {
    let deadline = Instant::now() + wait;
    while Instant::now() < deadline {
        if let Ok(request) = received.try_recv() {
            return Some(request);
        }
        actix_web::rt::time::sleep(Duration::from_millis(20)).await;
    }
    None
}

/// The setting that lets webhooks reach the tests' receivers on 127.0.0.1.
pub(crate) const ALLOW_PRIVATE_TARGETS: &str = "[webhooks]\nallow_private_targets = true\n";

/// SCHEMA with a webhook on `posts` for creates and deletes, delivered to local receivers.
fn webhook_schema(url: &str) -> String {
    format!("{ALLOW_PRIVATE_TARGETS}{}", schema_with_hooks(&[url]))
}

/// SCHEMA with one webhook on `posts` (creates and deletes, signed) per URL of `urls`.
pub(crate) fn schema_with_hooks(urls: &[&str]) -> String {
    let hooks: String = urls
        .iter()
        .map(|url| {
            format!(
                "  [[tables.webhooks]]\n  url = \"{url}\"\n  events = [\"create\", \"delete\"]\n  secret = \"s3cret\"\n\n"
            )
        })
        .collect();
    let schema = SCHEMA.replace("[[tables]]\nid = 2", &format!("{hooks}[[tables]]\nid = 2"));
    assert!(schema.contains("tables.webhooks"));
    schema
}

#[actix_web::test]
async fn webhooks_are_signed_retried_and_logged() {
    let (url, received) = receiver(vec![500]);
    let app = TestApp::from_toml(&webhook_schema(&url));
    let admin = service!(app);
    let created = send(
        &admin,
        Method::POST,
        "/api/tables/posts/records",
        Some(json!({"title": "Hooked", "secret": "in the payload"})),
    )
    .await;
    assert_eq!(created.status, 201);
    let id = created.body["id"].as_str().expect("id").to_owned();

    let first = next_request(&received, Duration::from_secs(3))
        .await
        .expect("the first attempt");
    let retried = next_request(&received, Duration::from_secs(5))
        .await
        .expect("a retry after the 500");
    assert_eq!(first.body, retried.body, "the retry sends the same payload");
    let payload: Json = serde_json::from_slice(&retried.body).expect("JSON");
    assert_eq!(payload["action"], "create");
    assert_eq!(payload["table"], "posts");
    assert_eq!(payload["record"]["id"], id.as_str());
    assert_eq!(payload["record"]["fields"]["title"], "Hooked");
    let mut mac = Hmac::<Sha256>::new_from_slice(b"s3cret").expect("a key");
    mac.update(&retried.body);
    let expected = format!("sha256={}", hex::encode(mac.finalize().into_bytes()));
    assert_eq!(
        retried.headers.get("x-tabula-signature"),
        Some(&expected),
        "{:?}",
        retried.headers
    );
    assert_eq!(
        retried.headers.get("content-type").map(String::as_str),
        Some("application/json")
    );

    // An update is not among the hook's events: nothing is sent.
    send(
        &admin,
        Method::PATCH,
        &format!("/api/tables/posts/records/{id}"),
        Some(json!({"status": "published"})),
    )
    .await;
    assert!(next_request(&received, Duration::from_millis(700))
        .await
        .is_none());

    // The log shows one delivery, delivered on the second attempt.
    let mut log = Json::Null;
    for _ in 0..50 {
        log = get(&admin, "/api/admin/webhooks/deliveries").await.body;
        if log["deliveries"][0]["status"] == "delivered" {
            break;
        }
        actix_web::rt::time::sleep(Duration::from_millis(50)).await;
    }
    let delivery = &log["deliveries"][0];
    assert_eq!(log["pagination"]["total"], 1, "{log}");
    assert_eq!(delivery["status"], "delivered");
    assert_eq!(delivery["attempts"], 2);
    assert_eq!(delivery["responseStatus"], 200);
    assert_eq!(delivery["table"], "posts");
    assert_eq!(delivery["action"], "create");
    assert_eq!(delivery["recordId"], id.as_str());
    assert_eq!(delivery["url"], url.as_str());

    let anonymous = anonymous_service!(app);
    get(&anonymous, "/api/admin/webhooks/deliveries")
        .await
        .assert_error(401, "UNAUTHORIZED");
    let member = app.token_for(MEMBER, "member").await;
    send_as(
        &anonymous,
        &member,
        Method::GET,
        "/api/admin/webhooks/deliveries",
        None,
    )
    .await
    .assert_error(403, "FORBIDDEN");
}

/// Reads past `connected` (and any change) until the `revoked` frame; panics unless it comes
/// within a second and the stream then ends.
async fn assert_revoked(stream: &mut EventStream, what: &str) {
    let started = Instant::now();
    loop {
        let event = stream
            .next(Duration::from_secs(1).saturating_sub(started.elapsed()))
            .await
            .unwrap_or_else(|| panic!("{what}: the stream is told within a second"));
        if event.event == "revoked" {
            break;
        }
        assert_ne!(event.event, "change", "{what}: no change after revocation");
    }
    assert!(
        stream.next(Duration::from_millis(500)).await.is_none(),
        "{what}: the stream ends"
    );
}

async fn open_stream<S, B>(service: &S, token: &str) -> EventStream
where
    S: actix_web::dev::Service<
        actix_http::Request,
        Response = actix_web::dev::ServiceResponse<B>,
        Error = actix_web::Error,
    >,
    B: MessageBody + 'static,
{
    let mut stream =
        EventStream::open(service, stream_request("/api/realtime?tables=posts", token))
            .await
            .expect("the stream opens");
    let connected = stream
        .next(Duration::from_secs(2))
        .await
        .expect("connected");
    assert_eq!(connected.event, "connected");
    stream
}

#[actix_web::test]
async fn an_open_stream_ends_when_its_credential_is_revoked() {
    let app = TestApp::from_toml(SCHEMA);
    let admin = service!(app);
    let anonymous = anonymous_service!(app);

    // Ban.
    let banned = app.token_for("banned@realtime.test", "member").await;
    let mut stream = open_stream(&anonymous, &banned).await;
    let user_id = app.user_id("banned@realtime.test");
    let reply = send(
        &admin,
        Method::POST,
        "/api/auth/admin/ban-user",
        Some(json!({"userId": user_id})),
    )
    .await;
    assert_eq!(reply.status, 200);
    send(
        &admin,
        Method::POST,
        "/api/tables/posts/records",
        Some(json!({"title": "after the ban"})),
    )
    .await;
    assert_revoked(&mut stream, "ban").await;

    // Removal.
    let removed = app.token_for("removed@realtime.test", "member").await;
    let mut stream = open_stream(&anonymous, &removed).await;
    let user_id = app.user_id("removed@realtime.test");
    let reply = send(
        &admin,
        Method::POST,
        "/api/auth/admin/remove-user",
        Some(json!({"userId": user_id})),
    )
    .await;
    assert_eq!(reply.status, 200);
    assert_revoked(&mut stream, "removal").await;

    // Sign-out of the stream's own session.
    let signed_out = app.token_for("signout@realtime.test", "member").await;
    let mut stream = open_stream(&anonymous, &signed_out).await;
    let reply = send_as(
        &anonymous,
        &signed_out,
        Method::POST,
        "/api/auth/sign-out",
        None,
    )
    .await;
    assert!(reply.status.is_success(), "{reply:?}");
    assert_revoked(&mut stream, "sign-out").await;

    // A password change from another session ends this one.
    let email = "password@realtime.test";
    let first = app.token_for(email, "member").await;
    let second = app
        .state
        .accounts
        .sign_in(email, crate::common::TEST_PASSWORD)
        .await
        .expect("a second session")
        .session
        .token;
    let mut stream = open_stream(&anonymous, &first).await;
    let reply = send_as(
        &anonymous,
        &second,
        Method::POST,
        "/api/auth/change-password",
        Some(json!({"currentPassword": crate::common::TEST_PASSWORD, "newPassword": "another long password"})),
    )
    .await;
    assert_eq!(reply.status, 200, "{reply:?}");
    assert_revoked(&mut stream, "password change").await;

    // An API key deleted by its owner.
    let owner = app.token_for("keys@realtime.test", "member").await;
    let created = send_as(
        &anonymous,
        &owner,
        Method::POST,
        "/api/auth/api-keys",
        Some(json!({"name": "stream", "scope": "read"})),
    )
    .await;
    assert_eq!(created.status, 201, "{created:?}");
    let key = created.body["key"].as_str().expect("the key").to_owned();
    let key_id = created.body["id"].as_str().expect("the key id").to_owned();
    let mut stream = open_stream(&anonymous, &key).await;
    let reply = send_as(
        &anonymous,
        &owner,
        Method::DELETE,
        &format!("/api/auth/api-keys/{key_id}"),
        None,
    )
    .await;
    assert_eq!(reply.status, 200, "{reply:?}");
    assert_revoked(&mut stream, "key deletion").await;
}

#[actix_web::test]
async fn an_open_stream_ends_when_its_session_or_key_expires() {
    let app = TestApp::from_toml(SCHEMA);
    let anonymous = anonymous_service!(app);
    let session = app.token_for("expiring@realtime.test", "member").await;
    let expires_at = chrono::Utc::now() + chrono::Duration::hours(2);
    let created = send_as(
        &anonymous,
        &session,
        Method::POST,
        "/api/auth/api-keys",
        Some(json!({"name": "short", "scope": "read", "expiresAt": expires_at.to_rfc3339()})),
    )
    .await;
    assert_eq!(created.status, 201, "{created:?}");
    let key = created.body["key"].as_str().expect("the key").to_owned();
    let mut session_stream = open_stream(&anonymous, &session).await;
    let mut key_stream = open_stream(&anonymous, &key).await;
    // Nothing ends them while the credentials are valid.
    assert!(session_stream
        .next(Duration::from_millis(600))
        .await
        .is_none());
    assert!(key_stream.next(Duration::from_millis(10)).await.is_none());
    // Past both expiries (sessions last 168 h).
    app.state.accounts.clock().advance(169 * 3_600_000);
    assert_revoked(&mut session_stream, "session expiry").await;
    assert_revoked(&mut key_stream, "key expiry").await;
}

#[actix_web::test]
async fn an_open_stream_follows_a_role_change_from_the_next_event() {
    let app = TestApp::from_toml(SCHEMA);
    let admin = service!(app);
    let anonymous = anonymous_service!(app);
    let second_admin = app.token_for("second-admin@realtime.test", "admin").await;
    let mut stream = EventStream::open(&anonymous, stream_request("/api/realtime", &second_admin))
        .await
        .expect("the stream opens");
    assert_eq!(
        stream
            .next(Duration::from_secs(2))
            .await
            .expect("connected")
            .event,
        "connected"
    );
    send(
        &admin,
        Method::POST,
        "/api/tables/vault/records",
        Some(json!({"title": "V1"})),
    )
    .await;
    assert_eq!(stream.change().await.data["table"], "vault");
    send(
        &admin,
        Method::POST,
        "/api/tables/posts/records",
        Some(json!({"title": "A", "secret": "s1"})),
    )
    .await;
    assert_eq!(
        stream.change().await.data["record"]["fields"]["secret"],
        "s1"
    );

    let user_id = app.user_id("second-admin@realtime.test");
    let reply = send(
        &admin,
        Method::POST,
        "/api/auth/admin/set-role",
        Some(json!({"userId": user_id, "role": "member"})),
    )
    .await;
    assert_eq!(reply.status, 200, "{reply:?}");
    send(
        &admin,
        Method::POST,
        "/api/tables/vault/records",
        Some(json!({"title": "V2"})),
    )
    .await;
    send(
        &admin,
        Method::POST,
        "/api/tables/posts/records",
        Some(json!({"title": "B", "secret": "s2"})),
    )
    .await;
    let event = stream.change().await;
    assert_eq!(
        event.data["table"], "posts",
        "the admin-only table's events stop: {event:?}"
    );
    assert_eq!(event.data["record"]["fields"]["title"], "B");
    assert!(
        event.data["record"]["fields"].get("secret").is_none(),
        "a demoted subscriber no longer reads the admin-only field: {event:?}"
    );
    assert!(stream.next(Duration::from_millis(300)).await.is_none());
}

#[actix_web::test]
async fn a_key_limited_to_some_tables_sees_only_their_deliveries() {
    let hook = "  [[tables.webhooks]]\n  url = \"http://127.0.0.1:9/hook\"\n\n";
    let schema = SCHEMA
        .replace("[[tables]]\nid = 2", &format!("{hook}[[tables]]\nid = 2"))
        .replace(
            "  create = [\"admin\"]\n",
            &format!("  create = [\"admin\"]\n\n{hook}"),
        );
    let app = TestApp::from_toml(&format!("{ALLOW_PRIVATE_TARGETS}{schema}"));
    let admin = service!(app);
    let anonymous = anonymous_service!(app);
    send(
        &admin,
        Method::POST,
        "/api/tables/posts/records",
        Some(json!({"title": "p"})),
    )
    .await;
    send(
        &admin,
        Method::POST,
        "/api/tables/vault/records",
        Some(json!({"title": "v"})),
    )
    .await;
    let token = app.admin_token().await;
    let created = send_as(
        &anonymous,
        &token,
        Method::POST,
        "/api/auth/api-keys",
        Some(json!({"name": "posts only", "scope": "all", "tables": ["posts"]})),
    )
    .await;
    let key = created.body["key"].as_str().expect("a key").to_owned();
    let tables_of = |log: &Json| {
        let mut tables: Vec<String> = log["deliveries"]
            .as_array()
            .expect("deliveries")
            .iter()
            .filter_map(|delivery| delivery["table"].as_str().map(str::to_owned))
            .collect();
        tables.sort();
        tables.dedup();
        tables
    };
    // Deliveries are logged as they start, after the commit.
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut everything = get(&admin, "/api/admin/webhooks/deliveries").await.body;
    while tables_of(&everything).len() < 2 && Instant::now() < deadline {
        actix_web::rt::time::sleep(Duration::from_millis(20)).await;
        everything = get(&admin, "/api/admin/webhooks/deliveries").await.body;
    }
    assert_eq!(tables_of(&everything), vec!["posts", "vault"]);
    let limited = send_as(
        &anonymous,
        &key,
        Method::GET,
        "/api/admin/webhooks/deliveries",
        None,
    )
    .await;
    assert_eq!(limited.status.as_u16(), 200, "{:?}", limited.body);
    assert_eq!(tables_of(&limited.body), vec!["posts"]);
    assert_eq!(limited.body["pagination"]["total"], json!(1));
}
