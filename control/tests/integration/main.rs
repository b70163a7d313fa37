//! Control nodes in this process, over real loopback sockets: one test binary, one module
//! per concern.

mod cluster;
mod errors;
mod support;
mod workers;
