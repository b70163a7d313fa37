//! Console users: a name, a role and grants like a key's, and a password kept as an
//! Argon2id hash (OWASP's parameters: 19 MiB, two passes, one lane) in the PHC string
//! format, salt and parameters included. A person's password is not a random secret,
//! so unlike a key's it needs a slow hash. Logging in returns a token.

use std::collections::BTreeMap;

use argon2::password_hash::{PasswordHash, PasswordHasher as _, PasswordVerifier as _, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use serde::{Deserialize, Serialize};

use crate::principal::{Access, Role};

/// Shortest password, in characters.
pub const MIN_PASSWORD_CHARS: usize = 8;
/// Longest password, in bytes: the hash's work does not grow with it, but a limit keeps
/// requests small.
pub const MAX_PASSWORD_BYTES: usize = 128;
/// Longest user name, in bytes.
pub const MAX_USER_NAME_BYTES: usize = 64;

/// Argon2id memory in KiB, passes and lanes: OWASP's first recommendation.
const ARGON2_MEMORY_KIB: u32 = 19_456;
const ARGON2_PASSES: u32 = 2;
const ARGON2_LANES: u32 = 1;

/// Why a password could not be set or checked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PasswordError {
    /// Too short or too long.
    #[error(
        "a password has at least {MIN_PASSWORD_CHARS} characters and at most {MAX_PASSWORD_BYTES} bytes"
    )]
    BadLength,
    /// A stored hash that is not an Argon2id PHC string.
    #[error("a stored password hash is damaged: {0}")]
    BadHash(String),
    /// Hashing failed (no randomness for the salt).
    #[error("hashing the password failed: {0}")]
    Hashing(String),
}

fn argon2() -> Argon2<'static> {
    let params = Params::new(ARGON2_MEMORY_KIB, ARGON2_PASSES, ARGON2_LANES, None)
        .expect("the Argon2 parameters are valid");
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// Whether `password` may be set.
///
/// # Errors
/// [`PasswordError::BadLength`] outside the limits.
pub fn check_password(password: &str) -> Result<(), PasswordError> {
    if password.chars().count() < MIN_PASSWORD_CHARS || password.len() > MAX_PASSWORD_BYTES {
        return Err(PasswordError::BadLength);
    }
    Ok(())
}

/// The Argon2id PHC string of `password`, with a fresh salt. Takes tens of
/// milliseconds of CPU: call it off any thread that serves requests.
///
/// # Errors
/// [`PasswordError::BadLength`] outside the limits; [`PasswordError::Hashing`] without
/// randomness.
pub fn hash_password(password: &str) -> Result<String, PasswordError> {
    check_password(password)?;
    let mut salt = [0u8; 16];
    getrandom::fill(&mut salt).map_err(|e| PasswordError::Hashing(e.to_string()))?;
    let salt = SaltString::encode_b64(&salt).map_err(|e| PasswordError::Hashing(e.to_string()))?;
    argon2()
        .hash_password(password.as_bytes(), &salt)
        .map(|hash| hash.to_string())
        .map_err(|e| PasswordError::Hashing(e.to_string()))
}

/// Whether `password` is the one `phc` was made from. As slow as [`hash_password`].
///
/// # Errors
/// [`PasswordError::BadHash`] when `phc` is not an Argon2id PHC string.
pub fn verify_password(phc: &str, password: &str) -> Result<bool, PasswordError> {
    let parsed = PasswordHash::new(phc).map_err(|e| PasswordError::BadHash(e.to_string()))?;
    if parsed.algorithm != argon2::ARGON2ID_IDENT {
        return Err(PasswordError::BadHash("not Argon2id".into()));
    }
    Ok(argon2()
        .verify_password(password.as_bytes(), &parsed)
        .is_ok())
}

/// A user as the cluster stores it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserRecord {
    /// The name they log in with.
    pub name: String,
    /// The Argon2id PHC string of their password.
    pub password_phc: String,
    /// What they may do everywhere.
    pub role: Role,
    /// Collections they may use beyond their role.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub grants: BTreeMap<String, Access>,
    /// Unix time (milliseconds) the user was made, set by the control plane.
    pub created_at_ms: u64,
    /// The plan that limits them and their tokens (none: not limited).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plan: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hashed_password_verifies_only_itself() {
        let phc = hash_password("correct horse").unwrap();
        assert!(phc.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{phc}");
        assert!(verify_password(&phc, "correct horse").unwrap());
        assert!(!verify_password(&phc, "correct horsf").unwrap());
        // A fresh salt each time.
        assert_ne!(hash_password("correct horse").unwrap(), phc);
        assert!(matches!(
            verify_password("$2b$12$notargon", "x"),
            Err(PasswordError::BadHash(_))
        ));
    }

    #[test]
    fn passwords_keep_to_their_lengths() {
        assert_eq!(hash_password("short"), Err(PasswordError::BadLength));
        assert_eq!(
            check_password(&"x".repeat(MAX_PASSWORD_BYTES + 1)),
            Err(PasswordError::BadLength)
        );
        assert!(check_password("ééééééé").is_err(), "7 characters");
        assert!(check_password("éééééééé").is_ok(), "8 characters");
    }
}
