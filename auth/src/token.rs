//! Tokens: JWTs signed with HS256 by a gateway's signing secret, carrying who the bearer
//! is (`sub`), until when (`exp`), and what it may do (`role`, `access`). A token is
//! checked by its signature and expiry alone, so any gateway holding the same secret
//! takes it with no lookup; it cannot be revoked before it expires, which is why tokens
//! are short-lived and API keys are the lasting credential. The signing secret is not
//! an API key: rotating keys leaves tokens alone, and the reverse.
//!
//! ```text
//!   {"sub":"alice","iat":…,"exp":…,"role":"scoped","access":{"docs":"read_write"}}
//! ```

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use crate::principal::{Access, Principal, Role};

/// Shortest signing secret, in bytes: HS256 wants a key as long as its hash.
pub const MIN_TOKEN_SECRET_BYTES: usize = 32;
/// How far past `exp` a token is still taken: the clocks of the gateway that minted it
/// and the one that checks it may differ by this much.
pub const TOKEN_LEEWAY: Duration = Duration::from_secs(30);
/// Lifetime of a token whose maker names none.
pub const DEFAULT_TOKEN_TTL: Duration = Duration::from_secs(60 * 60);
/// Longest lifetime of a token: it cannot be revoked, so it may not live for ever.
pub const MAX_TOKEN_TTL: Duration = Duration::from_secs(30 * 24 * 60 * 60);
/// Longest subject, in bytes.
pub const MAX_SUBJECT_BYTES: usize = 128;

/// What a token says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// Whom it was made for.
    pub sub: String,
    /// Unix time (seconds) it was made.
    pub iat: u64,
    /// Unix time (seconds) after which it is refused.
    pub exp: u64,
    /// What it may do everywhere.
    pub role: Role,
    /// Collections it may use beyond its role.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub access: BTreeMap<String, Access>,
    /// The plan that limits it (none: not limited).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plan: Option<String>,
}

impl Claims {
    /// Claims for `sub` with `role` and `access`, made `now` and living `ttl`, on no
    /// plan (set [`Claims::plan`] for one).
    #[must_use]
    pub fn new(
        sub: String,
        role: Role,
        access: BTreeMap<String, Access>,
        now: SystemTime,
        ttl: Duration,
    ) -> Self {
        let iat = now.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs();
        Self {
            sub,
            iat,
            exp: iat.saturating_add(ttl.as_secs()),
            role,
            access,
            plan: None,
        }
    }

    /// The caller a token with these claims is.
    #[must_use]
    pub fn principal(&self) -> Principal {
        Principal {
            name: format!("token {}", self.sub),
            role: self.role,
            grants: self.access.clone(),
            plan: self.plan.clone(),
            quota: crate::Quota::default(),
        }
    }
}

/// Why a token was refused, or could not be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// Its `exp` is past, beyond the leeway.
    #[error("the token expired")]
    Expired,
    /// Not signed by this secret, not a JWT, or missing a claim.
    #[error("the token is not valid: {0}")]
    Invalid(String),
    /// The signing secret is too short.
    #[error("a token signing secret needs at least {MIN_TOKEN_SECRET_BYTES} bytes, not {0}")]
    ShortSecret(usize),
    /// The operating system gave no random bytes.
    #[error("no randomness from the operating system: {0}")]
    Random(String),
}

/// Signs and checks tokens with one secret.
#[derive(Clone)]
pub struct TokenSigner {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
}

impl std::fmt::Debug for TokenSigner {
    // The secret stays out of logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenSigner")
    }
}

impl TokenSigner {
    /// A signer with `secret`.
    ///
    /// # Errors
    /// [`TokenError::ShortSecret`] for fewer than [`MIN_TOKEN_SECRET_BYTES`] bytes.
    pub fn new(secret: &[u8]) -> Result<Self, TokenError> {
        if secret.len() < MIN_TOKEN_SECRET_BYTES {
            return Err(TokenError::ShortSecret(secret.len()));
        }
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = TOKEN_LEEWAY.as_secs();
        validation.set_required_spec_claims(&["exp", "sub"]);
        Ok(Self {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            validation,
        })
    }

    /// A signer with a secret drawn now, known to this process only: its tokens are
    /// taken by no other gateway and die with the process.
    ///
    /// # Errors
    /// [`TokenError::Random`] when the operating system gives no random bytes.
    pub fn generate() -> Result<Self, TokenError> {
        let mut secret = [0u8; MIN_TOKEN_SECRET_BYTES];
        getrandom::fill(&mut secret).map_err(|e| TokenError::Random(e.to_string()))?;
        Self::new(&secret)
    }

    /// The token of `claims`.
    ///
    /// # Errors
    /// [`TokenError::Invalid`] when signing fails (it does not with HS256).
    pub fn mint(&self, claims: &Claims) -> Result<String, TokenError> {
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), claims, &self.encoding)
            .map_err(|e| TokenError::Invalid(e.to_string()))
    }

    /// The claims of `token`, once its signature and expiry are checked.
    ///
    /// # Errors
    /// [`TokenError::Expired`] past its `exp` and the leeway; [`TokenError::Invalid`] for
    /// anything else wrong with it (another secret, another algorithm, bad claims).
    pub fn verify(&self, token: &str) -> Result<Claims, TokenError> {
        match jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation) {
            Ok(data) => Ok(data.claims),
            Err(e) => Err(match e.kind() {
                ErrorKind::ExpiredSignature => TokenError::Expired,
                ErrorKind::InvalidSignature => {
                    TokenError::Invalid("its signature is not this cluster's".into())
                }
                ErrorKind::InvalidAlgorithm => {
                    TokenError::Invalid("it is not signed with HS256".into())
                }
                _ => TokenError::Invalid(e.to_string()),
            }),
        }
    }
}

/// Whether `text` is shaped like a JWT (three dot-separated parts), as opposed to an
/// API key.
#[must_use]
pub fn looks_like_token(text: &str) -> bool {
    text.bytes().filter(|&b| b == b'.').count() == 2
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";

    fn claims(now: SystemTime, ttl: Duration) -> Claims {
        Claims::new(
            "alice".into(),
            Role::Scoped,
            [("docs".to_owned(), Access::ReadWrite)].into(),
            now,
            ttl,
        )
    }

    #[test]
    fn a_minted_token_verifies_into_its_claims_and_caller() {
        let signer = TokenSigner::new(SECRET).unwrap();
        let made = claims(SystemTime::now(), DEFAULT_TOKEN_TTL);
        let token = signer.mint(&made).unwrap();
        assert!(looks_like_token(&token));
        let got = signer.verify(&token).unwrap();
        assert_eq!(got, made);
        let who = got.principal();
        assert_eq!(who.name, "token alice");
        assert_eq!(who.grants["docs"], Access::ReadWrite);
    }

    #[test]
    fn expired_foreign_and_damaged_tokens_are_refused() {
        let signer = TokenSigner::new(SECRET).unwrap();
        // Expired beyond the leeway; within it, still taken.
        let long_ago = SystemTime::now() - Duration::from_secs(3600);
        let old = signer
            .mint(&claims(long_ago, Duration::from_secs(60)))
            .unwrap();
        assert_eq!(signer.verify(&old), Err(TokenError::Expired));
        let recent = SystemTime::now() - Duration::from_secs(70);
        let just = signer
            .mint(&claims(recent, Duration::from_secs(60)))
            .unwrap();
        assert!(signer.verify(&just).is_ok(), "within the leeway");
        // Another secret.
        let other = TokenSigner::new(b"another secret, also 32 bytes long").unwrap();
        let foreign = other
            .mint(&claims(SystemTime::now(), DEFAULT_TOKEN_TTL))
            .unwrap();
        assert!(matches!(
            signer.verify(&foreign),
            Err(TokenError::Invalid(why)) if why.contains("signature")
        ));
        // A changed claim breaks the signature.
        let token = signer
            .mint(&claims(SystemTime::now(), DEFAULT_TOKEN_TTL))
            .unwrap();
        let parts: Vec<&str> = token.split('.').collect();
        let admin = base64::Engine::encode(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD,
            br#"{"sub":"alice","iat":1,"exp":99999999999,"role":"admin"}"#,
        );
        let forged = format!("{}.{admin}.{}", parts[0], parts[2]);
        assert!(matches!(
            signer.verify(&forged),
            Err(TokenError::Invalid(_))
        ));
        // An unsigned token ("alg": "none").
        let none = base64::Engine::encode(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD,
            br#"{"alg":"none","typ":"JWT"}"#,
        );
        assert!(signer.verify(&format!("{none}.{admin}.")).is_err());
        assert!(matches!(
            signer.verify("not.a.token"),
            Err(TokenError::Invalid(_))
        ));
    }

    #[test]
    fn generated_signers_take_only_their_own_tokens() {
        let (a, b) = (
            TokenSigner::generate().unwrap(),
            TokenSigner::generate().unwrap(),
        );
        let token = a
            .mint(&claims(SystemTime::now(), DEFAULT_TOKEN_TTL))
            .unwrap();
        assert!(a.verify(&token).is_ok());
        assert!(b.verify(&token).is_err());
    }

    #[test]
    fn a_short_secret_is_refused() {
        assert_eq!(
            TokenSigner::new(b"short").unwrap_err(),
            TokenError::ShortSecret(5)
        );
    }
}
