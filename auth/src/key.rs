//! API keys: `vk_<id>_<secret>`. The id names the key in lists and logs; the secret is
//! 32 random bytes (base64url), shown once when the key is made. Only its SHA-256 is
//! kept: a secret of 256 random bits needs no slow hash, and the comparison runs in
//! constant time.

use std::collections::BTreeMap;
use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq as _;

use crate::principal::{Access, Principal, Role};

/// Every key starts with this.
pub const KEY_PREFIX: &str = "vk_";
/// Characters in a key id.
pub const KEY_ID_LEN: usize = 12;
/// Random bytes in a secret.
const SECRET_BYTES: usize = 32;
/// Characters of a key id: lowercase base32, so an id is 60 random bits.
const ID_ALPHABET: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";

/// Why a key could not be made or read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// The text is not `vk_<id>_<secret>`.
    #[error("not a Vectron API key (vk_<id>_<secret>)")]
    Malformed,
    /// The operating system gave no random bytes.
    #[error("no randomness from the operating system: {0}")]
    Random(String),
    /// A stored hash is not 64 hex digits.
    #[error("a stored key hash is not 64 hex digits")]
    BadHash,
}

/// The SHA-256 of a key's secret.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct SecretHash([u8; 32]);

impl SecretHash {
    /// The hash of `secret`.
    #[must_use]
    pub fn of(secret: &str) -> Self {
        Self(Sha256::digest(secret.as_bytes()).into())
    }

    /// Whether `secret` hashes to this, compared in constant time.
    #[must_use]
    pub fn matches(&self, secret: &str) -> bool {
        Self::of(secret).0.ct_eq(&self.0).into()
    }

    /// Lowercase hex, as stored.
    #[must_use]
    pub fn to_hex(self) -> String {
        self.0.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// From lowercase or uppercase hex.
    ///
    /// # Errors
    /// [`KeyError::BadHash`] unless it is 64 hex digits.
    pub fn from_hex(hex: &str) -> Result<Self, KeyError> {
        if hex.len() != 64 {
            return Err(KeyError::BadHash);
        }
        let mut out = [0u8; 32];
        for (i, byte) in out.iter_mut().enumerate() {
            *byte =
                u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).map_err(|_| KeyError::BadHash)?;
        }
        Ok(Self(out))
    }
}

impl fmt::Debug for SecretHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretHash({})", self.to_hex())
    }
}

/// A key just made: the text to hand to its user once, and what to store.
pub struct NewKey {
    /// The key's id.
    pub id: String,
    /// The whole key, `vk_<id>_<secret>`: shown once, stored nowhere.
    pub key: String,
    /// The hash of its secret, to store.
    pub hash: SecretHash,
}

impl fmt::Debug for NewKey {
    // The key stays out of logs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NewKey")
            .field("id", &self.id)
            .field("hash", &self.hash)
            .finish_non_exhaustive()
    }
}

/// Makes a key from the operating system's randomness.
///
/// # Errors
/// [`KeyError::Random`] when the OS has no randomness to give.
pub fn generate_key() -> Result<NewKey, KeyError> {
    let mut raw = [0u8; KEY_ID_LEN + SECRET_BYTES];
    getrandom::fill(&mut raw).map_err(|e| KeyError::Random(e.to_string()))?;
    let (id_bytes, secret_bytes) = raw.split_at(KEY_ID_LEN);
    let id: String = id_bytes
        .iter()
        .map(|b| char::from(ID_ALPHABET[usize::from(b & 31)]))
        .collect();
    let secret = URL_SAFE_NO_PAD.encode(secret_bytes);
    Ok(NewKey {
        key: format!("{KEY_PREFIX}{id}_{secret}"),
        hash: SecretHash::of(&secret),
        id,
    })
}

/// A key's text split into its id and secret.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct ParsedKey<'a> {
    /// The key's id.
    pub id: &'a str,
    /// Its secret.
    pub secret: &'a str,
}

impl fmt::Debug for ParsedKey<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ParsedKey")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

/// Splits `vk_<id>_<secret>`.
///
/// # Errors
/// [`KeyError::Malformed`] for anything else.
pub fn parse_key(text: &str) -> Result<ParsedKey<'_>, KeyError> {
    let rest = text.strip_prefix(KEY_PREFIX).ok_or(KeyError::Malformed)?;
    if rest.len() <= KEY_ID_LEN + 1 || !rest.is_char_boundary(KEY_ID_LEN) {
        return Err(KeyError::Malformed);
    }
    let (id, secret) = rest.split_at(KEY_ID_LEN);
    let secret = secret.strip_prefix('_').ok_or(KeyError::Malformed)?;
    let id_ok = id.bytes().all(|b| ID_ALPHABET.contains(&b));
    let secret_ok = secret.len() == SECRET_BYTES.div_ceil(3) * 4 - 1
        && secret
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if id_ok && secret_ok {
        Ok(ParsedKey { id, secret })
    } else {
        Err(KeyError::Malformed)
    }
}

/// A stored key: everything but the secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyRecord {
    /// Its id.
    pub id: String,
    /// Hex SHA-256 of its secret.
    pub secret_sha256: String,
    /// Its role.
    pub role: Role,
    /// Collections it may use beyond its role, and how.
    #[serde(default)]
    pub grants: BTreeMap<String, Access>,
    /// What its maker said it is for.
    #[serde(default)]
    pub description: String,
    /// Unix time (milliseconds) it was made.
    pub created_at_ms: u64,
    /// The plan that limits it (none: not limited).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plan: Option<String>,
}

impl KeyRecord {
    /// The hash its secret must match.
    ///
    /// # Errors
    /// [`KeyError::BadHash`] for a stored hash that is not 64 hex digits.
    pub fn hash(&self) -> Result<SecretHash, KeyError> {
        SecretHash::from_hex(&self.secret_sha256)
    }

    /// Who this key makes its caller.
    #[must_use]
    pub fn principal(&self) -> Principal {
        Principal {
            name: format!("key {}", self.id),
            role: self.role,
            grants: self.grants.clone(),
            plan: self.plan.clone(),
            quota: crate::Quota::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn a_generated_key_parses_and_authenticates_only_with_its_secret() {
        let made = generate_key().unwrap();
        assert!(made.key.starts_with("vk_"));
        assert_eq!(made.key.len(), 3 + 12 + 1 + 43);
        let parsed = parse_key(&made.key).unwrap();
        assert_eq!(parsed.id, made.id);
        let record = KeyRecord {
            id: made.id.clone(),
            secret_sha256: made.hash.to_hex(),
            role: Role::Read,
            grants: BTreeMap::new(),
            description: String::new(),
            created_at_ms: 1,
            plan: None,
        };
        assert!(record.hash().unwrap().matches(parsed.secret));
        let who = record.principal();
        assert_eq!(
            (who.name, who.role),
            (format!("key {}", made.id), Role::Read)
        );

        let other = generate_key().unwrap();
        assert_ne!(other.id, made.id);
        let forged = format!("vk_{}_{}", made.id, parse_key(&other.key).unwrap().secret);
        let forged = parse_key(&forged).unwrap();
        assert!(!record.hash().unwrap().matches(forged.secret));
        assert!(!format!("{made:?}").contains(parsed.secret), "{made:?}");
        assert!(!format!("{parsed:?}").contains(parsed.secret));
    }

    #[test]
    fn hashes_round_trip_through_hex() {
        let hash = SecretHash::of("secret");
        assert_eq!(SecretHash::from_hex(&hash.to_hex()).unwrap(), hash);
        assert_eq!(
            hash.to_hex(),
            "2bb80d537b1da3e38bd30361aa855686bde0eacd7162fef6a25fe97bf527a25b"
        );
        assert_eq!(SecretHash::from_hex("ab"), Err(KeyError::BadHash));
        assert_eq!(
            SecretHash::from_hex(&"zz".repeat(32)),
            Err(KeyError::BadHash)
        );
    }

    #[test]
    fn malformed_keys_are_refused() {
        let good = generate_key().unwrap().key;
        for bad in [
            "",
            "vk_",
            "secret",
            &good[1..],
            &good[..good.len() - 1],
            &format!("{good}x"),
            &good.replacen('_', "-", 2),
            &good.to_uppercase(),
            "vk_abcdefghijklé_xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
        ] {
            assert_eq!(parse_key(bad), Err(KeyError::Malformed), "{bad:?}");
        }
    }

    proptest! {
        #[test]
        fn parsing_never_panics(text in ".{0,80}") {
            let _ = parse_key(&text);
        }
    }
}
