//! Every error a caller of the control plane can cause, and the one place where each maps
//! to a gRPC status.

use openraft::errors::{ClientWriteError, Fatal, ForwardToLeader};
use tonic::Status;
use tonic::metadata::MetadataValue;

use crate::consensus::TypeConfig;
use crate::spec::SpecError;
use crate::state::CommandError;

/// Response metadata naming the leader's node id, on a refusal from a follower.
pub const LEADER_ID_HEADER: &str = "vectron-leader-id";
/// Response metadata naming the leader's `host:port`, on a refusal from a follower.
pub const LEADER_ADDR_HEADER: &str = "vectron-leader-addr";
/// Response metadata present on every "not the leader" refusal: the call was not applied,
/// so it can be retried elsewhere whatever it was.
pub const NOT_LEADER_HEADER: &str = "vectron-not-leader";

/// A worker registration that breaks a rule of `RegisterWorkerRequest`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegistrationError {
    /// The worker id is empty, too long, or holds a character outside `[A-Za-z0-9_.-]`.
    #[error("worker id {worker_id:?} is not allowed: use 1 to 64 characters from [A-Za-z0-9_.-]")]
    WorkerId {
        /// The id as given.
        worker_id: String,
    },
    /// The data host is empty or holds whitespace or a slash.
    #[error("data_host {host:?} is not a host name or IP address")]
    DataHost {
        /// The host as given.
        host: String,
    },
    /// The worker lists no core.
    #[error("a worker needs at least one core")]
    NoCores,
    /// Core indexes are not `0..cores`, each once.
    #[error("core indexes must be 0 to {last}, each once; core {core} breaks that")]
    CoreIndex {
        /// The offending core index.
        core: u32,
        /// The largest allowed index.
        last: u32,
    },
    /// A port is 0, above 65535, or used twice.
    #[error("core {core} has port {port}: ports must be 1 to 65535 and distinct")]
    Port {
        /// The core.
        core: u32,
        /// The port.
        port: u32,
    },
    /// The zone label is too long or holds a character outside `[A-Za-z0-9_.-]`.
    #[error("zone {zone:?} is not allowed: use up to 64 characters from [A-Za-z0-9_.-]")]
    Zone {
        /// The zone as given.
        zone: String,
    },
    /// The admin address is not `host:port`.
    #[error("admin_address {address:?} is not host:port")]
    AdminAddress {
        /// The address as given.
        address: String,
    },
}

/// Why a control-plane call failed, before it becomes a gRPC status.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ServiceError {
    #[error(transparent)]
    Spec(#[from] SpecError),
    #[error(transparent)]
    Command(#[from] CommandError),
    #[error(transparent)]
    Registration(#[from] RegistrationError),
    #[error("worker {worker_id:?} is not registered: register again")]
    UnknownWorker { worker_id: String },
    #[error("{0}")]
    BadRequest(String),
    #[error("control node {node_id} is not the leader")]
    NotLeader {
        node_id: u64,
        forward: ForwardToLeader<TypeConfig>,
    },
    #[error("control node {node_id} is shutting down")]
    Stopped {
        node_id: u64,
        #[source]
        source: Fatal<TypeConfig>,
    },
    #[error("the write was not applied")]
    Write(#[source] ClientWriteError<TypeConfig>),
    #[error(
        "node {node_id} is a member at {existing}, not {requested}: a node id is never reused for another node"
    )]
    NodeAddressConflict {
        node_id: u64,
        existing: String,
        requested: String,
    },
}

impl From<ServiceError> for Status {
    fn from(error: ServiceError) -> Self {
        let message = error.to_string();
        match error {
            ServiceError::Spec(_) | ServiceError::Registration(_) | ServiceError::BadRequest(_) => {
                Status::invalid_argument(message)
            }
            ServiceError::Command(command) => match command {
                CommandError::AlreadyExists { .. } => Status::already_exists(message),
                CommandError::NotFound { .. } => Status::not_found(message),
                CommandError::Placement(_)
                | CommandError::ClusterMismatch { .. }
                | CommandError::CoreInUse { .. } => Status::failed_precondition(message),
                CommandError::NotInitialized => Status::unavailable(message),
                CommandError::TooManyCollections { .. }
                | CommandError::CollectionQuota { .. }
                | CommandError::TooManyKeys { .. }
                | CommandError::TooManyUsers { .. }
                | CommandError::TooManyPlans { .. } => Status::resource_exhausted(message),
                CommandError::NoSuchPlan { .. } | CommandError::PlanInUse { .. } => {
                    Status::failed_precondition(message)
                }
                CommandError::KeyExists { .. } | CommandError::UserExists { .. } => {
                    Status::already_exists(message)
                }
                CommandError::NoSuchKey { .. } | CommandError::NoSuchUser { .. } => {
                    Status::not_found(message)
                }
            },
            ServiceError::UnknownWorker { .. } => Status::not_found(message),
            ServiceError::NodeAddressConflict { .. } => Status::failed_precondition(message),
            ServiceError::NotLeader { node_id, forward } => not_leader(node_id, &forward),
            ServiceError::Stopped { .. } => Status::unavailable(message),
            ServiceError::Write(write) => match write {
                ClientWriteError::ForwardToLeader(forward)
                | ClientWriteError::LogEntryDiscarded(forward) => not_leader(0, &forward),
                ClientWriteError::ChangeMembershipError(change) => {
                    let message = format!("membership change refused: {change}");
                    match change {
                        openraft::errors::ChangeMembershipError::InProgress(_)
                        | openraft::errors::ChangeMembershipError::UncommittedLeaderLog(_) => {
                            Status::unavailable(message)
                        }
                        _ => Status::failed_precondition(message),
                    }
                }
                other => Status::internal(format!("the write was not applied: {other}")),
            },
        }
    }
}

/// `UNAVAILABLE`, naming the leader when it is known.
fn not_leader(node_id: u64, forward: &ForwardToLeader<TypeConfig>) -> Status {
    let leader = forward.leader_id.zip(forward.leader_node.as_ref());
    let who = if node_id == 0 {
        "this control node".to_owned()
    } else {
        format!("control node {node_id}")
    };
    let mut status = match leader {
        Some((id, node)) => Status::unavailable(format!(
            "{who} is not the leader; the leader is node {id} at {}",
            node.address
        )),
        None => Status::unavailable(format!(
            "{who} is not the leader and no leader is known: the cluster is electing one, retry"
        )),
    };
    let metadata = status.metadata_mut();
    metadata.insert(NOT_LEADER_HEADER, MetadataValue::from_static("1"));
    if let Some((id, node)) = leader {
        metadata.insert(LEADER_ID_HEADER, MetadataValue::from(id));
        if let Ok(addr) = node.address.parse() {
            metadata.insert(LEADER_ADDR_HEADER, addr);
        }
    }
    status
}

/// Maps a failed `client_write` to a service error.
pub(crate) fn write_error(
    node_id: u64,
    error: openraft::errors::RaftError<TypeConfig, ClientWriteError<TypeConfig>>,
) -> ServiceError {
    match error {
        openraft::errors::RaftError::Fatal(source) => ServiceError::Stopped { node_id, source },
        openraft::errors::RaftError::APIError(
            ClientWriteError::ForwardToLeader(forward)
            | ClientWriteError::LogEntryDiscarded(forward),
        ) => ServiceError::NotLeader { node_id, forward },
        openraft::errors::RaftError::APIError(other) => ServiceError::Write(other),
    }
}
