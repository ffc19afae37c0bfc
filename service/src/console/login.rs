//! Signing in (a form, not HTTP Basic) and out. The login goes through the same checks as the
//! API's (rate limits, Argon2id, audit); the session cookie is HttpOnly and SameSite=Strict.

use std::net::{IpAddr, Ipv4Addr};

use askama::Template;
use axum::extract::rejection::FormRejection;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;
use zeroize::Zeroizing;

use super::{ClientIp, Console, Layout, PageError, Visitor, html, ok};
use crate::api::auth::{Credentials, expected_origin, log_in};
use crate::auth::authenticator::same_origin;
use crate::auth::cookie::{clear_session_cookie, session_cookie, session_id_from_cookies};

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage {
    layout: Layout,
    name: String,
    next: String,
    error: String,
    info: String,
}

fn login_page(name: String, next: String, error: String, info: String) -> LoginPage {
    LoginPage {
        layout: Layout {
            title: "Sign in".into(),
            signed: None,
            refresh: None,
        },
        name,
        next,
        error,
        info,
    }
}

/// Where to go after signing in: a page of this console only.
fn safe_next(next: &str) -> &str {
    let local = next.starts_with('/')
        && !next.starts_with("//")
        && !next.contains('\\')
        && !next.starts_with("/login")
        && !next.starts_with("/api/")
        && next.chars().all(|c| !c.is_control());
    if local { next } else { "/" }
}

#[derive(Deserialize)]
pub struct LoginQuery {
    #[serde(default)]
    next: String,
    #[serde(default)]
    signed_out: bool,
}

/// `GET /login`: the form (or home, for a visitor already signed in).
pub async fn page(
    State(state): State<Console>,
    headers: HeaderMap,
    query: Result<Query<LoginQuery>, QueryRejection>,
) -> Response {
    let cookies = headers
        .get(header::COOKIE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if session_id_from_cookies(cookies, state.app.tls)
        .is_some_and(|id| state.app.auth.session(id).is_some())
    {
        return Redirect::to("/").into_response();
    }
    let (next, signed_out) =
        query.map_or((String::new(), false), |Query(q)| (q.next, q.signed_out));
    let info = if signed_out {
        "You have signed out.".to_owned()
    } else {
        String::new()
    };
    ok(&login_page(
        String::new(),
        safe_next(&next).to_owned(),
        String::new(),
        info,
    ))
}

#[derive(Deserialize)]
pub struct LoginForm {
    #[serde(default)]
    name: String,
    #[serde(default)]
    password: Zeroizing<String>,
    #[serde(default)]
    next: String,
}

/// `POST /login`: a session cookie and the page asked for, or the form again with why.
pub async fn submit(
    State(state): State<Console>,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    body: Result<axum::Form<LoginForm>, FormRejection>,
) -> Response {
    let form = match body {
        Ok(axum::Form(form)) => form,
        Err(e) => {
            return PageError::new(StatusCode::BAD_REQUEST, "Bad form", e.body_text())
                .into_response();
        }
    };
    let next = safe_next(&form.next).to_owned();
    // A login form posted from another site is refused (login CSRF).
    let origin = headers
        .get(header::ORIGIN)
        .or_else(|| headers.get(header::REFERER))
        .and_then(|v| v.to_str().ok());
    if let Some(origin) = origin
        && !same_origin(origin, &expected_origin(&headers, state.app.tls))
    {
        return PageError::new(
            StatusCode::FORBIDDEN,
            "Refused",
            "The sign-in form was not sent from this console's own page.",
        )
        .into_response();
    }
    let ip = ip.unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST));
    let name = form.name.trim().to_owned();
    let credentials = Credentials {
        name: name.clone(),
        password: form.password,
    };
    match log_in(&state.app, credentials, ip).await {
        Ok((_, session)) => {
            let cookie = session_cookie(&session.id, state.app.tls, session.max_age);
            let mut response = Redirect::to(&next).into_response();
            if let Ok(value) = HeaderValue::from_str(&cookie) {
                response.headers_mut().insert(header::SET_COOKIE, value);
            }
            response
        }
        Err(e) => {
            let message = if e.status == StatusCode::UNAUTHORIZED {
                "Unknown user name or wrong password.".to_owned()
            } else {
                e.message
            };
            html(e.status, &login_page(name, next, message, String::new()))
        }
    }
}

#[derive(Deserialize)]
pub struct LogoutForm {
    #[serde(default)]
    csrf_token: String,
}

/// `POST /logout`: ends the session (with its CSRF token: another site cannot sign you out).
pub async fn logout(
    State(state): State<Console>,
    visitor: Visitor,
    body: Result<axum::Form<LogoutForm>, FormRejection>,
) -> Result<Response, PageError> {
    let form = super::form(body, &visitor)?;
    visitor.check_form(&state, &form.csrf_token)?;
    state.app.auth.logout(&visitor.session, visitor.ip);
    let mut response = Redirect::to("/login?signed_out=true").into_response();
    if let Ok(value) = HeaderValue::from_str(&clear_session_cookie(state.app.tls)) {
        response.headers_mut().insert(header::SET_COOKIE, value);
    }
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::safe_next;

    #[test]
    fn only_local_pages_are_followed_after_login() {
        assert_eq!(safe_next("/jobs/abc?refresh=30"), "/jobs/abc?refresh=30");
        for bad in [
            "https://evil.example/",
            "//evil.example",
            "/\\evil",
            "",
            "jobs",
            "/login",
            "/api/v1/status",
        ] {
            assert_eq!(safe_next(bad), "/", "{bad}");
        }
    }
}
