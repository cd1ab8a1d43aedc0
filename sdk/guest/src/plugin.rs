//! Plugins, their tasks, and dispatch from the `run` export to a task.

use std::fmt;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::bindings::hippo::tasks::types::{Limits, PluginInfo, TaskInfo};
use crate::{Context, TaskError};

/// A type-erased task function: JSON bytes in, JSON bytes out.
type Handler = Box<dyn Fn(&Context, &[u8]) -> Result<Vec<u8>, TaskError> + Send + Sync>;

/// One task a plugin offers: a name, a description, defaults for the queue
/// and resource limits, and the function that runs it.
pub struct Task {
    name: String,
    description: String,
    queue: String,
    limits: Limits,
    handler: Handler,
}

impl Task {
    /// A task named `name` (namespaced, e.g. `example.fib`) that runs `f`.
    ///
    /// The task's JSON input is deserialized into `I`; input that does not
    /// parse fails the run with [`TaskError::BadInput`] carrying serde's
    /// message (which names the field, line and column). An empty input is
    /// read as JSON `null`. The output is serialized to JSON.
    ///
    /// The default queue is `"default"`; no limits are set (the host's
    /// defaults apply) until the builder methods set them.
    pub fn new<I, O, F>(name: impl Into<String>, description: impl Into<String>, f: F) -> Self
    where
        I: DeserializeOwned,
        O: Serialize,
        F: Fn(&Context, I) -> Result<O, TaskError> + Send + Sync + 'static,
    {
        let name = name.into();
        let task_name = name.clone();
        let handler = move |ctx: &Context, input: &[u8]| {
            let input = decode_input::<I>(&task_name, input)?;
            let output = f(ctx, input)?;
            serde_json::to_vec(&output).map_err(|err| {
                TaskError::fatal(format!(
                    "task {task_name}: could not encode the output as JSON: {err}"
                ))
            })
        };
        Self {
            name,
            description: description.into(),
            queue: "default".to_owned(),
            limits: Limits {
                soft_time_limit_ms: None,
                hard_time_limit_ms: None,
                fuel: None,
                memory_bytes: None,
                table_elements: None,
                output_bytes: None,
                log_bytes: None,
            },
            handler: Box::new(handler),
        }
    }

    /// The queue the task goes to unless the submission names another.
    pub fn queue(mut self, queue: impl Into<String>) -> Self {
        self.queue = queue.into();
        self
    }

    /// Default soft time limit: after it, [`Context::soft_limit_passed`]
    /// turns true and the task should return what it has.
    pub fn soft_time_limit_ms(mut self, ms: u64) -> Self {
        self.limits.soft_time_limit_ms = Some(ms);
        self
    }

    /// Default hard time limit: after it, the host interrupts the task.
    pub fn hard_time_limit_ms(mut self, ms: u64) -> Self {
        self.limits.hard_time_limit_ms = Some(ms);
        self
    }

    /// Default fuel (roughly, wasm instructions) the task may burn.
    pub fn fuel(mut self, fuel: u64) -> Self {
        self.limits.fuel = Some(fuel);
        self
    }

    /// Default cap on linear memory, in bytes.
    pub fn memory_bytes(mut self, bytes: u64) -> Self {
        self.limits.memory_bytes = Some(bytes);
        self
    }

    /// Default cap on table elements.
    pub fn table_elements(mut self, elements: u32) -> Self {
        self.limits.table_elements = Some(elements);
        self
    }

    /// Default cap on the size of the task's JSON output, in bytes.
    pub fn output_bytes(mut self, bytes: u64) -> Self {
        self.limits.output_bytes = Some(bytes);
        self
    }

    /// Default cap on log bytes kept (host log lines plus stdout/stderr).
    pub fn log_bytes(mut self, bytes: u64) -> Self {
        self.limits.log_bytes = Some(bytes);
        self
    }

    fn info(&self) -> TaskInfo {
        TaskInfo {
            name: self.name.clone(),
            description: self.description.clone(),
            default_queue: self.queue.clone(),
            default_limits: self.limits,
        }
    }
}

impl fmt::Debug for Task {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Task")
            .field("name", &self.name)
            .field("description", &self.description)
            .field("queue", &self.queue)
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

/// Parses a task's JSON input; empty input counts as `null`.
fn decode_input<I: DeserializeOwned>(task_name: &str, input: &[u8]) -> Result<I, TaskError> {
    let input = if input.trim_ascii().is_empty() {
        b"null".as_slice()
    } else {
        input
    };
    let deserializer = &mut serde_json::Deserializer::from_slice(input);
    serde_path_to_error::deserialize(deserializer).map_err(|err| {
        // The path names the offending field (`memories[3].text`); `.` is the whole input.
        let field = err.path().to_string();
        let err = err.into_inner();
        TaskError::bad_input(format!(
            "invalid input for task {task_name}: field `{field}`: {err}"
        ))
    })
}

/// A plugin: a name, a semantic version and the tasks it offers.
///
/// Export it with [`export_plugin!`](crate::export_plugin).
#[derive(Debug)]
pub struct Plugin {
    name: String,
    version: String,
    tasks: Vec<Task>,
}

impl Plugin {
    /// An empty plugin; add tasks with [`task`](Self::task).
    pub fn new(name: impl Into<String>, version: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            version: version.into(),
            tasks: Vec::new(),
        }
    }

    /// Adds a task.
    ///
    /// # Panics
    ///
    /// If the plugin already has a task with the same name.
    pub fn task(mut self, task: Task) -> Self {
        assert!(
            self.tasks.iter().all(|t| t.name != task.name),
            "plugin {} registers task {} twice",
            self.name,
            task.name
        );
        self.tasks.push(task);
        self
    }

    /// Runs the task named `task_name` on the JSON `input` and returns its
    /// JSON output; this is what the `run` export does. An unknown task name
    /// is a [`TaskError::Fatal`] naming it.
    pub fn run(&self, ctx: &Context, task_name: &str, input: &[u8]) -> Result<Vec<u8>, TaskError> {
        let task = self
            .tasks
            .iter()
            .find(|t| t.name == task_name)
            .ok_or_else(|| {
                TaskError::fatal(format!(
                    "plugin {} has no task named {task_name:?}",
                    self.name
                ))
            })?;
        (task.handler)(ctx, input)
    }

    /// What the `describe` export returns: the plugin's name, version and
    /// tasks with their default queues and limits.
    pub fn info(&self) -> PluginInfo {
        PluginInfo {
            name: self.name.clone(),
            version: self.version.clone(),
            tasks: self.tasks.iter().map(Task::info).collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;

    use super::*;

    #[derive(Deserialize)]
    struct AddInput {
        a: i64,
        b: i64,
    }

    #[derive(Serialize)]
    struct AddOutput {
        sum: i64,
    }

    fn add(_ctx: &Context, input: AddInput) -> Result<AddOutput, TaskError> {
        let sum = input
            .a
            .checked_add(input.b)
            .ok_or_else(|| TaskError::bad_input("sum overflows"))?;
        Ok(AddOutput { sum })
    }

    fn ctx() -> Context {
        Context::new("00000000-0000-4000-8000-000000000000", 1, "default", 0, 0)
    }

    fn plugin() -> Plugin {
        Plugin::new("math", "1.2.3")
            .task(Task::new("math.add", "Adds two integers", add))
            .task(
                Task::new(
                    "math.null",
                    "Takes and returns null",
                    |_: &Context, (): ()| Ok(()),
                )
                .queue("slow")
                .soft_time_limit_ms(1)
                .hard_time_limit_ms(2)
                .fuel(3)
                .memory_bytes(4)
                .table_elements(5)
                .output_bytes(6)
                .log_bytes(7),
            )
    }

    #[test]
    fn dispatches_by_task_name() {
        let out = plugin()
            .run(&ctx(), "math.add", br#"{"a": 2, "b": 40}"#)
            .unwrap();
        assert_eq!(out, br#"{"sum":42}"#);
        assert_eq!(plugin().run(&ctx(), "math.null", b"null").unwrap(), b"null");
    }

    #[test]
    fn empty_input_is_null() {
        assert_eq!(plugin().run(&ctx(), "math.null", b"").unwrap(), b"null");
        assert_eq!(plugin().run(&ctx(), "math.null", b" \n").unwrap(), b"null");
    }

    #[test]
    fn task_errors_pass_through() {
        let err = plugin()
            .run(&ctx(), "math.add", br#"{"a": 9223372036854775807, "b": 1}"#)
            .unwrap_err();
        assert_eq!(err, TaskError::bad_input("sum overflows"));
    }

    #[test]
    fn unknown_task_is_fatal_and_named() {
        let err = plugin().run(&ctx(), "math.sub", b"{}").unwrap_err();
        assert_eq!(
            err,
            TaskError::fatal("plugin math has no task named \"math.sub\"")
        );
    }

    #[test]
    fn malformed_input_is_bad_input_with_serde_message() {
        let err = plugin()
            .run(&ctx(), "math.add", br#"{"a": 2}"#)
            .unwrap_err();
        let TaskError::BadInput(message) = err else {
            panic!("expected bad input, got {err:?}");
        };
        assert!(message.starts_with("invalid input for task math.add:"));
        assert!(message.contains("missing field `b`"), "{message}");

        let err = plugin()
            .run(&ctx(), "math.add", b"{\"a\": 2,\n")
            .unwrap_err();
        let TaskError::BadInput(message) = err else {
            panic!("expected bad input, got {err:?}");
        };
        assert!(message.contains("line 2"), "{message}");

        let err = plugin()
            .run(&ctx(), "math.add", br#"{"a": "two", "b": 1}"#)
            .unwrap_err();
        assert!(matches!(err, TaskError::BadInput(m) if m.contains("invalid type: string")));
    }

    #[test]
    fn unserializable_output_is_fatal() {
        let plugin = Plugin::new("p", "0.0.0").task(Task::new(
            "p.bad",
            "Returns a map with non-string keys",
            |_: &Context, (): ()| Ok(std::collections::HashMap::from([((1, 2), 3)])),
        ));
        let err = plugin.run(&ctx(), "p.bad", b"null").unwrap_err();
        assert!(
            matches!(&err, TaskError::Fatal(m) if m.starts_with("task p.bad: could not encode")),
            "{err:?}"
        );
    }

    #[test]
    fn describe_lists_tasks_with_defaults_and_limits() {
        let info = plugin().info();
        assert_eq!(info.name, "math");
        assert_eq!(info.version, "1.2.3");
        assert_eq!(info.tasks.len(), 2);
        assert_eq!(info.tasks[0].name, "math.add");
        assert_eq!(info.tasks[0].description, "Adds two integers");
        assert_eq!(info.tasks[0].default_queue, "default");
        assert_eq!(info.tasks[0].default_limits.soft_time_limit_ms, None);
        assert_eq!(info.tasks[1].default_queue, "slow");
        assert_eq!(
            info.tasks[1].default_limits,
            Limits {
                soft_time_limit_ms: Some(1),
                hard_time_limit_ms: Some(2),
                fuel: Some(3),
                memory_bytes: Some(4),
                table_elements: Some(5),
                output_bytes: Some(6),
                log_bytes: Some(7),
            }
        );
    }

    #[test]
    #[should_panic(expected = "plugin math registers task math.add twice")]
    fn duplicate_task_names_panic() {
        let _ = plugin().task(Task::new("math.add", "again", add));
    }
}
