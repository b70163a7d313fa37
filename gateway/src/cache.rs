//! The search cache, the deduplication of identical searches in flight, and the write
//! generations that keep both from serving results older than a write.
//!
//! A search is keyed by its collection, the collection's write generation and the
//! request (vector, `k`, `ef`, filter, what to return). Every write through this gateway
//! bumps its collection's generation once it is answered, so a search that starts after
//! a write was acknowledged can neither hit a result cached before it nor join a search
//! that started before it. Results are kept by a moka cache (TinyLFU admission, LRU
//! eviction, a TTL that bounds how long writes through other gateways go unseen: the
//! collection's `search_cache.ttl_ms`, else the gateway's). A collection whose
//! `search_cache.enabled` is false is neither cached nor deduplicated.

use std::collections::HashMap;
use std::future::Future;
use std::hash::Hash;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use futures_util::FutureExt as _;
use futures_util::future::{BoxFuture, Shared};
use vectron_proto::core::v1::ScoredPoint;

use crate::config::CacheConfig;
use crate::error::GatewayError;

/// The answer to one search, as the gateway keeps it.
#[derive(Debug, Clone, PartialEq, Default)]
pub(crate) struct SearchOutcome {
    /// Best first.
    pub(crate) hits: Vec<ScoredPoint>,
    /// Shards that did not answer (only when partial results were allowed).
    pub(crate) missing_shards: Vec<u32>,
}

impl SearchOutcome {
    fn weight(&self) -> u32 {
        let bytes: usize = self
            .hits
            .iter()
            .map(|h| h.id.len() + h.vector.len() * 4 + h.payload_json.len() + 48)
            .sum();
        u32::try_from(bytes).unwrap_or(u32::MAX)
    }
}

/// What identifies a search.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct SearchKey {
    pub(crate) collection: Arc<str>,
    pub(crate) generation: u64,
    /// The encoded request, with every field that changes the answer.
    pub(crate) request: Arc<[u8]>,
    /// How long its answer may be served: the collection's `search_cache.ttl_ms`, else
    /// the gateway's TTL. Changed only by an update, which moves the generation too.
    pub(crate) ttl: Duration,
}

/// Each answer expires its key's TTL after it was cached.
struct KeyTtl;

impl moka::Expiry<SearchKey, Arc<SearchOutcome>> for KeyTtl {
    fn expire_after_create(
        &self,
        key: &SearchKey,
        _value: &Arc<SearchOutcome>,
        _created_at: std::time::Instant,
    ) -> Option<Duration> {
        Some(key.ttl)
    }
}

/// Per-collection write generations.
#[derive(Debug, Default)]
pub(crate) struct Generations {
    current: Mutex<HashMap<String, u64>>,
}

impl Generations {
    /// The generation of `collection` now.
    pub(crate) fn get(&self, collection: &str) -> u64 {
        self.current
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(collection)
            .copied()
            .unwrap_or(0)
    }

    /// Marks every result of `collection` computed so far as stale.
    pub(crate) fn bump(&self, collection: &str) {
        *self
            .current
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(collection.to_owned())
            .or_insert(0) += 1;
    }
}

/// Bumps a collection's generation when dropped: a write marks cached results stale
/// once it is answered, whether it succeeded, failed half-way or was abandoned by its
/// caller.
#[derive(Debug)]
pub(crate) struct WriteGuard<'a> {
    generations: &'a Generations,
    collection: &'a str,
}

impl<'a> WriteGuard<'a> {
    pub(crate) fn new(generations: &'a Generations, collection: &'a str) -> Self {
        Self {
            generations,
            collection,
        }
    }
}

impl Drop for WriteGuard<'_> {
    fn drop(&mut self) {
        self.generations.bump(self.collection);
    }
}

type Outcome = Result<Arc<SearchOutcome>, Arc<GatewayError>>;

/// Searches in flight, by key; identical searches wait for the first one.
pub(crate) struct InFlight<K> {
    running: Arc<Mutex<HashMap<K, Shared<BoxFuture<'static, Outcome>>>>>,
}

impl<K> std::fmt::Debug for InFlight<K> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InFlight").finish_non_exhaustive()
    }
}

impl<K: Hash + Eq + Clone + Send + 'static> InFlight<K> {
    pub(crate) fn new() -> Self {
        Self {
            running: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    /// Runs `work` for `key`, or waits for the run already in flight for it. The work
    /// runs as its own task, so a caller that gives up does not cancel it for the
    /// others.
    pub(crate) async fn run<F>(&self, key: K, work: F) -> Outcome
    where
        F: Future<Output = Result<SearchOutcome, GatewayError>> + Send + 'static,
    {
        let shared = {
            let mut running = self.running.lock().unwrap_or_else(PoisonError::into_inner);
            if let Some(shared) = running.get(&key) {
                shared.clone()
            } else {
                let registry = self.running.clone();
                let done_key = key.clone();
                let task = tokio::spawn(async move {
                    let outcome = work.await.map(Arc::new).map_err(Arc::new);
                    registry
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .remove(&done_key);
                    outcome
                });
                let shared = async move {
                    task.await.unwrap_or_else(|e| {
                        Err(Arc::new(GatewayError::Internal(format!(
                            "a search task failed: {e}"
                        ))))
                    })
                }
                .boxed()
                .shared();
                running.insert(key, shared.clone());
                shared
            }
        };
        shared.await
    }

    /// Searches in flight now.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.running
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }
}

/// The cache and the deduplication, each switched by the configuration.
#[derive(Debug)]
pub(crate) struct SearchCache {
    cache: Option<moka::sync::Cache<SearchKey, Arc<SearchOutcome>>>,
    in_flight: Option<InFlight<SearchKey>>,
}

impl SearchCache {
    pub(crate) fn new(config: &CacheConfig) -> Self {
        let cache = (config.enabled && !config.ttl.is_zero() && config.max_bytes > 0).then(|| {
            moka::sync::Cache::builder()
                .max_capacity(config.max_bytes)
                .weigher(|key: &SearchKey, value: &Arc<SearchOutcome>| {
                    let key_bytes = u32::try_from(key.request.len()).unwrap_or(u32::MAX);
                    value.weight().saturating_add(key_bytes)
                })
                .expire_after(KeyTtl)
                .build()
        });
        Self {
            cache,
            in_flight: config.dedup.then(InFlight::new),
        }
    }

    /// The answer for `key`: cached, joined, or computed by `work` (and then cached when
    /// it is complete).
    pub(crate) async fn get_or_run<F>(&self, key: SearchKey, work: F) -> Outcome
    where
        F: Future<Output = Result<SearchOutcome, GatewayError>> + Send + 'static,
    {
        if let Some(hit) = self.cached(&key) {
            return Ok(hit);
        }
        let outcome = match &self.in_flight {
            Some(in_flight) => in_flight.run(key.clone(), work).await,
            None => work.await.map(Arc::new).map_err(Arc::new),
        };
        if let Ok(found) = &outcome {
            self.keep(key, found);
        }
        outcome
    }

    /// The cached answer for `key`.
    pub(crate) fn cached(&self, key: &SearchKey) -> Option<Arc<SearchOutcome>> {
        self.cache.as_ref().and_then(|c| c.get(key))
    }

    /// Caches `found` as the answer for `key` when it is complete (no shard missing).
    pub(crate) fn keep(&self, key: SearchKey, found: &Arc<SearchOutcome>) {
        if let Some(cache) = &self.cache
            && found.missing_shards.is_empty()
        {
            cache.insert(key, Arc::clone(found));
        }
    }

    /// Entries held (after pending maintenance).
    #[cfg(test)]
    pub(crate) fn entries(&self) -> u64 {
        self.cache.as_ref().map_or(0, |c| {
            c.run_pending_tasks();
            c.entry_count()
        })
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use super::*;

    fn key(collection: &str, generation: u64, request: &[u8]) -> SearchKey {
        SearchKey {
            collection: collection.into(),
            generation,
            request: request.into(),
            ttl: CacheConfig::default().ttl,
        }
    }

    fn outcome(id: &str) -> SearchOutcome {
        SearchOutcome {
            hits: vec![ScoredPoint {
                id: id.into(),
                score: 1.0,
                vector: Vec::new(),
                payload_json: Vec::new(),
                payload_bytes: 0,
            }],
            missing_shards: Vec::new(),
        }
    }

    fn counting(
        runs: &Arc<AtomicUsize>,
        id: &'static str,
    ) -> impl Future<Output = Result<SearchOutcome, GatewayError>> + Send + 'static {
        let runs = runs.clone();
        async move {
            runs.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(30)).await;
            Ok(outcome(id))
        }
    }

    #[tokio::test]
    async fn a_cached_answer_is_served_until_the_generation_moves() {
        let cache = SearchCache::new(&CacheConfig::default());
        let runs = Arc::new(AtomicUsize::new(0));
        let first = cache
            .get_or_run(key("c", 0, b"q"), counting(&runs, "a"))
            .await
            .unwrap();
        let again = cache
            .get_or_run(key("c", 0, b"q"), counting(&runs, "b"))
            .await
            .unwrap();
        assert_eq!(runs.load(Ordering::SeqCst), 1);
        assert_eq!(again.hits[0].id, first.hits[0].id);
        // Another request, or the same after a write, runs again.
        cache
            .get_or_run(key("c", 0, b"other"), counting(&runs, "c"))
            .await
            .unwrap();
        let after_write = cache
            .get_or_run(key("c", 1, b"q"), counting(&runs, "d"))
            .await
            .unwrap();
        assert_eq!(after_write.hits[0].id, "d");
        assert_eq!(runs.load(Ordering::SeqCst), 3);
        assert_eq!(cache.entries(), 3);
    }

    #[tokio::test]
    async fn each_answer_is_served_for_its_collections_ttl() {
        let cache = SearchCache::new(&CacheConfig::default());
        let runs = Arc::new(AtomicUsize::new(0));
        let short = SearchKey {
            ttl: Duration::from_millis(50),
            ..key("brief", 0, b"q")
        };
        let long = key("lasting", 0, b"q");
        for k in [&short, &long] {
            cache
                .get_or_run(k.clone(), counting(&runs, "a"))
                .await
                .unwrap();
        }
        tokio::time::sleep(Duration::from_millis(120)).await;
        for k in [&short, &long] {
            cache
                .get_or_run(k.clone(), counting(&runs, "b"))
                .await
                .unwrap();
        }
        // The short-lived answer was computed again; the other was served.
        assert_eq!(runs.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn identical_searches_in_flight_run_once_even_without_a_cache() {
        let config = CacheConfig {
            enabled: false,
            ..CacheConfig::default()
        };
        let cache = Arc::new(SearchCache::new(&config));
        let runs = Arc::new(AtomicUsize::new(0));
        let calls: Vec<_> = (0..8)
            .map(|_| {
                let (cache, runs) = (cache.clone(), runs.clone());
                tokio::spawn(async move {
                    cache
                        .get_or_run(key("c", 0, b"q"), counting(&runs, "a"))
                        .await
                })
            })
            .collect();
        for call in calls {
            assert_eq!(call.await.unwrap().unwrap().hits[0].id, "a");
        }
        assert_eq!(runs.load(Ordering::SeqCst), 1);
        assert_eq!(cache.in_flight.as_ref().unwrap().len(), 0);
        // Nothing is cached: the next call runs again.
        cache
            .get_or_run(key("c", 0, b"q"), counting(&runs, "a"))
            .await
            .unwrap();
        assert_eq!(runs.load(Ordering::SeqCst), 2);
        assert_eq!(cache.entries(), 0);
    }

    #[tokio::test]
    async fn without_dedup_or_cache_every_search_runs() {
        let config = CacheConfig {
            enabled: false,
            dedup: false,
            ..CacheConfig::default()
        };
        let cache = SearchCache::new(&config);
        let runs = Arc::new(AtomicUsize::new(0));
        let (a, b) = tokio::join!(
            cache.get_or_run(key("c", 0, b"q"), counting(&runs, "a")),
            cache.get_or_run(key("c", 0, b"q"), counting(&runs, "a")),
        );
        a.unwrap();
        b.unwrap();
        assert_eq!(runs.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn partial_answers_and_failures_are_not_cached() {
        let cache = SearchCache::new(&CacheConfig::default());
        let partial = SearchOutcome {
            missing_shards: vec![1],
            ..outcome("a")
        };
        cache
            .get_or_run(key("c", 0, b"p"), async move { Ok(partial) })
            .await
            .unwrap();
        let failed = cache
            .get_or_run(key("c", 0, b"f"), async {
                Err(GatewayError::RerankUnavailable)
            })
            .await;
        assert!(failed.is_err());
        assert_eq!(cache.entries(), 0);
    }

    #[tokio::test]
    async fn a_caller_that_gives_up_does_not_cancel_the_search_for_others() {
        let cache = Arc::new(SearchCache::new(&CacheConfig {
            enabled: false,
            ..CacheConfig::default()
        }));
        let runs = Arc::new(AtomicUsize::new(0));
        let impatient = tokio::time::timeout(
            Duration::from_millis(1),
            cache.get_or_run(key("c", 0, b"q"), counting(&runs, "a")),
        );
        let patient = cache.get_or_run(key("c", 0, b"q"), counting(&runs, "b"));
        let (gave_up, waited) = tokio::join!(impatient, patient);
        assert!(gave_up.is_err());
        assert_eq!(waited.unwrap().hits[0].id, "a");
        assert_eq!(runs.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn generations_move_when_a_write_is_answered() {
        let generations = Generations::default();
        assert_eq!(generations.get("c"), 0);
        {
            let _write = WriteGuard::new(&generations, "c");
            assert_eq!(generations.get("c"), 0);
        }
        assert_eq!(generations.get("c"), 1);
        assert_eq!(generations.get("other"), 0);
    }
}
