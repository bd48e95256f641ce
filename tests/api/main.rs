//! Integration tests through HTTP against a real PostgreSQL.

mod helpers;

mod audit;
mod auth;
mod certificates;
mod cli;
mod declarations;
mod events;
mod exchange;
mod fixtures;
mod restart;

mod ministries;
mod support;
