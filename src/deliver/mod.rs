//! Delivery to recipients. This first part holds the pure retry policy; the workers and the
//! HTTPS client come with the hub.

pub mod retry;
