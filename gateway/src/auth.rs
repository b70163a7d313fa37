//! Who is calling: the credentials a request carries, checked once per call at either
//! door (a tower layer on the gRPC listener, a middleware on the HTTP one) and turned
//! into a [`Principal`] in the request's extensions. What a principal may do is
//! `vectron_auth::authorize`, asked by the shared handlers.
//!
//! A credential is `authorization: Bearer <key>` or `api-key: <key>`: a key made through
//! `Keys.Create` (`vk_<id>_<secret>`, checked against the hash the routing table
//! carries), a token (a JWT checked by its signature with the gateway's token secret),
//! or the bootstrap admin key given at start. A caller on a plan is counted against its
//! rate here too. Only `Users.Login` (`POST /v1/login`) and the health probes pass
//! without one; logins are limited per client address instead. With authentication off
//! every call is the anonymous admin.

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::extract::{FromRequestParts, Request, State};
use axum::response::{IntoResponse as _, Response};
use governor::clock::Clock as _;
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use http::HeaderMap;
use http::request::Parts;
use vectron_auth::{Principal, SecretHash, TokenError, TokenSigner, looks_like_token, parse_key};

use crate::config::{AuthConfig, LOGIN_ATTEMPTS_PER_MINUTE};
use crate::error::GatewayError;
use crate::plans::PlanLimits;
use crate::routing::RoutingCache;
use crate::service::Service;

/// Checks credentials against the bootstrap admin key and the keys of the newest
/// routing table.
#[derive(Debug)]
pub(crate) struct Authenticator {
    enabled: bool,
    admin: Option<SecretHash>,
    routing: Arc<RoutingCache>,
    /// Signs and checks tokens, when the gateway has a token secret.
    tokens: Option<TokenSigner>,
    /// Logins tried, per client address.
    logins: DefaultKeyedRateLimiter<IpAddr>,
    /// Each caller's allowance under its plan.
    limits: PlanLimits,
    /// The caller with authentication off.
    anonymous: Arc<Principal>,
    /// The holder of the bootstrap admin key.
    bootstrap: Arc<Principal>,
}

impl Authenticator {
    pub(crate) fn new(config: &AuthConfig, routing: Arc<RoutingCache>) -> Self {
        Self {
            enabled: config.enabled,
            admin: config.admin_key.as_deref().map(SecretHash::of),
            routing,
            tokens: config.tokens.clone(),
            logins: RateLimiter::keyed(Quota::per_minute(
                NonZeroU32::new(LOGIN_ATTEMPTS_PER_MINUTE).expect("a login a minute at least"),
            )),
            limits: PlanLimits::default(),
            anonymous: Arc::new(Principal::anonymous()),
            bootstrap: Arc::new(Principal::bootstrap_admin()),
        }
    }

    /// The caller whose credentials `headers` carry.
    ///
    /// # Errors
    /// [`GatewayError::Unauthenticated`] for no credentials, malformed ones or a key the
    /// cluster does not hold; [`GatewayError::NotReady`] for a key presented before the
    /// gateway has loaded the keys; [`GatewayError::RateLimited`] for a caller past its
    /// plan's rate (each call counts once).
    pub(crate) fn authenticate(&self, headers: &HeaderMap) -> Result<Arc<Principal>, GatewayError> {
        if !self.enabled {
            return Ok(Arc::clone(&self.anonymous));
        }
        let presented = credential(headers)?;
        if let Some(admin) = &self.admin
            && admin.matches(presented)
        {
            return Ok(Arc::clone(&self.bootstrap));
        }
        if let Ok(key) = parse_key(presented) {
            if !self.routing.is_loaded() {
                return Err(GatewayError::NotReady {
                    reason: "the API keys are not loaded yet".into(),
                });
            }
            let held = self.routing.snapshot();
            if let Some(stored) = held.keys.get(key.id)
                && stored.hash.matches(key.secret)
            {
                self.limits.admit(&stored.who, &held.plans)?;
                return Ok(Arc::clone(&stored.who));
            }
        }
        if looks_like_token(presented) {
            let Some(tokens) = &self.tokens else {
                return Err(GatewayError::Unauthenticated {
                    reason: "this gateway takes no tokens (it has no token secret)",
                });
            };
            return match tokens.verify(presented) {
                Ok(claims) => {
                    let mut who = claims.principal();
                    if who.plan.is_some() {
                        let plans = &self.routing.snapshot().plans;
                        self.limits.admit(&who, plans)?;
                        let plan = who.plan.as_ref().and_then(|name| plans.get(name));
                        who.quota = vectron_auth::Quota::of(plan);
                    }
                    Ok(Arc::new(who))
                }
                Err(TokenError::Expired) => Err(GatewayError::Unauthenticated {
                    reason: "the token expired",
                }),
                Err(_) => Err(GatewayError::Unauthenticated {
                    reason: "the token is not valid (not signed with this cluster's token secret, or damaged)",
                }),
            };
        }
        Err(GatewayError::Unauthenticated {
            reason: "the API key is not valid (unknown, revoked or mistyped)",
        })
    }

    /// The signer of tokens, when the gateway has a token secret.
    pub(crate) fn tokens(&self) -> Option<&TokenSigner> {
        self.tokens.as_ref()
    }

    /// Counts a login from `from`, refusing it past [`LOGIN_ATTEMPTS_PER_MINUTE`]. A
    /// caller whose address is unknown counts as one address.
    pub(crate) fn admit_login(&self, from: Option<IpAddr>) -> Result<(), GatewayError> {
        const ADDRESSES_KEPT: usize = 10_000;
        let from = from.unwrap_or(IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED));
        if self.logins.len() > ADDRESSES_KEPT {
            // Addresses whose allowance is full again need no state.
            self.logins.retain_recent();
        }
        self.logins.check_key(&from).map_err(|not_until| {
            let retry_after = not_until.wait_time_from(self.logins.clock().now());
            GatewayError::TooManyLogins { retry_after }
        })
    }
}

/// The gRPC method that needs no credentials: logging in is how a user gets one.
pub(crate) const GRPC_LOGIN_PATH: &str = "/vectron.v1.Users/Login";
/// The HTTP route that needs no credentials.
pub(crate) const HTTP_LOGIN_PATH: &str = "/v1/login";

/// The address an HTTP request came from, as the listener accepted its connection.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ClientAddr(pub(crate) std::net::SocketAddr);

/// The credential of `headers`: `api-key`, else a bearer `authorization`.
fn credential(headers: &HeaderMap) -> Result<&str, GatewayError> {
    let malformed = GatewayError::Unauthenticated {
        reason: "the credentials are malformed",
    };
    if let Some(value) = headers.get("api-key") {
        let key = value.to_str().map_err(|_| malformed)?.trim();
        return if key.is_empty() {
            Err(GatewayError::Unauthenticated {
                reason: "the api-key header is empty",
            })
        } else {
            Ok(key)
        };
    }
    let Some(value) = headers.get(http::header::AUTHORIZATION) else {
        return Err(GatewayError::Unauthenticated {
            reason: "the call carries no API key",
        });
    };
    let value = value.to_str().map_err(|_| malformed)?;
    match value.split_once(' ') {
        Some((scheme, key)) if scheme.eq_ignore_ascii_case("bearer") && !key.trim().is_empty() => {
            Ok(key.trim())
        }
        _ => Err(GatewayError::Unauthenticated {
            reason: "the authorization header is not `Bearer <key>`",
        }),
    }
}

/// The caller of a gRPC call, as the [`AuthLayer`] found it.
pub(crate) fn grpc_caller<T>(request: &tonic::Request<T>) -> Result<Arc<Principal>, GatewayError> {
    request
        .extensions()
        .get::<Arc<Principal>>()
        .cloned()
        .ok_or(GatewayError::Unauthenticated {
            reason: "the call's credentials were not checked",
        })
}

/// The caller of an HTTP request, as the [`authenticate`] middleware found it.
#[derive(Debug, Clone)]
pub(crate) struct Caller(pub(crate) Arc<Principal>);

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = GatewayError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<Arc<Principal>>()
            .cloned()
            .map(Caller)
            .ok_or(GatewayError::Unauthenticated {
                reason: "the request's credentials were not checked",
            })
    }
}

/// HTTP middleware: the health probes pass as they are; every other request gets its
/// caller, or a 401 with `www-authenticate: Bearer`.
pub(crate) async fn authenticate(
    State(service): State<Arc<Service>>,
    mut request: Request,
    next: axum::middleware::Next,
) -> Response {
    let path = request.uri().path();
    if path == "/healthz" || path == "/readyz" || path == HTTP_LOGIN_PATH {
        return next.run(request).await;
    }
    match service.auth.authenticate(request.headers()) {
        Ok(who) => {
            request.extensions_mut().insert(who);
            next.run(request).await
        }
        Err(e) => {
            let unauthenticated = matches!(e, GatewayError::Unauthenticated { .. });
            let mut response = e.into_response();
            if unauthenticated {
                response.headers_mut().insert(
                    http::header::WWW_AUTHENTICATE,
                    http::HeaderValue::from_static("Bearer"),
                );
            }
            response
        }
    }
}

/// The gRPC listener's authentication: every call gets its caller in its extensions,
/// or is answered `UNAUTHENTICATED` before any handler runs (streams included).
#[derive(Debug, Clone)]
pub(crate) struct AuthLayer {
    service: Arc<Service>,
}

impl AuthLayer {
    pub(crate) fn new(service: Arc<Service>) -> Self {
        Self { service }
    }
}

impl<S> tower::Layer<S> for AuthLayer {
    type Service = Authenticated<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Authenticated {
            inner,
            service: Arc::clone(&self.service),
        }
    }
}

/// See [`AuthLayer`].
#[derive(Debug, Clone)]
pub(crate) struct Authenticated<S> {
    inner: S,
    service: Arc<Service>,
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

impl<S, B> tower::Service<http::Request<B>> for Authenticated<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<tonic::body::Body>>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    B: Send + 'static,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = S::Error;
    type Future = BoxFuture<Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<B>) -> Self::Future {
        let login = request.uri().path() == GRPC_LOGIN_PATH;
        let checked = if login {
            Ok(None)
        } else {
            self.service.auth.authenticate(request.headers()).map(Some)
        };
        match checked {
            Ok(who) => {
                if let Some(who) = who {
                    request.extensions_mut().insert(who);
                }
                // The service that was polled ready serves this call; a fresh clone
                // waits for the next one.
                let clone = self.inner.clone();
                let mut inner = std::mem::replace(&mut self.inner, clone);
                Box::pin(async move { inner.call(request).await })
            }
            Err(e) => {
                let response = tonic::Status::from(e).into_http();
                Box::pin(async move { Ok(response) })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vectron_control::ControlClient;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        pairs
            .iter()
            .map(|(k, v)| {
                (
                    http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                    http::HeaderValue::from_str(v).unwrap(),
                )
            })
            .collect()
    }

    fn authenticator(enabled: bool) -> Authenticator {
        let routing = Arc::new(RoutingCache::new(
            ControlClient::new(["127.0.0.1:1"]).unwrap(),
        ));
        Authenticator::new(
            &AuthConfig {
                enabled,
                admin_key: Some("correct horse battery staple".into()),
                insecure: false,
                tokens: Some(TokenSigner::new(SECRET).unwrap()),
            },
            routing,
        )
    }

    #[test]
    fn credentials_come_from_api_key_or_a_bearer_authorization() {
        let auth = authenticator(true);
        for good in [
            headers(&[("api-key", "correct horse battery staple")]),
            headers(&[("authorization", "Bearer correct horse battery staple")]),
            headers(&[("authorization", "bearer correct horse battery staple")]),
        ] {
            assert_eq!(auth.authenticate(&good).unwrap().name, "admin key");
        }
        for bad in [
            headers(&[]),
            headers(&[("api-key", "")]),
            headers(&[("api-key", "wrong horse battery staple")]),
            headers(&[("authorization", "Basic Y29ycmVjdA==")]),
            headers(&[("authorization", "Bearer ")]),
        ] {
            let refused = auth.authenticate(&bad).unwrap_err();
            assert!(
                matches!(refused, GatewayError::Unauthenticated { .. }),
                "{bad:?}: {refused}"
            );
        }
        // A well-formed key before the keys are loaded: not ready, not refused.
        let key = vectron_auth::generate_key().unwrap().key;
        let early = auth
            .authenticate(&headers(&[("api-key", &key)]))
            .unwrap_err();
        assert!(matches!(early, GatewayError::NotReady { .. }), "{early}");
    }

    const SECRET: &[u8] = b"a token secret of 32 bytes or so";

    #[test]
    fn a_token_signed_with_the_secret_is_its_claims_caller_until_it_expires() {
        use std::time::{Duration, SystemTime};
        use vectron_auth::{Access, Claims, Role};
        let auth = authenticator(true);
        let signer = TokenSigner::new(SECRET).unwrap();
        let claims = |made: SystemTime| {
            Claims::new(
                "alice".into(),
                Role::Scoped,
                [("docs".to_owned(), Access::Read)].into(),
                made,
                Duration::from_secs(60),
            )
        };
        let token = signer.mint(&claims(SystemTime::now())).unwrap();
        let who = auth
            .authenticate(&headers(&[("authorization", &format!("Bearer {token}"))]))
            .unwrap();
        assert_eq!(who.name, "token alice");
        assert_eq!(who.grants["docs"], Access::Read);
        let old = signer
            .mint(&claims(SystemTime::now() - Duration::from_secs(3600)))
            .unwrap();
        let other = TokenSigner::new(b"some other secret of enough bytes").unwrap();
        let foreign = other.mint(&claims(SystemTime::now())).unwrap();
        for (token, why) in [(old, "expired"), (foreign, "not valid")] {
            let refused = auth
                .authenticate(&headers(&[("api-key", &token)]))
                .unwrap_err();
            assert!(
                matches!(refused, GatewayError::Unauthenticated { reason } if reason.contains(why)),
                "{refused}"
            );
        }
    }

    #[test]
    fn with_authentication_off_every_caller_is_the_anonymous_admin() {
        let who = authenticator(false).authenticate(&headers(&[])).unwrap();
        assert_eq!(*who, Principal::anonymous());
    }
}
