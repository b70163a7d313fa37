//! `vectron plans set|list|delete`: how fast keys, users and tokens on a plan may call
//! (an admin's calls).

use clap::{Args, Subcommand};
use vectron_client::Plan;
use vectron_client::api::{DeletePlanResponse, ListPlansResponse};

use super::{CliError, Connection, DEFAULT_TIMEOUT, output};

/// Make, change, list and delete plans: each caller on a plan may make
/// `--rps` calls a second, `--burst` at once (an admin's calls).
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
    /// Example: vectron plans set free --rps 10 --burst 20
    Set {
        /// Its name: letters, digits, `_`, `-` and `.`.
        name: String,
        /// Calls a second each caller may make, sustained.
        #[arg(long)]
        rps: u32,
        /// Calls a caller may make at once after a quiet spell [default: --rps].
        #[arg(long)]
        burst: Option<u32>,
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
    format!(
        "{:<16}  {} calls/s  burst {}",
        plan.name, plan.requests_per_second, plan.burst
    )
}

impl PlansArgs {
    pub(crate) fn json(&self) -> bool {
        self.connection.json
    }

    pub(crate) async fn run(self) -> Result<(), CliError> {
        let json = self.connection.json;
        let client = self.connection.connect(Some(DEFAULT_TIMEOUT)).await?;
        match self.command {
            PlansCommand::Set { name, rps, burst } => {
                let set = client
                    .set_plan(Plan {
                        name,
                        requests_per_second: rps,
                        burst: burst.unwrap_or(rps),
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
