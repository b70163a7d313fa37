//! Ownership and plan quotas at the gateway: who owns a collection (the routing table
//! says), and whether a write keeps its owner within its plan's points quota.
//!
//! The collections quota is the control plane's to check, in the same step that creates
//! a collection (`max_owned`), so two gateways cannot both let a caller past it. The
//! points quota is checked here, against the point counts the workers last reported to
//! the control plane (they lag writes by a few seconds), remembered per owner for
//! [`OWNED_POINTS_TTL`] so that a run of writes asks the control plane about once a
//! second.

use std::time::Duration;

use vectron_auth::{Action, Collection, Denied, Principal, authorize};
use vectron_control::ControlClient;

use crate::error::GatewayError;
use crate::routing::{CollectionRoute, RoutingCache};

/// How long the points an owner's collections hold are remembered before the control
/// plane is asked again.
pub(crate) const OWNED_POINTS_TTL: Duration = Duration::from_secs(1);

/// Owners remembered at once.
const OWNERS_KEPT: u64 = 100_000;

/// The points each owner's collections hold, as last asked.
#[derive(Debug)]
pub(crate) struct OwnedPoints {
    held: moka::sync::Cache<String, u64>,
}

impl Default for OwnedPoints {
    fn default() -> Self {
        Self {
            held: moka::sync::Cache::builder()
                .max_capacity(OWNERS_KEPT)
                .time_to_live(OWNED_POINTS_TTL)
                .build(),
        }
    }
}

impl OwnedPoints {
    /// Refuses a write of `adding` points by `who` to `route` when the collection is
    /// `who`'s and its plan's points quota would be passed. A write to a collection the
    /// caller does not own is not counted against its quota.
    ///
    /// # Errors
    /// [`GatewayError::PointQuota`]; [`GatewayError::Control`] when the counts cannot be
    /// read.
    pub(crate) async fn admit(
        &self,
        who: &Principal,
        route: &CollectionRoute,
        adding: usize,
        control: &ControlClient,
    ) -> Result<(), GatewayError> {
        let Some(max) = who.quota.points else {
            return Ok(());
        };
        if !who.owns(&Collection::new(&route.spec.name, &route.owner)) {
            return Ok(());
        }
        let held = match self.held.get(&who.name) {
            Some(held) => held,
            None => {
                let collections = control
                    .list_collections()
                    .await
                    .map_err(GatewayError::Control)?;
                let held = collections
                    .iter()
                    .filter(|c| c.owner == who.name)
                    .map(|c| c.point_count)
                    .sum();
                self.held.insert(who.name.clone(), held);
                held
            }
        };
        let adding = adding as u64;
        if held.saturating_add(adding) > max {
            return Err(GatewayError::PointQuota {
                caller: who.name.clone(),
                plan: who.plan.clone().unwrap_or_default(),
                max,
                held,
                adding,
            });
        }
        Ok(())
    }
}

/// Whether `who` may do `action` on the collection `name`: by its role and grants, or
/// as its owner, whom the routing table names.
///
/// # Errors
/// [`Denied`].
pub(crate) fn authorize_on(
    routing: &RoutingCache,
    who: &Principal,
    action: Action,
    name: &str,
) -> Result<(), Denied> {
    let table = routing.snapshot();
    let owner = table.collections.get(name).map_or("", |c| c.owner.as_str());
    authorize(who, action, Some(Collection::new(name, owner)))
}
