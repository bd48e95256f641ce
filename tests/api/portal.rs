//! The portal's accounts, sessions and protections, through HTTP as a browser uses them: log-in
//! with the form's CSRF cookie, the session cookie's attributes, log-out, idle expiry, session
//! fixation, throttled log-ins, security headers, languages.

use std::collections::HashMap;

use nsw::domain::party::Role;

use crate::helpers::TestApp;

/// A cookie-keeping client that does not follow redirects, as a test browser.
pub struct Browser {
    pub base: String,
    client: reqwest::Client,
    pub cookies: HashMap<String, String>,
    pub accept_language: Option<String>,
}

pub struct Page {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: String,
}

impl Page {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    pub fn location(&self) -> Option<&str> {
        self.header("location")
    }

    /// The `value` of the hidden input named `name`.
    pub fn hidden(&self, name: &str) -> Option<String> {
        let marker = format!("name=\"{name}\" value=\"");
        let start = self.body.find(&marker)? + marker.len();
        let end = self.body[start..].find('"')?;
        Some(self.body[start..start + end].to_owned())
    }

    /// The `Set-Cookie` header for `name`, whole.
    pub fn set_cookie(&self, name: &str) -> Option<String> {
        self.headers
            .get_all("set-cookie")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find(|v| v.starts_with(&format!("{name}=")))
            .map(str::to_owned)
    }
}

impl Browser {
    pub fn new(app: &TestApp) -> Browser {
        Browser {
            base: app.address.clone(),
            client: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            cookies: HashMap::new(),
            accept_language: None,
        }
    }

    fn cookie_header(&self) -> String {
        self.cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    async fn send(&mut self, rb: reqwest::RequestBuilder) -> Page {
        let mut rb = rb;
        if !self.cookies.is_empty() {
            rb = rb.header("cookie", self.cookie_header());
        }
        if let Some(l) = &self.accept_language {
            rb = rb.header("accept-language", l);
        }
        let r = rb.send().await.expect("request");
        for v in r.headers().get_all("set-cookie") {
            let v = v.to_str().unwrap();
            let pair = v.split(';').next().unwrap();
            let (name, value) = pair.split_once('=').unwrap();
            let expired = v.to_ascii_lowercase().contains("max-age=0");
            if expired || value.is_empty() {
                self.cookies.remove(name);
            } else {
                self.cookies.insert(name.to_owned(), value.to_owned());
            }
        }
        Page {
            status: r.status().as_u16(),
            headers: r.headers().clone(),
            body: r.text().await.unwrap(),
        }
    }

    pub async fn get(&mut self, path: &str) -> Page {
        let rb = self.client.get(format!("{}{path}", self.base));
        self.send(rb).await
    }

    pub async fn post_form(&mut self, path: &str, form: &[(&str, &str)]) -> Page {
        let rb = self.client.post(format!("{}{path}", self.base)).form(form);
        self.send(rb).await
    }

    /// Logs in through the form: `GET /login` for its CSRF token, then `POST /login`.
    pub async fn log_in(&mut self, party_id: &str, password: &str) -> Page {
        let form = self.get("/login").await;
        assert_eq!(form.status, 200, "{}", form.body);
        let csrf = form.hidden("csrf").expect("the log-in form's csrf");
        self.post_form(
            "/login",
            &[
                ("party_id", party_id),
                ("password", password),
                ("csrf", &csrf),
                ("next", "/"),
            ],
        )
        .await
    }

    /// The session's CSRF token, from a page's log-out form.
    pub async fn csrf(&mut self) -> String {
        let home = self.get("/").await;
        home.hidden("csrf").expect("a page with the log-out form")
    }
}

pub const PASSWORD: &str = "correct horse battery staple";

/// Registers a party with a portal password.
pub async fn person(app: &TestApp, role: Role, id: &str, agency: Option<&str>) -> String {
    let token = match agency {
        Some(a) => app.add_party_with_agency(role, id, a).await,
        None => app.add_party(role, id).await,
    };
    let mut client = app.pool.get().await.unwrap();
    let phc = nsw::passwords::hash(PASSWORD).unwrap();
    nsw::store::parties::set_password(&mut client, id, &phc, "test")
        .await
        .unwrap();
    token
}

async fn audit_count(app: &TestApp, action: &str, subject: &str) -> i64 {
    let client = app.pool.get().await.unwrap();
    client
        .query_one(
            "SELECT count(*) FROM audit_log WHERE action = $1 AND subject = $2",
            &[&action, &subject],
        )
        .await
        .unwrap()
        .get(0)
}

#[tokio::test]
async fn the_log_in_page_speaks_vietnamese_by_default_and_english_when_asked() {
    let app = TestApp::spawn().await;
    let mut b = Browser::new(&app);
    let vi = b.get("/login").await;
    assert_eq!(vi.status, 200);
    assert!(vi.body.contains("<html lang=\"vi\">"), "{}", vi.body);
    assert!(vi.body.contains("Đăng nhập"));
    assert!(vi.body.contains("<label for=\"party_id\">"));

    let mut en = Browser::new(&app);
    en.accept_language = Some("en-GB,en;q=0.9,vi;q=0.5".into());
    let page = en.get("/login").await;
    assert!(page.body.contains("<html lang=\"en\">"));
    assert!(page.body.contains("Log in"));

    // The switch is remembered over Accept-Language, and goes back only to local paths.
    let switched = en.get("/language/vi?next=%2Flogin").await;
    assert_eq!(switched.status, 303);
    assert_eq!(switched.location(), Some("/login"));
    assert!(switched
        .set_cookie("nsw_lang")
        .unwrap()
        .starts_with("nsw_lang=vi"));
    assert!(en.get("/login").await.body.contains("<html lang=\"vi\">"));
    for evil in [
        "//evil.example/",
        "https://evil.example/",
        "/\\evil.example",
    ] {
        let q = serde_urlencoded::to_string([("next", evil)]).unwrap();
        let r = en.get(&format!("/language/en?{q}")).await;
        assert_eq!(r.location(), Some("/"), "{evil}");
    }
}

#[tokio::test]
async fn every_page_carries_the_security_headers() {
    let app = TestApp::spawn().await;
    let mut b = Browser::new(&app);
    for path in ["/login", "/no-such-page", "/api/v1/declarations"] {
        let p = b.get(path).await;
        let csp = p.header("content-security-policy").expect(path);
        assert!(csp.contains("frame-ancestors 'none'"), "{path}: {csp}");
        assert!(csp.contains("default-src 'none'"), "{path}: {csp}");
        assert!(
            !csp.contains("unsafe-inline") && !csp.contains("script-src"),
            "{csp}"
        );
        assert_eq!(
            p.header("x-content-type-options"),
            Some("nosniff"),
            "{path}"
        );
        assert!(p.header("referrer-policy").is_some(), "{path}");
    }
    // Pages have no script of their own, and the stylesheet is served from here.
    let login = b.get("/login").await;
    assert!(!login.body.contains("<script"));
    let css = login
        .body
        .split("href=\"")
        .find_map(|s| s.strip_prefix("/assets/"))
        .map(|s| s.split('"').next().unwrap().to_owned())
        .expect("a stylesheet link");
    let sheet = b.get(&format!("/assets/{css}")).await;
    assert_eq!(sheet.status, 200);
    assert!(sheet
        .header("content-type")
        .unwrap()
        .starts_with("text/css"));
    assert!(sheet.header("cache-control").unwrap().contains("immutable"));
    assert_eq!(b.get("/assets/portal.css").await.status, 404);
    // An unknown page is a page; an unknown API path stays problem+json.
    let missing = b.get("/no-such-page").await;
    assert_eq!(missing.status, 404);
    assert!(missing
        .header("content-type")
        .unwrap()
        .starts_with("text/html"));
    let api = b.get("/api/v1/no-such-thing").await;
    assert_eq!(api.status, 404);
    assert!(api
        .header("content-type")
        .unwrap()
        .starts_with("application/problem+json"));
}

#[tokio::test]
async fn a_person_logs_in_with_a_new_session_and_logs_out() {
    let app = TestApp::spawn().await;
    person(&app, Role::Enterprise, "0101234567", None).await;
    let mut b = Browser::new(&app);

    // Pages need a session: the person is sent to log in, and comes back after.
    let first = b.get("/profile?from=mail").await;
    assert_eq!(first.status, 303);
    assert_eq!(
        first.location(),
        Some("/login?next=%2Fprofile%3Ffrom%3Dmail")
    );

    // A session id planted before the log-in (fixation) is never the one logged in.
    b.cookies
        .insert("nsw_session".into(), "planted-by-someone-else".into());
    let done = b.log_in("0101234567", PASSWORD).await;
    assert_eq!(done.status, 303, "{}", done.body);
    assert_eq!(done.location(), Some("/"));
    let cookie = done.set_cookie("nsw_session").expect("a session cookie");
    for attr in ["HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(cookie.contains(attr), "{cookie}");
    }
    assert!(
        !cookie.contains("Secure"),
        "plain HTTP by default: {cookie}"
    );
    let secret = b.cookies["nsw_session"].clone();
    assert_ne!(secret, "planted-by-someone-else");
    assert!(secret.len() >= 43);

    // Only the secret's digest is stored.
    let client = app.pool.get().await.unwrap();
    let stored: i64 = client
        .query_one(
            "SELECT count(*) FROM portal_sessions WHERE id_hash = sha256($1::text::bytea)",
            &[&secret],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(stored, 1);
    let plain: i64 = client
        .query_one(
            "SELECT count(*) FROM portal_sessions WHERE encode(id_hash, 'escape') LIKE '%' || $1 || '%'",
            &[&secret],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(plain, 0);

    let home = b.get("/").await;
    assert_eq!(home.status, 200);
    assert!(home.body.contains("0101234567"));
    assert_eq!(home.header("cache-control"), Some("no-store"));
    assert_eq!(audit_count(&app, "portal.login", "0101234567").await, 1);

    // Log-out needs the session's CSRF token.
    let refused = b.post_form("/logout", &[("csrf", "wrong")]).await;
    assert_eq!(refused.status, 403);
    assert!(refused.body.contains("CSRF_INVALID"));
    assert_eq!(b.get("/").await.status, 200, "still logged in");

    let csrf = b.csrf().await;
    let out = b.post_form("/logout", &[("csrf", &csrf)]).await;
    assert_eq!(out.status, 303);
    assert_eq!(out.location(), Some("/login"));
    assert!(!b.cookies.contains_key("nsw_session"));
    assert_eq!(audit_count(&app, "portal.logout", "0101234567").await, 1);

    // The old cookie, replayed, opens nothing.
    b.cookies.insert("nsw_session".into(), secret);
    assert_eq!(b.get("/").await.status, 303);
}

#[tokio::test]
async fn a_log_in_without_its_form_token_is_refused() {
    let app = TestApp::spawn().await;
    person(&app, Role::Enterprise, "0101234567", None).await;
    let mut b = Browser::new(&app);
    // Straight POST, no GET of the form first: no CSRF cookie.
    let r = b
        .post_form(
            "/login",
            &[
                ("party_id", "0101234567"),
                ("password", PASSWORD),
                ("csrf", "made-up"),
            ],
        )
        .await;
    assert_eq!(r.status, 403);
    assert!(r.set_cookie("nsw_session").is_none());
    // With the cookie but another token.
    b.get("/login").await;
    let r = b
        .post_form(
            "/login",
            &[
                ("party_id", "0101234567"),
                ("password", PASSWORD),
                ("csrf", "made-up"),
            ],
        )
        .await;
    assert_eq!(r.status, 403);
    assert!(r.set_cookie("nsw_session").is_none());
}

#[tokio::test]
async fn repeated_failed_log_ins_are_throttled_and_audited() {
    let app = TestApp::spawn().await;
    person(&app, Role::Enterprise, "0101234567", None).await;
    person(&app, Role::Enterprise, "0309876543", None).await;
    let mut b = Browser::new(&app);
    for _ in 0..5 {
        let r = b.log_in("0101234567", "not the password at all").await;
        assert_eq!(r.status, 401);
        assert!(r.body.contains("aria-invalid=\"true\""));
        assert!(r.set_cookie("nsw_session").is_none());
    }
    // Now even the right password waits.
    let r = b.log_in("0101234567", PASSWORD).await;
    assert_eq!(r.status, 429, "{}", r.body);
    assert_eq!(r.header("retry-after"), Some("900"));
    assert!(r.set_cookie("nsw_session").is_none());
    assert_eq!(
        audit_count(&app, "portal.login_failed", "0101234567").await,
        5
    );
    assert_eq!(
        audit_count(&app, "portal.login_throttled", "0101234567").await,
        1
    );
    // Another person at the same address is not held up by it.
    let mut other = Browser::new(&app);
    assert_eq!(other.log_in("0309876543", PASSWORD).await.status, 303);
    // An unknown id fails like a wrong password, and counts the same way.
    let r = b.log_in("no-such-party", PASSWORD).await;
    assert_eq!(r.status, 401);
    assert_eq!(
        audit_count(&app, "portal.login_failed", "no-such-party").await,
        1
    );
}

#[tokio::test]
async fn a_partner_window_has_no_portal_log_in() {
    let app = TestApp::spawn().await;
    person(&app, Role::Partner, "SG", Some("SG")).await;
    let mut b = Browser::new(&app);
    assert_eq!(b.log_in("SG", PASSWORD).await.status, 401);
}

#[tokio::test]
async fn an_idle_session_ends() {
    let app = TestApp::builder()
        .settings(|s| s.portal.session_idle_minutes = 5)
        .spawn()
        .await;
    person(&app, Role::Customs, "CUSTOMS-1", None).await;
    let mut b = Browser::new(&app);
    assert_eq!(b.log_in("CUSTOMS-1", PASSWORD).await.status, 303);
    assert_eq!(b.get("/").await.status, 200);
    let client = app.pool.get().await.unwrap();
    client
        .execute(
            "UPDATE portal_sessions SET last_seen = now() - interval '6 minutes'",
            &[],
        )
        .await
        .unwrap();
    let r = b.get("/").await;
    assert_eq!(r.status, 303);
    let reason: Option<String> = client
        .query_one("SELECT end_reason FROM portal_sessions", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(reason.as_deref(), Some("idle"));
}

#[tokio::test]
async fn the_profile_holds_the_address_documents_will_carry() {
    let app = TestApp::spawn().await;
    person(&app, Role::Enterprise, "0101234567", None).await;
    person(&app, Role::Customs, "CUSTOMS-1", None).await;
    let mut b = Browser::new(&app);
    b.log_in("0101234567", PASSWORD).await;
    let csrf = b.csrf().await;
    let bad = b
        .post_form(
            "/profile",
            &[
                ("csrf", &csrf),
                ("name", "Công ty TNHH Thương mại Sông Hồng"),
                ("street", ""),
                ("city", "Hà Nội"),
                ("post_code", "100000"),
                ("country", "XX"),
            ],
        )
        .await;
    assert_eq!(bad.status, 422);
    assert!(bad.body.contains("id=\"street-error\""), "{}", bad.body);
    assert!(bad.body.contains("id=\"country-error\""));
    assert!(bad.body.contains("aria-describedby=\"country-error\""));
    // What was typed is kept.
    assert!(bad.body.contains("Công ty TNHH Thương mại Sông Hồng"));

    let no_token = b
        .post_form(
            "/profile",
            &[
                ("name", "x"),
                ("street", "y"),
                ("city", "z"),
                ("post_code", "1"),
                ("country", "VN"),
            ],
        )
        .await;
    assert_eq!(no_token.status, 403);
    assert!(no_token.body.contains("CSRF_INVALID"));

    let ok = b
        .post_form(
            "/profile",
            &[
                ("csrf", &csrf),
                ("name", "Công ty TNHH Thương mại Sông Hồng"),
                ("street", "12 Phố Huế"),
                ("city", "Hà Nội"),
                ("post_code", "100000"),
                ("country", "vn"),
            ],
        )
        .await;
    assert_eq!(ok.status, 303);
    let client = app.pool.get().await.unwrap();
    let p = nsw::store::sessions::profile(&client, "0101234567")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(p.street.as_deref(), Some("12 Phố Huế"));
    assert_eq!(p.country.as_deref(), Some("VN"));
    assert_eq!(p.name, "Công ty TNHH Thương mại Sông Hồng");

    // The profile page is the trader's: a customs officer is refused.
    let mut c = Browser::new(&app);
    c.log_in("CUSTOMS-1", PASSWORD).await;
    assert_eq!(c.get("/profile").await.status, 403);
}
