//! Who a task acts for.
//!
//! A memory task acts for one user, and the memory capability limits every
//! memory-store call of the task to that user. The user is decided once,
//! where the task is submitted (the API checks it against the submitter's
//! key), and travels with the task from there (`TaskMessage::acting_for`,
//! `TaskRequest::acting_for`): nothing downstream reads the input again to
//! find it.

use serde_json::Value;

/// The field of a task's input that names the user it acts for.
pub const ACTING_USER_FIELD: &str = "user_id";

/// The input names its user with something other than a string.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("input.{ACTING_USER_FIELD} must be a string")]
pub struct ActingUserError;

/// The user a task submitted with `input` acts for: the string at
/// [`ACTING_USER_FIELD`], if there is one.
///
/// ```
/// use hippo_task::acting_user;
/// use serde_json::json;
/// assert_eq!(acting_user(&json!({"user_id": "ada", "text": "hi"})), Ok(Some("ada")));
/// assert_eq!(acting_user(&json!({"text": "hi"})), Ok(None));
/// assert!(acting_user(&json!({"user_id": 7})).is_err());
/// ```
pub fn acting_user(input: &Value) -> Result<Option<&str>, ActingUserError> {
    match input.get(ACTING_USER_FIELD) {
        None => Ok(None),
        Some(user) => user.as_str().map(Some).ok_or(ActingUserError),
    }
}
