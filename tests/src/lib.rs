//! Harness of the end-to-end tests: starts the real control plane and brokers as processes against a
//! real PostgreSQL, and drives them through their public interfaces only.

pub mod api;
pub mod bins;
pub mod haproxy;
pub mod processes;
pub mod system;
pub mod v5;

pub use api::{Api, Fixture};
pub use haproxy::HaProxy;
pub use processes::{Broker, ControlPlane};
pub use system::System;
pub use test_support::tls_proxy::{self, TlsProxy};

pub use common::time::now_ms;
