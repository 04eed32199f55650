//! Driving the portal over HTTP as a browser does without JavaScript: the sign-in form,
//! the session cookie, and the CSRF tokens pages carry. Also checks what every page
//! must satisfy (a title, one `h1`, headings in order, a label on every input).

use std::time::Duration;

use scraper::{Html, Selector};

/// A page as the server answered it.
#[derive(Debug)]
pub struct Page {
    pub status: u16,
    /// Where a redirect points.
    pub location: Option<String>,
    pub html: String,
    pub set_cookies: Vec<String>,
}

fn select<'a>(doc: &'a Html, css: &str) -> Vec<scraper::ElementRef<'a>> {
    let selector = Selector::parse(css).expect("selector");
    doc.select(&selector).collect()
}

impl Page {
    pub fn doc(&self) -> Html {
        Html::parse_document(&self.html)
    }

    pub fn title(&self) -> String {
        select(&self.doc(), "title").first().map(|t| t.text().collect::<String>()).unwrap_or_default()
    }

    /// The text of every element matching `css`.
    pub fn texts(&self, css: &str) -> Vec<String> {
        select(&self.doc(), css).iter().map(|e| e.text().collect::<String>().trim().to_owned()).collect()
    }

    pub fn count(&self, css: &str) -> usize {
        select(&self.doc(), css).len()
    }

    /// The CSRF token of the page's forms.
    pub fn csrf(&self) -> Option<String> {
        select(&self.doc(), "input[name=csrf_token]").first().and_then(|e| e.value().attr("value")).map(str::to_owned)
    }

    /// Accessibility basics: one `h1`, no skipped heading level, and every visible form
    /// control labelled (a `label for`, a wrapping `label`, or `aria-label`).
    pub fn assert_accessible(&self, what: &str) {
        let doc = self.doc();
        let headings: Vec<u8> = select(&doc, "h1, h2, h3, h4, h5, h6")
            .iter()
            .map(|h| h.value().name()[1..].parse::<u8>().expect("heading level"))
            .collect();
        assert_eq!(headings.iter().filter(|l| **l == 1).count(), 1, "{what}: exactly one h1: {headings:?}");
        assert_eq!(headings.first(), Some(&1), "{what}: the first heading is the h1");
        for pair in headings.windows(2) {
            assert!(pair[1] <= pair[0] + 1, "{what}: heading level jumps from h{} to h{}", pair[0], pair[1]);
        }
        let labels: Vec<String> =
            select(&doc, "label[for]").iter().filter_map(|l| l.value().attr("for")).map(str::to_owned).collect();
        for control in select(&doc, "input, select, textarea") {
            let kind = control.value().attr("type").unwrap_or("text");
            if matches!(kind, "hidden" | "submit" | "button") {
                continue;
            }
            let id = control.value().attr("id").unwrap_or_default();
            let wrapped = control.ancestors().any(|a| a.value().as_element().is_some_and(|e| e.name() == "label"));
            let labelled = control.value().attr("aria-label").is_some()
                || wrapped
                || (!id.is_empty() && labels.iter().any(|l| l == id));
            let name = control.value().attr("name").unwrap_or("?");
            assert!(labelled, "{what}: the control {name:?} has no label");
        }
        assert!(!self.title().is_empty(), "{what}: a page has a title");
        assert!(self.html.contains("<html lang=\"en\""), "{what}: the page states its language");
    }
}

/// A browser without JavaScript, signed in or not.
#[derive(Debug, Clone)]
pub struct Portal {
    pub base: String,
    client: reqwest::Client,
    /// The `Cookie` header sent with every request.
    pub cookie: String,
}

fn cookie_value(set_cookie: &str) -> Option<(String, String)> {
    let pair = set_cookie.split(';').next()?;
    let (name, value) = pair.split_once('=')?;
    Some((name.trim().to_owned(), value.trim().to_owned()))
}

impl Portal {
    /// A browser with no cookies.
    pub fn anonymous(base: &str) -> Portal {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(30))
            .build()
            .expect("client");
        Portal { base: base.to_owned(), client, cookie: String::new() }
    }

    /// Signs in through the form, as a person does.
    pub async fn sign_in(base: &str, username: &str, password: &str) -> Portal {
        let mut portal = Portal::anonymous(base);
        let form = portal.get("/login").await;
        assert_eq!(form.status, 200, "{}", form.html);
        let nonce = form.set_cookies.iter().filter_map(|c| cookie_value(c)).find(|(n, _)| n == "slipway_login");
        let (name, value) = nonce.expect("the sign-in page sets its nonce cookie");
        portal.cookie = format!("{name}={value}");
        let csrf = form.csrf().expect("the sign-in form carries a CSRF token");
        let answer = portal
            .post_raw("/login", &[("csrf_token", &csrf), ("username", username), ("password", password), ("next", "/")])
            .await;
        assert_eq!(answer.status, 303, "signing in as {username}: {}", answer.html);
        let session = answer.set_cookies.iter().filter_map(|c| cookie_value(c)).find(|(n, _)| n == "slipway_session");
        let (name, value) = session.expect("signing in sets the session cookie");
        portal.cookie = format!("{name}={value}");
        portal
    }

    async fn page(response: reqwest::Response) -> Page {
        let status = response.status().as_u16();
        let location = response.headers().get("location").and_then(|v| v.to_str().ok()).map(str::to_owned);
        let set_cookies = response
            .headers()
            .get_all("set-cookie")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .map(str::to_owned)
            .collect();
        let html = response.text().await.expect("body");
        Page { status, location, html, set_cookies }
    }

    pub async fn get(&self, path: &str) -> Page {
        let mut request = self.client.get(format!("{}{path}", self.base));
        if !self.cookie.is_empty() {
            request = request.header("cookie", &self.cookie);
        }
        Portal::page(request.send().await.expect("GET")).await
    }

    /// Posts a form exactly as given (add `csrf_token` yourself, or leave it out).
    pub async fn post_raw(&self, path: &str, fields: &[(&str, &str)]) -> Page {
        let mut body = url::form_urlencoded::Serializer::new(String::new());
        body.extend_pairs(fields);
        let mut request = self
            .client
            .post(format!("{}{path}", self.base))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body.finish());
        if !self.cookie.is_empty() {
            request = request.header("cookie", &self.cookie);
        }
        Portal::page(request.send().await.expect("POST")).await
    }

    /// Posts a form with this session's CSRF token, read from the dashboard.
    pub async fn post(&self, path: &str, fields: &[(&str, &str)]) -> Page {
        let csrf = self.csrf().await;
        let mut all = vec![("csrf_token", csrf.as_str())];
        all.extend_from_slice(fields);
        self.post_raw(path, &all).await
    }

    /// The CSRF token of this session's forms.
    pub async fn csrf(&self) -> String {
        let page = self.get("/templates").await;
        page.csrf().unwrap_or_else(|| panic!("no CSRF token on /templates: {} {}", page.status, page.html))
    }
}
