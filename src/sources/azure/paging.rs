//! Loop detection for server-driven paging: a continuation link that was already followed in
//! this listing (or a listing longer than any real one) ends paging instead of looping forever
//! (Microsoft Learn, "Paging Microsoft Graph data in your app",
//! https://learn.microsoft.com/graph/paging; ARM lists page the same way through `nextLink`).

use std::collections::HashSet;

/// Pages of one window at most before paging is considered looping.
pub const MAX_PAGES: usize = 100_000;

/// The links one listing has followed.
#[derive(Debug, Default)]
pub struct LinkGuard {
    used: HashSet<String>,
}

impl LinkGuard {
    /// A guard for a listing whose first page is `first`.
    pub fn new(first: &str) -> Self {
        LinkGuard {
            used: HashSet::from([first.to_owned()]),
        }
    }

    /// True when `next` may be followed: not seen in this listing, and the page count is sane.
    pub fn admit(&mut self, next: &str) -> bool {
        self.used.insert(next.to_owned()) && self.used.len() <= MAX_PAGES
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_repeated_link_is_refused() {
        let mut g = LinkGuard::new("https://x/a");
        assert!(g.admit("https://x/a?page=2"));
        assert!(g.admit("https://x/a?page=3"));
        assert!(!g.admit("https://x/a?page=2"), "back to page 2");
        assert!(!g.admit("https://x/a"), "back to the first page");
    }
}
