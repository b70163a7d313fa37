//! Distance kernels and the once-per-call instruction-set dispatch.
//!
//! Every distance is "lower is closer": `-dot` for cosine and dot, squared Euclidean
//! distance for l2. A search returns `score = -distance`, so scores are similarities.
//!
//! | kernel            | AVX-512 (x86_64, detected at run time) | portable                  |
//! |-------------------|----------------------------------------|---------------------------|
//! | f32 dot, f32 l2   | 4 accumulators, FMA, 64 floats a step  | simsimd (its own dispatch) |
//! | i16·i8 dot        | sign-extend, `vpmaddwd`, 32 codes a step | scalar, auto-vectorised  |
//! | (i16-u8)² for l2  | zero-extend, sub, `vpmaddwd`           | scalar, auto-vectorised    |
//!
//! The hot loops are generic over [`Dist`] and instantiated inside a function compiled
//! with the AVX-512 target features, so kernels inline into the search loop: no function
//! pointer, FFI call or feature check per distance. The scalar functions in
//! [`reference`] are the specification; every SIMD path is tested against them.
//!
//! Stored vectors are zero-padded to a multiple of 16 floats and codes to a multiple of
//! 32 bytes, so no kernel has a tail loop.

/// Number of f32 lanes every stored vector is padded to.
pub(crate) const F32_PAD: usize = 16;
/// Number of code bytes every stored code vector is padded to.
pub(crate) const CODE_PAD: usize = 32;

/// The instruction set chosen once per index (at creation or open).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum IsaKind {
    /// AVX-512 F + BW + VL on x86_64.
    Avx512,
    /// Everything else: simsimd for f32 (NEON, SVE, AVX2 ... chosen by simsimd), scalar
    /// integer loops that the compiler vectorises.
    Portable,
}

impl IsaKind {
    /// Detects the best kernel set for this CPU.
    pub(crate) fn detect() -> Self {
        #[cfg(target_arch = "x86_64")]
        {
            if std::is_x86_feature_detected!("avx512f")
                && std::is_x86_feature_detected!("avx512bw")
                && std::is_x86_feature_detected!("avx512vl")
                && std::is_x86_feature_detected!("avx2")
                && std::is_x86_feature_detected!("fma")
            {
                return Self::Avx512;
            }
        }
        Self::Portable
    }
}

/// A distance from one fixed query to vectors addressed by raw pointer.
///
/// Implementations are small `Copy` values (a query pointer and a length) so that a
/// search loop generic over `D` keeps them in registers.
pub(crate) trait Dist: Copy {
    /// Distance (lower is closer) from the query to the vector at `v`.
    ///
    /// # Safety
    /// `v` must point to a stored vector of this kind: `n` padded f32 values or `n`
    /// padded code bytes, readable for the whole padded length.
    unsafe fn dist(&self, v: *const u8) -> f32;

    /// The same kind of distance with another query (used by neighbour selection to
    /// compare two stored vectors).
    fn rebase(&self, query: *const u8) -> Self;
}

/// Kernel primitives of one instruction set.
pub(crate) trait Isa: Copy {
    /// Dot product of `n` f32 values (`n` a multiple of [`F32_PAD`]).
    ///
    /// # Safety
    /// Both pointers are readable for `n` f32 values.
    unsafe fn dot_f32(a: *const f32, b: *const f32, n: usize) -> f32;
    /// Squared Euclidean distance of `n` f32 values (`n` a multiple of [`F32_PAD`]).
    ///
    /// # Safety
    /// Both pointers are readable for `n` f32 values.
    unsafe fn l2_f32(a: *const f32, b: *const f32, n: usize) -> f32;
    /// Dot product of an i16 query and i8 codes (`n` a multiple of [`CODE_PAD`]).
    ///
    /// # Safety
    /// `q` is readable for `n` i16 values and `c` for `n` bytes.
    unsafe fn dot_i16_i8(q: *const i16, c: *const i8, n: usize) -> i32;
    /// Squared difference of an i16 query and u8 codes (`n` a multiple of [`CODE_PAD`]).
    ///
    /// # Safety
    /// `q` is readable for `n` i16 values and `c` for `n` bytes.
    unsafe fn l2_i16_u8(q: *const i16, c: *const u8, n: usize) -> i32;
}

/// Portable kernels: simsimd for f32, scalar integer loops.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Portable;

impl Isa for Portable {
    #[inline(always)]
    unsafe fn dot_f32(a: *const f32, b: *const f32, n: usize) -> f32 {
        use simsimd::SpatialSimilarity as _;
        // SAFETY: the caller guarantees both pointers are readable for `n` values.
        let (a, b) = unsafe {
            (
                std::slice::from_raw_parts(a, n),
                std::slice::from_raw_parts(b, n),
            )
        };
        // Equal lengths, so simsimd always returns `Some`.
        f32::dot(a, b).unwrap_or(0.0) as f32
    }

    #[inline(always)]
    unsafe fn l2_f32(a: *const f32, b: *const f32, n: usize) -> f32 {
        use simsimd::SpatialSimilarity as _;
        // SAFETY: the caller guarantees both pointers are readable for `n` values.
        let (a, b) = unsafe {
            (
                std::slice::from_raw_parts(a, n),
                std::slice::from_raw_parts(b, n),
            )
        };
        f32::l2sq(a, b).unwrap_or(0.0) as f32
    }

    #[inline(always)]
    unsafe fn dot_i16_i8(q: *const i16, c: *const i8, n: usize) -> i32 {
        // SAFETY: the caller guarantees both pointers are readable for `n` values.
        let (q, c) = unsafe {
            (
                std::slice::from_raw_parts(q, n),
                std::slice::from_raw_parts(c, n),
            )
        };
        reference::dot_i16_i8(q, c)
    }

    #[inline(always)]
    unsafe fn l2_i16_u8(q: *const i16, c: *const u8, n: usize) -> i32 {
        // SAFETY: the caller guarantees both pointers are readable for `n` values.
        let (q, c) = unsafe {
            (
                std::slice::from_raw_parts(q, n),
                std::slice::from_raw_parts(c, n),
            )
        };
        reference::l2_i16_u8(q, c)
    }
}

/// The scalar specification of every kernel.
pub(crate) mod reference {
    /// Dot product, accumulated in f64.
    pub(crate) fn dot_f32(a: &[f32], b: &[f32]) -> f32 {
        a.iter()
            .zip(b)
            .map(|(&x, &y)| f64::from(x) * f64::from(y))
            .sum::<f64>() as f32
    }

    /// Squared Euclidean distance, accumulated in f64.
    pub(crate) fn l2_f32(a: &[f32], b: &[f32]) -> f32 {
        a.iter()
            .zip(b)
            .map(|(&x, &y)| {
                let d = f64::from(x) - f64::from(y);
                d * d
            })
            .sum::<f64>() as f32
    }

    /// i16 · i8 dot product (wrapping i32, like the SIMD kernels).
    pub(crate) fn dot_i16_i8(q: &[i16], c: &[i8]) -> i32 {
        q.iter().zip(c).fold(0i32, |acc, (&x, &y)| {
            acc.wrapping_add(i32::from(x) * i32::from(y))
        })
    }

    /// Σ (q - c)² over an i16 query and u8 codes (wrapping i32).
    pub(crate) fn l2_i16_u8(q: &[i16], c: &[u8]) -> i32 {
        q.iter().zip(c).fold(0i32, |acc, (&x, &y)| {
            let d = i32::from(x) - i32::from(y);
            acc.wrapping_add(d * d)
        })
    }
}

#[cfg(target_arch = "x86_64")]
pub(crate) use avx512::Avx512;

#[cfg(target_arch = "x86_64")]
mod avx512 {
    use super::Isa;
    use std::arch::x86_64::{
        __m512, __m512i, _mm256_loadu_si256, _mm512_add_epi32, _mm512_add_ps, _mm512_cvtepi8_epi16,
        _mm512_cvtepu8_epi16, _mm512_fmadd_ps, _mm512_loadu_ps, _mm512_loadu_si512,
        _mm512_madd_epi16, _mm512_reduce_add_epi32, _mm512_reduce_add_ps, _mm512_setzero_ps,
        _mm512_setzero_si512, _mm512_sub_epi16, _mm512_sub_ps,
    };

    /// AVX-512 F/BW kernels. Only constructed after run-time detection.
    #[derive(Debug, Clone, Copy)]
    pub(crate) struct Avx512;

    #[target_feature(enable = "avx512f")]
    #[inline]
    unsafe fn dot_f32(a: *const f32, b: *const f32, n: usize) -> f32 {
        // SAFETY: the caller guarantees `n` readable floats behind both pointers and
        // that `n` is a multiple of 16; every load stays below `n`.
        unsafe {
            let mut acc: [__m512; 4] = [_mm512_setzero_ps(); 4];
            let mut i = 0;
            while i + 64 <= n {
                acc[0] =
                    _mm512_fmadd_ps(_mm512_loadu_ps(a.add(i)), _mm512_loadu_ps(b.add(i)), acc[0]);
                acc[1] = _mm512_fmadd_ps(
                    _mm512_loadu_ps(a.add(i + 16)),
                    _mm512_loadu_ps(b.add(i + 16)),
                    acc[1],
                );
                acc[2] = _mm512_fmadd_ps(
                    _mm512_loadu_ps(a.add(i + 32)),
                    _mm512_loadu_ps(b.add(i + 32)),
                    acc[2],
                );
                acc[3] = _mm512_fmadd_ps(
                    _mm512_loadu_ps(a.add(i + 48)),
                    _mm512_loadu_ps(b.add(i + 48)),
                    acc[3],
                );
                i += 64;
            }
            let mut j = 0;
            while i < n {
                acc[j] =
                    _mm512_fmadd_ps(_mm512_loadu_ps(a.add(i)), _mm512_loadu_ps(b.add(i)), acc[j]);
                i += 16;
                j += 1;
            }
            _mm512_reduce_add_ps(_mm512_add_ps(
                _mm512_add_ps(acc[0], acc[1]),
                _mm512_add_ps(acc[2], acc[3]),
            ))
        }
    }

    #[target_feature(enable = "avx512f")]
    #[inline]
    unsafe fn l2_f32(a: *const f32, b: *const f32, n: usize) -> f32 {
        // SAFETY: as in `dot_f32`.
        unsafe {
            let mut acc: [__m512; 4] = [_mm512_setzero_ps(); 4];
            let mut i = 0;
            while i + 64 <= n {
                let d0 = _mm512_sub_ps(_mm512_loadu_ps(a.add(i)), _mm512_loadu_ps(b.add(i)));
                let d1 = _mm512_sub_ps(
                    _mm512_loadu_ps(a.add(i + 16)),
                    _mm512_loadu_ps(b.add(i + 16)),
                );
                let d2 = _mm512_sub_ps(
                    _mm512_loadu_ps(a.add(i + 32)),
                    _mm512_loadu_ps(b.add(i + 32)),
                );
                let d3 = _mm512_sub_ps(
                    _mm512_loadu_ps(a.add(i + 48)),
                    _mm512_loadu_ps(b.add(i + 48)),
                );
                acc[0] = _mm512_fmadd_ps(d0, d0, acc[0]);
                acc[1] = _mm512_fmadd_ps(d1, d1, acc[1]);
                acc[2] = _mm512_fmadd_ps(d2, d2, acc[2]);
                acc[3] = _mm512_fmadd_ps(d3, d3, acc[3]);
                i += 64;
            }
            let mut j = 0;
            while i < n {
                let d = _mm512_sub_ps(_mm512_loadu_ps(a.add(i)), _mm512_loadu_ps(b.add(i)));
                acc[j] = _mm512_fmadd_ps(d, d, acc[j]);
                i += 16;
                j += 1;
            }
            _mm512_reduce_add_ps(_mm512_add_ps(
                _mm512_add_ps(acc[0], acc[1]),
                _mm512_add_ps(acc[2], acc[3]),
            ))
        }
    }

    #[target_feature(enable = "avx512f,avx512bw")]
    #[inline]
    unsafe fn dot_i16_i8(q: *const i16, c: *const i8, n: usize) -> i32 {
        // SAFETY: the caller guarantees `n` readable values behind both pointers and that
        // `n` is a multiple of 32; every 32-wide load stays below `n`.
        unsafe {
            let mut acc: [__m512i; 2] = [_mm512_setzero_si512(); 2];
            let mut i = 0;
            let mut j = 0;
            while i < n {
                let v = _mm512_cvtepi8_epi16(_mm256_loadu_si256(c.add(i).cast()));
                let x = _mm512_loadu_si512(q.add(i).cast());
                acc[j] = _mm512_add_epi32(acc[j], _mm512_madd_epi16(x, v));
                i += 32;
                j ^= 1;
            }
            _mm512_reduce_add_epi32(_mm512_add_epi32(acc[0], acc[1]))
        }
    }

    #[target_feature(enable = "avx512f,avx512bw")]
    #[inline]
    unsafe fn l2_i16_u8(q: *const i16, c: *const u8, n: usize) -> i32 {
        // SAFETY: as in `dot_i16_i8`.
        unsafe {
            let mut acc: [__m512i; 2] = [_mm512_setzero_si512(); 2];
            let mut i = 0;
            let mut j = 0;
            while i < n {
                let v = _mm512_cvtepu8_epi16(_mm256_loadu_si256(c.add(i).cast()));
                let d = _mm512_sub_epi16(_mm512_loadu_si512(q.add(i).cast()), v);
                acc[j] = _mm512_add_epi32(acc[j], _mm512_madd_epi16(d, d));
                i += 32;
                j ^= 1;
            }
            _mm512_reduce_add_epi32(_mm512_add_epi32(acc[0], acc[1]))
        }
    }

    impl Isa for Avx512 {
        #[inline(always)]
        unsafe fn dot_f32(a: *const f32, b: *const f32, n: usize) -> f32 {
            // SAFETY: `Avx512` exists only after detection; pointer contract forwarded.
            unsafe { dot_f32(a, b, n) }
        }
        #[inline(always)]
        unsafe fn l2_f32(a: *const f32, b: *const f32, n: usize) -> f32 {
            // SAFETY: as above.
            unsafe { l2_f32(a, b, n) }
        }
        #[inline(always)]
        unsafe fn dot_i16_i8(q: *const i16, c: *const i8, n: usize) -> i32 {
            // SAFETY: as above.
            unsafe { dot_i16_i8(q, c, n) }
        }
        #[inline(always)]
        unsafe fn l2_i16_u8(q: *const i16, c: *const u8, n: usize) -> i32 {
            // SAFETY: as above.
            unsafe { l2_i16_u8(q, c, n) }
        }
    }
}

/// `-dot` over padded f32 vectors (cosine on unit vectors, and dot).
#[derive(Debug, Clone, Copy)]
pub(crate) struct F32Dot<I> {
    q: *const f32,
    n: usize,
    isa: std::marker::PhantomData<I>,
}

/// Squared Euclidean distance over padded f32 vectors.
#[derive(Debug, Clone, Copy)]
pub(crate) struct F32L2<I> {
    q: *const f32,
    n: usize,
    isa: std::marker::PhantomData<I>,
}

/// `-scale · Σ q·c` over an i16 query and i8 codes.
#[derive(Debug, Clone, Copy)]
pub(crate) struct I8Dot<I> {
    q: *const i16,
    n: usize,
    scale: f32,
    isa: std::marker::PhantomData<I>,
}

/// `scale · Σ (q - c)²` over an i16 query and u8 codes.
#[derive(Debug, Clone, Copy)]
pub(crate) struct U8L2<I> {
    q: *const i16,
    n: usize,
    scale: f32,
    isa: std::marker::PhantomData<I>,
}

impl<I> F32Dot<I> {
    pub(crate) fn new(q: *const f32, n: usize) -> Self {
        Self {
            q,
            n,
            isa: std::marker::PhantomData,
        }
    }
}
impl<I> F32L2<I> {
    pub(crate) fn new(q: *const f32, n: usize) -> Self {
        Self {
            q,
            n,
            isa: std::marker::PhantomData,
        }
    }
}
impl<I> I8Dot<I> {
    pub(crate) fn new(q: *const i16, n: usize, scale: f32) -> Self {
        Self {
            q,
            n,
            scale,
            isa: std::marker::PhantomData,
        }
    }
}
impl<I> U8L2<I> {
    pub(crate) fn new(q: *const i16, n: usize, scale: f32) -> Self {
        Self {
            q,
            n,
            scale,
            isa: std::marker::PhantomData,
        }
    }
}

impl<I: Isa> Dist for F32Dot<I> {
    #[inline(always)]
    unsafe fn dist(&self, v: *const u8) -> f32 {
        // SAFETY: forwarded from the caller: `v` holds `n` padded floats.
        -unsafe { I::dot_f32(self.q, v.cast(), self.n) }
    }
    #[inline(always)]
    fn rebase(&self, query: *const u8) -> Self {
        Self {
            q: query.cast(),
            ..*self
        }
    }
}

impl<I: Isa> Dist for F32L2<I> {
    #[inline(always)]
    unsafe fn dist(&self, v: *const u8) -> f32 {
        // SAFETY: forwarded from the caller: `v` holds `n` padded floats.
        unsafe { I::l2_f32(self.q, v.cast(), self.n) }
    }
    #[inline(always)]
    fn rebase(&self, query: *const u8) -> Self {
        Self {
            q: query.cast(),
            ..*self
        }
    }
}

impl<I: Isa> Dist for I8Dot<I> {
    #[inline(always)]
    unsafe fn dist(&self, v: *const u8) -> f32 {
        // SAFETY: forwarded from the caller: `v` holds `n` padded code bytes.
        -(unsafe { I::dot_i16_i8(self.q, v.cast(), self.n) } as f32) * self.scale
    }
    #[inline(always)]
    fn rebase(&self, query: *const u8) -> Self {
        Self {
            q: query.cast(),
            ..*self
        }
    }
}

impl<I: Isa> Dist for U8L2<I> {
    #[inline(always)]
    unsafe fn dist(&self, v: *const u8) -> f32 {
        // SAFETY: forwarded from the caller: `v` holds `n` padded code bytes.
        (unsafe { I::l2_i16_u8(self.q, v, self.n) } as f32) * self.scale
    }
    #[inline(always)]
    fn rebase(&self, query: *const u8) -> Self {
        Self {
            q: query.cast(),
            ..*self
        }
    }
}

/// Work that runs with a concrete [`Dist`]: the generic body is instantiated once per
/// kernel and instruction set, inside a function compiled for that instruction set.
pub(crate) trait WithDist {
    /// What the work returns.
    type Out;
    /// Runs the work with `d`.
    fn call<D: Dist>(self, d: D) -> Self::Out;
}

/// Which distance a [`Kernel`] computes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Space {
    /// `-dot` over f32 (cosine and dot).
    F32Dot,
    /// Squared l2 over f32.
    F32L2,
    /// `-dot` over i16 query and i8 codes.
    I8Dot,
    /// Squared l2 over i16 query and u8 codes.
    U8L2,
}

/// Runs `w` with the distance of `space` for the query at `q` (`n` padded elements),
/// compiled for `isa`. `scale` multiplies integer kernels' results.
#[inline]
pub(crate) fn dispatch<W: WithDist>(
    isa: IsaKind,
    space: Space,
    q: *const u8,
    n: usize,
    scale: f32,
    w: W,
) -> W::Out {
    match isa {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `IsaKind::Avx512` is only produced by `detect` after checking that the
        // CPU supports every feature `run_avx512` enables.
        IsaKind::Avx512 => unsafe { run_avx512(space, q, n, scale, w) },
        #[cfg(not(target_arch = "x86_64"))]
        IsaKind::Avx512 => run_portable(space, q, n, scale, w),
        IsaKind::Portable => run_portable(space, q, n, scale, w),
    }
}

#[inline(always)]
fn run_with<I: Isa, W: WithDist>(space: Space, q: *const u8, n: usize, scale: f32, w: W) -> W::Out {
    match space {
        Space::F32Dot => w.call(F32Dot::<I>::new(q.cast(), n)),
        Space::F32L2 => w.call(F32L2::<I>::new(q.cast(), n)),
        Space::I8Dot => w.call(I8Dot::<I>::new(q.cast(), n, scale)),
        Space::U8L2 => w.call(U8L2::<I>::new(q.cast(), n, scale)),
    }
}

fn run_portable<W: WithDist>(space: Space, q: *const u8, n: usize, scale: f32, w: W) -> W::Out {
    run_with::<Portable, W>(space, q, n, scale, w)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,fma")]
unsafe fn run_avx512<W: WithDist>(
    space: Space,
    q: *const u8,
    n: usize,
    scale: f32,
    w: W,
) -> W::Out {
    run_with::<Avx512, W>(space, q, n, scale, w)
}

/// A distance kernel for one metric and dimension, with the instruction set chosen once
/// at creation: the index's own kernels, for callers that score vectors themselves.
#[derive(Debug, Clone, Copy)]
pub struct DistanceKernel {
    metric: crate::Metric,
    dim: usize,
    isa: IsaKind,
}

struct Eval(*const u8);

impl WithDist for Eval {
    type Out = f32;
    #[inline(always)]
    fn call<D: Dist>(self, d: D) -> f32 {
        // SAFETY: `DistanceKernel::similarity` passes a pointer to at least the
        // dispatched number of floats.
        unsafe { d.dist(self.0) }
    }
}

impl DistanceKernel {
    /// A kernel for vectors of `dim` values.
    pub fn new(metric: crate::Metric, dim: usize) -> Self {
        Self {
            metric,
            dim,
            isa: IsaKind::detect(),
        }
    }

    /// The similarity the index reports: the dot product for cosine (inputs are expected
    /// at unit length, as stored vectors are) and dot, minus the squared distance for l2.
    pub fn similarity(&self, a: &[f32], b: &[f32]) -> Result<f32, crate::HnswError> {
        for v in [a, b] {
            if v.len() != self.dim {
                return Err(crate::HnswError::WrongDimension {
                    expected: self.dim,
                    got: v.len(),
                });
            }
        }
        let body = self.dim / F32_PAD * F32_PAD;
        let l2 = self.metric.is_l2();
        let space = if l2 { Space::F32L2 } else { Space::F32Dot };
        let main = if body > 0 {
            dispatch(
                self.isa,
                space,
                a.as_ptr().cast(),
                body,
                1.0,
                Eval(b.as_ptr().cast()),
            )
        } else {
            0.0
        };
        Ok(if l2 {
            -(main + reference::l2_f32(&a[body..], &b[body..]))
        } else {
            -main + reference::dot_f32(&a[body..], &b[body..])
        })
    }
}

/// Prefetches the cache line at `p` into all cache levels. Never faults, so `p` may be
/// any address (build it with `wrapping_add`).
#[inline(always)]
pub(crate) fn prefetch(p: *const u8) {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};
        // SAFETY: prefetch is a hint; it never faults and reads no memory architecturally.
        unsafe { _mm_prefetch::<_MM_HINT_T0>(p.cast()) };
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lcg(seed: &mut u64) -> f32 {
        *seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((*seed >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
    }

    fn padded(v: &[f32]) -> Vec<f32> {
        let mut p = v.to_vec();
        p.resize(v.len().div_ceil(F32_PAD) * F32_PAD, 0.0);
        p
    }

    fn isas() -> Vec<IsaKind> {
        let mut v = vec![IsaKind::Portable];
        if IsaKind::detect() == IsaKind::Avx512 {
            v.push(IsaKind::Avx512);
        }
        v
    }

    #[test]
    fn f32_kernels_match_reference_on_odd_dimensions() {
        let mut s = 7u64;
        for dim in [1usize, 3, 15, 17, 31, 33, 63, 65, 100, 127, 129, 384, 1000] {
            let a: Vec<f32> = (0..dim).map(|_| lcg(&mut s)).collect();
            let b: Vec<f32> = (0..dim).map(|_| lcg(&mut s)).collect();
            let (pa, pb) = (padded(&a), padded(&b));
            let dot = reference::dot_f32(&a, &b);
            let l2 = reference::l2_f32(&a, &b);
            for isa in isas() {
                let q = pa.as_ptr().cast();
                let v = pb.as_ptr().cast();
                let got_dot = -dispatch(isa, Space::F32Dot, q, pa.len(), 1.0, Eval(v));
                let got_l2 = dispatch(isa, Space::F32L2, q, pa.len(), 1.0, Eval(v));
                let tol = 1e-4 * (dim as f32).sqrt().max(1.0);
                assert!(
                    (got_dot - dot).abs() <= tol,
                    "{isa:?} dim {dim}: {got_dot} vs {dot}"
                );
                assert!(
                    (got_l2 - l2).abs() <= tol * l2.max(1.0),
                    "{isa:?} dim {dim}: {got_l2} vs {l2}"
                );
            }
        }
    }

    #[test]
    fn public_kernel_matches_reference_with_a_tail() {
        let mut s = 3u64;
        for dim in [5usize, 16, 21, 130] {
            let a: Vec<f32> = (0..dim).map(|_| lcg(&mut s)).collect();
            let b: Vec<f32> = (0..dim).map(|_| lcg(&mut s)).collect();
            let dot = DistanceKernel::new(crate::Metric::Dot, dim)
                .similarity(&a, &b)
                .unwrap();
            let l2 = DistanceKernel::new(crate::Metric::L2, dim)
                .similarity(&a, &b)
                .unwrap();
            assert!((dot - reference::dot_f32(&a, &b)).abs() < 1e-4);
            assert!((l2 + reference::l2_f32(&a, &b)).abs() < 1e-3);
        }
        let k = DistanceKernel::new(crate::Metric::L2, 4);
        assert!(k.similarity(&[0.0; 3], &[0.0; 4]).is_err());
    }

    #[test]
    fn integer_kernels_match_reference_exactly() {
        let mut s = 11u64;
        for n in [32usize, 64, 96, 128, 416, 1536] {
            let q: Vec<i16> = (0..n).map(|_| (lcg(&mut s) * 32767.0) as i16).collect();
            let ci: Vec<i8> = (0..n).map(|_| (lcg(&mut s) * 127.0) as i8).collect();
            let cu: Vec<u8> = (0..n)
                .map(|_| ((lcg(&mut s) + 1.0) * 127.0) as u8)
                .collect();
            let ql: Vec<i16> = (0..n)
                .map(|_| (lcg(&mut s) * 500.0 + 128.0) as i16)
                .collect();
            let want_dot = reference::dot_i16_i8(&q, &ci);
            let want_l2 = reference::l2_i16_u8(&ql, &cu);
            for isa in isas() {
                let got_dot = -dispatch(
                    isa,
                    Space::I8Dot,
                    q.as_ptr().cast(),
                    n,
                    1.0,
                    Eval(ci.as_ptr().cast()),
                );
                let got_l2 = dispatch(
                    isa,
                    Space::U8L2,
                    ql.as_ptr().cast(),
                    n,
                    1.0,
                    Eval(cu.as_ptr()),
                );
                assert_eq!(got_dot, want_dot as f32, "{isa:?} n {n}");
                assert_eq!(got_l2, want_l2 as f32, "{isa:?} n {n}");
            }
        }
    }
}
