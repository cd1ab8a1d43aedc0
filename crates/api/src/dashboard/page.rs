//! The web page: one HTML shell, one script and one style sheet, built
//! into the binary (`assets/`), no framework and nothing fetched from the
//! network. The script draws every tab from hippo's API on this listener
//! and follows `/api/v1/events` for live updates; see `assets/app.js`.
//!
//! The shell is the only asset rendered per request: it carries the
//! session's CSRF token (for the script's changes) and the user's name.

use super::{Dashboard, SESSION_COOKIE, Via, cross_site, identify};
use crate::AppState;
use crate::error::ApiError;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::{Extension, Form};
use serde::Deserialize;
use std::sync::Arc;

const INDEX: &str = include_str!("assets/index.html");
const LOGIN: &str = include_str!("assets/login.html");
const SCRIPT: &str = include_str!("assets/app.js");
const STYLE: &str = include_str!("assets/app.css");

/// The page's own assets may run; nothing else, from nowhere else.
const PAGE_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
    img-src 'self' data:; connect-src 'self'; form-action 'self'; base-uri 'none'; \
    frame-ancestors 'none'";
/// The login form has no script and its style inline.
const LOGIN_POLICY: &str = "default-src 'none'; style-src 'unsafe-inline'; \
    form-action 'self'; base-uri 'none'; frame-ancestors 'none'";

/// `text` with HTML's special characters escaped.
fn escape_html(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn html(status: StatusCode, policy: &'static str, body: String) -> Response {
    (
        status,
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
            (header::CONTENT_SECURITY_POLICY, policy),
        ],
        body,
    )
        .into_response()
}

/// `/`: the page for a caller, or the login form's address for a stranger.
pub(super) async fn index(
    State(state): State<AppState>,
    Extension(dashboard): Extension<Arc<Dashboard>>,
    headers: HeaderMap,
) -> Response {
    match identify(&dashboard, &state, &headers) {
        Ok((caller, via)) => {
            let csrf = match via {
                Via::Session(csrf) => csrf,
                Via::Header => String::new(),
            };
            let body = INDEX
                .replace("{{csrf}}", &escape_html(&csrf))
                .replace("{{user}}", &escape_html(&caller.name));
            html(StatusCode::OK, PAGE_POLICY, body)
        }
        Err(_) => Redirect::to("/login").into_response(),
    }
}

/// `/assets/{file}`: the script and the style sheet.
pub(super) async fn asset(Path(file): Path<String>) -> Response {
    let (body, kind) = match file.as_str() {
        "app.js" => (SCRIPT, "text/javascript; charset=utf-8"),
        "app.css" => (STYLE, "text/css; charset=utf-8"),
        _ => return ApiError::not_found("no such asset").into_response(),
    };
    (
        [
            (header::CONTENT_TYPE, kind),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
        .into_response()
}

fn login_page(status: StatusCode, message: &str) -> Response {
    html(
        status,
        LOGIN_POLICY,
        LOGIN.replace("{{message}}", &escape_html(message)),
    )
}

/// `GET /login`: the form.
pub(super) async fn login_form() -> Response {
    login_page(StatusCode::OK, "")
}

/// What the login form sends.
#[derive(Deserialize)]
pub(super) struct LoginForm {
    #[serde(default)]
    user: String,
    #[serde(default)]
    password: String,
}

/// `POST /login`: opens a session for a login (user and password) or an
/// API key (the password, with no user), and goes to the page.
pub(super) async fn login(
    State(state): State<AppState>,
    Extension(dashboard): Extension<Arc<Dashboard>>,
    headers: HeaderMap,
    Form(form): Form<LoginForm>,
) -> Response {
    if cross_site(&headers) {
        return login_page(
            StatusCode::FORBIDDEN,
            "log in from the dashboard's own page",
        );
    }
    let caller = if form.user.is_empty() {
        let bearer = format!("Bearer {}", form.password);
        state.keys.authenticate(Some(&bearer)).ok()
    } else {
        dashboard
            .logins
            .check(&format!("{}:{}", form.user, form.password))
    };
    let Some(caller) = caller else {
        if !dashboard.logins.allow_failure() {
            let mut response = login_page(
                StatusCode::TOO_MANY_REQUESTS,
                "too many attempts: wait a second",
            );
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            return response;
        }
        return login_page(StatusCode::UNAUTHORIZED, "wrong user, password or key");
    };
    let (cookie, _csrf) = dashboard.sessions.open(caller);
    let mut response = Redirect::to("/").into_response();
    if let Ok(value) = HeaderValue::from_str(&format!(
        "{SESSION_COOKIE}={cookie}; Path=/; HttpOnly; SameSite=Strict"
    )) {
        response.headers_mut().insert(header::SET_COOKIE, value);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_escaped_into_the_page() {
        assert_eq!(
            escape_html(r#"<a href="x">'&'</a>"#),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;"
        );
    }

    #[test]
    fn the_shell_has_its_placeholders() {
        assert!(INDEX.contains("{{csrf}}") && INDEX.contains("{{user}}"));
        assert!(LOGIN.contains("{{message}}"));
    }
}
