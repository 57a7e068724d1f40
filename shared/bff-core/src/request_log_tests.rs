use futures::executor::block_on;
use serde_json::Value;

use super::*;
use crate::testing::{Browser, CounterRandom, Endpoint, Fault, FixedClock, MemoryLog, World};

/// A clock whose every reading is `step` milliseconds after the previous one.
struct Ticking(Mutex<u64>, u64);

impl Clock for Ticking {
    fn now(&self) -> crate::ports::UnixTime {
        crate::ports::UnixTime(self.now_millis() / 1000)
    }

    fn now_millis(&self) -> u64 {
        let mut millis = self.0.lock().unwrap();
        *millis += self.1;
        *millis
    }
}

/// Answers every request with `status`.
struct Answering(u16);

impl HttpClient for Answering {
    async fn send(&self, _: http::Request<Vec<u8>>, _: Duration) -> Result<http::Response<Vec<u8>>, HttpError> {
        let mut response = http::Response::new(Vec::new());
        *response.status_mut() = http::StatusCode::from_u16(self.0).unwrap();
        Ok(response)
    }

    async fn pause(&self, _: Duration) {}
}

fn response(status: u16, body: &str) -> http::Response<Vec<u8>> {
    let mut response = http::Response::new(body.as_bytes().to_vec());
    *response.status_mut() = http::StatusCode::from_u16(status).unwrap();
    response
}

fn parsed(line: &str) -> Value {
    serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"))
}

#[test]
fn timestamps_are_rfc3339_utc_with_milliseconds() {
    for (millis, expected) in [
        (0, "1970-01-01T00:00:00.000Z"),
        (1, "1970-01-01T00:00:00.001Z"),
        (1_796_218_800_123, "2026-12-02T13:40:00.123Z"),
        (951_782_400_000, "2000-02-29T00:00:00.000Z"),
        (68_212_800_999, "1972-02-29T12:00:00.999Z"),
        (4_107_542_400_000, "2100-03-01T00:00:00.000Z"),
        (1_735_689_599_999, "2024-12-31T23:59:59.999Z"),
        (2_147_483_648_000, "2038-01-19T03:14:08.000Z"),
    ] {
        assert_eq!(timestamp(millis), expected, "{millis}");
    }
    // No panic at the far end of the clock.
    assert!(timestamp(u64::MAX).ends_with('Z'));
}

/// Every day from 1970 to 2300 against a calendar walked one day at a time.
#[test]
fn civil_dates_follow_the_gregorian_calendar() {
    let leap = |year: u64| year.is_multiple_of(4) && (!year.is_multiple_of(100) || year.is_multiple_of(400));
    let (mut year, mut month, mut day) = (1970, 1, 1);
    for days in 0..120_000 {
        assert_eq!(civil_date(days), (year, month, day), "{days}");
        let length = match month {
            2 if leap(year) => 29,
            2 => 28,
            4 | 6 | 9 | 11 => 30,
            _ => 31,
        };
        day += 1;
        if day > length {
            (day, month) = (1, month + 1);
        }
        if month > 12 {
            (month, year) = (1, year + 1);
        }
    }
}

#[test]
fn an_event_line_is_escaped_json_in_field_order() {
    let line = log_line(Level::Warn, "a \"quoted\" \\ line\nwith \u{1} and é", 1_796_218_800_123);
    assert_eq!(
        line,
        r#"{"timestamp":"2026-12-02T13:40:00.123Z","level":"WARN","request_id":null,"type":"event","message":"a \"quoted\" \\ line\nwith \u0001 and é"}"#
    );
    assert!(!line.contains('\n'));
    assert_eq!(parsed(&line)["message"], "a \"quoted\" \\ line\nwith \u{1} and é");
}

#[test]
fn a_request_line_names_route_status_error_and_calls() {
    let (sink, clock) = (MemoryLog::default(), Ticking(Mutex::new(1_796_218_800_000), 5));
    let log = RequestLog::new(&sink, &clock, "abc-1".into(), Level::Info);
    let http = TimedHttp::new(&Answering(400), &clock);
    let request = http::Request::post("https://idp.example/oauth/token?x=secret")
        .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(b"grant_type=refresh_token&refresh_token=rt-secret".to_vec())
        .unwrap();
    let _ = block_on(http.send(request, Duration::from_secs(1)));
    log.line(Level::Info, "the \"refresh\" failed");
    let answer = response(400, r#"{"error":"invalid_session","error_description":"x"}"#);
    let outcome = Outcome {
        method: &http::Method::GET,
        route: "bff-token",
        response: &answer,
    };
    log.finish(&outcome, &http);
    let lines = sink.lines();
    assert_eq!(
        lines[0],
        r#"{"timestamp":"2026-12-02T13:40:00.020Z","level":"INFO","request_id":"abc-1","type":"event","message":"the \"refresh\" failed"}"#
    );
    assert_eq!(
        lines[1],
        r#"{"timestamp":"2026-12-02T13:40:00.025Z","level":"INFO","request_id":"abc-1","type":"request","method":"GET","route":"bff-token","status":400,"error":"invalid_session","provider":[{"call":"POST /oauth/token","grant":"refresh_token","status":400,"ms":5}],"refresh":true,"ms":20}"#
    );
    assert!(lines.iter().all(|line| !line.contains("secret")), "{lines:?}");
}

#[test]
fn outcomes_of_calls_and_answers() {
    let (sink, clock) = (MemoryLog::default(), FixedClock::at(0));
    let log = RequestLog::new(&sink, &clock, "id".into(), Level::Info);
    let http = TimedHttp::new(&Answering(200), &clock);
    http.record(Call {
        call: "GET /jwks".into(),
        grant: None,
        status: CallStatus::TimedOut,
        ms: 5000,
    });
    http.record(Call {
        call: "POST /revoke".into(),
        grant: None,
        status: CallStatus::Failed,
        ms: 1,
    });
    // An HTML error page has no code; a success has none either.
    for (status, body) in [(400, "<html>x</html>"), (200, r#"{"error":"not-an-error"}"#)] {
        let answer = response(status, body);
        let outcome = Outcome {
            method: &http::Method::GET,
            route: "callback",
            response: &answer,
        };
        log.finish(&outcome, &http);
    }
    for record in sink.records() {
        assert!(record.get("error").is_none(), "{record}");
        assert_eq!(record["refresh"], false);
        assert_eq!(
            record["provider"],
            serde_json::json!([
                {"call": "GET /jwks", "status": "timeout", "ms": 5000},
                {"call": "POST /revoke", "status": "failed", "ms": 1},
            ])
        );
    }
}

#[test]
fn lines_below_the_threshold_are_not_written() {
    let (sink, clock) = (MemoryLog::default(), FixedClock::at(0));
    let log = RequestLog::new(&sink, &clock, "id".into(), Level::Warn);
    let http = TimedHttp::new(&Answering(200), &clock);
    log.line(Level::Info, "info");
    log.line(Level::Warn, "warn");
    log.line(Level::Error, "error");
    for status in [200, 302, 400, 401, 500, 501, 503] {
        let answer = response(status, "");
        let outcome = Outcome {
            method: &http::Method::GET,
            route: "x",
            response: &answer,
        };
        log.finish(&outcome, &http);
    }
    let levels: Vec<(String, String)> = sink
        .records()
        .iter()
        .map(|r| {
            (
                r["level"].as_str().unwrap().into(),
                r["message"]
                    .as_str()
                    .map_or_else(|| r["status"].to_string(), Into::into),
            )
        })
        .collect();
    let expected = [
        ("WARN", "warn"),
        ("ERROR", "error"),
        ("ERROR", "500"),
        ("WARN", "501"),
        ("WARN", "503"),
    ];
    let expected: Vec<(String, String)> = expected.iter().map(|(l, m)| ((*l).into(), (*m).into())).collect();
    assert_eq!(levels, expected);

    let only_errors = RequestLog::new(&sink, &clock, "id".into(), Level::Error);
    only_errors.line(Level::Warn, "dropped");
    assert_eq!(sink.lines().len(), 5);
    assert!(admits(Level::Info, Level::Info) && admits(Level::Info, Level::Error));
}

#[test]
fn every_field_is_bounded() {
    let (sink, clock) = (MemoryLog::default(), FixedClock::at(0));
    let log = RequestLog::new(&sink, &clock, "id".into(), Level::Info);
    let http = TimedHttp::new(&Answering(200), &clock);
    let long_path = format!("/{}", "p".repeat(500));
    for _ in 0..40 {
        let request = http::Request::post(format!("https://idp.example{long_path}"))
            .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(format!("grant_type={}", "g".repeat(500)).into_bytes())
            .unwrap();
        let _ = block_on(http.send(request, Duration::from_secs(1)));
    }
    log.line(Level::Info, &"m".repeat(5000));
    let error = format!(r#"{{"error":"{}"}}"#, "e".repeat(500));
    let answer = response(400, &error);
    let method = http::Method::from_bytes("X".repeat(100).as_bytes()).unwrap();
    let outcome = Outcome {
        method: &method,
        route: &long_path,
        response: &answer,
    };
    log.finish(&outcome, &http);
    let records = sink.records();
    assert_eq!(records[0]["message"].as_str().unwrap().len(), MAX_MESSAGE);
    let line = &records[1];
    assert_eq!(line["route"].as_str().unwrap().len(), MAX_PATH);
    assert_eq!(line["method"], "OTHER");
    assert_eq!(line["error"].as_str().unwrap().len(), MAX_CODE);
    let calls = line["provider"].as_array().unwrap();
    assert_eq!(calls.len(), MAX_CALLS);
    assert_eq!(calls[0]["call"].as_str().unwrap().len(), "POST ".len() + MAX_PATH);
    assert_eq!(calls[0]["grant"].as_str().unwrap().len(), MAX_CODE);
    // 16 calls of the longest kind make the longest request line: a few KB, far below the
    // platforms' limits on one log record.
    assert!(sink.lines().iter().all(|line| line.len() < 8 * 1024));
    assert_eq!(cut("héllo", 2), "hé");
}

#[test]
fn request_ids_are_the_platform_s_when_plain_else_random() {
    let random = CounterRandom::starting_at(0xf0);
    let id = |given: Option<&str>| {
        let mut extensions = http::Extensions::new();
        if let Some(given) = given {
            extensions.insert(RequestId(given.to_owned()));
        }
        request_id(&extensions, &random)
    };
    assert_eq!(id(Some("8e1f0a2b3c4d5e6f-AMS")), "8e1f0a2b3c4d5e6f-AMS");
    assert_eq!(
        id(Some("c0ffee00-1234-4cde-8f00-0123456789ab")),
        "c0ffee00-1234-4cde-8f00-0123456789ab"
    );
    assert_eq!(id(Some("a.b:c_d")), "a.b:c_d");
    assert_eq!(id(None), "f0f1f2f3f4f5f6f7");
    for bad in ["", "with space", "quote\"", "new\nline", "ü", &"x".repeat(65)] {
        let replaced = id(Some(bad));
        assert_eq!(replaced.len(), 16, "{bad:?}");
        assert!(replaced.bytes().all(|b| b.is_ascii_hexdigit()), "{bad:?}");
    }
    assert_eq!(id(Some(&"x".repeat(64))), "x".repeat(64));
}

/// A bff-token request that refreshes logs one line with `refresh: true` and the token call;
/// no line of the whole story carries a token, a cookie, the secret, the code or a query.
#[test]
fn a_refresh_is_logged_without_secrets() {
    let world = World::new(&[]);
    let mut browser = Browser::default();
    let callback = block_on(world.start_login(&mut browser, "?return_to=%2Fhome", "alice"));
    assert_eq!(block_on(world.callback(&mut browser, &callback)).status, 302);
    let first = block_on(world.token(&mut browser, ""));
    world.clock.advance(60);
    let refreshed = block_on(world.token(&mut browser, &format!("rejected_token={}", first.access_token())));
    assert_eq!(refreshed.status, 200, "{}", refreshed.text());
    let info = block_on(world.session_info(&mut browser));
    assert_eq!(info.status, 200);

    let requests = world.log.requests();
    let routes: Vec<&str> = requests.iter().map(|r| r["route"].as_str().unwrap()).collect();
    assert_eq!(
        routes,
        ["login", "callback", "bff-token", "bff-token", "bff-sessioninfo"]
    );
    let refresh = &requests[3];
    assert_eq!(refresh["method"], "GET");
    assert_eq!(refresh["status"], 200);
    assert_eq!(refresh["refresh"], true);
    assert_eq!(refresh["level"], "INFO");
    let call = &refresh["provider"][0];
    assert_eq!(call["call"], "POST /token");
    assert_eq!(call["grant"], "refresh_token");
    assert_eq!(call["status"], 200);
    assert!(call["ms"].is_u64() && refresh["ms"].is_u64(), "{refresh}");
    assert_eq!(requests[2]["refresh"], false);
    assert_eq!(requests[2]["provider"], serde_json::json!([]));
    let code_call = requests[1]["provider"].as_array().unwrap();
    assert!(
        code_call.iter().any(|c| c["grant"] == "authorization_code"),
        "{code_call:?}"
    );
    let ids: std::collections::HashSet<&str> = requests.iter().map(|r| r["request_id"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), requests.len(), "one id per request");

    let code = url::form_urlencoded::parse(callback.split_once('?').unwrap().1.as_bytes())
        .find(|(name, _)| name == "code")
        .map(|(_, code)| code.into_owned())
        .unwrap();
    let mut secrets = vec![
        code,
        first.access_token(),
        refreshed.access_token(),
        "s3cret".to_owned(),
        "eyJ".to_owned(),
        "rt-".to_owned(),
        "rejected_token".to_owned(),
        "return_to".to_owned(),
        "?".to_owned(),
    ];
    secrets.extend(
        browser
            .cookie_names()
            .iter()
            .filter_map(|name| browser.cookie(name))
            .map(str::to_owned),
    );
    assert!(secrets.len() > 9, "the session cookie is among them");
    for line in world.log.lines() {
        parsed(&line);
        for secret in &secrets {
            assert!(!line.contains(secret.as_str()), "{secret} in {line}");
        }
    }
}

/// A request refused before routing names its path without the query; a provider that does not
/// answer is a `timeout` call and a WARN line.
#[test]
fn refusals_and_faults() {
    let world = World::new(&[]);
    let mut browser = Browser::default();
    block_on(world.navigate(&mut browser, "/nope/x?code=abc"));
    world.provider.fail(Endpoint::Discovery, Fault::Hang);
    let answer = block_on(world.navigate(&mut browser, "/bff/login"));
    assert_eq!(answer.status, 503, "a discovery that hangs: {}", answer.text());
    let requests = world.log.requests();
    assert_eq!(requests[0]["route"], "unrouted");
    assert_eq!(requests[0]["status"], 404);
    assert_eq!(requests[0]["error"], "not_found");
    assert_eq!(requests[1]["route"], "login");
    assert_eq!(
        requests[1]["provider"][0]["call"],
        "GET /.well-known/openid-configuration"
    );
    assert_eq!(requests[1]["provider"][0]["status"], "timeout");
    assert_eq!(requests[1]["status"], 503);
    assert!(
        !world
            .log
            .lines()
            .iter()
            .any(|l| l.contains("/nope") || l.contains("code=abc"))
    );
    let events = world.log.records();
    let failed = events.iter().find(|r| r["type"] == "event").unwrap();
    assert_eq!(failed["level"], "WARN");
    assert_eq!(failed["request_id"], requests[1]["request_id"]);
}

/// With a configuration problem every request still gets its line, at ERROR.
#[test]
fn a_misconfigured_backend_logs_each_request() {
    let world = World::new(&[("BFF_LOG_LEVEL", "loud")]);
    let answer = block_on(world.navigate(&mut Browser::default(), "/.well-known/bff-token?x=1"));
    assert_eq!(answer.status, 500);
    let requests = world.log.requests();
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0]["level"], "ERROR");
    assert_eq!(requests[0]["route"], "unrouted");
    assert_eq!(requests[0]["error"], "server_error");
}

/// Fuzzing found a request method that spelled a short token of the test world: a method is the
/// client's own text, so only a standard one is written, any other as `OTHER`.
#[test]
fn only_standard_methods_are_written() {
    let world = World::new(&[]);
    let odd = http::Method::from_bytes(b"GErt-2T").unwrap();
    let request = crate::testing::request(odd, "/.well-known/bff-token", &[], Vec::new());
    block_on(world.send(&mut Browser::default(), request, crate::testing::Site::Same));
    block_on(world.navigate(&mut Browser::default(), "/.well-known/bff-sessioninfo"));
    let requests = world.log.requests();
    assert_eq!(requests[0]["method"], "OTHER");
    assert_eq!(requests[1]["method"], "GET");
    assert!(world.log.lines().iter().all(|line| !line.contains("rt-2")));
}

/// The hand-written request line is the JSON serde writes for the same fields, whatever the
/// text in them (quotes, backslashes, control characters, non-ASCII).
#[test]
fn the_request_line_is_what_serde_would_write() {
    let odd = "a\"b\\c\u{0}\u{1f}\n\té€😀/</script>";
    let calls = [
        Call {
            call: format!("POST /{odd}"),
            grant: Some(odd.to_owned()),
            status: CallStatus::Answered(200),
            ms: 7,
        },
        Call {
            call: "GET /jwks".to_owned(),
            grant: None,
            status: CallStatus::Failed,
            ms: 0,
        },
        Call {
            call: "GET /x".to_owned(),
            grant: None,
            status: CallStatus::TimedOut,
            ms: u64::MAX,
        },
    ];
    for (error, provider) in [(None, &calls[..0]), (Some(odd), &calls[..])] {
        let line = RequestLine {
            timestamp: timestamp(1_800_000_000_123),
            level: "WARN",
            request_id: odd,
            kind: "request",
            method: "GET",
            route: odd,
            status: 503,
            error,
            provider,
            refresh: error.is_some(),
            ms: 12,
        };
        let ours: Value = serde_json::from_str(&line.to_json()).unwrap();
        assert_eq!(ours, serde_json::to_value(&line).unwrap());
        assert_eq!(
            line.to_json(),
            serde_json::to_string(&line)
                .unwrap()
                .replace("\\n", "\\u000a")
                .replace("\\t", "\\u0009")
        );
    }
}
