//! Rewrites the xxh3 checksums of index files in place, so that a file the fuzzer
//! found (fuzzing builds of vectron-hnsw skip the checksums) reaches the same
//! structural check in a normal build, such as the stable regression test.
//!
//! `cargo run --example reseal FILE...`. Unlike the fuzz target this knows the header
//! layout of `FORMAT.md`: the section table at byte 88 (24-byte entries: offset,
//! length, checksum), 9 sections in version 1 and 10 after, the header checksum right
//! after the table. Sections whose bounds lie outside the file keep their checksum.

use std::error::Error;

use xxhash_rust::xxh3::xxh3_64;

const PAGE: usize = 4096;
const TABLE_AT: usize = 88;

fn rd64(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().expect("8 bytes"))
}

fn reseal(bytes: &mut [u8]) -> Result<usize, String> {
    if bytes.len() < PAGE {
        return Err(format!("{} bytes, shorter than the header", bytes.len()));
    }
    let version = u32::from_le_bytes(bytes[8..12].try_into().expect("4 bytes"));
    let sections = if version == 1 { 9 } else { 10 };
    let mut resealed = 0;
    for i in 0..sections {
        let t = TABLE_AT + 24 * i;
        let (off, len) = (rd64(bytes, t), rd64(bytes, t + 8));
        let Some(end) = off.checked_add(len).filter(|&e| e <= bytes.len() as u64) else {
            continue;
        };
        let sum = xxh3_64(&bytes[off as usize..end as usize]);
        bytes[t + 16..t + 24].copy_from_slice(&sum.to_le_bytes());
        resealed += 1;
    }
    let at = TABLE_AT + 24 * sections;
    let sum = xxh3_64(&bytes[..at]);
    bytes[at..at + 8].copy_from_slice(&sum.to_le_bytes());
    Ok(resealed)
}

fn main() -> Result<(), Box<dyn Error>> {
    let files: Vec<_> = std::env::args_os().skip(1).collect();
    if files.is_empty() {
        return Err("usage: reseal FILE...".into());
    }
    for path in files {
        let mut bytes = std::fs::read(&path)?;
        let n = reseal(&mut bytes).map_err(|e| format!("{}: {e}", path.display()))?;
        std::fs::write(&path, &bytes)?;
        println!("{}: header and {n} sections resealed", path.display());
    }
    Ok(())
}
