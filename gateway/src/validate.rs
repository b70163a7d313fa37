//! The rules requests are checked against at the door, before anything reaches a core,
//! so an error names the point's position in the caller's request and no shard sees
//! half of a bad batch.

use std::collections::HashSet;

use vectron_proto::core::v1::Point;
use vectron_proto::v1::{CollectionSpec, Metric};

use crate::config::Limits;
use crate::error::GatewayError;

/// Checks one upsert request (or stream message) against the collection.
pub(crate) fn check_points(
    spec: &CollectionSpec,
    points: &[Point],
    limits: &Limits,
) -> Result<(), GatewayError> {
    if points.is_empty() {
        return Err(GatewayError::EmptyBatch);
    }
    if points.len() > limits.max_points {
        return Err(GatewayError::TooMany {
            what: "points",
            got: points.len(),
            max: limits.max_points,
        });
    }
    let dim = spec.dimension as usize;
    let cosine = spec.metric() == Metric::Cosine;
    let mut seen = HashSet::with_capacity(points.len());
    for (i, p) in points.iter().enumerate() {
        check_id(i, &p.id, limits)?;
        vectron_proto::validate::check_vector(i, &p.id, &p.vector, dim, cosine)?;
        if p.payload_json.len() > limits.max_payload_bytes {
            return Err(GatewayError::PayloadTooLarge {
                point: i,
                id: p.id.clone(),
                got: p.payload_json.len(),
                max: limits.max_payload_bytes,
            });
        }
        if !seen.insert(p.id.as_str()) {
            return Err(GatewayError::DuplicateId { id: p.id.clone() });
        }
    }
    Ok(())
}

fn check_id(i: usize, id: &str, limits: &Limits) -> Result<(), GatewayError> {
    if id.is_empty() || id.len() > limits.max_id_bytes {
        return Err(GatewayError::BadId {
            point: i,
            len: id.len(),
            max: limits.max_id_bytes,
        });
    }
    Ok(())
}

/// Checks the ids of a get or a delete.
pub(crate) fn check_ids(ids: &[String], limits: &Limits) -> Result<(), GatewayError> {
    if ids.is_empty() {
        return Err(GatewayError::EmptyBatch);
    }
    if ids.len() > limits.max_ids {
        return Err(GatewayError::TooMany {
            what: "ids",
            got: ids.len(),
            max: limits.max_ids,
        });
    }
    ids.iter()
        .enumerate()
        .try_for_each(|(i, id)| check_id(i, id, limits))
}

/// Checks a query: its vector against the collection, `k` and `ef` against the limits.
pub(crate) fn check_query(
    spec: &CollectionSpec,
    vector: &[f32],
    k: u32,
    ef: Option<u32>,
    limits: &Limits,
) -> Result<(), GatewayError> {
    let dim = spec.dimension as usize;
    if vector.len() != dim {
        return Err(GatewayError::QueryDimension {
            expected: dim,
            got: vector.len(),
        });
    }
    if let Some(at) = vector.iter().position(|x| !x.is_finite()) {
        return Err(GatewayError::QueryNonFinite { at });
    }
    let cosine = spec.metric() == Metric::Cosine;
    vectron_proto::validate::check_length(vector, cosine).map_err(GatewayError::QueryLength)?;
    check_range("k", u64::from(k), 1, u64::from(limits.max_k))?;
    if let Some(ef) = ef {
        check_range("ef", u64::from(ef), 1, u64::from(limits.max_ef))?;
    }
    Ok(())
}

/// Checks that `got` is within `min..=max`.
pub(crate) fn check_range(
    what: &'static str,
    got: u64,
    min: u64,
    max: u64,
) -> Result<(), GatewayError> {
    if (min..=max).contains(&got) {
        Ok(())
    } else {
        Err(GatewayError::OutOfRange {
            what,
            got,
            min,
            max,
        })
    }
}

#[cfg(test)]
mod tests {
    use tonic::Code;

    use super::*;

    fn spec(metric: Metric) -> CollectionSpec {
        CollectionSpec::new("c", 3, metric)
    }

    fn point(id: &str, vector: Vec<f32>) -> Point {
        Point {
            id: id.into(),
            vector,
            payload_json: Vec::new(),
        }
    }

    fn check(points: &[Point]) -> Result<(), GatewayError> {
        check_points(&spec(Metric::Cosine), points, &Limits::default())
    }

    #[test]
    fn good_points_pass() {
        check(&[
            point("a", vec![1.0, 0.0, 0.0]),
            point("b", vec![0.0, 1.0, 0.0]),
        ])
        .unwrap();
    }

    #[test]
    fn each_broken_rule_names_the_point() {
        let ok = || point("a", vec![1.0, 2.0, 3.0]);
        let cases: Vec<(Vec<Point>, &str)> = vec![
            (vec![], "no points"),
            (
                vec![ok(), point("b", vec![1.0; 4])],
                "point 1 (id \"b\"): vector has 4 values",
            ),
            (
                vec![point("n", vec![1.0, f32::NAN, 0.0])],
                "vector value 1 is not a finite",
            ),
            (vec![point("z", vec![0.0; 3])], "all-zero vector"),
            (
                vec![point("", vec![1.0; 3])],
                "point 0: id must be 1 to 128 bytes",
            ),
            (
                vec![point(&"x".repeat(1024), vec![1.0; 3])],
                "got 1024 bytes",
            ),
            (vec![ok(), ok()], "appears more than once"),
        ];
        for (points, expected) in cases {
            let err = check(&points).unwrap_err();
            assert_eq!(err.code(), Code::InvalidArgument);
            assert!(err.to_string().contains(expected), "{err} ∌ {expected}");
        }
        let mut big = point("p", vec![1.0; 3]);
        big.payload_json = vec![b' '; 64 * 1024 + 1];
        assert!(matches!(
            check(&[big]),
            Err(GatewayError::PayloadTooLarge { got: 65537, .. })
        ));
    }

    #[test]
    fn zero_vectors_are_fine_outside_cosine() {
        check_points(
            &spec(Metric::L2),
            &[point("z", vec![0.0; 3])],
            &Limits::default(),
        )
        .unwrap();
    }

    #[test]
    fn batches_and_id_lists_have_limits() {
        let limits = Limits {
            max_points: 2,
            max_ids: 2,
            ..Limits::default()
        };
        let points: Vec<Point> = (0..3)
            .map(|i| point(&i.to_string(), vec![1.0; 3]))
            .collect();
        assert!(matches!(
            check_points(&spec(Metric::Dot), &points, &limits),
            Err(GatewayError::TooMany { got: 3, max: 2, .. })
        ));
        let ids: Vec<String> = vec!["a".into(), "b".into(), "c".into()];
        assert!(matches!(
            check_ids(&ids, &limits),
            Err(GatewayError::TooMany { what: "ids", .. })
        ));
        assert!(matches!(
            check_ids(&[], &limits),
            Err(GatewayError::EmptyBatch)
        ));
        assert!(matches!(
            check_ids(&["a".into(), String::new()], &limits),
            Err(GatewayError::BadId { point: 1, .. })
        ));
    }

    #[test]
    fn queries_are_checked_against_the_collection_and_limits() {
        let s = spec(Metric::Cosine);
        let l = Limits::default();
        check_query(&s, &[1.0, 0.0, 0.0], 10, Some(64), &l).unwrap();
        let q10k = vec![0.5; 10_000];
        assert!(matches!(
            check_query(&s, &q10k, 10, None, &l),
            Err(GatewayError::QueryDimension {
                expected: 3,
                got: 10_000
            })
        ));
        assert!(matches!(
            check_query(&s, &[1.0, f32::INFINITY, 0.0], 10, None, &l),
            Err(GatewayError::QueryNonFinite { at: 1 })
        ));
        for (k, ef) in [(0, None), (10_001, None), (10, Some(0)), (10, Some(40_000))] {
            let err = check_query(&s, &[1.0; 3], k, ef, &l).unwrap_err();
            assert_eq!(err.code(), Code::InvalidArgument, "k={k} ef={ef:?}");
        }
    }
}
