//! The long-lived HTTP server's own settings: what the function URL does for the function.
//! Read by the server alone: no other binary parses the server's origins or address.

#[cfg(test)]
mod page;

use std::time::Duration;

use live_balances::config::{ConfigError, Vars, invalid};

/// How the server listens, which origins it lets in, and how long it waits.
#[derive(Debug, Clone)]
pub struct ServerSettings {
    pub addr: std::net::SocketAddr,
    /// Behind a load balancer that appends the client's address to `X-Forwarded-For`: rate
    /// limits key on that last entry. Off, they key on the peer address.
    pub trust_forwarded_for: bool,
    /// Origins allowed by CORS (`*`: any), as the function URL's CORS configuration.
    pub cors_allow_origins: Vec<String>,
    /// Longest a request may take to be answered (an SSE stream: to start).
    pub request_timeout: Duration,
    /// After SIGTERM, how long open requests get to finish before the process exits.
    pub drain_timeout: Duration,
}

impl ServerSettings {
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_vars(&Vars::from_env())
    }

    pub fn from_vars(vars: &Vars) -> Result<Self, ConfigError> {
        Ok(Self {
            addr: vars.socket("SERVER_ADDR")?,
            trust_forwarded_for: vars.flag("TRUST_X_FORWARDED_FOR")?,
            cors_allow_origins: origins(vars.get("CORS_ALLOW_ORIGIN"))?,
            request_timeout: vars.secs("SERVER_REQUEST_TIMEOUT_SECS", 60)?,
            drain_timeout: vars.secs("SERVER_DRAIN_SECS", 20)?,
        })
    }
}

/// `CORS_ALLOW_ORIGIN`: `*`, or comma-separated origins (`scheme://host[:port]`, no path).
fn origins(value: Option<String>) -> Result<Vec<String>, ConfigError> {
    let Some(value) = value else {
        return Ok(vec!["*".into()]);
    };
    let list: Vec<String> = value
        .split(',')
        .map(|o| o.trim().trim_end_matches('/').to_string())
        .filter(|o| !o.is_empty())
        .collect();
    for origin in &list {
        let rest = origin
            .strip_prefix("https://")
            .or_else(|| origin.strip_prefix("http://"));
        let well_formed = origin == "*"
            || rest.is_some_and(|r| !r.is_empty() && !r.contains(['/', '?', '#', ' ']));
        if !well_formed {
            return Err(invalid(
                "CORS_ALLOW_ORIGIN",
                format!("{origin:?} is not * or an origin such as https://app.example"),
            ));
        }
    }
    if list.len() > 1 && list.iter().any(|o| o == "*") {
        return Err(invalid(
            "CORS_ALLOW_ORIGIN",
            "* cannot be combined with origins",
        ));
    }
    Ok(list)
}

#[cfg(test)]
mod tests {
    use live_balances::config::Settings;

    use super::*;

    #[test]
    fn server_settings() {
        let server = |vars: &[(&str, &str)]| {
            ServerSettings::from_vars(&Vars::new(
                vars.iter().map(|(k, v)| (k.to_string(), v.to_string())),
            ))
        };
        let settings = |vars: &[(&str, &str)]| {
            Settings::from_vars(vars.iter().map(|(k, v)| (k.to_string(), v.to_string())))
        };
        let d = server(&[]).unwrap();
        assert_eq!(d.cors_allow_origins, vec!["*".to_string()]);
        assert!(!d.trust_forwarded_for);
        let d = server(&[
            (
                "CORS_ALLOW_ORIGIN",
                "https://app.example, http://localhost:3000/",
            ),
            ("TRUST_X_FORWARDED_FOR", "true"),
            ("SERVER_ADDR", "127.0.0.1:9100"),
        ])
        .unwrap();
        assert_eq!(
            d.cors_allow_origins,
            vec![
                "https://app.example".to_string(),
                "http://localhost:3000".into()
            ]
        );
        assert!(d.trust_forwarded_for);
        assert_eq!(d.addr.port(), 9100);
        for bad in [
            "app.example",
            "https://a.example/path",
            "*,https://a.example",
            "ftp://x",
        ] {
            assert!(server(&[("CORS_ALLOW_ORIGIN", bad)]).is_err(), "{bad}");
            // The other binaries never parse the server's origins.
            assert!(settings(&[("CORS_ALLOW_ORIGIN", bad)]).is_ok(), "{bad}");
        }
        assert!(server(&[("SERVER_ADDR", "nowhere")]).is_err());
    }
}
