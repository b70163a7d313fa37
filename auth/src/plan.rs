//! Plans: how fast a caller may call, and how much it may own. A key, a user or a token
//! names at most one plan; a caller without one is not limited. The gateway keeps one
//! allowance per caller under its plan's rate (a token bucket: `requests_per_second`
//! refilled, `burst` at most). A plan's quotas bound the collections a caller on it owns
//! (those it created): how many, and how many points they hold together; a plan with a
//! collections quota lets callers that are not admins create collections.

use serde::{Deserialize, Serialize};

/// Longest plan name, in bytes.
pub const MAX_PLAN_NAME_BYTES: usize = 64;
/// Highest rate a plan may set, in requests per second.
pub const MAX_PLAN_RATE: u32 = 1_000_000;
/// Most plans a cluster holds.
pub const MAX_PLANS: usize = 1_000;
/// Highest points quota a plan may set.
pub const MAX_PLAN_POINTS: u64 = 1 << 40;

/// A plan as the cluster stores it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Plan {
    /// Its name, which keys, users and tokens give.
    pub name: String,
    /// Calls a second a caller on this plan may make, sustained.
    pub requests_per_second: u32,
    /// Calls a caller may make at once after a quiet spell.
    pub burst: u32,
    /// Most collections a caller on the plan may own at once (none: no bound, and no
    /// right to create for a caller that is not an admin).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_collections: Option<u32>,
    /// Most points the collections a caller on the plan owns may hold together (none:
    /// no bound).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_points: Option<u64>,
}

/// A caller's quotas, from its plan.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Quota {
    /// [`Plan::max_collections`].
    pub collections: Option<u32>,
    /// [`Plan::max_points`].
    pub points: Option<u64>,
}

impl Quota {
    /// The quotas `plan` sets (none without a plan).
    #[must_use]
    pub fn of(plan: Option<&Plan>) -> Self {
        plan.map_or_else(Self::default, |plan| Self {
            collections: plan.max_collections,
            points: plan.max_points,
        })
    }
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
    /// A points quota past the highest.
    #[error("a plan's max_points is at most {MAX_PLAN_POINTS}, not {0}")]
    Points(u64),
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
        if let Some(points) = self.max_points
            && points > MAX_PLAN_POINTS
        {
            return Err(PlanError::Points(points));
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
            max_collections: None,
            max_points: None,
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
        let mut quotas = plan("starter", 10, 10);
        quotas.max_collections = Some(0);
        quotas.max_points = Some(MAX_PLAN_POINTS);
        assert!(quotas.check().is_ok());
        assert_eq!(
            Quota::of(Some(&quotas)),
            Quota {
                collections: Some(0),
                points: Some(MAX_PLAN_POINTS)
            }
        );
        assert_eq!(Quota::of(None), Quota::default());
        quotas.max_points = Some(MAX_PLAN_POINTS + 1);
        assert_eq!(quotas.check(), Err(PlanError::Points(MAX_PLAN_POINTS + 1)));
    }
}
