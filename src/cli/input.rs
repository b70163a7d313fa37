//! Files of points for `vectron points upsert`, read row by row into [`Point`]s with
//! every row checked on the way: the dimension against the collection's, every value
//! finite, a length the collection's metric can compare, ids and payloads within the
//! limits of `vectron_proto::rules` (the same checks the gateway makes, so a file that
//! passes is not refused halfway through an upload). An error names the file and the place:
//! `row N` in a binary file (counted from 0, like the ids it gives), `line N` in a text
//! file (counted from 1, like an editor).
//!
//! | format | rows | id | payload |
//! | --- | --- | --- | --- |
//! | `.fvecs` | per row: dimension as i32 LE, then that many f32 LE | row number (with `--id-prefix`) | `--payloads` |
//! | `.npy` | a 2-D float32 array in C order (either byte order) | row number (with `--id-prefix`) | `--payloads` |
//! | `.jsonl` | one `{"id", "vector", "payload"}` object per line | `id`: a string or an integer | `payload`, optional |
//!
//! `--payloads F.jsonl` pairs line `i + 1` (one JSON object, or `null` for none) with
//! row `i`. Blank lines of text files are skipped.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

use clap::ValueEnum;
use prost_types::Struct;
use vectron_client::Point;
use vectron_proto::rules::{self, LengthError, Limits, MAX_PAYLOAD_DEPTH};

/// The limits the gateway checks every point against.
const LIMITS: &Limits = &Limits::DEFAULT;

/// The layout of a file of points.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum Format {
    /// Rows of (i32 dimension, f32 values), little-endian.
    Fvecs,
    /// A NumPy array of float32, rows × dimension, C order.
    Npy,
    /// One JSON object per line: {"id": ..., "vector": [...], "payload": {...}}.
    Jsonl,
}

impl Format {
    /// The format a file name says: `.fvecs`, `.npy`, `.jsonl` or `.ndjson`.
    pub(crate) fn of_path(path: &Path) -> Result<Format, InputError> {
        match path.extension().and_then(|e| e.to_str()) {
            Some("fvecs") => Ok(Format::Fvecs),
            Some("npy") => Ok(Format::Npy),
            Some("jsonl" | "ndjson") => Ok(Format::Jsonl),
            _ => Err(InputError::UnknownFormat {
                path: path.to_owned(),
            }),
        }
    }
}

/// Where a problem is: a row of a binary file or a line of a text file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Place {
    Row(u64),
    Line(u64),
}

impl std::fmt::Display for Place {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Place::Row(r) => write!(f, "row {r}"),
            Place::Line(l) => write!(f, "line {l}"),
        }
    }
}

/// A file of points or payloads holds something that cannot be sent.
#[derive(Debug, thiserror::Error)]
pub(crate) enum InputError {
    #[error(
        "{}: cannot tell the format from the file name (.fvecs, .npy, .jsonl or .ndjson); pass --format",
        path.display()
    )]
    UnknownFormat { path: PathBuf },
    #[error("cannot read {}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{}: {at}: vector has {got} values, the collection has dimension {expected}", path.display())]
    WrongDimension {
        path: PathBuf,
        at: Place,
        expected: usize,
        got: i64,
    },
    #[error("{}: {at}: value {index} is {value}; vectors hold finite numbers only", path.display())]
    NotFinite {
        path: PathBuf,
        at: Place,
        index: usize,
        value: f32,
    },
    #[error("{}: {at}: {reason}", path.display())]
    Length {
        path: PathBuf,
        at: Place,
        reason: LengthError,
    },
    #[error("{}: {at}: the file ends inside this row", path.display())]
    Truncated { path: PathBuf, at: Place },
    #[error("{}: {at}: not a point {{\"id\", \"vector\", \"payload\"}}", path.display())]
    BadPoint {
        path: PathBuf,
        at: Place,
        #[source]
        source: serde_json::Error,
    },
    #[error("{}: {at}: not JSON", path.display())]
    BadJson {
        path: PathBuf,
        at: Place,
        #[source]
        source: serde_json::Error,
    },
    #[error("{}: {at}: id {id} is not a string of 1 to {} bytes or an integer", path.display(), LIMITS.max_id_bytes)]
    BadId {
        path: PathBuf,
        at: Place,
        id: String,
    },
    #[error("{}: {at}: id {id:?} is also at {first}; an id may appear once per file", path.display())]
    DuplicateId {
        path: PathBuf,
        at: Place,
        first: Place,
        id: String,
    },
    #[error("{}: {at}: payload is not a JSON object (or null)", path.display())]
    BadPayload {
        path: PathBuf,
        at: Place,
        #[source]
        source: vectron_client::Error,
    },
    #[error("{}: {at}: payload is {got} bytes of JSON, more than the limit of {}", path.display(), LIMITS.max_payload_bytes)]
    PayloadTooLarge {
        path: PathBuf,
        at: Place,
        got: usize,
    },
    #[error("{}: {at}: payload nests objects and arrays {depth} levels deep, more than the limit of {MAX_PAYLOAD_DEPTH}", path.display())]
    PayloadDepth {
        path: PathBuf,
        at: Place,
        depth: usize,
    },
    #[error("{}: not a .npy file", path.display())]
    NpyHeader {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{}: dtype {found} is not float32; convert it with array.astype(numpy.float32)", path.display())]
    NpyDtype { path: PathBuf, found: String },
    #[error("{}: shape {shape:?} is not 2-D (rows, dimension)", path.display())]
    NpyShape { path: PathBuf, shape: Vec<u64> },
    #[error("{}: the array is in Fortran order; save it in C order (numpy.ascontiguousarray)", path.display())]
    NpyFortranOrder { path: PathBuf },
    #[error("{}: rows have {got} values, the collection has dimension {expected}", path.display())]
    NpyDimension {
        path: PathBuf,
        expected: usize,
        got: u64,
    },
    #[error("{}: ends after {lines} payloads, but {} has more rows", payloads.display(), vectors.display())]
    TooFewPayloads {
        payloads: PathBuf,
        vectors: PathBuf,
        lines: u64,
    },
    #[error("{}: has more payloads than the {rows} rows of {}", payloads.display(), vectors.display())]
    TooManyPayloads {
        payloads: PathBuf,
        vectors: PathBuf,
        rows: u64,
    },
}

/// A file of points to read, and what to check its rows against.
#[derive(Debug, Clone)]
pub(crate) struct Source {
    pub(crate) path: PathBuf,
    pub(crate) format: Format,
    pub(crate) payloads: Option<PathBuf>,
    pub(crate) id_prefix: String,
    pub(crate) dimension: usize,
    /// The collection compares by cosine similarity, so every vector needs a direction.
    pub(crate) cosine: bool,
}

impl Source {
    /// Opens the files, reading (and checking) the header of a `.npy` file.
    pub(crate) fn open(&self) -> Result<Rows, InputError> {
        let path = self.path.clone();
        let file = open(&path)?;
        let (vectors, rows) = match self.format {
            Format::Fvecs => (Vectors::Fvecs(BufReader::new(file)), None),
            Format::Npy => {
                let (reader, rows) = open_npy(&path, file, self.dimension)?;
                (Vectors::Npy(Box::new(reader)), Some(rows))
            }
            Format::Jsonl => (Vectors::Jsonl(Lines::new(file)), None),
        };
        let payloads = match &self.payloads {
            Some(p) => Some((p.clone(), Lines::new(open(p)?))),
            None => None,
        };
        Ok(Rows {
            source: self.clone(),
            vectors,
            payloads,
            row: 0,
            rows,
            seen: (self.format == Format::Jsonl).then(std::collections::HashMap::new),
            finished: false,
        })
    }
}

fn open(path: &Path) -> Result<File, InputError> {
    File::open(path).map_err(|source| InputError::Io {
        path: path.to_owned(),
        source,
    })
}

type NpyRows = npyz::NpyReader<f32, BufReader<File>>;

/// Checks a `.npy` header: float32 (either byte order), 2-D, C order, the dimension.
fn open_npy(path: &Path, file: File, dimension: usize) -> Result<(NpyRows, u64), InputError> {
    use npyz::{DType, Order, TypeChar};
    let npy = npyz::NpyFile::new(BufReader::new(file)).map_err(|source| InputError::NpyHeader {
        path: path.to_owned(),
        source,
    })?;
    let dtype = npy.dtype();
    let found = match &dtype {
        DType::Plain(t) => t.to_string(),
        other => other.descr(),
    };
    let float32 = matches!(&dtype, DType::Plain(t) if t.type_char() == TypeChar::Float && t.size_field() == 4);
    if !float32 {
        return Err(InputError::NpyDtype {
            path: path.to_owned(),
            found,
        });
    }
    let &[rows, cols] = npy.shape() else {
        return Err(InputError::NpyShape {
            path: path.to_owned(),
            shape: npy.shape().to_vec(),
        });
    };
    if npy.order() != Order::C && rows > 1 {
        return Err(InputError::NpyFortranOrder {
            path: path.to_owned(),
        });
    }
    if cols != dimension as u64 {
        return Err(InputError::NpyDimension {
            path: path.to_owned(),
            expected: dimension,
            got: cols,
        });
    }
    let reader = npy.data::<f32>().map_err(|_| InputError::NpyDtype {
        path: path.to_owned(),
        found,
    })?;
    Ok((reader, rows))
}

enum Vectors {
    Fvecs(BufReader<File>),
    Npy(Box<NpyRows>),
    Jsonl(Lines),
}

/// Non-blank lines of a text file with their line numbers.
struct Lines {
    reader: BufReader<File>,
    line: u64,
    buf: String,
}

impl Lines {
    fn new(file: File) -> Self {
        Self {
            reader: BufReader::new(file),
            line: 0,
            buf: String::new(),
        }
    }

    /// The next non-blank line and its number, `None` at the end.
    fn next_line(&mut self, path: &Path) -> Result<Option<(u64, &str)>, InputError> {
        loop {
            self.buf.clear();
            let n = self
                .reader
                .read_line(&mut self.buf)
                .map_err(|source| InputError::Io {
                    path: path.to_owned(),
                    source,
                })?;
            if n == 0 {
                return Ok(None);
            }
            self.line += 1;
            if !self.buf.trim().is_empty() {
                return Ok(Some((self.line, self.buf.trim_end())));
            }
        }
    }
}

/// One line of a JSON-lines file of points.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct JsonPoint {
    id: serde_json::Value,
    vector: Vec<f32>,
    #[serde(default)]
    payload: serde_json::Value,
}

/// The points of a [`Source`], in file order, each checked.
pub(crate) struct Rows {
    source: Source,
    vectors: Vectors,
    payloads: Option<(PathBuf, Lines)>,
    row: u64,
    /// Rows of a `.npy` file, from its header.
    rows: Option<u64>,
    /// Where each id of a JSON-lines file was first seen (fvecs and npy rows get
    /// distinct ids from their row numbers).
    seen: Option<std::collections::HashMap<String, Place>>,
    finished: bool,
}

impl std::fmt::Debug for Rows {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Rows")
            .field("path", &self.source.path)
            .field("row", &self.row)
            .finish()
    }
}

impl Rows {
    fn next_point(&mut self) -> Result<Option<Point>, InputError> {
        let row = self.row;
        let point = match &mut self.vectors {
            Vectors::Fvecs(reader) => {
                read_fvecs_row(reader, &self.source, row)?.map(|v| (Place::Row(row), None, v))
            }
            Vectors::Npy(reader) => read_npy_row(reader, &self.source, row, self.rows)?
                .map(|v| (Place::Row(row), None, v)),
            Vectors::Jsonl(lines) => match lines.next_line(&self.source.path)? {
                None => None,
                Some((line, text)) => {
                    let (id, vector, payload) =
                        parse_json_point(&self.source.path, Place::Line(line), text)?;
                    Some((Place::Line(line), Some((id, payload)), vector))
                }
            },
        };
        let Some((at, id_payload, vector)) = point else {
            if let Some((path, lines)) = &mut self.payloads
                && lines.next_line(path)?.is_some()
            {
                return Err(InputError::TooManyPayloads {
                    payloads: path.clone(),
                    vectors: self.source.path.clone(),
                    rows: row,
                });
            }
            return Ok(None);
        };
        check_vector(&self.source, at, &vector)?;
        let (id, mut payload) =
            id_payload.unwrap_or_else(|| (format!("{}{row}", self.source.id_prefix), None));
        if rules::check_id(LIMITS, 0, &id).is_err() {
            return Err(InputError::BadId {
                path: self.source.path.clone(),
                at,
                id,
            });
        }
        if let Some(seen) = &mut self.seen {
            if let Some(&first) = seen.get(&id) {
                return Err(InputError::DuplicateId {
                    path: self.source.path.clone(),
                    at,
                    first,
                    id,
                });
            }
            seen.insert(id.clone(), at);
        }
        if let Some((path, lines)) = &mut self.payloads {
            let Some((line, text)) = lines.next_line(path)? else {
                return Err(InputError::TooFewPayloads {
                    payloads: path.clone(),
                    vectors: self.source.path.clone(),
                    lines: row,
                });
            };
            let at = Place::Line(line);
            let value = serde_json::from_str(text).map_err(|source| InputError::BadJson {
                path: path.clone(),
                at,
                source,
            })?;
            payload = to_payload(path, at, value)?;
        }
        self.row += 1;
        Ok(Some(Point {
            id,
            vector,
            payload,
        }))
    }
}

impl Iterator for Rows {
    type Item = Result<Point, InputError>;

    /// The next point; after an error, nothing more.
    fn next(&mut self) -> Option<Self::Item> {
        if self.finished {
            return None;
        }
        let next = self.next_point().transpose();
        if !matches!(next, Some(Ok(_))) {
            self.finished = true;
        }
        next
    }
}

fn read_fvecs_row(
    reader: &mut BufReader<File>,
    source: &Source,
    row: u64,
) -> Result<Option<Vec<f32>>, InputError> {
    let at = Place::Row(row);
    let io = |source_err: io::Error| -> InputError {
        if source_err.kind() == io::ErrorKind::UnexpectedEof {
            InputError::Truncated {
                path: source.path.clone(),
                at,
            }
        } else {
            InputError::Io {
                path: source.path.clone(),
                source: source_err,
            }
        }
    };
    let mut head = [0u8; 4];
    let mut got = 0;
    while got < 4 {
        match reader.read(&mut head[got..]) {
            Ok(0) if got == 0 => return Ok(None),
            Ok(0) => return Err(io(io::ErrorKind::UnexpectedEof.into())),
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(io(e)),
        }
    }
    let dim = i32::from_le_bytes(head);
    if i64::from(dim) != source.dimension as i64 {
        return Err(InputError::WrongDimension {
            path: source.path.clone(),
            at,
            expected: source.dimension,
            got: i64::from(dim),
        });
    }
    let mut bytes = vec![0u8; 4 * source.dimension];
    reader.read_exact(&mut bytes).map_err(io)?;
    Ok(Some(
        bytes
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect(),
    ))
}

fn read_npy_row(
    reader: &mut NpyRows,
    source: &Source,
    row: u64,
    rows: Option<u64>,
) -> Result<Option<Vec<f32>>, InputError> {
    if Some(row) >= rows {
        return Ok(None);
    }
    let mut vector = Vec::with_capacity(source.dimension);
    for _ in 0..source.dimension {
        match reader.next() {
            Some(Ok(v)) => vector.push(v),
            Some(Err(e)) if e.kind() != io::ErrorKind::UnexpectedEof => {
                return Err(InputError::Io {
                    path: source.path.clone(),
                    source: e,
                });
            }
            Some(Err(_)) | None => {
                return Err(InputError::Truncated {
                    path: source.path.clone(),
                    at: Place::Row(row),
                });
            }
        }
    }
    Ok(Some(vector))
}

/// Parses `{"id", "vector", "payload"}`; the dimension is checked by the caller.
fn parse_json_point(
    path: &Path,
    at: Place,
    text: &str,
) -> Result<(String, Vec<f32>, Option<Struct>), InputError> {
    let point: JsonPoint = serde_json::from_str(text).map_err(|source| InputError::BadPoint {
        path: path.to_owned(),
        at,
        source,
    })?;
    let id = match &point.id {
        serde_json::Value::String(s) if rules::check_id(LIMITS, 0, s).is_ok() => s.clone(),
        serde_json::Value::Number(n) if n.is_u64() || n.is_i64() => n.to_string(),
        other => {
            return Err(InputError::BadId {
                path: path.to_owned(),
                at,
                id: other.to_string(),
            });
        }
    };
    let payload = to_payload(path, at, point.payload)?;
    Ok((id, point.vector, payload))
}

fn to_payload(
    path: &Path,
    at: Place,
    value: serde_json::Value,
) -> Result<Option<Struct>, InputError> {
    if value.is_null() {
        return Ok(None);
    }
    let depth = rules::json_depth(&value);
    if rules::check_payload_depth(depth).is_err() {
        return Err(InputError::PayloadDepth {
            path: path.to_owned(),
            at,
            depth,
        });
    }
    let payload =
        vectron_client::payload::to_struct(value).map_err(|source| InputError::BadPayload {
            path: path.to_owned(),
            at,
            source,
        })?;
    // Measured as the gateway measures it: the JSON text of the `Struct` sent.
    let got = vectron_client::payload::from_struct(payload.clone())
        .to_string()
        .len();
    if got > LIMITS.max_payload_bytes {
        return Err(InputError::PayloadTooLarge {
            path: path.to_owned(),
            at,
            got,
        });
    }
    Ok(Some(payload))
}

fn check_vector(source: &Source, at: Place, vector: &[f32]) -> Result<(), InputError> {
    if vector.len() != source.dimension {
        return Err(InputError::WrongDimension {
            path: source.path.clone(),
            at,
            expected: source.dimension,
            got: vector.len() as i64,
        });
    }
    if let Some((index, &value)) = vector.iter().enumerate().find(|(_, v)| !v.is_finite()) {
        return Err(InputError::NotFinite {
            path: source.path.clone(),
            at,
            index,
            value,
        });
    }
    rules::check_length(vector, source.cosine).map_err(|reason| InputError::Length {
        path: source.path.clone(),
        at,
        reason,
    })
}

#[cfg(test)]
mod tests {
    use std::io::Write as _;

    use super::*;

    fn fvecs(rows: &[Vec<f32>]) -> Vec<u8> {
        let mut out = Vec::new();
        for r in rows {
            out.extend_from_slice(&(r.len() as i32).to_le_bytes());
            for v in r {
                out.extend_from_slice(&v.to_le_bytes());
            }
        }
        out
    }

    fn file(dir: &tempfile::TempDir, name: &str, bytes: &[u8]) -> PathBuf {
        let path = dir.path().join(name);
        File::create(&path).unwrap().write_all(bytes).unwrap();
        path
    }

    fn source(path: PathBuf, dimension: usize) -> Source {
        Source {
            format: Format::of_path(&path).unwrap(),
            path,
            payloads: None,
            id_prefix: String::new(),
            dimension,
            cosine: false,
        }
    }

    fn read(source: &Source) -> Result<Vec<Point>, InputError> {
        source.open()?.collect()
    }

    /// A .npy file as NumPy writes it: magic, version 1.0, header padded to 64 bytes.
    fn npy(descr: &str, fortran: bool, shape: &str, data: &[u8]) -> Vec<u8> {
        let mut header = format!(
            "{{'descr': '{descr}', 'fortran_order': {}, 'shape': {shape}, }}",
            if fortran { "True" } else { "False" }
        );
        while (10 + header.len() + 1) % 64 != 0 {
            header.push(' ');
        }
        header.push('\n');
        let mut out = b"\x93NUMPY\x01\x00".to_vec();
        out.extend_from_slice(&(header.len() as u16).to_le_bytes());
        out.extend_from_slice(header.as_bytes());
        out.extend_from_slice(data);
        out
    }

    #[test]
    fn fvecs_rows_become_points_numbered_from_zero() {
        let dir = tempfile::tempdir().unwrap();
        let path = file(&dir, "a.fvecs", &fvecs(&[vec![1.0, 2.0], vec![3.0, 4.0]]));
        let mut s = source(path, 2);
        s.id_prefix = "doc-".into();
        let points = read(&s).unwrap();
        assert_eq!(points.len(), 2);
        assert_eq!(points[1].id, "doc-1");
        assert_eq!(points[1].vector, vec![3.0, 4.0]);
    }

    #[test]
    fn fvecs_errors_name_the_row() {
        let dir = tempfile::tempdir().unwrap();
        let bad_dim = file(
            &dir,
            "d.fvecs",
            &fvecs(&[vec![1.0, 2.0], vec![1.0, 2.0, 3.0]]),
        );
        let err = read(&source(bad_dim, 2)).unwrap_err();
        assert!(
            matches!(
                err,
                InputError::WrongDimension {
                    at: Place::Row(1),
                    expected: 2,
                    got: 3,
                    ..
                }
            ),
            "{err}"
        );
        assert!(
            err.to_string().contains("row 1: vector has 3 values"),
            "{err}"
        );

        let nan = file(
            &dir,
            "n.fvecs",
            &fvecs(&[vec![1.0, 2.0], vec![f32::NAN, 0.0]]),
        );
        let err = read(&source(nan, 2)).unwrap_err();
        assert!(
            matches!(
                err,
                InputError::NotFinite {
                    at: Place::Row(1),
                    index: 0,
                    ..
                }
            ),
            "{err}"
        );

        let mut cut = fvecs(&[vec![1.0, 2.0], vec![3.0, 4.0]]);
        cut.truncate(cut.len() - 2);
        let cut = file(&dir, "c.fvecs", &cut);
        let err = read(&source(cut, 2)).unwrap_err();
        assert!(
            matches!(
                err,
                InputError::Truncated {
                    at: Place::Row(1),
                    ..
                }
            ),
            "{err}"
        );
    }

    #[test]
    fn ids_longer_than_the_server_takes_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = file(&dir, "a.fvecs", &fvecs(&[vec![1.0]]));
        let mut s = source(path, 1);
        s.id_prefix = "x".repeat(128);
        let err = read(&s).unwrap_err();
        assert!(
            matches!(
                err,
                InputError::BadId {
                    at: Place::Row(0),
                    ..
                }
            ),
            "{err}"
        );
    }

    /// Pins that pass 1 refuses what the gateway refuses: a zero vector in a cosine
    /// collection, an overlong or over-deep payload, passed here and failed mid-upload.
    #[test]
    fn rows_the_gateway_would_refuse_are_refused_before_anything_is_sent() {
        let dir = tempfile::tempdir().unwrap();
        let path = file(&dir, "a.fvecs", &fvecs(&[vec![1.0, 0.0], vec![0.0, 0.0]]));
        let mut s = source(path, 2);
        assert_eq!(read(&s).unwrap().len(), 2, "l2 takes a zero vector");
        s.cosine = true;
        let err = read(&s).unwrap_err();
        assert!(
            matches!(
                err,
                InputError::Length {
                    at: Place::Row(1),
                    reason: LengthError::Zero,
                    ..
                }
            ),
            "{err}"
        );

        let big = format!(
            "{{\"id\": \"a\", \"vector\": [1], \"payload\": {{\"t\": \"{}\"}}}}\n",
            "x".repeat(LIMITS.max_payload_bytes)
        );
        let deep = format!(
            "{{\"id\": \"b\", \"vector\": [1], \"payload\": {{\"t\": {}1{}}}}}\n",
            "[".repeat(MAX_PAYLOAD_DEPTH),
            "]".repeat(MAX_PAYLOAD_DEPTH)
        );
        let err = read(&source(file(&dir, "big.jsonl", big.as_bytes()), 1)).unwrap_err();
        assert!(matches!(err, InputError::PayloadTooLarge { .. }), "{err}");
        let err = read(&source(file(&dir, "deep.jsonl", deep.as_bytes()), 1)).unwrap_err();
        assert!(
            matches!(
                err,
                InputError::PayloadDepth {
                    depth,
                    ..
                } if depth == MAX_PAYLOAD_DEPTH + 1
            ),
            "{err}"
        );
    }

    #[test]
    fn npy_float32_c_order_reads_in_either_byte_order() {
        let dir = tempfile::tempdir().unwrap();
        let le: Vec<u8> = [1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        let path = file(&dir, "le.npy", &npy("<f4", false, "(2, 3)", &le));
        let points = read(&source(path, 3)).unwrap();
        assert_eq!(points.len(), 2);
        assert_eq!(points[1].vector, vec![4.0, 5.0, 6.0]);
        assert_eq!(points[0].id, "0");

        let be: Vec<u8> = [1.0f32, 2.0, 3.0]
            .iter()
            .flat_map(|v| v.to_be_bytes())
            .collect();
        let path = file(&dir, "be.npy", &npy(">f4", false, "(1, 3)", &be));
        assert_eq!(
            read(&source(path, 3)).unwrap()[0].vector,
            vec![1.0, 2.0, 3.0]
        );
    }

    #[test]
    fn npy_other_dtypes_shapes_and_orders_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let f64s = file(&dir, "f8.npy", &npy("<f8", false, "(1, 2)", &[0; 16]));
        let err = source(f64s, 2).open().unwrap_err();
        assert!(
            matches!(&err, InputError::NpyDtype { found, .. } if found == "<f8"),
            "{err}"
        );

        let ints = file(&dir, "i4.npy", &npy("<i4", false, "(1, 2)", &[0; 8]));
        assert!(matches!(
            source(ints, 2).open().unwrap_err(),
            InputError::NpyDtype { .. }
        ));

        let flat = file(&dir, "flat.npy", &npy("<f4", false, "(4,)", &[0; 16]));
        let err = source(flat, 4).open().unwrap_err();
        assert!(
            matches!(&err, InputError::NpyShape { shape, .. } if shape == &[4]),
            "{err}"
        );

        let fortran = file(&dir, "f.npy", &npy("<f4", true, "(2, 2)", &[0; 16]));
        assert!(matches!(
            source(fortran, 2).open().unwrap_err(),
            InputError::NpyFortranOrder { .. }
        ));

        let wide = file(&dir, "w.npy", &npy("<f4", false, "(1, 3)", &[0; 12]));
        assert!(matches!(
            source(wide, 2).open().unwrap_err(),
            InputError::NpyDimension {
                expected: 2,
                got: 3,
                ..
            }
        ));

        let short = file(&dir, "s.npy", &npy("<f4", false, "(2, 2)", &[0; 12]));
        let err = read(&source(short, 2)).unwrap_err();
        assert!(
            matches!(
                err,
                InputError::Truncated {
                    at: Place::Row(1),
                    ..
                }
            ),
            "{err}"
        );

        let garbage = file(&dir, "g.npy", b"not numpy at all");
        assert!(matches!(
            source(garbage, 2).open().unwrap_err(),
            InputError::NpyHeader { .. }
        ));
    }

    #[test]
    fn json_lines_carry_ids_and_payloads() {
        let dir = tempfile::tempdir().unwrap();
        let text = concat!(
            "{\"id\": \"a\", \"vector\": [1, 2], \"payload\": {\"t\": \"x\"}}\n",
            "\n",
            "{\"id\": 7, \"vector\": [0.5, 0.25]}\n",
        );
        let path = file(&dir, "p.jsonl", text.as_bytes());
        let points = read(&source(path, 2)).unwrap();
        assert_eq!(points.len(), 2);
        assert_eq!(points[0].id, "a");
        assert!(points[0].payload.is_some());
        assert_eq!(points[1].id, "7");
        assert_eq!(points[1].payload, None);
    }

    #[test]
    fn json_line_errors_name_the_line() {
        let dir = tempfile::tempdir().unwrap();
        type Expected = fn(&InputError) -> bool;
        let cases: [(&str, Expected); 7] = [
            ("{\"id\": \"b\", \"vector\": [1]}", |e| {
                matches!(
                    e,
                    InputError::WrongDimension {
                        at: Place::Line(3),
                        got: 1,
                        ..
                    }
                )
            }),
            ("{\"id\": \"b\", \"vector\": [1, 1e39]}", |e| {
                matches!(
                    e,
                    InputError::NotFinite {
                        at: Place::Line(3),
                        index: 1,
                        ..
                    }
                )
            }),
            ("{\"id\": \"b\", \"vector\": [1, 2]", |e| {
                matches!(
                    e,
                    InputError::BadPoint {
                        at: Place::Line(3),
                        ..
                    }
                )
            }),
            ("{\"id\": \"b\", \"vectr\": [1, 2]}", |e| {
                matches!(
                    e,
                    InputError::BadPoint {
                        at: Place::Line(3),
                        ..
                    }
                )
            }),
            ("{\"id\": 1.5, \"vector\": [1, 2]}", |e| {
                matches!(
                    e,
                    InputError::BadId {
                        at: Place::Line(3),
                        ..
                    }
                )
            }),
            // The id of line 1 again.
            ("{\"id\": \"a\", \"vector\": [1, 2]}", |e| {
                matches!(
                    e,
                    InputError::DuplicateId {
                        at: Place::Line(3),
                        first: Place::Line(1),
                        ..
                    }
                )
            }),
            (
                "{\"id\": \"b\", \"vector\": [1, 2], \"payload\": [1]}",
                |e| {
                    matches!(
                        e,
                        InputError::BadPayload {
                            at: Place::Line(3),
                            ..
                        }
                    )
                },
            ),
        ];
        for (bad, expected) in cases {
            let text = format!("{{\"id\": \"a\", \"vector\": [1, 2]}}\n\n{bad}\n");
            let path = file(&dir, "bad.jsonl", text.as_bytes());
            let err = read(&source(path, 2)).unwrap_err();
            assert!(expected(&err), "{bad}: {err}");
            assert!(err.to_string().contains("line 3"), "{err}");
        }
    }

    #[test]
    fn payload_files_pair_line_by_line() {
        let dir = tempfile::tempdir().unwrap();
        let vectors = file(&dir, "v.fvecs", &fvecs(&[vec![1.0], vec![2.0]]));
        let mut s = source(vectors, 1);

        s.payloads = Some(file(&dir, "ok.jsonl", b"{\"t\": 1}\nnull\n"));
        let points = read(&s).unwrap();
        assert!(points[0].payload.is_some());
        assert_eq!(points[1].payload, None);

        s.payloads = Some(file(&dir, "few.jsonl", b"{\"t\": 1}\n"));
        assert!(matches!(
            read(&s).unwrap_err(),
            InputError::TooFewPayloads { lines: 1, .. }
        ));

        s.payloads = Some(file(&dir, "many.jsonl", b"{}\n{}\n{}\n"));
        assert!(matches!(
            read(&s).unwrap_err(),
            InputError::TooManyPayloads { rows: 2, .. }
        ));

        s.payloads = Some(file(&dir, "bad.jsonl", b"{}\n{oops\n"));
        let err = read(&s).unwrap_err();
        assert!(
            matches!(
                err,
                InputError::BadJson {
                    at: Place::Line(2),
                    ..
                }
            ),
            "{err}"
        );
    }

    #[test]
    fn formats_follow_the_file_name() {
        assert_eq!(
            Format::of_path(Path::new("a.fvecs")).unwrap(),
            Format::Fvecs
        );
        assert_eq!(Format::of_path(Path::new("a.npy")).unwrap(), Format::Npy);
        assert_eq!(
            Format::of_path(Path::new("a.ndjson")).unwrap(),
            Format::Jsonl
        );
        assert!(Format::of_path(Path::new("a.csv")).is_err());
    }
}
