//! A pass over every memory, a page at a time, that stops cleanly at the
//! soft time limit and picks up where it stopped on the next run.
//!
//! Where a pass stopped is kept in the key-value store (key
//! `<task>/cursor/<user or *>`, for a week), so a store too large for one
//! run is covered over several runs instead of its first pages again and
//! again. The key-value store is a convenience here: when it fails, the
//! pass logs a warning and starts from the beginning, or does not save.

use std::time::Duration;

use hippo_sdk::memory::{self, Filter, Stored};
use hippo_sdk::{Context, ServiceError, TaskError, kv};
use serde::Deserialize;
use serde_json::{Value, json};

/// Memories per page unless the input says otherwise, and the most.
const DEFAULT_PAGE: u32 = 256;
const MAX_PAGE: u32 = 1_000;
/// How long a saved cursor stays valid.
const CURSOR_TTL: Duration = Duration::from_secs(7 * 24 * 3600);

/// Input of the passes (`maintenance.dedup`, `.consolidate`, `.decay`);
/// every field is optional, so a schedule's `{}` runs a full pass.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PassInput {
    /// Only this user's memories (default: every user's).
    pub user_id: Option<String>,
    /// Memories per page (default 256, at most 1,000).
    pub page_size: Option<u32>,
    /// Start over instead of resuming where the last run stopped.
    pub restart: bool,
}

impl PassInput {
    /// The page size, checked.
    pub fn page_size(&self) -> Result<u32, TaskError> {
        let size = self.page_size.unwrap_or(DEFAULT_PAGE);
        if size == 0 || size > MAX_PAGE {
            return Err(TaskError::bad_input(format!(
                "field `page_size`: must be between 1 and {MAX_PAGE}"
            )));
        }
        Ok(size)
    }

    /// The filter of every memory the pass covers.
    pub fn filter(&self, include_archived: bool) -> Result<Filter, TaskError> {
        check_user_id(self.user_id.as_deref())?;
        Ok(Filter {
            user_id: self.user_id.clone(),
            include_archived,
            ..Filter::default()
        })
    }
}

/// Checks the optional `user_id` a maintenance task is limited to.
pub fn check_user_id(user_id: Option<&str>) -> Result<(), TaskError> {
    match user_id {
        Some(user) if user.is_empty() || user.chars().any(char::is_control) => Err(
            TaskError::bad_input("field `user_id`: must be non-empty without control characters"),
        ),
        _ => Ok(()),
    }
}

/// A pass in progress.
#[derive(Debug)]
pub struct Pass<'a> {
    ctx: &'a Context,
    task: &'static str,
    key: String,
    filter: Filter,
    page_size: u32,
    /// Where the next page starts; `None` before the first page means the
    /// beginning and after a page means the end.
    cursor: Option<String>,
    started: bool,
    resumed: bool,
    total: u64,
    scanned: u64,
}

impl<'a> Pass<'a> {
    /// Starts a pass of `task` over the memories `filter` matches, resuming
    /// from the saved cursor unless `input.restart`.
    pub fn start(
        ctx: &'a Context,
        task: &'static str,
        input: &PassInput,
        filter: Filter,
    ) -> Result<Pass<'a>, TaskError> {
        let page_size = input.page_size()?;
        let scope = input.user_id.as_deref().unwrap_or("*");
        let key = format!("{task}/cursor/{scope}");
        let cursor = if input.restart {
            None
        } else {
            saved_cursor(ctx, &key)
        };
        let total = memory::count(&filter)?;
        Ok(Pass {
            ctx,
            task,
            key,
            filter,
            page_size,
            resumed: cursor.is_some(),
            cursor,
            started: false,
            total,
            scanned: 0,
        })
    }

    /// The next page, or `None` at the end. A saved cursor the store no
    /// longer accepts is dropped and the pass starts from the beginning.
    pub fn next_page(&mut self) -> Result<Option<Vec<Stored>>, TaskError> {
        loop {
            if self.started && self.cursor.is_none() {
                return Ok(None);
            }
            let page = match memory::scroll(&self.filter, self.cursor.as_deref(), self.page_size) {
                Err(ServiceError::Invalid { message, .. }) if self.resumed && !self.started => {
                    self.ctx.warn(format!(
                        "{}: the saved cursor is no longer valid ({message}); starting over",
                        self.task
                    ));
                    self.resumed = false;
                    memory::scroll(&self.filter, None, self.page_size)?
                }
                page => page?,
            };
            self.started = true;
            self.cursor = page.next;
            self.scanned += page.items.len() as u64;
            // An empty page with a next one is skipped, not taken for the end.
            if !page.items.is_empty() {
                return Ok(Some(page.items));
            }
        }
    }

    /// Reports progress after a page; true when the pass must stop there
    /// because the soft time limit has passed.
    pub fn page_done(&self) -> bool {
        let note = format!("{}: {} memories scanned", self.task, self.scanned);
        self.ctx
            .progress(self.scanned, self.total.max(self.scanned), Some(&note));
        self.cursor.is_some() && self.ctx.soft_limit_passed()
    }

    /// Ends the pass: saves where it stopped (or forgets it, when the pass
    /// reached the end) and returns the common part of the report:
    /// `{complete, resumed, scanned, total}`.
    pub fn finish(self) -> Value {
        let complete = self.started && self.cursor.is_none();
        let saved = match &self.cursor {
            Some(cursor) if self.started => {
                kv::set(&self.key, cursor.as_bytes(), Some(CURSOR_TTL)).map(|()| true)
            }
            _ => kv::delete(&self.key).map(|_| false),
        };
        if let Err(err) = &saved {
            self.ctx.warn(format!(
                "{}: could not save where the pass stopped: {err}",
                self.task
            ));
        }
        if !complete {
            self.ctx.info(format!(
                "{}: stopped at the soft time limit after {} memories; the next run resumes there",
                self.task, self.scanned
            ));
        }
        json!({
            "complete": complete,
            "resumed": self.resumed,
            "scanned": self.scanned,
            "total": self.total,
        })
    }
}

/// The cursor saved by the last run that stopped early, if any.
fn saved_cursor(ctx: &Context, key: &str) -> Option<String> {
    match kv::get(key) {
        Ok(value) => value.and_then(|bytes| String::from_utf8(bytes).ok()),
        Err(err) => {
            ctx.warn(format!("starting from the beginning: {err}"));
            None
        }
    }
}

/// Merges `more` into a report object.
pub fn report(mut base: Value, more: Value) -> Value {
    if let (Some(base), Value::Object(more)) = (base.as_object_mut(), more) {
        base.extend(more);
    }
    base
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_input_is_a_full_pass_over_every_user() {
        let input: PassInput = serde_json::from_str("{}").unwrap();
        assert_eq!(input.page_size().unwrap(), DEFAULT_PAGE);
        let filter = input.filter(false).unwrap();
        assert_eq!(filter.user_id, None);
        assert!(!input.restart);
    }

    #[test]
    fn bad_fields_are_named() {
        let input: PassInput = serde_json::from_str(r#"{"page_size": 0}"#).unwrap();
        assert!(
            input
                .page_size()
                .unwrap_err()
                .message()
                .contains("`page_size`")
        );
        let input: PassInput = serde_json::from_str(r#"{"user_id": ""}"#).unwrap();
        assert!(
            input
                .filter(true)
                .unwrap_err()
                .message()
                .contains("`user_id`")
        );
        assert!(serde_json::from_str::<PassInput>(r#"{"users": ["a"]}"#).is_err());
    }

    #[test]
    fn reports_merge() {
        let merged = report(json!({"complete": true}), json!({"removed": 3}));
        assert_eq!(merged, json!({"complete": true, "removed": 3}));
    }
}
