//! Growable, 64-byte aligned byte arenas backed by memory maps: anonymous memory for
//! a new index, or a private copy-on-write map of an index file after open (the file's
//! pages are used in place; writes go to private pages and never reach the file).

use memmap2::MmapMut;

use crate::HnswError;

/// A byte arena of `cap` bytes starting at `start` inside `map`.
#[derive(Debug)]
pub(crate) struct Arena {
    map: MmapMut,
    start: usize,
    cap: usize,
    file_backed: bool,
}

impl Arena {
    /// A zeroed anonymous arena of at least `cap` bytes.
    pub(crate) fn anon(cap: usize) -> Result<Self, HnswError> {
        let bytes = cap.max(64);
        let map = MmapMut::map_anon(bytes).map_err(|source| HnswError::Alloc { bytes, source })?;
        Ok(Self {
            map,
            start: 0,
            cap: bytes,
            file_backed: false,
        })
    }

    /// The `len` bytes at `start` of a private file map.
    pub(crate) fn mapped(map: MmapMut, start: usize, len: usize) -> Self {
        debug_assert!(start + len <= map.len());
        Self {
            map,
            start,
            cap: len,
            file_backed: true,
        }
    }

    pub(crate) fn is_file_backed(&self) -> bool {
        self.file_backed
    }

    pub(crate) fn as_ptr(&self) -> *const u8 {
        self.bytes().as_ptr()
    }

    pub(crate) fn as_mut_ptr(&mut self) -> *mut u8 {
        self.bytes_mut().as_mut_ptr()
    }

    pub(crate) fn bytes(&self) -> &[u8] {
        &self.map[self.start..self.start + self.cap]
    }

    pub(crate) fn bytes_mut(&mut self) -> &mut [u8] {
        &mut self.map[self.start..self.start + self.cap]
    }

    /// Makes room for `needed` bytes, keeping the first `used` (growth doubles, so adds
    /// are amortised O(1)). A file-backed arena moves to anonymous memory on growth.
    pub(crate) fn ensure(&mut self, needed: usize, used: usize) -> Result<(), HnswError> {
        if needed <= self.cap {
            return Ok(());
        }
        let mut next = Self::anon(needed.max(self.cap.saturating_mul(2)).max(1 << 16))?;
        next.bytes_mut()[..used].copy_from_slice(&self.bytes()[..used]);
        *self = next;
        Ok(())
    }
}
