//! AWS Signature Version 4 in the headers, for the requests signed here (copies and their
//! parts), and AWS's URI encoding.

/// A `PUT` without a body, signed with AWS Signature Version 4 in its headers.
pub(super) struct SignedPut {
    /// The bucket's URL (`scheme://host/bucket` path-style, `scheme://bucket.host` otherwise).
    pub(super) base_url: String,
    /// The `Host` header.
    pub(super) host: String,
    /// Signing region.
    pub(super) region: String,
    /// Object key.
    pub(super) key: String,
    /// Query parameters.
    pub(super) query: Vec<(String, String)>,
    /// Headers to sign besides `host`, `x-amz-date` and `x-amz-content-sha256`.
    pub(super) headers: Vec<(String, String)>,
}

impl SignedPut {
    /// The URL and the headers to send, signed at Unix time `now`.
    pub(super) fn sign(
        self,
        access_key: &str,
        secret_key: &str,
        now: i64,
    ) -> (String, Vec<(String, String)>) {
        use sha2::{Digest, Sha256};
        const PAYLOAD: &str = "UNSIGNED-PAYLOAD";
        let (date, stamp) = amz_times(now);
        let mut headers = self.headers;
        headers.push(("host".into(), self.host));
        headers.push(("x-amz-content-sha256".into(), PAYLOAD.into()));
        headers.push(("x-amz-date".into(), stamp.clone()));
        headers.sort();
        let query = canonical_query(&self.query);
        let (origin, base_path) = split_url(&self.base_url);
        let path = format!(
            "{}/{}",
            base_path.trim_end_matches('/'),
            encode_key(&self.key)
        );
        let signed: Vec<&str> = headers.iter().map(|(k, _)| k.as_str()).collect();
        let signed = signed.join(";");
        let canonical_headers: String = headers
            .iter()
            .map(|(k, v)| format!("{k}:{}\n", v.trim()))
            .collect();
        let canonical = format!("PUT\n{path}\n{query}\n{canonical_headers}\n{signed}\n{PAYLOAD}");
        let scope = format!("{date}/{}/s3/aws4_request", self.region);
        let to_sign = format!(
            "AWS4-HMAC-SHA256\n{stamp}\n{scope}\n{}",
            crate::util::hex(&Sha256::digest(canonical.as_bytes()))
        );
        let signature = signature(secret_key, &date, &self.region, &to_sign);
        headers.push((
            "authorization".into(),
            format!(
                "AWS4-HMAC-SHA256 Credential={access_key}/{scope},SignedHeaders={signed},Signature={signature}"
            ),
        ));
        headers.retain(|(k, _)| k != "host");
        let url = if query.is_empty() {
            format!("{origin}{path}")
        } else {
            format!("{origin}{path}?{query}")
        };
        (url, headers)
    }
}

/// The date (`YYYYMMDD`) and time stamp (`YYYYMMDDTHHMMSSZ`) of Unix time `now`.
fn amz_times(now: i64) -> (String, String) {
    let (y, m, d) = crate::util::clock::civil_from_days(now.div_euclid(86_400));
    let sod = now.rem_euclid(86_400);
    let date = format!("{y:04}{m:02}{d:02}");
    let stamp = format!(
        "{date}T{:02}{:02}{:02}Z",
        sod / 3600,
        sod % 3600 / 60,
        sod % 60
    );
    (date, stamp)
}

/// The query parameters encoded and sorted, joined with `&`.
fn canonical_query(query: &[(String, String)]) -> String {
    let mut query: Vec<(String, String)> = query
        .iter()
        .map(|(k, v)| (aws_encode(k, true), aws_encode(v, true)))
        .collect();
    query.sort();
    query
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&")
}

/// A bucket URL's origin (`scheme://host`) and path (empty for virtual-hosted style).
fn split_url(base_url: &str) -> (&str, &str) {
    let Some(start) = base_url.find("://").map(|i| i + 3) else {
        return (base_url, "");
    };
    match base_url[start..].find('/') {
        Some(i) => (&base_url[..start + i], &base_url[start + i..]),
        None => (base_url, ""),
    }
}

/// The signature of `to_sign` with the key derived from the secret, date and region.
fn signature(secret_key: &str, date: &str, region: &str, to_sign: &str) -> String {
    use hmac::{Hmac, Mac};
    use sha2::Sha256;
    let hmac = |key: &[u8], data: &str| {
        let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key length");
        mac.update(data.as_bytes());
        mac.finalize().into_bytes().to_vec()
    };
    let mut key = hmac(format!("AWS4{secret_key}").as_bytes(), date);
    for part in [region, "s3", "aws4_request"] {
        key = hmac(&key, part);
    }
    crate::util::hex(&hmac(&key, to_sign))
}

/// AWS's URI encoding: everything but the unreserved characters (and `/` unless
/// `encode_slash`) is percent-encoded.
fn aws_encode(s: &str, encode_slash: bool) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                out.push(b as char)
            }
            b'/' if !encode_slash => out.push('/'),
            b => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// Percent-encodes a key for `x-amz-copy-source` and request paths, keeping `/` and the
/// unreserved characters.
pub fn encode_key(key: &str) -> String {
    aws_encode(key, false)
}
