//! The cluster key on tonic's clients and servers: [`PresentKey`] puts it on every call
//! a client makes, [`RequireKey`] refuses every call that does not carry it
//! (`UNAUTHENTICATED`). The key, the header and the rule are
//! [`vectron_auth::ClusterKey`]'s.
//!
//! ```
//! use tonic::transport::Channel;
//! use vectron_auth::ClusterKey;
//! use vectron_proto::cluster::PresentKey;
//! use vectron_proto::core::v1::core_service_client::CoreServiceClient;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let key = ClusterKey::generate()?;
//! let channel = Channel::from_static("http://127.0.0.1:7400").connect_lazy();
//! let _core = CoreServiceClient::with_interceptor(channel, PresentKey::new(Some(&key)));
//! # Ok(())
//! # }
//! ```

use tonic::metadata::{AsciiMetadataValue, MetadataValue};
use tonic::service::Interceptor;
use tonic::{Request, Status};
use vectron_auth::{CLUSTER_KEY_HEADER, ClusterKey};

/// A tonic client interceptor that sends the cluster key with every call (nothing when
/// there is none).
#[derive(Debug, Clone, Default)]
pub struct PresentKey(Option<AsciiMetadataValue>);

impl PresentKey {
    /// Presents `key`, or nothing.
    #[must_use]
    pub fn new(key: Option<&ClusterKey>) -> Self {
        Self(key.map(|key| {
            let mut value = MetadataValue::try_from(key.expose())
                .expect("a cluster key is visible ASCII, a valid metadata value");
            value.set_sensitive(true);
            value
        }))
    }
}

impl Interceptor for PresentKey {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        if let Some(value) = &self.0 {
            request
                .metadata_mut()
                .insert(CLUSTER_KEY_HEADER, value.clone());
        }
        Ok(request)
    }
}

/// A tonic server interceptor that admits only calls carrying the cluster key (every
/// call when there is none).
#[derive(Debug, Clone, Default)]
pub struct RequireKey(Option<ClusterKey>);

impl RequireKey {
    /// Requires `key`, or nothing.
    #[must_use]
    pub fn new(key: Option<ClusterKey>) -> Self {
        Self(key)
    }
}

impl Interceptor for RequireKey {
    fn call(&mut self, request: Request<()>) -> Result<Request<()>, Status> {
        if let Some(key) = &self.0 {
            let presented = request
                .metadata()
                .get(CLUSTER_KEY_HEADER)
                .map(AsciiMetadataValue::as_bytes);
            key.admit(presented)
                .map_err(|refusal| Status::unauthenticated(refusal.to_string()))?;
        }
        Ok(request)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_presented_key_is_required_and_nothing_else_passes() {
        let key = ClusterKey::generate().unwrap();
        let other = ClusterKey::generate().unwrap();
        let mut require = RequireKey::new(Some(key.clone()));
        let sent = |presenting: Option<&ClusterKey>| {
            PresentKey::new(presenting).call(Request::new(())).unwrap()
        };
        assert!(require.call(sent(Some(&key))).is_ok());
        let missing = require.call(sent(None)).unwrap_err();
        assert_eq!(missing.code(), tonic::Code::Unauthenticated);
        assert!(missing.message().contains("no cluster key"), "{missing:?}");
        let wrong = require.call(sent(Some(&other))).unwrap_err();
        assert_eq!(wrong.code(), tonic::Code::Unauthenticated);
        assert!(!wrong.message().contains(other.expose()));
        assert!(RequireKey::new(None).call(sent(None)).is_ok());
    }
}
