//! The gate of Anima's internal services (anima-ai, anima-agent,
//! anima-library): a request passes with one of the service's configured
//! tokens, compared in constant time ([`anima_core::service_token`]).

use anima_core::{DomainError, error::reason, service_token};
use tonic::{Request, Status, service::Interceptor};

/// A tonic interceptor that lets through requests carrying one of the
/// service's tokens; without tokens (allowed on loopback only, see
/// [`ServiceTokens::configured`]) every request passes.
#[derive(Clone, Debug)]
pub struct ServiceTokens {
    service: &'static str,
    tokens: Vec<String>,
}

impl ServiceTokens {
    /// The tokens `service` was given (blank entries dropped), once each is
    /// strong enough and, when there are none, the service listens on
    /// loopback only. `variable` names where they came from, for errors.
    pub fn configured(
        service: &'static str,
        variable: &str,
        tokens: Vec<String>,
        listen: std::net::SocketAddr,
    ) -> Result<Self, String> {
        let tokens: Vec<String> = tokens
            .into_iter()
            .map(|token| token.trim().to_owned())
            .filter(|token| !token.is_empty())
            .collect();
        for token in &tokens {
            service_token::check_strength(&format!("a token of {variable}"), token)?;
        }
        if tokens.is_empty() && !listen.ip().is_loopback() {
            return Err(format!(
                "{service} on {listen} would answer anyone: set {variable}, or listen on loopback"
            ));
        }
        Ok(Self { service, tokens })
    }

    fn check(&self, request: &Request<()>) -> Result<(), Status> {
        if self.tokens.is_empty() {
            return Ok(());
        }
        let presented = request
            .metadata()
            .get("authorization")
            .and_then(|value| value.to_str().ok());
        if service_token::header_matches_any(presented, &self.tokens) {
            Ok(())
        } else {
            Err(crate::status::to_status(DomainError::unauthenticated(
                reason::UNAUTHENTICATED,
                format!("{} needs one of its service tokens", self.service),
            )))
        }
    }
}

impl Interceptor for ServiceTokens {
    fn call(&mut self, request: Request<()>) -> Result<Request<()>, Status> {
        self.check(&request)?;
        Ok(request)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OLD: &str = "old-token-old-token-old-token-old-token";
    const NEW: &str = "new-token-new-token-new-token-new-token";

    fn with_auth(value: Option<&str>) -> Request<()> {
        let mut request = Request::new(());
        if let Some(value) = value {
            request
                .metadata_mut()
                .insert("authorization", value.parse().expect("header"));
        }
        request
    }

    fn loopback() -> std::net::SocketAddr {
        "127.0.0.1:1".parse().expect("address")
    }

    #[test]
    fn only_configured_tokens_pass() {
        let mut gate = ServiceTokens::configured(
            "anima-test",
            "TOKENS",
            vec![OLD.into(), format!(" {NEW} "), String::new()],
            loopback(),
        )
        .expect("tokens");
        assert!(gate.call(with_auth(Some(&format!("Bearer {NEW}")))).is_ok());
        assert!(gate.call(with_auth(Some(&format!("Bearer {OLD}")))).is_ok());
        for refused in [None, Some("Bearer other"), Some(NEW)] {
            let status = gate.call(with_auth(refused)).expect_err("refused");
            assert_eq!(status.code(), tonic::Code::Unauthenticated);
        }
    }

    #[test]
    fn no_tokens_only_on_loopback_and_no_weak_ones() {
        let mut open = ServiceTokens::configured("anima-test", "TOKENS", Vec::new(), loopback())
            .expect("loopback without tokens");
        assert!(open.call(with_auth(None)).is_ok());
        let everywhere = "0.0.0.0:1".parse().expect("address");
        assert!(ServiceTokens::configured("anima-test", "TOKENS", Vec::new(), everywhere).is_err());
        assert!(
            ServiceTokens::configured("anima-test", "TOKENS", vec!["short".into()], loopback())
                .is_err()
        );
    }
}
