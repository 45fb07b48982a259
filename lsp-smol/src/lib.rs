//! lsp-smol (work in progress).
