//! Bearer-token authorisation. The original API had none: anyone who reached it could
//! delete or reset streams. Here mutating calls (`DELETE`, `PUT`) need the token, and
//! with no token configured they are refused rather than opened. Read-only calls are
//! open unless the server is started with `--protect-reads`.
//!
//! Tokens are compared as SHA-256 digests in constant time, so neither the token's
//! content nor its length leaks through response timing.

use crate::error::ApiError;
use axum::http::{header, HeaderMap};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// The environment variable holding the API token (beaten by `--token-file`).
pub const TOKEN_ENV: &str = "STV3_API_TOKEN";

#[derive(Clone, Default)]
pub struct Auth {
    digest: Option<[u8; 32]>,
    protect_reads: bool,
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Auth")
            .field("token", &self.digest.map(|_| "***"))
            .field("protect_reads", &self.protect_reads)
            .finish()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AuthConfigError {
    #[error("the API token is empty")]
    EmptyToken,
    #[error("--protect-reads needs a token (--token-file or {TOKEN_ENV})")]
    ReadsWithoutToken,
}

fn digest(token: &[u8]) -> [u8; 32] {
    Sha256::digest(token).into()
}

impl Auth {
    /// `token` as read from the token file or the environment (surrounding whitespace,
    /// such as a file's trailing newline, is not part of it).
    pub fn new(token: Option<&str>, protect_reads: bool) -> Result<Auth, AuthConfigError> {
        let digest = match token.map(str::trim) {
            Some("") => return Err(AuthConfigError::EmptyToken),
            Some(t) => Some(digest(t.as_bytes())),
            None => None,
        };
        if protect_reads && digest.is_none() {
            return Err(AuthConfigError::ReadsWithoutToken);
        }
        Ok(Auth {
            digest,
            protect_reads,
        })
    }

    pub fn has_token(&self) -> bool {
        self.digest.is_some()
    }

    pub fn protects_reads(&self) -> bool {
        self.protect_reads
    }

    /// Allows a read-only call (always, unless reads are protected).
    pub fn check_read(&self, headers: &HeaderMap) -> Result<(), ApiError> {
        if self.protect_reads {
            self.check_token(headers)
        } else {
            Ok(())
        }
    }

    /// Allows reading archives: raw notifications, which may carry what shoebox did
    /// not know to redact. Only with the configured token, whether reads are
    /// protected or not; a server without a token serves none.
    pub fn check_archives(&self, headers: &HeaderMap) -> Result<(), ApiError> {
        if self.digest.is_none() {
            return Err(ApiError::Forbidden(format!(
                "archives hold raw notifications: the server serves them only with an API \
                 token (start it with --token-file or {TOKEN_ENV})"
            )));
        }
        self.check_token(headers)
    }

    /// Allows a mutating call: only with the configured token.
    pub fn check_write(&self, headers: &HeaderMap) -> Result<(), ApiError> {
        if self.digest.is_none() {
            return Err(ApiError::Forbidden(format!(
                "changing streams is disabled: the server has no API token \
                 (start it with --token-file or {TOKEN_ENV})"
            )));
        }
        self.check_token(headers)
    }

    fn check_token(&self, headers: &HeaderMap) -> Result<(), ApiError> {
        let Some(expected) = &self.digest else {
            return Err(ApiError::Forbidden("no API token is configured".into()));
        };
        let presented = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                let (scheme, token) = v.trim().split_once(' ')?;
                scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
            });
        let Some(presented) = presented else {
            return Err(ApiError::Unauthorized(
                "this call needs an Authorization: Bearer <token> header".into(),
            ));
        };
        if bool::from(digest(presented.as_bytes()).ct_eq(expected)) {
            Ok(())
        } else {
            Err(ApiError::Unauthorized(
                "the bearer token is not valid".into(),
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn bearer(t: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_str(&format!("Bearer {t}")).unwrap(),
        );
        h
    }

    #[test]
    fn writes_need_the_token() {
        let auth = Auth::new(Some("s3cret\n"), false).unwrap();
        assert!(auth.check_write(&bearer("s3cret")).is_ok());
        assert!(matches!(
            auth.check_write(&bearer("wrong")),
            Err(ApiError::Unauthorized(_))
        ));
        assert!(matches!(
            auth.check_write(&HeaderMap::new()),
            Err(ApiError::Unauthorized(_))
        ));
        assert!(auth.check_read(&HeaderMap::new()).is_ok());
    }

    #[test]
    fn without_a_token_writes_are_refused() {
        let auth = Auth::new(None, false).unwrap();
        assert!(matches!(
            auth.check_write(&bearer("anything")),
            Err(ApiError::Forbidden(_))
        ));
        assert!(Auth::new(None, true).is_err());
        assert!(Auth::new(Some("  "), false).is_err());
    }

    #[test]
    fn protected_reads() {
        let auth = Auth::new(Some("t"), true).unwrap();
        assert!(auth.check_read(&HeaderMap::new()).is_err());
        assert!(auth.check_read(&bearer("t")).is_ok());
    }
}
