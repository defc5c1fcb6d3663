//! The proxy route from the keys and the environment (every refusal at its key, credentials
//! never shown), which URLs it takes, and reqwest's errors through fake proxies on loopback
//! (407, 403, a closed connection, nobody listening, no answer) told in words.

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::*;

fn env_of(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
    let map: HashMap<String, String> = vars
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    move |name| map.get(name).cloned()
}

fn route(keys: ProxyKeys<'_>, vars: &[(&str, &str)]) -> Result<ProxyRoute, Vec<ProxyError>> {
    ProxyRoute::resolve(keys, Path::to_owned, env_of(vars))
}

fn via(r: &ProxyRoute) -> &Via {
    match r {
        ProxyRoute::Via(v) => v,
        other => panic!("no proxy: {other:?}"),
    }
}

fn keys(proxy: Option<&str>) -> ProxyKeys<'_> {
    ProxyKeys {
        proxy,
        ..ProxyKeys::default()
    }
}

#[test]
fn the_files_proxy_wins_over_the_environment() {
    let r = route(
        keys(Some("http://proxy.example.com:3128")),
        &[("HTTPS_PROXY", "http://other:8080")],
    )
    .unwrap();
    let v = via(&r);
    assert_eq!(
        (v.shown.as_str(), v.address.as_str(), v.from),
        (
            "http://proxy.example.com:3128",
            "proxy.example.com:3128",
            "[azure] proxy"
        )
    );
    // A bare host:port is http://, and the port defaults to 80.
    let r = route(keys(Some("10.1.2.3:8080")), &[]).unwrap();
    assert_eq!(via(&r).shown, "http://10.1.2.3:8080");
    let r = route(keys(Some("http://proxy/")), &[]).unwrap();
    assert_eq!(via(&r).address, "proxy:80");
    let r = route(keys(Some("http://[::1]:3128")), &[]).unwrap();
    assert_eq!(via(&r).address, "[::1]:3128");
}

#[test]
fn the_environment_is_read_when_the_file_says_nothing() {
    let r = route(keys(None), &[]).unwrap();
    assert_eq!(r, ProxyRoute::Direct(DirectWhy::NoneSet));
    // HTTPS_PROXY first, then https_proxy, then ALL_PROXY; an empty one counts as unset.
    let r = route(
        keys(None),
        &[
            ("HTTPS_PROXY", " "),
            ("https_proxy", "http://lower:3128"),
            ("ALL_PROXY", "http://all:3128"),
        ],
    )
    .unwrap();
    assert_eq!(
        (via(&r).shown.as_str(), via(&r).from),
        ("http://lower:3128", "https_proxy")
    );
    let r = route(keys(None), &[("all_proxy", "all:1")]).unwrap();
    assert_eq!(via(&r).from, "all_proxy");
    // The environment's URL may have a path, ignored as curl does; a bare host:port is http://.
    let r = route(keys(None), &[("HTTPS_PROXY", "proxy.example:3128/")]).unwrap();
    assert_eq!(via(&r).connect.expose(), "http://proxy.example:3128/");
    let r = route(keys(None), &[("HTTPS_PROXY", "http://proxy:3128/x")]).unwrap();
    assert_eq!(via(&r).shown, "http://proxy:3128");
    // HTTP_PROXY is for http:// URLs, which are never proxied here.
    let r = route(keys(None), &[("HTTP_PROXY", "http://p:1")]).unwrap();
    assert_eq!(r, ProxyRoute::Direct(DirectWhy::NoneSet));
    // NO_PROXY from the environment, unless the file has no_proxy.
    let r = route(
        keys(None),
        &[
            ("HTTPS_PROXY", "p:1"),
            ("NO_PROXY", "a.example, .b.example ,10.0.0.0/8,"),
        ],
    )
    .unwrap();
    assert_eq!(via(&r).no_proxy, ["a.example", ".b.example", "10.0.0.0/8"]);
    assert_eq!(via(&r).no_proxy_from, "NO_PROXY");
    let list = vec!["c.example".to_owned()];
    let r = route(
        ProxyKeys {
            no_proxy: Some(&list),
            ..keys(None)
        },
        &[("HTTPS_PROXY", "p:1"), ("no_proxy", "a.example")],
    )
    .unwrap();
    assert_eq!(via(&r).no_proxy, ["c.example"]);
    assert_eq!(via(&r).no_proxy_from, "[azure] no_proxy");
}

#[test]
fn none_turns_every_proxy_off() {
    let r = route(keys(Some("none")), &[("HTTPS_PROXY", "http://p:1")]).unwrap();
    assert_eq!(r, ProxyRoute::Direct(DirectWhy::TurnedOff));
    assert!(r
        .describe()
        .contains("HTTPS_PROXY and the like are ignored"));
    assert!(r.proxy_for("https://graph.microsoft.com/v1.0").is_none());
    let list = vec!["a".to_owned()];
    let e = route(
        ProxyKeys {
            proxy: Some("none"),
            credentials_file: Some(Path::new("creds")),
            no_proxy: Some(&list),
        },
        &[],
    )
    .unwrap_err();
    let keys: Vec<_> = e.iter().map(|e| e.key).collect();
    assert_eq!(keys, [Some("proxy_credentials_file"), Some("no_proxy")]);
}

#[test]
fn bad_proxy_values_are_refused_at_their_key_without_echoing_a_password() {
    for (text, expect) in [
        ("", "write proxy = \"none\""),
        ("https://proxy:3128", "only an http:// proxy"),
        ("socks5://proxy:1080", "only an http:// proxy"),
        ("http://proxy:3128/path", "without a path"),
        ("http://proxy:99999", "is not a proxy URL"),
        ("http://user:s3cret-pw@proxy:3128", "proxy_credentials_file"),
        ("http://user@proxy:3128", "proxy_credentials_file"),
    ] {
        let e = route(keys(Some(text)), &[]).unwrap_err();
        assert_eq!(e.len(), 1, "{text}: {e:?}");
        assert_eq!(e[0].key, Some("proxy"));
        assert!(e[0].message.contains(expect), "{text}: {}", e[0].message);
        assert!(!e[0].message.contains("s3cret"), "{}", e[0].message);
    }
}

#[test]
fn an_unusable_environment_proxy_is_an_error_without_a_key() {
    let e = route(keys(None), &[("HTTPS_PROXY", "socks5://u:s3cret@p:1080")]).unwrap_err();
    assert_eq!(e[0].key, None);
    assert!(
        e[0].message
            .contains("the environment's HTTPS_PROXY uses socks5://"),
        "{}",
        e[0].message
    );
    assert!(!e[0].message.contains("s3cret"));
}

#[test]
fn no_proxy_entries_are_checked_one_by_one() {
    let list: Vec<String> = [
        "host.example",
        ".suffix.example",
        "10.0.0.0/8",
        "fd00::/8",
        "192.0.2.1",
        "*",
        "",
        "https://x.example",
        "a.example,b.example",
        "host:443",
        "10.0.0.0/33",
        "bad_name",
    ]
    .map(str::to_owned)
    .to_vec();
    let e = route(
        ProxyKeys {
            no_proxy: Some(&list),
            ..keys(Some("http://p:1"))
        },
        &[],
    )
    .unwrap_err();
    let at: Vec<usize> = e.iter().map(|e| e.index.unwrap()).collect();
    assert_eq!(at, [6, 7, 8, 9, 10, 11]);
    assert!(e.iter().all(|e| e.key == Some("no_proxy")));
    assert!(e[3].message.contains("has a port"), "{}", e[3].message);
}

#[test]
fn the_credentials_file_is_read_and_never_shown() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("proxy-credentials");
    std::fs::write(&file, "svc-siemcast:p@ss:word\n").unwrap();
    let r = ProxyRoute::resolve(
        ProxyKeys {
            credentials_file: Some(Path::new("proxy-credentials")),
            ..keys(Some("http://proxy:3128"))
        },
        |p| dir.path().join(p),
        env_of(&[]),
    )
    .unwrap();
    let v = via(&r);
    let (user, password) = v.basic.as_ref().unwrap();
    // The password is everything after the first colon.
    assert_eq!(
        (user.as_str(), password.expose()),
        ("svc-siemcast", "p@ss:word")
    );
    let shown = format!("{} {r:?}", r.describe());
    assert!(
        shown.contains("Basic authentication from proxy_credentials_file"),
        "{shown}"
    );
    assert!(
        !shown.contains("p@ss") && !shown.contains("svc-siemcast"),
        "{shown}"
    );

    for (content, expect) in [
        ("no-colon-here\n", "must hold user:password"),
        (":password-only\n", "must hold user:password"),
        ("", "must hold user:password"),
    ] {
        std::fs::write(&file, content).unwrap();
        let e = route(
            ProxyKeys {
                credentials_file: Some(&file),
                ..keys(Some("http://proxy:3128"))
            },
            &[],
        )
        .unwrap_err();
        assert_eq!(e[0].key, Some("proxy_credentials_file"));
        assert!(e[0].message.contains(expect), "{}", e[0].message);
        assert!(!e[0].message.contains("password-only") && !e[0].message.contains("no-colon"));
    }
    let e = route(
        ProxyKeys {
            credentials_file: Some(&dir.path().join("missing")),
            ..keys(Some("http://proxy:3128"))
        },
        &[],
    )
    .unwrap_err();
    assert!(
        e[0].message.contains("cannot read proxy_credentials_file"),
        "{}",
        e[0].message
    );
    // Credentials go only to the file's proxy, not to the environment's.
    let e = route(
        ProxyKeys {
            credentials_file: Some(&file),
            ..keys(None)
        },
        &[("HTTPS_PROXY", "http://p:1")],
    )
    .unwrap_err();
    assert!(e[0].message.contains("needs proxy"), "{}", e[0].message);
}

#[test]
fn the_environments_credentials_are_used_but_never_shown() {
    let r = route(
        keys(None),
        &[("HTTPS_PROXY", "http://u:s3cret@p.example:3128")],
    )
    .unwrap();
    let shown = format!("{} {r:?}", r.describe());
    assert!(
        shown.contains("http://p.example:3128 (from HTTPS_PROXY)"),
        "{shown}"
    );
    assert!(
        shown.contains("user and password HTTPS_PROXY holds"),
        "{shown}"
    );
    assert!(!shown.contains("s3cret"), "{shown}");
}

#[test]
fn only_https_urls_outside_no_proxy_go_through_the_proxy() {
    let list = vec![".internal.example".to_owned(), "10.0.0.0/8".to_owned()];
    let r = route(
        ProxyKeys {
            no_proxy: Some(&list),
            ..keys(Some("http://proxy:3128"))
        },
        &[],
    )
    .unwrap();
    assert!(r
        .proxy_for("https://login.microsoftonline.com/t/oauth2/v2.0/token")
        .is_some());
    assert!(r
        .proxy_for("https://graph.microsoft.com:443/v1.0/x")
        .is_some());
    assert!(r.proxy_for("https://api.internal.example/x").is_none());
    assert!(r.proxy_for("https://10.1.2.3:8443/x").is_none());
    // http:// (loopback test endpoints, IMDS) is never proxied.
    assert!(r.proxy_for("http://127.0.0.1:8080/x").is_none());
    assert!(r.proxy_for("http://169.254.169.254/metadata").is_none());
    assert!(r
        .describe()
        .contains("except for .internal.example, 10.0.0.0/8 ([azure] no_proxy)"));
}

/// A fake proxy on loopback that answers every connection's first request with `answer`
/// (or closes it, for an empty one; or holds it open, for `None`), and reports the requests.
async fn fake_proxy(
    answer: Option<&'static str>,
) -> (String, tokio::sync::mpsc::UnboundedReceiver<String>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap().to_string();
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            let tx = tx.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 4096];
                let n = s.read(&mut buf).await.unwrap_or(0);
                let _ = tx.send(String::from_utf8_lossy(&buf[..n]).into_owned());
                match answer {
                    Some(a) => {
                        let _ = s.write_all(a.as_bytes()).await;
                    }
                    None => tokio::time::sleep(Duration::from_secs(30)).await,
                }
            });
        }
    });
    (address, rx)
}

/// One request to `url` through `route` (connect timeout `connect`): the explained error.
async fn through(route: &ProxyRoute, url: &str, connect: Duration) -> String {
    let client = route
        .apply(super::super::client::builder())
        .connect_timeout(connect)
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap();
    let e = client.get(url).send().await.unwrap_err();
    let text = route
        .explain(url, &e)
        .unwrap_or_else(|| panic!("not explained: {}", super::super::client::error_chain(&e)));
    eprintln!("{text}");
    text
}

fn proxy_at(address: &str, credentials: Option<&Path>) -> ProxyRoute {
    route(
        ProxyKeys {
            credentials_file: credentials,
            ..keys(Some(&format!("http://{address}")))
        },
        &[],
    )
    .unwrap()
}

const URL: &str = "https://login.example.test/tenant/oauth2/v2.0/token";

#[tokio::test]
async fn a_407_says_to_check_the_credentials_file_and_sends_them_on_connect() {
    let (address, mut seen) =
        fake_proxy(Some("HTTP/1.1 407 Proxy Authentication Required\r\nProxy-Authenticate: Basic realm=\"p\"\r\nContent-Length: 0\r\n\r\n")).await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("creds");
    std::fs::write(&file, "svc:wrong-pw\n").unwrap();
    let r = proxy_at(&address, Some(&file));
    let text = through(&r, URL, Duration::from_secs(5)).await;
    assert!(
        text.starts_with(&format!(
            "the proxy at http://{address} answered 407 Proxy Authentication Required; it refused the user and password of proxy_credentials_file"
        )),
        "{text}"
    );
    assert!(!text.contains("wrong-pw"), "{text}");
    let request = seen.recv().await.unwrap();
    assert!(
        request.starts_with("CONNECT login.example.test:443 HTTP/1.1\r\n"),
        "{request}"
    );
    // Basic base64("svc:wrong-pw").
    assert!(request.contains("Basic c3ZjOndyb25nLXB3"), "{request}");
    // Without credentials: say to set the file.
    let text = through(&proxy_at(&address, None), URL, Duration::from_secs(5)).await;
    assert!(
        text.contains("it wants a user and password: put user:password in a file"),
        "{text}"
    );
}

#[tokio::test]
async fn a_refused_tunnel_names_the_host_to_allow() {
    let (address, _seen) =
        fake_proxy(Some("HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n")).await;
    let text = through(&proxy_at(&address, None), URL, Duration::from_secs(5)).await;
    assert!(
        text.starts_with(&format!(
            "the proxy at http://{address} refused to tunnel to login.example.test:443"
        )),
        "{text}"
    );
    assert!(
        text.contains("allow login.example.test:443 in the proxy's ACL"),
        "{text}"
    );
}

#[tokio::test]
async fn a_proxy_that_hangs_up_or_is_not_there_is_named() {
    let (address, _seen) = fake_proxy(Some("")).await;
    let text = through(&proxy_at(&address, None), URL, Duration::from_secs(5)).await;
    assert!(text.starts_with(&format!("the proxy at http://{address} closed the connection while asked to tunnel to login.example.test:443")), "{text}");

    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let nobody = format!("127.0.0.1:{port}");
    let text = through(&proxy_at(&nobody, None), URL, Duration::from_secs(5)).await;
    assert!(
        text.starts_with(&format!(
            "cannot connect to the proxy at {nobody} (http://{nobody}, from [azure] proxy)"
        )),
        "{text}"
    );
    assert!(text.contains("refused"), "{text}");

    let (silent, _seen) = fake_proxy(None).await;
    let text = through(&proxy_at(&silent, None), URL, Duration::from_millis(300)).await;
    assert!(
        text.starts_with(&format!(
            "connecting through the proxy at http://{silent} to login.example.test:443 timed out"
        )),
        "{text}"
    );
}

#[test]
fn errors_of_direct_requests_are_not_the_proxys() {
    let r = route(keys(Some("none")), &[]).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("https://127.0.0.1:{port}/");
    let e = rt.block_on(async {
        r.apply(super::super::client::builder())
            .build()
            .unwrap()
            .get(&url)
            .send()
            .await
            .unwrap_err()
    });
    assert_eq!(r.explain(&url, &e), None);
}
