//! What a record holds: the inputs callers append ([`Record`]), the rkyv schema written to
//! disk, and the zero-copy views replay hands back ([`RecordView`]).
//!
//! The schema is an rkyv enum whose discriminant is the record kind. Its variants are only
//! ever appended: a changed shape becomes a new variant, so every build reads the records
//! older builds wrote. The segment header's format version covers the framing itself.

use std::fmt;

use rkyv::rancor;
use rkyv::ser::allocator::Arena;
use rkyv::string::ArchivedString;
use rkyv::vec::ArchivedVec;
use rkyv::with::InlineAsBox;
use rkyv::{Archive, Serialize};

use crate::error::RecordError;
use crate::frame::{self, Framing};
use crate::options::Format;

#[cfg(not(target_endian = "little"))]
compile_error!(
    "vectron-wal hands out archived f32 runs as &[f32]; that needs a little-endian target"
);

/// A log sequence number: the position of a record in the log. The first record is LSN 1;
/// [`Lsn::ZERO`] means "no record".
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Lsn(u64);

impl Lsn {
    /// No record: what a fresh log reports as durable.
    pub const ZERO: Lsn = Lsn(0);

    /// Wraps a raw sequence number.
    pub const fn new(raw: u64) -> Self {
        Self(raw)
    }

    /// The raw sequence number.
    pub const fn get(self) -> u64 {
        self.0
    }

    /// The LSN after this one.
    pub const fn next(self) -> Self {
        Self(self.0 + 1)
    }
}

impl fmt::Display for Lsn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl From<u64> for Lsn {
    fn from(raw: u64) -> Self {
        Self(raw)
    }
}

impl From<Lsn> for u64 {
    fn from(lsn: Lsn) -> Self {
        lsn.0
    }
}

/// One record to append. It borrows the caller's data: encoding copies it once, straight
/// into the log's write buffer.
#[derive(Debug, Clone, Copy)]
pub enum Record<'a> {
    /// Points to insert or replace.
    Upsert(Upsert<'a>),
    /// Points to delete.
    Delete(Delete<'a>),
    /// A checkpoint now covers every record up to `covers` (v1 logs only).
    Checkpoint {
        /// The last LSN the checkpoint contains.
        covers: Lsn,
    },
    /// Nothing: the entry a new Raft leader appends to commit its term.
    Blank,
    /// A Raft membership change, encoded by the caller.
    Membership(&'a [u8]),
    /// A delete of every point a filter matches, the filter encoded by the caller; it is
    /// evaluated when the record is applied.
    DeleteByFilter(&'a [u8]),
}

/// An upsert batch: `ids[i]` has the vector `vectors[i * dim..(i + 1) * dim]` and the
/// opaque payload `payloads[i]` (an empty payload means none).
#[derive(Debug, Clone, Copy)]
pub struct Upsert<'a> {
    /// Point ids.
    pub ids: &'a [String],
    /// Values per vector.
    pub dim: u32,
    /// Every vector, one after the other: `ids.len() × dim` values.
    pub vectors: &'a [f32],
    /// One payload per id; empty means none.
    pub payloads: &'a [Vec<u8>],
}

/// A delete batch.
#[derive(Debug, Clone, Copy)]
pub struct Delete<'a> {
    /// Point ids.
    pub ids: &'a [String],
}

/// The on-disk body. Variants are append-only (see the module docs).
#[derive(Archive, Serialize)]
enum Body<'a> {
    Upsert(UpsertV1<'a>),
    Delete(DeleteV1<'a>),
    Checkpoint(CheckpointV1),
    Blank,
    Membership(BytesV1<'a>),
    DeleteByFilter(BytesV1<'a>),
}

#[derive(Archive, Serialize)]
struct BytesV1<'a> {
    #[rkyv(with = InlineAsBox)]
    bytes: &'a [u8],
}

#[derive(Archive, Serialize)]
struct UpsertV1<'a> {
    #[rkyv(with = InlineAsBox)]
    ids: &'a [String],
    dim: u32,
    #[rkyv(with = InlineAsBox)]
    vectors: &'a [f32],
    #[rkyv(with = InlineAsBox)]
    payloads: &'a [Vec<u8>],
}

#[derive(Archive, Serialize)]
struct DeleteV1<'a> {
    #[rkyv(with = InlineAsBox)]
    ids: &'a [String],
}

#[derive(Archive, Serialize)]
struct CheckpointV1 {
    covers: u64,
}

type ArchivedRoot = ArchivedBody<'static>;

impl Record<'_> {
    /// Checks the record's shape before anything is encoded.
    pub(crate) fn validate(&self) -> Result<(), RecordError> {
        match self {
            Record::Upsert(u) => {
                check_upsert(u.ids.len(), u.dim, u.vectors.len(), u.payloads.len())
            }
            Record::Delete(d) if d.ids.is_empty() => Err(RecordError::EmptyBatch),
            Record::Delete(_)
            | Record::Checkpoint { .. }
            | Record::Blank
            | Record::Membership(_)
            | Record::DeleteByFilter(_) => Ok(()),
        }
    }

    fn body(&self) -> Body<'_> {
        match *self {
            Record::Upsert(u) => Body::Upsert(UpsertV1 {
                ids: u.ids,
                dim: u.dim,
                vectors: u.vectors,
                payloads: u.payloads,
            }),
            Record::Delete(d) => Body::Delete(DeleteV1 { ids: d.ids }),
            Record::Checkpoint { covers } => Body::Checkpoint(CheckpointV1 { covers: covers.0 }),
            Record::Blank => Body::Blank,
            Record::Membership(bytes) => Body::Membership(BytesV1 { bytes }),
            Record::DeleteByFilter(bytes) => Body::DeleteByFilter(BytesV1 { bytes }),
        }
    }
}

fn check_upsert(ids: usize, dim: u32, values: usize, payloads: usize) -> Result<(), RecordError> {
    if ids == 0 {
        return Err(RecordError::EmptyBatch);
    }
    if dim == 0 {
        return Err(RecordError::ZeroDimension);
    }
    let expected = ids.saturating_mul(dim as usize);
    if values != expected {
        return Err(RecordError::WrongVectorLength {
            ids,
            dim,
            expected,
            got: values,
        });
    }
    if payloads != ids {
        return Err(RecordError::WrongPayloadCount { ids, payloads });
    }
    Ok(())
}

/// Appends one framed record to `buf`, which must end on the alignment boundary (it maps to
/// an aligned file offset). On error `buf` is left as it was. Returns the bytes added.
pub(crate) fn encode(
    record: &Record<'_>,
    lsn: u64,
    term: u64,
    buf: &mut Vec<u8>,
    arena: &mut Arena,
    framing: Framing,
) -> Result<usize, RecordError> {
    debug_assert_eq!(buf.len() % frame::ALIGN, 0);
    record.validate()?;
    match (framing.format, record) {
        (Format::V2, Record::Checkpoint { .. }) => return Err(RecordError::CheckpointInV2),
        (Format::V1, _) if term != 0 => return Err(RecordError::NeedsV2 { what: "a term" }),
        _ => {}
    }
    let max_body = framing.max_body;
    let start = buf.len();
    buf.resize(start + framing.header_len(), 0);
    // rkyv aligns by the writer's position; the record starts on a 16-byte boundary that
    // maps to a 16-byte file offset, so alignment in the buffer is alignment on disk.
    let body = record.body();
    let encoded = rkyv::api::high::to_bytes_in_with_alloc::<_, _, rancor::Error>(
        &body,
        &mut *buf,
        arena.acquire(),
    );
    if let Err(e) = encoded {
        buf.truncate(start);
        return Err(RecordError::Encode(e));
    }
    let body_len = (buf.len() - start - framing.header_len()) as u64;
    if body_len > max_body {
        buf.truncate(start);
        return Err(RecordError::TooLarge {
            bytes: body_len,
            max: max_body,
        });
    }
    framing.seal(buf, start, lsn, term);
    Ok(buf.len() - start)
}

/// Appends a record whose body was encoded elsewhere (a Raft leader's, as it arrived), after
/// checking that it decodes as a record this log may hold, unless it was `checked` already
/// (an [`EncodedBody`]). Same contract as [`encode`].
pub(crate) fn encode_raw(
    body: &[u8],
    checked: bool,
    lsn: u64,
    term: u64,
    buf: &mut Vec<u8>,
    framing: Framing,
) -> Result<usize, RecordError> {
    debug_assert_eq!(buf.len() % frame::ALIGN, 0);
    if framing.format == Format::V1 {
        return Err(RecordError::NeedsV2 {
            what: "a raw record",
        });
    }
    if body.len() as u64 > framing.max_body {
        return Err(RecordError::TooLarge {
            bytes: body.len() as u64,
            max: framing.max_body,
        });
    }
    if !checked {
        // rkyv validates an archive at an aligned address: an unaligned body is checked in
        // a copy.
        let copy;
        let aligned: &[u8] = if body.as_ptr().addr().is_multiple_of(frame::ALIGN) {
            body
        } else {
            let mut buf = rkyv::util::AlignedVec::<16>::with_capacity(body.len());
            buf.extend_from_slice(body);
            copy = buf;
            &copy
        };
        let view = decode(lsn, term, aligned).map_err(RecordError::BadBody)?;
        if matches!(view.body(), BodyView::Checkpoint { .. }) {
            return Err(RecordError::CheckpointInV2);
        }
    }
    let start = buf.len();
    buf.resize(start + framing.header_len(), 0);
    buf.extend_from_slice(body);
    framing.seal(buf, start, lsn, term);
    Ok(buf.len() - start)
}

/// A record body encoded on its own, outside any log: what a Raft entry carries from the
/// leader's proposal to every replica's log ([`Wal::append_raw`](crate::Wal::append_raw))
/// and state machine. Checked when made, so [`view`](EncodedBody::view) cannot fail; it
/// never holds a checkpoint marker (a v1 record).
#[derive(Clone)]
pub struct EncodedBody(rkyv::util::AlignedVec<16>);

impl PartialEq for EncodedBody {
    fn eq(&self, other: &Self) -> bool {
        self.as_bytes() == other.as_bytes()
    }
}

impl Eq for EncodedBody {}

impl fmt::Debug for EncodedBody {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EncodedBody")
            .field("bytes", &self.0.len())
            .finish_non_exhaustive()
    }
}

impl EncodedBody {
    /// Encodes `record`, checking its shape as [`Wal::append`](crate::Wal::append) does.
    pub fn encode(record: &Record<'_>) -> Result<Self, RecordError> {
        record.validate()?;
        if matches!(record, Record::Checkpoint { .. }) {
            return Err(RecordError::CheckpointInV2);
        }
        let mut arena = Arena::new();
        let bytes = rkyv::api::high::to_bytes_in_with_alloc::<_, _, rancor::Error>(
            &record.body(),
            rkyv::util::AlignedVec::<16>::new(),
            arena.acquire(),
        )
        .map_err(RecordError::Encode)?;
        Ok(Self(bytes))
    }

    /// Checks bytes that arrived from elsewhere (a leader's entry off the network) and
    /// keeps an aligned copy.
    pub fn decode(bytes: &[u8]) -> Result<Self, RecordError> {
        let mut aligned = rkyv::util::AlignedVec::<16>::with_capacity(bytes.len());
        aligned.extend_from_slice(bytes);
        let view = decode(0, 0, &aligned).map_err(RecordError::BadBody)?;
        if matches!(view.body(), BodyView::Checkpoint { .. }) {
            return Err(RecordError::CheckpointInV2);
        }
        Ok(Self(aligned))
    }

    /// The encoded bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// Bytes in the body.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Never true: a body holds at least its tag.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// What the body holds.
    pub fn view(&self) -> BodyView<'_> {
        decode(0, 0, &self.0)
            .expect("an encoded body was checked when it was made")
            .body()
    }
}

/// A record read back by replay, borrowing the memory-mapped segment.
#[derive(Debug, Clone, Copy)]
pub struct RecordView<'a> {
    lsn: Lsn,
    term: u64,
    bytes: &'a [u8],
    body: BodyView<'a>,
}

impl<'a> RecordView<'a> {
    /// The record's LSN.
    pub fn lsn(&self) -> Lsn {
        self.lsn
    }

    /// The Raft term the record was written in (0 in a v1 log).
    pub fn term(&self) -> u64 {
        self.term
    }

    /// The encoded body, as [`Wal::append_raw`](crate::Wal::append_raw) takes it: what a
    /// leader sends its followers.
    pub fn body_bytes(&self) -> &'a [u8] {
        self.bytes
    }

    /// What the record holds.
    pub fn body(&self) -> BodyView<'a> {
        self.body
    }

    /// A copy of the body that outlives the replay (a log store serving its readers);
    /// `None` for a checkpoint marker, which only v1 logs hold.
    pub fn to_encoded(self) -> Option<EncodedBody> {
        if matches!(self.body, BodyView::Checkpoint { .. }) {
            return None;
        }
        let mut aligned = rkyv::util::AlignedVec::<16>::with_capacity(self.bytes.len());
        aligned.extend_from_slice(self.bytes);
        Some(EncodedBody(aligned))
    }
}

/// The body of a replayed record.
#[derive(Debug, Clone, Copy)]
pub enum BodyView<'a> {
    /// An upsert batch.
    Upsert(UpsertView<'a>),
    /// A delete batch.
    Delete(DeleteView<'a>),
    /// A checkpoint marker.
    Checkpoint {
        /// The last LSN the checkpoint contains.
        covers: Lsn,
    },
    /// A Raft leader's blank entry.
    Blank,
    /// A Raft membership change, as the caller encoded it.
    Membership(&'a [u8]),
    /// A delete by filter, the filter as the caller encoded it.
    DeleteByFilter(&'a [u8]),
}

/// A zero-copy upsert batch: ids, vectors and payloads are read in place.
#[derive(Clone, Copy)]
pub struct UpsertView<'a> {
    ids: &'a [ArchivedString],
    dim: u32,
    vectors: &'a [f32],
    payloads: &'a [ArchivedVec<u8>],
}

impl<'a> UpsertView<'a> {
    /// Points in the batch.
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    /// True when the batch holds no point (never, for records this crate wrote).
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// Values per vector.
    pub fn dim(&self) -> u32 {
        self.dim
    }

    /// The point ids, in batch order.
    pub fn ids(&self) -> impl ExactSizeIterator<Item = &'a str> + 'a {
        self.ids.iter().map(ArchivedString::as_str)
    }

    /// Every vector, one after the other, in place in the segment.
    pub fn vectors(&self) -> &'a [f32] {
        self.vectors
    }

    /// The `i`-th point: id, vector, payload (empty means none). `None` past the end.
    pub fn point(&self, i: usize) -> Option<(&'a str, &'a [f32], &'a [u8])> {
        let dim = self.dim as usize;
        Some((
            self.ids.get(i)?.as_str(),
            self.vectors.get(i * dim..(i + 1) * dim)?,
            self.payloads.get(i)?.as_slice(),
        ))
    }

    /// Every point, in batch order.
    pub fn points(&self) -> impl ExactSizeIterator<Item = (&'a str, &'a [f32], &'a [u8])> + 'a {
        let dim = self.dim as usize;
        let (ids, payloads) = (self.ids, self.payloads);
        self.vectors
            .chunks_exact(dim)
            .zip(ids.iter().zip(payloads))
            .map(|(v, (id, p))| (id.as_str(), v, p.as_slice()))
    }
}

impl fmt::Debug for UpsertView<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UpsertView")
            .field("len", &self.len())
            .field("dim", &self.dim)
            .finish_non_exhaustive()
    }
}

/// A zero-copy delete batch.
#[derive(Clone, Copy)]
pub struct DeleteView<'a> {
    ids: &'a [ArchivedString],
}

impl<'a> DeleteView<'a> {
    /// Ids in the batch.
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    /// True when the batch holds no id (never, for records this crate wrote).
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// The ids, in batch order.
    pub fn ids(&self) -> impl ExactSizeIterator<Item = &'a str> + 'a {
        self.ids.iter().map(ArchivedString::as_str)
    }
}

impl fmt::Debug for DeleteView<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DeleteView")
            .field("len", &self.len())
            .finish_non_exhaustive()
    }
}

// An archived `f32` is `rend::f32_le`: the same four bytes as a native `f32` on a
// little-endian target, aligned like one (the `unaligned` rkyv feature is off).
const _: () = {
    assert!(size_of::<rkyv::rend::f32_le>() == size_of::<f32>());
    assert!(align_of::<rkyv::rend::f32_le>() == align_of::<f32>());
};

fn f32_run(archived: &[rkyv::rend::f32_le]) -> &[f32] {
    // SAFETY: `f32_le` has the size and alignment of `f32` (asserted above), every bit
    // pattern is a valid `f32`, and on a little-endian target (enforced by the
    // `compile_error!` above) its bytes are the native `f32` representation. The returned
    // slice borrows the same memory for the same lifetime, read-only.
    unsafe { std::slice::from_raw_parts(archived.as_ptr().cast::<f32>(), archived.len()) }
}

/// Validates and views a body. `bytes` must sit at an aligned address (an aligned offset
/// of a page-aligned mapping).
pub(crate) fn decode(
    lsn: u64,
    term: u64,
    bytes: &[u8],
) -> Result<RecordView<'_>, crate::Corruption> {
    let root = rkyv::access::<ArchivedRoot, rancor::Error>(bytes)
        .map_err(crate::Corruption::Undecodable)?;
    let body = match root {
        ArchivedBody::Upsert(u) => {
            let view = UpsertView {
                ids: u.ids.get(),
                dim: u.dim.to_native(),
                vectors: f32_run(u.vectors.get()),
                payloads: u.payloads.get(),
            };
            check_upsert(
                view.ids.len(),
                view.dim,
                view.vectors.len(),
                view.payloads.len(),
            )
            .map_err(|e| crate::Corruption::Inconsistent(Box::new(e)))?;
            BodyView::Upsert(view)
        }
        ArchivedBody::Delete(d) => BodyView::Delete(DeleteView { ids: d.ids.get() }),
        ArchivedBody::Checkpoint(c) => BodyView::Checkpoint {
            covers: Lsn(c.covers.to_native()),
        },
        ArchivedBody::Blank => BodyView::Blank,
        ArchivedBody::Membership(m) => BodyView::Membership(m.bytes.get()),
        ArchivedBody::DeleteByFilter(f) => BodyView::DeleteByFilter(f.bytes.get()),
    };
    Ok(RecordView {
        lsn: Lsn(lsn),
        term,
        bytes,
        body,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const V1: Framing = Framing::new(Format::V1, 1 << 20);
    const V2: Framing = Framing::new(Format::V2, 1 << 20);

    /// Encodes into a buffer and decodes from a 16-aligned copy, the way a mapped segment
    /// presents it.
    fn round_trip(record: &Record<'_>, check: impl FnOnce(RecordView<'_>)) {
        let mut buf = Vec::new();
        let mut arena = Arena::new();
        let n = encode(record, 5, 0, &mut buf, &mut arena, V1).expect("encodes");
        assert_eq!(n, buf.len());
        assert_eq!(n % frame::ALIGN, 0);
        let raw = V1.parse(&buf, 0).expect("frames");
        let mut aligned = rkyv::util::AlignedVec::<16>::new();
        aligned.extend_from_slice(&buf);
        let view = decode(raw.lsn, raw.term, &aligned[raw.body.0..raw.body.1]).expect("decodes");
        assert_eq!(view.lsn(), Lsn(5));
        check(view);
    }

    #[test]
    fn an_encoded_body_views_what_it_was_made_of_and_checks_what_arrives() {
        let ids = vec!["a".to_string(), "b".to_string()];
        let payloads = vec![Vec::new(), b"{}".to_vec()];
        let rec = Record::Upsert(Upsert {
            ids: &ids,
            dim: 2,
            vectors: &[1.0, 2.0, 3.0, 4.0],
            payloads: &payloads,
        });
        let body = EncodedBody::encode(&rec).expect("encodes");
        let BodyView::Upsert(view) = body.view() else {
            panic!("an upsert body");
        };
        assert_eq!(view.point(1), Some(("b", &[3.0, 4.0][..], &b"{}"[..])));
        // Bytes off the network, at any address, decode to the same body.
        let mut shifted = vec![0u8];
        shifted.extend_from_slice(body.as_bytes());
        assert_eq!(EncodedBody::decode(&shifted[1..]).expect("decodes"), body);
        assert!(matches!(
            EncodedBody::decode(&shifted[..shifted.len() - 3]),
            Err(RecordError::BadBody(_))
        ));
        assert!(matches!(
            EncodedBody::encode(&Record::Checkpoint { covers: Lsn(3) }),
            Err(RecordError::CheckpointInV2)
        ));
        assert!(matches!(
            EncodedBody::encode(&Record::Delete(Delete { ids: &[] })),
            Err(RecordError::EmptyBatch)
        ));
        // A raw append of it frames the same bytes.
        let mut buf = Vec::new();
        encode_raw(body.as_bytes(), true, 9, 2, &mut buf, V2).expect("frames");
        let raw = V2.parse(&buf, 0).expect("parses");
        assert_eq!((raw.lsn, raw.term), (9, 2));
        assert_eq!(&buf[raw.body.0..raw.body.1], body.as_bytes());
    }

    #[test]
    fn upsert_round_trips_zero_copy() {
        let ids = vec!["a".to_string(), "a-much-longer-id-than-inline".to_string()];
        let vectors = [1.0, -2.5, 3.25, f32::MIN_POSITIVE];
        let payloads = vec![Vec::new(), br#"{"title":"x"}"#.to_vec()];
        let rec = Record::Upsert(Upsert {
            ids: &ids,
            dim: 2,
            vectors: &vectors,
            payloads: &payloads,
        });
        round_trip(&rec, |view| {
            let BodyView::Upsert(u) = view.body() else {
                panic!("not an upsert: {view:?}")
            };
            assert_eq!(u.len(), 2);
            assert_eq!(u.dim(), 2);
            assert_eq!(
                u.ids().collect::<Vec<_>>(),
                ["a", "a-much-longer-id-than-inline"]
            );
            assert_eq!(u.vectors(), &vectors);
            assert_eq!(
                u.point(1),
                Some((ids[1].as_str(), &vectors[2..], &payloads[1][..]))
            );
            assert_eq!(u.point(2), None);
            assert_eq!(u.points().map(|p| p.2.len()).collect::<Vec<_>>(), [0, 13]);
        });
    }

    #[test]
    fn delete_and_checkpoint_round_trip() {
        let ids = vec!["x".to_string(), "y".to_string()];
        round_trip(&Record::Delete(Delete { ids: &ids }), |view| {
            let BodyView::Delete(d) = view.body() else {
                panic!("not a delete: {view:?}")
            };
            assert_eq!(d.ids().collect::<Vec<_>>(), ["x", "y"]);
        });
        round_trip(&Record::Checkpoint { covers: Lsn(77) }, |view| {
            assert!(matches!(
                view.body(),
                BodyView::Checkpoint { covers: Lsn(77) }
            ));
        });
    }

    #[test]
    fn bad_shapes_are_refused_and_leave_the_buffer_alone() {
        let ids = vec!["a".to_string()];
        let payloads = vec![Vec::new()];
        let mut buf = vec![0u8; 32];
        let mut arena = Arena::new();
        let cases = [
            (
                Record::Upsert(Upsert {
                    ids: &[],
                    dim: 1,
                    vectors: &[],
                    payloads: &[],
                }),
                "EmptyBatch",
            ),
            (
                Record::Upsert(Upsert {
                    ids: &ids,
                    dim: 0,
                    vectors: &[],
                    payloads: &payloads,
                }),
                "ZeroDimension",
            ),
            (
                Record::Upsert(Upsert {
                    ids: &ids,
                    dim: 2,
                    vectors: &[1.0],
                    payloads: &payloads,
                }),
                "WrongVectorLength",
            ),
            (
                Record::Upsert(Upsert {
                    ids: &ids,
                    dim: 1,
                    vectors: &[1.0],
                    payloads: &[],
                }),
                "WrongPayloadCount",
            ),
            (Record::Delete(Delete { ids: &[] }), "EmptyBatch"),
        ];
        for (rec, want) in cases {
            let err = encode(&rec, 1, 0, &mut buf, &mut arena, V1).expect_err(want);
            assert!(format!("{err:?}").starts_with(want), "{want}: got {err:?}");
            assert_eq!(buf.len(), 32);
        }
        let big = vec![0.0f32; 1024];
        let rec = Record::Upsert(Upsert {
            ids: &ids,
            dim: 1024,
            vectors: &big,
            payloads: &payloads,
        });
        let small = Framing {
            max_body: 1000,
            ..V1
        };
        let err = encode(&rec, 1, 0, &mut buf, &mut arena, small).expect_err("too large");
        assert!(
            matches!(err, RecordError::TooLarge { max: 1000, .. }),
            "{err:?}"
        );
        assert_eq!(buf.len(), 32);
    }

    #[test]
    fn raft_records_round_trip_with_their_term_and_bytes() {
        let mut arena = Arena::new();
        let cases = [
            Record::Blank,
            Record::Membership(b"{\"voters\":[1,2,3]}"),
            Record::DeleteByFilter(b"{\"must\":[]}"),
        ];
        for rec in cases {
            let mut buf = Vec::new();
            encode(&rec, 9, 4, &mut buf, &mut arena, V2).expect("encodes");
            let raw = V2.parse(&buf, 0).expect("frames");
            assert_eq!((raw.lsn, raw.term), (9, 4));
            let mut aligned = rkyv::util::AlignedVec::<16>::new();
            aligned.extend_from_slice(&buf);
            let body = &aligned[raw.body.0..raw.body.1];
            let view = decode(raw.lsn, raw.term, body).expect("decodes");
            assert_eq!(view.term(), 4);
            match (rec, view.body()) {
                (Record::Blank, BodyView::Blank) => {}
                (Record::Membership(a), BodyView::Membership(b))
                | (Record::DeleteByFilter(a), BodyView::DeleteByFilter(b)) => assert_eq!(a, b),
                (rec, body) => panic!("{rec:?} came back as {body:?}"),
            }
            // A follower framing the leader's body bytes writes the same record.
            let mut copy = Vec::new();
            encode_raw(view.body_bytes(), false, 9, 4, &mut copy, V2).expect("frames raw");
            assert_eq!(copy, buf);
        }
    }

    #[test]
    fn each_format_refuses_what_it_cannot_hold() {
        let mut arena = Arena::new();
        let mut buf = Vec::new();
        let checkpoint = Record::Checkpoint { covers: Lsn(1) };
        assert!(matches!(
            encode(&checkpoint, 1, 1, &mut buf, &mut arena, V2),
            Err(RecordError::CheckpointInV2)
        ));
        assert!(matches!(
            encode(&Record::Blank, 1, 1, &mut buf, &mut arena, V1),
            Err(RecordError::NeedsV2 { .. })
        ));
        assert!(matches!(
            encode_raw(b"", false, 1, 1, &mut buf, V1),
            Err(RecordError::NeedsV2 { .. })
        ));
        assert!(buf.is_empty());
        // Raw bodies must decode, and never as a checkpoint marker.
        assert!(matches!(
            encode_raw(&[0xAB; 40], false, 1, 1, &mut buf, V2),
            Err(RecordError::BadBody(_))
        ));
        let mut v1 = Vec::new();
        encode(&checkpoint, 1, 0, &mut v1, &mut arena, V1).expect("encodes");
        let raw = V1.parse(&v1, 0).expect("frames");
        assert!(matches!(
            encode_raw(&v1[raw.body.0..raw.body.1], false, 1, 1, &mut buf, V2),
            Err(RecordError::CheckpointInV2)
        ));
        assert!(buf.is_empty());
    }

    /// Pins the on-disk bytes of a record (framing and rkyv layout). If this fails, the
    /// format changed: add a schema variant or bump the segment version, never both silently.
    #[test]
    fn encoded_bytes_are_pinned() {
        let ids = vec!["p1".to_string()];
        let rec = Record::Upsert(Upsert {
            ids: &ids,
            dim: 2,
            vectors: &[1.0, 2.0],
            payloads: &[b"{}".to_vec()],
        });
        let mut buf = Vec::new();
        encode(&rec, 3, 0, &mut buf, &mut Arena::new(), V1).expect("encodes");
        let hex: String = buf.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(hex, GOLDEN_UPSERT);
        let mut buf = Vec::new();
        encode(
            &Record::Checkpoint { covers: Lsn(2) },
            4,
            0,
            &mut buf,
            &mut Arena::new(),
            V1,
        )
        .expect("encodes");
        let hex: String = buf.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(hex, GOLDEN_CHECKPOINT);
        let mut buf = Vec::new();
        encode(&Record::Blank, 5, 3, &mut buf, &mut Arena::new(), V2).expect("encodes");
        let hex: String = buf.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(hex, GOLDEN_V2_BLANK);
    }

    const GOLDEN_UPSERT: &str = "400000003cdae03a03000000000000007031ffffffffffff0000803f000000407b7d0000fcffffff020000000000000000000000dcffffff0100000002000000d8ffffff02000000dcffffff01000000";
    const GOLDEN_V2_BLANK: &str = "200000009bfa04e60500000000000000030000000000000000000000000000000300000000000000000000000000000000000000000000000000000000000000";
    const GOLDEN_CHECKPOINT: &str = "20000000344bd72904000000000000000200000000000000020000000000000000000000000000000000000000000000";
}
