//! Reliability of the `vectron` binary against real processes on loopback: bad input at
//! every door, abusive clients, crashes at random moments, a full disk. Each case asserts
//! what the client is told and that the server keeps serving others.
//!
//! Short by default (what CI runs); `VECTRON_RELIABILITY=long` runs the long campaigns
//! (a hundred crashes instead of a few).

#[path = "../integration/support.rs"]
#[expect(
    dead_code,
    reason = "shared with the integration tests, which use all of it"
)]
mod support;

mod abuse;
mod bad_input;
mod crash;
mod disk_full;
mod failover;
mod harness;
mod ingest;
mod stall;
mod targets;

/// Whether the long campaigns run (`VECTRON_RELIABILITY=long`).
fn long() -> bool {
    std::env::var("VECTRON_RELIABILITY").is_ok_and(|v| v == "long")
}
