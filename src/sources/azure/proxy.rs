//! The HTTPS proxy the Azure client goes through: from `[azure] proxy` (with
//! `proxy_credentials_file` and `no_proxy`), else from the environment (`HTTPS_PROXY`,
//! `NO_PROXY`…), or none. Only `https://` requests are proxied, always as an HTTP CONNECT
//! tunnel (TLS stays end to end); IMDS has its own client and never uses a proxy. Credentials
//! never print, and the proxy's refusals are told in words.

use std::path::{Path, PathBuf};

use crate::config::Secret;

/// The keys that choose a proxy, as written in `[azure]` (later also in a tenant's block).
#[derive(Debug, Clone, Copy, Default)]
pub struct ProxyKeys<'a> {
    pub proxy: Option<&'a str>,
    pub credentials_file: Option<&'a Path>,
    pub no_proxy: Option<&'a [String]>,
}

/// The value of `proxy` that turns any proxy off, the environment's included.
pub const PROXY_NONE: &str = "none";

/// Environment variables read when the file names no proxy, in order (the first set and
/// non-empty wins): the variables curl and reqwest read for `https://` URLs.
pub const PROXY_ENV: [&str; 4] = ["HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"];

/// Environment variables read when the file has no `no_proxy`.
pub const NO_PROXY_ENV: [&str; 2] = ["NO_PROXY", "no_proxy"];

/// Which way the Azure client reaches the Microsoft APIs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProxyRoute {
    /// Straight to the APIs.
    Direct(DirectWhy),
    /// Through a proxy (for `https://` URLs not matched by its `no_proxy`).
    Via(Via),
}

/// Why there is no proxy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DirectWhy {
    /// `proxy = "none"`.
    TurnedOff,
    /// Neither the file nor the environment names one.
    NoneSet,
}

/// A proxy and what it is not used for.
#[derive(Clone, PartialEq, Eq)]
pub struct Via {
    /// `http://host:port`, never with credentials: safe to print.
    pub shown: String,
    /// `host:port` of the proxy.
    pub address: String,
    /// What reqwest is given: `shown`, or the environment's URL with its credentials.
    connect: Secret,
    /// Where the proxy came from: `[azure] proxy`, or the environment variable's name.
    pub from: &'static str,
    /// Basic credentials from `proxy_credentials_file`: (user, password).
    basic: Option<(String, Secret)>,
    /// Whether the environment's URL carries a user (and password).
    env_credentials: bool,
    /// Hosts, `.suffixes`, IPs and networks reached directly.
    pub no_proxy: Vec<String>,
    /// Where `no_proxy` came from: `[azure] no_proxy`, the variable's name, or "" when empty.
    pub no_proxy_from: &'static str,
}

impl std::fmt::Debug for Via {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Via")
            .field("proxy", &self.shown)
            .field("from", &self.from)
            .field(
                "authenticated",
                &(self.basic.is_some() || self.env_credentials),
            )
            .field("no_proxy", &self.no_proxy)
            .finish()
    }
}

/// A problem with the proxy keys, named by the key it is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProxyError {
    /// `proxy`, `proxy_credentials_file` or `no_proxy`; `None` for the environment's values.
    pub key: Option<&'static str>,
    /// For `no_proxy`: the index of the entry at fault.
    pub index: Option<usize>,
    pub message: String,
}

impl std::fmt::Display for ProxyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl ProxyError {
    fn at(key: &'static str, message: String) -> Self {
        Self {
            key: Some(key),
            index: None,
            message,
        }
    }
}

/// A proxy URL as the file or the environment writes it.
struct ParsedProxy {
    /// `http://host:port`, without credentials.
    shown: String,
    /// `host:port`.
    address: String,
    /// The text with its scheme (`http://` added to a bare `host:port`), credentials kept.
    full: String,
    /// Whether it holds a user or password.
    credentials: bool,
}

/// Reads `http://[user[:password]@]host[:port][/]` (a bare `host:port` is http://, as curl and
/// reqwest take it). `strict`: a path or query is refused (the file's `proxy`); the
/// environment's may have one, ignored as curl does. What is wrong never echoes the text,
/// which may hold a password.
fn parse_proxy_url(text: &str, strict: bool) -> Result<ParsedProxy, String> {
    let full = if text.contains("://") {
        text.to_owned()
    } else {
        format!("http://{text}")
    };
    let url = url::Url::parse(&full)
        .map_err(|e| format!("is not a proxy URL like http://proxy.example.com:3128 ({e})"))?;
    let credentials = !url.username().is_empty() || url.password().is_some();
    if url.scheme() != "http" {
        return Err(format!(
            "uses {}://; only an http:// proxy is supported (HTTPS to Microsoft still goes through it as a CONNECT tunnel, TLS end to end)",
            url.scheme()
        ));
    }
    let host = match url.host() {
        Some(url::Host::Ipv6(ip)) => format!("[{ip}]"),
        Some(h) => h.to_string(),
        None => return Err("names no host; write http://proxy.example.com:3128".into()),
    };
    if strict && (url.path() != "/" || url.query().is_some() || url.fragment().is_some()) {
        return Err("is a proxy's address, http://host:port, without a path or query".into());
    }
    let port = url.port_or_known_default().unwrap_or(80);
    let address = format!("{host}:{port}");
    Ok(ParsedProxy {
        shown: format!("http://{address}"),
        address,
        full,
        credentials,
    })
}

/// The first line of a proxy credentials file, `user:password`.
fn read_credentials(path: &Path) -> Result<(String, Secret), String> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        format!(
            "azure: cannot read proxy_credentials_file {}: {e}",
            path.display()
        )
    })?;
    let line = text.lines().next().unwrap_or("").trim();
    match line.split_once(':') {
        Some((user, password)) if !user.is_empty() => {
            Ok((user.to_owned(), Secret::new(password.to_owned())))
        }
        _ => Err(format!(
            "azure: proxy_credentials_file {} must hold user:password on its first line (its content is not shown)",
            path.display()
        )),
    }
}

/// One `no_proxy` entry: a host name, `.suffix`, IP address, network (`10.0.0.0/8`) or `*`.
fn check_no_proxy_entry(entry: &str) -> Result<(), String> {
    let bad = |why: &str| {
        Err(format!(
            "no_proxy entry \"{entry}\" {why}; entries are host names, .suffixes, IP addresses, networks like 10.0.0.0/8, or \"*\""
        ))
    };
    if entry.is_empty() {
        return bad("is empty");
    }
    if entry.contains("://") {
        return bad("is a URL");
    }
    if entry.contains(|c: char| c.is_whitespace() || c == ',') {
        return bad("holds a space or a comma (write one entry per string)");
    }
    if entry.parse::<std::net::IpAddr>().is_ok() || entry == "*" {
        return Ok(());
    }
    if let Some((ip, bits)) = entry.split_once('/') {
        let max = match ip.parse::<std::net::IpAddr>() {
            Ok(std::net::IpAddr::V4(_)) => 32,
            Ok(std::net::IpAddr::V6(_)) => 128,
            Err(_) => return bad("is not a network (address/prefix length)"),
        };
        return match bits.parse::<u8>() {
            Ok(n) if n <= max => Ok(()),
            _ => bad("has a prefix length out of range"),
        };
    }
    if entry.contains(':') {
        return bad("has a port (no_proxy matches hosts on every port)");
    }
    let name = entry.strip_prefix('.').unwrap_or(entry);
    if name.is_empty()
        || !name
            .split('.')
            .all(|l| !l.is_empty() && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'))
    {
        return bad("is not a host name");
    }
    Ok(())
}

impl ProxyRoute {
    /// The route the keys and the environment (`env`: a variable's value by name) choose.
    /// `resolve` turns a path from the file into one relative to the config's directory.
    ///
    /// # Errors
    /// Every problem with the keys (or the environment's values), each with its key.
    pub fn resolve(
        keys: ProxyKeys<'_>,
        resolve: impl Fn(&Path) -> PathBuf,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<ProxyRoute, Vec<ProxyError>> {
        let mut errors = Vec::new();
        let env_first = |names: &[&'static str]| {
            names
                .iter()
                .find_map(|n| env(n).filter(|v| !v.trim().is_empty()).map(|v| (*n, v)))
        };
        let (no_proxy, no_proxy_from) = match keys.no_proxy {
            Some(list) => {
                for (i, entry) in list.iter().enumerate() {
                    if let Err(message) = check_no_proxy_entry(entry) {
                        errors.push(ProxyError {
                            key: Some("no_proxy"),
                            index: Some(i),
                            message: format!("azure: {message}"),
                        });
                    }
                }
                (list.to_vec(), "[azure] no_proxy")
            }
            None => match env_first(&NO_PROXY_ENV) {
                // As the environment writes it: comma-separated, checked by whoever set it.
                Some((name, value)) => (
                    value
                        .split(',')
                        .map(str::trim)
                        .filter(|e| !e.is_empty())
                        .map(str::to_owned)
                        .collect(),
                    name,
                ),
                None => (Vec::new(), ""),
            },
        };
        let route = match keys.proxy {
            Some(PROXY_NONE) => {
                if keys.credentials_file.is_some() {
                    errors.push(ProxyError::at(
                        "proxy_credentials_file",
                        "azure: proxy_credentials_file is of no use with proxy = \"none\"".into(),
                    ));
                }
                if keys.no_proxy.is_some() {
                    errors.push(ProxyError::at(
                        "no_proxy",
                        "azure: no_proxy is of no use with proxy = \"none\" (nothing goes through a proxy)".into(),
                    ));
                }
                Some(ProxyRoute::Direct(DirectWhy::TurnedOff))
            }
            Some("") => {
                errors.push(ProxyError::at(
                    "proxy",
                    "azure: proxy is empty; write proxy = \"none\" to connect directly whatever HTTPS_PROXY says, or leave the key out to use the environment's proxy".into(),
                ));
                None
            }
            Some(text) => match parse_proxy_url(text, true) {
                Ok(ParsedProxy {
                    credentials: true, ..
                }) => {
                    errors.push(ProxyError::at(
                        "proxy",
                        "azure: proxy holds a user or password; write the address alone (http://host:port) and put user:password on the first line of a file named by proxy_credentials_file, which is never shown".into(),
                    ));
                    None
                }
                Ok(ParsedProxy { shown, address, .. }) => {
                    let basic = match keys.credentials_file {
                        Some(file) => match read_credentials(&resolve(file)) {
                            Ok(c) => Some(c),
                            Err(message) => {
                                errors.push(ProxyError::at("proxy_credentials_file", message));
                                None
                            }
                        },
                        None => None,
                    };
                    Some(ProxyRoute::Via(Via {
                        connect: Secret::new(shown.clone()),
                        shown,
                        address,
                        from: "[azure] proxy",
                        basic,
                        env_credentials: false,
                        no_proxy,
                        no_proxy_from,
                    }))
                }
                Err(why) => {
                    // Not echoed: a text that does not parse may still hold a password.
                    errors.push(ProxyError::at("proxy", format!("azure: proxy {why}")));
                    None
                }
            },
            None => {
                if keys.credentials_file.is_some() {
                    errors.push(ProxyError::at(
                        "proxy_credentials_file",
                        "azure: proxy_credentials_file needs proxy: its credentials go only to the proxy the file names".into(),
                    ));
                }
                match env_first(&PROXY_ENV) {
                    None => Some(ProxyRoute::Direct(DirectWhy::NoneSet)),
                    Some((name, value)) => match parse_proxy_url(value.trim(), false) {
                        Ok(parsed) => Some(ProxyRoute::Via(Via {
                            shown: parsed.shown,
                            address: parsed.address,
                            connect: Secret::new(parsed.full),
                            from: name,
                            basic: None,
                            env_credentials: parsed.credentials,
                            no_proxy,
                            no_proxy_from,
                        })),
                        Err(why) => {
                            errors.push(ProxyError {
                                key: None,
                                index: None,
                                message: format!(
                                    "azure: the environment's {name} {why}; fix or unset it, or set [azure] proxy (\"{PROXY_NONE}\" to ignore it)"
                                ),
                            });
                            None
                        }
                    },
                }
            }
        };
        match route {
            Some(r) if errors.is_empty() => Ok(r),
            _ => Err(errors),
        }
    }

    /// [`ProxyRoute::resolve`] with the process's environment.
    ///
    /// # Errors
    /// As [`ProxyRoute::resolve`].
    pub fn from_env(
        keys: ProxyKeys<'_>,
        resolve: impl Fn(&Path) -> PathBuf,
    ) -> Result<ProxyRoute, Vec<ProxyError>> {
        Self::resolve(keys, resolve, |name| std::env::var(name).ok())
    }

    /// What reqwest is told: the proxy for `https://` URLs (CONNECT tunnels), with its Basic
    /// credentials and exceptions; or no proxy at all, never the environment's behind our back.
    pub fn apply(&self, builder: reqwest::ClientBuilder) -> reqwest::ClientBuilder {
        let ProxyRoute::Via(via) = self else {
            return builder.no_proxy();
        };
        let Ok(mut proxy) = reqwest::Proxy::https(via.connect.expose()) else {
            // Unreachable: the URL was parsed when the route was resolved. Without a proxy the
            // requests fail where the proxy is needed, and say so; none goes elsewhere.
            return builder.no_proxy();
        };
        if let Some((user, password)) = &via.basic {
            proxy = proxy.basic_auth(user, password.expose());
        }
        proxy = proxy.no_proxy(reqwest::NoProxy::from_string(&via.no_proxy.join(",")));
        builder.no_proxy().proxy(proxy)
    }

    /// The proxy `url` goes through, if any (as reqwest decides it: `https://` and not
    /// matched by `no_proxy`).
    pub fn proxy_for(&self, url: &str) -> Option<&Via> {
        let ProxyRoute::Via(via) = self else {
            return None;
        };
        let uri: hyper::Uri = url.parse().ok()?;
        let matcher = hyper_util::client::proxy::matcher::Matcher::builder()
            .https(via.shown.clone())
            .no(via.no_proxy.join(","))
            .build();
        matcher.intercept(&uri).map(|_| via)
    }

    /// What the client does, for `siemcast check` and the startup log; never a credential.
    pub fn describe(&self) -> String {
        match self {
            ProxyRoute::Direct(DirectWhy::TurnedOff) => {
                format!("none (proxy = \"{PROXY_NONE}\": HTTPS_PROXY and the like are ignored)")
            }
            ProxyRoute::Direct(DirectWhy::NoneSet) => {
                "none (neither [azure] proxy nor HTTPS_PROXY is set)".into()
            }
            ProxyRoute::Via(via) => {
                let mut text = format!("{} (from {})", via.shown, via.from);
                if via.basic.is_some() {
                    text.push_str(", Basic authentication from proxy_credentials_file");
                } else if via.env_credentials {
                    text.push_str(&format!(
                        ", Basic authentication with the user and password {} holds",
                        via.from
                    ));
                }
                if via.no_proxy.is_empty() {
                    text.push_str(", for every https:// request");
                } else {
                    text.push_str(&format!(
                        ", except for {} ({})",
                        via.no_proxy.join(", "),
                        via.no_proxy_from
                    ));
                }
                text
            }
        }
    }

    /// A request error told in words when it is the proxy's doing: `url`'s request went
    /// through a proxy and the error chain shows a refused tunnel (407 or another status), a
    /// proxy that cannot be reached, or a connection through it that failed. `None` otherwise.
    pub fn explain(&self, url: &str, error: &reqwest::Error) -> Option<String> {
        let via = self.proxy_for(url)?;
        let chain = super::client::error_chain(error);
        let target = reqwest::Url::parse(url)
            .ok()
            .and_then(|u| Some(format!("{}:{}", u.host_str()?, u.port_or_known_default()?)))
            .unwrap_or_else(|| url.to_owned());
        let proxy = &via.shown;
        let text = if chain.contains("proxy authorization required") {
            let what = if via.basic.is_some() {
                "it refused the user and password of proxy_credentials_file: check that file (user:password on its first line)".to_owned()
            } else if via.env_credentials {
                format!(
                    "it refused the user and password in {}: check them",
                    via.from
                )
            } else {
                "it wants a user and password: put user:password in a file and name it with [azure] proxy_credentials_file".to_owned()
            };
            format!("the proxy at {proxy} answered 407 Proxy Authentication Required; {what}")
        } else if chain.contains("tunnel error: unsuccessful") {
            // reqwest keeps only 407 apart; any other refusal (a 403 from the ACL, or the 401
            // tinyproxy gives for a wrong password) comes without its status.
            let credentials = if via.basic.is_some() {
                "; if it is a wrong user or password (some proxies, e.g. tinyproxy, answer 401 then), check proxy_credentials_file"
            } else if via.env_credentials {
                "; if it is a wrong user or password (some proxies, e.g. tinyproxy, answer 401 then), check the ones in the proxy URL"
            } else {
                ""
            };
            format!(
                "the proxy at {proxy} refused to tunnel to {target} (its answer to CONNECT was not 200, e.g. 403): allow {target} in the proxy's ACL, or list the host in no_proxy if it is reached directly{credentials}"
            )
        } else if chain.contains("tunnel error: unexpected end of file") {
            format!(
                "the proxy at {proxy} closed the connection while asked to tunnel to {target}: check the proxy's log and ACL"
            )
        } else if error.is_connect() && error.is_timeout() {
            format!(
                "connecting through the proxy at {proxy} to {target} timed out: is the proxy at {} reachable, and can it reach {target}?",
                via.address
            )
        } else if chain.contains("tunnel error: failed to create underlying connection")
            || chain.contains("tunnel error: io error")
        {
            format!(
                "cannot connect to the proxy at {} ({proxy}, from {}): check that it runs and that this machine may reach it",
                via.address, via.from
            )
        } else if error.is_connect() && chain.contains("certificate") {
            format!(
                "the TLS connection to {target} through the proxy at {proxy} was refused: if the proxy inspects TLS, exempt Microsoft's hosts (siemcast checks their certificates end to end)"
            )
        } else if error.is_connect() {
            format!("the connection to {target} through the proxy at {proxy} failed")
        } else {
            return None;
        };
        Some(format!("{text} ({chain})"))
    }
}

#[cfg(test)]
mod tests;
