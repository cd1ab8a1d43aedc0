//! The scheduler's entries (`/api/v1/tasks/scheduled`): list them with
//! their next fire times, and run one now.
//!
//! ```no_run
//! # async fn demo() -> Result<(), hippo_client::ClientError> {
//! let client = hippo_client::Client::new("http://127.0.0.1:8000", "my-key")?;
//! for schedule in client.schedules().await? {
//!     println!("{} ({}): next {:?}", schedule.name, schedule.cron, schedule.next_fire_times.first());
//! }
//! let task = client.run_schedule("auto-deduplicate-memories").await?;
//! println!("submitted {}", task.id);
//! # Ok(()) }
//! ```

use super::{Body, Client, ClientError, TaskHandle};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A scheduler entry, as `GET /api/v1/tasks/scheduled` lists it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Schedule {
    /// Entry name, e.g. `auto-deduplicate-memories`.
    pub name: String,
    /// The task it submits.
    pub task: String,
    /// The queue the task goes to.
    pub queue: String,
    /// Cron expression: 5 fields, or 6 with seconds first.
    pub cron: String,
    /// The expression in English.
    #[serde(default)]
    pub description: String,
    /// The time zone of the expression (`UTC`).
    pub timezone: String,
    /// Disabled entries fire only when run by hand.
    pub enabled: bool,
    /// The task's JSON input.
    #[serde(default)]
    pub input: Value,
    /// A submitted task not started within this many seconds is revoked.
    #[serde(default)]
    pub expires_s: Option<f64>,
    /// The next 5 times the expression names (RFC 3339, UTC).
    pub next_fire_times: Vec<String>,
    /// When the entry last fired, on schedule or by hand (RFC 3339, UTC).
    #[serde(default)]
    pub last_fire_time: Option<String>,
    /// The task it last submitted.
    #[serde(default)]
    pub last_task_id: Option<String>,
    /// `schedule` or `manual`.
    #[serde(default)]
    pub last_trigger: Option<String>,
    /// Whether the server has a plugin offering the task.
    #[serde(default)]
    pub task_registered: bool,
    /// Set when the expression fires many times in a row (e.g. `* 0 * * *`).
    #[serde(default)]
    pub warning: Option<String>,
}

impl Client {
    /// The scheduler's entries, enabled or not, with their next fire times.
    pub async fn schedules(&self) -> Result<Vec<Schedule>, ClientError> {
        #[derive(Deserialize)]
        struct Answer {
            schedules: Vec<Schedule>,
        }
        let answer: Answer = self.get_json(&["api", "v1", "tasks", "scheduled"]).await?;
        Ok(answer.schedules)
    }

    /// Submits entry `name`'s task now, as a new task (404 [`ClientError::Api`]
    /// for an unknown name). Needs the `submit` scope.
    pub async fn run_schedule(&self, name: &str) -> Result<TaskHandle, ClientError> {
        self.queue(
            &["api", "v1", "tasks", "scheduled", name, "run"],
            Body::None,
        )
        .await
    }
}
