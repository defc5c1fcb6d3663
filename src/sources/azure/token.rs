//! An access token and the answer it comes in: Entra ID's token endpoint and the instance
//! metadata service (IMDS) both answer `access_token` and `expires_in` (IMDS as a string); a
//! lifetime past [`MAX_TOKEN_LIFETIME`] is capped, and a token is replaced some minutes before
//! it expires. What went wrong getting one is an [`AuthError`].

use std::time::Duration;

use tokio::time::Instant;

use super::client::later;
use crate::config::Secret;

/// Why no token could be had.
#[derive(Debug, Clone, thiserror::Error)]
pub enum AuthError {
    #[error("token request to {url} for scope {scope} failed: {message}; {hint}")]
    Rejected {
        url: String,
        scope: String,
        message: String,
        hint: &'static str,
    },
    #[error("token request to {url} failed: {message}; will retry")]
    Transport { url: String, message: String },
}

#[derive(Debug, Clone)]
pub struct Token {
    pub(super) value: Secret,
    pub(super) refresh_at: Instant,
}

/// The longest token lifetime believed. Entra ID issues tokens for 60–90 minutes (IMDS for up to
/// 24 h); a larger `expires_in` is taken as this, so an absurd one neither overflows the clock
/// nor keeps a token long after the API stopped taking it (a 401 still replaces it at once).
pub const MAX_TOKEN_LIFETIME: Duration = Duration::from_secs(24 * 3600);

/// How long before expiry a token is replaced: 5 minutes, or half its life if that is shorter.
fn refresh_margin(lifetime: Duration) -> Duration {
    Duration::from_secs(300).min(lifetime / 2)
}

/// Whole seconds from a number or a numeric string (as IMDS writes them); one too large for a
/// `u64` saturates (and is then capped), anything else is 0.
fn seconds(v: &serde_json::Value) -> u64 {
    let positive = |f: f64| (f.is_finite() && f > 0.0).then_some(f as u64);
    match v {
        serde_json::Value::Number(n) => n.as_u64().or_else(|| n.as_f64().and_then(positive)),
        serde_json::Value::String(s) => {
            let s = s.trim();
            s.parse().ok().or_else(|| s.parse().ok().and_then(positive))
        }
        _ => None,
    }
    .unwrap_or(0)
}

/// The token of a successful answer (`expires_in` as a number, or a string as IMDS writes it).
pub fn token_from_answer(
    url: String,
    scope: &str,
    body: &serde_json::Value,
    sent: Instant,
) -> Result<Token, AuthError> {
    let value = body["access_token"].as_str().unwrap_or("");
    let expires_in = seconds(&body["expires_in"]);
    if value.is_empty() || expires_in == 0 {
        return Err(AuthError::Transport {
            url,
            message: "the answer has no access_token or expires_in".into(),
        });
    }
    let lifetime = Duration::from_secs(expires_in).min(MAX_TOKEN_LIFETIME);
    if lifetime.as_secs() < expires_in {
        tracing::warn!(
            message = "Token lifetime capped; the token is renewed sooner than its answer said.",
            scope,
            expires_in,
            capped_secs = lifetime.as_secs()
        );
    } else {
        tracing::debug!(message = "Token obtained.", scope, expires_in);
    }
    Ok(Token {
        value: Secret::new(value),
        // The margin is at most half the lifetime: no underflow; the cap: no overflow.
        refresh_at: later(sent, lifetime - refresh_margin(lifetime)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_absurd_expires_in_is_capped_not_an_overflow() {
        let sent = Instant::now();
        for expires_in in [
            serde_json::json!(u64::MAX),
            serde_json::json!(u64::MAX.to_string()),
            serde_json::json!(1e300),
            serde_json::json!("99999999999999999999999999"),
        ] {
            let body = serde_json::json!({"access_token": "t", "expires_in": expires_in});
            let token = token_from_answer("u".into(), "s", &body, sent).unwrap();
            assert_eq!(
                token.refresh_at - sent,
                MAX_TOKEN_LIFETIME - Duration::from_secs(300),
                "{body}"
            );
        }
        let body = serde_json::json!({"access_token": "t", "expires_in": "3599"});
        let token = token_from_answer("u".into(), "s", &body, sent).unwrap();
        assert_eq!(token.refresh_at - sent, Duration::from_secs(3299));
        for bad in [
            serde_json::json!(-5),
            serde_json::json!("soon"),
            serde_json::json!(0),
        ] {
            let body = serde_json::json!({"access_token": "t", "expires_in": bad});
            assert!(token_from_answer("u".into(), "s", &body, sent).is_err());
        }
    }

    #[test]
    fn refresh_margin_is_five_minutes_or_half_the_life() {
        assert_eq!(
            refresh_margin(Duration::from_secs(3599)),
            Duration::from_secs(300)
        );
        assert_eq!(
            refresh_margin(Duration::from_secs(10)),
            Duration::from_secs(5)
        );
    }
}
