//! Callers, actions and the one rule that says whether a caller may act.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

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
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::ListCollections => "list collections",
            Self::CreateCollection => "create collections",
            Self::DropCollection => "drop collections",
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
}

impl Principal {
    /// The caller when authentication is off: it may do anything.
    #[must_use]
    pub fn anonymous() -> Self {
        Self {
            name: "anonymous".into(),
            role: Role::Admin,
            grants: BTreeMap::new(),
            plan: None,
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
        }
    }

    /// Whether a listing shows it `collection`.
    #[must_use]
    pub fn sees(&self, collection: &str) -> bool {
        authorize(self, Action::DescribeCollection, Some(collection)).is_ok()
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
/// describe and read it (`Read`) and also write its points (`ReadWrite`). Creating and
/// dropping collections and managing keys are an admin's.
///
/// # Errors
/// [`Denied`] naming the key, the action and the collection.
pub fn authorize(who: &Principal, action: Action, collection: Option<&str>) -> Result<(), Denied> {
    let granted = collection.and_then(|c| who.grants.get(c)).copied();
    let allowed = match (who.role, action) {
        (Role::Admin, _) | (_, Action::ListCollections) => true,
        (Role::Read, Action::DescribeCollection | Action::Read | Action::Stats) => true,
        (_, Action::DescribeCollection | Action::Read) => granted.is_some(),
        (_, Action::Write) => granted == Some(Access::ReadWrite),
        (_, Action::CreateCollection | Action::DropCollection | Action::Stats)
        | (_, Action::ManageKeys | Action::ManageUsers) => false,
    };
    if allowed {
        Ok(())
    } else {
        Err(Denied {
            caller: who.name.clone(),
            action,
            on: collection.map(str::to_owned),
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
        }
    }

    const ALL: [Action; 9] = [
        Action::ListCollections,
        Action::CreateCollection,
        Action::DropCollection,
        Action::DescribeCollection,
        Action::Read,
        Action::Write,
        Action::Stats,
        Action::ManageKeys,
        Action::ManageUsers,
    ];

    /// The allowed actions on collection `c`, as a string of initials.
    fn allowed(who: &Principal, c: &str) -> String {
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
        // List, Create, Drop, Describe, Read, Write, Stats, ManageKeys, ManageUsers
        assert_eq!(allowed(&Principal::anonymous(), "a"), "LCDDRWSMM");
        assert_eq!(allowed(&key(Role::Read, &[]), "a"), "L..DR.S..");
        assert_eq!(
            allowed(&key(Role::Read, &[("a", Access::ReadWrite)]), "a"),
            "L..DRWS.."
        );
        let scoped = key(
            Role::Scoped,
            &[("a", Access::Read), ("b", Access::ReadWrite)],
        );
        assert_eq!(allowed(&scoped, "a"), "L..DR....");
        assert_eq!(allowed(&scoped, "b"), "L..DRW...");
        assert_eq!(allowed(&scoped, "c"), "L........");
        assert!(scoped.sees("a") && !scoped.sees("c"));
    }

    #[test]
    fn a_refusal_names_the_key_the_action_and_the_collection() {
        let denied = authorize(&key(Role::Read, &[]), Action::Write, Some("docs")).unwrap_err();
        assert_eq!(
            denied.to_string(),
            "key k may not write points to collection \"docs\""
        );
        let denied = authorize(&key(Role::Read, &[]), Action::ManageKeys, None).unwrap_err();
        assert_eq!(denied.to_string(), "key k may not manage API keys");
    }
}
