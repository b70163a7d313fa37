//! `vectron-net` on one monoio core against tonic on one tokio current-thread runtime,
//! measured in the same run, with the same tonic client on its own current-thread
//! runtime.
//!
//! ```text
//! cargo bench -p vectron-net --bench grpc
//! ```
//!
//! Both servers run on CPU `VECTRON_BENCH_SERVER_CPU` (default 0) and the client on
//! `VECTRON_BENCH_CLIENT_CPU` (default 1), when those CPUs exist; only one server is
//! loaded at a time. The servers use the same HTTP/2 windows and frame size. Workloads:
//! - `unary`: 3 KiB requests (a 768-dimension query), small replies, 32 calls in flight
//!   on one connection;
//! - `client_stream`: 10,000 small messages per call (per-message overhead of ingest);
//! - `server_stream`: 10,000 messages of 512 bytes per call.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput};
use tokio::sync::oneshot;
use tokio_stream::Stream;
use tonic::transport::{Channel, Endpoint};
use vectron_net::{
    ListenOptions, RequestContext, RequestStream, ResponseSink, Router, Server, ServerConfig,
    Status,
};

#[expect(
    unused_qualifications,
    clippy::allow_attributes,
    clippy::allow_attributes_without_reason,
    reason = "generated code: full paths and its own bare allows"
)]
mod netcheck {
    tonic::include_proto!("netcheck.v1");
}

use netcheck::check_client::CheckClient;
use netcheck::check_server::{Check, CheckServer};
use netcheck::{
    BlobReply, BlobRequest, Chunk, EchoReply, EchoRequest, FailRequest, Number, RangeRequest,
    StallRequest, Total,
};

const IN_FLIGHT: u64 = 32;
const STREAM_LEN: u64 = 10_000;
const CHUNK_SIZE: u32 = 512;
const QUERY_BYTES: usize = 3 * 1024;

fn pin_to(cpu_var: &str, default: usize) {
    let cpu = std::env::var(cpu_var)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default);
    let cpus = std::thread::available_parallelism().map_or(1, usize::from);
    if cpu < cpus {
        let _ = monoio::utils::bind_to_cpu_set([cpu]);
    }
}

fn config() -> ServerConfig {
    ServerConfig::default()
}

/// The monoio server with the benchmark's three methods.
fn start_vectron() -> (SocketAddr, oneshot::Sender<()>) {
    let (addr_tx, addr_rx) = std::sync::mpsc::channel();
    let (stop, stopped) = oneshot::channel::<()>();
    std::thread::spawn(move || {
        pin_to("VECTRON_BENCH_SERVER_CPU", 0);
        let serve = async move {
            let router = Router::new()
                .unary(
                    "/netcheck.v1.Check/Echo",
                    |_ctx: RequestContext, request: EchoRequest| async move {
                        Ok::<_, Status>(EchoReply {
                            text: request.text,
                            ..EchoReply::default()
                        })
                    },
                )
                .unwrap()
                .client_streaming(
                    "/netcheck.v1.Check/Sum",
                    |_ctx, mut numbers: RequestStream<Number>| async move {
                        let mut total = Total::default();
                        while let Some(number) = numbers.message().await? {
                            total.count += 1;
                            total.sum += number.value;
                        }
                        Ok::<_, Status>(total)
                    },
                )
                .unwrap()
                .server_streaming(
                    "/netcheck.v1.Check/Range",
                    |_ctx, request: RangeRequest, mut out: ResponseSink<Chunk>| async move {
                        for seq in 0..request.count {
                            out.send(&Chunk {
                                seq,
                                data: vec![7; request.size as usize],
                            })
                            .await?;
                        }
                        Ok(())
                    },
                )
                .unwrap();
            let listener =
                vectron_net::bind("127.0.0.1:0".parse().unwrap(), &ListenOptions::default())
                    .unwrap();
            addr_tx.send(listener.local_addr().unwrap()).unwrap();
            let server = Server::new(config(), router).unwrap();
            server
                .serve(listener, async move {
                    let _ = stopped.await;
                })
                .await
                .unwrap();
        };
        if monoio::utils::detect_uring() {
            eprintln!("vectron-net runs on the io_uring driver");
            monoio::RuntimeBuilder::<monoio::IoUringDriver>::new()
                .enable_timer()
                .build()
                .unwrap()
                .block_on(serve);
        } else {
            eprintln!("vectron-net runs on the legacy driver: io_uring is unavailable");
            monoio::RuntimeBuilder::<monoio::LegacyDriver>::new()
                .enable_timer()
                .build()
                .unwrap()
                .block_on(serve);
        }
    });
    (addr_rx.recv().unwrap(), stop)
}

/// The same three methods as a tonic service.
struct TonicCheck;

type ChunkStream = Pin<Box<dyn Stream<Item = Result<Chunk, tonic::Status>> + Send>>;

#[tonic::async_trait]
impl Check for TonicCheck {
    async fn echo(
        &self,
        request: tonic::Request<EchoRequest>,
    ) -> Result<tonic::Response<EchoReply>, tonic::Status> {
        let text = request.into_inner().text;
        Ok(tonic::Response::new(EchoReply {
            text,
            ..EchoReply::default()
        }))
    }

    async fn fail(
        &self,
        _request: tonic::Request<FailRequest>,
    ) -> Result<tonic::Response<EchoReply>, tonic::Status> {
        Err(tonic::Status::unimplemented("not benchmarked"))
    }

    async fn stall(
        &self,
        _request: tonic::Request<StallRequest>,
    ) -> Result<tonic::Response<EchoReply>, tonic::Status> {
        Err(tonic::Status::unimplemented("not benchmarked"))
    }

    async fn panic(
        &self,
        _request: tonic::Request<EchoRequest>,
    ) -> Result<tonic::Response<EchoReply>, tonic::Status> {
        Err(tonic::Status::unimplemented("not benchmarked"))
    }

    async fn blob(
        &self,
        _request: tonic::Request<BlobRequest>,
    ) -> Result<tonic::Response<BlobReply>, tonic::Status> {
        Err(tonic::Status::unimplemented("not benchmarked"))
    }

    async fn sum(
        &self,
        request: tonic::Request<tonic::Streaming<Number>>,
    ) -> Result<tonic::Response<Total>, tonic::Status> {
        let mut numbers = request.into_inner();
        let mut total = Total::default();
        while let Some(number) = numbers.message().await? {
            total.count += 1;
            total.sum += number.value;
        }
        Ok(tonic::Response::new(total))
    }

    type RangeStream = ChunkStream;

    async fn range(
        &self,
        request: tonic::Request<RangeRequest>,
    ) -> Result<tonic::Response<ChunkStream>, tonic::Status> {
        let request = request.into_inner();
        let size = request.size as usize;
        let chunks = (0..request.count).map(move |seq| {
            Ok(Chunk {
                seq,
                data: vec![7; size],
            })
        });
        Ok(tonic::Response::new(Box::pin(tokio_stream::iter(chunks))))
    }
}

fn start_tonic() -> (SocketAddr, oneshot::Sender<()>) {
    let (addr_tx, addr_rx) = std::sync::mpsc::channel();
    let (stop, stopped) = oneshot::channel::<()>();
    std::thread::spawn(move || {
        pin_to("VECTRON_BENCH_SERVER_CPU", 0);
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async move {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            addr_tx.send(listener.local_addr().unwrap()).unwrap();
            let settings = config();
            let incoming =
                tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true));
            tonic::transport::Server::builder()
                .max_concurrent_streams(settings.max_concurrent_streams)
                .initial_stream_window_size(settings.initial_stream_window_size)
                .initial_connection_window_size(settings.initial_connection_window_size)
                .max_frame_size(settings.max_frame_size)
                .add_service(CheckServer::new(TonicCheck))
                .serve_with_incoming_shutdown(incoming, async move {
                    let _ = stopped.await;
                })
                .await
                .unwrap();
        });
    });
    (addr_rx.recv().unwrap(), stop)
}

/// `calls` unary calls, `IN_FLIGHT` at a time, on one connection.
async fn unary(channel: Channel, calls: u64) -> Duration {
    let started = Instant::now();
    let mut workers = tokio::task::JoinSet::new();
    for worker in 0..IN_FLIGHT {
        let mut client = CheckClient::new(channel.clone());
        let share = calls / IN_FLIGHT + u64::from(worker < calls % IN_FLIGHT);
        workers.spawn(async move {
            for _ in 0..share {
                let request = EchoRequest {
                    padding: vec![1; QUERY_BYTES],
                    ..EchoRequest::default()
                };
                client.echo(request).await.unwrap();
            }
        });
    }
    while let Some(done) = workers.join_next().await {
        done.unwrap();
    }
    started.elapsed()
}

async fn client_stream(channel: Channel, calls: u64) -> Duration {
    let mut client = CheckClient::new(channel);
    let started = Instant::now();
    for _ in 0..calls {
        let numbers = (0..STREAM_LEN).map(|value| Number {
            value: value as i64,
        });
        let total = client
            .sum(tokio_stream::iter(numbers))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(total.count, STREAM_LEN);
    }
    started.elapsed()
}

async fn server_stream(channel: Channel, calls: u64) -> Duration {
    let mut client = CheckClient::new(channel);
    let started = Instant::now();
    for _ in 0..calls {
        let request = RangeRequest {
            count: STREAM_LEN,
            size: CHUNK_SIZE,
            fail_code: 0,
        };
        let mut chunks = client.range(request).await.unwrap().into_inner();
        let mut received = 0;
        while chunks.message().await.unwrap().is_some() {
            received += 1;
        }
        assert_eq!(received, STREAM_LEN);
    }
    started.elapsed()
}

type Workload = fn(Channel, u64) -> Pin<Box<dyn Future<Output = Duration>>>;

fn main() {
    let (vectron_addr, stop_vectron) = start_vectron();
    let (tonic_addr, stop_tonic) = start_tonic();
    pin_to("VECTRON_BENCH_CLIENT_CPU", 1);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let connect = |addr: SocketAddr| {
        runtime.block_on(async move {
            Endpoint::from_shared(format!("http://{addr}"))
                .unwrap()
                .connect()
                .await
                .unwrap()
        })
    };
    let servers = [
        ("vectron-net (monoio)", connect(vectron_addr)),
        ("tonic (tokio current-thread)", connect(tonic_addr)),
    ];

    let workloads: [(&str, u64, Workload); 3] = [
        ("unary", 1, |channel, calls| Box::pin(unary(channel, calls))),
        ("client_stream", STREAM_LEN, |channel, calls| {
            Box::pin(client_stream(channel, calls))
        }),
        ("server_stream", STREAM_LEN, |channel, calls| {
            Box::pin(server_stream(channel, calls))
        }),
    ];
    let mut criterion = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4))
        .sample_size(20)
        .configure_from_args();
    for (name, messages_per_call, workload) in workloads {
        let mut group = criterion.benchmark_group(name);
        group.throughput(Throughput::Elements(messages_per_call));
        for (server, channel) in &servers {
            group.bench_function(*server, |b| {
                b.iter_custom(|calls| runtime.block_on(workload(channel.clone(), calls)));
            });
        }
        group.finish();
    }
    criterion.final_summary();
    let _ = stop_vectron.send(());
    let _ = stop_tonic.send(());
}
