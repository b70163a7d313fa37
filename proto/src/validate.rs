//! The checks of a point's vector, shared by the gateway (at the public door) and the
//! cores (before a write reaches the log): both refuse the same input with the same words.

/// Why a point's vector is refused. Every variant is an `INVALID_ARGUMENT`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
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
    /// An all-zero vector in a cosine collection, which has no direction.
    #[error("point {point} (id {id:?}): an all-zero vector has no direction for cosine similarity")]
    ZeroVector {
        /// Position in the request.
        point: usize,
        /// The point's id.
        id: String,
    },
}

/// Checks the vector of the point at position `point` (id `id`) of a request against a
/// collection of `dimension` values, compared by cosine similarity when `cosine`.
///
/// ```
/// use vectron_proto::validate::{check_vector, VectorError};
///
/// assert!(check_vector(0, "a", &[0.5, 1.0], 2, true).is_ok());
/// assert!(matches!(
///     check_vector(1, "b", &[f32::NAN, 1.0], 2, false),
///     Err(VectorError::NonFinite { point: 1, at: 0, .. })
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
    if cosine && vector.iter().all(|&x| x == 0.0) {
        return Err(VectorError::ZeroVector {
            point,
            id: id.to_owned(),
        });
    }
    Ok(())
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
            Err(VectorError::ZeroVector {
                point: 0,
                id: "x".into()
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
}
