//! The service layer: business logic and queries. Route handlers stay thin: they extract,
//! validate, call a service and shape the response.

pub mod passwords;
pub mod posts;
pub mod reports;
pub mod users;
