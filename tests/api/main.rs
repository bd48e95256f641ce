//! Integration tests through HTTP against a real PostgreSQL.

mod helpers;

mod audit;
mod auth;
mod cli;
mod declarations;
mod events;
mod fixtures;
mod restart;
