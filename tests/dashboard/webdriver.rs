//! A real headless Chromium (Debian's `chromium` and `chromium-driver`,
//! which `scripts/setup` installs; nothing is downloaded) driven over the
//! W3C WebDriver protocol by a few plain HTTP calls to `chromedriver`.
//!
//! The browser may reach loopback only: no proxy, no background
//! networking, a fresh profile per browser.

use serde_json::{Value, json};
use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The key of an element reference in WebDriver's answers.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";
/// How long `chromedriver` may take to answer its status.
const DRIVER_STARTS_WITHIN: Duration = Duration::from_secs(20);
/// How often a wait looks again.
const POLL: Duration = Duration::from_millis(100);

/// A browser session: `chromedriver` and its Chromium, closed when dropped.
pub struct Browser {
    driver: Child,
    http: reqwest::Client,
    session: String,
    _profile: tempfile::TempDir,
}

fn program(env: &str, default: &str) -> String {
    std::env::var(env).unwrap_or_else(|_| default.to_owned())
}

impl Browser {
    /// Starts `chromedriver` (`HIPPO_CHROMEDRIVER`, default `chromedriver`)
    /// and a headless Chromium (`HIPPO_CHROMIUM`, default
    /// `/usr/bin/chromium`) of `width` × `height`.
    ///
    /// # Panics
    /// When either is missing: the test then fails, it does not pass.
    pub async fn start(width: u32, height: u32) -> Browser {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let driver_program = program("HIPPO_CHROMEDRIVER", "chromedriver");
        let driver = Command::new(&driver_program)
            .arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "{driver_program}: {e}: the dashboard's browser tests need Debian's chromium \
                     and chromium-driver (scripts/setup installs them)"
                )
            });
        let http = reqwest::Client::builder().no_proxy().build().unwrap();
        let profile = tempfile::tempdir().unwrap();
        let mut browser = Browser {
            driver,
            http,
            session: String::new(),
            _profile: profile,
        };
        let base = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + DRIVER_STARTS_WITHIN;
        loop {
            let ready = browser
                .http
                .get(format!("{base}/status"))
                .send()
                .await
                .ok()
                .map(|r| r.status().is_success())
                .unwrap_or(false);
            if ready {
                break;
            }
            if let Ok(Some(status)) = browser.driver.try_wait() {
                panic!("{driver_program} exited: {status}");
            }
            assert!(Instant::now() < deadline, "{driver_program} never answered");
            tokio::time::sleep(POLL).await;
        }
        let chromium = program("HIPPO_CHROMIUM", "/usr/bin/chromium");
        let args = [
            "--headless=new".to_owned(),
            "--no-sandbox".to_owned(),
            "--disable-gpu".to_owned(),
            "--disable-dev-shm-usage".to_owned(),
            "--disable-background-networking".to_owned(),
            "--disable-component-update".to_owned(),
            "--disable-default-apps".to_owned(),
            "--disable-extensions".to_owned(),
            "--disable-sync".to_owned(),
            "--no-first-run".to_owned(),
            "--no-proxy-server".to_owned(),
            format!("--window-size={width},{height}"),
            format!("--user-data-dir={}", browser._profile.path().display()),
        ];
        let created = browser
            .http
            .post(format!("{base}/session"))
            .json(&json!({"capabilities": {"alwaysMatch": {
                "browserName": "chrome",
                "goog:chromeOptions": {"binary": chromium, "args": args},
            }}}))
            .send()
            .await
            .unwrap()
            .json::<Value>()
            .await
            .unwrap();
        let session = created["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no browser session: {created}"));
        browser.session = format!("{base}/session/{session}");
        browser
    }

    /// A WebDriver command's `value`, or its error (`error`, `message`).
    async fn try_call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<Value, Value> {
        let mut request = self.http.request(method, format!("{}{path}", self.session));
        if let Some(body) = body {
            request = request.json(&body);
        }
        let answer: Value = request.send().await.unwrap().json().await.unwrap();
        match answer["value"].get("error") {
            Some(_) => Err(answer["value"].clone()),
            None => Ok(answer["value"].clone()),
        }
    }

    /// A WebDriver command's `value`; it panics on an error.
    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        self.try_call(method.clone(), path, body)
            .await
            .unwrap_or_else(|error| panic!("WebDriver {method} {path}: {error}"))
    }

    /// Opens `url`.
    pub async fn goto(&self, url: &str) {
        self.call(reqwest::Method::POST, "/url", Some(json!({ "url": url })))
            .await;
    }

    /// Runs `script` (a function body; `arguments` are `args`) in the page.
    pub async fn js(&self, script: &str, args: Value) -> Value {
        self.call(
            reqwest::Method::POST,
            "/execute/sync",
            Some(json!({ "script": script, "args": args })),
        )
        .await
    }

    /// The first element matching `css`, once there is one.
    async fn element(&self, css: &str) -> String {
        let found = self
            .wait(
                &format!("`{css}` on the page"),
                "return document.querySelector(arguments[0]) !== null;",
                json!([css]),
            )
            .await;
        assert_eq!(found, json!(true));
        let element = self
            .call(
                reqwest::Method::POST,
                "/element",
                Some(json!({ "using": "css selector", "value": css })),
            )
            .await;
        element[ELEMENT]
            .as_str()
            .unwrap_or_else(|| panic!("no element in {element}"))
            .to_owned()
    }

    /// Clicks the first element matching `css`, as a user would.
    pub async fn click(&self, css: &str) {
        let element = self.element(css).await;
        self.call(
            reqwest::Method::POST,
            &format!("/element/{element}/click"),
            Some(json!({})),
        )
        .await;
    }

    /// Types `text` into the first element matching `css`.
    pub async fn type_into(&self, css: &str, text: &str) {
        let element = self.element(css).await;
        self.call(
            reqwest::Method::POST,
            &format!("/element/{element}/value"),
            Some(json!({ "text": text })),
        )
        .await;
    }

    /// Accepts the open `confirm` dialog, once there is one.
    pub async fn accept_dialog(&self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let accepted = self
                .try_call(reqwest::Method::POST, "/alert/accept", Some(json!({})))
                .await;
            let Err(error) = accepted else { return };
            assert!(Instant::now() < deadline, "no dialog opened: {error}");
            tokio::time::sleep(POLL).await;
        }
    }

    /// Waits (at most 30 s) until `script` returns something truthy and
    /// returns it; `what` says what was awaited when it never comes.
    pub async fn wait(&self, what: &str, script: &str, args: Value) -> Value {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let value = self.js(script, args.clone()).await;
            let truthy = match &value {
                Value::Null | Value::Bool(false) => false,
                Value::String(s) => !s.is_empty(),
                Value::Number(n) => n.as_f64() != Some(0.0),
                _ => true,
            };
            if truthy {
                return value;
            }
            if Instant::now() > deadline {
                let page = self
                    .js(
                        "return document.body ? document.body.innerText : '';",
                        json!([]),
                    )
                    .await;
                panic!(
                    "never saw {what}; the page says:\n{}",
                    page.as_str().unwrap_or("")
                );
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// The text of the first element matching `css`, once it contains `part`.
    pub async fn wait_text(&self, css: &str, part: &str) -> String {
        self.wait(
            &format!("{part:?} in `{css}`"),
            "const e = document.querySelector(arguments[0]); \
             return e && e.innerText.includes(arguments[1]) ? e.innerText : null;",
            json!([css, part]),
        )
        .await
        .as_str()
        .unwrap()
        .to_owned()
    }

    /// Resizes the window.
    pub async fn resize(&self, width: u32, height: u32) {
        self.call(
            reqwest::Method::POST,
            "/window/rect",
            Some(json!({ "width": width, "height": height })),
        )
        .await;
    }

    /// Saves a PNG of the window at `path`.
    pub async fn screenshot(&self, path: &Path) {
        use base64::Engine as _;
        let png = self.call(reqwest::Method::GET, "/screenshot", None).await;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(png.as_str().unwrap())
            .unwrap();
        std::fs::write(path, bytes).unwrap();
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // Ending the session closes Chromium (a plain blocking request: a
        // drop cannot await); then the driver goes, by its pid.
        if let Some((host, path)) = self
            .session
            .strip_prefix("http://")
            .and_then(|rest| rest.split_once('/'))
            && let Ok(mut stream) = std::net::TcpStream::connect(host)
        {
            use std::io::{Read, Write};
            let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
            let request = format!(
                "DELETE /{path} HTTP/1.1\r\nHost: {host}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            );
            if stream.write_all(request.as_bytes()).is_ok() {
                let _ = stream.read_to_end(&mut Vec::new());
            }
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}
