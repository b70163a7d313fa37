//! `vectron points upsert|get|delete|count`.

use std::io::IsTerminal as _;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use clap::{Args, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use tokio::sync::{Notify, mpsc};
use tokio_stream::Stream;
use vectron_client::api::{CountResponse, DeleteResponse, GetResponse};
use vectron_client::{Client, Filter, MAX_POINTS_PER_REQUEST, Point};

use super::input::{Format, InputError, Source};
use super::{CliError, Connection, DEFAULT_TIMEOUT, output};

/// Upsert points from fvecs, npy or JSON-lines files; get, count and delete points.
#[derive(Debug, Args)]
pub(crate) struct PointsArgs {
    #[command(subcommand)]
    command: PointsCommand,
    #[command(flatten)]
    connection: Connection,
}

#[derive(Debug, Subcommand)]
enum PointsCommand {
    /// Insert or replace points read from a file (fvecs, npy or JSON lines).
    ///
    /// The points travel over one streamed call, in batches of --batch. The file is .fvecs (rows of an i32 dimension and that many f32, little-endian),
    /// .npy (a 2-D float32 array in C order) or .jsonl / .ndjson (one
    /// {"id": ..., "vector": [...], "payload": {...}} object per line). Rows of fvecs and
    /// npy files get their row number (from 0) as id, after --id-prefix, and their
    /// payloads from --payloads. Every row is read and checked before anything is sent:
    /// a wrong dimension, a NaN or infinite value, bad JSON, a missing payload line or an
    /// id that appears twice fails with its row (binary files, from 0) or line (text files, from 1) and
    /// writes nothing. Points are durable when the summary line is printed.
    Upsert(UpsertArgs),
    /// Read points by id.
    ///
    /// Prints one line per point found: id, payload and, with --with-vector, the
    /// stored vector. Ids that do not exist are left out and named on stderr.
    Get {
        /// The collection.
        collection: String,
        /// Ids of the points.
        #[arg(required = true)]
        ids: Vec<String>,
        /// Also print the stored vectors (normalised for a cosine collection).
        #[arg(long)]
        with_vector: bool,
    },
    /// Delete points by id, or every point passing --filter; prints how many existed.
    Delete {
        /// The collection.
        collection: String,
        /// Ids of the points.
        #[arg(required_unless_present = "filter", conflicts_with = "filter")]
        ids: Vec<String>,
        /// Delete every point passing this filter, in the JSON shape of the HTTP API:
        /// '{"must": [{"field": {"key": "year", "range": {"lt": 1900}}}]}'.
        #[arg(long, value_name = "JSON")]
        filter: Option<String>,
    },
    /// Count the points of a collection exactly, or those passing --filter.
    Count {
        /// The collection.
        collection: String,
        /// Count only the points passing this filter (JSON, as for search).
        #[arg(long, value_name = "JSON")]
        filter: Option<String>,
    },
}

#[derive(Debug, Args)]
struct UpsertArgs {
    /// The collection to write to; it must exist.
    collection: String,
    /// File of points: .fvecs, .npy or .jsonl (see --format).
    #[arg(long, short = 'f')]
    file: PathBuf,
    /// Layout of --file [default: from its extension].
    #[arg(long, value_enum)]
    format: Option<Format>,
    /// JSON-lines file of payloads for a fvecs or npy file: line i+1 is the payload of
    /// row i (an object, or null for none).
    #[arg(long, value_name = "FILE")]
    payloads: Option<PathBuf>,
    /// Prefix of the ids given to fvecs and npy rows: row 7 becomes PREFIX7.
    #[arg(long, default_value = "")]
    id_prefix: String,
    /// Points per streamed message (1 to 10000).
    #[arg(long, default_value_t = 500)]
    batch: usize,
}

impl PointsArgs {
    pub(crate) fn json(&self) -> bool {
        self.connection.json
    }

    pub(crate) async fn run(self) -> Result<(), CliError> {
        let json = self.connection.json;
        match self.command {
            PointsCommand::Upsert(args) => {
                // A bulk upload is not bounded by a per-call deadline unless asked.
                let client = self.connection.connect(None).await?;
                upsert(&client, args, json).await
            }
            PointsCommand::Get {
                collection,
                ids,
                with_vector,
            } => {
                let client = self.connection.connect(Some(DEFAULT_TIMEOUT)).await?;
                let points = client
                    .get(&collection, ids.clone(), with_vector, true)
                    .await?;
                let missing: Vec<&String> = ids
                    .iter()
                    .filter(|id| !points.iter().any(|p| &p.id == *id))
                    .collect();
                if json {
                    output::print_json(&GetResponse { points });
                } else {
                    for p in points {
                        let mut line = format!("{}\t{}", p.id, output::payload(p.payload));
                        if with_vector {
                            line.push('\t');
                            line.push_str(&output::vector(&p.vector));
                        }
                        output::text(&format!("{line}\n"));
                    }
                }
                if !missing.is_empty() && !json {
                    let names: Vec<&str> = missing.iter().map(|s| s.as_str()).collect();
                    eprintln!("not found: {}", names.join(", "));
                }
                Ok(())
            }
            PointsCommand::Delete {
                collection,
                ids,
                filter,
            } => {
                let filter = filter
                    .as_deref()
                    .map(|f| parse_filter(f, "filter"))
                    .transpose()?;
                let client = self.connection.connect(Some(DEFAULT_TIMEOUT)).await?;
                let deleted = match filter {
                    Some(filter) => client.delete_filter(&collection, filter).await?,
                    None => client.delete_ids(&collection, ids).await?,
                };
                if json {
                    output::print_json(&DeleteResponse { deleted });
                } else {
                    output::text(&format!("deleted {deleted} {}\n", points_word(deleted)));
                }
                Ok(())
            }
            PointsCommand::Count { collection, filter } => {
                let filter = filter
                    .as_deref()
                    .map(|f| parse_filter(f, "filter"))
                    .transpose()?;
                let client = self.connection.connect(Some(DEFAULT_TIMEOUT)).await?;
                let count = client.count(&collection, filter).await?;
                if json {
                    output::print_json(&CountResponse { count });
                } else {
                    output::text(&format!("{count}\n"));
                }
                Ok(())
            }
        }
    }
}

/// A filter in the JSON shape of the HTTP API.
pub(super) fn parse_filter(text: &str, flag: &'static str) -> Result<Filter, CliError> {
    let value: serde_json::Value = serde_json::from_str(text).map_err(|e| CliError::Flag {
        flag,
        reason: format!("not JSON: {e}"),
    })?;
    vectron_proto::json::from_json(&value).map_err(|source| CliError::Json {
        flag,
        what: "filter",
        source,
    })
}

/// What the reader thread hands to the stream.
enum Message {
    Batch(Vec<Point>),
    Failed(InputError),
    Done,
}

/// The batches of an upload as the SDK's client stream. It ends only after the
/// reader's `Done`: a failed or vanished reader leaves the stream pending forever and
/// says so through `failed`, so the caller abandons (cancels) the call instead of
/// letting a partial upload end as if it were whole.
struct Batches {
    rx: mpsc::Receiver<Message>,
    failed: Arc<(Mutex<Option<CliError>>, Notify)>,
    progress: ProgressBar,
    stopped: bool,
}

impl Batches {
    fn stop(&mut self, error: CliError) {
        self.stopped = true;
        *self.failed.0.lock().unwrap_or_else(|e| e.into_inner()) = Some(error);
        self.failed.1.notify_one();
    }
}

impl Stream for Batches {
    type Item = Vec<Point>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Vec<Point>>> {
        let this = self.get_mut();
        if this.stopped {
            return Poll::Pending;
        }
        match this.rx.poll_recv(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Some(Message::Batch(points))) => {
                this.progress.inc(points.len() as u64);
                Poll::Ready(Some(points))
            }
            Poll::Ready(Some(Message::Done)) => Poll::Ready(None),
            Poll::Ready(Some(Message::Failed(e))) => {
                this.stop(CliError::Input(e));
                Poll::Pending
            }
            Poll::Ready(None) => {
                this.stop(CliError::ReaderLost);
                Poll::Pending
            }
        }
    }
}

async fn upsert(client: &Client, args: UpsertArgs, json: bool) -> Result<(), CliError> {
    if args.batch == 0 || args.batch > MAX_POINTS_PER_REQUEST {
        return Err(CliError::Flag {
            flag: "batch",
            reason: format!(
                "{} is not between 1 and {MAX_POINTS_PER_REQUEST}",
                args.batch
            ),
        });
    }
    let format = match args.format {
        Some(f) => f,
        None => Format::of_path(&args.file)?,
    };
    if format == Format::Jsonl && args.payloads.is_some() {
        return Err(CliError::Flag {
            flag: "payloads",
            reason: "goes with fvecs and npy files; JSON-lines points carry their own payload"
                .into(),
        });
    }
    // The collection first: an unknown one fails before the file is read, and the
    // rows are checked against its dimension.
    let info = client.describe_collection(&args.collection).await?;
    let spec = info.spec.unwrap_or_default();
    let source = Source {
        path: args.file,
        format,
        payloads: args.payloads,
        id_prefix: args.id_prefix,
        dimension: spec.dimension as usize,
        cosine: spec.metric() == vectron_client::api::Metric::Cosine,
    };
    let terminal = std::io::stderr().is_terminal();

    // Pass 1: read and check every row; nothing is sent before the whole file passes.
    let checking = source.clone();
    let spinner = progress(terminal, None, "checking");
    let counter = spinner.clone();
    let rows = tokio::task::spawn_blocking(move || -> Result<u64, InputError> {
        let mut n = 0u64;
        for point in checking.open()? {
            point?;
            n += 1;
            if n.is_multiple_of(10_000) {
                counter.set_position(n);
            }
        }
        Ok(n)
    })
    .await
    .map_err(|_| CliError::ReaderLost)??;
    spinner.finish_and_clear();

    // Pass 2: a reader thread batches the rows into the client stream.
    let bar = progress(terminal, Some(rows), "upserting");
    let (tx, rx) = mpsc::channel(4);
    let batch = args.batch;
    let reader = tokio::task::spawn_blocking(move || {
        let rows = match source.open() {
            Ok(rows) => rows,
            Err(e) => {
                let _ = tx.blocking_send(Message::Failed(e));
                return;
            }
        };
        let mut points = Vec::with_capacity(batch);
        for point in rows {
            match point {
                Ok(p) => points.push(p),
                Err(e) => {
                    let _ = tx.blocking_send(Message::Failed(e));
                    return;
                }
            }
            if points.len() == batch {
                let full = std::mem::replace(&mut points, Vec::with_capacity(batch));
                if tx.blocking_send(Message::Batch(full)).is_err() {
                    return;
                }
            }
        }
        if !points.is_empty() && tx.blocking_send(Message::Batch(points)).is_err() {
            return;
        }
        let _ = tx.blocking_send(Message::Done);
    });
    let failed = Arc::new((Mutex::new(None), Notify::new()));
    let batches = Batches {
        rx,
        failed: failed.clone(),
        progress: bar.clone(),
        stopped: false,
    };
    let started = Instant::now();
    let answer = tokio::select! {
        answer = client.upsert_stream(&args.collection, batches) => answer,
        () = failed.1.notified() => {
            bar.abandon();
            let error = failed.0.lock().unwrap_or_else(|e| e.into_inner()).take();
            return Err(error.unwrap_or(CliError::ReaderLost));
        }
    };
    bar.finish_and_clear();
    let _ = reader.await;
    let answer = answer?;
    let seconds = started.elapsed().as_secs_f64();
    let rate = answer.count as f64 / seconds.max(1e-9);
    if json {
        let mut doc = vectron_proto::json::to_json(&answer);
        doc["seconds"] = serde_json::json!(seconds);
        doc["points_per_s"] = serde_json::json!(rate.round());
        output::print_value(&doc);
    } else {
        let durable = if answer.durable {
            ""
        } else {
            ", not yet durable"
        };
        output::text(&format!(
            "upserted {} {} into {} in {seconds:.2} s ({rate:.0} points/s){durable}\n",
            answer.count,
            points_word(answer.count),
            args.collection
        ));
    }
    Ok(())
}

fn points_word(n: u64) -> &'static str {
    if n == 1 { "point" } else { "points" }
}

/// A progress bar on stderr when it is a terminal, else nothing.
fn progress(terminal: bool, len: Option<u64>, what: &'static str) -> ProgressBar {
    if !terminal {
        return ProgressBar::hidden();
    }
    let bar = match len {
        Some(len) => ProgressBar::new(len).with_style(
            ProgressStyle::with_template(
                "{msg} {wide_bar} {human_pos}/{human_len} points, {elapsed} elapsed, eta {eta}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
        ),
        None => ProgressBar::new_spinner().with_style(
            ProgressStyle::with_template("{spinner} {msg} {human_pos} rows")
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        ),
    };
    bar.set_message(what);
    bar.enable_steady_tick(Duration::from_millis(100));
    bar
}

#[cfg(test)]
mod tests {
    use tokio_stream::StreamExt as _;

    use super::*;
    use crate::cli::input::Place;

    fn batches() -> (mpsc::Sender<Message>, Batches) {
        let (tx, rx) = mpsc::channel(4);
        let batches = Batches {
            rx,
            failed: Arc::new((Mutex::new(None), Notify::new())),
            progress: ProgressBar::hidden(),
            stopped: false,
        };
        (tx, batches)
    }

    async fn stalls(batches: &mut Batches) -> bool {
        tokio::time::timeout(Duration::from_millis(50), batches.next())
            .await
            .is_err()
    }

    #[tokio::test]
    async fn the_stream_ends_only_after_the_readers_done() {
        let (tx, mut b) = batches();
        tx.send(Message::Batch(vec![Point::new("a", vec![1.0])]))
            .await
            .unwrap();
        tx.send(Message::Done).await.unwrap();
        assert_eq!(b.next().await.unwrap().len(), 1);
        assert!(b.next().await.is_none());
        assert!(b.failed.0.lock().unwrap().is_none());
    }

    #[tokio::test]
    async fn a_failed_reader_stalls_the_stream_and_says_why() {
        let (tx, mut b) = batches();
        let failed = b.failed.clone();
        tx.send(Message::Batch(vec![Point::new("a", vec![1.0])]))
            .await
            .unwrap();
        tx.send(Message::Failed(InputError::Truncated {
            path: "a.fvecs".into(),
            at: Place::Row(1),
        }))
        .await
        .unwrap();
        assert!(b.next().await.is_some());
        assert!(stalls(&mut b).await, "the stream must not end");
        failed.1.notified().await;
        let error = failed.0.lock().unwrap().take();
        assert!(matches!(
            error,
            Some(CliError::Input(InputError::Truncated { .. }))
        ));
    }

    #[tokio::test]
    async fn a_vanished_reader_is_no_end_of_input() {
        let (tx, mut b) = batches();
        drop(tx);
        assert!(stalls(&mut b).await, "the stream must not end");
        assert!(matches!(
            b.failed.0.lock().unwrap().take(),
            Some(CliError::ReaderLost)
        ));
    }
}
