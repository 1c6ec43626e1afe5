//! The accounts tree (`sys/accounts`): users, sessions and API keys, their key layout and codec.
//! Reads are safe from any thread; writes are sled batches built here and applied by the
//! accounts actor (or, before it runs and offline, by `create_user_now`).
//!
//! | key | value |
//! |---|---|
//! | `u ++ user_id` | codec([`UserRecord`]) |
//! | `e ++ email` (lower-case) | user_id: the unique email index |
//! | `s ++ sha256(session token)` | codec([`SessionRecord`]) |
//! | `S ++ user_id ++ 0x00 ++ sha256(token)` | empty: the sessions of a user (revocation) |
//! | `k ++ sha256(api key)` | codec([`ApiKeyRecord`]) |
//! | `K ++ user_id ++ 0x00 ++ key_id` | sha256(api key): the keys of a user |
//!
//! No token is stored: only its digest, so a copy of the data directory lets no one in.

use serde::{Deserialize, Serialize};
use tabula_storage::{codec, DurableTicket, StorageError, StorageResult, Store};

use crate::accounts::secrets::TokenDigest;
use crate::error::{DomainError, DomainResult};

const USER: u8 = b'u';
const EMAIL: u8 = b'e';
const SESSION: u8 = b's';
const USER_SESSION: u8 = b'S';
const API_KEY: u8 = b'k';
const USER_API_KEY: u8 = b'K';

/// What anyone may know about an account (never the password hash).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    pub id: String,
    /// Lower-case.
    pub email: String,
    pub name: String,
    pub role: String,
    pub banned: bool,
    pub created_at: i64,
    pub updated_at: i64,
}

/// A stored account: the user and its Argon2id password hash (PHC string).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserRecord {
    pub user: User,
    pub password_hash: String,
}

/// A stored session (its token is known only by its digest, the key).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionRecord {
    /// The public id (`GET /api/auth/get-session`), not the token.
    pub id: String,
    pub user_id: String,
    pub created_at: i64,
    /// Sliding: pushed forward as the session is used.
    pub expires_at: i64,
}

/// What an API key may do on top of its creator's permissions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum KeyScope {
    /// Reads only.
    Read,
    /// Reads and record writes (create, update, delete, restore, comment).
    Write,
    /// Everything its creator may do, including the admin surface and key management.
    All,
}

impl KeyScope {
    pub fn parse(text: &str) -> Option<KeyScope> {
        match text {
            "read" => Some(KeyScope::Read),
            "write" => Some(KeyScope::Write),
            "all" => Some(KeyScope::All),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            KeyScope::Read => "read",
            KeyScope::Write => "write",
            KeyScope::All => "all",
        }
    }
}

/// A stored API key (the key itself is known only by its digest, the key of this record).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiKeyRecord {
    pub id: String,
    /// The creator, whose permissions the key narrows.
    pub user_id: String,
    pub name: String,
    /// The first characters of the key (`tab_1a2b3c4d`), to recognise it in a list.
    pub prefix: String,
    pub scope: KeyScope,
    /// Table names or ids the key is limited to; `None` means every table.
    pub tables: Option<Vec<String>>,
    pub expires_at: Option<i64>,
    pub created_at: i64,
}

fn prefixed(tag: u8, parts: &[&[u8]]) -> Vec<u8> {
    let mut key = vec![tag];
    for (index, part) in parts.iter().enumerate() {
        if index > 0 {
            key.push(0);
        }
        key.extend_from_slice(part);
    }
    key
}

fn user_key(user_id: &str) -> Vec<u8> {
    prefixed(USER, &[user_id.as_bytes()])
}

fn email_key(email: &str) -> Vec<u8> {
    prefixed(EMAIL, &[email.as_bytes()])
}

fn session_key(digest: &TokenDigest) -> Vec<u8> {
    prefixed(SESSION, &[digest])
}

fn user_session_key(user_id: &str, digest: &TokenDigest) -> Vec<u8> {
    prefixed(USER_SESSION, &[user_id.as_bytes(), digest])
}

fn user_sessions_prefix(user_id: &str) -> Vec<u8> {
    prefixed(USER_SESSION, &[user_id.as_bytes(), b""])
}

fn api_key_key(digest: &TokenDigest) -> Vec<u8> {
    prefixed(API_KEY, &[digest])
}

fn user_api_key_key(user_id: &str, key_id: &str) -> Vec<u8> {
    prefixed(USER_API_KEY, &[user_id.as_bytes(), key_id.as_bytes()])
}

fn user_api_keys_prefix(user_id: &str) -> Vec<u8> {
    prefixed(USER_API_KEY, &[user_id.as_bytes(), b""])
}

fn digest_from(bytes: &[u8]) -> StorageResult<TokenDigest> {
    TokenDigest::try_from(bytes).map_err(|_| StorageError::Decode {
        what: "token digest",
        message: format!("{} bytes instead of 32", bytes.len()),
    })
}

/// Normalises an email for storage and lookup (trimmed, lower-case).
pub fn normalise_email(email: &str) -> String {
    email.trim().to_lowercase()
}

/// The accounts tree. Cheap to clone.
#[derive(Clone)]
pub struct AccountStore {
    store: Store,
    tree: sled::Tree,
}

/// Changes to the accounts tree applied as one atomic sled batch.
#[derive(Default)]
pub struct AccountBatch {
    batch: sled::Batch,
}

impl AccountBatch {
    pub fn put_user(&mut self, record: &UserRecord) -> StorageResult<()> {
        self.batch
            .insert(user_key(&record.user.id), codec::encode(record)?);
        self.batch.insert(
            email_key(&record.user.email),
            record.user.id.as_bytes().to_vec(),
        );
        Ok(())
    }

    pub fn remove_user(&mut self, user: &User) {
        self.batch.remove(user_key(&user.id));
        self.batch.remove(email_key(&user.email));
    }

    pub fn put_session(
        &mut self,
        digest: &TokenDigest,
        session: &SessionRecord,
    ) -> StorageResult<()> {
        self.batch
            .insert(session_key(digest), codec::encode(session)?);
        self.batch
            .insert(user_session_key(&session.user_id, digest), Vec::new());
        Ok(())
    }

    pub fn remove_session(&mut self, digest: &TokenDigest, user_id: &str) {
        self.batch.remove(session_key(digest));
        self.batch.remove(user_session_key(user_id, digest));
    }

    pub fn put_api_key(&mut self, digest: &TokenDigest, key: &ApiKeyRecord) -> StorageResult<()> {
        self.batch.insert(api_key_key(digest), codec::encode(key)?);
        self.batch
            .insert(user_api_key_key(&key.user_id, &key.id), digest.to_vec());
        Ok(())
    }

    pub fn remove_api_key(&mut self, digest: &TokenDigest, key: &ApiKeyRecord) {
        self.batch.remove(api_key_key(digest));
        self.batch.remove(user_api_key_key(&key.user_id, &key.id));
    }
}

impl AccountStore {
    /// Opens the `sys/accounts` tree of `store`.
    pub fn open(store: &Store) -> StorageResult<AccountStore> {
        Ok(AccountStore {
            store: store.clone(),
            tree: store.system_tree("accounts")?,
        })
    }

    /// Applies a batch atomically; the ticket resolves once it is durable.
    pub fn apply(&self, batch: AccountBatch) -> StorageResult<DurableTicket> {
        self.tree.apply_batch(batch.batch)?;
        Ok(self.store.durable())
    }

    pub fn user(&self, user_id: &str) -> StorageResult<Option<UserRecord>> {
        match self.tree.get(user_key(user_id))? {
            Some(bytes) => Ok(Some(codec::decode(&bytes, "user")?)),
            None => Ok(None),
        }
    }

    /// The account with this (normalised) email.
    pub fn user_by_email(&self, email: &str) -> StorageResult<Option<UserRecord>> {
        match self.tree.get(email_key(email))? {
            Some(id) => self.user(&String::from_utf8_lossy(&id)),
            None => Ok(None),
        }
    }

    /// Every account, by id.
    pub fn users(&self) -> StorageResult<Vec<UserRecord>> {
        self.tree
            .scan_prefix([USER])
            .map(|entry| {
                let (_, bytes) = entry?;
                codec::decode(&bytes, "user")
            })
            .collect()
    }

    /// Whether any account exists.
    pub fn has_users(&self) -> StorageResult<bool> {
        Ok(self.tree.scan_prefix([USER]).next().transpose()?.is_some())
    }

    /// Whether an unbanned admin exists (while none does, the bootstrap claim stays open).
    pub fn has_admin(&self) -> StorageResult<bool> {
        Ok(self.users()?.iter().any(|record| {
            record.user.role == crate::permissions::ADMIN_ROLE && !record.user.banned
        }))
    }

    pub fn session(&self, digest: &TokenDigest) -> StorageResult<Option<SessionRecord>> {
        match self.tree.get(session_key(digest))? {
            Some(bytes) => Ok(Some(codec::decode(&bytes, "session")?)),
            None => Ok(None),
        }
    }

    /// The digests of every session of a user.
    pub fn session_digests(&self, user_id: &str) -> StorageResult<Vec<TokenDigest>> {
        let prefix = user_sessions_prefix(user_id);
        self.tree
            .scan_prefix(&prefix)
            .map(|entry| {
                let (key, _) = entry?;
                digest_from(&key[prefix.len()..])
            })
            .collect()
    }

    pub fn api_key(&self, digest: &TokenDigest) -> StorageResult<Option<ApiKeyRecord>> {
        match self.tree.get(api_key_key(digest))? {
            Some(bytes) => Ok(Some(codec::decode(&bytes, "API key")?)),
            None => Ok(None),
        }
    }

    /// Every API key of a user with its digest, by key id.
    pub fn api_keys_of(&self, user_id: &str) -> StorageResult<Vec<(TokenDigest, ApiKeyRecord)>> {
        let mut keys = Vec::new();
        for entry in self.tree.scan_prefix(user_api_keys_prefix(user_id)) {
            let (_, digest) = entry?;
            let digest = digest_from(&digest)?;
            if let Some(key) = self.api_key(&digest)? {
                keys.push((digest, key));
            }
        }
        Ok(keys)
    }

    /// Creates an account synchronously, outside the accounts actor: at start-up before it runs,
    /// and offline (`tabula admin create`). A taken email is a 409. Flushed before returning.
    pub fn create_user_now(&self, record: &UserRecord) -> DomainResult<()> {
        if self.user_by_email(&record.user.email)?.is_some() {
            return Err(DomainError::Conflict {
                message: format!(
                    "An account with the email {} already exists",
                    record.user.email
                ),
                field: Some("email".into()),
            });
        }
        let mut batch = AccountBatch::default();
        batch.put_user(record)?;
        self.tree
            .apply_batch(batch.batch)
            .map_err(StorageError::from)?;
        self.store.flush_blocking()?;
        Ok(())
    }
}
