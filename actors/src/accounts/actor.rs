//! The accounts actor: the only writer of `sys/accounts` once the server runs. Each message is
//! checked against the stored state (a taken email, the last admin), applied as one atomic
//! batch, reflected in the caches at once (so a revocation or a ban takes effect on the very
//! next request), and answered when durable. Password hashing never happens here: callers hash
//! on the blocking pool first, so the actor's turns stay short.

use std::sync::Arc;

use actix::{Actor, Context, Handler, Message, ResponseFuture, Supervised};
use tabula_storage::DurableTicket;

use crate::accounts::secrets::TokenDigest;
use crate::accounts::store::{AccountBatch, ApiKeyRecord, SessionRecord, User, UserRecord};
use crate::accounts::Shared;
use crate::error::{DomainError, DomainResult};

/// Creates an account, with its first session when `session` is given. A taken email is a 409;
/// with `only_if_no_admin` (the bootstrap claim) an existing admin makes it a 404.
#[derive(Message)]
#[rtype(result = "DomainResult<()>")]
pub struct InsertUser {
    pub record: UserRecord,
    pub session: Option<(TokenDigest, SessionRecord)>,
    pub only_if_no_admin: bool,
}

/// Stores a new session of an existing, unbanned account.
#[derive(Message)]
#[rtype(result = "DomainResult<()>")]
pub struct InsertSession {
    pub digest: TokenDigest,
    pub session: SessionRecord,
}

/// Ends a session (sign-out, or an expired one found in use).
#[derive(Message)]
#[rtype(result = "DomainResult<()>")]
pub struct RemoveSession {
    pub digest: TokenDigest,
}

/// Persists a session's slid expiry (the cache already has it; fire and forget).
#[derive(Message)]
#[rtype(result = "()")]
pub struct RenewSession {
    pub digest: TokenDigest,
    pub expires_at: i64,
}

/// What [`ChangeUser`] does to an account.
pub enum UserChange {
    SetRole(String),
    /// Bans the account and ends every session of it.
    Ban,
    /// A new password hash; every other session than `keep` ends.
    SetPassword {
        hash: String,
        keep: Option<TokenDigest>,
    },
}

/// Changes an account; a missing one is a 404, demoting or banning the last admin a 409.
#[derive(Message)]
#[rtype(result = "DomainResult<User>")]
pub struct ChangeUser {
    pub user_id: String,
    pub change: UserChange,
}

/// Removes an account with its sessions and API keys (records keep its id as their author).
#[derive(Message)]
#[rtype(result = "DomainResult<()>")]
pub struct RemoveUser {
    pub user_id: String,
}

/// Stores a new API key.
#[derive(Message)]
#[rtype(result = "DomainResult<()>")]
pub struct InsertApiKey {
    pub digest: TokenDigest,
    pub key: ApiKeyRecord,
}

/// Revokes an API key of `user_id`; an unknown id (or someone else's key) is a 404.
#[derive(Message)]
#[rtype(result = "DomainResult<()>")]
pub struct RemoveApiKey {
    pub user_id: String,
    pub key_id: String,
}

/// The actor that serialises every account write.
pub struct AccountsActor {
    shared: Arc<Shared>,
}

impl AccountsActor {
    pub(crate) fn new(shared: Arc<Shared>) -> Self {
        AccountsActor { shared }
    }

    fn commit(&self, batch: AccountBatch) -> DomainResult<DurableTicket> {
        Ok(self.shared.store.apply(batch)?)
    }

    fn existing(&self, user_id: &str) -> DomainResult<UserRecord> {
        self.shared
            .store
            .user(user_id)?
            .ok_or_else(|| user_not_found(user_id))
    }

    /// A 409 when `user` is the only unbanned admin.
    fn check_not_last_admin(&self, user: &User) -> DomainResult<()> {
        if user.role != crate::permissions::ADMIN_ROLE || user.banned {
            return Ok(());
        }
        let other_admin = self.shared.store.users()?.iter().any(|record| {
            record.user.id != user.id
                && record.user.role == crate::permissions::ADMIN_ROLE
                && !record.user.banned
        });
        if other_admin {
            Ok(())
        } else {
            Err(DomainError::conflict(
                "This is the only admin: make another admin first",
            ))
        }
    }

    /// Ends every session of `user_id` but `keep`, in `batch`; the digests ended.
    fn end_sessions(
        &self,
        user_id: &str,
        keep: Option<&TokenDigest>,
        batch: &mut AccountBatch,
    ) -> DomainResult<Vec<TokenDigest>> {
        let mut ended = self.shared.store.session_digests(user_id)?;
        ended.retain(|digest| Some(digest) != keep);
        for digest in &ended {
            batch.remove_session(digest, user_id);
        }
        Ok(ended)
    }
}

impl Actor for AccountsActor {
    type Context = Context<Self>;
}

impl Supervised for AccountsActor {
    fn restarting(&mut self, _context: &mut Context<Self>) {
        tracing::warn!("accounts actor restarted");
    }
}

fn user_not_found(user_id: &str) -> DomainError {
    DomainError::NotFound(format!("User '{user_id}' not found"))
}

fn after_durable<T: 'static>(
    outcome: DomainResult<(DurableTicket, T)>,
) -> ResponseFuture<DomainResult<T>> {
    Box::pin(async move {
        let (ticket, value) = outcome?;
        ticket.wait().await.map_err(|error| {
            tracing::error!(%error, "an account write could not be made durable");
            DomainError::Unavailable("The write could not be made durable".into())
        })?;
        Ok(value)
    })
}

impl Handler<InsertUser> for AccountsActor {
    type Result = ResponseFuture<DomainResult<()>>;

    fn handle(&mut self, message: InsertUser, _context: &mut Context<Self>) -> Self::Result {
        let outcome = (|| {
            let store = &self.shared.store;
            if message.only_if_no_admin && store.has_admin()? {
                return Err(crate::accounts::bootstrap_closed());
            }
            if store.user_by_email(&message.record.user.email)?.is_some() {
                return Err(DomainError::Conflict {
                    message: "An account cannot be created with this email".into(),
                    field: Some("email".into()),
                });
            }
            let mut batch = AccountBatch::default();
            batch.put_user(&message.record)?;
            if let Some((digest, session)) = &message.session {
                batch.put_session(digest, session)?;
            }
            let ticket = self.commit(batch)?;
            self.shared
                .caches
                .user_changed(Some(message.record.user.clone()), &message.record.user.id);
            Ok((ticket, ()))
        })();
        after_durable(outcome)
    }
}

impl Handler<InsertSession> for AccountsActor {
    type Result = ResponseFuture<DomainResult<()>>;

    fn handle(&mut self, message: InsertSession, _context: &mut Context<Self>) -> Self::Result {
        let outcome = (|| {
            let record = self.existing(&message.session.user_id)?;
            if record.user.banned {
                return Err(DomainError::Forbidden("This account is banned".into()));
            }
            let mut batch = AccountBatch::default();
            batch.put_session(&message.digest, &message.session)?;
            Ok((self.commit(batch)?, ()))
        })();
        after_durable(outcome)
    }
}

impl Handler<RemoveSession> for AccountsActor {
    type Result = ResponseFuture<DomainResult<()>>;

    fn handle(&mut self, message: RemoveSession, _context: &mut Context<Self>) -> Self::Result {
        let outcome = (|| {
            let Some(session) = self.shared.store.session(&message.digest)? else {
                self.shared.caches.sessions_ended(&[message.digest]);
                return Ok((DurableTicket::ready(), ()));
            };
            let mut batch = AccountBatch::default();
            batch.remove_session(&message.digest, &session.user_id);
            let ticket = self.commit(batch)?;
            self.shared.caches.sessions_ended(&[message.digest]);
            Ok((ticket, ()))
        })();
        after_durable(outcome)
    }
}

impl Handler<RenewSession> for AccountsActor {
    type Result = ();

    fn handle(&mut self, message: RenewSession, _context: &mut Context<Self>) {
        let outcome = (|| {
            // A session ended meanwhile stays ended.
            let Some(mut session) = self.shared.store.session(&message.digest)? else {
                return Ok(());
            };
            if session.expires_at >= message.expires_at {
                return Ok(());
            }
            session.expires_at = message.expires_at;
            let mut batch = AccountBatch::default();
            batch.put_session(&message.digest, &session)?;
            // Not awaited: losing a renewal in a crash only shortens a session by one step.
            self.commit(batch).map(|_| ())
        })();
        if let Err(error) = outcome {
            tracing::warn!(%error, "a session renewal was not stored");
        }
    }
}

impl Handler<ChangeUser> for AccountsActor {
    type Result = ResponseFuture<DomainResult<User>>;

    fn handle(&mut self, message: ChangeUser, _context: &mut Context<Self>) -> Self::Result {
        let outcome = (|| {
            let mut record = self.existing(&message.user_id)?;
            let mut batch = AccountBatch::default();
            let mut ended = Vec::new();
            match message.change {
                UserChange::SetRole(role) => {
                    if role != crate::permissions::ADMIN_ROLE {
                        self.check_not_last_admin(&record.user)?;
                    }
                    record.user.role = role;
                }
                UserChange::Ban => {
                    self.check_not_last_admin(&record.user)?;
                    record.user.banned = true;
                    ended = self.end_sessions(&record.user.id, None, &mut batch)?;
                }
                UserChange::SetPassword { hash, keep } => {
                    record.password_hash = hash;
                    ended = self.end_sessions(&record.user.id, keep.as_ref(), &mut batch)?;
                }
            }
            record.user.updated_at = self.shared.clock.now_ms();
            batch.put_user(&record)?;
            let ticket = self.commit(batch)?;
            self.shared
                .caches
                .user_changed(Some(record.user.clone()), &record.user.id);
            self.shared.caches.sessions_ended(&ended);
            Ok((ticket, record.user))
        })();
        after_durable(outcome)
    }
}

impl Handler<RemoveUser> for AccountsActor {
    type Result = ResponseFuture<DomainResult<()>>;

    fn handle(&mut self, message: RemoveUser, _context: &mut Context<Self>) -> Self::Result {
        let outcome = (|| {
            let record = self.existing(&message.user_id)?;
            self.check_not_last_admin(&record.user)?;
            let mut batch = AccountBatch::default();
            batch.remove_user(&record.user);
            let ended = self.end_sessions(&record.user.id, None, &mut batch)?;
            let keys = self.shared.store.api_keys_of(&record.user.id)?;
            for (digest, key) in &keys {
                batch.remove_api_key(digest, key);
            }
            let ticket = self.commit(batch)?;
            self.shared.caches.user_changed(None, &record.user.id);
            self.shared.caches.sessions_ended(&ended);
            let digests: Vec<TokenDigest> = keys.iter().map(|(digest, _)| *digest).collect();
            self.shared.caches.keys_revoked(&digests);
            Ok((ticket, ()))
        })();
        after_durable(outcome)
    }
}

impl Handler<InsertApiKey> for AccountsActor {
    type Result = ResponseFuture<DomainResult<()>>;

    fn handle(&mut self, message: InsertApiKey, _context: &mut Context<Self>) -> Self::Result {
        let outcome = (|| {
            self.existing(&message.key.user_id)?;
            let held = self.shared.store.api_keys_of(&message.key.user_id)?.len();
            let most = usize::try_from(self.shared.settings.max_api_keys).unwrap_or(usize::MAX);
            if held >= most {
                return Err(DomainError::Conflict {
                    message: format!(
                        "This account already holds {most} API keys, the most allowed; delete one first"
                    ),
                    field: None,
                });
            }
            let mut batch = AccountBatch::default();
            batch.put_api_key(&message.digest, &message.key)?;
            Ok((self.commit(batch)?, ()))
        })();
        after_durable(outcome)
    }
}

impl Handler<RemoveApiKey> for AccountsActor {
    type Result = ResponseFuture<DomainResult<()>>;

    fn handle(&mut self, message: RemoveApiKey, _context: &mut Context<Self>) -> Self::Result {
        let outcome = (|| {
            let found = self
                .shared
                .store
                .api_keys_of(&message.user_id)?
                .into_iter()
                .find(|(_, key)| key.id == message.key_id);
            let Some((digest, key)) = found else {
                return Err(DomainError::NotFound(format!(
                    "API key '{}' not found",
                    message.key_id
                )));
            };
            let mut batch = AccountBatch::default();
            batch.remove_api_key(&digest, &key);
            let ticket = self.commit(batch)?;
            self.shared.caches.keys_revoked(&[digest]);
            Ok((ticket, ()))
        })();
        after_durable(outcome)
    }
}
