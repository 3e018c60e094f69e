//! The stream driver every observing layer uses: [`Observe`] and its [`Observer`] (defined with
//! the response types, in `types::observe`, since [`ResponseBody::observe_with`] builds it).
//!
//! [`ResponseBody::observe_with`]: crate::types::ResponseBody::observe_with

pub use crate::types::observe::{End, Flow, Observe, Observed, Observer};
