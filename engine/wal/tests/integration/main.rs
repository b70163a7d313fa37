//! The write-ahead log's integration suite. Every test runs once per monoio driver
//! (io_uring and legacy), through [`both_drivers!`].

mod support;

mod basics;
mod crash;
mod faults;
mod model;
mod raft_state;
