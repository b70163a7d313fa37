//! From a gRPC path (`/package.Service/Method`) to a typed handler.
//!
//! Handlers are plain closures returning futures. Neither needs to be `Send`: a router is
//! built on the core that serves it, so handlers hold `Rc<RefCell<_>>` core state. The
//! table is a hashbrown map keyed by the full path; a lookup hashes the `:path` once.
//!
//! | kind | handler | request | response |
//! | --- | --- | --- | --- |
//! | unary | `Fn(RequestContext, Req) -> Future<Output = Result<Resp, Status>>` | one message | one message |
//! | client streaming | `Fn(RequestContext, RequestStream<Req>) -> Future<Output = Result<Resp, Status>>` | a stream | one message |
//! | server streaming | `Fn(RequestContext, Req, ResponseSink<Resp>) -> Future<Output = Result<(), Status>>` | one message | a stream |

use std::cell::RefCell;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;

use hashbrown::HashMap;
use prost::Message;

use crate::context::RequestContext;
use crate::inbound::{Inbound, RequestStream, read_single};
use crate::outbound::{Outbound, ResponseSink};
use crate::status::Status;

/// The shape of a method's messages.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MethodKind {
    /// One request, one response.
    Unary,
    /// A stream of requests, one response (bulk ingest).
    ClientStreaming,
    /// One request, a stream of responses.
    ServerStreaming,
}

/// A registered method: its path, kind and a dense index (0, 1, 2, … in registration
/// order) that stats can use to keep per-method counters in a plain `Vec`.
#[derive(Clone)]
pub struct Method(Rc<MethodInfo>);

struct MethodInfo {
    path: Box<str>,
    index: usize,
    kind: MethodKind,
}

impl Method {
    /// The full path, such as `/vectron.core.v1.CoreService/Search`.
    pub fn path(&self) -> &str {
        &self.0.path
    }

    /// The service part of the path, such as `vectron.core.v1.CoreService`.
    pub fn service(&self) -> &str {
        self.split().0
    }

    /// The method name, such as `Search`.
    pub fn name(&self) -> &str {
        self.split().1
    }

    /// Position in registration order, below [`Router::len`].
    pub fn index(&self) -> usize {
        self.0.index
    }

    /// Unary or streaming.
    pub fn kind(&self) -> MethodKind {
        self.0.kind
    }

    fn split(&self) -> (&str, &str) {
        // Paths are validated at registration: `/service/name`.
        let path = self.0.path.strip_prefix('/').unwrap_or(&self.0.path);
        path.split_once('/').unwrap_or((path, ""))
    }
}

impl fmt::Debug for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Method")
            .field("path", &self.path())
            .field("index", &self.index())
            .field("kind", &self.kind())
            .finish()
    }
}

/// Why a method cannot be registered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RouterError {
    /// The path is not `/service/method` with two non-empty parts.
    #[error("invalid gRPC method path {path:?}: expected \"/package.Service/Method\"")]
    InvalidPath {
        /// The path given.
        path: String,
    },
    /// Another handler is registered for the same path.
    #[error("gRPC method {path} is registered twice")]
    DuplicatePath {
        /// The path given.
        path: String,
    },
}

/// The future of one call, from the request body to the last response message; the
/// final status is sent by the server.
pub(crate) type CallFuture = Pin<Box<dyn Future<Output = Result<(), Status>>>>;

/// What a call is given to run.
pub(crate) struct Call {
    pub(crate) ctx: RequestContext,
    pub(crate) inbound: Rc<RefCell<Inbound>>,
    pub(crate) outbound: Rc<RefCell<Outbound>>,
}

type Handler = Box<dyn Fn(Call) -> CallFuture>;

/// A registered method and its type-erased handler.
pub(crate) struct Route {
    pub(crate) method: Method,
    pub(crate) handler: Handler,
}

/// The table of methods one server answers.
///
/// ```
/// use vectron_net::{RequestContext, RequestStream, ResponseSink, Router, Status};
///
/// # fn main() -> Result<(), vectron_net::RouterError> {
/// let router = Router::new()
///     .unary("/demo.Kv/Get", |_ctx: RequestContext, key: String| async move {
///         Ok::<_, Status>(format!("value of {key}"))
///     })?
///     .client_streaming("/demo.Kv/Count", |_ctx, mut keys: RequestStream<String>| async move {
///         let mut n = 0u64;
///         while keys.message().await?.is_some() {
///             n += 1;
///         }
///         Ok::<_, Status>(n)
///     })?
///     .server_streaming(
///         "/demo.Kv/Scan",
///         |_ctx, limit: u64, mut out: ResponseSink<String>| async move {
///             for i in 0..limit {
///                 out.send(&format!("key-{i}")).await?;
///             }
///             Ok(())
///         },
///     )?;
/// assert_eq!(router.len(), 3);
/// # Ok(())
/// # }
/// ```
#[derive(Default)]
pub struct Router {
    routes: HashMap<Box<str>, Route>,
}

impl Router {
    /// An empty router: every call gets `UNIMPLEMENTED`.
    pub fn new() -> Router {
        Router::default()
    }

    /// Registers a unary method.
    ///
    /// # Errors
    ///
    /// [`RouterError`] for a malformed or already registered path.
    pub fn unary<Req, Resp, F, Fut>(self, path: &str, handler: F) -> Result<Router, RouterError>
    where
        Req: Message + Default + 'static,
        Resp: Message + 'static,
        F: Fn(RequestContext, Req) -> Fut + 'static,
        Fut: Future<Output = Result<Resp, Status>> + 'static,
    {
        let handler = Rc::new(handler);
        self.add(path, MethodKind::Unary, move |call: Call| -> CallFuture {
            let handler = Rc::clone(&handler);
            Box::pin(async move {
                let request = read_single::<Req>(&call.inbound).await?;
                let response = handler(call.ctx, request).await?;
                call.outbound.borrow_mut().enqueue(&response)
            })
        })
    }

    /// Registers a client-streaming method.
    ///
    /// # Errors
    ///
    /// [`RouterError`] for a malformed or already registered path.
    pub fn client_streaming<Req, Resp, F, Fut>(
        self,
        path: &str,
        handler: F,
    ) -> Result<Router, RouterError>
    where
        Req: Message + Default + 'static,
        Resp: Message + 'static,
        F: Fn(RequestContext, RequestStream<Req>) -> Fut + 'static,
        Fut: Future<Output = Result<Resp, Status>> + 'static,
    {
        let handler = Rc::new(handler);
        self.add(
            path,
            MethodKind::ClientStreaming,
            move |call: Call| -> CallFuture {
                let handler = Rc::clone(&handler);
                Box::pin(async move {
                    let requests = RequestStream::new(Rc::clone(&call.inbound));
                    let response = handler(call.ctx, requests).await?;
                    call.outbound.borrow_mut().enqueue(&response)
                })
            },
        )
    }

    /// Registers a server-streaming method.
    ///
    /// # Errors
    ///
    /// [`RouterError`] for a malformed or already registered path.
    pub fn server_streaming<Req, Resp, F, Fut>(
        self,
        path: &str,
        handler: F,
    ) -> Result<Router, RouterError>
    where
        Req: Message + Default + 'static,
        Resp: Message + 'static,
        F: Fn(RequestContext, Req, ResponseSink<Resp>) -> Fut + 'static,
        Fut: Future<Output = Result<(), Status>> + 'static,
    {
        let handler = Rc::new(handler);
        self.add(
            path,
            MethodKind::ServerStreaming,
            move |call: Call| -> CallFuture {
                let handler = Rc::clone(&handler);
                Box::pin(async move {
                    let request = read_single::<Req>(&call.inbound).await?;
                    let sink = ResponseSink::new(Rc::clone(&call.outbound));
                    handler(call.ctx, request, sink).await
                })
            },
        )
    }

    /// Number of registered methods.
    pub fn len(&self) -> usize {
        self.routes.len()
    }

    /// Whether no method is registered.
    pub fn is_empty(&self) -> bool {
        self.routes.is_empty()
    }

    /// The registered methods, in no particular order.
    pub fn methods(&self) -> impl Iterator<Item = &Method> {
        self.routes.values().map(|route| &route.method)
    }

    /// The route for a request's `:path`.
    pub(crate) fn route(&self, path: &str) -> Option<&Route> {
        self.routes.get(path)
    }

    fn add(
        mut self,
        path: &str,
        kind: MethodKind,
        handler: impl Fn(Call) -> CallFuture + 'static,
    ) -> Result<Router, RouterError> {
        let well_formed = path
            .strip_prefix('/')
            .and_then(|rest| rest.split_once('/'))
            .is_some_and(|(service, name)| {
                !service.is_empty() && !name.is_empty() && !name.contains('/')
            });
        if !well_formed {
            return Err(RouterError::InvalidPath {
                path: path.to_owned(),
            });
        }
        if self.routes.contains_key(path) {
            return Err(RouterError::DuplicatePath {
                path: path.to_owned(),
            });
        }
        let method = Method(Rc::new(MethodInfo {
            path: path.into(),
            index: self.routes.len(),
            kind,
        }));
        self.routes.insert(
            path.into(),
            Route {
                method,
                handler: Box::new(handler),
            },
        );
        Ok(self)
    }
}

impl fmt::Debug for Router {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut methods: Vec<&Method> = self.methods().collect();
        methods.sort_by_key(|method| method.index());
        f.debug_struct("Router").field("methods", &methods).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn echo(_ctx: RequestContext, request: String) -> Result<String, Status> {
        Ok(request)
    }

    #[test]
    fn methods_get_dense_indexes_and_split_paths() {
        let router = Router::new()
            .unary("/a.B/C", echo)
            .and_then(|r| r.unary("/a.B/D", echo))
            .unwrap();
        let c = &router.route("/a.B/C").unwrap().method;
        let d = &router.route("/a.B/D").unwrap().method;
        assert_eq!((c.index(), d.index()), (0, 1));
        assert_eq!(
            (c.service(), c.name(), c.kind()),
            ("a.B", "C", MethodKind::Unary)
        );
        assert!(router.route("/a.B/E").is_none());
        assert!(router.route("a.B/C").is_none());
    }

    #[test]
    fn malformed_and_duplicate_paths_are_refused() {
        for bad in ["", "/", "a.B/C", "/a.B", "/a.B/", "//C", "/a.B/C/D"] {
            let error = Router::new().unary(bad, echo).unwrap_err();
            assert_eq!(error, RouterError::InvalidPath { path: bad.into() });
        }
        let error = Router::new()
            .unary("/a.B/C", echo)
            .and_then(|r| r.unary("/a.B/C", echo));
        assert_eq!(
            error.unwrap_err(),
            RouterError::DuplicatePath {
                path: "/a.B/C".into()
            }
        );
    }
}
