//! `hippo schedule`: the scheduler's entries through the API (`list`,
//! `run`), and `next`, which prints the fire times of a cron expression
//! without a server, to check it before it goes into `schedules.toml`.

use crate::control::{Api, print};
use clap::{Args, Subcommand};
use hippo::broker::now_ms;
use hippo::scheduler::{CronSchedule, rfc3339};

#[derive(Subcommand, Debug)]
pub enum Schedule {
    /// Entries with their cron expression, next 5 fire times and latest fire.
    List(Api),
    /// Submits an entry's task now, as a new task.
    Run(RunArgs),
    /// Prints the next fire times (UTC) of a cron expression: 5 fields, or 6
    /// with seconds first.
    Next {
        /// The expression, e.g. "0 2 * * *".
        cron: String,
        /// How many fire times.
        #[arg(long, default_value_t = 5)]
        count: usize,
    },
}

#[derive(Args, Debug)]
pub struct RunArgs {
    #[command(flatten)]
    api: Api,
    /// Entry name, e.g. `auto-deduplicate-memories`.
    name: String,
}

pub async fn schedule(what: Schedule) -> anyhow::Result<u8> {
    match what {
        Schedule::List(api) => print(&api.client()?.schedules().await?)?,
        Schedule::Run(args) => {
            let task = args.api.client()?.run_schedule(&args.name).await?;
            print(&serde_json::json!({ "schedule": args.name, "task_id": task.id }))?;
        }
        Schedule::Next { cron, count } => {
            let schedule = CronSchedule::parse(&cron)?;
            let times: Vec<String> = schedule
                .upcoming(now_ms(), count)
                .into_iter()
                .map(rfc3339)
                .collect();
            print(&serde_json::json!({
                "cron": schedule.expression(),
                "description": schedule.describe(),
                "timezone": "UTC",
                "next_fire_times": times,
                "warning": schedule.lint(),
            }))?;
        }
    }
    Ok(0)
}
