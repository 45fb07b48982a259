//! Cross-crate tests: conformance over real UDP and end-to-end runs live in tests/.
