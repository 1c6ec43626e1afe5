//! Where webhooks may be delivered (SPEC §11, docs/realtime.md): every spelling of a loopback
//! address and a host name resolving to one are refused at delivery time unless
//! `webhooks.allow_private_targets` is on, a private address written in a hook is a start-up
//! error naming its key, redirects are not followed, and the delivery log names a generic kind
//! of failure rather than the transport's text.
//!
//! Every address these tests name is on this machine (the loopback range, `0.0.0.0`, `::`):
//! the other private ranges are covered by the classifier's unit tests, which send nothing.

use std::net::TcpListener;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use actix_web::http::Method;
use serde_json::{json, Value as Json};

use crate::common::{config_from_toml, get, send, TestApp};
use crate::realtime::{
    next_request, receiver, receiver_answering, schema_with_hooks, Received, ALLOW_PRIVATE_TARGETS,
};
use crate::service;

/// Creates a post (the hooks' event) as the harness admin.
async fn create_post<S, B>(service: &S)
where
    S: actix_web::dev::Service<
        actix_http::Request,
        Response = actix_web::dev::ServiceResponse<B>,
        Error = actix_web::Error,
    >,
    B: actix_web::body::MessageBody,
{
    let created = send(
        service,
        Method::POST,
        "/api/tables/posts/records",
        Some(json!({"title": "Hooked"})),
    )
    .await;
    assert_eq!(created.status, 201, "{:?}", created.body);
}

/// The delivery log once `settled` holds for it (or the last one read after `wait`).
async fn deliveries_when<S, B>(
    service: &S,
    wait: Duration,
    settled: impl Fn(&[Json]) -> bool,
) -> Vec<Json>
where
    S: actix_web::dev::Service<
        actix_http::Request,
        Response = actix_web::dev::ServiceResponse<B>,
        Error = actix_web::Error,
    >,
    B: actix_web::body::MessageBody,
{
    let deadline = Instant::now() + wait;
    loop {
        let log = get(service, "/api/admin/webhooks/deliveries?limit=1000").await;
        assert_eq!(log.status, 200, "{:?}", log.body);
        let deliveries = log.body["deliveries"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        if settled(&deliveries) || Instant::now() >= deadline {
            return deliveries;
        }
        actix_web::rt::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Whether every one of `expected` deliveries is logged and no longer pending.
fn all_finished(deliveries: &[Json], expected: usize) -> bool {
    deliveries.len() == expected
        && deliveries
            .iter()
            .all(|delivery| delivery["status"] != "pending")
}

/// The delivery whose URL is `url`.
fn delivery_to<'a>(deliveries: &'a [Json], url: &str) -> &'a Json {
    deliveries
        .iter()
        .find(|delivery| delivery["url"] == url)
        .unwrap_or_else(|| panic!("no delivery to {url} in {deliveries:?}"))
}

/// Asserts that nothing reached a receiver.
fn assert_nothing_received(received: &mpsc::Receiver<Received>) {
    if let Ok(request) = received.try_recv() {
        panic!(
            "a refused delivery reached the receiver: {:?}",
            String::from_utf8_lossy(&request.body)
        );
    }
}

/// Asserts that a delivery was refused for its address: failed at once, nothing sent.
fn assert_refused(delivery: &Json) {
    assert_eq!(delivery["status"], "failed", "{delivery}");
    assert_eq!(delivery["error"], "refused: private address", "{delivery}");
    assert_eq!(
        delivery["attempts"], 1,
        "a refusal is not retried: {delivery}"
    );
    assert_eq!(delivery["responseStatus"], Json::Null, "{delivery}");
}

#[actix_web::test]
async fn every_spelling_of_a_loopback_address_is_refused_at_delivery() {
    let (url, received) = receiver(Vec::new());
    let port = url
        .trim_start_matches("http://127.0.0.1:")
        .trim_end_matches("/hook")
        .to_owned();
    let spellings = [
        "127.0.0.1",
        "2130706433",
        "0x7f.1",
        "017700000001",
        "0x7f000001",
        "0177.0.0.01",
        "127.1",
        "１２７.０.０.１",
        "0.0.0.0",
        "[::1]",
        "[::]",
        "[::ffff:127.0.0.1]",
        "[0:0:0:0:0:ffff:7f00:1]",
    ];
    let urls: Vec<String> = spellings
        .iter()
        .map(|host| format!("http://{host}:{port}/hook"))
        .collect();
    let url_refs: Vec<&str> = urls.iter().map(String::as_str).collect();
    // The hooks reach the live schema as a schema published through the API or an earlier
    // start would: loaded with the setting on, served with it off.
    let directory = tempfile::tempdir().expect("a temporary directory");
    let mut config = config_from_toml(
        directory.path(),
        &format!("{ALLOW_PRIVATE_TARGETS}{}", schema_with_hooks(&url_refs)),
    );
    config.webhooks.allow_private_targets = false;
    let app = TestApp::with_config(config, directory);
    let admin = service!(app);

    create_post(&admin).await;
    let deliveries = deliveries_when(&admin, Duration::from_secs(15), |deliveries| {
        all_finished(deliveries, urls.len())
    })
    .await;
    assert_eq!(deliveries.len(), urls.len(), "{deliveries:?}");
    for url in &urls {
        assert_refused(delivery_to(&deliveries, url));
    }
    assert_nothing_received(&received);
}

#[actix_web::test]
async fn a_host_name_resolving_to_loopback_is_refused_at_delivery() {
    let (url, received) = receiver(Vec::new());
    let by_name = url.replace("127.0.0.1", "localhost");
    let app = TestApp::from_toml(&schema_with_hooks(&[&by_name]));
    let admin = service!(app);

    create_post(&admin).await;
    let deliveries = deliveries_when(&admin, Duration::from_secs(15), |deliveries| {
        all_finished(deliveries, 1)
    })
    .await;
    assert_refused(delivery_to(&deliveries, &by_name));
    assert_nothing_received(&received);
}

#[actix_web::test]
async fn private_targets_are_delivered_when_allowed() {
    let (url, received) = receiver(Vec::new());
    let by_name = url.replace("127.0.0.1", "localhost");
    let decimal = url.replace("127.0.0.1", "2130706433");
    let app = TestApp::from_toml(&format!(
        "{ALLOW_PRIVATE_TARGETS}{}",
        schema_with_hooks(&[&by_name, &decimal])
    ));
    let admin = service!(app);

    create_post(&admin).await;
    for _ in 0..2 {
        next_request(&received, Duration::from_secs(5))
            .await
            .expect("the allowed delivery arrives");
    }
    let deliveries = deliveries_when(&admin, Duration::from_secs(5), |deliveries| {
        all_finished(deliveries, 2)
    })
    .await;
    for url in [&by_name, &decimal] {
        let delivery = delivery_to(&deliveries, url);
        assert_eq!(delivery["status"], "delivered", "{delivery}");
        assert_eq!(delivery["error"], Json::Null, "{delivery}");
    }
}

#[actix_web::test]
async fn a_redirect_is_not_followed() {
    let (final_url, finally_received) = receiver(Vec::new());
    let location = final_url.clone();
    let (redirecting_url, redirect_received) = receiver_answering(move || {
        format!(
            "HTTP/1.1 302 Found\r\nlocation: {location}\r\ncontent-length: 0\r\n\
             connection: close\r\n\r\n"
        )
    });
    let app = TestApp::from_toml(&format!(
        "{ALLOW_PRIVATE_TARGETS}{}",
        schema_with_hooks(&[&redirecting_url])
    ));
    let admin = service!(app);

    create_post(&admin).await;
    next_request(&redirect_received, Duration::from_secs(5))
        .await
        .expect("the hook's own URL gets the delivery");
    let deliveries = deliveries_when(&admin, Duration::from_secs(5), |deliveries| {
        deliveries
            .first()
            .is_some_and(|delivery| delivery["error"] != Json::Null)
    })
    .await;
    let delivery = delivery_to(&deliveries, &redirecting_url);
    assert_eq!(delivery["error"], "redirect not followed", "{delivery}");
    assert_eq!(delivery["responseStatus"], 302, "{delivery}");
    assert_ne!(delivery["status"], "delivered", "{delivery}");
    assert!(
        next_request(&finally_received, Duration::from_millis(1500))
            .await
            .is_none(),
        "the redirect's target got a request"
    );
}

#[actix_web::test]
async fn the_delivery_log_names_a_kind_of_failure_not_the_transports_text() {
    let (failing_url, failing_received) = receiver(vec![500; 5]);
    let closed_port = {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.local_addr().expect("address").port()
    };
    let closed_url = format!("http://127.0.0.1:{closed_port}/hook");
    let app = TestApp::from_toml(&format!(
        "{ALLOW_PRIVATE_TARGETS}{}",
        schema_with_hooks(&[&failing_url, &closed_url])
    ));
    let admin = service!(app);

    create_post(&admin).await;
    next_request(&failing_received, Duration::from_secs(5))
        .await
        .expect("the first attempt");
    let deliveries = deliveries_when(&admin, Duration::from_secs(5), |deliveries| {
        deliveries.len() == 2
            && deliveries
                .iter()
                .all(|delivery| delivery["error"] != Json::Null)
    })
    .await;
    let failing = delivery_to(&deliveries, &failing_url);
    assert_eq!(failing["error"], "HTTP 500", "{failing}");
    assert_eq!(failing["responseStatus"], 500, "{failing}");
    let closed = delivery_to(&deliveries, &closed_url);
    assert_eq!(closed["error"], "connection failed", "{closed}");
    assert_eq!(closed["responseStatus"], Json::Null, "{closed}");
}

#[test]
fn a_private_address_written_in_a_hook_is_a_start_up_error_naming_its_key() {
    let directory = tempfile::tempdir().expect("a temporary directory");
    let load = |text: &str| {
        let file = directory.path().join("hooks.toml");
        std::fs::write(&file, text).expect("write the config");
        let options = tabula::config::LoadOptions {
            config_path: Some(file),
            data_dir: Some(directory.path().join("data")),
            ..Default::default()
        };
        tabula::config::load_with_env(&options, &|_| None)
    };
    let hooks = schema_with_hooks(&[
        "https://hooks.example.com/tabula",
        "http://10.1.2.3/hook",
        "http://[fd00::1]:8080/hook",
    ]);
    let message = load(&hooks)
        .expect_err("private targets are refused")
        .to_string();
    assert!(message.contains("tables[0].webhooks[1].url"), "{message}");
    assert!(message.contains("tables[0].webhooks[2].url"), "{message}");
    assert!(!message.contains("webhooks[0]"), "{message}");
    assert!(
        message.contains("webhooks.allow_private_targets"),
        "{message}"
    );

    load(&format!("{ALLOW_PRIVATE_TARGETS}{hooks}")).expect("allowed by the setting");
    // A host name can only be judged when it is resolved, at delivery time.
    load(&schema_with_hooks(&["http://localhost:1/hook"])).expect("a host name loads");
}
