//! Structured logs (http-api.md: Logs): one JSON line per request, and one per operational event,
//! formatted here so that every platform writes the same lines. A line carries the request's id,
//! route, status, OAuth error code and the calls made to the authorization server (path and
//! grant type, never a URL's query, a body, a header or a token).
//!
//! ```text
//! {"timestamp":"2026-12-02T13:40:00.123Z","level":"INFO","request_id":"8e1f…-AMS","type":"request",
//!  "method":"GET","route":"bff-token","status":200,"provider":[{"call":"POST /token",
//!  "grant":"refresh_token","status":200,"ms":34}],"refresh":true,"ms":41}
//! ```

use std::sync::Mutex;
use std::time::Duration;

use http::header::CONTENT_TYPE;
use serde::{Deserialize, Serialize, Serializer};

use crate::ports::{Clock, HttpClient, HttpError, Level, Log, SecureRandom};

/// The platform's id of a request (the Worker's `cf-ray` header, Lambda's request id), which an
/// adapter puts into the request's extensions. Up to 64 characters of `[A-Za-z0-9._:-]` are
/// logged as given; anything else, or no id, is replaced by 16 random hex digits.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestId(pub String);

/// The longest request id kept.
const MAX_ID: usize = 64;
/// The longest message, path or method written; longer ones are cut.
const MAX_MESSAGE: usize = 1024;
const MAX_PATH: usize = 128;
const MAX_METHOD: usize = 16;
/// The longest OAuth error code or grant type written.
const MAX_CODE: usize = 64;
/// The provider calls recorded per request; later ones are left out of the line.
const MAX_CALLS: usize = 16;

/// One operational line outside any request (an adapter's start-up), as JSON with
/// `"request_id":null`. `now_millis` is the platform's [`Clock::now_millis`].
pub fn log_line(level: Level, message: &str, now_millis: u64) -> String {
    event_line(level, None, message, now_millis)
}

fn event_line(level: Level, request_id: Option<&str>, message: &str, now_millis: u64) -> String {
    render(&EventLine {
        timestamp: timestamp(now_millis),
        level: level_name(level),
        request_id,
        kind: "event",
        message: cut(message, MAX_MESSAGE),
    })
}

#[derive(Serialize)]
struct EventLine<'a> {
    timestamp: String,
    level: &'static str,
    request_id: Option<&'a str>,
    #[serde(rename = "type")]
    kind: &'static str,
    message: &'a str,
}

#[derive(Serialize)]
struct RequestLine<'a> {
    timestamp: String,
    level: &'static str,
    request_id: &'a str,
    #[serde(rename = "type")]
    kind: &'static str,
    method: &'a str,
    route: &'a str,
    status: u16,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<&'a str>,
    provider: &'a [Call],
    refresh: bool,
    ms: u64,
}

impl RequestLine<'_> {
    /// The line as JSON, written directly: it is on every request's path, where serde's generic
    /// serialiser cost a cached `bff-token` answer about as much again as all its other work.
    /// The same JSON as serialising the struct (`the_request_line_is_what_serde_would_write`).
    fn to_json(&self) -> String {
        use std::fmt::Write as _;
        let mut out = String::with_capacity(224 + self.provider.len() * 80);
        out.push_str("{\"timestamp\":");
        string(&mut out, &self.timestamp);
        out.push_str(",\"level\":");
        string(&mut out, self.level);
        out.push_str(",\"request_id\":");
        string(&mut out, self.request_id);
        out.push_str(",\"type\":");
        string(&mut out, self.kind);
        out.push_str(",\"method\":");
        string(&mut out, self.method);
        out.push_str(",\"route\":");
        string(&mut out, self.route);
        let _ = write!(out, ",\"status\":{}", self.status);
        if let Some(error) = self.error {
            out.push_str(",\"error\":");
            string(&mut out, error);
        }
        out.push_str(",\"provider\":[");
        for (i, call) in self.provider.iter().enumerate() {
            out.push_str(if i == 0 { "{\"call\":" } else { ",{\"call\":" });
            string(&mut out, &call.call);
            if let Some(grant) = &call.grant {
                out.push_str(",\"grant\":");
                string(&mut out, grant);
            }
            let _ = match call.status {
                CallStatus::Answered(status) => write!(out, ",\"status\":{status}"),
                CallStatus::Failed => write!(out, ",\"status\":\"failed\""),
                CallStatus::TimedOut => write!(out, ",\"status\":\"timeout\""),
            };
            let _ = write!(out, ",\"ms\":{}}}", call.ms);
        }
        let _ = write!(out, "],\"refresh\":{},\"ms\":{}}}", self.refresh, self.ms);
        out
    }
}

/// `text` as a JSON string (RFC 8259 §7): quotes, backslashes and control characters escaped.
fn string(out: &mut String, text: &str) {
    use std::fmt::Write as _;
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if u32::from(c) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

fn render(line: &impl Serialize) -> String {
    // Plain structs of strings and numbers always serialise; the fallback is never written.
    serde_json::to_string(line).unwrap_or_default()
}

fn level_name(level: Level) -> &'static str {
    match level {
        Level::Error => "ERROR",
        Level::Warn => "WARN",
        Level::Info => "INFO",
    }
}

/// Whether a line at `level` passes the `threshold` (`BFF_LOG_LEVEL`).
fn admits(threshold: Level, level: Level) -> bool {
    let rank = |level| match level {
        Level::Error => 0,
        Level::Warn => 1,
        Level::Info => 2,
    };
    rank(level) <= rank(threshold)
}

/// The request line's level: 500 is a failure of the backend itself, another 5xx one of what it
/// depends on.
fn status_level(status: u16) -> Level {
    match status {
        500 => Level::Error,
        501..=599 => Level::Warn,
        _ => Level::Info,
    }
}

/// The request's method if it is a standard one (RFC 9110 §9, RFC 5789), else `OTHER`: any other
/// method is text of the client's choosing, and the line is no place for it.
fn method_name(method: &http::Method) -> &'static str {
    match method.as_str() {
        "GET" => "GET",
        "HEAD" => "HEAD",
        "POST" => "POST",
        "PUT" => "PUT",
        "DELETE" => "DELETE",
        "CONNECT" => "CONNECT",
        "OPTIONS" => "OPTIONS",
        "TRACE" => "TRACE",
        "PATCH" => "PATCH",
        _ => "OTHER",
    }
}

/// At most `max` characters of `text`.
fn cut(text: &str, max: usize) -> &str {
    text.char_indices().nth(max).map_or(text, |(end, _)| &text[..end])
}

/// The request's id: the platform's, when it is short and plain, else 8 random bytes in hex.
pub(crate) fn request_id(extensions: &http::Extensions, random: &dyn SecureRandom) -> String {
    if let Some(RequestId(id)) = extensions.get::<RequestId>()
        && !id.is_empty()
        && id.len() <= MAX_ID
        && id.bytes().all(|b| b.is_ascii_alphanumeric() || b".:_-".contains(&b))
    {
        return id.clone();
    }
    let mut bytes = [0u8; 8];
    if random.fill(&mut bytes).is_err() {
        return "unknown".to_owned();
    }
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let digits = bytes
        .iter()
        .flat_map(|b| [HEX[usize::from(b >> 4)], HEX[usize::from(b & 15)]]);
    digits.map(char::from).collect()
}

/// RFC 3339 UTC with milliseconds, e.g. `2026-12-02T13:40:00.123Z`.
pub(crate) fn timestamp(now_millis: u64) -> String {
    let (secs, millis) = (now_millis / 1000, now_millis % 1000);
    let (days, day_secs) = (secs / 86_400, secs % 86_400);
    let (year, month, day) = civil_date(days);
    let (hour, minute, second) = (day_secs / 3600, day_secs % 3600 / 60, day_secs % 60);
    if year > 9999 {
        return format!("{year:04}-{month:02}-{day:02}T{hour:02}:{minute:02}:{second:02}.{millis:03}Z");
    }
    // Digit by digit: this is on every request's path, and the formatting machinery is not.
    let mut out = String::with_capacity(24);
    for (value, width, after) in [
        (year, 4, '-'),
        (month, 2, '-'),
        (day, 2, 'T'),
        (hour, 2, ':'),
        (minute, 2, ':'),
        (second, 2, '.'),
        (millis, 3, 'Z'),
    ] {
        for place in (0..width).rev() {
            let digit = value / 10u64.pow(place) % 10;
            out.push(char::from(b'0' + u8::try_from(digit).unwrap_or(0)));
        }
        out.push(after);
    }
    out
}

/// The proleptic Gregorian (year, month, day) of `days` since 1970-01-01 (H. Hinnant's
/// `civil_from_days`, for unsigned days): eras of 400 years, years starting in March so that
/// the leap day is the last of its year. Public for the adapters' own timestamps (SigV4).
pub fn civil_date(days: u64) -> (u64, u64, u64) {
    let shifted = days + 719_468; // days from 0000-03-01 to 1970-01-01
    let era = shifted / 146_097;
    let day_of_era = shifted % 146_097;
    let year_of_era = (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_from_march = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_from_march + 2) / 5 + 1;
    let month = if month_from_march < 10 {
        month_from_march + 3
    } else {
        month_from_march - 9
    };
    let year = era * 400 + year_of_era + u64::from(month <= 2);
    (year, month, day)
}

/// One request's log: operational lines carry its id and pass its threshold; [`RequestLog::finish`]
/// writes the request line.
pub(crate) struct RequestLog<'a> {
    sink: &'a dyn Log,
    clock: &'a dyn Clock,
    id: String,
    threshold: Level,
    started: u64,
}

/// What the request line reports of the answer.
pub(crate) struct Outcome<'a> {
    pub(crate) method: &'a http::Method,
    /// The route's name, or the path of a request refused before routing.
    pub(crate) route: &'a str,
    pub(crate) response: &'a http::Response<Vec<u8>>,
}

impl<'a> RequestLog<'a> {
    pub(crate) fn new(sink: &'a dyn Log, clock: &'a dyn Clock, id: String, threshold: Level) -> Self {
        Self {
            sink,
            clock,
            id,
            threshold,
            started: clock.now_millis(),
        }
    }

    /// Writes the request line: the answer, and the provider calls `http` made.
    pub(crate) fn finish<H>(&self, outcome: &Outcome<'_>, http: &TimedHttp<'_, H>) {
        let status = outcome.response.status().as_u16();
        let level = status_level(status);
        if !admits(self.threshold, level) {
            return;
        }
        let calls = http.calls.lock().map(|calls| calls.clone()).unwrap_or_default();
        let now = self.clock.now_millis();
        let error = (status >= 400)
            .then(|| serde_json::from_slice::<ErrorBody>(outcome.response.body()).ok())
            .flatten()
            .and_then(|body| body.error);
        let line = RequestLine {
            timestamp: timestamp(now),
            level: level_name(level),
            request_id: &self.id,
            kind: "request",
            method: method_name(outcome.method),
            route: cut(outcome.route, MAX_PATH),
            status,
            error: error.as_deref().map(|code| cut(code, MAX_CODE)),
            refresh: calls.iter().any(|call| call.grant.as_deref() == Some("refresh_token")),
            provider: &calls,
            ms: now.saturating_sub(self.started),
        }
        .to_json();
        self.sink.line(level, &line);
    }
}

impl Log for RequestLog<'_> {
    fn line(&self, level: Level, message: &str) {
        if admits(self.threshold, level) {
            let line = event_line(level, Some(&self.id), message, self.clock.now_millis());
            self.sink.line(level, &line);
        }
    }
}

/// The `error` member of an error answer (RFC 6749 §5.2, TMI-BFF).
#[derive(Deserialize)]
struct ErrorBody {
    error: Option<String>,
}

/// One request's view of the HTTP client: each call to the authorization server timed and
/// recorded (method, path, grant type, outcome), the first [`MAX_CALLS`] of them.
pub(crate) struct TimedHttp<'a, H> {
    http: &'a H,
    clock: &'a dyn Clock,
    calls: Mutex<Vec<Call>>,
}

#[derive(Clone, Serialize)]
struct Call {
    /// `POST /token`: the method and path, without host or query.
    call: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    grant: Option<String>,
    status: CallStatus,
    ms: u64,
}

#[derive(Clone, Copy)]
enum CallStatus {
    Answered(u16),
    Failed,
    TimedOut,
}

impl Serialize for CallStatus {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Self::Answered(status) => serializer.serialize_u16(*status),
            Self::Failed => serializer.serialize_str("failed"),
            Self::TimedOut => serializer.serialize_str("timeout"),
        }
    }
}

impl<'a, H> TimedHttp<'a, H> {
    pub(crate) fn new(http: &'a H, clock: &'a dyn Clock) -> Self {
        Self {
            http,
            clock,
            calls: Mutex::new(Vec::new()),
        }
    }

    fn record(&self, call: Call) {
        if let Ok(mut calls) = self.calls.lock()
            && calls.len() < MAX_CALLS
        {
            calls.push(call);
        }
    }
}

impl<H: HttpClient> HttpClient for TimedHttp<'_, H> {
    async fn send(
        &self,
        request: http::Request<Vec<u8>>,
        timeout: Duration,
    ) -> Result<http::Response<Vec<u8>>, HttpError> {
        let call = format!(
            "{} {}",
            cut(request.method().as_str(), MAX_METHOD),
            cut(request.uri().path(), MAX_PATH)
        );
        let grant = grant_type(&request);
        let started = self.clock.now_millis();
        let answer = self.http.send(request, timeout).await;
        let status = match &answer {
            Ok(response) => CallStatus::Answered(response.status().as_u16()),
            Err(HttpError::Timeout) => CallStatus::TimedOut,
            Err(_) => CallStatus::Failed,
        };
        let ms = self.clock.now_millis().saturating_sub(started);
        self.record(Call {
            call,
            grant,
            status,
            ms,
        });
        answer
    }

    async fn pause(&self, duration: Duration) {
        self.http.pause(duration).await;
    }
}

/// The `grant_type` of a form body (RFC 6749 §4.1.3, §6), the only part of a body logged.
fn grant_type(request: &http::Request<Vec<u8>>) -> Option<String> {
    let form = request
        .headers()
        .get(CONTENT_TYPE)
        .is_some_and(|value| value.as_bytes().starts_with(b"application/x-www-form-urlencoded"));
    if !form {
        return None;
    }
    url::form_urlencoded::parse(request.body())
        .find(|(name, _)| name == "grant_type")
        .map(|(_, grant)| cut(&grant, MAX_CODE).to_owned())
}

#[cfg(test)]
#[path = "request_log_tests.rs"]
mod tests;
