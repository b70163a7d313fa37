//! fvecs / ivecs datasets: `base.fvecs`, `query.fvecs`, `groundtruth.ivecs`.

use std::path::Path;

use anyhow::{Context, bail};

/// Rows of equal length, flattened.
#[derive(Debug, Clone)]
pub(crate) struct Rows<T> {
    pub(crate) dim: usize,
    pub(crate) data: Vec<T>,
}

impl<T> Rows<T> {
    pub(crate) fn len(&self) -> usize {
        self.data.len().checked_div(self.dim).unwrap_or(0)
    }

    pub(crate) fn row(&self, i: usize) -> &[T] {
        &self.data[i * self.dim..(i + 1) * self.dim]
    }
}

/// Reads a texmex file: per row a little-endian i32 length, then that many 4-byte values.
fn read_vecs<T>(path: &Path, conv: impl Fn([u8; 4]) -> T) -> anyhow::Result<Rows<T>> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    if bytes.len() < 4 {
        bail!("{}: empty file", path.display());
    }
    let dim = i32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
    let Ok(dim) = usize::try_from(dim) else {
        bail!("{}: negative dimension", path.display())
    };
    let row = 4 + 4 * dim;
    if dim == 0 || bytes.len() % row != 0 {
        bail!(
            "{}: length {} is not a multiple of rows of {dim} values",
            path.display(),
            bytes.len()
        );
    }
    let mut data = Vec::with_capacity(bytes.len() / row * dim);
    for r in bytes.chunks_exact(row) {
        if r[..4] != bytes[..4] {
            bail!("{}: rows of different dimensions", path.display());
        }
        data.extend(
            r[4..]
                .chunks_exact(4)
                .map(|c| conv([c[0], c[1], c[2], c[3]])),
        );
    }
    Ok(Rows { dim, data })
}

/// A benchmark dataset.
#[derive(Debug)]
pub(crate) struct Dataset {
    pub(crate) name: String,
    pub(crate) base: Rows<f32>,
    pub(crate) query: Rows<f32>,
    pub(crate) truth: Rows<i32>,
}

impl Dataset {
    pub(crate) fn load(dir: &Path) -> anyhow::Result<Self> {
        let base = read_vecs(&dir.join("base.fvecs"), f32::from_le_bytes)?;
        let query = read_vecs(&dir.join("query.fvecs"), f32::from_le_bytes)?;
        let truth = read_vecs(&dir.join("groundtruth.ivecs"), i32::from_le_bytes)?;
        if base.dim != query.dim {
            bail!("base has dimension {}, queries {}", base.dim, query.dim);
        }
        if truth.len() != query.len() {
            bail!(
                "{} ground-truth rows for {} queries",
                truth.len(),
                query.len()
            );
        }
        // The last path component, as hnswlib_baseline.py reports it.
        let name = dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .or_else(|| {
                Some(
                    dir.canonicalize()
                        .ok()?
                        .file_name()?
                        .to_string_lossy()
                        .into_owned(),
                )
            })
            .unwrap_or_else(|| dir.display().to_string());
        Ok(Self {
            name,
            base,
            query,
            truth,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_test_fixture() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../testdata/wiki-minilm-2k");
        let d = Dataset::load(&dir).unwrap();
        assert_eq!((d.base.len(), d.base.dim), (2000, 384));
        assert_eq!(d.query.len(), 200);
        assert_eq!(d.truth.dim, 100);
        assert_eq!(d.name, "wiki-minilm-2k");
    }
}
