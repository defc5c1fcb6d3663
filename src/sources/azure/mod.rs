//! The Azure client every Microsoft API source shares: credentials and tokens (`auth`: client
//! secret, certificate assertion in `assertion`, managed identity in `imds`; the token answer in
//! `token`), the HTTP client and its error chain (`client`) with its proxy (`proxy`), the API GET with retries, throttling
//! and origin checks (`http`), per-API-family rate limits (`limits`), and the reading of list
//! answers (`listing`) and their server-driven paging (`paging`).

pub mod assertion;
pub mod auth;
pub mod client;
pub mod http;
pub mod imds;
pub mod limits;
pub mod listing;
pub mod paging;
pub mod proxy;
pub mod token;
