//! int8 scalar quantization for graph traversal.
//!
//! - cosine and dot: symmetric codes, `code = round(x / alpha)` clamped to `[-127, 127]`
//!   (stored as `i8`); no per-vector correction is needed because the offset is zero.
//! - l2: per-dimension offset, one global step, `code = round((x - lo[j]) / alpha)`
//!   clamped to `[0, 255]` (stored as `u8`); the offsets cancel in differences, so
//!   `|x - y|² ≈ alpha² · Σ (cx - cy)²`.
//!
//! Queries are not clamped to codes: they become `i16` with a finer step, so only the
//! stored side carries quantization error. Traversal ranks by these approximate
//! distances; the best candidates are then rescored with the f32 vectors.

/// Quantile of `|x|` that sets the symmetric range (outliers beyond it are clamped).
const DOT_QUANTILE: f64 = 0.999;

/// Trained quantization parameters.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Quantizer {
    /// Symmetric i8 codes for cosine and dot.
    Dot {
        /// Step between codes.
        alpha: f32,
    },
    /// Offset u8 codes for l2.
    L2 {
        /// Step between codes.
        alpha: f32,
        /// Per-dimension offset (the minimum seen in training).
        lo: Vec<f32>,
    },
}

impl Quantizer {
    /// Learns parameters from sample vectors (each `dim` long).
    pub(crate) fn train<'a>(
        l2: bool,
        dim: usize,
        samples: impl Iterator<Item = &'a [f32]>,
    ) -> Self {
        if l2 {
            let mut lo = vec![f32::INFINITY; dim];
            let mut hi = vec![f32::NEG_INFINITY; dim];
            for v in samples {
                for ((l, h), &x) in lo.iter_mut().zip(hi.iter_mut()).zip(v) {
                    *l = l.min(x);
                    *h = h.max(x);
                }
            }
            let mut span = 0.0f32;
            for (l, h) in lo.iter_mut().zip(&hi) {
                if !l.is_finite() {
                    *l = 0.0;
                } else {
                    span = span.max(h - *l);
                }
            }
            let alpha = if span > 0.0 { span / 255.0 } else { 1.0 };
            Self::L2 { alpha, lo }
        } else {
            let mut mags: Vec<f32> = samples.flat_map(|v| v.iter().map(|x| x.abs())).collect();
            let alpha = if mags.is_empty() {
                1.0
            } else {
                let i = (((mags.len() - 1) as f64) * DOT_QUANTILE) as usize;
                let (_, q, _) = mags.select_nth_unstable_by(i, f32::total_cmp);
                if *q > 0.0 { *q / 127.0 } else { 1.0 }
            };
            Self::Dot { alpha }
        }
    }

    /// Encodes `v` into `out` (the padded code length; padding is zero).
    pub(crate) fn encode(&self, v: &[f32], out: &mut [u8]) {
        out.fill(0);
        match self {
            Self::Dot { alpha } => {
                let inv = 1.0 / alpha;
                for (o, &x) in out.iter_mut().zip(v) {
                    *o = ((x * inv).round().clamp(-127.0, 127.0) as i8) as u8;
                }
            }
            Self::L2 { alpha, lo } => {
                let inv = 1.0 / alpha;
                for ((o, &x), &l) in out.iter_mut().zip(v).zip(lo) {
                    *o = ((x - l) * inv).round().clamp(0.0, 255.0) as u8;
                }
            }
        }
    }

    /// Turns a query into `i16` values for the integer kernels (padding is zero) and
    /// returns the factor that maps the kernel's integer result to distance units.
    pub(crate) fn prepare_query(&self, q: &[f32], out: &mut [i16]) -> f32 {
        out.fill(0);
        match self {
            Self::Dot { alpha } => {
                // Keep Σ |q|·127 inside i32 for every padded length.
                let limit = (i32::MAX as f64 / (out.len().max(1) as f64 * 128.0)).min(32767.0);
                let max = q.iter().fold(0.0f32, |m, x| m.max(x.abs()));
                let beta = if max > 0.0 { max / limit as f32 } else { 1.0 };
                let inv = 1.0 / beta;
                for (o, &x) in out.iter_mut().zip(q) {
                    *o = (x * inv).round().clamp(-32767.0, 32767.0) as i16;
                }
                alpha * beta
            }
            Self::L2 { alpha, lo } => {
                let inv = 1.0 / alpha;
                for ((o, &x), &l) in out.iter_mut().zip(q).zip(lo) {
                    *o = ((x - l) * inv).round().clamp(-255.0, 510.0) as i16;
                }
                alpha * alpha
            }
        }
    }

    /// Parameters as floats, for the file format: `[alpha]` or `[alpha, lo...]`.
    pub(crate) fn params(&self) -> Vec<f32> {
        match self {
            Self::Dot { alpha } => vec![*alpha],
            Self::L2 { alpha, lo } => std::iter::once(*alpha).chain(lo.iter().copied()).collect(),
        }
    }

    /// Inverse of [`Quantizer::params`]; `None` for values no trained quantizer has.
    pub(crate) fn from_params(l2: bool, dim: usize, p: &[f32]) -> Option<Self> {
        let (&alpha, rest) = p.split_first()?;
        if !(alpha.is_finite() && alpha > 0.0) {
            return None;
        }
        if l2 {
            (rest.len() == dim && rest.iter().all(|x| x.is_finite())).then(|| Self::L2 {
                alpha,
                lo: rest.to_vec(),
            })
        } else {
            rest.is_empty().then_some(Self::Dot { alpha })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::distance::reference;

    fn sample(seed: u64, n: usize, dim: usize) -> Vec<Vec<f32>> {
        let mut s = seed;
        (0..n)
            .map(|_| {
                (0..dim)
                    .map(|_| {
                        s = s
                            .wrapping_mul(6364136223846793005)
                            .wrapping_add(1442695040888963407);
                        ((s >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
                    })
                    .collect()
            })
            .collect()
    }

    #[test]
    fn dot_error_is_bounded() {
        let dim = 100;
        let data = sample(1, 200, dim);
        let q = Quantizer::train(false, dim, data.iter().map(Vec::as_slice));
        let Quantizer::Dot { alpha } = q else {
            panic!("dot quantizer expected")
        };
        let mut codes = vec![0u8; 128];
        let mut qq = vec![0i16; 128];
        for pair in data.chunks(2) {
            let (x, y) = (&pair[0], &pair[1]);
            q.encode(x, &mut codes);
            let scale = q.prepare_query(y, &mut qq);
            let codes_i8: Vec<i8> = codes.iter().map(|&c| c as i8).collect();
            let approx = reference::dot_i16_i8(&qq, &codes_i8) as f32 * scale;
            let exact = reference::dot_f32(x, y);
            // Each stored value is off by at most alpha/2 (values lie inside the range
            // here); the query's own step adds a little more.
            let bound = alpha * 0.5 * y.iter().map(|v| v.abs()).sum::<f32>() * 1.05 + 1e-3;
            assert!(
                (approx - exact).abs() <= bound,
                "{approx} vs {exact} (bound {bound})"
            );
        }
    }

    #[test]
    fn l2_error_is_bounded_and_params_round_trip() {
        let dim = 37;
        let data = sample(2, 200, dim);
        let q = Quantizer::train(true, dim, data.iter().map(Vec::as_slice));
        let Quantizer::L2 { alpha, .. } = q.clone() else {
            panic!("l2 quantizer expected")
        };
        let mut codes = vec![0u8; 64];
        let mut qq = vec![0i16; 64];
        for pair in data.chunks(2) {
            let (x, y) = (&pair[0], &pair[1]);
            q.encode(x, &mut codes);
            let scale = q.prepare_query(y, &mut qq);
            let approx = reference::l2_i16_u8(&qq, &codes) as f32 * scale;
            let exact = reference::l2_f32(x, y);
            // Per dimension the difference is off by at most alpha (both sides rounded).
            let d: f32 = x.iter().zip(y).map(|(a, b)| (a - b).abs()).sum();
            let bound = 2.0 * alpha * d + dim as f32 * alpha * alpha + 1e-4;
            assert!(
                (approx - exact).abs() <= bound,
                "{approx} vs {exact} (bound {bound})"
            );
        }
        assert_eq!(Quantizer::from_params(true, dim, &q.params()), Some(q));
        assert_eq!(Quantizer::from_params(true, dim, &[0.0]), None);
        assert_eq!(Quantizer::from_params(false, dim, &[f32::NAN]), None);
    }
}
