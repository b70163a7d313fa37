//! The state machine, command by command: exact states and results, no Raft.

use vectron_proto::v1 as api;

use super::*;
use crate::spec::CollectionRequest;

fn registration(id: &str, cores: u32) -> Registration {
    Registration {
        worker_id: id.into(),
        data_host: "127.0.0.1".into(),
        admin_address: String::new(),
        cores: (0..cores).map(|c| (c, 7000 + c)).collect(),
        cluster_id: String::new(),
        zone: String::new(),
    }
}

fn request(name: &str, shards: Option<u32>, replication: u32) -> CollectionRequest {
    let spec = api::CollectionSpec {
        name: name.into(),
        dimension: 4,
        metric: api::Metric::L2.into(),
        shard_count: shards,
        replication_factor: Some(replication),
        ..Default::default()
    };
    CollectionRequest::from_proto(&spec).unwrap()
}

/// A named cluster with two workers of two cores each, the log at index 3.
fn cluster() -> ControlState {
    let mut state = ControlState::default();
    let commands = [
        Command::InitCluster {
            cluster_id: "c1".into(),
        },
        Command::RegisterWorker {
            registration: registration("w1", 2),
            at_ms: 10,
        },
        Command::RegisterWorker {
            registration: registration("w2", 2),
            at_ms: 20,
        },
    ];
    for (i, command) in commands.iter().enumerate() {
        state.apply(i as u64 + 1, command).unwrap();
    }
    state
}

fn held(collection: &str, shard_id: u32, epoch: u64, points: u64) -> HeldShard {
    HeldShard {
        collection: collection.into(),
        shard_id,
        epoch,
        points,
        memory_bytes: points * 100,
    }
}

/// A report of `worker` holding every replica placed on it, each with `points`.
fn full_report(state: &ControlState, worker: &str, points: u64) -> WorkerReport {
    let mut cores: Vec<CoreReport> = state.workers[worker]
        .cores
        .iter()
        .map(|c| CoreReport {
            core: c.core,
            memory_bytes: 0,
            search_qps: 0.0,
            upsert_points_per_s: 0.0,
            in_flight: 0,
            queue_depth: 0,
            shards: Vec::new(),
        })
        .collect();
    for (name, collection) in &state.collections {
        for shard in &collection.shards {
            for replica in shard.replicas.iter().filter(|r| r.worker_id == worker) {
                cores[replica.core as usize].shards.push(held(
                    name,
                    shard.shard_id,
                    replica.epoch,
                    points,
                ));
            }
        }
    }
    WorkerReport {
        worker_id: worker.into(),
        cores,
    }
}

#[test]
fn the_cluster_id_is_written_once() {
    let mut state = cluster();
    assert_eq!(
        state.apply(
            9,
            &Command::InitCluster {
                cluster_id: "other".into()
            }
        ),
        Ok(Applied::Unchanged)
    );
    assert_eq!(state.cluster_id, "c1");
}

#[test]
fn workers_cannot_register_before_the_cluster_is_named() {
    let mut state = ControlState::default();
    assert_eq!(
        state.apply(
            1,
            &Command::RegisterWorker {
                registration: registration("w1", 1),
                at_ms: 0
            }
        ),
        Err(CommandError::NotInitialized)
    );
}

#[test]
fn create_places_one_shard_per_core_with_the_log_index_as_epoch() {
    let mut state = cluster();
    assert_eq!(
        state.apply(
            4,
            &Command::CreateCollection {
                request: request("docs", None, 1),
                owner: None,
            }
        ),
        Ok(Applied::CollectionCreated)
    );
    let docs = &state.collections["docs"];
    assert_eq!(docs.config.shard_count, 4);
    assert_eq!(docs.shards.len(), 4);
    assert_eq!(docs.shards[0].hash_start, 0);
    assert_eq!(docs.shards[3].hash_end, u64::MAX);
    for shard in &docs.shards {
        assert_eq!(shard.replicas.len(), 1);
        assert_eq!(shard.replicas[0].epoch, 4);
        assert!(!shard.replicas[0].serving);
    }
    let info = state.collection_info(docs);
    assert_eq!(info.state, api::CollectionState::Creating as i32);
    assert_eq!(
        info.shards[0].replicas[0].state,
        api::ReplicaState::Opening as i32
    );
    assert_eq!(info.shards[0].replicas[0].address, "127.0.0.1:7000");
    assert_eq!(state.routing_version, 2, "named, then created");
}

#[test]
fn a_replicated_shard_names_its_replicas_and_their_cores_in_every_assignment() {
    let mut state = cluster();
    state
        .apply(
            4,
            &Command::CreateCollection {
                request: request("one", Some(2), 1),
                owner: None,
            },
        )
        .unwrap();
    state
        .apply(
            5,
            &Command::CreateCollection {
                request: request("docs", Some(2), 2),
                owner: None,
            },
        )
        .unwrap();
    // A shard of one copy has no group.
    for a in assignments_for(&state, "w1")
        .iter()
        .chain(&assignments_for(&state, "w2"))
    {
        let spec = a.spec.as_ref().unwrap();
        if spec.name == "one" {
            assert_eq!(
                (a.replica_id, a.peers.len(), a.preferred_leader),
                (0, 0, 0),
                "{a:?}"
            );
        }
    }
    let mut ids = Vec::new();
    for shard_id in 0..2 {
        let mine = |worker: &str| {
            assignments_for(&state, worker)
                .into_iter()
                .find(|a| a.spec.as_ref().unwrap().name == "docs" && a.shard_id == shard_id)
                .unwrap()
        };
        let (w1, w2) = (mine("w1"), mine("w2"));
        assert_ne!(w1.replica_id, w2.replica_id);
        assert_eq!(w1.peers, w2.peers, "both name the same group");
        assert_eq!(
            w1.preferred_leader,
            state.collections["docs"].shards[shard_id as usize].replicas[0].replica_id,
            "the first replica placed is the one to lead"
        );
        assert_eq!(w1.preferred_leader, w2.preferred_leader);
        let mut peers: Vec<u64> = w1.peers.iter().map(|p| p.replica_id).collect();
        peers.sort_unstable();
        let mut mine_two = vec![w1.replica_id, w2.replica_id];
        mine_two.sort_unstable();
        assert_eq!(peers, mine_two);
        for peer in &w1.peers {
            let core = if peer.replica_id == w1.replica_id {
                w1.core
            } else {
                w2.core
            };
            assert_eq!(peer.address, format!("127.0.0.1:{}", 7000 + core));
        }
        ids.extend(mine_two);
    }
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), 4, "every replica has its own id");
    assert!(ids.iter().all(|&id| id != 0));
    assert_ne!(replica_id(5, 0, 0), replica_id(6, 0, 0));
    assert_ne!(replica_id(5, 1, 0), replica_id(5, 0, 1));
}

#[test]
fn a_replicated_collection_is_degraded_while_a_replica_is_down_and_still_serves() {
    let mut state = cluster();
    state
        .apply(
            4,
            &Command::CreateCollection {
                request: request("docs", Some(2), 2),
                owner: None,
            },
        )
        .unwrap();
    // One worker's replicas serve, the other's are still opening: creating.
    state
        .apply(
            5,
            &Command::ObserveWorkers {
                reports: vec![full_report(&state, "w1", 3)],
                at_ms: 30,
            },
        )
        .unwrap();
    let docs = &state.collections["docs"];
    assert!(!docs.was_ready);
    assert_eq!(
        state.collection_info(docs).state,
        api::CollectionState::Creating as i32
    );
    // Every replica serves: ready.
    let reports = vec![full_report(&state, "w1", 3), full_report(&state, "w2", 3)];
    state
        .apply(6, &Command::ObserveWorkers { reports, at_ms: 40 })
        .unwrap();
    let docs = &state.collections["docs"];
    assert!(docs.was_ready);
    assert_eq!(
        state.collection_info(docs).state,
        api::CollectionState::Ready as i32
    );
    // A worker down: fewer copies than asked for, but every shard still has one that
    // serves.
    state
        .apply(
            7,
            &Command::MarkWorkersDown {
                worker_ids: vec!["w2".into()],
                at_ms: 50,
            },
        )
        .unwrap();
    let info = state.collection_info(&state.collections["docs"]);
    assert_eq!(info.state, api::CollectionState::Degraded as i32);
    assert!(state.unavailable_shards().is_empty());
    for shard in &info.shards {
        let states: Vec<i32> = shard.replicas.iter().map(|r| r.state).collect();
        assert!(
            states.contains(&(api::ReplicaState::Active as i32)),
            "{shard:?}"
        );
        assert!(
            states.contains(&(api::ReplicaState::Unavailable as i32)),
            "{shard:?}"
        );
    }
}

#[test]
fn duplicate_and_unknown_collections_are_refused() {
    let mut state = cluster();
    let create = Command::CreateCollection {
        request: request("docs", Some(2), 1),
        owner: None,
    };
    state.apply(4, &create).unwrap();
    let before = state.clone();
    assert_eq!(
        state.apply(5, &create),
        Err(CommandError::AlreadyExists {
            name: "docs".into()
        })
    );
    assert_eq!(
        state.apply(
            6,
            &Command::DropCollection {
                name: "nope".into()
            }
        ),
        Err(CommandError::NotFound {
            name: "nope".into()
        })
    );
    assert_eq!(state, before, "refused commands change nothing");
}

#[test]
fn a_cluster_holds_at_most_the_rulebooks_number_of_collections() {
    let mut state = cluster();
    for i in 0..MAX_COLLECTIONS {
        let create = Command::CreateCollection {
            request: request(&format!("c{i}"), Some(1), 1),
            owner: None,
        };
        state.apply(4 + i as u64, &create).unwrap();
    }
    let before = state.clone();
    let one_more = Command::CreateCollection {
        request: request("one-more", Some(1), 1),
        owner: None,
    };
    assert_eq!(
        state.apply(10_000, &one_more),
        Err(CommandError::TooManyCollections {
            max: MAX_COLLECTIONS
        })
    );
    assert_eq!(state, before, "refused commands change nothing");
    state
        .apply(10_001, &Command::DropCollection { name: "c0".into() })
        .unwrap();
    state.apply(10_002, &one_more).unwrap();
}

#[test]
fn an_owner_owns_at_most_its_quota_of_collections_and_others_are_not_counted() {
    let mut state = cluster();
    let create = |name: &str, owner: &str, max_owned| Command::CreateCollection {
        request: request(name, Some(1), 1),
        owner: Some(Owner {
            name: owner.into(),
            max_owned,
        }),
    };
    state.apply(4, &create("a1", "key a", Some(2))).unwrap();
    state.apply(5, &create("b1", "key b", Some(2))).unwrap();
    state.apply(6, &create("a2", "key a", Some(2))).unwrap();
    state.apply(7, &create("open", "", None)).unwrap();
    let before = state.clone();
    assert_eq!(
        state.apply(8, &create("a3", "key a", Some(2))),
        Err(CommandError::CollectionQuota {
            owner: "key a".into(),
            max: 2
        })
    );
    assert_eq!(state, before, "refused commands change nothing");
    assert_eq!(state.collections["a1"].owner.as_deref(), Some("key a"));
    let a1 = state.collections["a1"].clone();
    assert_eq!(state.collection_info(&a1).owner, "key a");
    // Unbounded owners, and a dropped collection frees a place.
    state.apply(9, &create("b2", "key b", None)).unwrap();
    state
        .apply(10, &Command::DropCollection { name: "a1".into() })
        .unwrap();
    state.apply(11, &create("a3", "key a", Some(2))).unwrap();
}

#[test]
fn replication_above_the_live_workers_is_refused() {
    let mut state = cluster();
    assert_eq!(
        state.apply(
            4,
            &Command::CreateCollection {
                request: request("docs", Some(2), 3),
                owner: None,
            }
        ),
        Err(CommandError::Placement(PlacementError::NotEnoughWorkers {
            replication_factor: 3,
            live_workers: 2
        }))
    );
    state
        .apply(
            5,
            &Command::MarkWorkersDown {
                worker_ids: vec!["w2".into()],
                at_ms: 30,
            },
        )
        .unwrap();
    assert!(matches!(
        state.apply(
            6,
            &Command::CreateCollection {
                request: request("docs", Some(2), 2),
                owner: None,
            }
        ),
        Err(CommandError::Placement(PlacementError::NotEnoughWorkers {
            live_workers: 1,
            ..
        }))
    ));
}

#[test]
fn a_down_mark_decided_before_a_registration_leaves_the_worker_up() {
    let mut state = cluster();
    // The reconciler decided at 25 that w2 was silent; w2 registered again at 25 and
    // that registration was committed first.
    state
        .apply(
            4,
            &Command::RegisterWorker {
                registration: registration("w2", 2),
                at_ms: 25,
            },
        )
        .unwrap();
    assert_eq!(
        state.apply(
            5,
            &Command::MarkWorkersDown {
                worker_ids: vec!["w1".into(), "w2".into()],
                at_ms: 25,
            }
        ),
        Ok(Applied::WorkersMarkedDown { count: 1 })
    );
    assert_eq!(state.workers["w1"].health, Health::Down);
    assert_eq!(state.workers["w2"].health, Health::Up);
    // A later decision still applies.
    assert_eq!(
        state.apply(
            6,
            &Command::MarkWorkersDown {
                worker_ids: vec!["w2".into()],
                at_ms: 26,
            }
        ),
        Ok(Applied::WorkersMarkedDown { count: 1 })
    );
    assert_eq!(state.workers["w2"].health, Health::Down);
}

#[test]
fn reports_activate_replicas_and_make_the_collection_ready() {
    let mut state = cluster();
    state
        .apply(
            4,
            &Command::CreateCollection {
                request: request("docs", Some(2), 1),
                owner: None,
            },
        )
        .unwrap();
    let version = state.routing_version;
    let reports = vec![full_report(&state, "w1", 7), full_report(&state, "w2", 5)];
    assert!(state.report_changes_routing(&reports[0]));
    state
        .apply(5, &Command::ObserveWorkers { reports, at_ms: 40 })
        .unwrap();
    assert!(state.routing_version > version);
    let docs = &state.collections["docs"];
    assert!(docs.was_ready);
    let info = state.collection_info(docs);
    assert_eq!(info.state, api::CollectionState::Ready as i32);
    assert_eq!(info.point_count, 12);
    assert!(state.unavailable_shards().is_empty());
    // The same report again changes nothing that routing sees.
    assert!(!state.report_changes_routing(&full_report(&state, "w1", 7)));
}

#[test]
fn a_report_with_a_stale_epoch_does_not_activate() {
    let mut state = cluster();
    state
        .apply(
            4,
            &Command::CreateCollection {
                request: request("docs", Some(1), 1),
                owner: None,
            },
        )
        .unwrap();
    let owner = state.collections["docs"].shards[0].replicas[0]
        .worker_id
        .clone();
    let mut report = full_report(&state, &owner, 1);
    report.cores[0].shards[0].epoch = 3;
    state
        .apply(
            5,
            &Command::ObserveWorkers {
                reports: vec![report],
                at_ms: 0,
            },
        )
        .unwrap();
    assert!(!state.collections["docs"].shards[0].replicas[0].serving);
}

#[test]
fn a_dead_worker_makes_its_shards_unavailable_and_its_return_resumes_them() {
    let mut state = cluster();
    state
        .apply(
            4,
            &Command::CreateCollection {
                request: request("docs", Some(2), 1),
                owner: None,
            },
        )
        .unwrap();
    let reports = vec![full_report(&state, "w1", 3), full_report(&state, "w2", 3)];
    state
        .apply(5, &Command::ObserveWorkers { reports, at_ms: 0 })
        .unwrap();
    assert_eq!(
        state.apply(
            6,
            &Command::MarkWorkersDown {
                worker_ids: vec!["w2".into()],
                at_ms: 50
            }
        ),
        Ok(Applied::WorkersMarkedDown { count: 1 })
    );
    let docs = &state.collections["docs"];
    let info = state.collection_info(docs);
    assert_eq!(info.state, api::CollectionState::Degraded as i32);
    let unavailable = state.unavailable_shards();
    assert_eq!(unavailable.len(), 1);
    assert!(
        unavailable[0].reason.contains("worker down"),
        "{unavailable:?}"
    );
    // Nothing was moved or recreated: the replica stays where it was, with its epoch.
    let replica = docs
        .shards
        .iter()
        .flat_map(|s| &s.replicas)
        .find(|r| r.worker_id == "w2")
        .unwrap();
    assert_eq!(replica.epoch, 4);
    assert!(replica.served);
    // Marking it down again does nothing.
    assert_eq!(
        state.apply(
            7,
            &Command::MarkWorkersDown {
                worker_ids: vec!["w2".into()],
                at_ms: 60
            }
        ),
        Ok(Applied::WorkersMarkedDown { count: 0 })
    );
    // It comes back with its data: its heartbeat resumes it.
    let back = full_report(&state, "w2", 3);
    assert!(state.report_changes_routing(&back));
    state
        .apply(
            8,
            &Command::ObserveWorkers {
                reports: vec![back],
                at_ms: 70,
            },
        )
        .unwrap();
    assert_eq!(state.workers["w2"].health, Health::Up);
    let info = state.collection_info(&state.collections["docs"]);
    assert_eq!(info.state, api::CollectionState::Ready as i32);
}

#[test]
fn registering_again_resumes_and_keeps_the_data_flag() {
    let mut state = cluster();
    state
        .apply(
            4,
            &Command::CreateCollection {
                request: request("docs", Some(4), 1),
                owner: None,
            },
        )
        .unwrap();
    let reports = vec![full_report(&state, "w1", 3), full_report(&state, "w2", 3)];
    state
        .apply(5, &Command::ObserveWorkers { reports, at_ms: 0 })
        .unwrap();
    let mut again = registration("w1", 2);
    again.cluster_id = "c1".into();
    again.cores = vec![(0, 8000), (1, 8001)];
    assert_eq!(
        state.apply(
            6,
            &Command::RegisterWorker {
                registration: again,
                at_ms: 90
            }
        ),
        Ok(Applied::WorkerRegistered { resumed: true })
    );
    let assignments = assignments_for(&state, "w1");
    assert_eq!(assignments.len(), 2);
    assert!(assignments.iter().all(|a| a.must_exist && a.epoch == 4));
    let info = state.collection_info(&state.collections["docs"]);
    assert_eq!(info.state, api::CollectionState::Degraded as i32);
    let w1 = info
        .shards
        .iter()
        .flat_map(|s| &s.replicas)
        .find(|r| r.worker_id == "w1")
        .unwrap();
    assert_eq!(w1.state, api::ReplicaState::Opening as i32);
    assert!(w1.address.ends_with(":8000") || w1.address.ends_with(":8001"));
}

#[test]
fn registration_from_another_cluster_or_without_a_used_core_is_refused() {
    let mut state = cluster();
    let mut foreign = registration("w9", 1);
    foreign.cluster_id = "c2".into();
    assert!(matches!(
        state.apply(
            4,
            &Command::RegisterWorker {
                registration: foreign,
                at_ms: 0
            }
        ),
        Err(CommandError::ClusterMismatch { .. })
    ));
    state
        .apply(
            5,
            &Command::CreateCollection {
                request: request("docs", None, 1),
                owner: None,
            },
        )
        .unwrap();
    assert_eq!(
        state.apply(
            6,
            &Command::RegisterWorker {
                registration: registration("w1", 1),
                at_ms: 0
            }
        ),
        Err(CommandError::CoreInUse {
            worker_id: "w1".into(),
            core: 1,
            replicas: 1
        })
    );
}

#[test]
fn drop_removes_the_assignments() {
    let mut state = cluster();
    state
        .apply(
            4,
            &Command::CreateCollection {
                request: request("docs", None, 1),
                owner: None,
            },
        )
        .unwrap();
    let before = assignments_for(&state, "w1");
    assert_eq!(before.len(), 2);
    assert!(
        before.iter().all(|a| a.incarnation == 4),
        "the incarnation is the create's log index: {before:?}"
    );
    state
        .apply(
            5,
            &Command::DropCollection {
                name: "docs".into(),
            },
        )
        .unwrap();
    assert!(assignments_for(&state, "w1").is_empty());
    // A re-created collection of the same name gets new epochs and a new incarnation,
    // which tells a worker still holding the old shards to start them empty.
    state
        .apply(
            6,
            &Command::CreateCollection {
                request: request("docs", None, 1),
                owner: None,
            },
        )
        .unwrap();
    let after = assignments_for(&state, "w1");
    assert_eq!(after.len(), 2);
    assert!(after.iter().all(|a| a.epoch == 6 && a.incarnation == 6));
    // The incarnation is the collection's, not a replica's: serving keeps it.
    let reports = vec![full_report(&state, "w1", 3)];
    state
        .apply(7, &Command::ObserveWorkers { reports, at_ms: 0 })
        .unwrap();
    assert!(
        assignments_for(&state, "w1")
            .iter()
            .all(|a| a.incarnation == 6 && a.must_exist)
    );
}

#[test]
fn new_collections_avoid_loaded_cores() {
    let mut state = cluster();
    state
        .apply(
            4,
            &Command::CreateCollection {
                request: request("big", Some(1), 1),
                owner: None,
            },
        )
        .unwrap();
    let big = state.collections["big"].shards[0].replicas[0].clone();
    state
        .apply(
            5,
            &Command::CreateCollection {
                request: request("small", Some(3), 1),
                owner: None,
            },
        )
        .unwrap();
    let slots: Vec<(String, u32)> = state.collections["small"]
        .shards
        .iter()
        .map(|s| (s.replicas[0].worker_id.clone(), s.replicas[0].core))
        .collect();
    assert!(
        !slots.contains(&(big.worker_id, big.core)),
        "the loaded core was skipped: {slots:?}"
    );
}

#[test]
fn the_state_round_trips_through_json() {
    let mut state = cluster();
    state
        .apply(
            4,
            &Command::CreateCollection {
                request: request("docs", None, 2),
                owner: None,
            },
        )
        .unwrap();
    let json = serde_json::to_vec(&state).unwrap();
    let back: ControlState = serde_json::from_slice(&json).unwrap();
    assert_eq!(back, state);
}

#[test]
fn api_keys_are_stored_revoked_and_carried_in_full_routing_tables_only() {
    use vectron_auth::{Access, KeyRecord, Role, SecretHash};

    let mut state = cluster();
    let record = KeyRecord {
        id: "abcdefghijkl".into(),
        secret_sha256: SecretHash::of("s").to_hex(),
        role: Role::Scoped,
        grants: [("docs".to_owned(), Access::Read)].into(),
        description: "ci".into(),
        created_at_ms: 5,
        plan: None,
    };
    let version = state.routing_version;
    let create = Command::CreateApiKey {
        record: record.clone(),
    };
    assert_eq!(state.apply(4, &create), Ok(Applied::KeyCreated));
    assert!(state.routing_version > version, "gateways must see it");
    assert_eq!(
        state.apply(5, &create),
        Err(CommandError::KeyExists {
            id: record.id.clone()
        })
    );
    let table = state.routing_table("").unwrap();
    assert_eq!(table.api_keys.len(), 1);
    assert_eq!(
        vectron_proto::keys::key_record(&table.api_keys[0]).unwrap(),
        record
    );
    state
        .apply(
            6,
            &Command::CreateCollection {
                request: request("docs", Some(1), 1),
                owner: None,
            },
        )
        .unwrap();
    assert!(state.routing_table("docs").unwrap().api_keys.is_empty());
    let json = serde_json::to_vec(&state).unwrap();
    assert_eq!(
        serde_json::from_slice::<ControlState>(&json).unwrap(),
        state
    );

    let revoke = Command::RevokeApiKey {
        id: record.id.clone(),
    };
    assert_eq!(state.apply(7, &revoke), Ok(Applied::KeyRevoked));
    assert_eq!(
        state.apply(8, &revoke),
        Err(CommandError::NoSuchKey { id: record.id })
    );
    assert!(state.routing_table("").unwrap().api_keys.is_empty());
}

#[test]
fn plans_are_named_by_keys_only_once_made_and_deleted_only_when_unused() {
    use vectron_auth::{KeyRecord, Plan, Role, SecretHash};

    let mut state = cluster();
    let key = KeyRecord {
        id: "abcdefghijkl".into(),
        secret_sha256: SecretHash::of("s").to_hex(),
        role: Role::Read,
        grants: Default::default(),
        description: String::new(),
        created_at_ms: 5,
        plan: Some("free".into()),
    };
    let create = Command::CreateApiKey {
        record: key.clone(),
    };
    assert_eq!(
        state.apply(4, &create),
        Err(CommandError::NoSuchPlan {
            name: "free".into()
        })
    );
    let plan = Plan {
        name: "free".into(),
        requests_per_second: 10,
        burst: 20,
        max_collections: None,
        max_points: None,
    };
    let version = state.routing_version;
    assert_eq!(
        state.apply(5, &Command::SetPlan { plan: plan.clone() }),
        Ok(Applied::PlanSet)
    );
    assert!(state.routing_version > version, "gateways must see it");
    assert_eq!(state.apply(6, &create), Ok(Applied::KeyCreated));
    let table = state.routing_table("").unwrap();
    assert_eq!(
        vectron_proto::keys::plan_record(&table.plans[0]).unwrap(),
        plan
    );
    assert_eq!(
        vectron_proto::keys::key_record(&table.api_keys[0])
            .unwrap()
            .plan
            .as_deref(),
        Some("free")
    );
    let delete = Command::DeletePlan {
        name: "free".into(),
    };
    assert_eq!(
        state.apply(7, &delete),
        Err(CommandError::PlanInUse {
            name: "free".into(),
            by: "key abcdefghijkl".into()
        })
    );
    let json = serde_json::to_vec(&state).unwrap();
    assert_eq!(
        serde_json::from_slice::<ControlState>(&json).unwrap(),
        state
    );
    state
        .apply(8, &Command::RevokeApiKey { id: key.id })
        .unwrap();
    assert_eq!(state.apply(9, &delete), Ok(Applied::PlanDeleted));
    assert!(state.routing_table("").unwrap().plans.is_empty());
}

#[test]
fn users_are_stored_deleted_and_carried_in_full_routing_tables_only() {
    use vectron_auth::{Access, Role, UserRecord};

    let mut state = cluster();
    let record = UserRecord {
        name: "ann".into(),
        password_phc: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2g".into(),
        role: Role::Scoped,
        grants: [("docs".to_owned(), Access::ReadWrite)].into(),
        created_at_ms: 5,
        plan: None,
    };
    let version = state.routing_version;
    let create = Command::CreateUser {
        record: record.clone(),
    };
    assert_eq!(state.apply(4, &create), Ok(Applied::UserCreated));
    assert!(state.routing_version > version, "gateways must see it");
    assert_eq!(
        state.apply(5, &create),
        Err(CommandError::UserExists { name: "ann".into() })
    );
    let table = state.routing_table("").unwrap();
    assert_eq!(
        vectron_proto::keys::user_record(&table.users[0]).unwrap(),
        record
    );
    state
        .apply(
            6,
            &Command::CreateCollection {
                request: request("docs", Some(1), 1),
                owner: None,
            },
        )
        .unwrap();
    assert!(state.routing_table("docs").unwrap().users.is_empty());
    let json = serde_json::to_vec(&state).unwrap();
    assert_eq!(
        serde_json::from_slice::<ControlState>(&json).unwrap(),
        state
    );

    let delete = Command::DeleteUser { name: "ann".into() };
    assert_eq!(state.apply(7, &delete), Ok(Applied::UserDeleted));
    assert_eq!(
        state.apply(8, &delete),
        Err(CommandError::NoSuchUser { name: "ann".into() })
    );
    assert!(state.routing_table("").unwrap().users.is_empty());
}
