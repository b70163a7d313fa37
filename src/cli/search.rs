//! `vectron search`.

use std::path::PathBuf;

use clap::{ArgGroup, Args};
use vectron_client::{SearchRequest, SearchResponse};

use super::points::parse_filter;
use super::{CliError, Connection, DEFAULT_TIMEOUT, output};

/// Top-k similarity search in a collection, optionally filtered.
///
/// Finds the k points most similar to a query vector, best first. The query is given
/// inline (--vector), in a JSON file (--vector-file) or as the stored vector of a point
/// (--from-id; that point is then usually the top hit). Scores are similarities: higher
/// is closer, for every metric.
///
/// Example: vectron search articles --from-id 42 --k 5 --with-payload
/// --filter '{"must": [{"field": {"key": "title", "keyword": "Moon"}}]}'
#[derive(Debug, Args)]
#[command(group(ArgGroup::new("query").required(true).args(["vector", "vector_file", "from_id"])))]
pub(crate) struct SearchArgs {
    /// The collection to search.
    collection: String,
    /// The query vector, comma-separated: "0.12,-0.03,0.27".
    #[arg(long, value_name = "FLOATS", allow_hyphen_values = true)]
    vector: Option<String>,
    /// JSON file holding the query vector: an array of numbers, or an object with a
    /// "vector" array (a line of a JSON-lines points file).
    #[arg(long, value_name = "FILE")]
    vector_file: Option<PathBuf>,
    /// Search with the stored vector of this point.
    #[arg(long, value_name = "ID")]
    from_id: Option<String>,
    /// How many hits (1 to 10000).
    #[arg(long, short = 'k', default_value_t = 10)]
    k: u32,
    /// Candidate list size: higher finds more of the true nearest neighbours, slower
    /// [default: the collection's].
    #[arg(long, conflicts_with = "exact")]
    ef: Option<u32>,
    /// Brute force over every point instead of the graph: the true top k, at a cost in
    /// proportion to the collection's size. The ground truth to check recall against.
    #[arg(long)]
    exact: bool,
    /// Keep only points passing this filter, in the JSON shape of the HTTP API:
    /// '{"must": [{"field": {"key": "year", "range": {"gte": 1960}}}]}'.
    #[arg(long, value_name = "JSON")]
    filter: Option<String>,
    /// Print the payloads of the hits.
    #[arg(long)]
    with_payload: bool,
    /// Print the stored vectors of the hits.
    #[arg(long)]
    with_vector: bool,
    /// Show the hits as the shards answer: each time the best hits so far change, then
    /// the answer. With --json, one JSON object per event (the last has "done": true).
    #[arg(long)]
    stream: bool,
    #[command(flatten)]
    connection: Connection,
}

impl SearchArgs {
    pub(crate) fn json(&self) -> bool {
        self.connection.json
    }

    pub(crate) async fn run(self) -> Result<(), CliError> {
        let filter = self
            .filter
            .as_deref()
            .map(|f| parse_filter(f, "filter"))
            .transpose()?;
        let inline = match (&self.vector, &self.vector_file) {
            (Some(text), _) => Some(parse_vector(text)?),
            (None, Some(path)) => Some(read_vector_file(path)?),
            (None, None) => None,
        };
        let client = self.connection.connect(Some(DEFAULT_TIMEOUT)).await?;
        let vector = match (inline, &self.from_id) {
            (Some(v), _) => v,
            (None, Some(id)) => {
                let found = client
                    .get(&self.collection, vec![id.clone()], true, false)
                    .await?;
                match found.into_iter().next() {
                    Some(p) => p.vector,
                    None => {
                        return Err(vectron_client::Error::NotFound(format!(
                            "no point {id:?} in collection {:?}",
                            self.collection
                        ))
                        .into());
                    }
                }
            }
            (None, None) => {
                return Err(CliError::Flag {
                    flag: "vector",
                    reason: "give the query as --vector, --vector-file or --from-id".into(),
                });
            }
        };
        let mut request = SearchRequest::new(&self.collection, vector, self.k);
        request.ef = self.ef;
        request.exact = self.exact;
        request.filter = filter;
        request.with_payload = self.with_payload;
        request.with_vector = self.with_vector;
        if self.stream {
            let mut events = client.search_stream(request).await?;
            while let Some(event) = events.next().await {
                let event = event?;
                if self.connection.json {
                    output::print_json_line(&event);
                    continue;
                }
                output::text(&format!(
                    "{} of {} shards answered{}\n",
                    event.shards_answered,
                    event.shards_total,
                    if event.done { "" } else { " (partial)" }
                ));
                self.print(event.result.unwrap_or_default());
            }
            return Ok(());
        }
        let answer = client.search(request).await?;
        if self.connection.json {
            output::print_json(&answer);
            return Ok(());
        }
        self.print(answer);
        Ok(())
    }

    fn print(&self, answer: SearchResponse) {
        if answer.hits.is_empty() {
            output::text("no hits\n");
        }
        for (rank, hit) in answer.hits.into_iter().enumerate() {
            let mut line = format!("{:>3}  {:<20} {:.6}", rank + 1, hit.id, hit.score);
            if self.with_payload {
                line.push_str("  ");
                line.push_str(&output::payload(hit.payload));
            }
            if self.with_vector {
                line.push_str("  ");
                line.push_str(&output::vector(&hit.vector));
            }
            output::text(&format!("{line}\n"));
        }
        if !answer.missing_shards.is_empty() {
            eprintln!("missing shards: {:?}", answer.missing_shards);
        }
    }
}

/// `"0.1, 0.2,-0.3"` → a vector (the dimension is the server's to check).
fn parse_vector(text: &str) -> Result<Vec<f32>, CliError> {
    let bad = |reason: String| CliError::Flag {
        flag: "vector",
        reason,
    };
    let text = text.trim().trim_start_matches('[').trim_end_matches(']');
    text.split(',')
        .map(|item| {
            let item = item.trim();
            let v: f32 = item
                .parse()
                .map_err(|_| bad(format!("{item:?} is not a number")))?;
            if v.is_finite() {
                Ok(v)
            } else {
                Err(bad(format!("{item:?} is not a finite number")))
            }
        })
        .collect()
}

fn read_vector_file(path: &PathBuf) -> Result<Vec<f32>, CliError> {
    let text = std::fs::read_to_string(path).map_err(|source| CliError::Read {
        path: path.clone(),
        source,
    })?;
    let bad = |reason: String| CliError::Flag {
        flag: "vector-file",
        reason: format!("{}: {reason}", path.display()),
    };
    let value: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| bad(format!("not JSON: {e}")))?;
    let array = match &value {
        serde_json::Value::Object(o) => o.get("vector"),
        array @ serde_json::Value::Array(_) => Some(array),
        _ => None,
    };
    let Some(serde_json::Value::Array(items)) = array else {
        return Err(bad(
            "holds neither an array of numbers nor an object with a \"vector\" array".into(),
        ));
    };
    items
        .iter()
        .enumerate()
        .map(|(i, v)| match v.as_f64().map(|f| f as f32) {
            Some(f) if f.is_finite() => Ok(f),
            _ => Err(bad(format!("value {i} is not a finite number: {v}"))),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inline_vectors_parse_with_or_without_brackets() {
        assert_eq!(parse_vector("0.5,-1, 2").unwrap(), vec![0.5, -1.0, 2.0]);
        assert_eq!(parse_vector("[1, 2]").unwrap(), vec![1.0, 2.0]);
        assert!(parse_vector("1,x").is_err());
        assert!(parse_vector("1,NaN").is_err());
        assert!(parse_vector("").is_err());
    }

    #[test]
    fn vector_files_hold_an_array_or_a_point() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("q.json");
        std::fs::write(&path, "[0.25, 1]").unwrap();
        assert_eq!(read_vector_file(&path).unwrap(), vec![0.25, 1.0]);
        std::fs::write(&path, r#"{"id": "a", "vector": [3]}"#).unwrap();
        assert_eq!(read_vector_file(&path).unwrap(), vec![3.0]);
        std::fs::write(&path, r#"{"id": "a"}"#).unwrap();
        assert!(read_vector_file(&path).is_err());
        std::fs::write(&path, r#"[1, "x"]"#).unwrap();
        assert!(read_vector_file(&path).is_err());
    }
}
