//! Which shard owns a point: the one definition that the control plane, the gateway and
//! the workers share.
//!
//! A point id hashes to 64 bits with xxh3 (seed 0) over its UTF-8 bytes. Shard `i` of `S`
//! owns the hashes in `[i·2⁶⁴/S, (i+1)·2⁶⁴/S)`, so shard `i` is `⌊h·S / 2⁶⁴⌋`: contiguous
//! ranges of nearly equal size (they differ by at most one hash) that can later be split.
//! The arithmetic is exact, in 128 bits.

use std::num::NonZeroU32;

use xxhash_rust::xxh3::xxh3_64;

/// The 64-bit hash of a point id (xxh3, seed 0, over the id's UTF-8 bytes).
#[must_use]
pub fn point_hash(id: &str) -> u64 {
    xxh3_64(id.as_bytes())
}

/// The hashes one shard owns, both ends included (`end` is inclusive so that the last
/// shard can own `u64::MAX`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct HashRange {
    /// First hash the shard owns.
    pub start: u64,
    /// Last hash the shard owns.
    pub end: u64,
}

impl HashRange {
    /// Whether the range owns `hash`.
    #[must_use]
    pub fn contains(&self, hash: u64) -> bool {
        self.start <= hash && hash <= self.end
    }
}

/// A collection's split of the hash space into `count` shards.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ShardLayout {
    count: NonZeroU32,
}

impl ShardLayout {
    /// The layout of `count` shards.
    #[must_use]
    pub fn new(count: NonZeroU32) -> Self {
        Self { count }
    }

    /// The layout of `count` shards; `None` for zero shards.
    #[must_use]
    pub fn with_count(count: u32) -> Option<Self> {
        NonZeroU32::new(count).map(Self::new)
    }

    /// Number of shards.
    #[must_use]
    pub fn count(&self) -> u32 {
        self.count.get()
    }

    /// The shard that owns `hash`.
    #[must_use]
    pub fn shard_of_hash(&self, hash: u64) -> u32 {
        let shard = (u128::from(hash) * u128::from(self.count.get())) >> 64;
        // ⌊h·S / 2⁶⁴⌋ < S because h < 2⁶⁴, so it fits in u32.
        u32::try_from(shard).unwrap_or(u32::MAX)
    }

    /// The shard that owns the point `id`.
    #[must_use]
    pub fn shard_of(&self, id: &str) -> u32 {
        self.shard_of_hash(point_hash(id))
    }

    /// The hashes shard `shard` owns; `None` when `shard` is not below the shard count.
    #[must_use]
    pub fn range(&self, shard: u32) -> Option<HashRange> {
        if shard >= self.count.get() {
            return None;
        }
        let start = self.boundary(shard);
        let next = self.boundary(shard + 1);
        let end = next - 1;
        Some(HashRange {
            start: u64::try_from(start).unwrap_or(u64::MAX),
            end: u64::try_from(end).unwrap_or(u64::MAX),
        })
    }

    /// Every shard's range, in shard order.
    pub fn ranges(&self) -> impl Iterator<Item = HashRange> + '_ {
        (0..self.count.get()).filter_map(|shard| self.range(shard))
    }

    /// `⌈i·2⁶⁴ / S⌉`: the smallest hash that shard `i` owns (`2⁶⁴` for `i = S`).
    fn boundary(&self, i: u32) -> u128 {
        let count = u128::from(self.count.get());
        (u128::from(i) << 64).div_ceil(count)
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn layout(count: u32) -> ShardLayout {
        ShardLayout::with_count(count).unwrap()
    }

    #[test]
    fn one_shard_owns_everything() {
        let one = layout(1);
        assert_eq!(
            one.range(0),
            Some(HashRange {
                start: 0,
                end: u64::MAX
            })
        );
        assert_eq!(one.shard_of_hash(u64::MAX), 0);
        assert_eq!(one.range(1), None);
    }

    #[test]
    fn two_shards_split_at_half() {
        let two = layout(2);
        assert_eq!(two.range(0).unwrap().end, (1 << 63) - 1);
        assert_eq!(two.range(1).unwrap().start, 1 << 63);
        assert_eq!(two.shard_of_hash((1 << 63) - 1), 0);
        assert_eq!(two.shard_of_hash(1 << 63), 1);
    }

    #[test]
    fn three_shards_match_the_design_formula() {
        // 2⁶⁴/3 = 6148914691236517205.33…, so shard 1 starts at the next integer.
        let three = layout(3);
        assert_eq!(three.range(1).unwrap().start, 6_148_914_691_236_517_206);
        assert_eq!(three.range(2).unwrap().start, 12_297_829_382_473_034_411);
        assert_eq!(three.range(2).unwrap().end, u64::MAX);
    }

    #[test]
    fn zero_shards_is_not_a_layout() {
        assert_eq!(ShardLayout::with_count(0), None);
    }

    #[test]
    fn point_hash_is_xxh3_of_the_utf8_bytes() {
        // Pinned so that a dependency change cannot silently move every point.
        assert_eq!(point_hash(""), 0x2d06_8005_38d3_94c2);
        assert_eq!(point_hash("42"), xxh3_64(b"42"));
    }

    proptest! {
        #[test]
        fn ranges_tile_the_hash_space(count in 1u32..=4096) {
            let layout = layout(count);
            let ranges: Vec<_> = layout.ranges().collect();
            prop_assert_eq!(ranges.len(), count as usize);
            prop_assert_eq!(ranges[0].start, 0);
            prop_assert_eq!(ranges[ranges.len() - 1].end, u64::MAX);
            for pair in ranges.windows(2) {
                prop_assert_eq!(pair[0].end + 1, pair[1].start);
            }
            let sizes: Vec<u128> = ranges
                .iter()
                .map(|r| u128::from(r.end) - u128::from(r.start) + 1)
                .collect();
            let min = sizes.iter().min().unwrap();
            let max = sizes.iter().max().unwrap();
            prop_assert!(max - min <= 1, "sizes differ by more than one hash");
        }

        #[test]
        fn the_owner_of_a_hash_holds_it_in_its_range(count in 1u32..=4096, hash: u64) {
            let layout = layout(count);
            let shard = layout.shard_of_hash(hash);
            prop_assert!(shard < count);
            prop_assert!(layout.range(shard).unwrap().contains(hash));
        }

        #[test]
        fn range_ends_belong_to_their_shard(count in 1u32..=4096, pick: u32) {
            let layout = layout(count);
            let shard = pick % count;
            let range = layout.range(shard).unwrap();
            prop_assert_eq!(layout.shard_of_hash(range.start), shard);
            prop_assert_eq!(layout.shard_of_hash(range.end), shard);
        }
    }
}
