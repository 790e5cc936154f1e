//! Helpers shared by the firmware tests.
pub mod filters;
