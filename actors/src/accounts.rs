//! Accounts (SPEC §8, §1): users with roles, sessions, API keys, the first-admin bootstrap, and
//! turning a bearer credential into a [`Principal`] on every request.
//!
//! Writes go through the [`actor::AccountsActor`] (one writer of `sys/accounts`); passwords are
//! hashed on the blocking pool before a write is sent. Reads go straight to sled through three
//! caches (sessions and API keys by token digest, users by id), so an authenticated request
//! costs one sha256 and two hash-map lookups. The actor updates the caches right after each
//! write, and a generation counter keeps a reader that raced a write from caching what the
//! write removed (see [`Caches::fill`]): a sign-out, ban, role change or key revocation takes
//! effect on the next request.

pub mod actor;
pub mod secrets;
pub mod store;

use std::hash::Hash;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use actix::{Addr, Arbiter, Supervisor};
use dashmap::DashMap;
use tabula_storage::{StorageResult, Store};

use crate::accounts::actor::{
    AccountsActor, ChangeUser, InsertApiKey, InsertSession, InsertUser, RemoveApiKey,
    RemoveSession, RemoveUser, RenewSession, UserChange,
};
use crate::accounts::secrets::TokenDigest;
use crate::clock;
use crate::error::{DomainError, DomainResult};
use crate::permissions::{Principal, ADMIN_ROLE};

pub use store::{
    normalise_email, AccountStore, ApiKeyRecord, KeyScope, SessionRecord, User, UserRecord,
};

/// How long the bootstrap token logged at first start stays valid (SPEC §1).
pub const BOOTSTRAP_TOKEN_TTL_MS: i64 = 3_600_000;
/// The longest name accepted for an account or an API key, in characters.
pub const MAX_NAME_CHARS: usize = 200;
/// A session's stored expiry is pushed forward at most this often (the cache slides at once).
const MAX_RENEW_STEP_MS: i64 = 3_600_000;

/// The time accounts live by: the wall clock plus an offset that tests move forward to expire
/// sessions and keys without waiting.
#[derive(Debug, Clone, Default)]
pub struct AccountsClock {
    offset_ms: Arc<AtomicI64>,
}

impl AccountsClock {
    pub fn system() -> Self {
        AccountsClock::default()
    }

    pub fn now_ms(&self) -> i64 {
        clock::now_ms().saturating_add(self.offset_ms.load(Ordering::Relaxed))
    }

    /// Moves this clock (and every clone of it) `milliseconds` forward.
    pub fn advance(&self, milliseconds: i64) {
        self.offset_ms.fetch_add(milliseconds, Ordering::Relaxed);
    }
}

/// The `[auth]` settings the accounts need.
#[derive(Debug, Clone)]
pub struct AccountSettings {
    /// How long a session lasts without being used, in milliseconds.
    pub session_ttl_ms: i64,
    /// The role of accounts that sign up.
    pub default_role: String,
    /// Whether anyone may sign up.
    pub allow_sign_up: bool,
    /// The most API keys one account may hold.
    pub max_api_keys: u32,
}

/// A session in the cache: its expiry slides in place.
struct CachedSession {
    id: String,
    user_id: String,
    created_at: i64,
    expires_at: AtomicI64,
}

/// The read caches (see the module documentation for the race they guard against).
pub(crate) struct Caches {
    sessions: DashMap<TokenDigest, Arc<CachedSession>>,
    users: DashMap<String, Arc<User>>,
    keys: DashMap<TokenDigest, Arc<ApiKeyRecord>>,
    /// Bumped by every write that removes or changes a cached value, between the sled write
    /// and the cache update.
    generation: AtomicU64,
}

impl Caches {
    fn new() -> Self {
        Caches {
            sessions: DashMap::new(),
            users: DashMap::new(),
            keys: DashMap::new(),
            generation: AtomicU64::new(0),
        }
    }

    fn generation(&self) -> u64 {
        self.generation.load(Ordering::SeqCst)
    }

    fn bump(&self) {
        self.generation.fetch_add(1, Ordering::SeqCst);
    }

    /// Caches a value read from sled when the read began at generation `before`; if a write
    /// happened since, the value may be stale and is dropped again.
    fn fill<K: Eq + Hash + Clone, V>(&self, map: &DashMap<K, V>, key: K, value: V, before: u64) {
        map.insert(key.clone(), value);
        if self.generation() != before {
            map.remove(&key);
        }
    }

    pub(crate) fn user_changed(&self, user: Option<User>, user_id: &str) {
        self.bump();
        match user {
            Some(user) => {
                self.users.insert(user_id.to_owned(), Arc::new(user));
            }
            None => {
                self.users.remove(user_id);
            }
        }
    }

    pub(crate) fn sessions_ended(&self, digests: &[TokenDigest]) {
        self.bump();
        for digest in digests {
            self.sessions.remove(digest);
        }
    }

    pub(crate) fn keys_revoked(&self, digests: &[TokenDigest]) {
        self.bump();
        for digest in digests {
            self.keys.remove(digest);
        }
    }
}

/// What the handle and the actor share.
pub(crate) struct Shared {
    pub(crate) store: AccountStore,
    pub(crate) caches: Caches,
    pub(crate) settings: AccountSettings,
    pub(crate) clock: AccountsClock,
    /// The digest and expiry of the one-time bootstrap token, while one is outstanding.
    bootstrap: Mutex<Option<(TokenDigest, i64)>>,
}

/// A session just issued. The token is shown once and never stored.
#[derive(Debug, Clone)]
pub struct IssuedSession {
    pub token: String,
    pub session: SessionRecord,
}

/// An account and a fresh session of it (sign-up, sign-in, bootstrap claim).
#[derive(Debug, Clone)]
pub struct SignedIn {
    pub user: User,
    pub session: IssuedSession,
}

/// An account to create, as given by a client.
#[derive(Debug, Clone, Default)]
pub struct NewAccount {
    pub email: String,
    pub password: String,
    pub name: String,
    /// `None`: the default role.
    pub role: Option<String>,
}

/// An API key to create.
#[derive(Debug, Clone)]
pub struct NewApiKey {
    pub name: String,
    pub scope: KeyScope,
    pub tables: Option<Vec<String>>,
    pub expires_at: Option<i64>,
}

/// An API key just created: the key (shown once) and what is stored about it.
#[derive(Debug, Clone)]
pub struct CreatedApiKey {
    pub key: String,
    pub record: ApiKeyRecord,
}

/// The accounts of one server. Cheap to clone.
#[derive(Clone)]
pub struct Accounts {
    shared: Arc<Shared>,
    addr: Addr<AccountsActor>,
    /// The actor's own thread, stopped and joined by [`Accounts::shutdown`].
    arbiter: Arc<Mutex<Option<Arbiter>>>,
}

fn invalid(field: &str, message: impl Into<String>) -> DomainError {
    DomainError::Validation(vec![crate::error::FieldError::new(field, message)])
}

/// A role name: `[a-z][a-z0-9_-]{0,31}`.
pub fn is_valid_role(role: &str) -> bool {
    let mut characters = role.chars();
    characters
        .next()
        .is_some_and(|first| first.is_ascii_lowercase())
        && role.len() <= 32
        && characters.all(|character| {
            character.is_ascii_lowercase()
                || character.is_ascii_digit()
                || character == '_'
                || character == '-'
        })
}

/// Checks and normalises a new account's details (every problem reported).
fn checked_account(
    account: &NewAccount,
    default_role: &str,
) -> DomainResult<(String, String, String)> {
    let mut errors = Vec::new();
    let email = normalise_email(&account.email);
    if email.is_empty() || !crate::validate::is_valid_email_address(&email) {
        errors.push(crate::error::FieldError::new(
            "email",
            "A valid email address is required",
        ));
    }
    if let Err(message) = secrets::check_password(&account.password) {
        errors.push(crate::error::FieldError::new("password", message));
    }
    let name = account.name.trim().to_owned();
    if name.chars().count() > MAX_NAME_CHARS {
        errors.push(crate::error::FieldError::new(
            "name",
            format!("Name must be at most {MAX_NAME_CHARS} characters"),
        ));
    }
    let role = account
        .role
        .clone()
        .unwrap_or_else(|| default_role.to_owned());
    if !is_valid_role(&role) {
        errors.push(crate::error::FieldError::new(
            "role",
            "A role is a lower-case name: letters, digits, '_' or '-'",
        ));
    }
    if errors.is_empty() {
        Ok((email, name, role))
    } else {
        Err(DomainError::Validation(errors))
    }
}

async fn hash_off_thread(password: String) -> DomainResult<String> {
    actix_rt::task::spawn_blocking(move || secrets::hash_password(&password))
        .await
        .map_err(|error| DomainError::Unavailable(format!("password hashing failed: {error}")))?
        .map_err(DomainError::Unavailable)
}

async fn verify_off_thread(password: String, hash: String) -> DomainResult<bool> {
    actix_rt::task::spawn_blocking(move || secrets::verify_password(&password, &hash))
        .await
        .map_err(|error| DomainError::Unavailable(format!("password check failed: {error}")))
}

fn invalid_credentials() -> DomainError {
    DomainError::Unauthorized("Invalid email or password".into())
}

/// A new account record (its password already hashed).
pub fn new_user_record(
    email: String,
    name: String,
    role: String,
    password_hash: String,
    now: i64,
) -> UserRecord {
    UserRecord {
        user: User {
            id: secrets::new_id(),
            email,
            name,
            role,
            banned: false,
            created_at: now,
            updated_at: now,
        },
        password_hash,
    }
}

/// The problems of a validation error as one line (`password: Password must be at least 8
/// characters`), for messages outside HTTP (start-up, the command line).
pub fn describe(error: &DomainError) -> String {
    match error {
        DomainError::Validation(errors) if !errors.is_empty() => errors
            .iter()
            .map(|error| format!("{}: {}", error.field, error.message))
            .collect::<Vec<_>>()
            .join("; "),
        other => other.to_string(),
    }
}

/// `tabula admin create`: an admin account written straight into `store`, with no server
/// running (the accounts actor is not started; the caller holds the store). Checked like any new
/// account; a taken email is a conflict. Durable when it returns.
pub fn create_admin_offline(store: &Store, account: NewAccount) -> DomainResult<User> {
    let account = NewAccount {
        role: Some(ADMIN_ROLE.into()),
        ..account
    };
    let (email, name, role) = checked_account(&account, ADMIN_ROLE)?;
    let hash = secrets::hash_password(&account.password).map_err(DomainError::Unavailable)?;
    let record = new_user_record(email, name, role, hash, clock::now_ms());
    AccountStore::open(store)?.create_user_now(&record)?;
    Ok(record.user)
}

impl Accounts {
    /// Opens `sys/accounts` and starts the accounts actor on a thread of its own. Must run
    /// inside an actix system.
    pub fn start(
        store: &Store,
        settings: AccountSettings,
        clock: AccountsClock,
    ) -> StorageResult<Accounts> {
        let shared = Arc::new(Shared {
            store: AccountStore::open(store)?,
            caches: Caches::new(),
            settings,
            clock,
            bootstrap: Mutex::new(None),
        });
        let actor_shared = Arc::clone(&shared);
        let arbiter = Arbiter::new();
        let addr = Supervisor::start_in_arbiter(&arbiter.handle(), move |_| {
            AccountsActor::new(actor_shared)
        });
        Ok(Accounts {
            shared,
            addr,
            arbiter: Arc::new(Mutex::new(Some(arbiter))),
        })
    }

    /// Stops the accounts actor and waits for its thread (after the HTTP server has drained),
    /// so that it no longer holds the store. Idempotent.
    pub fn shutdown(&self) {
        let arbiter = self
            .arbiter
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .take();
        if let Some(arbiter) = arbiter {
            arbiter.stop();
            if arbiter.join().is_err() {
                tracing::error!("the accounts actor thread panicked while stopping");
            }
        }
    }

    pub fn settings(&self) -> &AccountSettings {
        &self.shared.settings
    }

    pub fn clock(&self) -> &AccountsClock {
        &self.shared.clock
    }

    /// Whether any account exists.
    pub fn has_users(&self) -> DomainResult<bool> {
        Ok(self.shared.store.has_users()?)
    }

    /// Whether an unbanned admin exists.
    pub fn has_admin(&self) -> DomainResult<bool> {
        Ok(self.shared.store.has_admin()?)
    }

    /// While no admin exists: a new one-time bootstrap token, valid for an hour (the caller
    /// logs it; SPEC §1). Accounts that signed up before the first admin do not close it: a
    /// public sign-up must not leave a server without a way to its first admin. `None` once
    /// an admin exists.
    pub fn issue_bootstrap_token(&self) -> DomainResult<Option<String>> {
        if self.has_admin()? {
            return Ok(None);
        }
        let token = secrets::new_bootstrap_token();
        let expires_at = self
            .shared
            .clock
            .now_ms()
            .saturating_add(BOOTSTRAP_TOKEN_TTL_MS);
        *self
            .shared
            .bootstrap
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) =
            Some((secrets::digest(&token), expires_at));
        Ok(Some(token))
    }

    /// Creates the admin named by `TABULA_ADMIN_EMAIL`/`TABULA_ADMIN_PASSWORD` unless an account
    /// with that email exists (whose password is then left alone). `true` when created.
    pub async fn ensure_admin(&self, email: &str, password: &str) -> DomainResult<bool> {
        let account = NewAccount {
            email: email.to_owned(),
            password: password.to_owned(),
            name: "Admin".into(),
            role: Some(ADMIN_ROLE.into()),
        };
        let (email, _, _) = checked_account(&account, ADMIN_ROLE)?;
        if self.shared.store.user_by_email(&email)?.is_some() {
            return Ok(false);
        }
        match self.create_user(account).await {
            Ok(_) => Ok(true),
            Err(DomainError::Conflict { .. }) => Ok(false),
            Err(error) => Err(error),
        }
    }

    fn new_session(&self, user_id: &str) -> IssuedSession {
        let now = self.shared.clock.now_ms();
        IssuedSession {
            token: secrets::new_session_token(),
            session: SessionRecord {
                id: secrets::new_id(),
                user_id: user_id.to_owned(),
                created_at: now,
                expires_at: now.saturating_add(self.shared.settings.session_ttl_ms),
            },
        }
    }

    async fn insert_user(
        &self,
        account: NewAccount,
        default_role: &str,
        with_session: bool,
        only_if_no_admin: bool,
    ) -> DomainResult<(User, Option<IssuedSession>)> {
        let (email, name, role) = checked_account(&account, default_role)?;
        let hash = hash_off_thread(account.password).await?;
        let record = new_user_record(email, name, role, hash, self.shared.clock.now_ms());
        let issued = with_session.then(|| self.new_session(&record.user.id));
        let user = record.user.clone();
        self.addr
            .send(InsertUser {
                session: issued
                    .as_ref()
                    .map(|issued| (secrets::digest(&issued.token), issued.session.clone())),
                record,
                only_if_no_admin,
            })
            .await
            .map_err(mailbox)??;
        Ok((user, issued))
    }

    /// `POST /api/auth/sign-up/email`: a new account with the default role and its session.
    pub async fn sign_up(&self, mut account: NewAccount) -> DomainResult<SignedIn> {
        if !self.shared.settings.allow_sign_up {
            return Err(DomainError::Forbidden("Sign-up is disabled".into()));
        }
        account.role = None;
        let default_role = self.shared.settings.default_role.clone();
        let (user, session) = self
            .insert_user(account, &default_role, true, false)
            .await?;
        let session =
            session.ok_or_else(|| DomainError::Unavailable("no session issued".into()))?;
        Ok(SignedIn { user, session })
    }

    /// `POST /api/auth/sign-in/email`: a new session for the right email and password (a wrong
    /// one of either is the same 401, and takes as long).
    pub async fn sign_in(&self, email: &str, password: &str) -> DomainResult<SignedIn> {
        let record = self.shared.store.user_by_email(&normalise_email(email))?;
        let hash = record.as_ref().map_or_else(
            || secrets::decoy_hash().to_owned(),
            |record| record.password_hash.clone(),
        );
        let matches = verify_off_thread(password.to_owned(), hash).await?;
        let record = match record {
            Some(record) if matches => record,
            _ => return Err(invalid_credentials()),
        };
        if record.user.banned {
            return Err(DomainError::Forbidden("This account is banned".into()));
        }
        let issued = self.new_session(&record.user.id);
        self.addr
            .send(InsertSession {
                digest: secrets::digest(&issued.token),
                session: issued.session.clone(),
            })
            .await
            .map_err(mailbox)??;
        Ok(SignedIn {
            user: record.user,
            session: issued,
        })
    }

    /// `POST /api/auth/sign-out`: ends the session of `token` (an unknown one is fine).
    pub async fn sign_out(&self, token: &str) -> DomainResult<()> {
        self.addr
            .send(RemoveSession {
                digest: secrets::digest(token),
            })
            .await
            .map_err(mailbox)?
    }

    /// The cached user with this id (a banned one too), if it exists.
    pub fn user(&self, user_id: &str) -> DomainResult<Option<Arc<User>>> {
        let caches = &self.shared.caches;
        if let Some(user) = caches.users.get(user_id) {
            return Ok(Some(Arc::clone(user.value())));
        }
        let before = caches.generation();
        let Some(record) = self.shared.store.user(user_id)? else {
            return Ok(None);
        };
        let user = Arc::new(record.user);
        caches.fill(&caches.users, user_id.to_owned(), Arc::clone(&user), before);
        Ok(Some(user))
    }

    /// The live session of a session token with its (unbanned) user, sliding its expiry when
    /// `renew`.
    fn live_session(
        &self,
        digest: &TokenDigest,
        renew: bool,
    ) -> DomainResult<Option<(Arc<CachedSession>, Arc<User>)>> {
        let caches = &self.shared.caches;
        let cached = match caches.sessions.get(digest) {
            Some(entry) => Arc::clone(entry.value()),
            None => {
                let before = caches.generation();
                let Some(record) = self.shared.store.session(digest)? else {
                    return Ok(None);
                };
                let cached = Arc::new(CachedSession {
                    id: record.id,
                    user_id: record.user_id,
                    created_at: record.created_at,
                    expires_at: AtomicI64::new(record.expires_at),
                });
                caches.fill(&caches.sessions, *digest, Arc::clone(&cached), before);
                cached
            }
        };
        let now = self.shared.clock.now_ms();
        let expires_at = cached.expires_at.load(Ordering::Acquire);
        if expires_at <= now {
            caches.sessions.remove(digest);
            self.addr.do_send(RemoveSession { digest: *digest });
            return Ok(None);
        }
        let Some(user) = self.user(&cached.user_id)?.filter(|user| !user.banned) else {
            return Ok(None);
        };
        let ttl = self.shared.settings.session_ttl_ms;
        let step = (ttl / 100).clamp(1_000, MAX_RENEW_STEP_MS);
        let renewed = now.saturating_add(ttl);
        if renew
            && renewed.saturating_sub(expires_at) >= step
            && cached
                .expires_at
                .compare_exchange(expires_at, renewed, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
        {
            self.addr.do_send(RenewSession {
                digest: *digest,
                expires_at: renewed,
            });
        }
        Ok(Some((cached, user)))
    }

    /// The live, unexpired API key of `key` and its (unbanned) creator.
    fn live_api_key(&self, key: &str) -> DomainResult<Option<(Arc<ApiKeyRecord>, Arc<User>)>> {
        let digest = secrets::digest(key);
        let caches = &self.shared.caches;
        let record = match caches.keys.get(&digest) {
            Some(entry) => Arc::clone(entry.value()),
            None => {
                let before = caches.generation();
                let Some(record) = self.shared.store.api_key(&digest)? else {
                    return Ok(None);
                };
                let record = Arc::new(record);
                caches.fill(&caches.keys, digest, Arc::clone(&record), before);
                record
            }
        };
        if record
            .expires_at
            .is_some_and(|expires_at| expires_at <= self.shared.clock.now_ms())
        {
            return Ok(None);
        }
        let Some(user) = self.user(&record.user_id)?.filter(|user| !user.banned) else {
            return Ok(None);
        };
        Ok(Some((record, user)))
    }

    /// Who a bearer credential (session token or `tab_…` API key) belongs to; `None` when it is
    /// unknown, expired, revoked, or its account is banned or gone.
    pub fn authenticate(&self, credential: &str) -> DomainResult<Option<Principal>> {
        self.principal_of(credential, true)
    }

    /// [`Accounts::authenticate`] again for a request that outlives its start (a realtime
    /// stream), without sliding the session's expiry: an open stream alone does not keep a
    /// session alive. `None` once the credential is revoked, expired, or its account banned or
    /// removed; a changed role or key comes back as a new principal.
    pub fn recheck(&self, credential: &str) -> DomainResult<Option<Principal>> {
        self.principal_of(credential, false)
    }

    /// A number that moves on with every account write that ends, narrows or changes a
    /// credential (sign-out, ban, removal, role or password change, key revocation): a holder of
    /// a principal needs to [`Accounts::recheck`] it only when this moved (or time passed).
    pub fn revocations(&self) -> u64 {
        self.shared.caches.generation()
    }

    fn principal_of(&self, credential: &str, renew: bool) -> DomainResult<Option<Principal>> {
        if credential.starts_with(secrets::API_KEY_PREFIX) {
            return Ok(self
                .live_api_key(credential)?
                .map(|(key, user)| Principal::with_key(user, key)));
        }
        Ok(self
            .live_session(&secrets::digest(credential), renew)?
            .map(|(_, user)| Principal::user(user)))
    }

    /// `GET /api/auth/get-session`: the session of `token` and its user.
    pub fn session(&self, token: &str) -> DomainResult<Option<(SessionRecord, Arc<User>)>> {
        Ok(self
            .live_session(&secrets::digest(token), true)?
            .map(|(cached, user)| {
                (
                    SessionRecord {
                        id: cached.id.clone(),
                        user_id: cached.user_id.clone(),
                        created_at: cached.created_at,
                        expires_at: cached.expires_at.load(Ordering::Acquire),
                    },
                    user,
                )
            }))
    }

    /// `POST /api/auth/change-password`: checks the current password, stores the new one and
    /// ends every other session of the account (the one of `current_token` stays).
    pub async fn change_password(
        &self,
        user_id: &str,
        current_token: Option<&str>,
        current_password: &str,
        new_password: &str,
    ) -> DomainResult<User> {
        secrets::check_password(new_password).map_err(|message| invalid("newPassword", message))?;
        let record = self
            .shared
            .store
            .user(user_id)?
            .ok_or_else(|| DomainError::Unauthorized("Authentication required".into()))?;
        if !verify_off_thread(current_password.to_owned(), record.password_hash).await? {
            return Err(invalid(
                "currentPassword",
                "The current password is not correct",
            ));
        }
        let hash = hash_off_thread(new_password.to_owned()).await?;
        self.addr
            .send(ChangeUser {
                user_id: user_id.to_owned(),
                change: UserChange::SetPassword {
                    hash,
                    keep: current_token.map(secrets::digest),
                },
            })
            .await
            .map_err(mailbox)?
    }

    /// `POST /api/admin/bootstrap/claim`: the first admin, with the bootstrap token. Once an
    /// admin exists this is a 404; a wrong or expired token is a 401.
    pub async fn claim_bootstrap(
        &self,
        token: &str,
        mut account: NewAccount,
    ) -> DomainResult<SignedIn> {
        if self.has_admin()? {
            return Err(bootstrap_closed());
        }
        let outstanding = *self
            .shared
            .bootstrap
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let valid = outstanding.is_some_and(|(digest, expires_at)| {
            secrets::digests_equal(&digest, &secrets::digest(token))
                && self.shared.clock.now_ms() < expires_at
        });
        if !valid {
            return Err(DomainError::Unauthorized(
                "Invalid or expired bootstrap token".into(),
            ));
        }
        account.role = Some(ADMIN_ROLE.into());
        let (user, session) = self.insert_user(account, ADMIN_ROLE, true, true).await?;
        *self
            .shared
            .bootstrap
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = None;
        let session =
            session.ok_or_else(|| DomainError::Unavailable("no session issued".into()))?;
        Ok(SignedIn { user, session })
    }

    /// Every account, by id.
    pub fn list_users(&self) -> DomainResult<Vec<User>> {
        Ok(self
            .shared
            .store
            .users()?
            .into_iter()
            .map(|record| record.user)
            .collect())
    }

    /// `POST /api/auth/admin/create-user`.
    pub async fn create_user(&self, account: NewAccount) -> DomainResult<User> {
        let default_role = self.shared.settings.default_role.clone();
        let (user, _) = self
            .insert_user(account, &default_role, false, false)
            .await?;
        Ok(user)
    }

    async fn change_user(&self, user_id: &str, change: UserChange) -> DomainResult<User> {
        self.addr
            .send(ChangeUser {
                user_id: user_id.to_owned(),
                change,
            })
            .await
            .map_err(mailbox)?
    }

    /// `POST /api/auth/admin/set-role`.
    pub async fn set_role(&self, user_id: &str, role: &str) -> DomainResult<User> {
        if !is_valid_role(role) {
            return Err(invalid(
                "role",
                "A role is a lower-case name: letters, digits, '_' or '-'",
            ));
        }
        self.change_user(user_id, UserChange::SetRole(role.to_owned()))
            .await
    }

    /// `POST /api/auth/admin/ban-user`: bans and ends every session at once.
    pub async fn ban_user(&self, user_id: &str) -> DomainResult<User> {
        self.change_user(user_id, UserChange::Ban).await
    }

    /// `POST /api/auth/admin/remove-user`.
    pub async fn remove_user(&self, user_id: &str) -> DomainResult<()> {
        self.addr
            .send(RemoveUser {
                user_id: user_id.to_owned(),
            })
            .await
            .map_err(mailbox)?
    }

    /// `POST /api/auth/api-keys`: a new key of `user_id`, returned once.
    pub async fn create_api_key(
        &self,
        user_id: &str,
        request: NewApiKey,
    ) -> DomainResult<CreatedApiKey> {
        let name = request.name.trim().to_owned();
        if name.is_empty() || name.chars().count() > MAX_NAME_CHARS {
            return Err(invalid(
                "name",
                format!("A key needs a name of 1 to {MAX_NAME_CHARS} characters"),
            ));
        }
        let now = self.shared.clock.now_ms();
        if request
            .expires_at
            .is_some_and(|expires_at| expires_at <= now)
        {
            return Err(invalid("expiresAt", "expiresAt must be in the future"));
        }
        let key = secrets::new_api_key();
        let prefix_length = secrets::API_KEY_PREFIX.len() + 8;
        let record = ApiKeyRecord {
            id: secrets::new_id(),
            user_id: user_id.to_owned(),
            name,
            prefix: key.chars().take(prefix_length).collect(),
            scope: request.scope,
            tables: request.tables,
            expires_at: request.expires_at,
            created_at: now,
        };
        self.addr
            .send(InsertApiKey {
                digest: secrets::digest(&key),
                key: record.clone(),
            })
            .await
            .map_err(mailbox)??;
        Ok(CreatedApiKey { key, record })
    }

    /// `GET /api/auth/api-keys`: the keys of `user_id` (no secrets), oldest first.
    pub fn list_api_keys(&self, user_id: &str) -> DomainResult<Vec<ApiKeyRecord>> {
        let mut keys: Vec<ApiKeyRecord> = self
            .shared
            .store
            .api_keys_of(user_id)?
            .into_iter()
            .map(|(_, key)| key)
            .collect();
        keys.sort_by(|left, right| {
            left.created_at
                .cmp(&right.created_at)
                .then(left.id.cmp(&right.id))
        });
        Ok(keys)
    }

    /// `DELETE /api/auth/api-keys/{id}`: revokes a key of `user_id` at once.
    pub async fn delete_api_key(&self, user_id: &str, key_id: &str) -> DomainResult<()> {
        self.addr
            .send(RemoveApiKey {
                user_id: user_id.to_owned(),
                key_id: key_id.to_owned(),
            })
            .await
            .map_err(mailbox)?
    }
}

/// The 404 of the bootstrap claim once an admin exists.
pub fn bootstrap_closed() -> DomainError {
    DomainError::NotFound(
        "The bootstrap claim is closed: an admin account exists (sign in as an admin instead)"
            .into(),
    )
}

fn mailbox(error: actix::MailboxError) -> DomainError {
    tracing::warn!(%error, "accounts actor unavailable");
    DomainError::Unavailable("The service is temporarily unavailable; retry the request".into())
}
