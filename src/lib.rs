//! nsw: a National Single Window for customs documents.

pub mod api;
pub mod app;
pub mod calendar;
pub mod codelists;
pub mod config;
pub mod customs;
pub mod db;
pub mod demo;
pub mod domain;
pub mod error;
pub mod events;
pub mod exchange;
pub mod intake;
pub mod jobs;
pub mod licensing;
pub mod loadtest;
pub mod passwords;
pub mod portal;
pub mod routing;
pub mod rules;
pub mod store;
pub mod telemetry;
pub mod validation;
pub mod webhooks;
pub mod workflow;
pub mod xml;
