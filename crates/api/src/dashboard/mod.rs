//! The dashboard's listener (`hippo serve --dashboard-listen`, default
//! 127.0.0.1:5555): the web page ([`page`], its assets built into the
//! binary), hippo's API (`/api/v1/...`, which the page calls), Flower's
//! API (`/api/...`, see the `flower` module), and the metrics, all under
//! the same credentials.
//!
//! Who may come in: a dashboard login by basic auth ([`Logins`], from
//! `FLOWER_BASIC_AUTH` or `FLOWER_USER` / `FLOWER_PASSWORD`), a hippo API
//! key (`Authorization: Bearer`), or a browser session opened by the
//! login form (`/login`: a login, or an API key with no user) and kept in
//! an `HttpOnly`, `SameSite=Strict` cookie. Only `/healthcheck` and the
//! login form answer without credentials. Wrong credentials of any kind
//! share one rate limit.
//!
//! Cross-site request forgery: a request that changes anything (any
//! method but GET and HEAD) made with a session must carry the session's
//! token in `X-CSRF-Token` (the page has it; another site cannot read it),
//! and one made with an `Authorization` header is refused when the
//! browser says it comes from another site (`Sec-Fetch-Site`, `Origin`),
//! since a browser replays basic auth by itself. Scripts (curl, Flower's
//! clients) send neither header and are not affected. Every answer
//! forbids framing.

mod logins;
mod page;

pub use logins::{KNOWN_DEFAULT_PASSWORDS, Logins};

use super::AppState;
use super::auth::Caller;
use super::error::ApiError;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Router};
use logins::{Sessions, same_secret};
use std::sync::Arc;

/// The cookie of a browser session.
const SESSION_COOKIE: &str = "hippo_session";
/// The header a session's changes carry their CSRF token in.
const CSRF_HEADER: &str = "x-csrf-token";

/// What the dashboard's own handlers share, beside the API's state.
#[derive(Debug)]
struct Dashboard {
    logins: Arc<Logins>,
    sessions: Sessions,
}

/// How a request proved who it is.
enum Via {
    /// An `Authorization` header: basic auth or an API key.
    Header,
    /// A session cookie; the session's CSRF token.
    Session(String),
}

/// The dashboard's router: the page, hippo's and Flower's APIs and the
/// metrics behind logins, sessions and API keys; `/healthcheck` and the
/// login form open.
pub fn router(state: AppState, logins: Arc<Logins>) -> axum::Router {
    let dashboard = Arc::new(Dashboard {
        logins,
        sessions: Sessions::default(),
    });
    let protected = super::v1_routes()
        .merge(super::flower::routes())
        .route("/assets/{file}", get(page::asset))
        .route("/logout", post(logout))
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            authenticate,
        ));
    let app = Router::new()
        .route("/healthcheck", get(|| async { "OK" }))
        .route("/", get(page::index))
        .route("/login", get(page::login_form).post(page::login))
        .merge(protected);
    super::hardened(app)
        .layer(axum::middleware::from_fn(no_framing))
        .layer(Extension(dashboard))
        .with_state(state)
}

/// The value of cookie `name` in `headers`, if sent.
fn cookie<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find_map(|(key, value)| (key == name).then_some(value))
}

/// Who `headers` say the caller is, and how they proved it.
fn identify(
    dashboard: &Dashboard,
    state: &AppState,
    headers: &HeaderMap,
) -> Result<(Caller, Via), ApiError> {
    let authorization = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    match (authorization, cookie(headers, SESSION_COOKIE)) {
        (Some(value), _) if value.len() > 6 && value[..6].eq_ignore_ascii_case("basic ") => {
            use base64::Engine as _;
            base64::engine::general_purpose::STANDARD
                .decode(value[6..].trim())
                .ok()
                .and_then(|bytes| String::from_utf8(bytes).ok())
                .and_then(|credentials| dashboard.logins.check(&credentials))
                .map(|caller| (caller, Via::Header))
                .ok_or_else(|| ApiError::unauthorized("wrong user or password"))
        }
        (None, Some(session)) => dashboard
            .sessions
            .find(session)
            .map(|(caller, csrf)| (caller, Via::Session(csrf)))
            .ok_or_else(|| ApiError::unauthorized("the session ended: log in again")),
        (authorization, _) => state
            .keys
            .authenticate(authorization)
            .map(|caller| (caller, Via::Header)),
    }
}

/// Whether the browser says this request comes from another site: by
/// `Sec-Fetch-Site` when it sends one (every current browser does), else
/// by `Origin` against `Host`. A request with neither is a script's.
fn cross_site(headers: &HeaderMap) -> bool {
    let text = |name| {
        headers
            .get(name)
            .and_then(|v: &HeaderValue| v.to_str().ok())
    };
    if let Some(site) = text(header::HeaderName::from_static("sec-fetch-site")) {
        return !matches!(site, "same-origin" | "none");
    }
    match (text(header::ORIGIN), text(header::HOST)) {
        (Some(origin), Some(host)) => {
            let origin_host = origin.split_once("://").map_or(origin, |(_, rest)| rest);
            !origin_host.eq_ignore_ascii_case(host)
        }
        (Some(_), None) => true,
        (None, _) => false,
    }
}

/// Why a change must be refused as forged, if it must.
fn forged(via: &Via, method: &Method, headers: &HeaderMap) -> Option<&'static str> {
    if matches!(*method, Method::GET | Method::HEAD) {
        return None;
    }
    match via {
        Via::Session(csrf) => {
            let sent = headers.get(CSRF_HEADER).and_then(|v| v.to_str().ok());
            match sent {
                Some(sent) if same_secret(sent, csrf) => None,
                _ => Some("a change made in a session needs the session's X-CSRF-Token"),
            }
        }
        Via::Header if cross_site(headers) => Some("a change may not come from another site"),
        Via::Header => None,
    }
}

/// The answer to wrong or missing credentials: 401 asking for basic auth,
/// or 429 when wrong ones came too often.
fn refuse(dashboard: &Dashboard, headers: &HeaderMap, error: ApiError) -> Response {
    // Wrong credentials count; none at all is a browser's first ask.
    let sent =
        headers.contains_key(header::AUTHORIZATION) || cookie(headers, SESSION_COOKIE).is_some();
    if sent && error.status == StatusCode::UNAUTHORIZED && !dashboard.logins.allow_failure() {
        return ApiError::rate_limited(1).into_response();
    }
    let mut response = error.into_response();
    response.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Basic realm=\"hippo\""),
    );
    response
}

async fn authenticate(
    State(state): State<AppState>,
    Extension(dashboard): Extension<Arc<Dashboard>>,
    mut request: Request,
    next: Next,
) -> Response {
    match identify(&dashboard, &state, request.headers()) {
        Ok((caller, via)) => {
            if let Some(why) = forged(&via, request.method(), request.headers()) {
                return ApiError::forbidden(why).into_response();
            }
            request.extensions_mut().insert(caller);
            next.run(request).await
        }
        Err(error) => refuse(&dashboard, request.headers(), error),
    }
}

/// Ends the caller's session (the page posts here with its token).
async fn logout(Extension(dashboard): Extension<Arc<Dashboard>>, headers: HeaderMap) -> Response {
    if let Some(session) = cookie(&headers, SESSION_COOKIE) {
        dashboard.sessions.close(session);
    }
    (
        StatusCode::NO_CONTENT,
        [(
            header::SET_COOKIE,
            format!("{SESSION_COOKIE}=; Path=/; Max-Age=0; HttpOnly; SameSite=Strict"),
        )],
    )
        .into_response()
}

/// No answer of the dashboard may be framed by another page (its buttons
/// would be clickable under a disguise), nor sniffed as another type.
async fn no_framing(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        // Not `no-referrer`: with it a browser sends `Origin: null` on the
        // login form's own POST.
        HeaderValue::from_static("same-origin"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, HeaderValue::from_str(value).unwrap());
        }
        map
    }

    #[test]
    fn cookies_are_found_among_others() {
        let h = headers(&[("cookie", "a=1; hippo_session=abc; b=2")]);
        assert_eq!(cookie(&h, SESSION_COOKIE), Some("abc"));
        assert_eq!(cookie(&h, "c"), None);
    }

    #[test]
    fn a_session_change_needs_its_token() {
        let via = Via::Session("t0ken".into());
        let post = Method::POST;
        assert!(forged(&via, &Method::GET, &headers(&[])).is_none());
        assert!(forged(&via, &post, &headers(&[])).is_some());
        assert!(forged(&via, &post, &headers(&[("x-csrf-token", "other")])).is_some());
        assert!(forged(&via, &post, &headers(&[("x-csrf-token", "t0ken")])).is_none());
    }

    #[test]
    fn a_header_change_from_another_site_is_refused() {
        let post = Method::POST;
        let same = headers(&[
            ("host", "127.0.0.1:5555"),
            ("origin", "http://127.0.0.1:5555"),
        ]);
        assert!(forged(&Via::Header, &post, &same).is_none());
        assert!(forged(&Via::Header, &post, &headers(&[("host", "h:1")])).is_none());
        let other = headers(&[("host", "127.0.0.1:5555"), ("origin", "http://evil.test")]);
        assert!(forged(&Via::Header, &post, &other).is_some());
        let null = headers(&[("host", "127.0.0.1:5555"), ("origin", "null")]);
        assert!(forged(&Via::Header, &post, &null).is_some());
        let fetch = headers(&[("sec-fetch-site", "cross-site")]);
        assert!(forged(&Via::Header, &post, &fetch).is_some());
        let fetch = headers(&[("sec-fetch-site", "same-site")]);
        assert!(forged(&Via::Header, &post, &fetch).is_some());
        // The browser's word wins over an `Origin` it sent as `null`.
        let own = headers(&[("sec-fetch-site", "same-origin"), ("origin", "null")]);
        assert!(forged(&Via::Header, &post, &own).is_none());
        assert!(forged(&Via::Header, &Method::GET, &other).is_none());
    }
}
