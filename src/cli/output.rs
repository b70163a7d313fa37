//! How answers and errors are printed: text for people, or one JSON document in the
//! shapes of the HTTP API (`vectron_proto::json`), so a script can switch between the
//! CLI and curl without rewriting its parsing.

use prost::{Message, Name};

use vectron_proto::rules::code_name;

use super::CliError;

/// Prints `message` as its JSON form on stdout.
pub(super) fn print_json<M: Message + Name>(message: &M) {
    let mut value = vectron_proto::json::to_json(message);
    integral_payload_numbers(&mut value);
    print_value(&value);
}

/// Prints `message` as one line of JSON: the events of a stream, one per line.
pub(super) fn print_json_line<M: Message + Name>(message: &M) {
    let mut value = vectron_proto::json::to_json(message);
    integral_payload_numbers(&mut value);
    text(&format!("{value}\n"));
}

/// On the wire a payload number is a double; the HTTP API gives back the JSON a client
/// wrote, where `1969` stays `1969`. Payloads printed here read the same: integral
/// values within 2^53 become integers again.
fn integral_payload_numbers(value: &mut serde_json::Value) {
    match value {
        serde_json::Value::Object(map) => {
            for (key, v) in map.iter_mut() {
                if key == "payload" {
                    integral_numbers(v);
                } else {
                    integral_payload_numbers(v);
                }
            }
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(integral_payload_numbers),
        _ => {}
    }
}

fn integral_numbers(value: &mut serde_json::Value) {
    const EXACT_INT: f64 = 9_007_199_254_740_992.0; // 2^53
    match value {
        serde_json::Value::Number(n) => {
            if let Some(f) = n.as_f64()
                && !n.is_i64()
                && !n.is_u64()
                && f.fract() == 0.0
                && f.abs() <= EXACT_INT
            {
                *value = serde_json::Value::from(f as i64);
            }
        }
        serde_json::Value::Object(map) => map.values_mut().for_each(integral_numbers),
        serde_json::Value::Array(items) => items.iter_mut().for_each(integral_numbers),
        _ => {}
    }
}

/// Prints a JSON value on stdout, pretty.
pub(super) fn print_value(value: &serde_json::Value) {
    let mut doc = serde_json::to_string_pretty(value).unwrap_or_else(|_| value.to_string());
    doc.push('\n');
    text(&doc);
}

/// Prints `message` as JSON with `--json`, else `line` (a newline is added).
pub(super) fn answer<M: Message + Name>(json: bool, message: &M, line: impl FnOnce() -> String) {
    if json {
        print_json(message);
    } else {
        text(&format!("{}\n", line()));
    }
}

/// Prints a listing: `message` as JSON with `--json`, else one `line` per item, or
/// `none` when there are none.
pub(super) fn listing<M: Message + Name, T>(
    json: bool,
    message: &M,
    items: &[T],
    line: impl Fn(&T) -> String,
    none: &str,
) {
    if json {
        print_json(message);
    } else if items.is_empty() {
        text(&format!("{none}\n"));
    } else {
        let lines: Vec<String> = items.iter().map(line).collect();
        text(&format!("{}\n", lines.join("\n")));
    }
}

/// Writes `text` to stdout. When the reader has gone (`vectron … | head`), the process
/// ends quietly, as Unix tools do, instead of panicking in `println!`.
pub(super) fn text(text: &str) {
    use std::io::Write as _;
    let mut out = std::io::stdout().lock();
    if let Err(e) = out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(0);
        }
        eprintln!("error: cannot write the answer: {e}");
        std::process::exit(1);
    }
}

/// A payload on one line, or `-` when there is none.
pub(super) fn payload(payload: Option<prost_types::Struct>) -> String {
    payload.map_or_else(
        || "-".to_owned(),
        |p| vectron_client::payload::from_struct(p).to_string(),
    )
}

/// A vector on one line: `[0.1, -0.2, …]`.
pub(super) fn vector(v: &[f32]) -> String {
    let items: Vec<String> = v.iter().map(f32::to_string).collect();
    format!("[{}]", items.join(", "))
}

/// `error: CODE: message` for a failed call, `error: what: why: …` for anything
/// else, on stderr; with `json`, `{"error": {"code", "message"}}` as the HTTP API
/// answers (code `null` for a local problem).
pub(super) fn print_error(e: &CliError, json: bool) {
    let (code, message) = match e {
        CliError::Api(api) => (
            Some(code_name(api.code())),
            api.server_message()
                .map_or_else(|| chain(api), str::to_owned),
        ),
        other => (None, chain(other)),
    };
    if json {
        eprintln!(
            "{}",
            serde_json::json!({"error": {"code": code, "message": message}})
        );
    } else if let Some(code) = code {
        eprintln!("error: {code}: {message}");
    } else {
        eprintln!("error: {message}");
    }
}

/// An error and its sources, `outer: inner: innermost`.
fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let next = s.to_string();
        // Some errors repeat their source in their own message.
        if !text.ends_with(&next) {
            text.push_str(": ");
            text.push_str(&next);
        }
        source = s.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use tonic::Code;

    use super::*;

    #[test]
    fn code_names_are_the_apis() {
        assert_eq!(code_name(Code::NotFound), "NOT_FOUND");
        assert_eq!(code_name(Code::InvalidArgument), "INVALID_ARGUMENT");
        assert_eq!(code_name(Code::Unavailable), "UNAVAILABLE");
    }

    #[test]
    fn chains_name_every_cause() {
        let io = std::io::Error::other("disk on fire");
        let e = CliError::Read {
            path: "base.fvecs".into(),
            source: io,
        };
        assert_eq!(chain(&e), "cannot read base.fvecs: disk on fire");
    }

    #[test]
    fn payload_numbers_come_back_as_written() {
        let mut doc = serde_json::json!({
            "points": [{"id": "1", "vector": [1.0, 0.5], "payload": {"year": 1969.0, "x": 0.5, "tags": [2.0]}}]
        });
        integral_payload_numbers(&mut doc);
        assert_eq!(
            doc,
            serde_json::json!({
                "points": [{"id": "1", "vector": [1.0, 0.5], "payload": {"year": 1969, "x": 0.5, "tags": [2]}}]
            })
        );
    }

    #[test]
    fn vectors_and_payloads_print_on_one_line() {
        assert_eq!(vector(&[0.5, -1.0]), "[0.5, -1]");
        assert_eq!(payload(None), "-");
        let p = vectron_client::payload::to_struct(serde_json::json!({"a": 1})).unwrap();
        assert_eq!(payload(Some(p)), r#"{"a":1}"#);
    }
}
