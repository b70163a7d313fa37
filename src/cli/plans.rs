//! `vectron plans set|list|delete`: how fast keys, users and tokens on a plan may call,
//! and how many collections and points they may own (an admin's calls).

use std::fmt::Write as _;

use clap::{Args, Subcommand};
use vectron_client::Plan;
use vectron_client::api::{DeletePlanResponse, ListPlansResponse};

use super::{CliError, Connection, DEFAULT_TIMEOUT, output};

/// Make, change, list and delete plans: each caller on a plan may make
/// `--rps` calls a second, `--burst` at once, and own `--max-collections` collections
/// holding `--max-points` points together (an admin's calls).
#[derive(Debug, Args)]
pub(crate) struct PlansArgs {
    #[command(subcommand)]
    command: PlansCommand,
    #[command(flatten)]
    connection: Connection,
}

#[derive(Debug, Subcommand)]
enum PlansCommand {
    /// Make a plan, or change one (callers on it get the new rate within a second).
    ///
    /// Example: vectron plans set free --rps 10 --burst 20 --max-collections 3
    /// --max-points 100000
    Set {
        /// Its name: letters, digits, `_`, `-` and `.`.
        name: String,
        /// Calls a second each caller may make, sustained.
        #[arg(long)]
        rps: u32,
        /// Calls a caller may make at once after a quiet spell [default: --rps].
        #[arg(long)]
        burst: Option<u32>,
        /// Collections a caller may own (create) at once; with it, callers that are not
        /// admins may create collections [default: no bound, and only admins create].
        #[arg(long)]
        max_collections: Option<u32>,
        /// Points the collections a caller owns may hold together [default: no bound].
        #[arg(long)]
        max_points: Option<u64>,
    },
    /// List the plans.
    List,
    /// Delete a plan no key or user names.
    Delete {
        /// Its name.
        name: String,
    },
}

fn line(plan: &Plan) -> String {
    let mut line = format!(
        "{:<16}  {} calls/s  burst {}",
        plan.name, plan.requests_per_second, plan.burst
    );
    if let Some(n) = plan.max_collections {
        let _ = write!(line, "  max {n} collections");
    }
    if let Some(n) = plan.max_points {
        let _ = write!(line, "  max {n} points");
    }
    line
}

impl PlansArgs {
    pub(crate) fn json(&self) -> bool {
        self.connection.json
    }

    pub(crate) async fn run(self) -> Result<(), CliError> {
        let json = self.connection.json;
        let client = self.connection.connect(Some(DEFAULT_TIMEOUT)).await?;
        match self.command {
            PlansCommand::Set {
                name,
                rps,
                burst,
                max_collections,
                max_points,
            } => {
                let set = client
                    .set_plan(Plan {
                        name,
                        requests_per_second: rps,
                        burst: burst.unwrap_or(rps),
                        max_collections,
                        max_points,
                    })
                    .await?;
                output::answer(json, &set, || format!("set plan {}", line(&set)));
            }
            PlansCommand::List => {
                let plans = client.list_plans().await?;
                let listed = ListPlansResponse { plans };
                output::listing(json, &listed, &listed.plans, line, "no plans");
            }
            PlansCommand::Delete { name } => {
                client.delete_plan(&name).await?;
                output::answer(json, &DeletePlanResponse {}, || {
                    format!("deleted plan {name}")
                });
            }
        }
        Ok(())
    }
}
