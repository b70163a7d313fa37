//! openraft's messages to and from `vectron.replication.v1`. Entries travel as record
//! bodies ([`EncodedBody`]), the bytes the log stores; votes and log ids as plain
//! numbers. Anything that does not decode is refused with the reason, never guessed.

use std::borrow::Cow;
use std::io;

use openraft::EntryPayload;
use openraft::entry::RaftEntry;
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, TransferLeaderError, TransferLeaderRequest,
    TransferLeaderResponse, VoteRequest, VoteResponse,
};
use vectron_proto::replication::v1 as pb;
use vectron_wal::{BodyView, EncodedBody, Record};

use crate::types::{Entry, LogId, ShardOp, ShardRaft, Vote, log_id};

/// Why a message from a peer cannot be taken.
#[derive(Debug, thiserror::Error)]
pub enum WireError {
    /// A field every message of its kind has is missing.
    #[error("{0} is missing")]
    Missing(&'static str),
    /// An entry's body is not a record body.
    #[error("entry {index}: {reason}")]
    BadEntry {
        /// The entry's index.
        index: u64,
        /// Why.
        reason: String,
    },
    /// The outcome is not one this build knows.
    #[error("unknown append outcome {0}")]
    UnknownOutcome(i32),
}

pub(crate) fn log_id_to(id: &LogId) -> pb::LogId {
    pb::LogId {
        term: id.leader_id.term,
        index: id.index,
    }
}

pub(crate) fn log_id_from(id: &pb::LogId) -> LogId {
    log_id(id.term, id.index)
}

pub(crate) fn vote_to(vote: &Vote) -> pb::Vote {
    pb::Vote {
        term: vote.leader_id.term,
        node_id: vote.leader_id.voted_for,
        committed: vote.committed,
    }
}

pub(crate) fn vote_from(vote: Option<&pb::Vote>) -> Result<Vote, WireError> {
    let vote = vote.ok_or(WireError::Missing("vote"))?;
    let mut out = Vote::new(vote.term, vote.node_id);
    out.committed = vote.committed;
    Ok(out)
}

/// The body an entry is stored and sent as: a normal entry's own, borrowed.
pub(crate) fn body_of(entry: &Entry) -> io::Result<Cow<'_, EncodedBody>> {
    let encoded = match &entry.payload {
        EntryPayload::Normal(op) => return Ok(Cow::Borrowed(op.body())),
        EntryPayload::Blank => EncodedBody::encode(&Record::Blank),
        EntryPayload::Membership(m) => {
            let json = serde_json::to_vec(m).map_err(io::Error::other)?;
            EncodedBody::encode(&Record::Membership(&json))
        }
    };
    encoded.map(Cow::Owned).map_err(io::Error::other)
}

/// The entry `body` holds, with id `id`.
pub(crate) fn entry_from_body(id: LogId, body: EncodedBody) -> Result<Entry, WireError> {
    let bad = |reason: String| WireError::BadEntry {
        index: id.index,
        reason,
    };
    let payload = match body.view() {
        BodyView::Blank => EntryPayload::Blank,
        BodyView::Membership(json) => EntryPayload::Membership(
            serde_json::from_slice(json).map_err(|e| bad(format!("membership: {e}")))?,
        ),
        BodyView::Upsert(_) | BodyView::Delete(_) | BodyView::DeleteByFilter(_) => {
            EntryPayload::Normal(ShardOp::from(body))
        }
        BodyView::Checkpoint { .. } => return Err(bad("a checkpoint marker".into())),
    };
    Ok(Entry::new(id, payload))
}

pub(crate) fn entry_to(entry: &Entry) -> io::Result<pb::Entry> {
    Ok(pb::Entry {
        term: entry.log_id.leader_id.term,
        index: entry.log_id.index,
        body: body_of(entry)?.as_bytes().to_vec(),
    })
}

pub(crate) fn entry_from(entry: &pb::Entry) -> Result<Entry, WireError> {
    let id = log_id(entry.term, entry.index);
    let body = EncodedBody::decode(&entry.body).map_err(|e| WireError::BadEntry {
        index: entry.index,
        reason: e.to_string(),
    })?;
    entry_from_body(id, body)
}

/// The request for `rpc`, carrying at most `max_bytes` of entry bodies (always at least
/// one entry). openraft bounds an AppendEntries by its count of entries, and one entry
/// may hold megabytes: when only a prefix fits, the request carries that prefix, and the
/// id of its last entry comes back so that a success can be reported as partial (the
/// leader then sends the rest).
pub(crate) fn append_to(
    route: pb::Route,
    rpc: &AppendEntriesRequest<ShardRaft>,
    max_bytes: usize,
) -> io::Result<(pb::AppendRequest, Option<LogId>)> {
    let mut entries: Vec<pb::Entry> = Vec::with_capacity(rpc.entries.len());
    let mut bytes = 0;
    let mut prefix_end = None;
    for entry in &rpc.entries {
        let wire = entry_to(entry)?;
        if !entries.is_empty() && bytes + wire.body.len() > max_bytes {
            prefix_end = entries.last().map(|e| log_id(e.term, e.index));
            break;
        }
        bytes += wire.body.len();
        entries.push(wire);
    }
    let request = pb::AppendRequest {
        route: Some(route),
        vote: Some(vote_to(&rpc.vote)),
        prev_log_id: rpc.prev_log_id.as_ref().map(log_id_to),
        entries,
        leader_commit: rpc.leader_commit.as_ref().map(log_id_to),
    };
    Ok((request, prefix_end))
}

pub(crate) fn append_from(
    request: &pb::AppendRequest,
) -> Result<AppendEntriesRequest<ShardRaft>, WireError> {
    Ok(AppendEntriesRequest {
        vote: vote_from(request.vote.as_ref())?,
        prev_log_id: request.prev_log_id.as_ref().map(log_id_from),
        entries: request
            .entries
            .iter()
            .map(entry_from)
            .collect::<Result<_, _>>()?,
        leader_commit: request.leader_commit.as_ref().map(log_id_from),
    })
}

pub(crate) fn append_response_to(
    response: &AppendEntriesResponse<ShardRaft>,
) -> pb::AppendResponse {
    let mut out = pb::AppendResponse::default();
    match response {
        AppendEntriesResponse::Success => out.set_outcome(pb::AppendOutcome::Success),
        AppendEntriesResponse::PartialSuccess(matched) => {
            out.set_outcome(pb::AppendOutcome::Partial);
            out.matched = matched.as_ref().map(log_id_to);
        }
        AppendEntriesResponse::Conflict => out.set_outcome(pb::AppendOutcome::Conflict),
        AppendEntriesResponse::HigherVote(vote) => {
            out.set_outcome(pb::AppendOutcome::HigherVote);
            out.higher_vote = Some(vote_to(vote));
        }
    }
    out
}

/// An answer that reached no replica.
pub(crate) fn refused(reason: String) -> pb::AppendResponse {
    let mut out = pb::AppendResponse {
        error: reason,
        ..Default::default()
    };
    out.set_outcome(pb::AppendOutcome::Refused);
    out
}

/// What the answer says, or why the request reached no replica (`Ok(Err(reason))`).
pub(crate) fn append_response_from(
    response: &pb::AppendResponse,
) -> Result<Result<AppendEntriesResponse<ShardRaft>, String>, WireError> {
    Ok(Ok(match pb::AppendOutcome::try_from(response.outcome) {
        Ok(pb::AppendOutcome::Success) => AppendEntriesResponse::Success,
        Ok(pb::AppendOutcome::Partial) => {
            AppendEntriesResponse::PartialSuccess(response.matched.as_ref().map(log_id_from))
        }
        Ok(pb::AppendOutcome::Conflict) => AppendEntriesResponse::Conflict,
        Ok(pb::AppendOutcome::HigherVote) => {
            AppendEntriesResponse::HigherVote(vote_from(response.higher_vote.as_ref())?)
        }
        Ok(pb::AppendOutcome::Refused) => return Ok(Err(response.error.clone())),
        Ok(pb::AppendOutcome::Unspecified) | Err(_) => {
            return Err(WireError::UnknownOutcome(response.outcome));
        }
    }))
}

pub(crate) fn vote_request_to(
    route: pb::Route,
    rpc: &VoteRequest<ShardRaft>,
    pre_vote: bool,
) -> pb::VoteRequest {
    pb::VoteRequest {
        route: Some(route),
        vote: Some(vote_to(&rpc.vote)),
        last_log_id: rpc.last_log_id.as_ref().map(log_id_to),
        pre_vote,
        leadership_transfer: rpc.leadership_transfer,
    }
}

pub(crate) fn vote_request_from(
    request: &pb::VoteRequest,
) -> Result<VoteRequest<ShardRaft>, WireError> {
    let mut rpc = VoteRequest::new(
        vote_from(request.vote.as_ref())?,
        request.last_log_id.as_ref().map(log_id_from),
    );
    rpc.leadership_transfer = request.leadership_transfer;
    Ok(rpc)
}

pub(crate) fn vote_response_to(response: &VoteResponse<ShardRaft>) -> pb::VoteResponse {
    pb::VoteResponse {
        vote: Some(vote_to(&response.vote)),
        granted: response.vote_granted,
        last_log_id: response.last_log_id.as_ref().map(log_id_to),
    }
}

pub(crate) fn vote_response_from(
    response: &pb::VoteResponse,
) -> Result<VoteResponse<ShardRaft>, WireError> {
    Ok(VoteResponse::new(
        vote_from(response.vote.as_ref())?,
        response.last_log_id.as_ref().map(log_id_from),
        response.granted,
    ))
}

pub(crate) fn transfer_to(
    route: pb::Route,
    req: &TransferLeaderRequest<ShardRaft>,
) -> pb::TransferLeaderRequest {
    pb::TransferLeaderRequest {
        route: Some(route),
        from: Some(vote_to(req.from_leader())),
        last_log_id: req.last_log_id().map(log_id_to),
    }
}

pub(crate) fn transfer_from(
    request: &pb::TransferLeaderRequest,
) -> Result<TransferLeaderRequest<ShardRaft>, WireError> {
    let to = request
        .route
        .as_ref()
        .ok_or(WireError::Missing("route"))?
        .to;
    Ok(TransferLeaderRequest::new(
        vote_from(request.from.as_ref())?,
        to,
        request.last_log_id.as_ref().map(log_id_from),
    ))
}

pub(crate) fn transfer_response_to(
    response: &TransferLeaderResponse<ShardRaft>,
) -> pb::TransferLeaderResponse {
    use pb::transfer_leader_response::Refused;
    let refused = match response {
        Ok(()) => None,
        Err(TransferLeaderError::VoteChanged { expected, actual }) => {
            Some(Refused::VoteChanged(pb::VoteChanged {
                expected: Some(vote_to(expected)),
                actual: Some(vote_to(actual)),
            }))
        }
        Err(TransferLeaderError::LogNotFlushed { expected, actual }) => {
            Some(Refused::LogNotFlushed(pb::LogNotFlushed {
                expected: expected.as_ref().map(log_id_to),
                actual: actual.as_ref().map(log_id_to),
            }))
        }
    };
    pb::TransferLeaderResponse { refused }
}

pub(crate) fn transfer_response_from(
    response: &pb::TransferLeaderResponse,
) -> Result<TransferLeaderResponse<ShardRaft>, WireError> {
    use pb::transfer_leader_response::Refused;
    Ok(match &response.refused {
        None => Ok(()),
        Some(Refused::VoteChanged(v)) => Err(TransferLeaderError::VoteChanged {
            expected: vote_from(v.expected.as_ref())?,
            actual: vote_from(v.actual.as_ref())?,
        }),
        Some(Refused::LogNotFlushed(l)) => Err(TransferLeaderError::LogNotFlushed {
            expected: l.expected.as_ref().map(log_id_from),
            actual: l.actual.as_ref().map(log_id_from),
        }),
    })
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};

    use openraft::Membership;
    use vectron_wal::Delete;

    use super::*;
    use crate::types::ReplicaNode;

    #[test]
    fn every_kind_of_entry_crosses_the_wire_unchanged() {
        let ids = ["a".to_string()];
        let normal = Entry::new(
            log_id(2, 7),
            EntryPayload::Normal(ShardOp::encode(&Record::Delete(Delete { ids: &ids })).unwrap()),
        );
        let nodes = BTreeMap::from([(
            1,
            ReplicaNode {
                worker_id: 4,
                core: 2,
            },
        )]);
        let membership = Entry::new(
            log_id(2, 8),
            EntryPayload::Membership(Membership::new(vec![BTreeSet::from([1])], nodes).unwrap()),
        );
        let blank = Entry::new_blank(log_id(3, 9));
        let request = AppendEntriesRequest::<ShardRaft> {
            vote: Vote::new_committed(3, 1),
            prev_log_id: Some(log_id(2, 6)),
            entries: vec![normal, membership, blank],
            leader_commit: Some(log_id(2, 5)),
        };
        let route = pb::Route::default();
        let (wire, prefix) = append_to(route.clone(), &request, usize::MAX).unwrap();
        assert_eq!(prefix, None);
        let back = append_from(&wire).unwrap();
        assert_eq!(back.vote, request.vote);
        assert_eq!(back.prev_log_id, request.prev_log_id);
        assert_eq!(back.leader_commit, request.leader_commit);
        assert_eq!(back.entries, request.entries);

        // Bounded in bytes, the request carries a prefix and names its last entry; the
        // first entry goes whatever its size.
        let one = entry_to(&request.entries[0]).unwrap().body.len();
        let (wire, prefix) = append_to(route.clone(), &request, one).unwrap();
        assert_eq!(wire.entries.len(), 1);
        assert_eq!(prefix, Some(log_id(2, 7)));
        let (wire, prefix) = append_to(route, &request, 0).unwrap();
        assert_eq!((wire.entries.len(), prefix), (1, Some(log_id(2, 7))));
    }

    #[test]
    fn damaged_messages_are_refused_with_the_reason() {
        let entry = pb::Entry {
            term: 1,
            index: 4,
            body: vec![1, 2, 3],
        };
        let err = entry_from(&entry).unwrap_err();
        assert!(matches!(err, WireError::BadEntry { index: 4, .. }), "{err}");
        assert!(matches!(vote_from(None), Err(WireError::Missing("vote"))));
        let unknown = pb::AppendResponse {
            outcome: 99,
            ..Default::default()
        };
        assert!(matches!(
            append_response_from(&unknown),
            Err(WireError::UnknownOutcome(99))
        ));
        let refused = append_response_from(&refused("no such group".into())).unwrap();
        assert_eq!(refused.unwrap_err(), "no such group");
    }

    #[test]
    fn transfers_and_their_refusals_round_trip() {
        let route = pb::Route {
            to: 3,
            ..Default::default()
        };
        let req = TransferLeaderRequest::<ShardRaft>::new(
            Vote::new_committed(4, 1),
            3,
            Some(log_id(4, 20)),
        );
        assert_eq!(transfer_from(&transfer_to(route, &req)).unwrap(), req);
        for response in [
            Ok(()),
            Err(TransferLeaderError::VoteChanged {
                expected: Vote::new_committed(4, 1),
                actual: Vote::new(5, 2),
            }),
            Err(TransferLeaderError::LogNotFlushed {
                expected: Some(log_id(4, 20)),
                actual: None,
            }),
        ] {
            let back = transfer_response_from(&transfer_response_to(&response)).unwrap();
            assert_eq!(back, response);
        }
    }

    #[test]
    fn every_append_answer_round_trips() {
        for response in [
            AppendEntriesResponse::<ShardRaft>::Success,
            AppendEntriesResponse::PartialSuccess(Some(log_id(4, 10))),
            AppendEntriesResponse::PartialSuccess(None),
            AppendEntriesResponse::Conflict,
            AppendEntriesResponse::HigherVote(Vote::new(9, 2)),
        ] {
            let back = append_response_from(&append_response_to(&response))
                .unwrap()
                .unwrap();
            assert_eq!(back, response);
        }
    }
}
