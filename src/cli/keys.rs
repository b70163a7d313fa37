//! `vectron keys create|list|revoke|token`: API keys and tokens, an admin's calls (pass
//! the admin key with --api-key).

use clap::{Args, Subcommand, ValueEnum};
use vectron_client::api::{ListKeysResponse, RevokeKeyResponse};
use vectron_client::{
    Access, CollectionGrant, CreateKeyRequest, CreateTokenRequest, KeyInfo, KeyRole,
};

use super::{CliError, Connection, DEFAULT_TIMEOUT, output};

/// Create, list and revoke API keys, and mint tokens (an admin's calls: give the admin
/// key with --api-key).
#[derive(Debug, Args)]
pub(crate) struct KeysArgs {
    #[command(subcommand)]
    command: KeysCommand,
    #[command(flatten)]
    connection: Connection,
}

#[derive(Debug, Subcommand)]
enum KeysCommand {
    /// Make a key and print it. The key is shown this once: the cluster keeps only a
    /// hash of its secret.
    ///
    /// Example: vectron keys create --role scoped --grant docs:read_write
    Create(CreateArgs),
    /// List the keys (ids, roles, grants; never secrets).
    List,
    /// Revoke a key by id: every gateway refuses it within a second.
    Revoke {
        /// The key's id (the 12 characters after vk_).
        id: String,
    },
    /// Mint a token and print it: a JWT every gateway sharing the token secret
    /// (--jwt-secret-file) takes until it expires. It cannot be revoked, so keep its
    /// lifetime short.
    ///
    /// Example: vectron keys token --subject ci --role scoped --grant docs:read --ttl 600
    Token(TokenArgs),
}

#[derive(Debug, Args)]
struct TokenArgs {
    /// Whom the token is for: logs and refusals name it.
    #[arg(long)]
    subject: String,
    /// What the token may do everywhere.
    #[arg(long, value_enum)]
    role: RoleArg,
    /// A collection the token may use beyond its role, as NAME:read or NAME:read_write
    /// (repeat for several).
    #[arg(long = "grant", value_name = "NAME:ACCESS", value_parser = parse_grant)]
    grants: Vec<CollectionGrant>,
    /// Its lifetime in seconds (at most 30 days).
    #[arg(long = "ttl", value_name = "SECONDS", default_value_t = 3600)]
    ttl_seconds: u64,
    /// The plan that limits its calls [default: none, not limited].
    #[arg(long, default_value = "")]
    plan: String,
}

impl TokenArgs {
    fn request(self) -> CreateTokenRequest {
        let mut request = CreateTokenRequest {
            subject: self.subject,
            grants: self.grants,
            ttl_seconds: self.ttl_seconds,
            plan: self.plan,
            ..CreateTokenRequest::default()
        };
        request.set_role(self.role.into());
        request
    }
}

#[derive(Debug, Args)]
struct CreateArgs {
    /// What the key may do everywhere: admin (everything), read (read every
    /// collection), scoped (only its grants).
    #[arg(long, value_enum)]
    role: RoleArg,
    /// A collection the key may use beyond its role, as NAME:read or NAME:read_write
    /// (repeat for several).
    #[arg(long = "grant", value_name = "NAME:ACCESS", value_parser = parse_grant)]
    grants: Vec<CollectionGrant>,
    /// What the key is for.
    #[arg(long, default_value = "")]
    description: String,
    /// The plan that limits its calls (`vectron plans set`) [default: none, not limited].
    #[arg(long, default_value = "")]
    plan: String,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub(super) enum RoleArg {
    /// Everything, keys included.
    Admin,
    /// Read every collection and the statistics.
    Read,
    /// Only the collections its grants name.
    Scoped,
}

pub(super) fn parse_grant(text: &str) -> Result<CollectionGrant, String> {
    let (collection, access) = text
        .rsplit_once(':')
        .ok_or_else(|| format!("{text:?} is not NAME:read or NAME:read_write"))?;
    let access = match access {
        "read" => Access::Read,
        "read_write" => Access::ReadWrite,
        other => return Err(format!("access {other:?} is not read or read_write")),
    };
    let mut grant = CollectionGrant {
        collection: collection.to_owned(),
        ..CollectionGrant::default()
    };
    grant.set_access(access);
    Ok(grant)
}

impl CreateArgs {
    fn request(self) -> CreateKeyRequest {
        let mut request = CreateKeyRequest {
            grants: self.grants,
            description: self.description,
            plan: self.plan,
            ..CreateKeyRequest::default()
        };
        request.set_role(self.role.into());
        request
    }
}

impl From<RoleArg> for KeyRole {
    fn from(role: RoleArg) -> Self {
        match role {
            RoleArg::Admin => KeyRole::Admin,
            RoleArg::Read => KeyRole::Read,
            RoleArg::Scoped => KeyRole::Scoped,
        }
    }
}

/// One line per key: id, role, grants, description.
fn line(key: &KeyInfo) -> String {
    format!(
        "{:<12}  {:<6}  {}  {}",
        key.id,
        role_text(key.role()),
        grants_text(&key.grants),
        key.description
    )
    .trim_end()
    .to_owned()
}

/// A role as the CLI writes it.
pub(super) fn role_text(role: KeyRole) -> &'static str {
    match role {
        KeyRole::Admin => "admin",
        KeyRole::Read => "read",
        KeyRole::Scoped => "scoped",
        KeyRole::Unspecified => "?",
    }
}

/// Grants as the CLI writes them: `NAME:ACCESS,…`, or `-` for none.
pub(super) fn grants_text(grants: &[CollectionGrant]) -> String {
    let grants: Vec<String> = grants
        .iter()
        .map(|g| {
            let access = match g.access() {
                Access::Read => "read",
                Access::ReadWrite => "read_write",
                Access::Unspecified => "?",
            };
            format!("{}:{access}", g.collection)
        })
        .collect();
    if grants.is_empty() {
        "-".to_owned()
    } else {
        grants.join(",")
    }
}

impl KeysArgs {
    pub(crate) fn json(&self) -> bool {
        self.connection.json
    }

    pub(crate) async fn run(self) -> Result<(), CliError> {
        let json = self.connection.json;
        let client = self.connection.connect(Some(DEFAULT_TIMEOUT)).await?;
        match self.command {
            KeysCommand::Create(args) => {
                let made = client.create_key(args.request()).await?;
                if json {
                    output::print_json(&made);
                } else {
                    let id = made.key.as_ref().map_or("", |k| k.id.as_str());
                    output::text(&format!(
                        "created key {id}; it is shown this once, keep it:\n{}\n",
                        made.secret
                    ));
                }
            }
            KeysCommand::List => {
                let keys = client.list_keys().await?;
                let listed = ListKeysResponse { keys };
                output::listing(json, &listed, &listed.keys, line, "no keys");
            }
            KeysCommand::Revoke { id } => {
                client.revoke_key(&id).await?;
                output::answer(json, &RevokeKeyResponse {}, || format!("revoked key {id}"));
            }
            KeysCommand::Token(args) => {
                let made = client.create_token(args.request()).await?;
                output::answer(json, &made, || made.token.clone());
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grants_parse_as_name_and_access() {
        let g = parse_grant("docs:read_write").unwrap();
        assert_eq!(
            (g.collection.as_str(), g.access()),
            ("docs", Access::ReadWrite)
        );
        assert_eq!(parse_grant("a:b:read").unwrap().collection, "a:b");
        assert!(parse_grant("docs").is_err());
        assert!(parse_grant("docs:write").is_err());
    }

    #[test]
    fn a_key_lists_as_id_role_grants_and_description() {
        let mut key = KeyInfo {
            id: "abcdefghijkl".into(),
            grants: vec![parse_grant("docs:read").unwrap()],
            description: "ci".into(),
            ..KeyInfo::default()
        };
        key.set_role(KeyRole::Scoped);
        assert_eq!(line(&key), "abcdefghijkl  scoped  docs:read  ci");
    }
}
