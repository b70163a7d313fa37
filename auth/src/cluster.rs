//! The cluster key: the one credential the members of a cluster (control nodes, workers,
//! gateways) present to each other. Every call to a core port, a control port or a
//! worker's admin listener carries it in [`CLUSTER_KEY_HEADER`], and a member holding a
//! key refuses any call without it. It is not an API key: a client of the public API
//! never sees it, and no user, key or token grants it.
//!
//! ```text
//!   gateway ──x-vectron-cluster-key──► core port, control port
//!   worker  ──x-vectron-cluster-key──► control port
//!   core    ──x-vectron-cluster-key──► peer core (replication)
//!   control ──x-vectron-cluster-key──► control (Raft)
//!   scraper ──x-vectron-cluster-key (or authorization: Bearer)──► worker admin listener
//! ```
//!
//! The key travels as it is: on a network others can read, the internal ports need a
//! private network or TLS in front of them as much as they need the key.

use std::fmt;
use std::path::Path;
use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use subtle::ConstantTimeEq;

/// The request header (gRPC metadata) that carries the cluster key.
pub const CLUSTER_KEY_HEADER: &str = "x-vectron-cluster-key";
/// Shortest cluster key, in bytes.
pub const MIN_CLUSTER_KEY_BYTES: usize = 32;
/// Longest cluster key, in bytes: it rides in a header of every internal call.
pub const MAX_CLUSTER_KEY_BYTES: usize = 256;

/// A cluster key that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ClusterKeyError {
    /// Shorter than [`MIN_CLUSTER_KEY_BYTES`].
    #[error(
        "the cluster key has {0} bytes; it needs at least {MIN_CLUSTER_KEY_BYTES} (`vectron cluster key` draws one)"
    )]
    Short(usize),
    /// Longer than [`MAX_CLUSTER_KEY_BYTES`].
    #[error("the cluster key has {0} bytes; it may have at most {MAX_CLUSTER_KEY_BYTES}")]
    Long(usize),
    /// A byte that cannot travel in a header.
    #[error(
        "the cluster key holds a byte that is not visible ASCII (a space, a control byte or a non-ASCII character)"
    )]
    Unprintable,
    /// The file could not be read.
    #[error("reading the cluster key from {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// No random bytes could be drawn.
    #[error("drawing a cluster key: {0}")]
    Random(String),
}

/// Why a call was refused for its cluster key. The texts name the header and never
/// what was presented.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ClusterKeyRefusal {
    /// The call carried no key.
    #[error(
        "this port serves only the members of its cluster: the call carried no cluster key ({CLUSTER_KEY_HEADER})"
    )]
    Missing,
    /// The call carried a key that is not this cluster's.
    #[error("the cluster key the call carried ({CLUSTER_KEY_HEADER}) is not this cluster's")]
    Wrong,
}

/// The cluster key. Cheap to clone; its `Debug` hides it.
#[derive(Clone, PartialEq, Eq)]
pub struct ClusterKey(Arc<str>);

impl fmt::Debug for ClusterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ClusterKey(<hidden>)")
    }
}

impl ClusterKey {
    /// The key `text` is, without the whitespace around it.
    ///
    /// # Errors
    ///
    /// [`ClusterKeyError`] for a key too short or too long, or with a byte other than
    /// visible ASCII.
    pub fn new(text: &str) -> Result<Self, ClusterKeyError> {
        let key = text.trim();
        if !key.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(ClusterKeyError::Unprintable);
        }
        if key.len() < MIN_CLUSTER_KEY_BYTES {
            return Err(ClusterKeyError::Short(key.len()));
        }
        if key.len() > MAX_CLUSTER_KEY_BYTES {
            return Err(ClusterKeyError::Long(key.len()));
        }
        Ok(Self(key.into()))
    }

    /// The key held in the file at `path`.
    ///
    /// # Errors
    ///
    /// [`ClusterKeyError::Read`] when the file cannot be read, and those of
    /// [`ClusterKey::new`].
    pub fn read(path: &Path) -> Result<Self, ClusterKeyError> {
        let text = std::fs::read_to_string(path).map_err(|source| ClusterKeyError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Self::new(&text)
    }

    /// A new key: 32 random bytes, base64url (43 characters).
    ///
    /// # Errors
    ///
    /// [`ClusterKeyError::Random`] when the system has no randomness to give.
    pub fn generate() -> Result<Self, ClusterKeyError> {
        let mut bytes = [0u8; 32];
        getrandom::fill(&mut bytes).map_err(|e| ClusterKeyError::Random(e.to_string()))?;
        Self::new(&URL_SAFE_NO_PAD.encode(bytes))
    }

    /// The key, as it goes into [`CLUSTER_KEY_HEADER`].
    #[must_use]
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Whether a call presenting `presented` (the header's value, if it had one) may
    /// pass. The comparison takes as long whatever the presented bytes are.
    ///
    /// # Errors
    ///
    /// The [`ClusterKeyRefusal`] to answer the call with.
    pub fn admit(&self, presented: Option<&[u8]>) -> Result<(), ClusterKeyRefusal> {
        let presented = presented.ok_or(ClusterKeyRefusal::Missing)?;
        if bool::from(self.0.as_bytes().ct_eq(presented)) {
            Ok(())
        } else {
            Err(ClusterKeyRefusal::Wrong)
        }
    }

    /// [`ClusterKey::admit`] for an HTTP `authorization` value: `Bearer <key>`.
    ///
    /// # Errors
    ///
    /// As [`ClusterKey::admit`]; a value that is not a bearer credential is
    /// [`ClusterKeyRefusal::Wrong`].
    pub fn admit_bearer(&self, authorization: &[u8]) -> Result<(), ClusterKeyRefusal> {
        let key = authorization
            .strip_prefix(b"Bearer ")
            .ok_or(ClusterKeyRefusal::Wrong)?;
        self.admit(Some(key))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_generated_key_is_taken_back_and_admits_only_itself() {
        let key = ClusterKey::generate().unwrap();
        assert_eq!(key.expose().len(), 43);
        assert_eq!(
            ClusterKey::new(&format!("{}\n", key.expose())).unwrap(),
            key
        );
        assert_eq!(key.admit(Some(key.expose().as_bytes())), Ok(()));
        assert_eq!(key.admit(None), Err(ClusterKeyRefusal::Missing));
        let mut other = key.expose().as_bytes().to_vec();
        other[0] ^= 1;
        assert_eq!(key.admit(Some(&other)), Err(ClusterKeyRefusal::Wrong));
        assert_eq!(
            key.admit(Some(&key.expose().as_bytes()[1..])),
            Err(ClusterKeyRefusal::Wrong)
        );
        let bearer = format!("Bearer {}", key.expose());
        assert_eq!(key.admit_bearer(bearer.as_bytes()), Ok(()));
        assert_eq!(
            key.admit_bearer(key.expose().as_bytes()),
            Err(ClusterKeyRefusal::Wrong)
        );
        assert_ne!(ClusterKey::generate().unwrap(), key);
    }

    #[test]
    fn keys_that_cannot_serve_are_refused() {
        assert!(matches!(
            ClusterKey::new(&"k".repeat(31)),
            Err(ClusterKeyError::Short(31))
        ));
        assert!(matches!(
            ClusterKey::new(&"k".repeat(257)),
            Err(ClusterKeyError::Long(257))
        ));
        assert!(matches!(
            ClusterKey::new(&format!("{} {}", "k".repeat(20), "k".repeat(20))),
            Err(ClusterKeyError::Unprintable)
        ));
        assert!(matches!(
            ClusterKey::new(&"é".repeat(20)),
            Err(ClusterKeyError::Unprintable)
        ));
        assert!(ClusterKey::new(&"k".repeat(32)).is_ok());
    }

    #[test]
    fn neither_debug_nor_a_refusal_shows_the_key() {
        let key = ClusterKey::generate().unwrap();
        assert!(!format!("{key:?}").contains(key.expose()));
        for refusal in [ClusterKeyRefusal::Missing, ClusterKeyRefusal::Wrong] {
            assert!(refusal.to_string().contains(CLUSTER_KEY_HEADER));
        }
    }
}
