//! Plan rate limits: each caller on a plan gets its own allowance (governor's GCRA, a
//! token bucket without a timer: `requests_per_second` refilled, `burst` at most), one
//! keyed limiter per plan, built on first use and rebuilt when the plan changes.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::{Arc, RwLock};

use governor::clock::Clock as _;
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use vectron_auth::{Plan, Principal};

use crate::error::GatewayError;

/// Callers kept per plan before those whose allowance is full again are forgotten.
const CALLERS_KEPT: usize = 100_000;

type Limiter = Arc<DefaultKeyedRateLimiter<String>>;

/// The allowances of every caller on a plan.
#[derive(Debug, Default)]
pub(crate) struct PlanLimits {
    limiters: RwLock<HashMap<String, (Plan, Limiter)>>,
}

impl PlanLimits {
    /// Counts a call by `who` against its plan's rate, as `plans` (the routing table's)
    /// set it. A caller on no plan passes.
    ///
    /// # Errors
    /// [`GatewayError::RateLimited`] past the rate; [`GatewayError::UnknownPlan`] for a
    /// plan the cluster no longer holds.
    pub(crate) fn admit(
        &self,
        who: &Principal,
        plans: &HashMap<String, Plan>,
    ) -> Result<(), GatewayError> {
        let Some(name) = &who.plan else {
            return Ok(());
        };
        let plan = plans
            .get(name)
            .ok_or_else(|| GatewayError::UnknownPlan { name: name.clone() })?;
        let limiter = self.limiter(plan);
        if limiter.len() > CALLERS_KEPT {
            limiter.retain_recent();
        }
        limiter.check_key(&who.name).map_err(|not_until| {
            let retry_after = not_until.wait_time_from(limiter.clock().now());
            GatewayError::RateLimited {
                plan: plan.name.clone(),
                requests_per_second: plan.requests_per_second,
                retry_after,
            }
        })
    }

    /// The limiter of `plan`, made (or made again, when the plan changed) as needed.
    fn limiter(&self, plan: &Plan) -> Limiter {
        if let Some((held, limiter)) = self
            .limiters
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(&plan.name)
            && held == plan
        {
            return Arc::clone(limiter);
        }
        let mut limiters = self
            .limiters
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let (held, limiter) = limiters
            .entry(plan.name.clone())
            .or_insert_with(|| (plan.clone(), new_limiter(plan)));
        if held != plan {
            *held = plan.clone();
            *limiter = new_limiter(plan);
        }
        Arc::clone(limiter)
    }
}

fn new_limiter(plan: &Plan) -> Limiter {
    let rate = NonZeroU32::new(plan.requests_per_second).unwrap_or(NonZeroU32::MIN);
    let burst = NonZeroU32::new(plan.burst).unwrap_or(NonZeroU32::MIN);
    Arc::new(RateLimiter::keyed(
        Quota::per_second(rate).allow_burst(burst),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use vectron_auth::Role;

    fn caller(name: &str, plan: Option<&str>) -> Principal {
        Principal {
            name: name.into(),
            role: Role::Read,
            grants: Default::default(),
            plan: plan.map(str::to_owned),
            quota: Default::default(),
        }
    }

    #[test]
    fn each_caller_on_a_plan_gets_its_own_burst_and_a_changed_plan_applies() {
        let limits = PlanLimits::default();
        let mut plans = HashMap::new();
        let plan = |burst| Plan {
            name: "free".into(),
            requests_per_second: 1,
            burst,
            max_collections: None,
            max_points: None,
        };
        plans.insert("free".to_owned(), plan(3));
        let (a, b) = (caller("key a", Some("free")), caller("key b", Some("free")));
        for _ in 0..3 {
            limits.admit(&a, &plans).unwrap();
        }
        let refused = limits.admit(&a, &plans).unwrap_err();
        assert!(
            matches!(&refused, GatewayError::RateLimited { retry_after, .. } if !retry_after.is_zero()),
            "{refused}"
        );
        // Another caller on the plan has its own allowance; a caller on none has no limit.
        limits.admit(&b, &plans).unwrap();
        let free = caller("key c", None);
        for _ in 0..100 {
            limits.admit(&free, &plans).unwrap();
        }
        // A changed plan starts afresh with its new burst.
        plans.insert("free".to_owned(), plan(5));
        for _ in 0..5 {
            limits.admit(&a, &plans).unwrap();
        }
        assert!(limits.admit(&a, &plans).is_err());
        // A plan the cluster no longer holds.
        plans.clear();
        assert!(matches!(
            limits.admit(&a, &plans),
            Err(GatewayError::UnknownPlan { .. })
        ));
    }
}
