//! `GET /api/realtime?tables=a,b` (SPEC §11): committed record changes as Server-Sent Events.
//! `event: connected` first, then one `event: change` (`id: <sequence>`, `data: {action, table,
//! record}`) per change the caller may read — table read permission, row rule and field
//! permissions applied to every event against the live schema — a `: heartbeat` comment every
//! 15 s, and `Last-Event-ID` replay from the change feed's bounded log (docs/realtime.md).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use actix_web::http::header;
use actix_web::web::Bytes;
use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::json;
use tabula_actors::accounts::Accounts;
use tabula_actors::changes::{ChangeEvent, ChangeFeed};
use tabula_actors::permissions::{self, Action, Principal, TableAccess};
use tabula_actors::registry::Registry;
use tabula_storage::TableSchema;
use tokio::sync::{broadcast, mpsc};

use crate::auth::Caller;
use crate::error::ApiResult;
use crate::json::RecordView;
use crate::routes::records::query_pairs;
use crate::state::AppState;

/// How often an idle stream gets a comment, so proxies and clients keep it open.
pub const HEARTBEAT: Duration = Duration::from_secs(15);

/// How often an open stream checks its credential again (a revocation also shows at the next
/// event): a stream ends within this long of a sign-out, ban, removal, session expiry or key
/// revocation, and a role change applies from then on.
pub const RECHECK: Duration = Duration::from_millis(250);

/// Frames buffered for a slow client before the stream stops reading the feed (it then
/// catches up from the replay log).
const CLIENT_BUFFER: usize = 256;

pub fn configure(config: &mut web::ServiceConfig) {
    config.service(super::resource("/api/realtime").get(stream_changes));
}

/// The event payload, shared with webhooks: `{action, table, record}`, the record in the API
/// shape of `schema` (so fields `schema` leaves out are not in it).
pub fn change_payload(schema: &TableSchema, event: &ChangeEvent) -> serde_json::Value {
    let record = serde_json::to_value(RecordView {
        schema,
        record: &event.record,
        projection: None,
    })
    .unwrap_or(serde_json::Value::Null);
    json!({
        "action": event.action.name(),
        "table": event.table_name,
        "record": record,
    })
}

/// One subscriber's view of the feed: which tables, and what it may see of each.
struct Subscriber {
    registry: Arc<Registry>,
    principal: Principal,
    /// The credential the stream was opened with, while it identifies an account; checked
    /// again as revocations happen ([`Subscriber::still_valid`]).
    credential: Option<(Accounts, String)>,
    /// [`Accounts::revocations`] when the credential was last checked.
    revocations_seen: u64,
    /// The tables asked for, by id; `None`: every table the caller may read.
    tables: Option<HashSet<u32>>,
    /// The caller's access per table, computed once per schema version.
    access: HashMap<u32, (Arc<TableSchema>, Option<TableAccess>)>,
}

impl Subscriber {
    /// Whether the stream's credential still identifies its account, checked again when an
    /// account write may have revoked or changed it, or always with `force` (time alone ends a
    /// session or a key). A changed role or key replaces the principal, and every table's
    /// access is computed again for it.
    fn still_valid(&mut self, force: bool) -> bool {
        let Some((accounts, credential)) = &self.credential else {
            return true;
        };
        let revocations = accounts.revocations();
        if !force && revocations == self.revocations_seen {
            return true;
        }
        self.revocations_seen = revocations;
        let Ok(Some(mut principal)) = accounts.recheck(credential) else {
            return false;
        };
        principal.open = self.principal.open;
        if !same_identity(&principal, &self.principal) {
            self.principal = principal;
            self.access.clear();
        }
        true
    }

    /// The SSE frame for `event`, or `None` when the caller may not see it.
    fn frame(&mut self, event: &ChangeEvent) -> Option<Bytes> {
        if let Some(tables) = &self.tables {
            if !tables.contains(&event.table_id) {
                return None;
            }
        }
        let handle = self.registry.by_id(event.table_id)?;
        let schema = handle.shared.schema();
        let stale = self
            .access
            .get(&event.table_id)
            .is_none_or(|(seen, _)| !Arc::ptr_eq(seen, &schema));
        if stale {
            // A table the caller can no longer read, or a broken row rule, hides its events.
            let access = permissions::table_access(&self.principal, handle)
                .ok()
                .flatten();
            self.access.insert(event.table_id, (schema, access));
        }
        let access = self.access.get(&event.table_id)?.1.as_ref()?;
        if !access.sees(&event.record) {
            return None;
        }
        let payload = change_payload(&access.schema, event);
        Some(Bytes::from(format!(
            "id: {}\nevent: change\ndata: {payload}\n\n",
            event.sequence
        )))
    }
}

/// Whether two principals are the same account with the same role through the same key.
fn same_identity(left: &Principal, right: &Principal) -> bool {
    let same_user = match (&left.user, &right.user) {
        (Some(a), Some(b)) => Arc::ptr_eq(a, b) || (a.id == b.id && a.role == b.role),
        (None, None) => true,
        _ => false,
    };
    let same_key = match (&left.key, &right.key) {
        (Some(a), Some(b)) => Arc::ptr_eq(a, b),
        (None, None) => true,
        _ => false,
    };
    same_user && same_key
}

/// The frame that ends a stream whose credential was revoked or expired.
const REVOKED: &[u8] =
    b"event: revoked\ndata: {\"message\":\"The credential of this stream is no longer valid\"}\n\n";

/// The event id the client last saw: the `Last-Event-ID` header (what `EventSource` sends on
/// reconnect), else the `lastEventId` query parameter.
fn last_event_id(request: &HttpRequest, pairs: &[(String, String)]) -> Option<u64> {
    let header_value = request
        .headers()
        .get("last-event-id")
        .and_then(|value| value.to_str().ok())
        .map(str::to_owned);
    header_value
        .or_else(|| {
            pairs
                .iter()
                .find(|(key, _)| key == "lastEventId")
                .map(|(_, value)| value.clone())
        })
        .and_then(|text| text.trim().parse::<u64>().ok())
}

/// Streams committed changes of the named tables (every readable table when `tables` is
/// absent) as Server-Sent Events.
#[utoipa::path(get, path = "/api/realtime", tag = "realtime",
    params(("tables" = Option<String>, Query, description = "Comma-separated table names or ids; every readable table when absent"),
           ("Last-Event-ID" = Option<String>, Header, description = "Replay the events after this one"),
           ("lastEventId" = Option<u64>, Query, description = "Same as the Last-Event-ID header")),
    responses((status = 200, description = "`text/event-stream`: `event: connected`, then `event: change` with `id: <sequence>` and `data: {action, table, record}`", content_type = "text/event-stream"),
              (status = 401, description = "A named table is not open to anonymous callers"),
              (status = 404, description = "A named table does not exist or may not be read")))]
pub async fn stream_changes(
    state: web::Data<AppState>,
    caller: Caller,
    request: HttpRequest,
) -> ApiResult<HttpResponse> {
    let pairs = query_pairs(&request)?;
    let named: Vec<String> = pairs
        .iter()
        .filter(|(key, _)| key == "tables")
        .flat_map(|(_, value)| value.split(','))
        .map(str::trim)
        .filter(|name| !name.is_empty())
        .map(str::to_owned)
        .collect();
    let mut table_ids = HashSet::new();
    let mut table_names = Vec::new();
    for name in &named {
        let access = caller.table(&state, name, Action::Read)?;
        if table_ids.insert(access.handle.shared.id) {
            table_names.push(access.schema.name.clone());
        }
    }
    let credential = (caller.is_authenticated() && !caller.open)
        .then(|| crate::auth::request_credential(&request))
        .flatten()
        .map(|credential| (state.accounts.clone(), credential));
    let subscriber = Subscriber {
        registry: Arc::clone(&state.registry),
        principal: Principal::clone(&caller),
        revocations_seen: state.accounts.revocations(),
        credential,
        tables: (!named.is_empty()).then_some(table_ids),
        access: HashMap::new(),
    };
    let feed = Arc::clone(state.registry.changes());
    let last_seen = last_event_id(&request, &pairs);
    let (sender, receiver) = mpsc::channel::<Bytes>(CLIENT_BUFFER);
    // Subscribed before the response starts, so nothing released from now on is missed.
    let subscription = feed.subscribe();
    let connected = json!({
        "tables": if named.is_empty() { serde_json::Value::Null } else { json!(table_names) },
        "lastEventId": subscription.last_sequence.to_string(),
    });
    let first = Bytes::from(format!("event: connected\ndata: {connected}\n\n"));
    actix_web::rt::spawn(pump(
        feed,
        subscription.receiver,
        subscription.last_sequence,
        last_seen,
        subscriber,
        first,
        sender,
    ));
    let body = futures_util::stream::unfold(receiver, |mut receiver| async move {
        receiver
            .recv()
            .await
            .map(|frame| (Ok::<Bytes, actix_web::Error>(frame), receiver))
    });
    Ok(HttpResponse::Ok()
        .content_type("text/event-stream")
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .insert_header(("X-Accel-Buffering", "no"))
        .streaming(body))
}

/// Feeds one client: the `connected` frame, the replay, then live events and heartbeats, until
/// the client goes away.
async fn pump(
    feed: Arc<ChangeFeed>,
    mut receiver: broadcast::Receiver<Arc<ChangeEvent>>,
    subscribed_at: u64,
    last_event_id: Option<u64>,
    mut subscriber: Subscriber,
    first: Bytes,
    sender: mpsc::Sender<Bytes>,
) {
    if sender.send(first).await.is_err() {
        return;
    }
    // The last sequence number dealt with (sent, or not the caller's to see).
    let mut last_seen = subscribed_at;
    if let Some(after) = last_event_id {
        if !catch_up(&feed, after, &mut last_seen, &mut subscriber, &sender).await {
            return;
        }
    }
    let mut heartbeat =
        tokio::time::interval_at(tokio::time::Instant::now() + HEARTBEAT, HEARTBEAT);
    let mut recheck = tokio::time::interval_at(tokio::time::Instant::now() + RECHECK, RECHECK);
    loop {
        tokio::select! {
            received = receiver.recv() => match received {
                Ok(event) => {
                    if event.sequence <= last_seen {
                        continue;
                    }
                    if !subscriber.still_valid(false) {
                        end_revoked(&sender).await;
                        return;
                    }
                    last_seen = event.sequence;
                    if let Some(frame) = subscriber.frame(&event) {
                        if sender.send(frame).await.is_err() {
                            return;
                        }
                    }
                }
                Err(broadcast::error::RecvError::Lagged(_)) => {
                    let after = last_seen;
                    if !catch_up(&feed, after, &mut last_seen, &mut subscriber, &sender).await {
                        return;
                    }
                }
                Err(broadcast::error::RecvError::Closed) => return,
            },
            _ = recheck.tick() => {
                if !subscriber.still_valid(true) {
                    end_revoked(&sender).await;
                    return;
                }
            }
            _ = heartbeat.tick() => {
                if sender.send(Bytes::from_static(b": heartbeat\n\n")).await.is_err() {
                    return;
                }
            }
            _ = sender.closed() => return,
        }
    }
}

/// Tells the client why its stream ends (the stream ends when the pump returns).
async fn end_revoked(sender: &mpsc::Sender<Bytes>) {
    let _ = sender.send(Bytes::from_static(REVOKED)).await;
}

/// Sends what the replay log holds after `after`; `false` once the client is gone (or its
/// credential was revoked).
async fn catch_up(
    feed: &ChangeFeed,
    after: u64,
    last_seen: &mut u64,
    subscriber: &mut Subscriber,
    sender: &mpsc::Sender<Bytes>,
) -> bool {
    let replay = feed.since(after);
    if replay.incomplete {
        let note = Bytes::from_static(b": some events are no longer in the replay log\n\n");
        if sender.send(note).await.is_err() {
            return false;
        }
    }
    for event in replay.events {
        if !subscriber.still_valid(false) {
            end_revoked(sender).await;
            return false;
        }
        *last_seen = (*last_seen).max(event.sequence);
        if let Some(frame) = subscriber.frame(&event) {
            if sender.send(frame).await.is_err() {
                return false;
            }
        }
    }
    true
}
