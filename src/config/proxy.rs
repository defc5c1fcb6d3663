//! Checks of the proxy keys of `[azure]` (`proxy`, `proxy_credentials_file`, `no_proxy`): each
//! problem at its key, the credentials file read to check its shape (its content is never
//! shown), and the environment's `HTTPS_PROXY` / `NO_PROXY` when the file leaves it to them.

use super::{AzureConfig, Config, KeyPath, Problem, Problems};

impl AzureConfig {
    /// The proxy keys; `needed` when a Microsoft API source will use them (only then is an
    /// unusable `HTTPS_PROXY` in the environment a problem).
    pub(super) fn validate_proxy_into(
        &self,
        cfg: &Config,
        at: &KeyPath,
        needed: bool,
        p: &mut Problems<'_>,
    ) {
        let Err(errors) = self.proxy_route(|path| cfg.resolve(path)) else {
            return;
        };
        for e in errors {
            match (e.key, e.index) {
                (Some(key), Some(i)) => p.add(&at.key(key).index(i), e.message),
                (Some(key), None) => p.add(&at.key(key), e.message),
                // The environment's value: no place in the file.
                (None, _) if needed => p.list.push(Problem {
                    file: p.file.to_owned(),
                    position: None,
                    message: e.message,
                    hint: None,
                }),
                (None, _) => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{Scratch, GOOD};

    fn with_azure(lines: &str) -> String {
        GOOD.replace(
            "[[destination]]",
            &format!("[azure]\n{lines}\n\n[[destination]]"),
        )
    }

    #[test]
    fn proxy_keys_load_and_their_mistakes_are_located() {
        let s = Scratch::new();
        std::fs::write(s.dir.path().join("proxy-credentials"), "svc:pw\n").unwrap();
        let cfg = s
            .load(&with_azure(
                "proxy = \"http://proxy.example.com:3128\"\nproxy_credentials_file = \"proxy-credentials\"\nno_proxy = [\".corp.example\", \"10.0.0.0/8\"]",
            ))
            .unwrap();
        let route = cfg.azure.proxy_route(|p| cfg.resolve(p)).unwrap();
        assert_eq!(
            route.describe(),
            "http://proxy.example.com:3128 (from [azure] proxy), Basic authentication from proxy_credentials_file, except for .corp.example, 10.0.0.0/8 ([azure] no_proxy)"
        );
        // Lines 11-13 are the [azure] keys.
        let problems = s.problems(&with_azure(
            "proxy = \"http://svc:s3cret@proxy.example.com:3128\"\nproxy_credentials_file = \"proxy-credentials\"\nno_proxy = [\"ok.example\", \"bad host\"]",
        ));
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert!(
            problems[0].starts_with(
                "11:1: azure: proxy holds a user or password; write the address alone"
            ),
            "{problems:?}"
        );
        assert!(
            problems[1].starts_with("13:27: azure: no_proxy entry \"bad host\" holds a space"),
            "{problems:?}"
        );
        assert!(!problems.join("\n").contains("s3cret"));
        let problems = s.problems(&with_azure(
            "proxy = \"http://proxy.example.com:3128\"\nproxy_credentials_file = \"missing\"",
        ));
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(
            problems[0].starts_with("12:1: azure: cannot read proxy_credentials_file"),
            "{problems:?}"
        );
        let problems = s.problems(&with_azure("proxy = \"\""));
        assert!(
            problems[0].starts_with("11:1: azure: proxy is empty; write proxy = \"none\""),
            "{problems:?}"
        );
        let cfg = s.load(&with_azure("proxy = \"none\"")).unwrap();
        assert!(cfg
            .azure
            .proxy_route(|p| cfg.resolve(p))
            .unwrap()
            .describe()
            .starts_with("none (proxy = \"none\""));
    }
}
