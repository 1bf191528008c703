//! HTTP adapters.
