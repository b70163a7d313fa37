//! Callers, actions and the one rule that says whether a caller may act.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::plan::{Plan, Quota};

/// What a key may do everywhere.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Everything: collections, points, statistics, keys.
    Admin,
    /// Read every collection (list, describe, get, count, scroll, search) and the
    /// statistics; write only where a grant allows.
    Read,
    /// Only the collections its grants name.
    Scoped,
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Admin => "admin",
            Self::Read => "read",
            Self::Scoped => "scoped",
        })
    }
}

/// What a grant allows on one collection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Access {
    /// Describe it and read its points.
    Read,
    /// Also write (upsert, delete) its points.
    ReadWrite,
}

/// Something a caller asks to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// List collections (each caller sees those it may describe).
    ListCollections,
    /// Create a collection.
    CreateCollection,
    /// Drop a collection.
    DropCollection,
    /// Describe a collection.
    DescribeCollection,
    /// Get, count, scroll or search points.
    Read,
    /// Upsert or delete points.
    Write,
    /// Read the cores' statistics (they name every collection's shards).
    Stats,
    /// Create, list or revoke API keys; mint tokens.
    ManageKeys,
    /// Create, list or delete users.
    ManageUsers,
    /// Change a collection's mutable settings (its default `ef`).
    UpdateCollection,
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::ListCollections => "list collections",
            Self::CreateCollection => "create collections",
            Self::DropCollection => "drop collections",
            Self::UpdateCollection => "change the settings of",
            Self::DescribeCollection => "describe",
            Self::Read => "read points of",
            Self::Write => "write points to",
            Self::Stats => "read statistics",
            Self::ManageKeys => "manage API keys",
            Self::ManageUsers => "manage users",
        })
    }
}

/// An authenticated caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// Who it is, as logs and refusals name it: `key <id>`, `token <subject>`,
    /// `admin key` for the bootstrap admin key, `anonymous` with authentication off.
    pub name: String,
    /// Its role.
    pub role: Role,
    /// Collections it may use beyond its role.
    pub grants: BTreeMap<String, Access>,
    /// The plan that limits its calls (none: not limited).
    pub plan: Option<String>,
    /// Its plan's quotas, as they were when it was authenticated.
    pub quota: Quota,
}

impl Principal {
    /// The same caller with the quotas of `plan`, the plan it names as the cluster holds
    /// it.
    #[must_use]
    pub fn with_quota(mut self, plan: Option<&Plan>) -> Self {
        self.quota = Quota::of(plan);
        self
    }

    /// Whether it owns `collection`: the collection records it as its creator.
    #[must_use]
    pub fn owns(&self, collection: &Collection<'_>) -> bool {
        collection.owner == Some(self.name.as_str())
    }

    /// The caller when authentication is off: it may do anything.
    #[must_use]
    pub fn anonymous() -> Self {
        Self {
            name: "anonymous".into(),
            role: Role::Admin,
            grants: BTreeMap::new(),
            plan: None,
            quota: Quota::default(),
        }
    }

    /// The holder of the bootstrap admin key.
    #[must_use]
    pub fn bootstrap_admin() -> Self {
        Self {
            name: "admin key".into(),
            role: Role::Admin,
            grants: BTreeMap::new(),
            plan: None,
            quota: Quota::default(),
        }
    }

    /// Whether a listing shows it `collection`.
    #[must_use]
    pub fn sees(&self, collection: Collection<'_>) -> bool {
        authorize(self, Action::DescribeCollection, Some(collection)).is_ok()
    }
}

/// The collection an action is on: its name, and the caller that created it (none for
/// a collection made with authentication off).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Collection<'a> {
    /// Its name.
    pub name: &'a str,
    /// Its owner, by [`Principal::name`].
    pub owner: Option<&'a str>,
}

impl<'a> Collection<'a> {
    /// The collection `name`, owned by `owner` (empty: by no one).
    #[must_use]
    pub fn new(name: &'a str, owner: &'a str) -> Self {
        Self {
            name,
            owner: (!owner.is_empty()).then_some(owner),
        }
    }
}

/// Why a caller may not act.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{caller} may not {action}{}", on.as_ref().map(|c| format!(" collection {c:?}")).unwrap_or_default())]
pub struct Denied {
    /// The caller, by [`Principal::name`].
    pub caller: String,
    /// What it asked.
    pub action: Action,
    /// On which collection.
    pub on: Option<String>,
}

/// Whether `who` may do `action` (on `collection`, for actions on one).
///
/// Admins may do everything. `Read` keys may list, describe and read every collection
/// and read the statistics. Beyond its role, a key's grant on a collection lets it
/// describe and read it (`Read`) and also write its points (`ReadWrite`). A caller whose
/// plan sets a collections quota may create collections; it owns those it created, and
/// may describe, read, write and drop them. Dropping other collections and managing
/// keys and users are an admin's.
///
/// # Errors
/// [`Denied`] naming the key, the action and the collection.
pub fn authorize(
    who: &Principal,
    action: Action,
    collection: Option<Collection<'_>>,
) -> Result<(), Denied> {
    let granted = collection.and_then(|c| who.grants.get(c.name)).copied();
    let owned = collection.is_some_and(|c| who.owns(&c));
    let allowed = match (who.role, action) {
        (Role::Admin, _) | (_, Action::ListCollections) => true,
        (Role::Read, Action::DescribeCollection | Action::Read | Action::Stats) => true,
        (
            _,
            Action::DescribeCollection
            | Action::Read
            | Action::Write
            | Action::DropCollection
            | Action::UpdateCollection,
        ) if owned => true,
        (_, Action::DescribeCollection | Action::Read) => granted.is_some(),
        (_, Action::Write) => granted == Some(Access::ReadWrite),
        (_, Action::CreateCollection) => who.quota.collections.is_some_and(|n| n > 0),
        (_, Action::DropCollection | Action::UpdateCollection | Action::Stats)
        | (_, Action::ManageKeys | Action::ManageUsers) => false,
    };
    if allowed {
        Ok(())
    } else {
        Err(Denied {
            caller: who.name.clone(),
            action,
            on: collection.map(|c| c.name.to_owned()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(role: Role, grants: &[(&str, Access)]) -> Principal {
        Principal {
            name: "key k".into(),
            role,
            grants: grants.iter().map(|(c, a)| ((*c).to_owned(), *a)).collect(),
            plan: None,
            quota: Quota::default(),
        }
    }

    fn on(name: &str) -> Option<Collection<'_>> {
        Some(Collection::new(name, ""))
    }

    const ALL: [Action; 10] = [
        Action::ListCollections,
        Action::CreateCollection,
        Action::DropCollection,
        Action::DescribeCollection,
        Action::Read,
        Action::Write,
        Action::Stats,
        Action::ManageKeys,
        Action::ManageUsers,
        Action::UpdateCollection,
    ];

    /// The allowed actions on collection `c`, as a string of initials.
    fn allowed(who: &Principal, c: Collection<'_>) -> String {
        ALL.iter()
            .map(|&a| {
                let letter = format!("{a:?}").chars().next().unwrap();
                if authorize(who, a, Some(c)).is_ok() {
                    letter
                } else {
                    '.'
                }
            })
            .collect()
    }

    #[test]
    fn each_role_and_grant_allows_what_the_table_says() {
        // List, Create, Drop, Describe, Read, Write, Stats, ManageKeys, ManageUsers,
        // UpdateCollection
        let a = Collection::new("a", "");
        assert_eq!(allowed(&Principal::anonymous(), a), "LCDDRWSMMU");
        assert_eq!(allowed(&key(Role::Read, &[]), a), "L..DR.S...");
        assert_eq!(
            allowed(&key(Role::Read, &[("a", Access::ReadWrite)]), a),
            "L..DRWS..."
        );
        let scoped = key(
            Role::Scoped,
            &[("a", Access::Read), ("b", Access::ReadWrite)],
        );
        assert_eq!(allowed(&scoped, a), "L..DR.....");
        assert_eq!(allowed(&scoped, Collection::new("b", "")), "L..DRW....");
        assert_eq!(allowed(&scoped, Collection::new("c", "")), "L.........");
        assert!(scoped.sees(a) && !scoped.sees(Collection::new("c", "")));
    }

    #[test]
    fn a_collections_quota_lets_a_caller_create_and_it_owns_what_it_created() {
        let starter = Plan {
            name: "starter".into(),
            requests_per_second: 10,
            burst: 10,
            max_collections: Some(2),
            max_points: None,
        };
        let on_plan = key(Role::Scoped, &[("a", Access::Read)]).with_quota(Some(&starter));
        let mine = Collection::new("mine", "key k");
        let theirs = Collection::new("theirs", "key other");
        assert_eq!(allowed(&on_plan, mine), "LCDDRW...U");
        assert_eq!(allowed(&on_plan, theirs), "LC........");
        assert_eq!(
            allowed(&on_plan, Collection::new("a", "key other")),
            "LC.DR....."
        );
        // Without a plan, or with a quota of none, no create; ownership still counts.
        assert_eq!(allowed(&key(Role::Scoped, &[]), mine), "L.DDRW...U");
        let none = Plan {
            max_collections: Some(0),
            ..starter
        };
        let on_none = key(Role::Read, &[]).with_quota(Some(&none));
        assert_eq!(allowed(&on_none, theirs), "L..DR.S...");
        assert!(on_plan.sees(mine) && !on_plan.sees(theirs));
        assert!(on_plan.owns(&mine) && !on_plan.owns(&Collection::new("x", "")));
    }

    #[test]
    fn a_refusal_names_the_key_the_action_and_the_collection() {
        let denied = authorize(&key(Role::Read, &[]), Action::Write, on("docs")).unwrap_err();
        assert_eq!(
            denied.to_string(),
            "key k may not write points to collection \"docs\""
        );
        let denied = authorize(&key(Role::Read, &[]), Action::ManageKeys, None).unwrap_err();
        assert_eq!(denied.to_string(), "key k may not manage API keys");
    }
}
