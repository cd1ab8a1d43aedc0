//! `maintenance.expire`: deletes every memory whose `expires_at` has passed.
//!
//! It lists the expired memories a page at a time and deletes each page.
//! Every listing starts from the beginning: the memories deleted are gone
//! from it, so no cursor can skip any. Each listed memory is checked to have
//! expired before anything is deleted; a store whose filter let another
//! through, or that lists memories it then cannot delete, stops the task
//! rather than loop or delete what it must not.

use hippo_sdk::memory::{self, Filter};
use hippo_sdk::time::now_ms;
use hippo_sdk::{Context, TaskError};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::scan::check_user_id;

/// Memories deleted per page unless the input says otherwise, and the most.
const DEFAULT_PAGE: u32 = 500;
const MAX_PAGE: u32 = 1_000;

/// Input of `maintenance.expire`; `{}` or nothing cleans every user.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ExpireInput {
    /// Only this user's memories (default: every user's).
    user_id: Option<String>,
    /// Memories per page (default 500, at most 1,000).
    page_size: Option<u32>,
}

/// `maintenance.expire`: out `{deleted, expired_at_start, complete}`;
/// `complete` is false when the soft time limit stopped it (the next run
/// carries on: the rest are still expired).
pub fn expire(ctx: &Context, input: Option<ExpireInput>) -> Result<Value, TaskError> {
    let input = input.unwrap_or_default();
    let page_size = input.page_size.unwrap_or(DEFAULT_PAGE);
    if page_size == 0 || page_size > MAX_PAGE {
        return Err(TaskError::bad_input(format!(
            "field `page_size`: must be between 1 and {MAX_PAGE}"
        )));
    }
    check_user_id(input.user_id.as_deref())?;
    // One instant for the whole run, so memories expiring meanwhile do not
    // keep it going.
    let now = now_ms();
    let filter = Filter {
        user_id: input.user_id,
        expires_before: Some(now),
        include_archived: true,
        ..Filter::default()
    };
    let expired = memory::count(&filter)?;
    let mut deleted = 0u64;
    let complete = loop {
        let page = memory::scroll(&filter, None, page_size)?;
        if page.items.is_empty() {
            break true;
        }
        if let Some(alive) = page
            .items
            .iter()
            .find(|s| s.memory.expires_at.is_none_or(|at| at >= now))
        {
            return Err(TaskError::fatal(format!(
                "the store listed memory {} as expired, but it is not: nothing more deleted",
                alive.memory.id
            )));
        }
        let ids: Vec<String> = page.items.into_iter().map(|s| s.memory.id).collect();
        let gone = memory::delete(&ids)?;
        if gone == 0 {
            return Err(TaskError::fatal(format!(
                "the store listed {} expired memories but deleted none of them",
                ids.len()
            )));
        }
        deleted += gone;
        ctx.progress(
            deleted,
            expired.max(deleted),
            Some("deleting expired memories"),
        );
        if ctx.soft_limit_passed() {
            break false;
        }
    };
    ctx.info(format!(
        "expire: {deleted} expired memories deleted (complete: {complete})"
    ));
    Ok(json!({ "deleted": deleted, "expired_at_start": expired, "complete": complete }))
}
