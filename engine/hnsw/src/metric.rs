//! Metrics: how vectors are compared, normalised and scored.

use crate::distance::reference;

/// How two vectors are compared. Every metric scores as a similarity: higher is better.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Metric {
    /// Cosine similarity. Vectors (and queries) are normalised to unit length when they
    /// enter the index, and compared by inner product. Score in `[-1, 1]`.
    Cosine,
    /// Euclidean distance. Score = `-(squared distance)`, so the nearest point scores
    /// highest (a score of 0 is an exact match).
    L2,
    /// Inner product, on vectors as given. Score = the dot product.
    Dot,
}

impl Metric {
    /// Byte used for this metric in the file format.
    pub(crate) fn to_byte(self) -> u8 {
        match self {
            Self::Cosine => 0,
            Self::L2 => 1,
            Self::Dot => 2,
        }
    }

    pub(crate) fn from_byte(b: u8) -> Option<Self> {
        match b {
            0 => Some(Self::Cosine),
            1 => Some(Self::L2),
            2 => Some(Self::Dot),
            _ => None,
        }
    }

    /// True when the index uses squared Euclidean distance internally.
    pub(crate) fn is_l2(self) -> bool {
        self == Self::L2
    }

    /// Normalises `v` in place when the metric is cosine (a no-op otherwise). Returns
    /// false when a cosine vector has zero length and cannot be normalised.
    pub fn normalize(self, v: &mut [f32]) -> bool {
        if self != Self::Cosine {
            return true;
        }
        let norm = reference::dot_f32(v, v).sqrt();
        if norm.is_nan() || norm <= 0.0 || norm.is_infinite() {
            return false;
        }
        let inv = 1.0 / norm;
        v.iter_mut().for_each(|x| *x *= inv);
        true
    }

    /// The similarity the index reports between `a` and `b` (equal lengths), computed
    /// exactly. For cosine, `a` and `b` need not be normalised.
    pub fn similarity(self, a: &[f32], b: &[f32]) -> f32 {
        match self {
            Self::Cosine => {
                let na = reference::dot_f32(a, a).sqrt();
                let nb = reference::dot_f32(b, b).sqrt();
                if na == 0.0 || nb == 0.0 {
                    0.0
                } else {
                    reference::dot_f32(a, b) / (na * nb)
                }
            }
            Self::L2 => -reference::l2_f32(a, b),
            Self::Dot => reference::dot_f32(a, b),
        }
    }
}

impl std::fmt::Display for Metric {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Cosine => "cosine",
            Self::L2 => "l2",
            Self::Dot => "dot",
        })
    }
}

impl std::str::FromStr for Metric {
    type Err = UnknownMetric;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "cosine" => Ok(Self::Cosine),
            "l2" => Ok(Self::L2),
            "dot" => Ok(Self::Dot),
            _ => Err(UnknownMetric(s.to_owned())),
        }
    }
}

/// A metric name that is not `cosine`, `l2` or `dot`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown metric {0:?} (expected cosine, l2 or dot)")]
pub struct UnknownMetric(pub String);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cosine_normalises_and_scores() {
        let mut v = vec![3.0, 4.0];
        assert!(Metric::Cosine.normalize(&mut v));
        assert!((v[0] - 0.6).abs() < 1e-6 && (v[1] - 0.8).abs() < 1e-6);
        assert!(!Metric::Cosine.normalize(&mut [0.0, 0.0]));
        assert!((Metric::Cosine.similarity(&[1.0, 0.0], &[2.0, 0.0]) - 1.0).abs() < 1e-6);
        assert_eq!(Metric::L2.similarity(&[1.0, 1.0], &[2.0, 3.0]), -5.0);
        assert_eq!(Metric::Dot.similarity(&[1.0, 2.0], &[3.0, 4.0]), 11.0);
        assert_eq!("l2".parse::<Metric>().unwrap(), Metric::L2);
        assert!("hamming".parse::<Metric>().is_err());
    }
}
