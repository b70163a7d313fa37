//! Plans: how fast a caller may call. A key, a user or a token names at most one plan;
//! a caller without one is not limited. The gateway keeps one allowance per caller under
//! its plan's rate (a token bucket: `requests_per_second` refilled, `burst` at most).

use serde::{Deserialize, Serialize};

/// Longest plan name, in bytes.
pub const MAX_PLAN_NAME_BYTES: usize = 64;
/// Highest rate a plan may set, in requests per second.
pub const MAX_PLAN_RATE: u32 = 1_000_000;
/// Most plans a cluster holds.
pub const MAX_PLANS: usize = 1_000;

/// A plan as the cluster stores it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Plan {
    /// Its name, which keys, users and tokens give.
    pub name: String,
    /// Calls a second a caller on this plan may make, sustained.
    pub requests_per_second: u32,
    /// Calls a caller may make at once after a quiet spell.
    pub burst: u32,
}

/// Why a plan breaks the rules.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    /// A name that is empty, too long or has other characters.
    #[error(
        "a plan name has 1 to {MAX_PLAN_NAME_BYTES} characters: letters, digits, `_`, `-` and `.`"
    )]
    Name,
    /// A rate of zero or past the highest.
    #[error("a plan's requests_per_second is 1 to {MAX_PLAN_RATE}, not {0}")]
    Rate(u32),
    /// A burst of zero or past the highest.
    #[error("a plan's burst is 1 to {MAX_PLAN_RATE}, not {0}")]
    Burst(u32),
}

/// Whether `name` may name a plan.
///
/// # Errors
/// [`PlanError::Name`].
pub fn check_plan_name(name: &str) -> Result<(), PlanError> {
    let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.');
    if name.is_empty() || name.len() > MAX_PLAN_NAME_BYTES || !name.chars().all(allowed) {
        return Err(PlanError::Name);
    }
    Ok(())
}

impl Plan {
    /// Checks the plan's rules.
    ///
    /// # Errors
    /// The first rule it breaks.
    pub fn check(&self) -> Result<(), PlanError> {
        check_plan_name(&self.name)?;
        if !(1..=MAX_PLAN_RATE).contains(&self.requests_per_second) {
            return Err(PlanError::Rate(self.requests_per_second));
        }
        if !(1..=MAX_PLAN_RATE).contains(&self.burst) {
            return Err(PlanError::Burst(self.burst));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plans_keep_to_their_rules() {
        let plan = |name: &str, rps, burst| Plan {
            name: name.into(),
            requests_per_second: rps,
            burst,
        };
        assert!(plan("free-tier.v2", 10, 10).check().is_ok());
        assert_eq!(plan("", 10, 10).check(), Err(PlanError::Name));
        assert_eq!(plan("a b", 10, 10).check(), Err(PlanError::Name));
        assert_eq!(plan("free", 0, 10).check(), Err(PlanError::Rate(0)));
        assert_eq!(plan("free", 10, 0).check(), Err(PlanError::Burst(0)));
        assert_eq!(
            plan("free", MAX_PLAN_RATE + 1, 1).check(),
            Err(PlanError::Rate(MAX_PLAN_RATE + 1))
        );
    }
}
