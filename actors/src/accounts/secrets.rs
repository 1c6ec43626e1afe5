//! The secrets of accounts: Argon2id password hashes, random opaque tokens (sessions, API keys,
//! the bootstrap token) and the sha256 digests under which tokens are stored and looked up.
//! Nothing here logs; a token leaves this module only to be shown once to its owner.

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use rand::rngs::OsRng;
use rand::RngCore;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// The prefix of every API key (`tab_…`), so a key is recognisable in a header or a leak scan.
pub const API_KEY_PREFIX: &str = "tab_";
/// Random bytes in a session token, an API key and the bootstrap token (256 bits).
const TOKEN_BYTES: usize = 32;
/// The shortest password accepted (SPEC §8), in characters.
pub const MIN_PASSWORD_CHARS: usize = 8;
/// The longest password accepted, in characters (hashing stays cheap and bounded).
pub const MAX_PASSWORD_CHARS: usize = 1024;

/// The sha256 digest a token is stored and looked up under.
pub type TokenDigest = [u8; 32];

/// sha256 of a token. Tokens carry 256 random bits, so a fast hash is enough: the store holds
/// no secret an attacker could replay.
pub fn digest(token: &str) -> TokenDigest {
    Sha256::digest(token.as_bytes()).into()
}

/// Compares two digests in constant time.
pub fn digests_equal(left: &TokenDigest, right: &TokenDigest) -> bool {
    left.ct_eq(right).into()
}

fn random_hex(bytes: usize) -> String {
    let mut buffer = vec![0u8; bytes];
    OsRng.fill_bytes(&mut buffer);
    hex(&buffer)
}

/// Lower-case hexadecimal.
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        out.push(char::from(DIGITS[usize::from(byte >> 4)]));
        out.push(char::from(DIGITS[usize::from(byte & 0x0f)]));
    }
    out
}

/// A new session token (64 hex characters).
pub fn new_session_token() -> String {
    random_hex(TOKEN_BYTES)
}

/// A new API key: `tab_` + 64 hex characters.
pub fn new_api_key() -> String {
    format!("{API_KEY_PREFIX}{}", random_hex(TOKEN_BYTES))
}

/// A new one-time bootstrap token.
pub fn new_bootstrap_token() -> String {
    random_hex(TOKEN_BYTES)
}

/// A new public identifier (users, sessions, API keys): 16 hex characters, 64 random bits.
pub fn new_id() -> String {
    random_hex(8)
}

/// Whether a password has an acceptable length; the message says what is wrong.
pub fn check_password(password: &str) -> Result<(), String> {
    let length = password.chars().count();
    if length < MIN_PASSWORD_CHARS {
        return Err(format!(
            "Password must be at least {MIN_PASSWORD_CHARS} characters"
        ));
    }
    if length > MAX_PASSWORD_CHARS {
        return Err(format!(
            "Password must be at most {MAX_PASSWORD_CHARS} characters"
        ));
    }
    Ok(())
}

/// The Argon2id hash of a password in PHC string form (salt and parameters included). Slow on
/// purpose (tens of milliseconds): call it off the HTTP workers.
pub fn hash_password(password: &str) -> Result<String, String> {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|hash| hash.to_string())
        .map_err(|error| format!("cannot hash a password: {error}"))
}

/// Whether `password` matches a PHC hash (constant-time inside argon2). A malformed stored hash
/// matches nothing.
pub fn verify_password(password: &str, hash: &str) -> bool {
    match PasswordHash::new(hash) {
        Ok(parsed) => Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok(),
        Err(_) => false,
    }
}

/// A hash of no one's password, verified against when the email is unknown so that a wrong email
/// takes as long as a wrong password.
pub fn decoy_hash() -> &'static str {
    static DECOY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DECOY.get_or_init(|| hash_password(&new_session_token()).unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_password_verifies_against_its_own_hash_only() {
        let hash = hash_password("correct horse").expect("hashes");
        assert!(hash.starts_with("$argon2id$"), "{hash}");
        assert!(verify_password("correct horse", &hash));
        assert!(!verify_password("correct horsf", &hash));
        assert!(!verify_password("correct horse", "not a hash"));
    }

    #[test]
    fn tokens_are_random_and_keys_are_prefixed() {
        assert_ne!(new_session_token(), new_session_token());
        assert_eq!(new_session_token().len(), 64);
        let key = new_api_key();
        assert!(key.starts_with("tab_") && key.len() == 68, "{key}");
        assert!(digests_equal(&digest("a"), &digest("a")));
        assert!(!digests_equal(&digest("a"), &digest("b")));
    }

    #[test]
    fn password_length_is_checked() {
        assert!(check_password("1234567").is_err());
        assert!(check_password("12345678").is_ok());
    }
}
