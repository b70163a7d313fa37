//! The checks of a point's vector, shared by the gateway (at the public door) and the
//! cores (before a write reaches the log): both refuse the same input with the same words.

/// The longest vector Vectron compares (Euclidean length). Past it, squared distances
/// and dot products computed in `f32` can overflow to infinity and every score ties.
pub const MAX_LENGTH: f64 = 1e15;

/// The shortest vector a cosine collection takes. Normalising a shorter one in `f32`
/// loses its direction (its squared values underflow), or leaves none at all.
pub const MIN_COSINE_LENGTH: f64 = 1e-15;

/// Why a vector's length is refused (for a point or a query alike).
#[derive(Debug, Clone, Copy, PartialEq, thiserror::Error)]
pub enum LengthError {
    /// An all-zero vector in a cosine collection, which has no direction.
    #[error("an all-zero vector has no direction for cosine similarity")]
    Zero,
    /// A cosine vector shorter than [`MIN_COSINE_LENGTH`].
    #[error(
        "vector length {length:.3e} is below {MIN_COSINE_LENGTH:e}, too short to give a direction for cosine similarity"
    )]
    TooShort {
        /// The vector's Euclidean length.
        length: f64,
    },
    /// A vector longer than [`MAX_LENGTH`].
    #[error("vector length {length:.3e} is above {MAX_LENGTH:e}, where scores overflow")]
    TooLong {
        /// The vector's Euclidean length.
        length: f64,
    },
}

/// Why a point's vector is refused. Every variant is an `INVALID_ARGUMENT`.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum VectorError {
    /// A vector whose length is not the collection's dimension.
    #[error(
        "point {point} (id {id:?}): vector has {got} values, the collection has dimension {expected}"
    )]
    WrongDimension {
        /// Position in the request.
        point: usize,
        /// The point's id.
        id: String,
        /// The collection's dimension.
        expected: usize,
        /// Values given.
        got: usize,
    },
    /// A vector holding NaN or an infinity.
    #[error("point {point} (id {id:?}): vector value {at} is not a finite number")]
    NonFinite {
        /// Position in the request.
        point: usize,
        /// The point's id.
        id: String,
        /// Index of the first bad value.
        at: usize,
    },
    /// A vector whose Euclidean length is out of range (see [`check_length`]).
    #[error("point {point} (id {id:?}): {reason}")]
    Length {
        /// Position in the request.
        point: usize,
        /// The point's id.
        id: String,
        /// Which bound it crosses.
        reason: LengthError,
    },
}

/// Checks the vector of the point at position `point` (id `id`) of a request against a
/// collection of `dimension` values, compared by cosine similarity when `cosine`.
///
/// ```
/// use vectron_proto::validate::{check_vector, LengthError, VectorError};
///
/// assert!(check_vector(0, "a", &[0.5, 1.0], 2, true).is_ok());
/// assert!(matches!(
///     check_vector(1, "b", &[f32::NAN, 1.0], 2, false),
///     Err(VectorError::NonFinite { point: 1, at: 0, .. })
/// ));
/// assert!(matches!(
///     check_vector(2, "c", &[1e-30, 1e-30], 2, true),
///     Err(VectorError::Length { reason: LengthError::TooShort { .. }, .. })
/// ));
/// ```
///
/// # Errors
/// [`VectorError`]: the first rule the vector breaks.
pub fn check_vector(
    point: usize,
    id: &str,
    vector: &[f32],
    dimension: usize,
    cosine: bool,
) -> Result<(), VectorError> {
    if vector.len() != dimension {
        return Err(VectorError::WrongDimension {
            point,
            id: id.to_owned(),
            expected: dimension,
            got: vector.len(),
        });
    }
    if let Some(at) = vector.iter().position(|x| !x.is_finite()) {
        return Err(VectorError::NonFinite {
            point,
            id: id.to_owned(),
            at,
        });
    }
    check_length(vector, cosine).map_err(|reason| VectorError::Length {
        point,
        id: id.to_owned(),
        reason,
    })
}

/// Checks the Euclidean length of a vector of finite values: at most [`MAX_LENGTH`], and
/// for cosine (`cosine`) not zero and at least [`MIN_COSINE_LENGTH`]. Queries are held to
/// the same rule as points. The length is computed in `f64`, so it is exact enough to
/// decide for any `f32` input.
///
/// # Errors
/// [`LengthError`]: the bound the vector crosses.
pub fn check_length(vector: &[f32], cosine: bool) -> Result<(), LengthError> {
    let length = vector
        .iter()
        .map(|&x| f64::from(x) * f64::from(x))
        .sum::<f64>()
        .sqrt();
    if length > MAX_LENGTH {
        return Err(LengthError::TooLong { length });
    }
    if cosine {
        if length == 0.0 {
            return Err(LengthError::Zero);
        }
        if length < MIN_COSINE_LENGTH {
            return Err(LengthError::TooShort { length });
        }
    }
    Ok(())
}

/// How deep a payload may nest objects and arrays: `{"a": 1}` is 1 level, `{"a": [1]}` 2.
/// Past it a payload would not decode as a `google.protobuf.Struct` in a gRPC answer
/// (protobuf decoders stop at 100 nested messages, and each JSON level costs up to three).
pub const MAX_PAYLOAD_DEPTH: usize = 24;

/// A payload nested deeper than [`MAX_PAYLOAD_DEPTH`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("nests objects and arrays {depth} levels deep, more than the limit of {MAX_PAYLOAD_DEPTH}")]
pub struct PayloadDepthError {
    /// The payload's depth (see [`json_depth`]).
    pub depth: usize,
}

/// Checks a payload's depth (from [`json_depth`]) against [`MAX_PAYLOAD_DEPTH`].
///
/// # Errors
/// [`PayloadDepthError`] when it is deeper.
pub fn check_payload_depth(depth: usize) -> Result<(), PayloadDepthError> {
    if depth > MAX_PAYLOAD_DEPTH {
        Err(PayloadDepthError { depth })
    } else {
        Ok(())
    }
}

/// The nesting depth of a JSON value: 0 for a scalar, 1 for an object or array of
/// scalars, one more per level within.
#[must_use]
pub fn json_depth(value: &serde_json::Value) -> usize {
    // Iterative, so that no input can exhaust the stack.
    let mut deepest = 0;
    let mut stack = vec![(value, 1)];
    while let Some((value, depth)) = stack.pop() {
        let children: Box<dyn Iterator<Item = &serde_json::Value>> = match value {
            serde_json::Value::Array(items) => Box::new(items.iter()),
            serde_json::Value::Object(map) => Box::new(map.values()),
            _ => continue,
        };
        deepest = deepest.max(depth);
        stack.extend(children.map(|child| (child, depth + 1)));
    }
    deepest
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_rule_in_order() {
        assert_eq!(
            check_vector(2, "x", &[1.0], 2, true),
            Err(VectorError::WrongDimension {
                point: 2,
                id: "x".into(),
                expected: 2,
                got: 1
            })
        );
        assert_eq!(
            check_vector(0, "x", &[0.0, f32::INFINITY], 2, true),
            Err(VectorError::NonFinite {
                point: 0,
                id: "x".into(),
                at: 1
            })
        );
        assert_eq!(
            check_vector(0, "x", &[0.0, 0.0], 2, true),
            Err(VectorError::Length {
                point: 0,
                id: "x".into(),
                reason: LengthError::Zero
            })
        );
        assert_eq!(check_vector(0, "x", &[0.0, 0.0], 2, false), Ok(()));
        assert_eq!(
            check_vector(3, "y", &[0.0; 3], 2, false)
                .unwrap_err()
                .to_string(),
            "point 3 (id \"y\"): vector has 3 values, the collection has dimension 2"
        );
    }

    #[test]
    fn lengths_are_held_to_what_f32_scores_can_carry() {
        // Squares of 1e-30 underflow f32 to zero: normalising it would divide by zero.
        assert!(matches!(
            check_length(&[1e-30, 1e-30], true),
            Err(LengthError::TooShort { .. })
        ));
        assert_eq!(check_length(&[1e-30, 1e-30], false), Ok(()));
        assert_eq!(check_length(&[0.0, 0.0], false), Ok(()));
        // 3e38 is a finite f32, but its square is not.
        for cosine in [true, false] {
            assert!(matches!(
                check_length(&[3e38, 3e38], cosine),
                Err(LengthError::TooLong { .. })
            ));
        }
        assert_eq!(check_length(&[1e-15, 0.0], true), Ok(()));
        assert_eq!(check_length(&[1e15, 0.0], false), Ok(()));
        assert_eq!(check_length(&[1e-3; 384], true), Ok(()));
        assert_eq!(
            check_vector(1, "b", &[3e38, 0.0], 2, false)
                .unwrap_err()
                .to_string(),
            "point 1 (id \"b\"): vector length 3.000e38 is above 1e15, where scores overflow"
        );
    }

    #[test]
    fn depth_counts_objects_and_arrays() {
        use serde_json::json;
        assert_eq!(json_depth(&json!(1)), 0);
        assert_eq!(json_depth(&json!({})), 1);
        assert_eq!(json_depth(&json!({"a": 1, "b": "x"})), 1);
        assert_eq!(json_depth(&json!({"a": [1, {"b": []}], "c": {}})), 4);
        assert_eq!(json_depth(&json!({"a": [1, {"b": 2}], "c": {}})), 3);
    }
}
