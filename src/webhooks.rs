//! Webhooks (SPEC §11): every committed change of a table with `[[tables.webhooks]]` is POSTed
//! to each matching hook as the realtime payload `{action, table, record}`, signed
//! `X-Tabula-Signature: sha256=<hex HMAC-SHA256 of the body>` when the hook has a secret, and
//! retried with exponential backoff. Each attempt resolves the hook's host afresh and refuses a
//! non-public address unless `webhooks.allow_private_targets` is on ([`targets`]); redirects are
//! not followed. The last [`DELIVERY_LOG`] deliveries are kept in memory for
//! `GET /api/admin/webhooks/deliveries` (docs/realtime.md), each failure named by its
//! [`DeliveryFailure`] kind, never by the transport's own text.

pub mod targets;

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};

use hmac::{Hmac, Mac};
use serde::Serialize;
use sha2::Sha256;
use tabula_actors::changes::{ChangeEvent, ChangeFeed};
use tabula_actors::clock;
use tabula_actors::registry::Registry;
use tabula_storage::schema::WebhookDef;
use tokio::sync::broadcast;

use crate::config::WebhookSettings;
use crate::routes::realtime::change_payload;
use targets::{is_refused_as_private, literal_target, CheckedResolver, LiteralTarget};

/// Deliveries kept for the delivery log (oldest dropped first).
pub const DELIVERY_LOG: usize = 1000;
/// Attempts per delivery: the first and up to four retries.
pub const MAX_ATTEMPTS: u32 = 5;
/// The wait before the first retry; each later retry waits twice as long as the one before.
pub const FIRST_RETRY_DELAY: Duration = Duration::from_millis(500);
/// How long one attempt may take.
pub const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(10);

/// The header carrying the signature.
pub const SIGNATURE_HEADER: &str = "X-Tabula-Signature";

/// `sha256=<hex HMAC-SHA256 of body keyed with secret>`.
pub fn signature(secret: &str, body: &[u8]) -> String {
    // HMAC accepts keys of any length; `new_from_slice` cannot fail for it.
    let mut mac = match Hmac::<Sha256>::new_from_slice(secret.as_bytes()) {
        Ok(mac) => mac,
        Err(_) => return String::new(),
    };
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// Whether a hook wants an action (`events` empty or `*`: every action).
fn wants(hook: &WebhookDef, action: &str) -> bool {
    hook.events.is_empty()
        || hook
            .events
            .iter()
            .any(|event| event == "*" || event.eq_ignore_ascii_case(action))
}

/// Why an attempt failed, as the delivery log names it. The kinds are deliberately coarse: the
/// log must not tell a schema author what lies behind an address (a closed port, a TLS
/// handshake, a refused name) beyond what the receiver itself answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryFailure {
    /// The host is, or resolves to, a non-public address and private targets are not allowed.
    PrivateAddress,
    /// The URL cannot be requested (the schema rules keep such URLs out).
    InvalidUrl,
    /// No HTTP answer: the name did not resolve, the connection was refused or reset, TLS failed.
    ConnectionFailed,
    /// No answer within [`ATTEMPT_TIMEOUT`].
    Timeout,
    /// The receiver answered a redirect (3xx), which is not followed.
    RedirectNotFollowed,
    /// The receiver answered another status that is not 2xx.
    Status(u16),
}

impl DeliveryFailure {
    /// The text of the delivery log's `error`.
    pub fn describe(self) -> String {
        match self {
            DeliveryFailure::PrivateAddress => "refused: private address".to_owned(),
            DeliveryFailure::InvalidUrl => "invalid URL".to_owned(),
            DeliveryFailure::ConnectionFailed => "connection failed".to_owned(),
            DeliveryFailure::Timeout => "timeout".to_owned(),
            DeliveryFailure::RedirectNotFollowed => "redirect not followed".to_owned(),
            DeliveryFailure::Status(status) => format!("HTTP {status}"),
        }
    }

    /// Whether trying again cannot help: the delivery fails at once instead of being retried.
    fn is_final(self) -> bool {
        matches!(
            self,
            DeliveryFailure::PrivateAddress | DeliveryFailure::InvalidUrl
        )
    }

    /// The kind of a request that got no HTTP answer.
    fn of_transport_error(error: &reqwest::Error) -> DeliveryFailure {
        if is_refused_as_private(error) {
            DeliveryFailure::PrivateAddress
        } else if error.is_timeout() {
            DeliveryFailure::Timeout
        } else if error.is_builder() {
            DeliveryFailure::InvalidUrl
        } else {
            DeliveryFailure::ConnectionFailed
        }
    }
}

/// One delivery as the log shows it.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Delivery {
    pub id: String,
    pub table: String,
    pub url: String,
    pub action: String,
    pub event_id: String,
    pub record_id: String,
    /// `pending` (attempting or waiting to retry), `delivered` or `failed`.
    pub status: &'static str,
    pub attempts: u32,
    /// The HTTP status of the last answer, if any.
    pub response_status: Option<u16>,
    /// Why the last attempt failed: [`DeliveryFailure::describe`].
    pub error: Option<String>,
    pub created_at: String,
    pub updated_at: String,
}

/// The dispatcher's shared state: the HTTP client and the delivery log.
pub struct Webhooks {
    client: reqwest::Client,
    allow_private_targets: bool,
    log: Mutex<VecDeque<Delivery>>,
    next_id: AtomicU64,
}

impl Webhooks {
    /// Starts dispatching the changes of `registry`'s feed. Must run inside the actix system.
    /// Fails only when the HTTP client cannot be built (its TLS set-up).
    pub fn start(
        registry: Arc<Registry>,
        settings: &WebhookSettings,
    ) -> Result<Arc<Webhooks>, reqwest::Error> {
        let allow_private_targets = settings.allow_private_targets;
        let client = reqwest::Client::builder()
            .timeout(ATTEMPT_TIMEOUT)
            .user_agent(concat!("tabula/", env!("CARGO_PKG_VERSION")))
            // A 3xx is the receiver's answer: following it would reach an address never checked.
            .redirect(reqwest::redirect::Policy::none())
            // A proxy from the environment would be handed the URL unchecked and resolve it itself.
            .no_proxy()
            .dns_resolver(Arc::new(CheckedResolver {
                allow_private_targets,
            }))
            .build()?;
        let webhooks = Arc::new(Webhooks {
            client,
            allow_private_targets,
            log: Mutex::new(VecDeque::new()),
            next_id: AtomicU64::new(0),
        });
        let feed = Arc::clone(registry.changes());
        let subscription = feed.subscribe();
        actix_rt::spawn(dispatch(
            Arc::clone(&webhooks),
            Arc::downgrade(&registry),
            Arc::downgrade(&feed),
            subscription.receiver,
            subscription.last_sequence,
        ));
        Ok(webhooks)
    }

    fn log(&self) -> MutexGuard<'_, VecDeque<Delivery>> {
        // Entries are replaced whole; a poisoned lock still holds a consistent log.
        self.log
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The logged deliveries, newest first.
    pub fn deliveries(&self) -> Vec<Delivery> {
        self.log().iter().rev().cloned().collect()
    }

    fn record(&self, delivery: Delivery) {
        let mut log = self.log();
        if let Some(entry) = log.iter_mut().rev().find(|entry| entry.id == delivery.id) {
            *entry = delivery;
            return;
        }
        log.push_back(delivery);
        while log.len() > DELIVERY_LOG {
            log.pop_front();
        }
    }

    /// Sends every matching hook of the event's table its delivery.
    fn deliver_event(self: &Arc<Self>, registry: &Registry, event: &ChangeEvent) {
        let Some(handle) = registry.by_id(event.table_id) else {
            return;
        };
        let schema = handle.shared.schema();
        let action = event.action.name();
        let hooks: Vec<&WebhookDef> = schema
            .webhooks
            .iter()
            .filter(|hook| wants(hook, action))
            .collect();
        if hooks.is_empty() {
            return;
        }
        // Webhooks are the schema author's: the payload carries every field.
        let body = change_payload(&schema, event).to_string();
        for hook in hooks {
            let now = clock::format_ms(clock::now_ms());
            let delivery = Delivery {
                id: (self.next_id.fetch_add(1, Ordering::Relaxed) + 1).to_string(),
                table: event.table_name.clone(),
                url: hook.url.clone(),
                action: action.to_owned(),
                event_id: event.sequence.to_string(),
                record_id: event.record.id.to_string(),
                status: "pending",
                attempts: 0,
                response_status: None,
                error: None,
                created_at: now.clone(),
                updated_at: now,
            };
            self.record(delivery.clone());
            actix_rt::spawn(Arc::clone(self).send_with_retries(
                delivery,
                hook.secret.clone(),
                body.clone(),
            ));
        }
    }

    async fn send_with_retries(
        self: Arc<Self>,
        mut delivery: Delivery,
        secret: Option<String>,
        body: String,
    ) {
        let mut delay = FIRST_RETRY_DELAY;
        loop {
            delivery.attempts += 1;
            let started = Instant::now();
            let outcome = self.attempt(&delivery, secret.as_deref(), &body).await;
            let delivered = outcome.is_ok();
            let mut final_failure = false;
            match outcome {
                Ok(status) => {
                    delivery.response_status = Some(status);
                    delivery.error = None;
                }
                Err((failure, response_status)) => {
                    delivery.response_status = response_status;
                    delivery.error = Some(failure.describe());
                    final_failure = failure.is_final();
                }
            }
            tracing::debug!(
                delivery = %delivery.id,
                url = %delivery.url,
                attempt = delivery.attempts,
                delivered,
                error = ?delivery.error,
                ms = started.elapsed().as_millis(),
                "webhook attempt"
            );
            delivery.updated_at = clock::format_ms(clock::now_ms());
            if delivered {
                delivery.status = "delivered";
            } else if final_failure || delivery.attempts >= MAX_ATTEMPTS {
                delivery.status = "failed";
                tracing::warn!(delivery = %delivery.id, url = %delivery.url,
                    error = ?delivery.error, "webhook delivery failed; giving up");
            }
            self.record(delivery.clone());
            if delivery.status != "pending" {
                return;
            }
            tokio::time::sleep(delay).await;
            delay = delay.saturating_mul(2);
        }
    }

    /// One POST of the delivery: the receiver's 2xx status, or why it failed with the status it
    /// answered (if any). A host written as a non-public address is refused here; a host name is
    /// resolved and checked by the client's [`CheckedResolver`] as it connects.
    async fn attempt(
        &self,
        delivery: &Delivery,
        secret: Option<&str>,
        body: &str,
    ) -> Result<u16, (DeliveryFailure, Option<u16>)> {
        match literal_target(&delivery.url) {
            LiteralTarget::Invalid => return Err((DeliveryFailure::InvalidUrl, None)),
            LiteralTarget::Private if !self.allow_private_targets => {
                return Err((DeliveryFailure::PrivateAddress, None))
            }
            LiteralTarget::Private | LiteralTarget::Public | LiteralTarget::Name => {}
        }
        let mut request = self
            .client
            .post(&delivery.url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header("X-Tabula-Event", &delivery.action)
            .header("X-Tabula-Event-Id", &delivery.event_id)
            .header("X-Tabula-Delivery", &delivery.id);
        if let Some(secret) = secret {
            request = request.header(SIGNATURE_HEADER, signature(secret, body.as_bytes()));
        }
        let response = request
            .body(body.to_owned())
            .send()
            .await
            .map_err(|error| {
                // The transport's text stays in the server's log; the delivery log gets the kind.
                tracing::debug!(delivery = %delivery.id, url = %delivery.url, %error,
                "webhook attempt got no answer");
                (DeliveryFailure::of_transport_error(&error), None)
            })?;
        let status = response.status();
        let code = status.as_u16();
        if status.is_success() {
            Ok(code)
        } else if status.is_redirection() {
            Err((DeliveryFailure::RedirectNotFollowed, Some(code)))
        } else {
            Err((DeliveryFailure::Status(code), Some(code)))
        }
    }
}

/// Reads the change feed for as long as the server runs; a lag is caught up from the replay log.
/// Holds the registry weakly: it never keeps a stopped server's store open.
async fn dispatch(
    webhooks: Arc<Webhooks>,
    registry: Weak<Registry>,
    feed: Weak<ChangeFeed>,
    mut receiver: broadcast::Receiver<Arc<ChangeEvent>>,
    mut last_seen: u64,
) {
    loop {
        let received = receiver.recv().await;
        let (Some(registry), Some(feed)) = (registry.upgrade(), feed.upgrade()) else {
            return;
        };
        match received {
            Ok(event) => {
                if event.sequence > last_seen {
                    last_seen = event.sequence;
                    webhooks.deliver_event(&registry, &event);
                }
            }
            Err(broadcast::error::RecvError::Lagged(_)) => {
                let replay = feed.since(last_seen);
                if replay.incomplete {
                    tracing::warn!(
                        "webhooks fell behind the replay log; some events were not sent"
                    );
                }
                for event in replay.events {
                    last_seen = last_seen.max(event.sequence);
                    webhooks.deliver_event(&registry, &event);
                }
            }
            Err(broadcast::error::RecvError::Closed) => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signature_is_the_hex_hmac_sha256_of_the_body() {
        // RFC 4231 test case 2.
        assert_eq!(
            signature("Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn hooks_without_events_want_everything() {
        let hook = |events: &[&str]| WebhookDef {
            url: "http://x".into(),
            events: events.iter().map(|e| (*e).to_owned()).collect(),
            secret: None,
        };
        assert!(wants(&hook(&[]), "create"));
        assert!(wants(&hook(&["*"]), "permanent_delete"));
        assert!(wants(&hook(&["update", "create"]), "create"));
        assert!(!wants(&hook(&["update"]), "create"));
    }
}
