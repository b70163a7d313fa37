//! Recall against brute force: a floor on real and random data, for every metric and
//! both traversal modes.

use proptest::prelude::*;
use vectron_hnsw::{Metric, Quantization, SearchScratch};

use crate::{build, fixture, random_vectors, self_recall};

#[test]
fn real_data_recall_against_the_fixture_ground_truth() {
    let f = fixture();
    for (quantization, floor) in [(Quantization::None, 0.97), (Quantization::Int8, 0.95)] {
        let index = build(&f.base, Metric::Cosine, quantization, 16);
        let mut s = SearchScratch::new();
        let mut hits = 0;
        for (q, t) in f.queries.iter().zip(&f.truth) {
            let got = index.search(q, 10, 64, None, &mut s).unwrap();
            assert!(
                got.windows(2).all(|w| w[0].score >= w[1].score),
                "best first"
            );
            hits += got.iter().filter(|h| t[..10].contains(&h.id.0)).count();
        }
        let recall = hits as f64 / (f.queries.len() * 10) as f64;
        assert!(
            recall >= floor,
            "{quantization:?}: recall@10 {recall} < {floor}"
        );
    }
}

/// Points of a few tight clusters far apart: within a cluster, neighbours differ by less
/// than an int8 code's step, so int8 distances barely rank them and the f32 rescoring
/// must reach deep into the candidate list to find the true nearest.
fn tight_clusters(n: usize, dim: usize, clusters: usize) -> Vec<Vec<f32>> {
    let centres = random_vectors(clusters, dim, 17);
    random_vectors(n, dim, 18)
        .into_iter()
        .enumerate()
        .map(|(i, noise)| {
            centres[i % clusters]
                .iter()
                .zip(noise)
                .map(|(c, e)| c + 0.02 * e)
                .collect()
        })
        .collect()
}

#[test]
fn int8_with_a_candidate_list_as_large_as_the_index_answers_exactly() {
    let (n, k) = (1500, 10);
    let data = tight_clusters(n, 48, 3);
    for metric in [Metric::Cosine, Metric::L2] {
        let index = build(&data, metric, Quantization::Int8, 16);
        let mut s = SearchScratch::new();
        let mut missed = 0;
        for q in data.iter().step_by(50) {
            let want: Vec<u32> = index
                .exact_search(q, k, None, &mut s)
                .unwrap()
                .iter()
                .map(|h| h.id.0)
                .collect();
            let got = index.search(q, k, n, None, &mut s).unwrap();
            missed += got.iter().filter(|h| !want.contains(&h.id.0)).count();
        }
        // Every candidate that could belong to the top k is rescored, so a search that
        // sees the whole graph finds the exact answer.
        assert_eq!(
            missed, 0,
            "{metric}: {missed} hits not in the exact top {k}"
        );
    }
}

#[test]
fn exact_search_among_ids_equals_exact_search_over_them() {
    let data = random_vectors(600, 16, 9);
    let mut index = build(&data, Metric::L2, Quantization::None, 8);
    index.delete(vectron_hnsw::NodeId(3)).unwrap();
    let mut s = SearchScratch::new();
    let all: Vec<vectron_hnsw::NodeId> = (0..700).map(vectron_hnsw::NodeId).collect();
    let whole = index
        .exact_search(&data[3], 10, None, &mut s)
        .unwrap()
        .to_vec();
    let among = index
        .exact_search_among(&data[3], 10, &all, &mut s)
        .unwrap()
        .to_vec();
    assert_eq!(among, whole, "every id, deleted and past the end skipped");
    let odd: Vec<vectron_hnsw::NodeId> = (0..600)
        .filter(|i| i % 2 == 1)
        .map(vectron_hnsw::NodeId)
        .collect();
    let among = index
        .exact_search_among(&data[3], 5, &odd, &mut s)
        .unwrap()
        .to_vec();
    let filter = vectron_hnsw::IdFilter::new(odd.clone());
    let filtered = index
        .exact_search(&data[3], 5, Some(&filter), &mut s)
        .unwrap()
        .to_vec();
    assert_eq!(among, filtered);
    assert!(among.iter().all(|h| h.id.0 % 2 == 1));
}

#[test]
fn exact_search_reproduces_the_fixture_ground_truth() {
    let f = fixture();
    let index = build(&f.base[..], Metric::Cosine, Quantization::None, 8);
    let mut s = SearchScratch::new();
    let mut hits = 0;
    for (q, t) in f.queries.iter().zip(&f.truth) {
        let got = index.exact_search(q, 10, None, &mut s).unwrap();
        hits += got.iter().filter(|h| t[..10].contains(&h.id.0)).count();
        let want = Metric::Cosine.similarity(q, &f.base[got[0].id.0 as usize]);
        assert!((got[0].score - want).abs() < 1e-4);
    }
    // Ties at the 10th place may resolve either way.
    assert!(hits >= f.queries.len() * 10 - 2, "{hits}");
}

#[test]
fn scores_are_similarities_for_every_metric() {
    let data = random_vectors(300, 24, 5);
    for metric in [Metric::Cosine, Metric::L2, Metric::Dot] {
        let index = build(&data, metric, Quantization::None, 8);
        let mut s = SearchScratch::new();
        let got = index.search(&data[7], 3, 50, None, &mut s).unwrap();
        let stored = index.vector(got[0].id).unwrap();
        let want = match metric {
            Metric::Cosine => Metric::Cosine.similarity(&data[7], stored),
            _ => metric.similarity(&data[7], stored),
        };
        assert!(
            (got[0].score - want).abs() < 1e-3,
            "{metric}: {} vs {want}",
            got[0].score
        );
        if metric != Metric::Dot {
            assert_eq!(
                got[0].id.0, 7,
                "{metric}: a stored vector is its own nearest neighbour"
            );
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 6, ..ProptestConfig::default() })]

    #[test]
    fn random_data_recall_floor(seed in 0u64..1_000, dim in 3usize..40, l2 in any::<bool>(), int8 in any::<bool>()) {
        let data = random_vectors(1_200, dim, seed);
        let queries = random_vectors(30, dim, seed + 1);
        let metric = if l2 { Metric::L2 } else { Metric::Cosine };
        let quantization = if int8 { Quantization::Int8 } else { Quantization::None };
        let index = build(&data, metric, quantization, 12);
        let recall = self_recall(&index, &queries, 10, 100);
        prop_assert!(recall >= 0.9, "recall {} (dim {}, {}, {:?})", recall, dim, metric, quantization);
    }
}
