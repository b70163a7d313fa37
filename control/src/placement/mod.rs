//! Placement: where the replicas of a new collection's shards go. A pure function from
//! the load of the cluster to a decision; the replicated state machine calls it while
//! applying a create, so every control node reaches the same placement.
//!
//! ```text
//!   ClusterLoad ──► place(shards, replication) ──► [shard] → [(worker, core)]
//!   (live workers, cores,                              or PlacementError
//!    replicas, points, memory)
//! ```
//!
//! Rules:
//! - only live workers receive replicas;
//! - the replicas of one shard sit on distinct workers, so a replication factor above the
//!   number of live workers is refused;
//! - they spread over zones first: a replica goes to a worker of a zone the shard has no
//!   replica in yet while there is one (workers without a zone label form one zone, the
//!   empty one), so a shard of three replicas over three zones survives losing a zone;
//! - each replica goes to the least loaded eligible core, comparing in order: replicas on
//!   the core, then points, then memory, then the worker's replicas per core (so equal
//!   cores of different workers fill evenly), then worker id and core index (so the
//!   decision is deterministic). Replica count leads because the shards of a collection
//!   grow alike (ids hash evenly), so it predicts the load a new shard will bring; points
//!   and memory separate cores that hold the same number of replicas of unequal size;
//! - a shard's preferred leader (its first slot) is, of its slots, the core that leads
//!   the fewest shards so far, every collection's counted: leaders take the writes and
//!   serve linearizable reads, so they spread over the cores of the cluster.
//!
//! The cases under `testdata/` pin the behaviour: each is a cluster, a request, and the
//! expected placement.

use std::cmp::Ordering;

/// The load of one worker core.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CoreLoad {
    /// Index of the core on its worker.
    pub core: u32,
    /// Replicas placed on the core.
    pub replicas: u32,
    /// Points in those replicas, as last reported.
    pub points: u64,
    /// Memory the core holds, as last reported.
    pub memory_bytes: u64,
    /// Shards whose preferred leader (first replica) is on the core; a shard of one
    /// copy counts, as its only replica takes its writes.
    pub leaders: u32,
}

/// The load of one worker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkerLoad {
    /// Worker id.
    pub worker_id: String,
    /// Whether the worker is up; down workers receive nothing.
    pub live: bool,
    /// Its zone label (rack, availability zone); empty when it has none.
    pub zone: String,
    /// Its cores.
    pub cores: Vec<CoreLoad>,
}

/// Where one replica goes.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Slot {
    /// Worker id.
    pub worker_id: String,
    /// Core index on that worker.
    pub core: u32,
}

/// Why a collection cannot be placed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, serde::Serialize, serde::Deserialize)]
pub enum PlacementError {
    /// No worker is live, so there is nowhere to put a shard.
    #[error("no live worker: start a worker (vectron worker --control …) and retry")]
    NoLiveWorkers,
    /// The replicas of a shard need distinct workers and there are too few.
    #[error(
        "replication factor {replication_factor} needs at least {replication_factor} live workers; live workers now: {live_workers}"
    )]
    NotEnoughWorkers {
        /// Replication factor asked for.
        replication_factor: u32,
        /// Live workers now.
        live_workers: u32,
    },
    /// A shard count or replication factor of zero.
    #[error("a collection needs at least one shard and one replica")]
    Empty,
}

/// Total cores of the live workers: the default shard count of a new collection.
#[must_use]
pub fn live_cores(workers: &[WorkerLoad]) -> u32 {
    let cores: usize = workers
        .iter()
        .filter(|w| w.live)
        .map(|w| w.cores.len())
        .sum();
    u32::try_from(cores).unwrap_or(u32::MAX)
}

/// Places `shard_count` shards of `replication_factor` replicas each.
///
/// Returns, for every shard in order, its replicas' slots on distinct workers, spread
/// over zones first; the first slot of each is its preferred leader, on the core that
/// leads the fewest shards so far (every collection's).
///
/// # Errors
/// [`PlacementError::NoLiveWorkers`] when no worker with a core is live (checked first),
/// [`PlacementError::Empty`] for zero shards or zero replicas,
/// [`PlacementError::NotEnoughWorkers`] when fewer live workers than replicas.
pub fn place(
    workers: &[WorkerLoad],
    shard_count: u32,
    replication_factor: u32,
) -> Result<Vec<Vec<Slot>>, PlacementError> {
    let mut live: Vec<Candidate> = workers
        .iter()
        .filter(|w| w.live && !w.cores.is_empty())
        .map(|w| Candidate {
            worker_id: w.worker_id.clone(),
            zone: w.zone.clone(),
            replicas: w.cores.iter().map(|c| u64::from(c.replicas)).sum(),
            cores: w.cores.clone(),
        })
        .collect();
    if live.is_empty() {
        return Err(PlacementError::NoLiveWorkers);
    }
    if shard_count == 0 || replication_factor == 0 {
        return Err(PlacementError::Empty);
    }
    let live_workers = u32::try_from(live.len()).unwrap_or(u32::MAX);
    if replication_factor > live_workers {
        return Err(PlacementError::NotEnoughWorkers {
            replication_factor,
            live_workers,
        });
    }
    live.sort_by(|a, b| a.worker_id.cmp(&b.worker_id));

    let mut placement = Vec::with_capacity(shard_count as usize);
    // How many shards each core is the first replica of, those placed before included:
    // the first replica is the shard's preferred leader, so leaders spread over the cores.
    let mut firsts: std::collections::HashMap<(String, u32), u32> = live
        .iter()
        .flat_map(|w| {
            w.cores
                .iter()
                .map(|c| ((w.worker_id.clone(), c.core), c.leaders))
        })
        .collect();
    for _ in 0..shard_count {
        let mut slots: Vec<Slot> = Vec::with_capacity(replication_factor as usize);
        for _ in 0..replication_factor {
            let best = best_core(&live, &slots).ok_or(PlacementError::NotEnoughWorkers {
                replication_factor,
                live_workers,
            })?;
            let worker = &mut live[best.0];
            let core = &mut worker.cores[best.1];
            core.replicas += 1;
            worker.replicas += 1;
            slots.push(Slot {
                worker_id: worker.worker_id.clone(),
                core: core.core,
            });
        }
        let first = (0..slots.len())
            .min_by_key(|&i| {
                let slot = &slots[i];
                firsts
                    .get(&(slot.worker_id.clone(), slot.core))
                    .copied()
                    .unwrap_or(0)
            })
            .expect("a shard has a replica");
        slots.swap(0, first);
        *firsts
            .entry((slots[0].worker_id.clone(), slots[0].core))
            .or_default() += 1;
        placement.push(slots);
    }
    Ok(placement)
}

struct Candidate {
    worker_id: String,
    zone: String,
    replicas: u64,
    cores: Vec<CoreLoad>,
}

/// The least loaded core (worker index, core index) on a worker not yet in `taken`, of
/// a zone not yet in `taken` where there is one.
fn best_core(live: &[Candidate], taken: &[Slot]) -> Option<(usize, usize)> {
    let taken_zones: Vec<&str> = taken
        .iter()
        .filter_map(|slot| live.iter().find(|w| w.worker_id == slot.worker_id))
        .map(|w| w.zone.as_str())
        .collect();
    let zone_taken = |w: usize| taken_zones.contains(&live[w].zone.as_str());
    let mut best: Option<(usize, usize)> = None;
    for (w, worker) in live.iter().enumerate() {
        if taken.iter().any(|slot| slot.worker_id == worker.worker_id) {
            continue;
        }
        for (c, _) in worker.cores.iter().enumerate() {
            let better = match best {
                None => true,
                Some((bw, bc)) => zone_taken(w)
                    .cmp(&zone_taken(bw))
                    .then_with(|| compare(live, (w, c), (bw, bc)))
                    .is_lt(),
            };
            if better {
                best = Some((w, c));
            }
        }
    }
    best
}

fn compare(live: &[Candidate], a: (usize, usize), b: (usize, usize)) -> Ordering {
    let (wa, wb) = (&live[a.0], &live[b.0]);
    let (ca, cb) = (&wa.cores[a.1], &wb.cores[b.1]);
    // Replicas per core of the two workers, compared without division.
    let per_core_a = u128::from(wa.replicas) * wb.cores.len() as u128;
    let per_core_b = u128::from(wb.replicas) * wa.cores.len() as u128;
    ca.replicas
        .cmp(&cb.replicas)
        .then(ca.points.cmp(&cb.points))
        .then(ca.memory_bytes.cmp(&cb.memory_bytes))
        .then(per_core_a.cmp(&per_core_b))
        .then(wa.worker_id.cmp(&wb.worker_id))
        .then(ca.core.cmp(&cb.core))
}

#[cfg(test)]
mod cases;
