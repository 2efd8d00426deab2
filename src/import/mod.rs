//! Importing models from other formats into GGUF (see `hearth models import`).
