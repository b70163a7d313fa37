//! The `grpc-timeout` request header: `TimeoutValue TimeoutUnit`, where the value is one
//! to eight ASCII digits and the unit one of `H` (hours), `M` (minutes), `S` (seconds),
//! `m` (milliseconds), `u` (microseconds) or `n` (nanoseconds).

use std::time::Duration;

use http::{HeaderName, HeaderValue};

/// Name of the header.
pub(crate) const GRPC_TIMEOUT: HeaderName = HeaderName::from_static("grpc-timeout");

/// The largest value the header carries: eight digits.
const MAX_VALUE: u128 = 99_999_999;

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

/// The `grpc-timeout` header value for `timeout`: the finest unit that carries it in
/// eight digits, rounded up, so the server never sees a shorter deadline than the
/// client keeps. `None` for a timeout too long for the header (over 11,000 years),
/// which is sent as no deadline.
pub(crate) fn encode(timeout: Duration) -> Option<HeaderValue> {
    const UNITS: [(char, u128); 6] = [
        ('n', 1),
        ('u', 1_000),
        ('m', 1_000_000),
        ('S', 1_000_000_000),
        ('M', 60_000_000_000),
        ('H', 3_600_000_000_000),
    ];
    let nanos = timeout.as_nanos();
    UNITS.iter().find_map(|&(unit, per)| {
        let value = nanos.div_ceil(per);
        (value <= MAX_VALUE)
            .then(|| HeaderValue::try_from(format!("{value}{unit}")).ok())
            .flatten()
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
    fn encoded_timeouts_use_the_finest_unit_and_never_shorten() {
        let encoded = |timeout| encode(timeout).unwrap();
        assert_eq!(encoded(Duration::ZERO), "0n");
        assert_eq!(encoded(Duration::from_nanos(99_999_999)), "99999999n");
        assert_eq!(encoded(Duration::from_millis(100)), "100000u");
        assert_eq!(encoded(Duration::from_nanos(100_000_001)), "100001u");
        assert_eq!(encoded(Duration::from_secs(5)), "5000000u");
        assert_eq!(encoded(Duration::from_secs(500)), "500000m");
        assert_eq!(encoded(Duration::from_secs(100_000)), "100000S");
        assert_eq!(encoded(Duration::from_secs(100_000_000)), "1666667M");
        assert_eq!(encoded(Duration::from_secs(99_999_999 * 3600)), "99999999H");
        assert_eq!(encode(Duration::from_secs(99_999_999 * 3600 + 1)), None);
        assert_eq!(encode(Duration::MAX), None);
        for timeout in [
            Duration::from_nanos(1),
            Duration::from_micros(1_234_567),
            Duration::from_millis(987_654_321),
            Duration::from_secs(7 * 86_400),
        ] {
            let parsed = parse(encoded(timeout).as_bytes()).unwrap();
            assert!(parsed >= timeout, "{timeout:?} became {parsed:?}");
        }
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
