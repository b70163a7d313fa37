//! Client behaviour that needs a server on a socket: one binary, one module per concern.
//! End-to-end tests against a real Vectron live with the `vectron` binary's tests.

mod retries;
#[cfg(feature = "tls")]
mod tls;
