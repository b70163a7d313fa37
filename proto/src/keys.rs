//! API keys, tokens and users at the wire: the rules of `CreateKeyRequest`,
//! `CreateTokenRequest` and `CreateUserRequest`, and the key and user records of
//! `vectron-auth` to and from their messages. The gateway and the control plane both
//! convert here.

use std::collections::BTreeMap;
use std::time::Duration;

use tonic::Code;
use vectron_auth::{
    Access, DEFAULT_TOKEN_TTL, KeyRecord, MAX_SUBJECT_BYTES, MAX_TOKEN_TTL, MAX_USER_NAME_BYTES,
    Plan, PlanError, Role, SecretHash, UserRecord, check_password, check_plan_name,
};

use crate::control::v1::{ApiKeyEntry, UserEntry};
use crate::rules::check_collection_name;
use crate::v1 as api;

/// Most collections one key may be granted.
pub const MAX_GRANTS: usize = 1024;
/// Longest key description, in bytes.
pub const MAX_KEY_DESCRIPTION_BYTES: usize = 256;
/// Most keys a cluster holds.
pub const MAX_API_KEYS: usize = 10_000;
/// Most users a cluster holds.
pub const MAX_USERS: usize = 10_000;

/// Why a key request (or a stored key) breaks a rule.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyRuleError {
    /// No role.
    #[error("a key needs a role: admin, read or scoped")]
    NoRole,
    /// A scoped key without grants could do nothing.
    #[error("a scoped key needs at least one grant")]
    ScopedWithoutGrants,
    /// An admin key may do everything already.
    #[error("an admin key takes no grants: it may do everything")]
    AdminWithGrants,
    /// A grant without access.
    #[error("grant {index} (collection {collection:?}) needs an access: read or read_write")]
    NoAccess {
        /// Its position.
        index: usize,
        /// Its collection.
        collection: String,
    },
    /// A grant naming an impossible collection.
    #[error("grant {index}: {reason}")]
    BadCollection {
        /// Its position.
        index: usize,
        /// What is wrong with the name.
        reason: String,
    },
    /// A collection granted twice.
    #[error("collection {collection:?} is granted twice")]
    DuplicateGrant {
        /// The collection.
        collection: String,
    },
    /// Too many grants.
    #[error("a key may have at most {MAX_GRANTS} grants, not {got}")]
    TooManyGrants {
        /// How many were given.
        got: usize,
    },
    /// The description is too long.
    #[error("a key description has at most {MAX_KEY_DESCRIPTION_BYTES} bytes, not {got}")]
    DescriptionTooLong {
        /// Its length.
        got: usize,
    },
    /// A token without a subject.
    #[error("a token needs a subject: whom it is for")]
    NoSubject,
    /// A subject too long or with control characters.
    #[error("a token subject has at most {MAX_SUBJECT_BYTES} bytes and no control characters")]
    BadSubject,
    /// A token that would live too long.
    #[error("a token lives at most {} seconds, not {got}", MAX_TOKEN_TTL.as_secs())]
    TtlTooLong {
        /// The lifetime asked for, in seconds.
        got: u64,
    },
    /// A user name that is empty, too long or has other characters.
    #[error(
        "a user name has 1 to {MAX_USER_NAME_BYTES} characters: letters, digits, `_`, `-`, `.` and `@`"
    )]
    BadUserName,
    /// A password outside the limits.
    #[error(transparent)]
    BadPassword(#[from] vectron_auth::PasswordError),
    /// A plan, or a plan's name, that breaks the rules.
    #[error(transparent)]
    BadPlan(#[from] PlanError),
    /// A stored entry without its key or with a broken hash.
    #[error("a stored key entry is damaged: {0}")]
    Damaged(String),
}

impl KeyRuleError {
    /// The gRPC code of the refusal.
    #[must_use]
    pub fn code(&self) -> Code {
        match self {
            Self::Damaged(_) => Code::Internal,
            _ => Code::InvalidArgument,
        }
    }
}

/// What a key, token or user may do: a role, grants that go with it, and the plan that
/// limits it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scope {
    /// What it may do everywhere.
    pub role: Role,
    /// Collections it may use beyond its role.
    pub grants: BTreeMap<String, Access>,
    /// The plan that limits its calls (none: not limited).
    pub plan: Option<String>,
}

/// A key's scope as asked for, checked.
///
/// # Errors
/// The first rule of `CreateKeyRequest` the request breaks.
pub fn check_new_key(request: &api::CreateKeyRequest) -> Result<Scope, KeyRuleError> {
    if request.description.len() > MAX_KEY_DESCRIPTION_BYTES {
        return Err(KeyRuleError::DescriptionTooLong {
            got: request.description.len(),
        });
    }
    scope(request.role(), &request.grants, &request.plan)
}

/// What a token asked for: its subject, scope and lifetime, checked.
///
/// # Errors
/// The first rule of `CreateTokenRequest` the request breaks.
pub fn check_new_token(
    request: &api::CreateTokenRequest,
) -> Result<(String, Scope, Duration), KeyRuleError> {
    let subject = &request.subject;
    if subject.is_empty() {
        return Err(KeyRuleError::NoSubject);
    }
    if subject.len() > MAX_SUBJECT_BYTES || subject.chars().any(char::is_control) {
        return Err(KeyRuleError::BadSubject);
    }
    let ttl = token_ttl(request.ttl_seconds)?;
    let scope = scope(request.role(), &request.grants, &request.plan)?;
    Ok((subject.clone(), scope, ttl))
}

/// A token's lifetime as asked for in seconds: 0 for the default.
///
/// # Errors
/// [`KeyRuleError::TtlTooLong`] past the longest.
pub fn token_ttl(seconds: u64) -> Result<Duration, KeyRuleError> {
    match seconds {
        0 => Ok(DEFAULT_TOKEN_TTL),
        s if s > MAX_TOKEN_TTL.as_secs() => Err(KeyRuleError::TtlTooLong { got: s }),
        s => Ok(Duration::from_secs(s)),
    }
}

/// What a new user asked for: their name and scope, checked (and the password within
/// its limits).
///
/// # Errors
/// The first rule of `CreateUserRequest` the request breaks.
pub fn check_new_user(request: &api::CreateUserRequest) -> Result<(String, Scope), KeyRuleError> {
    check_user_name(&request.name)?;
    check_password(&request.password)?;
    let scope = scope(request.role(), &request.grants, &request.plan)?;
    Ok((request.name.clone(), scope))
}

/// The plan a key, user or token names: `None` for an empty field.
fn plan_field(name: &str) -> Result<Option<String>, KeyRuleError> {
    if name.is_empty() {
        return Ok(None);
    }
    check_plan_name(name)?;
    Ok(Some(name.to_owned()))
}

/// A plan as its message.
#[must_use]
pub fn plan_message(plan: &Plan) -> api::Plan {
    api::Plan {
        name: plan.name.clone(),
        requests_per_second: plan.requests_per_second,
        burst: plan.burst,
        max_collections: plan.max_collections,
        max_points: plan.max_points,
    }
}

/// The plan a message asks for, checked.
///
/// # Errors
/// [`KeyRuleError::BadPlan`] for a plan that breaks the rules.
pub fn plan_record(message: &api::Plan) -> Result<Plan, KeyRuleError> {
    let plan = Plan {
        name: message.name.clone(),
        requests_per_second: message.requests_per_second,
        burst: message.burst,
        max_collections: message.max_collections,
        max_points: message.max_points,
    };
    plan.check()?;
    Ok(plan)
}

/// Whether `name` may name a user.
///
/// # Errors
/// [`KeyRuleError::BadUserName`].
pub fn check_user_name(name: &str) -> Result<(), KeyRuleError> {
    let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '@');
    if name.is_empty() || name.len() > MAX_USER_NAME_BYTES || !name.chars().all(allowed) {
        return Err(KeyRuleError::BadUserName);
    }
    Ok(())
}

/// A role and grants that go together (a scoped caller has grants, an admin none), and
/// a plan name.
fn scope(
    role: api::KeyRole,
    given: &[api::CollectionGrant],
    plan: &str,
) -> Result<Scope, KeyRuleError> {
    let role = self::role(role)?;
    let grants = grants(given)?;
    match role {
        Role::Scoped if grants.is_empty() => return Err(KeyRuleError::ScopedWithoutGrants),
        Role::Admin if !grants.is_empty() => return Err(KeyRuleError::AdminWithGrants),
        _ => {}
    }
    Ok(Scope {
        role,
        grants,
        plan: plan_field(plan)?,
    })
}

fn role(role: api::KeyRole) -> Result<Role, KeyRuleError> {
    match role {
        api::KeyRole::Admin => Ok(Role::Admin),
        api::KeyRole::Read => Ok(Role::Read),
        api::KeyRole::Scoped => Ok(Role::Scoped),
        api::KeyRole::Unspecified => Err(KeyRuleError::NoRole),
    }
}

fn grants(given: &[api::CollectionGrant]) -> Result<BTreeMap<String, Access>, KeyRuleError> {
    if given.len() > MAX_GRANTS {
        return Err(KeyRuleError::TooManyGrants { got: given.len() });
    }
    let mut out = BTreeMap::new();
    for (index, grant) in given.iter().enumerate() {
        check_collection_name(&grant.collection).map_err(|e| KeyRuleError::BadCollection {
            index,
            reason: e.to_string(),
        })?;
        let access = match grant.access() {
            api::Access::Read => Access::Read,
            api::Access::ReadWrite => Access::ReadWrite,
            api::Access::Unspecified => {
                return Err(KeyRuleError::NoAccess {
                    index,
                    collection: grant.collection.clone(),
                });
            }
        };
        if out.insert(grant.collection.clone(), access).is_some() {
            return Err(KeyRuleError::DuplicateGrant {
                collection: grant.collection.clone(),
            });
        }
    }
    Ok(out)
}

/// Grants as their messages, ordered by collection.
fn grant_messages(grants: &BTreeMap<String, Access>) -> Vec<api::CollectionGrant> {
    grants
        .iter()
        .map(|(collection, access)| {
            let mut grant = api::CollectionGrant {
                collection: collection.clone(),
                ..Default::default()
            };
            grant.set_access(match access {
                Access::Read => api::Access::Read,
                Access::ReadWrite => api::Access::ReadWrite,
            });
            grant
        })
        .collect()
}

fn role_message(role: Role) -> api::KeyRole {
    match role {
        Role::Admin => api::KeyRole::Admin,
        Role::Read => api::KeyRole::Read,
        Role::Scoped => api::KeyRole::Scoped,
    }
}

/// A key as `List` shows it.
#[must_use]
pub fn key_info(record: &KeyRecord) -> api::KeyInfo {
    let mut info = api::KeyInfo {
        id: record.id.clone(),
        description: record.description.clone(),
        created_at_unix_ms: record.created_at_ms,
        grants: grant_messages(&record.grants),
        plan: record.plan.clone().unwrap_or_default(),
        ..Default::default()
    };
    info.set_role(role_message(record.role));
    info
}

/// A user as `List` shows them.
#[must_use]
pub fn user_info(record: &UserRecord) -> api::UserInfo {
    let mut info = api::UserInfo {
        name: record.name.clone(),
        created_at_unix_ms: record.created_at_ms,
        grants: grant_messages(&record.grants),
        plan: record.plan.clone().unwrap_or_default(),
        ..Default::default()
    };
    info.set_role(role_message(record.role));
    info
}

/// A stored user as the routing table carries them.
#[must_use]
pub fn user_entry(record: &UserRecord) -> UserEntry {
    UserEntry {
        user: Some(user_info(record)),
        password_phc: record.password_phc.clone(),
    }
}

/// The record an entry carries.
///
/// # Errors
/// [`KeyRuleError::Damaged`] for an entry without a user or a password hash; the rules
/// of a new user for their name, role and grants.
pub fn user_record(entry: &UserEntry) -> Result<UserRecord, KeyRuleError> {
    let info = entry
        .user
        .as_ref()
        .ok_or_else(|| KeyRuleError::Damaged("no user".into()))?;
    if !entry.password_phc.starts_with("$argon2id$") {
        return Err(KeyRuleError::Damaged("no Argon2id password hash".into()));
    }
    check_user_name(&info.name)?;
    let Scope { role, grants, plan } = scope(info.role(), &info.grants, &info.plan)?;
    Ok(UserRecord {
        name: info.name.clone(),
        password_phc: entry.password_phc.clone(),
        role,
        grants,
        created_at_ms: info.created_at_unix_ms,
        plan,
    })
}

/// A stored key as the routing table carries it.
#[must_use]
pub fn key_entry(record: &KeyRecord) -> ApiKeyEntry {
    ApiKeyEntry {
        key: Some(key_info(record)),
        secret_sha256: record.secret_sha256.clone(),
    }
}

/// The record an entry carries.
///
/// # Errors
/// [`KeyRuleError::Damaged`] for an entry without a key, a role, or a hash of 64 hex
/// digits; the rules of a new key for its grants.
pub fn key_record(entry: &ApiKeyEntry) -> Result<KeyRecord, KeyRuleError> {
    let info = entry
        .key
        .as_ref()
        .ok_or_else(|| KeyRuleError::Damaged("no key".into()))?;
    SecretHash::from_hex(&entry.secret_sha256).map_err(|e| KeyRuleError::Damaged(e.to_string()))?;
    if info.id.is_empty() {
        return Err(KeyRuleError::Damaged("no id".into()));
    }
    Ok(KeyRecord {
        id: info.id.clone(),
        secret_sha256: entry.secret_sha256.to_ascii_lowercase(),
        role: role(info.role())?,
        grants: grants(&info.grants)?,
        description: info.description.clone(),
        created_at_ms: info.created_at_unix_ms,
        plan: plan_field(&info.plan)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grant(collection: &str, access: api::Access) -> api::CollectionGrant {
        let mut g = api::CollectionGrant {
            collection: collection.into(),
            ..Default::default()
        };
        g.set_access(access);
        g
    }

    fn request(role: api::KeyRole, grants: Vec<api::CollectionGrant>) -> api::CreateKeyRequest {
        let mut r = api::CreateKeyRequest {
            grants,
            ..Default::default()
        };
        r.set_role(role);
        r
    }

    #[test]
    fn new_keys_follow_the_rules() {
        let scope = check_new_key(&request(
            api::KeyRole::Scoped,
            vec![grant("docs", api::Access::ReadWrite)],
        ))
        .unwrap();
        assert_eq!(scope.role, Role::Scoped);
        assert_eq!(scope.grants["docs"], Access::ReadWrite);
        assert_eq!(scope.plan, None);
        let mut on_plan = request(api::KeyRole::Read, vec![]);
        on_plan.plan = "free".into();
        assert_eq!(
            check_new_key(&on_plan).unwrap().plan.as_deref(),
            Some("free")
        );
        on_plan.plan = "no plan".into();
        assert!(matches!(
            check_new_key(&on_plan),
            Err(KeyRuleError::BadPlan(_))
        ));
        let refused = |r| check_new_key(&r).unwrap_err();
        assert_eq!(
            refused(request(api::KeyRole::Unspecified, vec![])),
            KeyRuleError::NoRole
        );
        assert_eq!(
            refused(request(api::KeyRole::Scoped, vec![])),
            KeyRuleError::ScopedWithoutGrants
        );
        assert_eq!(
            refused(request(
                api::KeyRole::Admin,
                vec![grant("a", api::Access::Read)]
            )),
            KeyRuleError::AdminWithGrants
        );
        assert!(matches!(
            refused(request(
                api::KeyRole::Read,
                vec![grant("a b", api::Access::Read)]
            )),
            KeyRuleError::BadCollection { index: 0, .. }
        ));
        assert!(matches!(
            refused(request(
                api::KeyRole::Read,
                vec![grant("a", api::Access::Unspecified)]
            )),
            KeyRuleError::NoAccess { index: 0, .. }
        ));
        assert!(matches!(
            refused(request(
                api::KeyRole::Read,
                vec![
                    grant("a", api::Access::Read),
                    grant("a", api::Access::ReadWrite)
                ]
            )),
            KeyRuleError::DuplicateGrant { .. }
        ));
        let mut long = request(api::KeyRole::Read, vec![]);
        long.description = "x".repeat(MAX_KEY_DESCRIPTION_BYTES + 1);
        assert!(matches!(
            refused(long),
            KeyRuleError::DescriptionTooLong { .. }
        ));
    }

    #[test]
    fn new_tokens_follow_the_rules() {
        let token = |subject: &str, ttl_seconds: u64| {
            let mut r = api::CreateTokenRequest {
                subject: subject.into(),
                grants: vec![grant("docs", api::Access::Read)],
                ttl_seconds,
                ..Default::default()
            };
            r.set_role(api::KeyRole::Scoped);
            check_new_token(&r)
        };
        let (subject, scope, ttl) = token("alice", 0).unwrap();
        assert_eq!((subject.as_str(), scope.role), ("alice", Role::Scoped));
        assert_eq!(scope.grants["docs"], Access::Read);
        assert_eq!(ttl, DEFAULT_TOKEN_TTL);
        assert_eq!(token("alice", 60).unwrap().2, Duration::from_secs(60));
        assert_eq!(token("", 0).unwrap_err(), KeyRuleError::NoSubject);
        assert_eq!(token("a\nb", 0).unwrap_err(), KeyRuleError::BadSubject);
        assert_eq!(
            token(&"a".repeat(MAX_SUBJECT_BYTES + 1), 0).unwrap_err(),
            KeyRuleError::BadSubject
        );
        let too_long = MAX_TOKEN_TTL.as_secs() + 1;
        assert_eq!(
            token("alice", too_long).unwrap_err(),
            KeyRuleError::TtlTooLong { got: too_long }
        );
        let mut admin_with_grants = api::CreateTokenRequest {
            subject: "ops".into(),
            grants: vec![grant("docs", api::Access::Read)],
            ..Default::default()
        };
        admin_with_grants.set_role(api::KeyRole::Admin);
        assert_eq!(
            check_new_token(&admin_with_grants).unwrap_err(),
            KeyRuleError::AdminWithGrants
        );
    }

    #[test]
    fn new_users_follow_the_rules_and_round_trip_through_entries() {
        let user = |name: &str, password: &str| {
            let mut r = api::CreateUserRequest {
                name: name.into(),
                password: password.into(),
                ..Default::default()
            };
            r.set_role(api::KeyRole::Read);
            check_new_user(&r)
        };
        assert_eq!(
            user("ann.lee@example", "long enough").unwrap().1.role,
            Role::Read
        );
        assert_eq!(user("", "long enough"), Err(KeyRuleError::BadUserName));
        assert_eq!(user("a b", "long enough"), Err(KeyRuleError::BadUserName));
        assert!(matches!(
            user("ann", "short"),
            Err(KeyRuleError::BadPassword(_))
        ));
        let record = UserRecord {
            name: "ann".into(),
            password_phc: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA".into(),
            role: Role::Scoped,
            grants: [("docs".to_owned(), Access::Read)].into(),
            created_at_ms: 9,
            plan: None,
        };
        assert_eq!(user_record(&user_entry(&record)).unwrap(), record);
        let mut damaged = user_entry(&record);
        damaged.password_phc = "plain".into();
        assert!(matches!(
            user_record(&damaged),
            Err(KeyRuleError::Damaged(_))
        ));
    }

    #[test]
    fn records_round_trip_through_entries() {
        let record = KeyRecord {
            id: "abcdefghijkl".into(),
            secret_sha256: SecretHash::of("s").to_hex(),
            role: Role::Read,
            grants: [("docs".to_owned(), Access::ReadWrite)].into(),
            description: "ci".into(),
            created_at_ms: 7,
            plan: None,
        };
        assert_eq!(key_record(&key_entry(&record)).unwrap(), record);
        let mut damaged = key_entry(&record);
        damaged.secret_sha256 = "zz".into();
        assert!(matches!(
            key_record(&damaged),
            Err(KeyRuleError::Damaged(_))
        ));
    }
}
