//! Quickstart: connect to a running Vectron, create a collection, upsert a few points
//! with payloads, and search with a filter.
//!
//! ```text
//! cargo run --release -- dev                           # one terminal: a whole Vectron
//! cargo run -p vectron-client --example quickstart     # another: this program
//! ```
//!
//! `VECTRON_ADDR` points it at another gateway (default `http://127.0.0.1:6334`).

use serde_json::json;
use vectron_client::{
    Client, CollectionSpec, Condition, Error, Filter, Metric, PayloadFieldKind, PayloadIndex,
    Point, ScoredPoint, SearchRequest, payload,
};

#[tokio::main]
async fn main() -> Result<(), Error> {
    let addr = std::env::var("VECTRON_ADDR").unwrap_or_else(|_| "http://127.0.0.1:6334".to_owned());
    let hits = run(&addr, "quickstart").await?;
    println!("science fiction closest to the query:");
    for hit in hits {
        let payload = hit.payload.map(payload::from_struct).unwrap_or_default();
        println!("  {:>3}  {:.3}  {}", hit.id, hit.score, payload["title"]);
    }
    Ok(())
}

/// The whole walk-through against the gateway at `addr`, in `collection`; returns the
/// hits of the filtered search.
pub async fn run(addr: &str, collection: &str) -> Result<Vec<ScoredPoint>, Error> {
    let client = Client::connect(addr).await?;

    // 4-dimensional vectors compared by cosine similarity, with an index on `genre`
    // (filters work on any payload field; an index makes them fast).
    let mut spec = CollectionSpec::new(collection, 4, Metric::Cosine);
    spec.payload_indexes.push(PayloadIndex {
        field: "genre".into(),
        kind: PayloadFieldKind::Keyword.into(),
    });
    match client.create_collection(spec).await {
        // Running the example twice finds the collection already there.
        Ok(_) | Err(Error::AlreadyExists(_)) => {}
        Err(e) => return Err(e),
    }

    // Upserts are idempotent: a point with the same id is replaced.
    let books = [
        (
            "1",
            [0.9, 0.1, 0.0, 0.1],
            json!({"title": "Dune", "genre": "sci-fi", "year": 1965}),
        ),
        (
            "2",
            [0.8, 0.3, 0.1, 0.0],
            json!({"title": "Solaris", "genre": "sci-fi", "year": 1961}),
        ),
        (
            "3",
            [0.9, 0.2, 0.0, 0.0],
            json!({"title": "Emma", "genre": "novel", "year": 1815}),
        ),
        (
            "4",
            [0.1, 0.9, 0.3, 0.0],
            json!({"title": "Neuromancer", "genre": "sci-fi", "year": 1984}),
        ),
        (
            "5",
            [0.0, 0.1, 0.9, 0.4],
            json!({"title": "Middlemarch", "genre": "novel", "year": 1871}),
        ),
    ];
    let mut points = Vec::new();
    for (id, vector, doc) in books {
        points.push(Point::new(id, vector.to_vec()).with_payload(payload::to_struct(doc)?));
    }
    // Answers once the points are durable and visible to searches.
    client.upsert(collection, points).await?;

    // The three nearest science-fiction books: "Emma" is close to the query but
    // filtered out.
    let request = SearchRequest::new(collection, vec![0.9, 0.2, 0.0, 0.05], 3)
        .with_filter(Filter::must([Condition::keyword("genre", "sci-fi")]))
        .with_payload();
    Ok(client.search(request).await?.hits)
}
