//! The `grpc-timeout` request header: `TimeoutValue TimeoutUnit`, where the value is one
//! to eight ASCII digits and the unit one of `H` (hours), `M` (minutes), `S` (seconds),
//! `m` (milliseconds), `u` (microseconds) or `n` (nanoseconds).

use std::time::Duration;

/// Why a `grpc-timeout` value is malformed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "malformed grpc-timeout header {value:?}: expected 1 to 8 digits and a unit of H, M, S, m, u or n"
)]
pub(crate) struct TimeoutError {
    /// The header value, lossily decoded for the message.
    pub(crate) value: String,
}

/// Parses a `grpc-timeout` header value.
pub(crate) fn parse(value: &[u8]) -> Result<Duration, TimeoutError> {
    let malformed = || TimeoutError {
        value: String::from_utf8_lossy(value).into_owned(),
    };
    let (&unit, digits) = value.split_last().ok_or_else(malformed)?;
    if digits.is_empty() || digits.len() > 8 || !digits.iter().all(u8::is_ascii_digit) {
        return Err(malformed());
    }
    let amount = digits
        .iter()
        .fold(0u64, |n, d| n * 10 + u64::from(d - b'0'));
    Ok(match unit {
        b'H' => Duration::from_secs(amount * 3600),
        b'M' => Duration::from_secs(amount * 60),
        b'S' => Duration::from_secs(amount),
        b'm' => Duration::from_millis(amount),
        b'u' => Duration::from_micros(amount),
        b'n' => Duration::from_nanos(amount),
        _ => return Err(malformed()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_unit_parses() {
        assert_eq!(parse(b"2H"), Ok(Duration::from_secs(7200)));
        assert_eq!(parse(b"3M"), Ok(Duration::from_secs(180)));
        assert_eq!(parse(b"10S"), Ok(Duration::from_secs(10)));
        assert_eq!(parse(b"250m"), Ok(Duration::from_millis(250)));
        assert_eq!(parse(b"99999999u"), Ok(Duration::from_micros(99_999_999)));
        assert_eq!(parse(b"0n"), Ok(Duration::ZERO));
        assert_eq!(
            parse(b"99999999H"),
            Ok(Duration::from_secs(99_999_999 * 3600))
        );
    }

    #[test]
    fn malformed_values_are_refused() {
        for bad in [
            &b""[..],
            b"S",
            b"100",
            b"123456789S",
            b"1.5S",
            b"-1S",
            b"10s",
            b"10 S",
            b"1\xffS",
        ] {
            let error = parse(bad).unwrap_err();
            assert_eq!(error.value, String::from_utf8_lossy(bad), "{bad:?}");
        }
    }
}
