//! The cluster key on a core's port: the gate every call passes, and the metadata the
//! core's own calls to its peers carry.

use http::{HeaderMap, HeaderName, HeaderValue};
use vectron_auth::{CLUSTER_KEY_HEADER, ClusterKey};
use vectron_net::{Gate, Status};

/// The gate of a core port served with `key`: a call without it is refused with
/// `UNAUTHENTICATED`.
pub(crate) fn gate(key: ClusterKey) -> Gate {
    Gate::new(move |headers: &HeaderMap| {
        key.admit(headers.get(CLUSTER_KEY_HEADER).map(HeaderValue::as_bytes))
            .map_err(|refusal| Status::unauthenticated(refusal.to_string()))
    })
}

/// The metadata of a call that presents `key` (none without one).
pub(crate) fn metadata(key: Option<&ClusterKey>) -> HeaderMap {
    let mut metadata = HeaderMap::new();
    if let Some(key) = key {
        let mut value = HeaderValue::from_str(key.expose())
            .expect("a cluster key is visible ASCII, a valid header value");
        value.set_sensitive(true);
        metadata.insert(HeaderName::from_static(CLUSTER_KEY_HEADER), value);
    }
    metadata
}
