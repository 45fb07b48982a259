//! lsp-mio (work in progress).
