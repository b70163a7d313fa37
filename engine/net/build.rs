//! Compiles the conformance-test service (`tests/proto/netcheck.proto`) with protox (no
//! system `protoc`): prost messages for the server side, a tonic client for the tests, and
//! a tonic server that the benchmark compares against. The library itself does not include
//! the generated code; only the integration tests and the benchmark do.

use std::error::Error;

fn main() -> Result<(), Box<dyn Error>> {
    let proto = "tests/proto/netcheck.proto";
    println!("cargo:rerun-if-changed={proto}");
    let descriptors = protox::compile([proto], ["tests/proto"])?;
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .compile_fds(descriptors)?;
    Ok(())
}
