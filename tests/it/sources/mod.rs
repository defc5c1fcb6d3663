//! The sources: the Microsoft API pollers against the simulator (also hostile), Event Hubs,
//! files, authentication, where tokens go, replay, and subscription discovery.

mod azure_auth;
mod discovery;
mod eventhubs;
mod files_rotation;
mod hostile_apis;
mod links;
mod pollers;
mod proxy;
mod replay;
mod storage;
mod tenants;
