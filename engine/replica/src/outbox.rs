//! The AppendEntries of every group bound for one peer core, sent together.
//!
//! A core that leads many groups whose followers share a peer core would otherwise make
//! one call per group and heartbeat. Instead, each peer core has one outbox: while a call
//! to it is in flight, the requests of other groups queue, and the next call carries all
//! of them (up to [`MAX_APPEND_BATCH_BYTES`]). A lone request leaves at once, so batching
//! adds no wait; it only merges what would have queued behind the call in flight anyway.
//! The peer answers every group of a batch side by side, each after its own log.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::rc::Rc;
use std::time::Duration;

use prost::Message;
use tokio::sync::oneshot;
use vectron_net::{Channel, Status};
use vectron_proto::replication::v1 as pb;

use crate::replicas::APPEND_PATH;

/// Most bytes of entries one append call carries: one group's request is cut to a prefix
/// within it (`wire::append_to`), and requests of several groups share a call up to it.
/// Well under what a worker's server takes in one message (64 MiB).
pub const MAX_APPEND_BATCH_BYTES: usize = 8 << 20;

struct Waiting {
    request: pb::AppendRequest,
    timeout: Duration,
    reply: oneshot::Sender<Result<pb::AppendResponse, Status>>,
}

/// The append requests waiting for one peer core.
pub(crate) struct Outbox {
    channel: Channel,
    queue: RefCell<VecDeque<Waiting>>,
    sending: Cell<bool>,
}

impl std::fmt::Debug for Outbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Outbox")
            .field("peer", &self.channel.addr())
            .field("queued", &self.queue.borrow().len())
            .field("sending", &self.sending.get())
            .finish()
    }
}

impl Outbox {
    pub(crate) fn new(channel: Channel) -> Rc<Self> {
        Rc::new(Self {
            channel,
            queue: RefCell::new(VecDeque::new()),
            sending: Cell::new(false),
        })
    }

    /// Sends `request` with the next call to the peer and waits for its answer, at most
    /// `timeout`.
    pub(crate) async fn append(
        self: &Rc<Self>,
        request: pb::AppendRequest,
        timeout: Duration,
    ) -> Result<pb::AppendResponse, Status> {
        let (reply, answer) = oneshot::channel();
        self.queue.borrow_mut().push_back(Waiting {
            request,
            timeout,
            reply,
        });
        if !self.sending.replace(true) {
            monoio::spawn(Rc::clone(self).drain());
        }
        match monoio::time::timeout(timeout, answer).await {
            Ok(Ok(answer)) => answer,
            Ok(Err(_)) => Err(Status::unavailable("the append call was dropped")),
            Err(_) => Err(Status::deadline_exceeded(format!(
                "no answer from {} within {timeout:?}",
                self.channel.addr()
            ))),
        }
    }

    /// Sends what is queued, a batch per call, until nothing is.
    async fn drain(self: Rc<Self>) {
        loop {
            let batch = self.take_batch();
            if batch.is_empty() {
                self.sending.set(false);
                return;
            }
            let timeout = batch.iter().map(|w| w.timeout).max().unwrap_or_default();
            let (requests, replies): (Vec<_>, Vec<_>) = batch
                .into_iter()
                .filter(|w| !w.reply.is_closed())
                .map(|w| (w.request, w.reply))
                .unzip();
            if requests.is_empty() {
                continue;
            }
            let sent = pb::AppendBatch { requests };
            let answered: Result<pb::AppendBatchResponse, Status> =
                self.channel.unary(APPEND_PATH, &sent, timeout).await;
            match answered {
                Ok(answers) if answers.responses.len() == replies.len() => {
                    for (reply, answer) in replies.into_iter().zip(answers.responses) {
                        let _ = reply.send(Ok(answer));
                    }
                }
                Ok(answers) => {
                    let wrong = Status::internal(format!(
                        "{} answered {} of {} append requests",
                        self.channel.addr(),
                        answers.responses.len(),
                        replies.len()
                    ));
                    for reply in replies {
                        let _ = reply.send(Err(wrong.clone()));
                    }
                }
                Err(status) => {
                    for reply in replies {
                        let _ = reply.send(Err(status.clone()));
                    }
                }
            }
        }
    }

    /// The queued requests that fit in one call, oldest first (at least one).
    fn take_batch(&self) -> Vec<Waiting> {
        let mut queue = self.queue.borrow_mut();
        let mut batch = Vec::new();
        let mut bytes = 0;
        while let Some(next) = queue.front() {
            let len = next.request.encoded_len();
            if !batch.is_empty() && bytes + len > MAX_APPEND_BATCH_BYTES {
                break;
            }
            bytes += len;
            batch.extend(queue.pop_front());
        }
        batch
    }
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;
    use std::rc::Rc;
    use std::time::Duration;

    use vectron_net::{ClientConfig, ListenOptions, RequestContext, Router, Server, ServerConfig};

    use super::*;

    /// A request for replica `to`, carrying `bytes` of entry body.
    fn request(to: u64, bytes: usize) -> pb::AppendRequest {
        pb::AppendRequest {
            route: Some(pb::Route {
                to,
                ..Default::default()
            }),
            entries: vec![pb::Entry {
                body: vec![7; bytes],
                ..Default::default()
            }],
            ..Default::default()
        }
    }

    /// Serves APPEND_PATH on loopback: records the size of every batch, waits `delay`,
    /// and answers each request with its replica id (in `error`), so answers can be told
    /// apart.
    async fn peer(delay: Duration, seen: Rc<RefCell<Vec<usize>>>) -> Channel {
        let router = Router::new()
            .unary(
                APPEND_PATH,
                move |_: RequestContext, batch: pb::AppendBatch| {
                    seen.borrow_mut().push(batch.requests.len());
                    async move {
                        monoio::time::sleep(delay).await;
                        let responses = batch
                            .requests
                            .iter()
                            .map(|r| pb::AppendResponse {
                                error: r.route.as_ref().map_or(0, |r| r.to).to_string(),
                                ..Default::default()
                            })
                            .collect();
                        Ok::<_, Status>(pb::AppendBatchResponse { responses })
                    }
                },
            )
            .expect("a router");
        let listener = vectron_net::bind("127.0.0.1:0".parse().unwrap(), &ListenOptions::default())
            .expect("binds");
        let addr = listener.local_addr().unwrap();
        // Workers take messages up to 64 MiB, well above a batch.
        let config = ServerConfig {
            max_recv_message_size: 64 << 20,
            ..ServerConfig::default()
        };
        let server = Server::new(config, router).expect("a server");
        monoio::spawn(server.serve(listener, std::future::pending()));
        Channel::new(addr, ClientConfig::default()).expect("a channel")
    }

    fn run<F: Future>(f: F) -> F::Output {
        monoio::RuntimeBuilder::<monoio::FusionDriver>::new()
            .enable_timer()
            .build()
            .expect("a runtime")
            .block_on(f)
    }

    #[test]
    fn requests_queued_behind_a_call_leave_together_and_each_gets_its_answer() {
        run(async {
            let seen = Rc::new(RefCell::new(Vec::new()));
            let outbox = Outbox::new(peer(Duration::from_millis(30), Rc::clone(&seen)).await);
            let spawn = |to: u64| {
                let outbox = Rc::clone(&outbox);
                monoio::spawn(async move {
                    (
                        to,
                        outbox
                            .append(request(to, 100), Duration::from_secs(5))
                            .await,
                    )
                })
            };
            // One request goes out alone; nine more arrive while it is in flight.
            let first = spawn(1);
            monoio::time::sleep(Duration::from_millis(10)).await;
            let calls: Vec<_> = std::iter::once(first).chain((2..=10).map(spawn)).collect();
            for call in calls {
                let (to, answer) = call.await;
                assert_eq!(answer.expect("answered").error, to.to_string());
            }
            // The nine queued behind the first share the next call.
            assert_eq!(*seen.borrow(), vec![1, 9]);

            // A request whose answer comes too late fails on its own deadline.
            let slow = Outbox::new(
                peer(
                    Duration::from_millis(300),
                    Rc::new(RefCell::new(Vec::new())),
                )
                .await,
            );
            let late = slow.append(request(1, 10), Duration::from_millis(50)).await;
            assert_eq!(
                late.unwrap_err().code(),
                vectron_net::Code::DeadlineExceeded
            );
        });
    }

    #[test]
    fn a_batch_stays_within_its_byte_bound() {
        run(async {
            let seen = Rc::new(RefCell::new(Vec::new()));
            let outbox = Outbox::new(peer(Duration::from_millis(30), Rc::clone(&seen)).await);
            let big = MAX_APPEND_BATCH_BYTES / 2 + 1;
            let calls: Vec<_> = [(1, 10), (2, big), (3, big), (4, 10)]
                .into_iter()
                .map(|(to, bytes)| {
                    let outbox = Rc::clone(&outbox);
                    monoio::spawn(async move {
                        outbox
                            .append(request(to, bytes), Duration::from_secs(5))
                            .await
                    })
                })
                .collect();
            for call in calls {
                call.await.expect("answered");
            }
            // All four queue before the first call; the two large ones never share one:
            // [small, large], then [large, small].
            assert_eq!(*seen.borrow(), vec![2, 2]);
        });
    }
}
