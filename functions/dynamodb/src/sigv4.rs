//! AWS Signature Version 4 (header form): canonical request, string to sign, derived signing key,
//! `Authorization` value. Only what DynamoDB's JSON API needs: the caller passes the canonical URI
//! and query as they are (DynamoDB always posts to `/` with no query).

use std::fmt::Write as _;

use hmac::{Hmac, KeyInit as _, Mac as _};
use sha2::{Digest as _, Sha256};

const ALGORITHM: &str = "AWS4-HMAC-SHA256";

/// What is signed of one request.
pub(crate) struct Request<'a> {
    pub method: &'a str,
    /// The canonical URI (already URI-encoded), e.g. `/`.
    pub path: &'a str,
    /// The canonical query string (sorted, encoded), empty when there is none.
    pub query: &'a str,
    /// Every header that is signed, including `host` and `x-amz-date`; names in any case, each once.
    pub headers: &'a [(&'a str, &'a str)],
    pub payload: &'a [u8],
}

/// Who signs, for which region and service, and when (`YYYYMMDD'T'HHMMSS'Z'`, see [`amz_date`]).
pub(crate) struct Signer<'a> {
    pub access_key_id: &'a str,
    pub secret_access_key: &'a str,
    pub region: &'a str,
    pub service: &'a str,
    pub amz_date: &'a str,
}

impl Signer<'_> {
    /// The `Authorization` header value for `request`.
    pub(crate) fn authorization(&self, request: &Request<'_>) -> String {
        let (canonical, signed_headers) = canonical_request(request);
        let signature = self.signature(&canonical);
        format!(
            "{ALGORITHM} Credential={}/{}, SignedHeaders={signed_headers}, Signature={signature}",
            self.access_key_id,
            self.scope()
        )
    }

    fn signature(&self, canonical_request: &str) -> String {
        let string_to_sign = format!(
            "{ALGORITHM}\n{}\n{}\n{}",
            self.amz_date,
            self.scope(),
            hex(&Sha256::digest(canonical_request.as_bytes()))
        );
        hex(&hmac(&self.signing_key(), string_to_sign.as_bytes()))
    }

    /// `kSigning = HMAC(HMAC(HMAC(HMAC("AWS4" + secret, date), region), service), "aws4_request")`.
    fn signing_key(&self) -> Vec<u8> {
        let secret = format!("AWS4{}", self.secret_access_key);
        let key = hmac(secret.as_bytes(), self.date().as_bytes());
        let key = hmac(&key, self.region.as_bytes());
        let key = hmac(&key, self.service.as_bytes());
        hmac(&key, b"aws4_request")
    }

    fn scope(&self) -> String {
        format!("{}/{}/{}/aws4_request", self.date(), self.region, self.service)
    }

    fn date(&self) -> &str {
        self.amz_date.get(..8).unwrap_or(self.amz_date)
    }
}

/// The canonical request and its signed-headers list: header names lower-cased and sorted, values
/// trimmed with inner runs of spaces collapsed, the payload as its hex SHA-256.
fn canonical_request(request: &Request<'_>) -> (String, String) {
    let mut headers: Vec<(String, String)> = (request.headers.iter())
        .map(|(name, value)| {
            (
                name.to_ascii_lowercase(),
                value.split_whitespace().collect::<Vec<_>>().join(" "),
            )
        })
        .collect();
    headers.sort();
    let mut canonical = format!("{}\n{}\n{}\n", request.method, request.path, request.query);
    for (name, value) in &headers {
        let _ = writeln!(canonical, "{name}:{value}");
    }
    let signed: Vec<&str> = headers.iter().map(|(name, _)| name.as_str()).collect();
    let signed = signed.join(";");
    let _ = write!(canonical, "\n{signed}\n{}", hex(&Sha256::digest(request.payload)));
    (canonical, signed)
}

/// `YYYYMMDD'T'HHMMSS'Z'` (UTC) of `unix_secs`, as `X-Amz-Date` wants it.
pub(crate) fn amz_date(unix_secs: u64) -> String {
    let (days, secs) = (unix_secs / 86_400, unix_secs % 86_400);
    let (year, month, day) = bff_core::civil_date(days);
    let (hour, minute, second) = (secs / 3600, secs % 3600 / 60, secs % 60);
    format!("{year:04}{month:02}{day:02}T{hour:02}{minute:02}{second:02}Z")
}

fn hmac(key: &[u8], data: &[u8]) -> Vec<u8> {
    // HMAC takes a key of any length; `new_from_slice` cannot fail for it.
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(key) else {
        return Vec::new();
    };
    mac.update(data);
    mac.finalize().into_bytes().to_vec()
}

fn hex(bytes: &[u8]) -> String {
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut out, byte| {
            let _ = write!(out, "{byte:02x}");
            out
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    // The example credentials of AWS's SigV4 documentation and test suite.
    const KEY_ID: &str = "AKIDEXAMPLE";
    const SECRET: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
    const DATE: &str = "20150830T123600Z";

    fn signer<'a>(service: &'a str) -> Signer<'a> {
        Signer {
            access_key_id: KEY_ID,
            secret_access_key: SECRET,
            region: "us-east-1",
            service,
            amz_date: DATE,
        }
    }

    /// The documented example request, IAM `ListUsers` (General Reference, "Create a signed AWS
    /// API request", and the examples of each signing step).
    #[test]
    fn iam_list_users_example() {
        let request = Request {
            method: "GET",
            path: "/",
            query: "Action=ListUsers&Version=2010-05-08",
            headers: &[
                ("Content-Type", "application/x-www-form-urlencoded; charset=utf-8"),
                ("Host", "iam.amazonaws.com"),
                ("X-Amz-Date", DATE),
            ],
            payload: b"",
        };
        let (canonical, signed) = canonical_request(&request);
        assert_eq!(
            canonical,
            "GET\n/\nAction=ListUsers&Version=2010-05-08\n\
             content-type:application/x-www-form-urlencoded; charset=utf-8\nhost:iam.amazonaws.com\n\
             x-amz-date:20150830T123600Z\n\ncontent-type;host;x-amz-date\n\
             e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(signed, "content-type;host;x-amz-date");
        assert_eq!(
            hex(&Sha256::digest(canonical.as_bytes())),
            "f536975d06c0309214f805bb90ccff089219ecd68b2577efef23edd43b7e1a59"
        );
        assert_eq!(
            hex(&signer("iam").signing_key()),
            "c4afb1cc5771d871763a393e44b703571b55cc28424d1a5e86da6ed3c154a4b9"
        );
        assert_eq!(
            signer("iam").authorization(&request),
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/iam/aws4_request, \
             SignedHeaders=content-type;host;x-amz-date, \
             Signature=5d672d79c15b13162d9279b0855cfba6789a8edb4c82c400e06b5924a6f2b5d7"
        );
    }

    /// aws-sig-v4-test-suite `get-vanilla`: `GET /` to example.amazonaws.com, service `service`.
    #[test]
    fn test_suite_get_vanilla() {
        let request = Request {
            method: "GET",
            path: "/",
            query: "",
            headers: &[("Host", "example.amazonaws.com"), ("X-Amz-Date", DATE)],
            payload: b"",
        };
        assert_eq!(
            signer("service").authorization(&request),
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, \
             SignedHeaders=host;x-amz-date, \
             Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"
        );
    }

    #[test]
    fn header_values_are_trimmed_and_collapsed() {
        let request = Request {
            method: "POST",
            path: "/",
            query: "",
            headers: &[("X-Amz-Target", "  a   b "), ("host", "h")],
            payload: b"{}",
        };
        let (canonical, signed) = canonical_request(&request);
        assert!(canonical.contains("host:h\nx-amz-target:a b\n\nhost;x-amz-target\n"));
        assert_eq!(signed, "host;x-amz-target");
    }

    #[test]
    fn amz_dates() {
        assert_eq!(amz_date(0), "19700101T000000Z");
        assert_eq!(amz_date(1_440_938_160), DATE);
        assert_eq!(amz_date(951_782_400), "20000229T000000Z"); // leap day of a leap century
        assert_eq!(amz_date(4_107_542_399), "21000228T235959Z"); // 2100 is not a leap year
        assert_eq!(amz_date(4_107_542_400), "21000301T000000Z");
    }
}
