//! Every message of Vectron's contracts survives encode → decode → encode with every field
//! set. Messages are filled through reflection from the descriptor set, so a field the
//! generated Rust type dropped or mistyped shows up as a difference, and a message added
//! to the contract without a round-trip entry below fails the test.

use prost::Message;
use prost_reflect::{
    DescriptorPool, DynamicMessage, FieldDescriptor, Kind, MapKey, MessageDescriptor, Value,
};
use vectron_proto::v1;

/// Fills every field of `desc`; for each oneof, the variant at `variant % variants`.
/// Nested messages are filled down to `depth`, so recursive messages stay finite.
fn fill(desc: &MessageDescriptor, variant: usize, depth: usize) -> DynamicMessage {
    let mut msg = DynamicMessage::new(desc.clone());
    if depth == 0 {
        return msg;
    }
    for oneof in desc.oneofs().filter(|o| !o.is_synthetic()) {
        let fields: Vec<FieldDescriptor> = oneof.fields().collect();
        let field = &fields[variant % fields.len()];
        msg.set_field(field, value_for(field, variant, depth));
    }
    for field in desc.fields() {
        let in_real_oneof = field.containing_oneof().is_some_and(|o| !o.is_synthetic());
        if !in_real_oneof {
            msg.set_field(&field, value_for(&field, variant, depth));
        }
    }
    msg
}

fn value_for(field: &FieldDescriptor, variant: usize, depth: usize) -> Value {
    if field.is_map() {
        let Kind::Message(entry) = field.kind() else {
            unreachable!("map fields are messages")
        };
        let value_field = entry.map_entry_value_field();
        let mut map = std::collections::HashMap::new();
        map.insert(
            MapKey::String(format!("key-{}", field.name())),
            scalar_or_message(&value_field, variant, depth),
        );
        return Value::Map(map);
    }
    if field.is_list() {
        let one = scalar_or_message(field, variant, depth);
        let two = scalar_or_message(field, variant + 1, depth);
        return Value::List(vec![one, two]);
    }
    scalar_or_message(field, variant, depth)
}

fn scalar_or_message(field: &FieldDescriptor, variant: usize, depth: usize) -> Value {
    let n = field.number() + u32::try_from(variant).expect("small variant");
    match field.kind() {
        Kind::Double => Value::F64(f64::from(n) + 0.25),
        Kind::Float => Value::F32(n as f32 + 0.5),
        Kind::Int32 | Kind::Sint32 | Kind::Sfixed32 => Value::I32(-(n as i32) - 7),
        Kind::Int64 | Kind::Sint64 | Kind::Sfixed64 => Value::I64(-(i64::from(n) << 40) - 1),
        Kind::Uint32 | Kind::Fixed32 => Value::U32(n + 3),
        Kind::Uint64 | Kind::Fixed64 => Value::U64(u64::from(n) + (1 << 40)),
        Kind::Bool => Value::Bool(true),
        Kind::String => Value::String(format!("{}-{variant}-é", field.name())),
        Kind::Bytes => Value::Bytes(vec![0, 1, 0xff, n as u8].into()),
        Kind::Enum(e) => {
            let values: Vec<i32> = e.values().map(|v| v.number()).collect();
            // The last declared value: never the zero default, so presence is visible.
            Value::EnumNumber(values[(values.len() - 1 + variant) % values.len()].max(1))
        }
        Kind::Message(m) => Value::Message(fill(&m, variant, depth - 1)),
    }
}

/// Decodes `bytes` as the generated Rust type named `full_name` and encodes it again.
fn through_generated(full_name: &str, bytes: &[u8]) -> Vec<u8> {
    macro_rules! generated {
        ($($package:literal => $module:path { $($ty:ident),* $(,)? })*) => {
            match full_name {
                $($(concat!($package, ".", stringify!($ty)) => {
                    use $module as m;
                    m::$ty::decode(bytes)
                        .unwrap_or_else(|e| panic!("{full_name} does not decode: {e}"))
                        .encode_to_vec()
                })*)*
                other => panic!("{other} has no round-trip entry: add it to `generated!`"),
            }
        };
    }
    generated!(
        "vectron.v1" => vectron_proto::v1 {
            // collections.proto
            PayloadIndex, HnswConfig, CollectionSpec, CreateCollectionRequest,
            CreateCollectionResponse, DropCollectionRequest, DropCollectionResponse,
            ListCollectionsRequest, ListCollectionsResponse, DescribeCollectionRequest, UpdateCollectionRequest, EfTuning,
            PayloadIndexStatus, SearchCacheSettings,
            ReplicaInfo, ReplicaStatus, ShardInfo, CollectionInfo,
            // keys.proto
            CollectionGrant, KeyInfo, CreateKeyRequest, CreateKeyResponse, ListKeysRequest,
            ListKeysResponse, RevokeKeyRequest, RevokeKeyResponse, CreateTokenRequest,
            CreateTokenResponse,
            // plans.proto
            Plan, ListPlansRequest, ListPlansResponse, DeletePlanRequest, DeletePlanResponse,
            // users.proto
            UserInfo, CreateUserRequest, ListUsersRequest, ListUsersResponse, DeleteUserRequest,
            DeleteUserResponse, LoginRequest, LoginResponse,
            // filter.proto
            Filter, Condition, FieldCondition, AnyOf, Range, HasIdCondition,
            // search.proto
            Rerank, SearchRequest, ScoredPoint, SearchResponse, SearchStreamEvent,
            SearchBatchRequest, SearchBatchResponse,
            // points.proto
            Point, UpsertRequest, UpsertResponse, GetRequest, GetResponse, PointIds,
            DeleteRequest, DeleteResponse, CountRequest, CountResponse, ScrollRequest,
            ScrollResponse,
            // stats.proto
            CoreStatsRequest, LatencySummary, ReplicaStats, ShardStats, CoreStats,
            CoreStatsResponse,
        }
        "vectron.core.v1" => vectron_proto::core::v1 {
            ShardRef, ReplicaPeer, ShardAssignment, OpenShardRequest, OpenShardResponse, CloseShardRequest,
            CloseShardResponse, Point, UpsertRequest, UpsertResponse, ReadConsistency,
            SearchRequest,
            ScoredPoint, SearchResponse, SearchBatchRequest, SearchBatchResponse, GetRequest,
            GetResponse, PointIds, DeleteRequest, DeleteResponse, ScrollRequest,
            ScrollResponse, CountRequest, CountResponse, CheckpointRequest,
            CheckpointResponse, StatsRequest, ShardManifest,
        }
        "vectron.control.v1" => vectron_proto::control::v1 {
            CoreEndpoint, RegisterWorkerRequest, RegisterWorkerResponse, ShardAssignment,
            HeartbeatRequest, CoreSummary, HeldShard, HeartbeatResponse, GetRoutingRequest,
            RoutingTable, WatchRoutingRequest, ClusterStatusRequest, ControlNode, WorkerStatus,
            UnavailableShard, ClusterStatusResponse, AddLearnerRequest, ChangeMembershipRequest,
            JoinClusterRequest, MembershipResponse, RaftMessage, SnapshotChunk, ApiKeyEntry,
            CreateApiKeyRequest, UserEntry, StoreUserRequest, CreateCollectionRequest,
        }
        "vectron.replication.v1" => vectron_proto::replication::v1 {
            Group, Route, LogId, Vote, Entry, AppendRequest, AppendResponse, AppendBatch,
            AppendBatchResponse, VoteRequest, VoteResponse, SnapshotChunk, SnapshotStart,
            FileChunk, SnapshotResponse, TransferLeaderRequest, TransferLeaderResponse,
            VoteChanged, LogNotFlushed,
        }
    )
}

#[test]
fn every_message_round_trips_with_every_field_set() {
    let pool = DescriptorPool::decode(vectron_proto::FILE_DESCRIPTOR_SET).expect("descriptors");
    let messages: Vec<MessageDescriptor> = pool
        .all_messages()
        .filter(|m| m.package_name().starts_with("vectron."))
        .collect();
    assert!(
        messages.len() >= 60,
        "found only {} messages",
        messages.len()
    );

    for desc in &messages {
        let variants = desc.oneofs().map(|o| o.fields().len()).max().unwrap_or(1);
        for variant in 0..variants {
            let original = fill(desc, variant, 4);
            let bytes = original.encode_to_vec();
            assert!(
                desc.fields().next().is_none() || !bytes.is_empty(),
                "{} encoded to nothing",
                desc.full_name()
            );
            let again = through_generated(desc.full_name(), &bytes);
            let decoded = DynamicMessage::decode(desc.clone(), again.as_slice())
                .expect("re-encoded bytes decode");
            assert_eq!(
                original,
                decoded,
                "{} lost data (variant {variant})",
                desc.full_name()
            );
        }
    }
}

#[test]
fn unset_optional_fields_stay_absent() {
    // Presence is part of the contract: an absent `shard_count` means "the default",
    // an explicit 0 is refused by the server. The two must not collapse.
    let absent = v1::CollectionSpec {
        shard_count: None,
        ..Default::default()
    };
    let zero = v1::CollectionSpec {
        shard_count: Some(0),
        ..Default::default()
    };
    assert_eq!(
        v1::CollectionSpec::decode(absent.encode_to_vec().as_slice()).unwrap(),
        absent
    );
    assert_eq!(
        v1::CollectionSpec::decode(zero.encode_to_vec().as_slice()).unwrap(),
        zero
    );
    assert_ne!(absent.encode_to_vec(), zero.encode_to_vec());

    let wait_absent = v1::UpsertRequest::default();
    let decoded = v1::UpsertRequest::decode(wait_absent.encode_to_vec().as_slice()).unwrap();
    assert_eq!(decoded.wait, None);
}
