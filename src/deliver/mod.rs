//! Delivery to recipients: the pure retry policy, and the push workers that POST packages to
//! the endpoints of push-mode agencies (pull-mode agencies fetch theirs from the inbox API).

pub mod push;
pub mod retry;
