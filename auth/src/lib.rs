//! Who may do what in Vectron.
//!
//! Pure functions and types, no IO: the gateway authenticates a caller into a
//! [`Principal`] and asks [`authorize`] before every action; the control plane stores
//! [`KeyRecord`]s (an id and a hash of the secret, never the secret); tokens are JWTs
//! a [`TokenSigner`] mints and checks.
//! Inside the cluster, members present a [`ClusterKey`] to each other.
//!
//! ```text
//!   "vk_<id>_<secret>" ──parse──► ParsedKey ──(id → KeyRecord, verify hash)──► Principal
//!   "<jwt>" ──TokenSigner::verify (signature, exp)──► Claims ──────────────────► Principal
//!   Principal + Action + collection ──authorize──► Ok | Denied
//! ```

mod cluster;
mod key;
mod password;
mod plan;
mod principal;
mod token;

pub use cluster::{
    CLUSTER_KEY_HEADER, ClusterKey, ClusterKeyError, ClusterKeyRefusal, MAX_CLUSTER_KEY_BYTES,
    MIN_CLUSTER_KEY_BYTES,
};
pub use key::{
    KEY_ID_LEN, KEY_PREFIX, KeyError, KeyRecord, NewKey, ParsedKey, SecretHash, generate_key,
    parse_key,
};
pub use password::{
    MAX_PASSWORD_BYTES, MAX_USER_NAME_BYTES, MIN_PASSWORD_CHARS, PasswordError, UserRecord,
    check_password, hash_password, verify_password,
};
pub use plan::{
    MAX_PLAN_NAME_BYTES, MAX_PLAN_POINTS, MAX_PLAN_RATE, MAX_PLANS, Plan, PlanError, Quota,
    check_plan_name,
};
pub use principal::{Access, Action, Collection, Denied, Principal, Role, authorize};
pub use token::{
    Claims, DEFAULT_TOKEN_TTL, MAX_SUBJECT_BYTES, MAX_TOKEN_TTL, MIN_TOKEN_SECRET_BYTES,
    TOKEN_LEEWAY, TokenError, TokenSigner, looks_like_token,
};
