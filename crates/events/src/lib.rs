//! EventBridge-compatible event patterns and schedule expressions, sans-IO.
