//! The command-line client: `vectron collections`, `vectron points`, `vectron search` and
//! `vectron keys` talk to a gateway through the Rust SDK (`vectron-client`), one process
//! per command.
//!
//! ```text
//! flags ──► Connection ──► vectron_client::Client ──► gateway (gRPC)
//!   │                                                     │
//!   └─ points upsert: input::Rows (fvecs | npy | jsonl, + payloads.jsonl)
//!        pass 1: read and check every row, send nothing
//!        pass 2: reader thread ─ batches ─► UpsertStream ─► one answer, once durable
//! answers ──► output: text, or `--json` (the HTTP API's JSON shapes)
//! ```
//!
//! A failure prints one line on stderr, `error: CODE: message` for an answer of the
//! server (the gRPC code name, as the HTTP API names it) or `error: what: why` for a
//! local problem, and the process exits with status 1.

mod collections;
mod input;
mod keys;
mod output;
mod plans;
mod points;
mod search;
mod tune;
mod users;

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use vectron_client::Client;

pub(crate) use collections::CollectionsArgs;
pub(crate) use keys::KeysArgs;
pub(crate) use plans::PlansArgs;
pub(crate) use points::PointsArgs;
pub(crate) use search::SearchArgs;
pub(crate) use tune::TuneArgs;
pub(crate) use users::{LoginArgs, UsersArgs};

/// Deadline of a call when `--timeout` is not given.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// Where the gateway is and how to talk to it; shared by every client command.
#[derive(Debug, Args)]
#[command(next_help_heading = "Connection and output")]
pub(crate) struct Connection {
    /// Gateway gRPC address: http://HOST:PORT, https://HOST:PORT (TLS), or HOST:PORT.
    #[arg(
        long,
        env = "VECTRON_ADDR",
        default_value = "http://127.0.0.1:6334",
        global = true
    )]
    addr: String,
    /// Deadline of each call, such as 500ms, 30s or 2m; 0 waits forever
    /// [default: 30s; none for `points upsert`].
    #[arg(long, env = "VECTRON_TIMEOUT", value_parser = parse_duration, global = true)]
    timeout: Option<Duration>,
    /// PEM file of the certificate authority to trust for an https:// address
    /// [default: the system's root certificates].
    #[arg(long, env = "VECTRON_CA_CERT", global = true)]
    ca_cert: Option<PathBuf>,
    /// API key to send with every call, for a gateway with authentication on.
    #[arg(long, env = "VECTRON_API_KEY", hide_env_values = true, global = true)]
    api_key: Option<String>,
    /// Print one JSON document, in the shapes of the HTTP API, instead of text.
    #[arg(long, global = true)]
    json: bool,
}

impl Connection {
    /// Connects with the given deadline when `--timeout` was not given.
    async fn connect(&self, default_timeout: Option<Duration>) -> Result<Client, CliError> {
        let timeout = match self.timeout {
            Some(t) if t.is_zero() => None,
            Some(t) => Some(t),
            None => default_timeout,
        };
        let mut builder = Client::builder(self.addr.clone()).timeout(timeout);
        if let Some(path) = &self.ca_cert {
            let pem = std::fs::read(path).map_err(|source| CliError::Read {
                path: path.clone(),
                source,
            })?;
            builder = builder.tls(vectron_client::Tls::new().ca_certificate_pem(pem));
        }
        if let Some(key) = &self.api_key {
            builder = builder.api_key(key)?;
        }
        Ok(builder.connect().await?)
    }
}

/// What a client command can fail with.
#[derive(Debug, thiserror::Error)]
pub(crate) enum CliError {
    /// The server (or the connection to it) failed the call.
    #[error(transparent)]
    Api(#[from] vectron_client::Error),
    /// A file given on the command line could not be read.
    #[error("cannot read {}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A file of points or payloads holds something that cannot be sent.
    #[error(transparent)]
    Input(#[from] input::InputError),
    /// A flag's value is not usable.
    #[error("--{flag}: {reason}")]
    Flag { flag: &'static str, reason: String },
    /// A JSON flag does not parse as the message it stands for.
    #[error("--{flag} is not a valid {what}")]
    Json {
        flag: &'static str,
        what: &'static str,
        #[source]
        source: vectron_proto::json::JsonError,
    },
    /// The upload's reader thread died (a bug).
    #[error("the file reader stopped unexpectedly")]
    ReaderLost,
}

/// One client command.
#[derive(Debug)]
pub(crate) enum Action {
    Collections(CollectionsArgs),
    Keys(KeysArgs),
    Users(UsersArgs),
    Login(LoginArgs),
    Plans(PlansArgs),
    Points(PointsArgs),
    Search(SearchArgs),
    Tune(TuneArgs),
}

/// Runs a client command on `runtime`; on failure prints the error and exits with
/// status 1.
pub(crate) fn run(runtime: &tokio::runtime::Runtime, action: Action) {
    let (json, result) = match action {
        Action::Collections(args) => (args.json(), runtime.block_on(args.run())),
        Action::Keys(args) => (args.json(), runtime.block_on(args.run())),
        Action::Users(args) => (args.json(), runtime.block_on(args.run())),
        Action::Login(args) => (args.json(), runtime.block_on(args.run())),
        Action::Plans(args) => (args.json(), runtime.block_on(args.run())),
        Action::Points(args) => (args.json(), runtime.block_on(args.run())),
        Action::Search(args) => (args.json(), runtime.block_on(args.run())),
        Action::Tune(args) => (args.json(), runtime.block_on(args.run())),
    };
    if let Err(e) = result {
        output::print_error(&e, json);
        std::process::exit(1);
    }
}

/// `500ms`, `30s`, `2m`, or a bare number of seconds.
fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let value: f64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a duration such as 500ms, 30s or 2m"))?;
    let seconds = match unit.trim() {
        "ms" => value / 1000.0,
        "" | "s" => value,
        "m" => value * 60.0,
        "h" => value * 3600.0,
        other => return Err(format!("unknown unit {other:?}: use ms, s, m or h")),
    };
    Duration::try_from_secs_f64(seconds).map_err(|e| format!("{text:?}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_with_units() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("2"), Ok(Duration::from_secs(2)));
        assert_eq!(parse_duration("1.5m"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("0"), Ok(Duration::ZERO));
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("3 days").is_err());
        assert!(parse_duration("").is_err());
    }
}
