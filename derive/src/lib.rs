//! `#[derive(Persist)]` for the `atomic-persist` crate.
//!
//! The derive is being built; this crate is a placeholder so the workspace layout is in
//! place.
