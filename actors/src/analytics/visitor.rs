//! Who a visitor is without cookies: `sha256(daily salt | day | client IP | User-Agent | app)`.
//! The salt is random per UTC day, held in memory and on disk only for the current day (so a
//! restart the same day keeps counting the same visitors) and replaced at the first request of
//! the next day, so hashes cannot be linked across days. No IP is kept anywhere.
//! Also the analytics clock, which tests replace to cross midnight at will.

use std::net::IpAddr;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;
use sha2::{Digest, Sha256};
use tabula_storage::{codec, StorageResult, Store};

/// Milliseconds in a UTC day.
pub const DAY_MS: i64 = 86_400_000;
/// Milliseconds in an hour.
pub const HOUR_MS: i64 = 3_600_000;
/// The key of the current salt in the analytics tree.
pub(crate) const SALT_KEY: &[u8] = b"S";

/// Where analytics reads the time: the system clock, or a hand-set one in tests and benches.
#[derive(Clone)]
pub struct AnalyticsClock {
    manual: Option<Arc<AtomicI64>>,
}

impl AnalyticsClock {
    pub fn system() -> Self {
        AnalyticsClock { manual: None }
    }

    /// A clock that reads `millis` until [`AnalyticsClock::set`] moves it.
    pub fn manual(millis: i64) -> Self {
        AnalyticsClock {
            manual: Some(Arc::new(AtomicI64::new(millis))),
        }
    }

    /// Moves a manual clock (no effect on the system clock).
    pub fn set(&self, millis: i64) {
        if let Some(manual) = &self.manual {
            manual.store(millis, Ordering::Release);
        }
    }

    /// Milliseconds since the Unix epoch.
    pub fn now_ms(&self) -> i64 {
        match &self.manual {
            Some(manual) => manual.load(Ordering::Acquire),
            None => crate::clock::now_ms(),
        }
    }
}

/// The UTC day (days since the epoch) of a millisecond timestamp.
pub fn day_of(millis: i64) -> u32 {
    u32::try_from(millis.div_euclid(DAY_MS)).unwrap_or(0)
}

/// The hour bucket (hours since the epoch) of a millisecond timestamp.
pub fn hour_of(millis: i64) -> u32 {
    u32::try_from(millis.div_euclid(HOUR_MS)).unwrap_or(0)
}

/// The salt of one day.
#[derive(Clone, serde::Serialize, serde::Deserialize)]
struct DailySalt {
    day: u32,
    salt: [u8; 32],
}

/// Hashes visitors with the salt of the event's day.
pub struct VisitorHasher {
    app_name: String,
    store: Store,
    tree: sled::Tree,
    current: ArcSwap<Option<DailySalt>>,
    rotation: Mutex<()>,
}

impl VisitorHasher {
    /// Loads the stored salt (kept only if it is still for the day it was made for).
    pub fn open(store: Store, tree: sled::Tree, app_name: &str) -> StorageResult<Self> {
        let stored: Option<DailySalt> = match tree.get(SALT_KEY)? {
            Some(bytes) => Some(codec::decode(&bytes, "analytics salt")?),
            None => None,
        };
        Ok(VisitorHasher {
            app_name: app_name.to_owned(),
            store,
            tree,
            current: ArcSwap::from_pointee(stored),
            rotation: Mutex::new(()),
        })
    }

    /// The visitor id of a request on `day`: the first 64 bits of the salted SHA-256.
    pub fn visitor_id(&self, day: u32, client_ip: IpAddr, user_agent: &str) -> u64 {
        let salt = self.salt_for(day);
        let ip = match client_ip {
            IpAddr::V4(v4) => v4.to_ipv6_mapped().octets(),
            IpAddr::V6(v6) => v6.octets(),
        };
        let mut hasher = Sha256::new();
        hasher.update(salt);
        hasher.update(b"|");
        hasher.update(day.to_be_bytes());
        hasher.update(b"|");
        hasher.update(ip);
        hasher.update(b"|");
        hasher.update(user_agent.as_bytes());
        hasher.update(b"|");
        hasher.update(self.app_name.as_bytes());
        let digest = hasher.finalize();
        let mut first = [0u8; 8];
        first.copy_from_slice(&digest[..8]);
        u64::from_be_bytes(first)
    }

    /// The salt of `day`, made (and stored in place of the previous day's) on first use. An
    /// event for an earlier day than the current salt's (a request that straddled midnight)
    /// borrows the current salt rather than resurrecting a forgotten one.
    fn salt_for(&self, day: u32) -> [u8; 32] {
        if let Some(current) = self.current.load().as_ref() {
            if current.day >= day {
                return current.salt;
            }
        }
        let _rotating = self
            .rotation
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(current) = self.current.load().as_ref() {
            if current.day >= day {
                return current.salt;
            }
        }
        let fresh = DailySalt {
            day,
            salt: rand::random(),
        };
        match codec::encode(&fresh) {
            Ok(bytes) => {
                if let Err(error) = self.tree.insert(SALT_KEY, bytes) {
                    tracing::error!(%error, "cannot store the analytics salt");
                }
                // Made durable by the next group-commit flush; nobody waits for it.
                drop(self.store.durable());
            }
            Err(error) => tracing::error!(%error, "cannot encode the analytics salt"),
        }
        let salt = fresh.salt;
        self.current.store(Arc::new(Some(fresh)));
        salt
    }

    /// The day of the salt in use, if any (tests).
    pub fn salt_day(&self) -> Option<u32> {
        self.current.load().as_ref().as_ref().map(|salt| salt.day)
    }
}
