//! `vectron users create|list|delete` (an admin's calls) and `vectron login`: people who
//! log in with a name and a password and get a token.

use std::io::BufRead as _;
use std::time::Duration;

use clap::{Args, Subcommand};
use vectron_client::api::{DeleteUserResponse, ListUsersResponse};
use vectron_client::{CollectionGrant, CreateUserRequest, KeyRole, UserInfo};

use super::keys::{RoleArg, grants_text, parse_grant, role_text};
use super::{CliError, Connection, DEFAULT_TIMEOUT, output};

/// Create, list and delete users (an admin's calls: give the admin key with --api-key).
#[derive(Debug, Args)]
pub(crate) struct UsersArgs {
    #[command(subcommand)]
    command: UsersCommand,
    #[command(flatten)]
    connection: Connection,
}

#[derive(Debug, Subcommand)]
enum UsersCommand {
    /// Make a user. The password comes from standard input (its first line) with
    /// --password-stdin, or from VECTRON_PASSWORD; the cluster keeps only an Argon2id
    /// hash of it.
    ///
    /// Example: echo "$PASSWORD" | vectron users create ann --role read --password-stdin
    Create(CreateArgs),
    /// List the users (names, roles, grants; never passwords).
    List,
    /// Delete a user: they log in no more (tokens they hold live until they expire).
    Delete {
        /// Their name.
        name: String,
    },
}

#[derive(Debug, Args)]
struct CreateArgs {
    /// The name they log in with: letters, digits, `_`, `-`, `.` and `@`.
    name: String,
    /// What they may do everywhere: admin, read (read every collection), scoped (only
    /// their grants).
    #[arg(long, value_enum)]
    role: RoleArg,
    /// A collection they may use beyond their role, as NAME:read or NAME:read_write
    /// (repeat for several).
    #[arg(long = "grant", value_name = "NAME:ACCESS", value_parser = parse_grant)]
    grants: Vec<CollectionGrant>,
    /// The plan that limits their calls [default: none, not limited].
    #[arg(long, default_value = "")]
    plan: String,
    #[command(flatten)]
    password: PasswordArg,
}

/// Where a password comes from: never the command line, where other users of the
/// machine could read it.
#[derive(Debug, Args)]
struct PasswordArg {
    /// Read the password from the first line of standard input (else it is taken from
    /// VECTRON_PASSWORD).
    #[arg(long)]
    password_stdin: bool,
}

impl PasswordArg {
    fn read(self) -> Result<String, CliError> {
        if self.password_stdin {
            let mut line = String::new();
            std::io::stdin()
                .lock()
                .read_line(&mut line)
                .map_err(|e| CliError::Flag {
                    flag: "password-stdin",
                    reason: format!("reading standard input: {e}"),
                })?;
            return Ok(line.trim_end_matches(['\r', '\n']).to_owned());
        }
        std::env::var("VECTRON_PASSWORD").map_err(|_| CliError::Flag {
            flag: "password-stdin",
            reason:
                "give the password on standard input with --password-stdin, or in VECTRON_PASSWORD"
                    .into(),
        })
    }
}

/// Log in with a name and a password and print a token carrying the user's role and
/// grants (use it as --api-key, or `authorization: Bearer TOKEN`).
///
/// Example: TOKEN=$(echo "$PASSWORD" | vectron login ann --password-stdin)
#[derive(Debug, Args)]
pub(crate) struct LoginArgs {
    /// The user's name.
    name: String,
    #[command(flatten)]
    password: PasswordArg,
    /// Lifetime of the token in seconds (at most 30 days).
    #[arg(long = "ttl", value_name = "SECONDS", default_value_t = 3600)]
    ttl_seconds: u64,
    #[command(flatten)]
    connection: Connection,
}

/// One line per user: name, role, grants.
fn line(user: &UserInfo) -> String {
    format!(
        "{:<16}  {:<6}  {}",
        user.name,
        role_text(user.role()),
        grants_text(&user.grants)
    )
}

impl UsersArgs {
    pub(crate) fn json(&self) -> bool {
        self.connection.json
    }

    pub(crate) async fn run(self) -> Result<(), CliError> {
        let json = self.connection.json;
        let client = self.connection.connect(Some(DEFAULT_TIMEOUT)).await?;
        match self.command {
            UsersCommand::Create(args) => {
                let mut request = CreateUserRequest {
                    name: args.name,
                    password: args.password.read()?,
                    grants: args.grants,
                    plan: args.plan,
                    ..CreateUserRequest::default()
                };
                request.set_role(KeyRole::from(args.role));
                let made = client.create_user(request).await?;
                output::answer(json, &made, || format!("created user {}", made.name));
            }
            UsersCommand::List => {
                let users = client.list_users().await?;
                let listed = ListUsersResponse { users };
                output::listing(json, &listed, &listed.users, line, "no users");
            }
            UsersCommand::Delete { name } => {
                client.delete_user(&name).await?;
                output::answer(json, &DeleteUserResponse {}, || {
                    format!("deleted user {name}")
                });
            }
        }
        Ok(())
    }
}

impl LoginArgs {
    pub(crate) fn json(&self) -> bool {
        self.connection.json
    }

    pub(crate) async fn run(self) -> Result<(), CliError> {
        let json = self.connection.json;
        let password = self.password.read()?;
        let client = self.connection.connect(Some(DEFAULT_TIMEOUT)).await?;
        let made = client
            .login(&self.name, &password, Duration::from_secs(self.ttl_seconds))
            .await?;
        output::answer(json, &made, || made.token.clone());
        Ok(())
    }
}
