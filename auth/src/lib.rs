//! Who may do what in Vectron.
//!
//! Pure functions and types, no IO: the gateway authenticates a caller into a
//! [`Principal`] and asks [`authorize`] before every action; the control plane stores
//! [`KeyRecord`]s (an id and a hash of the secret, never the secret).
//!
//! ```text
//!   "vk_<id>_<secret>" ──parse──► ParsedKey ──(id → KeyRecord, verify hash)──► Principal
//!   Principal + Action + collection ──authorize──► Ok | Denied
//! ```

mod key;
mod principal;

pub use key::{
    KEY_ID_LEN, KEY_PREFIX, KeyError, KeyRecord, NewKey, ParsedKey, SecretHash, generate_key,
    parse_key,
};
pub use principal::{Access, Action, Denied, Principal, Role, authorize};
