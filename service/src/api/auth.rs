//! Who is calling: the [`Caller`] extractor (a bearer token, or a browser session whose
//! state-changing requests carry the session's CSRF token and a matching Origin), the login
//! and logout routes, and the JSON 404. Every refusal is audited by the authenticator.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::extract::rejection::JsonRejection;
use axum::extract::{ConnectInfo, FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::{Form, Json};
use serde::Deserialize;

use super::Shared;
use crate::auth::audit::Refusal;
use crate::auth::cookie::{clear_session_cookie, session_cookie, session_id_from_cookies};
use crate::auth::{AccessError, Action, Authenticator, LoginError, Operator, RequestInfo};
use crate::error::ApiError;

/// The header a browser sends its session's CSRF token in.
pub const CSRF_HEADER: &str = "x-csrf-token";

/// An authenticated operator, and how the request reached us.
#[derive(Clone)]
pub struct Caller {
    pub name: String,
    pub operator: Operator,
    /// The client's address.
    pub address: Option<String>,
    pub ip: Option<IpAddr>,
    /// The browser session, when the caller used one.
    pub session: Option<String>,
    request: RequestInfo,
    auth: Arc<Authenticator>,
}

impl Caller {
    /// Refuses (403, audited) when the caller's role does not allow `action`.
    pub fn require(&self, action: Action) -> Result<(), ApiError> {
        self.auth
            .authorize(&self.operator, action, &self.request)
            .map_err(access_error)
    }
}

fn access_error(e: AccessError) -> ApiError {
    match e {
        AccessError::Unauthenticated => ApiError::unauthenticated(),
        AccessError::Forbidden { .. } => ApiError::forbidden(e.to_string()),
        AccessError::Csrf => ApiError::new(StatusCode::FORBIDDEN, "csrf", e.to_string()),
        AccessError::Origin => ApiError::new(StatusCode::FORBIDDEN, "origin", e.to_string()),
    }
}

/// The client's address (from the connection).
fn client_ip(parts: &Parts) -> Option<IpAddr> {
    parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(address)| address.ip())
}

/// `https://host:port` as the browser sees this service.
pub fn expected_origin(headers: &HeaderMap, tls: bool) -> String {
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or_default();
    format!("{}://{host}", if tls { "https" } else { "http" })
}

fn header_text(headers: &HeaderMap, name: impl header::AsHeaderName) -> Option<&str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

impl FromRequestParts<Shared> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &Shared) -> Result<Self, ApiError> {
        let ip = client_ip(parts);
        let route = parts
            .extensions
            .get::<axum::extract::MatchedPath>()
            .map_or_else(|| parts.uri.path().to_owned(), |p| p.as_str().to_owned());
        let request = RequestInfo::new(parts.method.as_str(), &route, ip);
        let auth = state.auth.clone();
        let caller = |operator: Operator, session: Option<String>| Caller {
            name: operator.name.clone(),
            operator,
            address: ip.map(|ip| ip.to_string()),
            ip,
            session,
            request: request.clone(),
            auth: auth.clone(),
        };
        if let Some(value) = header_text(&parts.headers, header::AUTHORIZATION) {
            let token = value
                .strip_prefix("Bearer ")
                .or_else(|| value.strip_prefix("bearer "))
                .unwrap_or_default()
                .trim();
            let result = {
                let auth = auth.clone();
                let token = token.to_owned();
                tokio::task::spawn_blocking(move || auth.bearer(&token))
                    .await
                    .map_err(|_| ApiError::internal("the token check stopped"))?
            };
            return match result {
                Ok(operator) => Ok(caller(operator, None)),
                Err(_) => {
                    auth.refuse_unauthenticated(Refusal::BadToken, &request);
                    Err(ApiError::unauthenticated())
                }
            };
        }
        let cookies = header_text(&parts.headers, header::COOKIE).unwrap_or_default();
        let Some(session_id) = session_id_from_cookies(cookies, state.tls) else {
            auth.refuse_unauthenticated(Refusal::Unauthenticated, &request);
            return Err(ApiError::unauthenticated());
        };
        let Some((_, operator)) = auth.session(session_id) else {
            auth.refuse_unauthenticated(Refusal::BadSession, &request);
            return Err(ApiError::unauthenticated());
        };
        let writes = !matches!(parts.method, Method::GET | Method::HEAD | Method::OPTIONS);
        if writes {
            let origin = header_text(&parts.headers, header::ORIGIN)
                .or_else(|| header_text(&parts.headers, header::REFERER));
            auth.check_browser_write(
                session_id,
                &operator,
                header_text(&parts.headers, CSRF_HEADER),
                origin,
                &expected_origin(&parts.headers, state.tls),
                &request,
            )
            .map_err(access_error)?;
        }
        Ok(caller(operator, Some(session_id.to_owned())))
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Credentials {
    pub name: String,
    pub password: zeroize::Zeroizing<String>,
}

/// `POST /api/v1/session`: JSON `{name, password}` (the console posts the same as a form).
pub async fn login(
    State(state): State<Shared>,
    ConnectInfo(address): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    let credentials = parse_credentials(&headers, body).await?;
    let (operator, session) = log_in(&state, credentials, address.ip()).await?;
    let cookie = session_cookie(&session.id, state.tls, session.max_age);
    let mut response = Json(serde_json::json!({
        "name": operator.name,
        "role": operator.role,
        "csrf_token": session.csrf_token,
    }))
    .into_response();
    if let Ok(value) = HeaderValue::from_str(&cookie) {
        response.headers_mut().insert(header::SET_COOKIE, value);
    }
    Ok(response)
}

/// Reads credentials from a JSON or form body.
pub async fn parse_credentials(
    headers: &HeaderMap,
    body: axum::body::Bytes,
) -> Result<Credentials, ApiError> {
    let form = header_text(headers, header::CONTENT_TYPE)
        .is_some_and(|t| t.starts_with("application/x-www-form-urlencoded"));
    let request = axum::http::Request::builder()
        .header(
            header::CONTENT_TYPE,
            if form {
                "application/x-www-form-urlencoded"
            } else {
                "application/json"
            },
        )
        .body(axum::body::Body::from(body))
        .map_err(|e| ApiError::invalid(e.to_string()))?;
    use axum::extract::FromRequest;
    if form {
        let Form(credentials) = Form::<Credentials>::from_request(request, &())
            .await
            .map_err(|e| ApiError::invalid(e.body_text()))?;
        Ok(credentials)
    } else {
        let Json(credentials) = Json::<Credentials>::from_request(request, &())
            .await
            .map_err(|e: JsonRejection| ApiError::body(&e))?;
        Ok(credentials)
    }
}

/// Checks credentials (off the async workers: the password hash is slow on purpose).
pub async fn log_in(
    state: &Shared,
    credentials: Credentials,
    ip: IpAddr,
) -> Result<(Operator, crate::auth::NewSession), ApiError> {
    let auth = state.auth.clone();
    let result = tokio::task::spawn_blocking(move || {
        auth.login(&credentials.name, &credentials.password, ip)
    })
    .await
    .map_err(|_| ApiError::internal("the login check stopped"))?;
    result.map_err(|e| match e {
        LoginError::RateLimited(limited) => ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "too-many-requests",
            format!(
                "too many failed logins; try again in {} s",
                limited.retry_after_secs()
            ),
        ),
        LoginError::BadCredentials => ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthenticated",
            "unknown operator or wrong password",
        ),
        LoginError::Unavailable(e) => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            format!("operators cannot be checked: {e}"),
        ),
    })
}

/// `DELETE /api/v1/session`.
pub async fn logout(State(state): State<Shared>, caller: Caller) -> Response {
    if let Some(id) = &caller.session {
        state.auth.logout(id, caller.ip);
    }
    let mut response = StatusCode::NO_CONTENT.into_response();
    if let Ok(value) = HeaderValue::from_str(&clear_session_cookie(state.tls)) {
        response.headers_mut().insert(header::SET_COOKIE, value);
    }
    response
}

/// Anything else under the API: a JSON 404.
pub async fn not_found(uri: axum::http::Uri) -> ApiError {
    ApiError::not_found(format!("no route {}", uri.path()))
}
