//! End-to-end tests of the `vectron` binary: one test binary, one module per concern.

mod cli;
mod control;
