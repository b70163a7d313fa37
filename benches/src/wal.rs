//! `vectron-bench wal`: how fast the write-ahead log makes appends durable, measured in
//! the same run against the raw baseline of one writer doing `pwrite + fdatasync` per
//! record in the same directory; or, with `--replay-mib`, how fast it replays against
//! `cat` reading the same segment files.
//!
//! The raw baseline runs for half the time before the log and half after, so drift in
//! the disk's speed over the run falls on both sides of the ratio.

use std::cell::RefCell;
use std::fs::File;
use std::os::fd::AsRawFd;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::rc::Rc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use hdrhistogram::Histogram;
use vectron_wal::{BodyView, Lsn, Options, Record, SyncPolicy, Upsert, Wal};

/// Options of `vectron-bench wal`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Concurrent writer tasks on the one core.
    #[arg(long, default_value_t = 64)]
    writers: usize,
    /// Bytes per record on disk, framing included (a multiple of 16).
    #[arg(long, default_value_t = 1024)]
    record_bytes: usize,
    /// Seconds the log is driven (the raw baseline runs as long again).
    #[arg(long, default_value_t = 10.0)]
    seconds: f64,
    /// Sync policy: `always`, `never`, or `interval:<ms>`.
    #[arg(long, default_value = "always")]
    sync: String,
    /// monoio driver: `uring` or `legacy`.
    #[arg(long, default_value = "uring")]
    driver: String,
    /// Segment size in MiB.
    #[arg(long, default_value_t = 64)]
    segment_mib: u64,
    /// Directory to write in (default: a temporary one under the current directory,
    /// removed afterwards).
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Instead of appends: write this many MiB of records, then time replay against `cat`
    /// of the same files, cold (evicted from the page cache) and warm.
    #[arg(long, default_value_t = 0)]
    replay_mib: u64,
    /// Rounds of the replay measurement; the median is reported.
    #[arg(long, default_value_t = 3)]
    rounds: usize,
}

pub fn run(args: &Args) -> anyhow::Result<()> {
    let policy = parse_sync(&args.sync)?;
    ensure!(args.writers >= 1, "--writers must be at least 1");
    ensure!(
        args.record_bytes >= 64 && args.record_bytes.is_multiple_of(16),
        "--record-bytes must be a multiple of 16, at least 64"
    );
    ensure!(args.seconds > 0.0, "--seconds must be positive");
    let driver = args.driver.as_str();
    ensure!(
        matches!(driver, "uring" | "legacy"),
        "--driver is uring or legacy"
    );
    let tmp;
    let dir = match &args.dir {
        Some(dir) => {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
            dir.clone()
        }
        None => {
            tmp = tempfile::Builder::new()
                .prefix("vectron-bench-wal-")
                .tempdir_in(".")?;
            tmp.path().to_path_buf()
        }
    };
    let wal_dir = dir.join("wal");
    if wal_dir.exists() {
        bail!("{} exists: pick an empty --dir", wal_dir.display());
    }
    let options = Options::default()
        .sync(policy)
        .segment_bytes(args.segment_mib << 20);
    let shape = block_on(driver, calibrate(&dir.join("calibrate"), args.record_bytes))??;
    let line = if args.replay_mib > 0 {
        replay_bench(args, driver, &wal_dir, options, shape)?
    } else {
        append_bench(args, driver, &dir, &wal_dir, options, shape)?
    };
    println!("{line}");
    if args.dir.is_some() {
        std::fs::remove_dir_all(&wal_dir)?;
    }
    Ok(())
}

fn parse_sync(s: &str) -> anyhow::Result<SyncPolicy> {
    Ok(match s {
        "always" => SyncPolicy::Always,
        "never" => SyncPolicy::Never,
        _ => match s.strip_prefix("interval:").map(str::parse::<u64>) {
            Some(Ok(ms)) if ms > 0 => SyncPolicy::Interval(Duration::from_millis(ms)),
            _ => bail!("--sync is always, never or interval:<ms>, not {s:?}"),
        },
    })
}

fn block_on<F: Future>(driver: &str, fut: F) -> anyhow::Result<F::Output> {
    Ok(if driver == "legacy" {
        monoio::RuntimeBuilder::<monoio::LegacyDriver>::new()
            .enable_timer()
            .build()?
            .block_on(fut)
    } else {
        monoio::RuntimeBuilder::<monoio::IoUringDriver>::new()
            .enable_timer()
            .build()
            .context("building an io_uring runtime (try --driver legacy)")?
            .block_on(fut)
    })
}

/// The record every writer appends: one point whose vector makes the framed record
/// exactly `record_bytes` long.
#[derive(Debug, Clone, Copy)]
struct Shape {
    dim: u32,
    bytes: u64,
}

struct Payload {
    ids: Vec<String>,
    vectors: Vec<f32>,
    payloads: Vec<Vec<u8>>,
    dim: u32,
}

impl Payload {
    fn new(shape: Shape, writer: usize) -> Self {
        Self {
            ids: vec![format!("w{writer:08}")],
            vectors: (0..shape.dim)
                .map(|i| (i as f32 * 0.37 + writer as f32).sin())
                .collect(),
            payloads: vec![Vec::new()],
            dim: shape.dim,
        }
    }

    fn record(&self) -> Record<'_> {
        Record::Upsert(Upsert {
            ids: &self.ids,
            dim: self.dim,
            vectors: &self.vectors,
            payloads: &self.payloads,
        })
    }
}

/// Bytes one record of dimension `dim` adds to the log.
async fn footprint(wal: &Wal, dim: u32) -> anyhow::Result<u64> {
    let payload = Payload::new(Shape { dim, bytes: 0 }, 0);
    let before = wal.stats().bytes_on_disk;
    wal.append(payload.record()).await?;
    Ok(wal.stats().bytes_on_disk - before)
}

/// Finds the dimension whose record takes `target` bytes on disk, by appending to a
/// scratch log and reading its size.
async fn calibrate(dir: &Path, target: usize) -> anyhow::Result<Shape> {
    let target = target as u64;
    let wal = Wal::open(dir, Options::default().sync(SyncPolicy::Never)).await?;
    footprint(&wal, 1).await?; // the first record also pays for the segment header
    let smallest = footprint(&wal, 1).await?;
    ensure!(
        target >= smallest,
        "--record-bytes must be at least {smallest}"
    );
    // Four dimensions fill one 16-byte step of padding: start just below the target.
    let mut dim = 1 + ((target - smallest) / 4).saturating_sub(4) as u32;
    let found = loop {
        let bytes = footprint(&wal, dim).await?;
        if bytes >= target {
            break Shape { dim, bytes };
        }
        dim += 1;
    };
    wal.close().await?;
    drop(wal);
    std::fs::remove_dir_all(dir)?;
    ensure!(
        found.bytes == target,
        "no record is exactly {target} bytes; nearest {}",
        found.bytes
    );
    Ok(found)
}

fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000, 3).expect("valid histogram bounds")
}

/// One writer: `pwrite` one record, `fdatasync`, repeat.
fn raw_baseline(
    path: &Path,
    record_bytes: usize,
    seconds: f64,
    hist: &mut Histogram<u64>,
) -> anyhow::Result<u64> {
    let file = File::options()
        .create(true)
        .truncate(true)
        .write(true)
        .open(path)?;
    let buf = vec![0xA5u8; record_bytes];
    let deadline = Instant::now() + Duration::from_secs_f64(seconds);
    let mut n = 0u64;
    while Instant::now() < deadline {
        let t0 = Instant::now();
        file.write_all_at(&buf, n * record_bytes as u64)?;
        file.sync_data()?;
        hist.saturating_record(t0.elapsed().as_micros() as u64);
        n += 1;
    }
    drop(file);
    std::fs::remove_file(path)?;
    Ok(n)
}

fn append_bench(
    args: &Args,
    driver: &str,
    dir: &Path,
    wal_dir: &Path,
    options: Options,
    shape: Shape,
) -> anyhow::Result<serde_json::Value> {
    let raw_path = dir.join("raw-baseline.dat");
    let mut raw_hist = histogram();
    let half = args.seconds / 2.0;
    let t0 = Instant::now();
    let mut raw_n = raw_baseline(&raw_path, args.record_bytes, half, &mut raw_hist)?;
    let mut raw_secs = t0.elapsed().as_secs_f64();

    let (appends, elapsed, hist, stats) = block_on(
        driver,
        drive_log(wal_dir, options, shape, args.writers, args.seconds),
    )??;

    let t0 = Instant::now();
    raw_n += raw_baseline(&raw_path, args.record_bytes, half, &mut raw_hist)?;
    raw_secs += t0.elapsed().as_secs_f64();

    let appends_per_s = appends as f64 / elapsed;
    let raw_per_s = raw_n as f64 / raw_secs;
    let p99 = hist.value_at_quantile(0.99);
    let raw_p99 = raw_hist.value_at_quantile(0.99);
    Ok(serde_json::json!({
        "bench": "wal",
        "driver": driver,
        "sync": args.sync,
        "writers": args.writers,
        "record_bytes": shape.bytes,
        "seconds": elapsed,
        "appends": appends,
        "appends_per_s": appends_per_s,
        "mb_per_s": (appends * shape.bytes) as f64 / elapsed / 1e6,
        "syncs_per_s": stats.syncs as f64 / elapsed,
        "records_per_sync": if stats.syncs > 0 { appends as f64 / stats.syncs as f64 } else { 0.0 },
        "p50_us": hist.value_at_quantile(0.5),
        "p99_us": p99,
        "p999_us": hist.value_at_quantile(0.999),
        "raw_records_per_s": raw_per_s,
        "raw_p50_us": raw_hist.value_at_quantile(0.5),
        "raw_p99_us": raw_p99,
        "appends_vs_raw": appends_per_s / raw_per_s,
        "p99_vs_raw": p99 as f64 / raw_p99 as f64,
    }))
}

/// Drives the log with `writers` tasks for `seconds`; returns appends, elapsed seconds,
/// the acknowledgement latency histogram (µs) and the log's statistics.
async fn drive_log(
    dir: &Path,
    options: Options,
    shape: Shape,
    writers: usize,
    seconds: f64,
) -> anyhow::Result<(u64, f64, Histogram<u64>, vectron_wal::WalStats)> {
    let wal = Rc::new(Wal::open(dir, options).await?);
    let hist = Rc::new(RefCell::new(histogram()));
    let start = Instant::now();
    let deadline = start + Duration::from_secs_f64(seconds);
    let tasks: Vec<_> = (0..writers)
        .map(|w| {
            let (wal, hist) = (wal.clone(), hist.clone());
            monoio::spawn(async move {
                let payload = Payload::new(shape, w);
                let mut n = 0u64;
                while Instant::now() < deadline {
                    let t0 = Instant::now();
                    wal.append(payload.record()).await?;
                    hist.borrow_mut()
                        .saturating_record(t0.elapsed().as_micros() as u64);
                    n += 1;
                }
                anyhow::Ok(n)
            })
        })
        .collect();
    let mut appends = 0;
    for t in tasks {
        appends += t.await?;
    }
    let elapsed = start.elapsed().as_secs_f64();
    let stats = wal.stats();
    wal.close().await?;
    let hist = hist.borrow().clone();
    Ok((appends, elapsed, hist, stats))
}

fn segment_files(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let mut files: Vec<_> = std::fs::read_dir(dir)?
        .map(|e| e.map(|e| e.path()))
        .collect::<Result<_, _>>()?;
    files.retain(|p| p.extension().is_some_and(|e| e == "wal"));
    files.sort();
    Ok(files)
}

/// Drops the files' clean pages from the page cache, so the next read comes from disk.
fn evict(files: &[PathBuf]) -> anyhow::Result<()> {
    for path in files {
        let file = File::open(path)?;
        // SAFETY: `posix_fadvise` only reads its integer arguments; the descriptor is open
        // for the duration of the call.
        let rc = unsafe { libc::posix_fadvise(file.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) };
        ensure!(rc == 0, "posix_fadvise on {}: errno {rc}", path.display());
    }
    Ok(())
}

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    xs[xs.len() / 2]
}

fn replay_bench(
    args: &Args,
    driver: &str,
    wal_dir: &Path,
    options: Options,
    shape: Shape,
) -> anyhow::Result<serde_json::Value> {
    // Write the log fast (no sync per group), then make it durable once.
    let target = args.replay_mib << 20;
    let written = block_on(driver, async {
        let wal = Rc::new(Wal::open(wal_dir, options.sync(SyncPolicy::Never)).await?);
        let per_writer = target / shape.bytes / args.writers as u64 + 1;
        let tasks: Vec<_> = (0..args.writers)
            .map(|w| {
                let wal = wal.clone();
                monoio::spawn(async move {
                    let payload = Payload::new(shape, w);
                    for _ in 0..per_writer {
                        wal.append(payload.record()).await?;
                    }
                    anyhow::Ok(())
                })
            })
            .collect();
        for t in tasks {
            t.await?;
        }
        wal.sync().await?;
        let bytes = wal.stats().bytes_on_disk;
        wal.close().await?;
        anyhow::Ok(bytes)
    })??;
    let files = segment_files(wal_dir)?;
    let mb = written as f64 / 1e6;

    let replay_once = |cold: bool| -> anyhow::Result<(f64, u64)> {
        block_on(driver, async {
            let wal = Wal::open(wal_dir, options).await?;
            if cold {
                evict(&files)?;
            }
            let t0 = Instant::now();
            let mut replay = wal.replay(Lsn::ZERO)?;
            let (mut records, mut checksum) = (0u64, 0u32);
            while let Some(rec) = replay.next_record()? {
                if let BodyView::Upsert(u) = rec.body() {
                    // Touch what a shard touches: every id and every vector value, in place.
                    checksum ^= u.vectors().iter().fold(0, |acc, x| acc ^ x.to_bits());
                    checksum ^= u.ids().map(str::len).sum::<usize>() as u32;
                }
                records += 1;
            }
            let secs = t0.elapsed().as_secs_f64();
            drop(replay);
            wal.close().await?;
            std::hint::black_box(checksum);
            anyhow::Ok((secs, records))
        })?
    };
    let cat_once = |cold: bool| -> anyhow::Result<f64> {
        if cold {
            evict(&files)?;
        }
        let t0 = Instant::now();
        let status = Command::new("cat")
            .args(&files)
            .stdout(Stdio::null())
            .status()?;
        ensure!(status.success(), "cat failed: {status}");
        Ok(t0.elapsed().as_secs_f64())
    };

    let (mut replay_cold, mut cat_cold, mut replay_warm, mut cat_warm) =
        (vec![], vec![], vec![], vec![]);
    let mut records = 0;
    for round in 0..args.rounds.max(1) {
        // Alternate which goes first, so neither always follows the other.
        if round % 2 == 0 {
            let (s, n) = replay_once(true)?;
            replay_cold.push(mb / s);
            records = n;
            cat_cold.push(mb / cat_once(true)?);
        } else {
            cat_cold.push(mb / cat_once(true)?);
            let (s, n) = replay_once(true)?;
            replay_cold.push(mb / s);
            records = n;
        }
        cat_warm.push(mb / cat_once(false)?);
        replay_warm.push(mb / replay_once(false)?.0);
    }
    let (rc, cc, rw, cw) = (
        median(replay_cold),
        median(cat_cold),
        median(replay_warm),
        median(cat_warm),
    );
    Ok(serde_json::json!({
        "bench": "wal-replay",
        "driver": driver,
        "record_bytes": shape.bytes,
        "records": records,
        "segments": files.len(),
        "mb": mb,
        "rounds": args.rounds.max(1),
        "replay_mb_per_s": rc,
        "cat_mb_per_s": cc,
        "cat_vs_replay": cc / rc,
        "replay_warm_mb_per_s": rw,
        "cat_warm_mb_per_s": cw,
        "cat_vs_replay_warm": cw / rw,
    }))
}
