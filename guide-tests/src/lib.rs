//! The guides in `docs/`, compiled: each page is the documentation of one module below, so
//! every ```` ```rust ```` block in it runs as a doctest of this crate (`cargo test --workspace`,
//! or `cargo test -p arbor-guide-tests --doc`). A block that no longer compiles against `arbor`,
//! `arbor-redis` or the reference app fails the tests instead of drifting.
//!
//! Conventions in the guides: hidden `# ` lines hold setup; a block that uses `crate::` paths
//! of the reference app (or defines items a route file would `use crate::..`) is a
//! `standalone_crate` doctest, so that `crate` is its own crate rather than the merged doctest
//! binary; `no_run` marks blocks that start a server (or need a build script's environment); a
//! block that shows a compile error is `compile_fail`, with a comment saying what fails.

// The guides show whole files (`build.rs`, `src/main.rs`), whose `fn main` is the point.
#![allow(clippy::needless_doctest_main)]

#[doc = include_str!("../../docs/README.md")]
pub mod introduction {}

#[doc = include_str!("../../docs/api.md")]
pub mod api {}

#[doc = include_str!("../../docs/auth.md")]
pub mod auth {}

#[doc = include_str!("../../docs/batch.md")]
pub mod batch {}

#[doc = include_str!("../../docs/benchmarks.md")]
pub mod benchmarks {}

#[doc = include_str!("../../docs/caching.md")]
pub mod caching {}

#[doc = include_str!("../../docs/cli.md")]
pub mod cli {}

#[doc = include_str!("../../docs/comparison.md")]
pub mod comparison {}

#[doc = include_str!("../../docs/conditional-requests.md")]
pub mod conditional_requests {}

#[doc = include_str!("../../docs/cors.md")]
pub mod cors {}

#[doc = include_str!("../../docs/database.md")]
pub mod database {}

#[doc = include_str!("../../docs/deployment.md")]
pub mod deployment {}

#[doc = include_str!("../../docs/errors.md")]
pub mod errors {}

#[doc = include_str!("../../docs/graphql.md")]
pub mod graphql {}

#[doc = include_str!("../../docs/idempotency.md")]
pub mod idempotency {}

#[doc = include_str!("../../docs/logging.md")]
pub mod logging {}

#[doc = include_str!("../../docs/middleware.md")]
pub mod middleware {}

#[doc = include_str!("../../docs/migrating-from-nextjs.md")]
pub mod migrating_from_nextjs {}

#[doc = include_str!("../../docs/openapi.md")]
pub mod openapi {}

#[doc = include_str!("../../docs/operations.md")]
pub mod operations {}

#[doc = include_str!("../../docs/production.md")]
pub mod production {}

#[doc = include_str!("../../docs/quickstart.md")]
pub mod quickstart {}

#[doc = include_str!("../../docs/rate-limiting.md")]
pub mod rate_limiting {}

#[doc = include_str!("../../docs/reliability.md")]
pub mod reliability {}

#[doc = include_str!("../../docs/routing.md")]
pub mod routing {}

#[doc = include_str!("../../docs/sessions.md")]
pub mod sessions {}

#[doc = include_str!("../../docs/streaming.md")]
pub mod streaming {}

#[doc = include_str!("../../docs/testing.md")]
pub mod testing {}

#[doc = include_str!("../../docs/timeouts.md")]
pub mod timeouts {}

#[doc = include_str!("../../docs/validation.md")]
pub mod validation {}

#[doc = include_str!("../../docs/webhooks.md")]
pub mod webhooks {}
