//! Cross-crate tests live in `tests/tests/`; this library holds nothing but their shared
//! harness.

pub mod file_cluster;
